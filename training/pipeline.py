"""From data to a saved checkpoint: the steps shared by ``train``, the bundled build and the
universality experiment.

:func:`fit` trains on labelled windows and evaluates on the validation windows;
:func:`package` saves the result as a checkpoint whose metadata describes the data,
the training run and the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from machines import builtin_spec
from schemas import SystemSpec
from training.calibration import DEFAULT_FALSE_ALARM, calibrate
from training.data.demo import DemoPlan, LabelledWindow, demo_windows
from training.evaluate import evaluate_windows
from training.fit import ProgressCallback, TrainConfig, TrainResult, torch_threads, train_model
from training.metrics import finite_or_none
from worker.model import FeatureContract, ModelConfig, SpecGraphCache
from worker.model.loader import CheckpointMetadata, save_checkpoint


@dataclass(frozen=True)
class DataPlan:
    """Demo data of one experiment: training, validation and test splits, each its own seed.

    Attributes:
        hours: Training hours per machine.
        val_hours: Validation hours per machine.
        test_hours: Test hours per machine.
        max_run_hours: Longest run (shorter runs: more faults per hour of data).
        seed: Training seed.
        val_seed: Validation seed.
        test_seed: Test seed (an unseen seed: neither training nor validation).
        stride_s: Seconds between training windows.
        eval_stride_s: Seconds between validation and test windows.
    """

    hours: float = 96.0
    val_hours: float = 32.0
    test_hours: float = 48.0
    max_run_hours: float = 4.0
    seed: int = 0
    val_seed: int = 1
    test_seed: int = 2
    stride_s: float = 240.0
    eval_stride_s: float = 480.0

    def demo(self, systems: Sequence[str], split: str) -> DemoPlan:
        """The demo plan of ``split`` (``train``, ``val`` or ``test``)."""
        hours, seed = {
            "train": (self.hours, self.seed),
            "val": (self.val_hours, self.val_seed),
            "test": (self.test_hours, self.test_seed),
        }[split]
        return DemoPlan(tuple(systems), hours, seed=seed, max_run_hours=self.max_run_hours)

    def windows(
        self, systems: Sequence[str], split: str, contract: FeatureContract
    ) -> list[LabelledWindow]:
        """Simulate and cut the windows of ``split``."""
        stride = self.stride_s if split == "train" else self.eval_stride_s
        return demo_windows(
            self.demo(systems, split).recipes(),
            contract,
            stride_s=stride,
            cache=SpecGraphCache(contract),
        )


def contract_for(specs: Iterable[SystemSpec], **overrides: Any) -> FeatureContract:
    """The default contract, knowing exactly the component types of ``specs`` (any other
    type maps to the shared "unknown" bucket, which training also teaches)."""
    types = sorted({component.type for spec in specs for component in spec.components})
    return FeatureContract(known_component_types=tuple(types), **overrides)


def builtin_specs(systems: Iterable[str]) -> list[SystemSpec]:
    """Specs of built-in machines, by name."""
    return [builtin_spec(system) for system in systems]


def vocabularies(specs: Iterable[SystemSpec]) -> dict[str, tuple[str, ...]]:
    """Each machine's fault vocabulary, ``("normal", *fault_ids)``."""
    return {spec.name: ("normal", *spec.fault_ids) for spec in specs}


@dataclass(frozen=True, eq=False)
class Fitted:
    """A trained model with its validation metrics.

    Attributes:
        result: The training result (model, fitted contract, history).
        validation: Metrics on the validation windows (:func:`evaluate_windows`).
        calibration: Status thresholds from the healthy validation windows
            (:func:`training.calibration.calibrate`).
    """

    result: TrainResult
    validation: dict[str, Any]
    calibration: dict[str, Any] = field(default_factory=dict)


def fit(
    train_windows: Sequence[LabelledWindow],
    val_windows: Sequence[LabelledWindow],
    *,
    model_config: ModelConfig,
    contract: FeatureContract,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    false_alarm: float = DEFAULT_FALSE_ALARM,
    calibrate_on: Sequence[LabelledWindow] | None = None,
) -> Fitted:
    """Train, then evaluate the kept weights on the validation windows and calibrate the
    status thresholds on the healthy ones of ``calibrate_on`` (default: the validation
    windows)."""
    result = train_model(
        train_windows,
        val_windows,
        model_config=model_config,
        contract=contract,
        config=config,
        progress=progress,
    )
    with torch_threads(config.threads):
        calibration = calibrate(
            result.model,
            val_windows if calibrate_on is None else calibrate_on,
            false_alarm=false_alarm,
        )
    return Fitted(result, evaluate_windows(result.model, val_windows), calibration)


def training_record(
    fitted: Fitted,
    config: TrainConfig,
    data: Mapping[str, Any],
    windows: int,
    *,
    comparison: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-ready description of the training run for the checkpoint's metadata.

    Args:
        fitted: The trained model and its validation metrics.
        config: How it was trained.
        data: What it was trained on (with the validation split, when there was one).
        windows: Training windows.
        comparison: The GNN beside the same-run baseline on the validation windows
            (:meth:`training.comparison.Comparison.to_dict`), so that a model card can
            show both.
    """
    result = fitted.result
    settings = asdict(config)
    out: dict[str, Any] = {
        "data": dict(data),
        "train_windows": windows,
        "config": settings,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 1),
        "history": [
            {
                "epoch": record.epoch,
                "train_loss": round(record.train_loss, 5),
                "val_loss": None if record.val_loss is None else round(record.val_loss, 5),
            }
            for record in result.history
        ],
    }
    if comparison is not None:
        out["baseline_comparison"] = dict(comparison)
    return out


def package(
    fitted: Fitted,
    path: str | Path,
    *,
    name: str,
    version: str,
    specs: Sequence[SystemSpec],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    description: str = "",
) -> str:
    """Save a fitted model as a checkpoint.

    Args:
        fitted: The trained model and its validation metrics.
        path: Target file.
        name: Model name.
        version: Model version.
        specs: Machines trained on.
        training: :func:`training_record` output.
        metrics: Metrics to store (default: ``{"validation": fitted.validation}``).
        description: One line for people.

    Returns:
        SHA-256 of the weights payload.
    """
    stored = {"validation": fitted.validation} if metrics is None else dict(metrics)
    metadata = CheckpointMetadata(
        name=name,
        version=version,
        systems=vocabularies(specs),
        training=finite_or_none(training),
        metrics=finite_or_none(stored),
        description=description,
        calibration=fitted.calibration if fitted.calibration.get("calibrated") else {},
    )
    return save_checkpoint(
        path, model=fitted.result.model, contract=fitted.result.contract, metadata=metadata
    )
