"""Rebuilding the bundled model: ``python -m cli.build models`` (``make models``) and the
universality experiment, ``python -m cli.build universality --holdout excavator``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from cli.train import errors_as_lines, finite_or_none, progress_bar
from cli.training_views import metrics_table

if TYPE_CHECKING:
    from training.build_models import BuildPlan


def build_models_command(
    quick: Annotated[
        bool, typer.Option(help="A small, fast build to check the pipeline (not for shipping).")
    ] = False,
    holdout: Annotated[
        list[str] | None,
        typer.Option(help="Universality hold-out machine; repeatable (default: each one)."),
    ] = None,
    bundled_dir: Annotated[Path, typer.Option(help="Where the checkpoint goes.")] = Path(
        "worker/model/bundled"
    ),
    model_card: Annotated[Path, typer.Option(help="Where the model card goes.")] = Path(
        "docs/models.md"
    ),
) -> None:
    """Rebuild worker/model/bundled/universal.gnnckpt and docs/models.md from fixed seeds."""
    from dataclasses import replace

    from training.build_models import BuildPlan, build

    console = Console()
    plan = BuildPlan() if not quick else _quick_plan()
    if holdout:
        plan = replace(plan, holdouts=tuple(holdout))
    with errors_as_lines(), progress_bar(console) as progress:
        report = build(
            plan,
            bundled_dir=bundled_dir,
            model_card=model_card,
            say=console.print,
            progress=progress,
        )
    console.print(metrics_table("unseen seed", report["test"]))
    for result in report["universality"]:
        metrics = result["metrics"]
        console.print(
            f"universality: {result['holdout']} never seen: anomaly AUROC "
            f"{metrics['anomaly_auroc']}, fault F1 {metrics['fault_macro_f1']}"
        )
    console.print(f"build took {report['timings_s']['total']:.0f} s")


def _quick_plan() -> BuildPlan:
    from training.build_models import BuildPlan
    from training.fit import TrainConfig
    from training.pipeline import DataPlan

    data = DataPlan(hours=12.0, val_hours=6.0, test_hours=6.0, max_run_hours=2.0)
    fast = TrainConfig(epochs=2)
    return BuildPlan(data=data, train=fast, universality_data=data, universality_train=fast)


def universality_command(
    holdout: Annotated[list[str], typer.Option(help="Machine never seen in training.")],
    out: Annotated[Path | None, typer.Option(help="Write the results as JSON here.")] = None,
) -> None:
    """Train on all demo machines but HOLDOUT; report metrics on HOLDOUT."""
    from training.build_models import BuildPlan
    from training.universality import holdout_experiment

    plan = BuildPlan()
    console = Console()
    results = []
    with errors_as_lines():
        for machine in holdout:
            with progress_bar(console) as progress:
                results.append(
                    holdout_experiment(
                        machine,
                        data=plan.universality_data,
                        model_config=plan.model,
                        train_config=plan.universality_train,
                        progress=progress,
                    )
                )
            console.print(metrics_table(f"{machine}, never seen", _as_table(results[-1])))
    if out is not None:
        out.write_text(json.dumps(finite_or_none({"results": results}), indent=2), "utf-8")


def _as_table(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"per_system": {result["holdout"]: result["metrics"]}, "overall": result["metrics"]}


def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint to calibrate in place.")],
    false_alarm: Annotated[
        float, typer.Option(min=0.0001, max=0.4, help="Target share of healthy windows warned.")
    ] = 0.01,
    stride: Annotated[
        float, typer.Option(min=10.0, help="Seconds between calibration windows.")
    ] = 120.0,
) -> None:
    """Calibrate a checkpoint's status thresholds on the bundled build's validation data
    (its demo machines, validation seed) and save it again with them."""
    from training.build_models import BuildPlan, calibration_windows
    from training.calibration import describe, recalibrate
    from worker.model.loader import load_checkpoint

    plan = BuildPlan()
    console = Console()
    with errors_as_lines():
        loaded = load_checkpoint(checkpoint)
        systems = sorted(loaded.metadata.systems)
        console.print(f"generating validation data (seed {plan.data.val_seed}) for {systems}")
        windows = calibration_windows(plan, systems, loaded.contract, stride)
        calibration = recalibrate(checkpoint, windows, false_alarm=false_alarm)
    console.print(describe(calibration))


build_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
build_app.command("models")(build_models_command)
build_app.command("universality")(universality_command)
build_app.command("calibrate")(calibrate_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m cli.build``."""
    build_app(args=list(argv) if argv is not None else None, prog_name="python -m cli.build")


if __name__ == "__main__":
    main()
