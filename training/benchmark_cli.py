"""``gnn-service benchmark ...``: measured comparisons, each written as one JSON result."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

benchmark_app = typer.Typer(
    help="Benchmarks: each writes benchmarks/results/NAME.json and prints a table.",
    no_args_is_help=True,
)


@benchmark_app.command("pipeline")
def pipeline(
    burst: Annotated[int, typer.Option(min=10, help="Snapshots in the drain burst.")] = 2000,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds of each open-loop run.")] = 15.0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes per variant.")] = 2,
    redis_url: Annotated[
        str, typer.Option(help="Redis for the production variants.")
    ] = "redis://127.0.0.1:6379",
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/pipeline.json"
    ),
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint to serve (default: the bundled model).")
    ] = None,
) -> None:
    """Raw model vs micro-batched vs unbatched vs naive workers, one run, same payloads."""
    from training.bench_pipeline import PipelineBenchConfig, run_pipeline_benchmark
    from worker.logging import configure_logging

    configure_logging(level="WARNING", fmt="console", stream=sys.stderr)
    console = Console(stderr=True)
    command = "gnn-service " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    config = PipelineBenchConfig(
        burst=burst,
        latency_seconds=seconds,
        workers=workers,
        model_path=model,
        extra={"command": command},
    )
    result = run_pipeline_benchmark(config, redis_url=redis_url, report=console.log)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title=f"pipeline ({os.cpu_count()} CPUs)")
    for column in ("variant", "metric", "value"):
        table.add_column(column)
    for variant, metrics in result["results"].items():
        for metric, value in metrics.items():
            table.add_row(
                variant, metric, f"{value:.1f}" if isinstance(value, float) else str(value)
            )
    for name, value in result["ratios"].items():
        table.add_row("ratio", name, f"{value:.2f}")
    Console().print(table)
    typer.echo(f"wrote {out}")
