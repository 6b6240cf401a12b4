"""The two C-MAPSS RUL models of the benchmark: UniversalTemporalGNN and a tree ensemble.

``train_gnn`` fits the GNN on encoded training windows with the project's one training loop
(:func:`training.fit.fit`; every component's RUL fitted to the engine's) and ``predict``
reads a machine RUL per window as the mean of its components' ``rul_hours``, in cycles.
``window_features`` summarises the same windows per sensor (last value, mean, standard
deviation, slope) for ``fit_baseline``, a seeded gradient-boosted tree ensemble.
``training.benchmarks.cmapss.run`` prepares the windows, calls these and scores the
predictions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from training.batches import ShuffledBatches
from training.fit import FitConfig, TrainProgress, fit, torch_threads
from worker.model import FeatureContract, UniversalTemporalGNN
from worker.model.batch import GraphBatch, GraphSample, collate
from worker.model.spec_graph import SpecGraph

if TYPE_CHECKING:
    # Annotations only: at run time the benchmark imports this module, not the reverse.
    from training.benchmarks.cmapss.run import CmapssBenchConfig, Tick


def _samples(
    graph: SpecGraph, x: npt.NDArray[np.float32], mask: npt.NDArray[np.float32]
) -> list[GraphSample]:
    return [GraphSample(graph, x[i], mask[i], 0, ()) for i in range(x.shape[0])]


def _machine_rul(model: UniversalTemporalGNN, samples: Sequence[GraphSample]) -> torch.Tensor:
    """Mean ``rul_hours`` over each graph's components, in cycles.

    Shapes:
        returned: ``[len(samples)]``.
    """
    batch = collate(samples)
    per_component = model(batch).rul_hours
    counts = torch.tensor(batch.component_counts, dtype=per_component.dtype)
    total = torch.zeros(batch.num_graphs, dtype=per_component.dtype)
    return total.index_add(0, batch.component_graph, per_component) / counts


def train_gnn(
    config: CmapssBenchConfig,
    graph: SpecGraph,
    *,
    contract: FeatureContract,
    x: npt.NDArray[np.float32],
    mask: npt.NDArray[np.float32],
    labels: npt.NDArray[np.float64],
    report: Tick,
) -> tuple[UniversalTemporalGNN, float, list[float]]:
    """Train with :func:`training.fit.fit` on ``windows_per_epoch`` windows drawn per epoch
    (without replacement, by ``default_rng((seed, 2))``); every component's RUL is fitted to
    the engine's (MSE in units of the cap).

    Shapes:
        x, mask: ``[W, S, T]``; labels: ``[W]`` capped RUL in cycles.
    """
    started = time.perf_counter()
    samples = _samples(graph, x, mask)
    target = torch.from_numpy(labels / config.rul_cap).float()

    def make(chosen: npt.NDArray[np.int64]) -> tuple[GraphBatch, torch.Tensor]:
        batch = collate([samples[i] for i in chosen])
        return batch, target[torch.from_numpy(chosen)][batch.component_graph]

    def loss(model: UniversalTemporalGNN, step: tuple[GraphBatch, torch.Tensor]) -> torch.Tensor:
        batch, wanted = step
        return torch.mean((model(batch).rul_hours / config.rul_cap - wanted) ** 2)

    def progress(update: TrainProgress) -> None:
        if not update.epoch_end:
            done = (update.epoch - 1) * update.steps + update.step
            report("training", done, config.epochs * update.steps)

    rng = np.random.default_rng((config.seed, 2))
    batches = ShuffledBatches(
        x.shape[0], config.batch_size, make, rng, per_epoch=config.windows_per_epoch
    )
    with torch_threads(config.threads):
        result = fit(
            lambda: UniversalTemporalGNN(config.model_config(), contract),
            batches,
            loss,
            FitConfig(
                epochs=config.epochs,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                seed=config.seed,
                grad_clip=config.grad_clip,
            ),
            progress=progress,
        )
    return result.model, time.perf_counter() - started, list(result.train_losses)


def predict(
    model: UniversalTemporalGNN,
    graph: SpecGraph,
    x: npt.NDArray[np.float32],
    mask: npt.NDArray[np.float32],
    *,
    threads: int,
    batch_size: int = 512,
) -> npt.NDArray[np.float64]:
    """Machine RUL of every window, in cycles.

    Shapes:
        x, mask: ``[W, S, T]``; returned: ``[W]``.
    """
    samples = _samples(graph, x, mask)
    with torch_threads(threads), torch.no_grad():
        parts = [
            _machine_rul(model, samples[start : start + batch_size])
            for start in range(0, len(samples), batch_size)
        ]
    return torch.cat(parts).double().numpy()


def window_features(
    x: npt.NDArray[np.float32], mask: npt.NDArray[np.float32], contract: FeatureContract
) -> npt.NDArray[np.float64]:
    """Last value, mean, standard deviation and least-squares slope of each sensor over the
    seen part of each window (masked steps left out).

    Shapes:
        x, mask: ``[W, S, T]``; returned: ``[W, 4 * S]``.
    """
    seen = contract.encoder_steps
    values = x[:, :, :seen].astype(np.float64)
    weight = mask[:, :, :seen].astype(np.float64)
    count = np.maximum(weight.sum(axis=2), 1.0)
    mean = (values * weight).sum(axis=2) / count
    centred = (values - mean[..., None]) * weight
    std = np.sqrt((centred**2).sum(axis=2) / count)
    steps = np.arange(seen, dtype=np.float64)
    step_mean = (weight * steps).sum(axis=2) / count
    step_dev = (steps - step_mean[..., None]) * weight
    slope = (step_dev * centred).sum(axis=2) / np.maximum((step_dev**2).sum(axis=2), 1e-9)
    last = values[:, :, -1]
    return np.concatenate([last, mean, std, slope], axis=1)


def fit_baseline(
    config: CmapssBenchConfig, features: npt.NDArray[np.float64], labels: npt.NDArray[np.float64]
) -> Any:
    """A seeded gradient-boosted tree ensemble, without early stopping (fixed iterations)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(
        max_iter=config.baseline_iterations,
        learning_rate=0.1,
        early_stopping=False,
        random_state=config.seed,
    )
    return model.fit(features, labels)
