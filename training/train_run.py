"""One ``gnn-service train`` run from prepared data: the GNN fitted, the same-run baseline
fitted on exactly its training windows, both scored on the validation windows, and the
training record that carries both into the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from training.calibration import DEFAULT_FALSE_ALARM
from training.comparison import Comparison, compare_models, fit_baseline
from training.data.runs import flatten
from training.fit import ProgressCallback, TrainConfig, torch_threads
from training.pipeline import Fitted, fit, training_record
from training.train_data import TrainingData
from worker.model import ModelConfig


@dataclass(frozen=True, eq=False)
class TrainingRun:
    """A trained model beside its baseline.

    Attributes:
        fitted: The GNN and its (sensor-level) validation metrics.
        comparison: The GNN and the baseline on the validation windows.
        record: The checkpoint's training record (data, split, config, comparison).
    """

    fitted: Fitted
    comparison: Comparison
    record: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        """The metrics stored with the checkpoint."""
        return {
            "validation": self.fitted.validation,
            "baseline_comparison": self.record["baseline_comparison"],
            "calibration": self.fitted.calibration,
        }


def train_and_compare(
    data: TrainingData,
    *,
    config: TrainConfig,
    model_config: ModelConfig | None = None,
    progress: ProgressCallback | None = None,
    false_alarm: float = DEFAULT_FALSE_ALARM,
    recipe: str | None = None,
) -> TrainingRun:
    """Train the GNN on ``data``, fit the baseline on the same training windows, compare.

    ``recipe`` (:mod:`training.recipes`) is recorded with the training record."""
    fitted = fit(
        flatten(data.train),
        flatten(data.val),
        model_config=model_config or ModelConfig(),
        contract=data.contract,
        config=config,
        progress=progress,
        false_alarm=false_alarm,
    )
    baseline = fit_baseline(data.train, seed=config.seed)
    with torch_threads(config.threads):
        comparison = compare_models(
            fitted.result.model,
            data.val,
            baseline,
            baseline_note=(
                f"baseline: random forest ({baseline.trees} trees, seed {config.seed}) on "
                f"per-window statistics of the same {data.train_windows} training windows"
            ),
        )
    record = training_record(
        fitted, config, data.description, data.train_windows, comparison=comparison.to_dict()
    )
    if recipe is not None:
        record["recipe"] = recipe
    return TrainingRun(fitted, comparison, record)
