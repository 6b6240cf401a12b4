"""Commands over :mod:`training` and the model registry: ``train``, ``evaluate``, ``models``.

The root CLI mounts :func:`train` and :func:`evaluate` as commands and :data:`models_app` as
the ``models`` group (which finds the data directory in the root context's ``Settings``).
Bad input ends a command with one line on stderr: exit status 2 for a bad option, 1 for a
file or registry that cannot be used. Rebuilding the bundled model (``python -m cli.build
models``) is in :mod:`cli.build`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.errors import require_extra

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from training.fit import ProgressCallback
    from worker.model_store import DatabaseRegistry

models_app = typer.Typer(
    name="models",
    help="Model registry: list, register, activate and roll back model versions.",
    no_args_is_help=True,
    add_completion=False,
)

_HEADS = (
    ("fault_macro_f1", "fault F1", "{:.3f}"),
    ("health_mae", "health MAE", "{:.3f}"),
    ("rul_mae_hours", "RUL MAE h", "{:.0f}"),
    ("anomaly_auroc", "anomaly AUROC", "{:.3f}"),
    ("anomaly_auroc_developed", "AUROC developed", "{:.3f}"),
)
SystemsOption = Annotated[
    list[str] | None,
    typer.Option("--system", "-s", help="Built-in machine to generate data for; repeatable."),
]
DataOption = Annotated[
    list[Path] | None,
    typer.Option("--data", help="Run file (.parquet or .csv, docs/data-format.md); repeatable."),
]


def finite_or_none(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready metrics (``nan`` becomes ``null``)."""
    from training.metrics import finite_or_none as convert

    return convert(metrics)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@contextmanager
def errors_as_lines() -> Iterator[None]:
    """Turn the errors a user can cause into one line on stderr and an exit status (2 for a
    bad option value, 1 for a file, checkpoint or registry that cannot be used)."""
    from machines import DurationError, FaultSpecError, RunFormatError, UnknownMachineError
    from service.errors import ConfigurationError

    try:
        yield
    except (UnknownMachineError, DurationError, FaultSpecError) as exc:
        _fail(str(exc).strip("'\""), 2)
    except (ConnectionError, TimeoutError):
        raise  # a server that cannot be reached: the entry point's one line and exit status 3
    except (ConfigurationError, RunFormatError, OSError) as exc:
        _fail(str(exc))


def _hours(text: str) -> float:
    from machines import parse_duration

    hours = parse_duration(text) / 3600.0
    if hours <= 0:
        _fail(f"--generate must be a positive duration, got {text!r}", 2)
    return hours


def metrics_table(title: str, metrics: Mapping[str, Any]) -> Table:
    """The headline metrics per machine and overall, from :func:`evaluate_windows` output."""
    table = Table(title=title)
    table.add_column("machine")
    for _, header, _ in _HEADS:
        table.add_column(header, justify="right")
    rows = [*sorted(metrics["per_system"].items()), ("all", metrics["overall"])]
    for system, values in rows:
        cells = [
            "n/a" if values.get(key) is None else fmt.format(values[key]) for key, _, fmt in _HEADS
        ]
        table.add_row(system, *cells)
    return table


@contextmanager
def progress_bar(console: Console) -> Iterator[ProgressCallback]:
    """A rich progress bar, as a training progress callback."""
    from training.fit import TrainProgress

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("training", total=None)

        def update(state: TrainProgress) -> None:
            if state.step == 1 and state.val_loss is None:
                progress.reset(task, total=state.steps, description=f"epoch {state.epoch}")
            text = f"epoch {state.epoch}/{state.epochs} loss {state.train_loss:.3f}"
            if state.val_loss is not None:
                text += f" val {state.val_loss:.3f} best {state.best_val_loss:.3f}"
            progress.update(task, completed=state.step, description=text)

        yield update


def train(
    out: Annotated[Path, typer.Option("--out", help="Directory for the checkpoint and metrics.")],
    system: SystemsOption = None,
    data: DataOption = None,
    generate: Annotated[
        str, typer.Option(help="Simulated hours per --system machine (e.g. 48h).")
    ] = "48h",
    seed: Annotated[int, typer.Option(help="Seed of data, initialisation and shuffling.")] = 0,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs.")] = 20,
    name: Annotated[str, typer.Option(help="Model name.")] = "universal",
    version: Annotated[str | None, typer.Option(help="Model version (default: UTC time).")] = None,
    stride: Annotated[float, typer.Option(min=1.0, help="Seconds between windows.")] = 240.0,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads.")] = 2,
    time_budget: Annotated[
        float | None, typer.Option(min=1.0, help="Stop after the epoch passing this many seconds.")
    ] = None,
) -> None:
    """Train a model on demo machines (--system) and/or run files (--data).

    Generated data is validated on runs of another seed (seed + 1); every fifth window of
    the run files validates.
    """
    require_extra("train")
    from dataclasses import replace

    from machines import read_run
    from training.data.demo import describe_files, label_windows
    from training.fit import TrainConfig
    from training.pipeline import DataPlan, builtin_specs, contract_for, fit, package
    from training.pipeline import training_record as record
    from worker.model import ModelConfig
    from worker.model.loader import CHECKPOINT_SUFFIX
    from worker.model.registry import check_name, check_version

    console = Console()
    if not system and not data:
        _fail("give at least one --system or --data", 2)
    with errors_as_lines():
        check_name(name)
        tag = check_version(version or datetime.now(UTC).strftime("%Y%m%d.%H%M%S"))
        systems = list(dict.fromkeys(system or []))
        hours = _hours(generate)
        runs = [read_run(path) for path in data or []]
        specs = list(
            {s.name: s for s in [*builtin_specs(systems), *(r.spec for r in runs)]}.values()
        )
        contract = contract_for(specs)
        description: dict[str, Any] = {}
        train_windows, val_windows = [], []
        if systems:
            plan = replace(DataPlan(), hours=hours, val_hours=hours / 3, stride_s=stride)
            plan = replace(plan, seed=seed, val_seed=seed + 1)
            console.print(f"generating {generate} per machine for {', '.join(systems)}")
            train_windows += plan.windows(systems, "train", contract)
            val_windows += plan.windows(systems, "val", contract)
            description["demo"] = plan.demo(systems, "train").describe()
        if runs:
            windows = [w for run in runs for w in label_windows(run, contract, stride_s=stride)]
            val_windows += windows[::5]
            train_windows += [window for index, window in enumerate(windows) if index % 5]
            description["files"] = describe_files(data or [], runs)
        if not train_windows or not val_windows:
            _fail("the data is too short for a training and a validation window")
        config = TrainConfig(epochs=epochs, seed=seed, threads=threads, max_seconds=time_budget)
        with progress_bar(console) as progress:
            fitted = fit(
                train_windows,
                val_windows,
                model_config=ModelConfig(),
                contract=contract,
                config=config,
                progress=progress,
            )
        training = record(fitted, config, description, len(train_windows))
        path = out / f"{name}{CHECKPOINT_SUFFIX}"
        sha256 = package(fitted, path, name=name, version=tag, specs=specs, training=training)
        metrics_path = out / f"{name}.metrics.json"
        metrics_path.write_text(
            json.dumps(
                finite_or_none({"validation": fitted.validation, "training": training}), indent=2
            ),
            encoding="utf-8",
        )
    console.print(metrics_table("validation metrics", fitted.validation))
    console.print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, weights sha256 {sha256[:12]}) "
        f"and {metrics_path}"
    )


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (.gnnckpt).")],
    data: DataOption = None,
    system: SystemsOption = None,
    generate: Annotated[str, typer.Option(help="Simulated hours per machine.")] = "12h",
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 2,
    stride: Annotated[float, typer.Option(min=1.0, help="Seconds between windows.")] = 480.0,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the metrics here.")
    ] = None,
) -> None:
    """Evaluate a checkpoint on run files or on freshly generated demo data."""
    require_extra("evaluate")
    from training.data.demo import DemoPlan, demo_windows, file_windows
    from training.evaluate import evaluate_windows
    from worker.model.loader import load_checkpoint

    console = Console()
    with errors_as_lines():
        loaded = load_checkpoint(checkpoint)
        if data:
            windows, _ = file_windows(data, loaded.contract, stride_s=stride)
        else:
            systems = list(dict.fromkeys(system or sorted(loaded.metadata.systems)))
            plan = DemoPlan(tuple(systems), _hours(generate), seed=seed, max_run_hours=4.0)
            windows = demo_windows(plan.recipes(), loaded.contract, stride_s=stride)
        if not windows:
            _fail("the data is too short for one window")
        metrics = evaluate_windows(loaded.model, windows)
        if json_out is not None:
            json_out.write_text(json.dumps(finite_or_none(metrics), indent=2), encoding="utf-8")
    title = f"{loaded.name} {loaded.version} on {len(windows)} windows"
    console.print(metrics_table(title, metrics))


def _registry(ctx: typer.Context) -> AbstractContextManager[DatabaseRegistry]:
    from service.settings import Settings
    from worker.model_store import open_registry

    settings = ctx.find_root().obj
    if not isinstance(settings, Settings):
        _fail("no settings in the command context (run through gnn-service)", 2)
    return open_registry(settings)


@models_app.command("list")
def models_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model.")] = None,
) -> None:
    """List registered model versions and the bundled checkpoints."""
    from worker.model.registry import bundled_checkpoints

    with errors_as_lines(), _registry(ctx) as registry:
        versions = registry.list_versions(name)
        table = Table(title=f"models in {registry.location}")
        for column in ("name", "version", "status", "created", "sha256", "size KiB"):
            table.add_column(column, justify="right" if column == "size KiB" else "left")
        for item in versions:
            table.add_row(
                item.name,
                item.version,
                item.status.value,
                item.created_at,
                item.sha256[:12],
                f"{item.size_bytes / 1024:.0f}",
            )
        console = Console()
        console.print(table if versions else f"no registered models in {registry.location}")
        for bundled, path in bundled_checkpoints().items():
            if name is None or bundled == name:
                console.print(f"bundled: {bundled} ({path})")


@models_app.command("register")
def models_register(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Checkpoint file (.gnnckpt).")],
    name: Annotated[str | None, typer.Option(help="Name (default: the checkpoint's).")] = None,
    version: Annotated[
        str | None, typer.Option(help="Version (default: the checkpoint's).")
    ] = None,
) -> None:
    """Verify a checkpoint and copy it into the registry as staged."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.register(path, name=name, version=version)
    typer.echo(f"registered {item.name} {item.version} ({item.status.value}) at {item.path}")


@models_app.command("activate")
def models_activate(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Argument(help="Version to serve.")],
) -> None:
    """Make VERSION the active version of NAME (workers switch between batches)."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.activate(name, version)
    typer.echo(f"activated {item.name} {item.version}")
    _tell_workers(ctx)


@models_app.command("rollback")
def models_rollback(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """Re-activate the previously active version of NAME; the current one is retired."""
    with errors_as_lines(), _registry(ctx) as registry:
        item = registry.rollback(name)
    typer.echo(f"rolled back {item.name} to {item.version}")
    _tell_workers(ctx)


def _tell_workers(ctx: typer.Context) -> None:
    """Ask every worker to check the registry now; they also check on their own within
    GNN_MODEL__REGISTRY_CHECK_INTERVAL_S, so a broker that cannot be reached is no error."""
    from service.embedded import EmbeddedRedis
    from worker.app import create_app

    settings = ctx.find_root().obj
    if settings.broker.url is None and not EmbeddedRedis(settings.data_dir).is_running():
        return  # no embedded broker running: no worker to tell, and none is started for it
    try:
        app = create_app(settings)
        replies = app.control.broadcast("gnn_check_model", reply=True, timeout=1.0)
        app.close()
    except Exception as exc:  # the activation stands; workers poll the registry anyway
        typer.echo(f"workers not told directly ({exc}); they check the registry themselves")
        return
    typer.echo(f"{len(replies)} worker(s) told to check the registry")
