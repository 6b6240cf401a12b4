from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from machines import builtin_spec
from training.data.demo import LabelledWindow, collate_labelled
from training.evaluate import evaluate_windows
from training.fit import TrainConfig, TrainProgress, train_model
from training.pipeline import fit, package, training_record
from worker.model import FeatureContract, ModelConfig, load_checkpoint

FAST = TrainConfig(epochs=6, batch_size=12, learning_rate=5e-3, patience=6, threads=1)


def test_training_lowers_the_loss_and_keeps_the_best_epoch(
    leak_windows: list[LabelledWindow],
    other_windows: list[LabelledWindow],
    contract: FeatureContract,
    tiny_config: ModelConfig,
) -> None:
    reports: list[TrainProgress] = []
    result = train_model(
        leak_windows,
        other_windows,
        model_config=tiny_config,
        contract=contract,
        config=FAST,
        progress=reports.append,
    )
    history = result.history
    assert len(history) == FAST.epochs
    assert history[-1].train_loss < history[0].train_loss
    assert result.best_val_loss == min(record.val_loss for record in history)
    assert not result.model.training
    epoch_ends = [r for r in reports if r.val_loss is not None]
    assert [r.epoch for r in epoch_ends] == list(range(1, FAST.epochs + 1))
    assert reports[0].step == 1
    assert reports[0].steps == math.ceil(len(leak_windows) / 12)


def test_residual_scales_are_fitted_so_healthy_scores_average_one(
    leak_windows: list[LabelledWindow], contract: FeatureContract, tiny_config: ModelConfig
) -> None:
    result = train_model(
        leak_windows,
        leak_windows[:5],
        model_config=tiny_config,
        contract=contract,
        config=TrainConfig(epochs=1, batch_size=16, threads=1),
    )
    scales = result.contract.residual_scales()
    assert result.contract.residual_scale is not None
    assert all(s > 0 for s in scales)
    healthy = [w for w in leak_windows if w.healthy]
    batch = collate_labelled(healthy).batch
    with torch.inference_mode():
        score = result.model(batch).sensor_anomaly
    observed = batch.mask[:, -contract.forecast_horizon :].sum(dim=1) > 0
    for kind in {sensor.kind for sensor in builtin_spec("excavator").sensors}:
        chosen = (batch.sensor_kind == contract.kind_index(kind)) & observed
        assert float(score[chosen].mean()) == pytest.approx(1.0, rel=1e-3)


def test_training_is_deterministic_for_a_seed(
    leak_windows: list[LabelledWindow],
    other_windows: list[LabelledWindow],
    contract: FeatureContract,
    tiny_config: ModelConfig,
) -> None:
    config = TrainConfig(epochs=2, batch_size=16, threads=1, seed=7)
    runs = [
        train_model(
            leak_windows, other_windows, model_config=tiny_config, contract=contract, config=config
        )
        for _ in range(2)
    ]
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert runs[0].contract == runs[1].contract


def test_a_trained_model_is_saved_evaluated_and_loaded_back_unchanged(
    tmp_path: Path,
    leak_windows: list[LabelledWindow],
    other_windows: list[LabelledWindow],
    contract: FeatureContract,
    tiny_config: ModelConfig,
) -> None:
    fitted = fit(
        leak_windows, other_windows, model_config=tiny_config, contract=contract, config=FAST
    )
    metrics = fitted.validation["per_system"]["excavator"]
    assert set(metrics) >= {"fault_macro_f1", "health_mae", "rul_mae_hours", "anomaly_auroc"}
    assert 0.0 <= metrics["anomaly_auroc"] <= 1.0
    record = training_record(fitted, FAST, {"source": "test"}, len(leak_windows))
    path = tmp_path / "tiny.gnnckpt"
    sha = package(
        fitted,
        path,
        name="tiny",
        version="0.1",
        specs=[builtin_spec("excavator")],
        training=record,
    )
    loaded = load_checkpoint(path)
    assert loaded.sha256 == sha
    assert loaded.contract == fitted.result.contract
    assert loaded.metadata.systems["excavator"][0] == "normal"
    assert loaded.metadata.training["epochs_run"] == FAST.epochs
    batch = collate_labelled(other_windows).batch
    with torch.inference_mode():
        before, after = fitted.result.model(batch), loaded.model(batch)
    for field in fields(before):
        assert torch.equal(getattr(before, field.name), getattr(after, field.name))
    again = evaluate_windows(loaded.model, other_windows)
    assert np.isclose(
        again["overall"]["anomaly_auroc"], fitted.validation["overall"]["anomaly_auroc"]
    )
