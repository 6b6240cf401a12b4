"""Universality: train on all demo machines but one, evaluate on the one never seen.

The held-out machine's component types are unknown to the contract (they fall into the
shared "unknown" bucket that type dropout trains), its fault modes were never labelled and
some of its sensor kinds may be new to the model. The anomaly score needs no labels, so its
AUROC is the headline; the fault, health and remaining-life metrics are reported as well,
for what they are worth on fault modes the model never saw.

Run with ``python -m cli.build universality --holdout excavator`` (or as part of
``python -m cli.build models``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from machines import builtin_names
from training.evaluate import evaluate_windows
from training.fit import ProgressCallback, TrainConfig
from training.pipeline import DataPlan, builtin_specs, contract_for, fit
from worker.model import ModelConfig


def holdout_experiment(
    holdout: str,
    *,
    data: DataPlan,
    model_config: ModelConfig,
    train_config: TrainConfig,
    systems: Sequence[str] | None = None,
    progress: ProgressCallback | None = None,
) -> dict[str, Any]:
    """Train on ``systems`` minus ``holdout``; evaluate on ``holdout`` with the test seed.

    Args:
        holdout: The machine kept out of training.
        data: Hours, seeds and strides (the test split is generated for ``holdout`` only).
        model_config: Architecture.
        train_config: Optimisation settings.
        systems: Machines to choose from (default: every built-in machine).
        progress: Training progress callback.

    Returns:
        ``{"holdout", "trained_on", "metrics" (on the held-out machine),
        "seen_validation" (overall validation metrics on the training machines),
        "unseen_sensor_kinds", "seconds"}``.

    Raises:
        ValueError: ``holdout`` is not among ``systems``, or nothing is left to train on.
    """
    started = time.perf_counter()
    pool = list(systems or builtin_names())
    if holdout not in pool:
        raise ValueError(f"unknown holdout machine {holdout!r}; choose from {', '.join(pool)}")
    trained_on = [system for system in pool if system != holdout]
    if not trained_on:
        raise ValueError("the universality experiment needs at least one machine to train on")
    specs = builtin_specs(trained_on)
    contract = contract_for(specs)
    fitted = fit(
        data.windows(trained_on, "train", contract),
        data.windows(trained_on, "val", contract),
        model_config=model_config,
        contract=contract,
        config=train_config,
        progress=progress,
    )
    unseen = evaluate_windows(
        fitted.result.model, data.windows([holdout], "test", fitted.result.contract)
    )
    seen_kinds = {sensor.kind for spec in specs for sensor in spec.sensors}
    holdout_kinds = {sensor.kind for sensor in builtin_specs([holdout])[0].sensors}
    return {
        "holdout": holdout,
        "trained_on": trained_on,
        "metrics": unseen["per_system"][holdout],
        "seen_validation": fitted.validation["overall"],
        "unseen_sensor_kinds": sorted(holdout_kinds - seen_kinds),
        "epochs_run": len(fitted.result.history),
        "seconds": round(time.perf_counter() - started, 1),
    }
