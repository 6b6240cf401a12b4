"""The SKAB detector: the forecaster trained with :func:`training.fit.fit` and its residual
scales.

:func:`train_detector` trains, self-supervised, to forecast the last H steps of each window
(masked MSE); inputs are sometimes level-shifted on the state sensors while the target is not,
so that the forecast keeps to the level the calibration and the other sensors imply. The
residual scales are then fitted on normal windows (:func:`fit_residual_scale`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import torch

from training.batches import ShuffledBatches
from training.fit import FitConfig, TrainProgress, fit, torch_threads
from worker.model import FeatureContract, GraphBatch, GraphSample, UniversalTemporalGNN, collate

if TYPE_CHECKING:
    # Annotations only: at run time the benchmark imports this module, not the reverse.
    from training.benchmarks.skab.run import SkabBenchConfig

Tick = Callable[[int, int, int, int, float], None]
"""Progress: ``(epoch, epochs, step, steps, mean loss so far)``."""

SCORE_BATCH: Final = 256
"""Windows per forward pass when scoring."""
_MIN_SCALE: Final = 1e-4


@dataclass(frozen=True, eq=False)
class TrainedDetector:
    """The trained model and its contract (residual scales fitted), how long training took
    and the mean loss of each epoch."""

    model: UniversalTemporalGNN
    contract: FeatureContract
    train_windows: int
    seconds: float
    losses: tuple[float, ...]


def train_detector(
    samples: Sequence[GraphSample],
    config: SkabBenchConfig,
    *,
    scale_samples: Sequence[GraphSample] = (),
    tick: Tick | None = None,
) -> TrainedDetector:
    """Train the forecaster (masked MSE of the last H steps), then fit residual scales on
    ``scale_samples`` (the training windows when empty).

    Only the forecast head and what feeds it learn: there are no labels. Deterministic:
    seeded initialisation, shuffling and shifts, a fixed epoch count, fixed threads.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    contract = config.contract()
    split_at = contract.encoder_steps
    anchored = torch.tensor([contract.kind_index(kind) for kind in config.state_kinds])

    def make(rows: npt.NDArray[np.int64]) -> tuple[GraphBatch, torch.Tensor]:
        """The batch and its input, level-shifted on some state sensors."""
        batch = collate([samples[i] for i in rows])
        if config.level_shift_rate <= 0:
            return batch, batch.x
        low, high = config.level_shift_range
        size = rng.uniform(low, high, batch.num_nodes) * rng.choice([-1.0, 1.0], batch.num_nodes)
        chosen = rng.random(batch.num_nodes) < config.level_shift_rate
        chosen &= torch.isin(batch.sensor_kind, anchored).numpy()
        offset = torch.from_numpy(np.where(chosen, size, 0.0).astype(np.float32))
        x = batch.x.clone()
        x[:, :split_at] += offset[:, None] * batch.mask[:, :split_at]
        return batch, x

    def loss(model: UniversalTemporalGNN, step: tuple[GraphBatch, torch.Tensor]) -> torch.Tensor:
        batch, x = step
        output = model(replace(batch, x=x))
        mask = batch.mask[:, split_at:]
        error = (output.forecast - batch.x[:, split_at:]) * mask
        value: torch.Tensor = (error**2).sum() / mask.sum().clamp_min(1.0)
        return value

    def report(update: TrainProgress) -> None:
        if tick is not None and not update.epoch_end:
            tick(update.epoch, update.epochs, update.step, update.steps, update.train_loss)

    with torch_threads(config.threads):
        result = fit(
            lambda: UniversalTemporalGNN(config.model, contract),
            ShuffledBatches(len(samples), config.batch_size, make, rng),
            loss,
            FitConfig(
                epochs=config.epochs,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                seed=config.seed,
            ),
            progress=report,
        )
        fitted = fit_residual_scale(result.model, scale_samples or samples, contract)
    trained = UniversalTemporalGNN(config.model, fitted)
    trained.load_state_dict(result.model.state_dict())
    trained.eval()
    seconds = time.perf_counter() - started
    return TrainedDetector(trained, fitted, len(samples), seconds, result.train_losses)


def fit_residual_scale(
    model: UniversalTemporalGNN, samples: Sequence[GraphSample], contract: FeatureContract
) -> FeatureContract:
    """Each sensor kind's mean forecast residual on ``samples`` (normal windows), so that
    ``sensor_anomaly`` is about 1 in normal operation."""
    kinds = len(contract.sensor_kinds)
    total, count = np.zeros(kinds), np.zeros(kinds)
    with torch.inference_mode():
        for start in range(0, len(samples), SCORE_BATCH):
            batch = collate(samples[start : start + SCORE_BATCH])
            output = model(batch)
            residual = (output.sensor_anomaly * model.residual_scale[batch.sensor_kind]).double()
            np.add.at(total, batch.sensor_kind.numpy(), residual.numpy())
            np.add.at(count, batch.sensor_kind.numpy(), 1.0)
    seen = count > 0
    scales = np.ones(kinds)
    scales[seen] = np.maximum(total[seen] / count[seen], _MIN_SCALE)
    scales[~seen] = float(np.median(scales[seen])) if seen.any() else 1.0
    return replace(contract, residual_scale=tuple(float(s) for s in scales))
