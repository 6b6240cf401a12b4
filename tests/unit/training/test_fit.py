"""The one training loop (:func:`training.fit.fit`) and the product's trainer built on it."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import Tensor

from machines import builtin_spec
from training import pipeline
from training.batches import ShuffledBatches
from training.data.demo import LabelledWindow, collate_labelled
from training.evaluate import evaluate_windows
from training.fit import (
    FitConfig,
    TrainConfig,
    TrainProgress,
    Validation,
    fit,
    train_model,
)
from worker.model import FeatureContract, ModelConfig, load_checkpoint

Rows = tuple[Tensor, Tensor]

# --- the loop, on a small linear regression ---------------------------------------------------


def _regression(count: int = 64) -> Rows:
    """``y = x w + 0.3`` for seeded normal ``x``.

    Shapes:
        returned: ``[count, 3]``, ``[count]``.
    """
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(count, 3)).astype(np.float32))
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3


def _batches(data: Rows) -> ShuffledBatches[Rows]:
    """Seeded shuffled batches of 16 rows."""
    x, y = data

    def make(rows: npt.NDArray[np.int64]) -> Rows:
        index = torch.from_numpy(rows)
        return x[index], y[index]

    return ShuffledBatches(len(x), 16, make, np.random.default_rng(0))


def _mse(model: torch.nn.Module, rows: Rows) -> Tensor:
    x, y = rows
    return torch.mean((model(x).squeeze(1) - y) ** 2)


def _linear() -> torch.nn.Linear:
    return torch.nn.Linear(3, 1)


def _scripted(
    scores: list[float], snapshots: list[dict[str, Tensor]], direction: str = "min"
) -> Validation[torch.nn.Linear]:
    """A validation that reads ``scores`` in turn and keeps a copy of each epoch's weights."""
    remaining: Iterator[float] = iter(scores)

    def score(model: torch.nn.Linear) -> dict[str, float]:
        snapshots.append(copy.deepcopy(model.state_dict()))
        return {"loss": next(remaining), "other": -1.0}

    return Validation(score, key="loss", direction="max" if direction == "max" else "min")


def test_fit_lowers_the_loss_and_is_deterministic_for_a_seed() -> None:
    data = _regression()
    config = FitConfig(epochs=15, learning_rate=0.05, weight_decay=0.0, seed=3)
    first = fit(_linear, _batches(data), _mse, config)
    again = fit(_linear, _batches(data), _mse, config)
    other = fit(
        _linear,
        _batches(data),
        _mse,
        FitConfig(epochs=15, learning_rate=0.05, weight_decay=0.0, seed=4),
    )

    assert first.train_losses[-1] < first.train_losses[0] / 10
    assert not first.model.training
    assert (first.best_epoch, first.stop_reason) == (15, "epochs")
    assert torch.equal(first.model.weight, again.model.weight)
    assert not torch.equal(first.model.weight, other.model.weight)


@pytest.mark.parametrize(("direction", "kept"), [("min", 2), ("max", 3)])
def test_the_weights_of_the_best_validation_epoch_are_kept(direction: str, kept: int) -> None:
    snapshots: list[dict[str, Tensor]] = []
    validation = _scripted([3.0, 1.0, 4.0, 2.0], snapshots, direction)
    config = FitConfig(epochs=4, learning_rate=0.05, weight_decay=0.0)

    result = fit(_linear, _batches(_regression()), _mse, config, validation=validation)

    assert result.best_epoch == kept
    state = result.model.state_dict()
    assert all(torch.equal(state[key], snapshots[kept - 1][key]) for key in state)
    assert not torch.equal(state["weight"], snapshots[-1]["weight"])
    assert [record.val_loss for record in result.history] == [3.0, 1.0, 4.0, 2.0]
    assert result.history[0].val_terms == {"loss": 3.0, "other": -1.0}


def test_a_validation_that_only_records_keeps_the_last_epoch_and_never_stops_early() -> None:
    snapshots: list[dict[str, Tensor]] = []
    scripted = _scripted([3.0, 1.0, 4.0, 5.0], snapshots)
    validation = Validation(scripted.score, key="loss", keep_best=False)
    config = FitConfig(epochs=4, learning_rate=0.05, weight_decay=0.0, patience=1)

    result = fit(_linear, _batches(_regression()), _mse, config, validation=validation)

    assert (len(result.history), result.best_epoch, result.stop_reason) == (4, 4, "epochs")
    state = result.model.state_dict()
    assert all(torch.equal(state[key], snapshots[-1][key]) for key in state)
    assert [record.val_loss for record in result.history] == [3.0, 1.0, 4.0, 5.0]


def test_patience_stops_after_epochs_without_a_better_score() -> None:
    validation = _scripted([1.0, 2.0, 3.0, 0.5, 0.1, 0.0], [])
    config = FitConfig(epochs=6, learning_rate=0.05, weight_decay=0.0, patience=2)

    result = fit(_linear, _batches(_regression()), _mse, config, validation=validation)

    assert (len(result.history), result.best_epoch, result.stop_reason) == (3, 1, "patience")


def test_a_time_budget_stops_after_the_epoch_that_passes_it() -> None:
    config = FitConfig(epochs=5, learning_rate=0.05, weight_decay=0.0, max_seconds=0.0)

    result = fit(_linear, _batches(_regression()), _mse, config)

    assert (len(result.history), result.stop_reason) == (1, "time budget")


def test_patience_without_a_validation_and_an_empty_epoch_are_refused() -> None:
    data = _regression()
    with pytest.raises(ValueError, match="patience needs a validation"):
        fit(
            _linear,
            _batches(data),
            _mse,
            FitConfig(epochs=2, learning_rate=0.1, weight_decay=0.0, patience=1),
        )
    with pytest.raises(ValueError, match="at least one training batch"):
        fit(_linear, [], _mse, FitConfig(epochs=2, learning_rate=0.1, weight_decay=0.0))


def test_progress_reports_every_step_then_the_end_of_the_epoch() -> None:
    x, y = _regression(count=12)
    fixed = [(x[:4], y[:4]), (x[4:8], y[4:8]), (x[8:], y[8:])]  # the same batches every epoch
    reports: list[TrainProgress] = []
    config = FitConfig(epochs=2, learning_rate=0.05, weight_decay=0.0)

    result = fit(_linear, fixed, _mse, config, progress=reports.append)

    assert [(r.epoch, r.step, r.epoch_end) for r in reports] == [
        (epoch, step, end)
        for epoch in (1, 2)
        for step, end in ((1, False), (2, False), (3, False), (3, True))
    ]
    assert all(r.steps == 3 and r.val_loss is None for r in reports)
    assert [r.train_loss for r in reports if r.epoch_end] == list(result.train_losses)


def test_the_learning_rate_decays_on_a_cosine_to_a_tenth_over_every_step() -> None:
    # A constant gradient of 1: each AdamW step moves the weight by the learning rate.
    def zero() -> torch.nn.Linear:
        model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.zeros_(model.weight)
        return model

    def slope(model: torch.nn.Linear, batch: None) -> Tensor:
        return model.weight.sum()

    config = FitConfig(epochs=3, learning_rate=0.1, weight_decay=0.0)
    result = fit(zero, [None, None], slope, config)

    total = 6
    rates = [0.01 + 0.09 * (1 + math.cos(math.pi * t / total)) / 2 for t in range(total)]
    assert float(result.model.weight.detach()) == pytest.approx(-sum(rates), rel=1e-5)


def test_shuffled_batches_draw_each_item_at_most_once_per_epoch() -> None:
    def make(rows: npt.NDArray[np.int64]) -> list[int]:
        return [int(row) for row in rows]

    some = ShuffledBatches(10, 4, make, np.random.default_rng(0), per_epoch=7)
    every = ShuffledBatches(10, 4, make, np.random.default_rng(0))

    first, second = list(some(1)), list(some(2))
    assert (len(some), [len(rows) for rows in first]) == (2, [4, 3])
    assert len({row for rows in first for row in rows}) == 7
    assert first != second
    assert len(every) == 3
    assert sorted(row for rows in every(1) for row in rows) == list(range(10))


# --- the product's trainer ----------------------------------------------------------------------


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
    fitted = pipeline.fit(
        leak_windows, other_windows, model_config=tiny_config, contract=contract, config=FAST
    )
    metrics = fitted.validation["per_system"]["excavator"]
    assert set(metrics) >= {"fault_macro_f1", "health_mae", "rul_mae_hours", "anomaly_auroc"}
    assert 0.0 <= metrics["anomaly_auroc"] <= 1.0
    record = pipeline.training_record(fitted, FAST, {"source": "test"}, len(leak_windows))
    path = tmp_path / "tiny.gnnckpt"
    sha = pipeline.package(
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
