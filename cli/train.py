"""Commands over :mod:`training` and the model registry: ``train``, ``evaluate``, ``models``.

The root CLI mounts :func:`train` and :func:`evaluate` as commands and :data:`models_app` as
the ``models`` group (which finds the data directory in the root context's ``Settings``).
Bad input ends a command with one line on stderr: exit status 2 for a bad option, 1 for a
file or registry that cannot be used. Rebuilding the bundled model (``python -m cli.build
models``) is in :mod:`cli.build`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.errors import require_extra
from cli.training_views import (
    describe_score,
    metrics_table,
    print_comparison,
    run_table,
    say,
)

if TYPE_CHECKING:
    from training.fit import ProgressCallback, TrainConfig
    from training.recipes import Recipe
    from training.train_data import DataRequest, TrainingData
    from training.train_run import TrainingRun

SystemsOption = Annotated[
    list[str] | None,
    typer.Option("--system", "-s", help="Built-in machine to generate data for; repeatable."),
]
DataOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        help="Run file (.parquet or .csv, docs/data-format.md), or a folder of them; repeatable.",
    ),
]


def run_files(paths: Sequence[Path] | None) -> list[Path]:
    """``--data`` paths with each folder replaced by its run files (``*.parquet``,
    ``*.csv``), in name order.

    Raises:
        typer.BadParameter: A folder without run files.
    """
    files: list[Path] = []
    for path in paths or []:
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".csv"))
        if not found:
            raise typer.BadParameter(
                f"{path} holds no .parquet or .csv run file", param_hint="--data"
            )
        files += found
    return files


def _train_choosing_scaling(
    console: Console,
    request: DataRequest,
    scalings: Sequence[str],
    *,
    config: TrainConfig,
    recipe: Recipe,
    false_alarm: float,
) -> tuple[TrainingData, TrainingRun]:
    """Train once per input scaling and keep the run better on the validation runs (by
    :attr:`~training.comparison.Comparison.score`; a tie keeps the first)."""
    from training.train_data import prepare
    from training.train_run import train_and_compare

    said: set[str] = set()
    tried = []
    for scaling in scalings:
        prepared = prepare(replace(request, input_scaling=scaling))
        for note in prepared.notes:
            if note not in said:
                say(console, note)
        said.update(prepared.notes)
        with progress_bar(console) as progress:
            run = train_and_compare(
                prepared, config=config, model_config=recipe.model, progress=progress,
                false_alarm=false_alarm, recipe=recipe.name,
            )  # fmt: skip
        tried.append((run.comparison.score, scaling, prepared, run))
        if len(scalings) > 1:
            say(console, f"input scaling {scaling}: {describe_score(run.comparison)}")
    best = max(range(len(tried)), key=lambda i: tried[i][0])  # a tie keeps the first
    _, scaling, prepared, run = tried[best]
    run.record["input_scaling"] = {
        "chosen": scaling,
        "validation_score": {
            item[1]: item[0] if math.isfinite(item[0]) else None for item in tried
        },
    }
    if len(scalings) > 1:
        say(console, f"input scaling: {scaling} (better on the validation runs)")
    return prepared, run


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
    from training.errors import TrainingDataError, WindowOptionError

    try:
        yield
    except (UnknownMachineError, DurationError, FaultSpecError, WindowOptionError) as exc:
        _fail(str(exc).strip("'\""), 2)
    except TrainingDataError as exc:
        _fail(str(exc))
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


StrideOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Model steps between window starts, at the model's rate (like produce --stride); "
        "default: one window length (no overlap); generated runs: 240 s worth.",
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Exit 1 after a WARNING: the GNN not better than the baseline, flat outputs, "
        "or (evaluate) evaluated runs that were trained on.",
    ),
]


def train(
    out: Annotated[Path, typer.Option("--out", help="Directory for the checkpoint and metrics.")],
    system: SystemsOption = None,
    data: DataOption = None,
    generate: Annotated[
        str, typer.Option(help="Simulated hours per --system machine (e.g. 48h).")
    ] = "48h",
    seed: Annotated[
        int, typer.Option(help="Seed of data, validation runs, initialisation, shuffling.")
    ] = 0,
    recipe: Annotated[
        str | None,
        typer.Option(
            help="Architecture and schedule: 'machine' (a model of one machine, the default "
            "with run files only) or 'universal' (the default when demo data is generated); "
            "docs/models.md."
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Most epochs (default: the recipe's, 120 or 20).")
    ] = None,
    input_scaling: Annotated[
        str | None,
        typer.Option(
            help="How readings of run files become model inputs: 'quantiles' (by the training "
            "runs' quantiles of each sensor), 'range' (by the spec's normal range) or 'auto' "
            "(train both, keep the one better on the validation runs); default: the recipe's "
            "(machine: auto, universal: range)."
        ),
    ] = None,
    name: Annotated[str, typer.Option(help="Model name.")] = "universal",
    version: Annotated[str | None, typer.Option(help="Model version (default: UTC time).")] = None,
    stride: StrideOption = None,
    window_steps: Annotated[
        int | None,
        typer.Option(
            min=1, help="Steps of the model's window (default: 60, fewer for shorter runs)."
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="The model's rate in Hz (default: the run files' lowest rate, at most the "
            "fastest sensor's)."
        ),
    ] = None,
    val_runs: Annotated[
        int | None, typer.Option(min=1, help="Run files held out whole for validation.")
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(help="Share of run files held out whole for validation (default 0.2)."),
    ] = None,
    strict: StrictOption = False,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads.")] = 2,
    time_budget: Annotated[
        float | None, typer.Option(min=1.0, help="Stop after the epoch passing this many seconds.")
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(
            min=1e-6,
            max=1.0,
            help="AdamW learning rate, cosine-decayed (default: the recipe's, 0.01 or 0.002).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Windows per optimiser step (default: the recipe's, 64 or 32)."),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Epochs without a better validation loss before stopping (default: the "
            "recipe's, 15 or 5).",
        ),
    ] = None,
    faulty_weight: Annotated[
        float | None,
        typer.Option(
            min=1.0,
            help="Weight of components with an active fault in the fault and remaining-life "
            "terms (class weighting: most windows are healthy; default 4).",
        ),
    ] = None,
    false_alarm: Annotated[
        float,
        typer.Option(
            min=0.0001, max=0.4, help="Share of healthy windows the calibrated statuses warn."
        ),
    ] = 0.01,
) -> None:
    """Train a model on demo machines (--system) and/or run files (--data).

    Run files validate on whole runs held out by --seed (about 1 in 5, at least one; a single
    file is split in time with a gap of one window). Generated data validates on runs of
    another seed (seed + 1). A random forest on per-window statistics, fitted on the same
    training windows, is scored beside the GNN.
    """
    require_extra("train")
    from machines import read_run
    from training.calibration import describe as describe_calibration
    from training.pipeline import package
    from training.recipes import INPUT_SCALINGS, RECIPES, default_recipe, scalings_to_try, schedule
    from training.train_data import DataRequest
    from worker.model.loader import CHECKPOINT_SUFFIX
    from worker.model.registry import check_name, check_version

    console = Console()
    data = run_files(data)
    if not system and not data:
        _fail("give at least one --system or --data", 2)
    if val_runs is not None and val_fraction is not None:
        _fail("give --val-runs or --val-fraction, not both", 2)
    if recipe is not None and recipe not in RECIPES:
        _fail(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}", 2)
    if input_scaling is not None and input_scaling not in INPUT_SCALINGS:
        _fail(
            f"--input-scaling must be one of {', '.join(INPUT_SCALINGS)}, got {input_scaling!r}", 2
        )
    chosen = RECIPES[recipe] if recipe else default_recipe(generated=bool(system))
    with errors_as_lines():
        check_name(name)
        tag = check_version(version or datetime.now(UTC).strftime("%Y%m%d.%H%M%S"))
        request = DataRequest(
            systems=tuple(dict.fromkeys(system or [])),
            hours=_hours(generate),
            seed=seed,
            files=tuple((path, read_run(path)) for path in data or []),
            window_steps=window_steps,
            rate_hz=rate,
            stride_steps=stride,
            val_runs=val_runs,
            val_fraction=val_fraction,
            max_horizon=chosen.max_horizon,
        )
        say(console, f"recipe: {chosen.name}" + ("" if recipe else " (the default for this data)"))
        config = schedule(
            chosen, epochs=epochs, seed=seed, threads=threads, max_seconds=time_budget,
            learning_rate=learning_rate, batch_size=batch_size, patience=patience,
            faulty_weight=faulty_weight,
        )  # fmt: skip
        scalings = scalings_to_try(input_scaling or chosen.input_scaling, generated=bool(system))
        prepared, run = _train_choosing_scaling(
            console, request, scalings, config=config, recipe=chosen, false_alarm=false_alarm
        )
        path = out / f"{name}{CHECKPOINT_SUFFIX}"
        sha256 = package(
            run.fitted, path, name=name, version=tag, specs=prepared.specs,
            training=run.record, metrics=run.metrics,
        )  # fmt: skip
        metrics_path = out / f"{name}.metrics.json"
        everything = {**run.metrics, "training": run.record}
        metrics_path.write_text(json.dumps(finite_or_none(everything), indent=2), "utf-8")
    console.print(metrics_table("GNN validation metrics (sensor level)", run.fitted.validation))
    print_comparison(console, "validation: GNN and baseline on the same windows", run.comparison)
    console.print(describe_calibration(run.fitted.calibration))
    console.print(
        f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, weights sha256 {sha256[:12]}) "
        f"and {metrics_path}"
    )
    if strict and run.comparison.warnings:
        raise typer.Exit(1)


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint file (.gnnckpt).")],
    data: DataOption = None,
    system: SystemsOption = None,
    generate: Annotated[str, typer.Option(help="Simulated hours per machine.")] = "12h",
    seed: Annotated[int, typer.Option(help="Seed of the generated data and baseline.")] = 2,
    stride: StrideOption = None,
    baseline_from: Annotated[
        list[Path] | None,
        typer.Option(
            "--baseline-from",
            help="Run file, or folder of them, to fit the baseline on (default: the "
            "checkpoint's recorded training files, when they still exist); repeatable.",
        ),
    ] = None,
    strict: StrictOption = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the metrics here.")
    ] = None,
) -> None:
    """Evaluate a checkpoint on run files or on freshly generated demo data, per run and
    overall, beside a random forest on per-window statistics."""
    require_extra("evaluate")
    from machines import read_run
    from service.settings import Settings
    from training.alarms import alarm_report
    from training.data.demo import DemoPlan
    from training.data.runs import cut_runs, gaps_note, recipe_runs, run_names, too_short_message
    from training.evaluate_runs import evaluate_runs
    from worker.model.loader import load_checkpoint

    console = Console()
    data, baseline_from = run_files(data), run_files(baseline_from) or None
    with errors_as_lines():
        loaded = load_checkpoint(checkpoint)
        contract = loaded.contract
        steps = stride or contract.window_steps
        stride_s = steps / contract.sample_rate_hz
        short: list[Any] = []
        if data:
            named = [(n, read_run(p)) for n, p in zip(run_names(data), data, strict=True)]
            runs, short = cut_runs(named, contract, stride_s=stride_s, paths=data)
            console.print(
                f"run files: {len(runs)} of {len(named)} give windows (stride {steps} steps)"
            )
            for line in [*(item.describe() for item in short), gaps_note(runs)]:
                if line:
                    say(console, f"  {line}")
            if not runs:
                _fail(too_short_message(short, contract))
        else:
            systems = list(dict.fromkeys(system or sorted(loaded.metadata.systems)))
            plan = DemoPlan(tuple(systems), _hours(generate), seed=seed, max_run_hours=4.0)
            runs = recipe_runs(plan.recipes(), contract, stride_s=stride_s)
            if not runs:
                _fail("the data is too short for one window")
        result = evaluate_runs(
            loaded.model, contract, loaded.metadata.training, runs,
            baseline_from=baseline_from or (), stride_s=stride_s, seed=seed,
        )  # fmt: skip
        rules = Settings().diagnosis
        alarms = alarm_report(
            loaded.model, rules.for_model(loaded.metadata.calibration), runs,
            calibrated=rules.calibrated and bool(loaded.metadata.calibration.get("calibrated")),
        )  # fmt: skip
        if json_out is not None:
            report = {
                **result.to_dict(), "alarms": alarms.to_dict(),
                "short_runs": [vars(item) for item in short],
            }  # fmt: skip
            json_out.write_text(json.dumps(finite_or_none(report), indent=2), encoding="utf-8")
    windows = result.metrics["windows"]
    title = f"{loaded.name} {loaded.version} on {windows} windows (sensor level)"
    console.print(metrics_table(title, result.metrics))
    for warning in result.overlap:
        say(console, f"WARNING: {warning}")
    print_comparison(console, "GNN and baseline on the same windows", result.comparison)
    console.print(run_table(result.comparison))
    console.print(alarms.describe())
    if strict and result.warnings:
        raise typer.Exit(1)
