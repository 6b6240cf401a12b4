"""``gnn-service benchmark ...``: measured comparisons, each written as one JSON result."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from rich.progress import Progress

    from service.settings import Settings

benchmark_app = typer.Typer(
    help="Benchmarks: each writes benchmarks/results/NAME.json and prints a table.",
    no_args_is_help=True,
)


StageTick = Callable[[str, int, int], None]


@contextmanager
def _stage_bars(unit: str, width: int = 20) -> Iterator[tuple[StageTick, Progress]]:
    """One progress bar per stage on stderr; ``tick(stage, done, total)`` moves it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    bars: dict[str, TaskID] = {}
    with Progress(
        TextColumn(f"{{task.description:<{width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        console=Console(stderr=True),
    ) as progress:

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done)

        yield tick, progress


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
    from training.benchmarks.pipeline import ScalingBenchConfig, run_scaling_benchmark
    from training.benchmarks.report import command_line, write_result

    configure_logging(level="WARNING", fmt="console", stream=sys.stderr)
    console = Console(stderr=True)
    config = ScalingBenchConfig(
        counts=tuple(counts or (1, 2, 3)),
        burst=burst,
        repeats=repeats,
        extra={"command": command_line()},
    )
    result = run_scaling_benchmark(
        config, redis_url=redis_url, postgres_url=postgres_url, report=console.log
    )
    write_result(out, result)
    table = Table(title=f"workers on one queue ({os.cpu_count()} CPUs)")
    for column in ("workers", "drain snapshots/s", "bursts", "speedup"):
        table.add_column(column)
    first = config.counts[0]
    for count in config.counts:
        row = result["results"][f"{count}_workers"]
        speedup = result["ratios"].get(f"speedup_{count}_vs_{first}", 1.0)
        table.add_row(
            str(count),
            f"{row['drain_throughput_rps']:.0f}",
            ", ".join(f"{rate:.0f}" for rate in row["bursts_rps"]),
            f"{speedup:.2f}",
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
    with _stage_bars("batches") as (tick, progress):
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


@benchmark_app.command("cmapss")
def cmapss(
    train: Annotated[
        Path, typer.Option(help="C-MAPSS training file (train_FD001.txt), run to failure.")
    ],
    test: Annotated[
        Path | None,
        typer.Option(help="Test file (test_FD001.txt); with --rul, the standard protocol."),
    ] = None,
    rul: Annotated[
        Path | None, typer.Option(help="True RUL of each test unit (RUL_FD001.txt).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/cmapss.json"
    ),
    plot: Annotated[Path, typer.Option(help="Predicted against true RUL (PNG).")] = Path(
        "docs/img/cmapss_rul.png"
    ),
    seed: Annotated[int, typer.Option(help="Seed of split, cuts, weights and baseline.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs, a fixed count (default 50).")
    ] = None,
) -> None:
    """Remaining useful life on NASA C-MAPSS FD001: the GNN against a tree ensemble."""
    from training.benchmarks.cmapss.run import CmapssBenchConfig, run_cmapss_benchmark
    from training.benchmarks.report import command_line, write_result

    if (test is None) != (rul is None):
        raise typer.BadParameter("give --test and --rul together, or neither", param_hint="--rul")
    with _stage_bars("steps", width=10) as (tick, progress):
        try:
            result = run_cmapss_benchmark(
                CmapssBenchConfig(seed=seed)
                if epochs is None
                else CmapssBenchConfig(seed=seed, epochs=epochs),
                train_path=train,
                test_path=test,
                rul_path=rul,
                command=command_line(),
                plot_path=plot,
                tick=tick,
            )
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc)) from None
    write_result(out, result)
    evaluation = result["config"]["evaluation"]
    table = Table(
        title=f"cmapss FD001: {result['config']['evaluated_units']} {evaluation} engines "
        f"({os.cpu_count()} CPUs)",
        caption="RMSE and score at one cut per engine; RMSE over every possible cut and "
        "every window. * published FD001 test-set RMSE, not measured here",
    )
    table.add_column("model", no_wrap=True)
    for column in ("RMSE", "score", "RMSE cuts", "RMSE windows", "train s"):
        table.add_column(column, justify="right")
    for name, metrics in {**result["results"], **result["baselines"]}.items():
        table.add_row(
            name,
            *(
                f"{metrics[f'{evaluation}_{metric}']:.2f}"
                for metric in ("rmse", "score", "rmse_all_cuts", "rmse_all_windows")
            ),
            f"{metrics['training_s']:.1f}",
        )
    for name, metrics in result["published"].items():
        table.add_row(f"{name} *", f"{metrics['test_rmse']:.2f}", "", "", "", "")
    Console().print(table)
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")


@benchmark_app.command("skab")
def skab(
    data_dir: Annotated[
        Path, typer.Option(help="SKAB directory (valve1/, valve2/, other/, anomaly-free/).")
    ],
    train_rows: Annotated[
        int, typer.Option(min=1, help="Training prefix of each file; the rest is test.")
    ] = 400,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path("benchmarks/results/skab.json"),
    seed: Annotated[int, typer.Option(help="Seed of weights, shuffling and augmentation.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs, a fixed count (default 12).")
    ] = None,
    plot: Annotated[Path, typer.Option(help="Scores against labels (PNG).")] = Path(
        "docs/img/skab_scores.png"
    ),
    checkpoint: Annotated[Path, typer.Option(help="Where to save the trained model.")] = Path(
        ".gnn-data/skab/skab.gnnckpt"
    ),
    spec_out: Annotated[
        Path, typer.Option(help="The rig's spec, calibrated on anomaly-free.csv (YAML).")
    ] = Path("training/benchmarks/skab/specs/skab_pump_rig.yaml"),
) -> None:
    """Point-wise anomaly detection on SKAB: the GNN against PCA T²+Q and published results."""
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from training.benchmarks.report import command_line, write_result
    from training.benchmarks.skab.dataset import spec_yaml
    from training.benchmarks.skab.report import plot_scores, result, save_model, serving_spec
    from training.benchmarks.skab.run import PLOTTED, SkabBenchConfig, run_skab_benchmark

    config = SkabBenchConfig(train_rows=train_rows, seed=seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    console = Console(stderr=True)
    bars: dict[int, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps, loss {task.fields[loss]:.4f}"),
        console=console,
    ) as progress:

        def tick(epoch: int, total: int, step: int, steps: int, loss: float) -> None:
            if epoch not in bars:
                bars[epoch] = progress.add_task(f"epoch {epoch}/{total}", total=steps, loss=0.0)
            progress.update(bars[epoch], completed=step, loss=loss)

        try:
            run = run_skab_benchmark(config, data_dir, tick=tick, say=progress.console.log)
            spec = serving_spec(data_dir)
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    document = result(run, command=command_line(), data_dir=data_dir)
    write_result(out, document)
    sha256 = save_model(run, checkpoint, spec)
    spec_out.parent.mkdir(parents=True, exist_ok=True)
    spec_out.write_text(spec_yaml(spec), encoding="utf-8")
    plot_scores(run, plot, PLOTTED)

    table = Table(
        title=f"skab: {document['results']['gnn']['test_rows']} test rows, "
        f"first {train_rows} rows of each file train ({os.cpu_count()} CPUs)"
    )
    for column in ("detector", "F1", "FAR %", "MAR %", "training s"):
        table.add_column(column, justify="left" if column == "detector" else "right")

    def cell(metrics: dict[str, float], key: str, digits: int) -> str:
        return f"{metrics[key]:.{digits}f}" if key in metrics else ""

    rows = {
        **{f"{name} (this run)": metrics for name, metrics in document["results"].items()},
        **{f"{name} (this run)": metrics for name, metrics in document["baselines"].items()},
        **{f"{name} (published)": metrics for name, metrics in document["published"].items()},
    }
    for name, metrics in rows.items():
        table.add_row(
            name,
            cell(metrics, "f1", 3),
            cell(metrics, "far_pct", 2),
            cell(metrics, "mar_pct", 2),
            cell(metrics, "training_s", 1),
        )
    Console().print(table)
    typer.echo(f"checkpoint {checkpoint} (sha256 {sha256[:12]})")
    typer.echo(f"spec {spec_out}")
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")


@benchmark_app.command("hydraulic")
def hydraulic(
    data_dir: Annotated[
        Path, typer.Option(help="UCI hydraulic 1 Hz directory (TS1-4, VS1, CE, CP, SE, profile).")
    ],
    folds: Annotated[int, typer.Option(min=2, help="Folds of each split scheme.")] = 5,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/hydraulic.json"
    ),
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of folds and forests, and of weights and shuffling unless --train-seed."
        ),
    ] = 0,
    train_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the GNN's weights, shuffling and dropout only (default: --seed); "
            "folds and forests keep --seed, so the runs measure the GNN's seed spread."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Training epochs per fold, a fixed count (default 84)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=10, help="Use only the first N cycles (quick runs).")
    ] = None,
    plot: Annotated[Path, typer.Option(help="Per-target accuracy chart (PNG).")] = Path(
        "docs/img/hydraulic_accuracy.png"
    ),
) -> None:
    """Condition classification on the UCI hydraulic rig: the GNN against a random forest,
    grouped (headline) and random k-fold splits."""
    from dataclasses import replace

    from training.benchmarks.hydraulic.dataset import TARGETS, load_hydraulic
    from training.benchmarks.hydraulic.report import plot_accuracy
    from training.benchmarks.hydraulic.run import (
        BASELINE,
        HydraulicBenchConfig,
        run_hydraulic_benchmark,
    )
    from training.benchmarks.report import command_line, write_result

    config = HydraulicBenchConfig(folds=folds, seed=seed, train_seed=train_seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    try:
        data = load_hydraulic(data_dir, limit=limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    with _stage_bars("epochs", width=18) as (tick, progress):
        try:
            document = run_hydraulic_benchmark(data, config, command=command_line(), tick=tick)
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc)) from None
    write_result(out, document)
    plot_accuracy(document, plot)

    published = document["published"]["helwig2015_17_sensors"]
    for metric, title in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        table = Table(
            title=f"hydraulic {title}, {data.num_cycles} cycles, {folds}-fold, mean±std "
            f"({os.cpu_count()} CPUs)"
        )
        table.add_column("target")
        for scheme in config.schemes:
            table.add_column(f"{scheme} GNN", justify="right")
            table.add_column(f"{scheme} forest", justify="right")
        if metric == "accuracy":
            table.add_column("published", justify="right")
        for target in TARGETS:
            key = f"{target.name}_{metric}"
            cells = [target.name]
            for scheme in config.schemes:
                for scores in (
                    document["results"][f"gnn_{scheme}"],
                    document["baselines"][f"{BASELINE}_{scheme}"],
                ):
                    cells.append(f"{scores[key]:.3f}±{scores[f'{key}_std']:.2f}")
            if metric == "accuracy":
                cells.append(f"{published[key]:.3f}" if key in published else "")
            table.add_row(*cells)
        Console().print(table)
    seconds = {s: document["results"][f"gnn_{s}"]["training_s"] for s in config.schemes}
    typer.echo(
        "GNN training_s: "
        + ", ".join(f"{s} {v:.1f}" for s, v in seconds.items())
        + f" (total {sum(seconds.values()):.1f})"
    )
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")
