"""Rebuild the bundled model from fixed seeds, evaluate it, and write its model card.

``python -m cli.build models`` trains the ``universal`` model on every demo machine,
evaluates it per machine on freshly generated data with a seed used neither for training nor
for validation, runs the universality experiment (:mod:`training.universality`), and writes
``worker/model/bundled/universal.gnnckpt`` and ``docs/models.md``. Everything random is
seeded: the same code on the same machine gives the same weights (``created_at`` differs).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from machines import builtin_names
from training.data.demo import LabelledWindow
from training.evaluate import evaluate_windows
from training.fit import ProgressCallback, TrainConfig
from training.metrics import finite_or_none
from training.model_card import render_model_card
from training.pipeline import (
    DataPlan,
    Fitted,
    builtin_specs,
    contract_for,
    fit,
    package,
    training_record,
)
from training.universality import holdout_experiment
from worker.model import FeatureContract, ModelConfig
from worker.model.loader import CHECKPOINT_SUFFIX, library_versions, load_checkpoint

BUNDLED_DIR: Final = Path("worker/model/bundled")
MODEL_CARD: Final = Path("docs/models.md")
CALIBRATION_STRIDE_S: Final = 120.0
"""Seconds between the validation windows the status thresholds are calibrated on."""


def _default_training() -> TrainConfig:
    # The time cap is a safety net far above the ~4 min this takes on 2 idle cores; when it
    # triggers, the report says so (stop_reason) and the weights depend on the machine.
    return TrainConfig(epochs=22, patience=5, max_seconds=600.0)


def _default_universality_training() -> TrainConfig:
    return TrainConfig(epochs=10, patience=4, max_seconds=240.0)


@dataclass(frozen=True)
class BuildPlan:
    """Everything that decides the bundled model.

    Attributes:
        name: Model name.
        version: Model version.
        systems: Machines to train on.
        data: Hours, seeds and strides of the splits.
        model: Architecture.
        train: Optimisation of the bundled model.
        spread_seeds: Further unseen test seeds, to show how much the metrics vary by seed.
        holdouts: Machines of the universality experiment (one training each).
        universality_data: Data of the universality experiment.
        universality_train: Optimisation of the universality experiment.
    """

    name: str = "universal"
    version: str = "1.0.0"
    systems: tuple[str, ...] = field(default_factory=lambda: tuple(builtin_names()))
    data: DataPlan = field(default_factory=DataPlan)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=_default_training)
    spread_seeds: tuple[int, ...] = (3, 4)
    holdouts: tuple[str, ...] = field(default_factory=lambda: tuple(builtin_names()))
    universality_data: DataPlan = field(
        default_factory=lambda: DataPlan(hours=64.0, val_hours=24.0)
    )
    universality_train: TrainConfig = field(default_factory=_default_universality_training)


Say = Callable[[str], None]


def build(
    plan: BuildPlan,
    *,
    bundled_dir: Path = BUNDLED_DIR,
    model_card: Path | None = MODEL_CARD,
    say: Say | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train, evaluate and save the bundled model; run the universality experiment.

    Args:
        plan: What to build.
        bundled_dir: Where the checkpoint goes (``<name>.gnnckpt``).
        model_card: Where the model card goes (``None``: not written).
        say: Called with a line about each stage.
        progress: Training progress callback.

    Returns:
        The report the model card is rendered from (JSON-ready).
    """
    tell = say or (lambda line: None)
    started = time.perf_counter()
    specs = builtin_specs(plan.systems)
    contract = contract_for(specs)

    tell(f"generating data for {', '.join(plan.systems)}")
    train_windows = plan.data.windows(plan.systems, "train", contract)
    val_windows = plan.data.windows(plan.systems, "val", contract)
    calibration = calibration_windows(plan, plan.systems, contract)
    data_seconds = time.perf_counter() - started

    tell(f"training {plan.name} on {len(train_windows)} windows")
    fitted = fit(
        train_windows,
        val_windows,
        model_config=plan.model,
        contract=contract,
        config=plan.train,
        progress=progress,
        calibrate_on=calibration,
    )
    tell(f"evaluating on unseen seed {plan.data.test_seed}")
    evaluated = time.perf_counter()
    test_windows = plan.data.windows(plan.systems, "test", fitted.result.contract)
    test = evaluate_windows(fitted.result.model, test_windows)
    alarms = alarms_of(fitted, plan)
    spread = {plan.data.test_seed: test["overall"]}
    for seed in plan.spread_seeds:
        other = replace(plan.data, test_seed=seed).windows(
            plan.systems, "test", fitted.result.contract
        )
        spread[seed] = evaluate_windows(fitted.result.model, other)["overall"]
    test_seconds = time.perf_counter() - evaluated

    data = {
        "train": plan.data.demo(plan.systems, "train").describe(),
        "validation": plan.data.demo(plan.systems, "val").describe(),
        "test": plan.data.demo(plan.systems, "test").describe(),
        "stride_s": plan.data.stride_s,
        "eval_stride_s": plan.data.eval_stride_s,
    }
    path = bundled_dir / f"{plan.name}{CHECKPOINT_SUFFIX}"
    sha256 = package(
        fitted,
        path,
        name=plan.name,
        version=plan.version,
        specs=specs,
        training=training_record(fitted, plan.train, data, len(train_windows)),
        metrics={"validation": fitted.validation, "test_unseen_seed": test},
        description="Universal temporal GNN trained on the four demo machines.",
    )
    loaded = load_checkpoint(path)  # what ships must load
    tell(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, sha256 {sha256[:12]})")

    universality = []
    for holdout in plan.holdouts:
        tell(f"universality: training without {holdout}")
        universality.append(
            holdout_experiment(
                holdout,
                data=plan.universality_data,
                model_config=plan.model,
                train_config=plan.universality_train,
                systems=plan.systems,
                progress=progress,
            )
        )

    result = fitted.result
    report = finite_or_none(
        {
            "name": plan.name,
            "version": plan.version,
            "created_at": loaded.metadata.created_at,
            "checkpoint": str(path),
            "sha256": sha256,
            "size_bytes": path.stat().st_size,
            "parameters": result.model.num_parameters(),
            "model_config": plan.model.to_dict(),
            "train_config": asdict(plan.train),
            "data_plan": asdict(plan.data),
            "universality_data_plan": asdict(plan.universality_data),
            "universality_train_config": asdict(plan.universality_train),
            "systems": list(plan.systems),
            "train_windows": len(train_windows),
            "val_windows": len(val_windows),
            "test_windows": len(test_windows),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "stop_reason": result.stop_reason,
            "validation": fitted.validation,
            "test": test,
            "seed_spread": {str(seed): metrics for seed, metrics in spread.items()},
            "calibration": fitted.calibration,
            "alarms": alarms,
            "universality": universality,
            "residual_scale": dict(
                zip(result.contract.sensor_kinds, result.contract.residual_scales(), strict=True)
            ),
            "timings_s": {
                "data": round(data_seconds, 1),
                "training": round(result.seconds, 1),
                "test_evaluation": round(test_seconds, 1),
                "universality": round(sum(u["seconds"] for u in universality), 1),
                "total": round(time.perf_counter() - started, 1),
            },
            "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor() or platform.machine(),
                "threads": plan.train.threads,
                "libraries": library_versions(),
            },
        }
    )
    if model_card is not None:
        model_card.parent.mkdir(parents=True, exist_ok=True)
        model_card.write_text(render_model_card(report), encoding="utf-8")
        tell(f"wrote {model_card}")
    return report


def calibration_windows(
    plan: BuildPlan,
    systems: Sequence[str],
    contract: FeatureContract,
    stride_s: float = CALIBRATION_STRIDE_S,
) -> list[LabelledWindow]:
    """The validation split cut every ``stride_s``, for the status thresholds: they are
    quantiles, and denser windows give more healthy ones to take them from."""
    return replace(plan.data, eval_stride_s=stride_s).windows(systems, "val", contract)


def alarms_of(fitted: Fitted, plan: BuildPlan) -> dict[str, Any]:
    """False alarms and detection delays on the test split, with the fixed and with the
    calibrated thresholds (:mod:`training.alarms`)."""
    from service.settings import DiagnosisSettings
    from training.alarms import alarm_report
    from training.data.runs import recipe_runs

    contract = fitted.result.contract
    runs = recipe_runs(
        plan.data.demo(plan.systems, "test").recipes(),
        contract,
        stride_s=plan.data.eval_stride_s,
    )
    model, fixed = fitted.result.model, DiagnosisSettings()
    calibrated = fixed.for_model(fitted.calibration)
    return {
        "fixed": alarm_report(model, fixed, runs, calibrated=False).to_dict(),
        "calibrated": alarm_report(
            model, calibrated, runs, calibrated=calibrated is not fixed
        ).to_dict(),
    }
