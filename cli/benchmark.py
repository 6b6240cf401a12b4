"""``gnn-service benchmark ...``: measured comparisons, each written as one JSON result."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli import benchmark_data
from cli.progress import stage_bars

if TYPE_CHECKING:
    from service.settings import Settings

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
    postgres_url: Annotated[
        str,
        typer.Option(
            help="A database on the PostgreSQL server for the production variants; the run "
            "creates and drops a scratch database there."
        ),
    ] = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/pipeline.json"
    ),
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint to serve (default: the bundled model).")
    ] = None,
) -> None:
    """Raw model vs micro-batched vs unbatched vs naive workers, one run, same payloads."""
    from service.logging import configure_logging
    from training.benchmarks.pipeline import PipelineBenchConfig, run_pipeline_benchmark
    from training.benchmarks.report import command_line, write_result

    configure_logging(level="WARNING", fmt="console", stream=sys.stderr)
    console = Console(stderr=True)
    command = command_line()
    config = PipelineBenchConfig(
        burst=burst,
        latency_seconds=seconds,
        workers=workers,
        model_path=model,
        extra={"command": command},
    )
    result = run_pipeline_benchmark(
        config, redis_url=redis_url, postgres_url=postgres_url, report=console.log
    )
    write_result(out, result)
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


@benchmark_app.command("workers")
def workers(
    counts: Annotated[
        list[int] | None, typer.Option("--count", min=1, help="Worker processes (repeat).")
    ] = None,
    burst: Annotated[int, typer.Option(min=10, help="Snapshots per burst.")] = 1500,
    repeats: Annotated[int, typer.Option(min=1, help="Bursts per worker count.")] = 2,
    batch_limits: Annotated[
        list[int] | None,
        typer.Option(
            "--batch-limit",
            min=1,
            help="Batch limit (GNN_BATCHING__MAX_BATCH_SNAPSHOTS) to drain with at 2 workers "
            "(repeat; default 16, 32, 64 and 128).",
        ),
    ] = None,
    redis_url: Annotated[str, typer.Option(help="Redis server.")] = "redis://127.0.0.1:6379",
    postgres_url: Annotated[
        str, typer.Option(help="A database on the PostgreSQL server (a scratch one is made).")
    ] = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/workers.json"
    ),
) -> None:
    """Drain throughput of 1, 2, 3 worker processes on one Redis queue and one PostgreSQL."""
    from service.logging import configure_logging
    from training.benchmarks.report import command_line, write_result
    from training.benchmarks.scaling import ScalingBenchConfig, run_scaling_benchmark

    configure_logging(level="WARNING", fmt="console", stream=sys.stderr)
    console = Console(stderr=True)
    config = ScalingBenchConfig(
        counts=tuple(counts or (1, 2, 3)),
        batch_limits=tuple(batch_limits or (16, 32, 64, 128)),
        burst=burst,
        repeats=repeats,
        extra={"command": command_line()},
    )
    result = run_scaling_benchmark(
        config, redis_url=redis_url, postgres_url=postgres_url, report=console.log
    )
    write_result(out, result)
    table = Table(title=f"workers on one queue ({os.cpu_count()} CPUs)")
    for column in ("workers", "batch limit", "drain snapshots/s", "bursts", "ratio"):
        table.add_column(column)
    first, reference = config.counts[0], config.max_batch_snapshots
    rows = [
        (count, reference, f"{count}_workers", f"speedup_{count}_vs_{first}")
        for count in config.counts
    ]
    rows += [
        (config.limits_workers, limit, f"batch_{limit}", f"batch_{limit}_vs_{reference}")
        for limit in config.batch_limits
    ]
    for count, limit, key, ratio in rows:
        row = result["results"][key]
        table.add_row(
            str(count),
            str(limit),
            f"{row['drain_throughput_rps']:.0f}",
            ", ".join(f"{rate:.0f}" for rate in row["bursts_rps"]),
            f"{result['ratios'].get(ratio, 1.0):.2f}",
        )
    Console().print(table)
    typer.echo(f"wrote {out}")


@benchmark_app.command("db-write")
def db_write(
    ctx: typer.Context,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "--postgres-url",
            help="PostgreSQL database to measure; its diagnoses table is emptied. Default: "
            "GNN_DATABASE__URL when it is PostgreSQL, else "
            "postgresql+asyncpg://postgres@127.0.0.1:5432/gnn_bench.",
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(min=1, max=1000, help="Diagnoses per batch (the worker's default max batch)."),
    ] = 64,
    batches: Annotated[int, typer.Option(min=1, help="Timed batches per variant.")] = 50,
    sqlite_dir: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the SQLite file (db-write.db). Default: a temporary directory, "
            "removed afterwards."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "--out", help="Result file.")] = Path(
        "benchmarks/results/db-write.json"
    ),
) -> None:
    """Diagnoses written per second: one bulk INSERT per batch vs one INSERT per diagnosis,
    on PostgreSQL and SQLite, same rows."""
    from service.errors import ConfigurationError
    from service.logging import configure_logging
    from training.benchmarks.db_write import (
        DbWriteBenchConfig,
        postgres_url_for,
        run_db_write_benchmark,
    )
    from training.benchmarks.report import command_line, write_result

    configure_logging(level="WARNING", fmt="console", stream=sys.stderr)
    settings = _root_settings(ctx)
    with stage_bars("batches") as (tick, progress):
        try:
            config = DbWriteBenchConfig(batch_size=batch_size, batches=batches)
            result = run_db_write_benchmark(
                config,
                settings=settings,
                postgres_url=postgres_url_for(settings, database_url),
                sqlite_dir=sqlite_dir,
                command=command_line(),
                report=progress.console.log,
                tick=tick,
            )
        except ConfigurationError as exc:
            progress.stop()
            typer.echo(f"db-write: {exc}", err=True)
            raise typer.Exit(2) from None
    write_result(output, result)
    table = Table(title=f"db-write: {batches} batches of {batch_size} ({os.cpu_count()} CPUs)")
    table.add_column("database")
    table.add_column("INSERTs")
    for column in ("rows/s", "p50 ms", "p95 ms", "rows", "bulk/per-row"):
        table.add_column(column, justify="right")
    for label, metrics in result["results"].items():
        name, variant = label.split("_", 1)
        bulk = variant == "bulk"
        table.add_row(
            name,
            "1 per batch" if bulk else "1 per row",
            f"{metrics['throughput_rps']:,.0f}",
            f"{metrics['p50_ms']:.1f}",
            f"{metrics['p95_ms']:.1f}",
            str(metrics["rows_written"]),
            f"{result['ratios'][f'bulk_gain_{name}']:.2f}x" if bulk else "",
        )
    Console().print(table)
    typer.echo(f"wrote {output}")


def _root_settings(ctx: typer.Context) -> Settings:
    """The settings the ``gnn-service`` callback read (read here when run on its own)."""
    from service.settings import Settings

    settings = ctx.find_root().obj
    return settings if isinstance(settings, Settings) else Settings()


benchmark_app.command("cmapss")(benchmark_data.cmapss)
benchmark_app.command("skab")(benchmark_data.skab)
benchmark_app.command("hydraulic")(benchmark_data.hydraulic)
benchmark_app.command("adapt")(benchmark_data.adapt)
