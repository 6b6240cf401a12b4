"""The one training loop, and the product's trainer built on it.

:func:`fit` is the loop every model of this project is trained with: ``gnn-service train``
(:func:`train_model`, through :mod:`training.pipeline`) and the hydraulic, SKAB and C-MAPSS
benchmarks. It runs AdamW with a cosine-decayed learning rate (to a tenth, per optimiser
step) and gradient-norm clipping for a number of epochs over the caller's batches and loss,
and keeps the weights of the epoch with the best validation score when a
:class:`Validation` is given (the last epoch's otherwise). What differs between trainers is
a parameter, not another loop: the batches (:class:`training.batches.ShuffledBatches`: which
items, how many per epoch, what the caller builds of them, with its own random generator),
the loss, the validation and its direction, and :class:`FitConfig` (seed, clipping,
patience, time budget).

The product's trainer minimises :func:`training.objective.training_loss` on batches whose
component types are partly hidden (:func:`training.data.augment.hide_component_types`), so
that the model also works on machines whose component types it never saw; a share of the
steps trains the forecaster alone on level-shifted inputs
(:func:`training.data.augment.shift_levels`). It stops early on the validation
``selection`` loss and then fits the per-sensor-kind residual scales on healthy training
windows (:func:`training.residual_scale.fit_residual_scale`), so that anomaly scores are
about 1 in normal operation. Training is seeded and deterministic on one machine.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Generic, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import torch

from training.batches import EpochBatches, ShuffledBatches
from training.data.augment import hide_component_types, shift_levels
from training.data.demo import LabelledBatch, LabelledWindow, collate_labelled
from training.objective import LossConfig, training_loss, validation_loss
from training.residual_scale import fit_residual_scale
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN

M = TypeVar("M", bound=torch.nn.Module)
B = TypeVar("B")


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` optimises.

    Attributes:
        epochs: Most passes over the batches.
        learning_rate: AdamW learning rate, cosine-decayed to a tenth over every step.
        weight_decay: AdamW weight decay.
        seed: Torch seed, set before the model is built (initialisation and dropout).
        grad_clip: Largest gradient norm.
        patience: Stop after this many epochs without a better validation score (None:
            run every epoch; needs a :class:`Validation`).
        max_seconds: Stop after the epoch that passes this wall-clock budget (None: none).
    """

    epochs: int
    learning_rate: float
    weight_decay: float
    seed: int = 0
    grad_clip: float = 1.0
    patience: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")


@dataclass(frozen=True)
class Validation(Generic[M]):
    """The validation that selects the kept weights.

    Attributes:
        score: Named validation terms of the model after an epoch (it may leave the model
            in eval mode: every epoch starts with ``model.train()``).
        key: The term that selects.
        direction: ``min`` when lower is better (a loss), ``max`` when higher is.
        keep_best: Keep the best epoch's weights; when False the scores are only recorded
            and the last epoch's weights are kept (patience does not apply).
    """

    score: Callable[[M], Mapping[str, float]]
    key: str
    direction: Literal["min", "max"] = "min"
    keep_best: bool = True

    @property
    def worst(self) -> float:
        """A score every finite score improves on."""
        return math.inf if self.direction == "min" else -math.inf

    def improves(self, score: float, best: float) -> bool:
        """Whether ``score`` beats ``best`` (never when it is ``nan``)."""
        return score < best if self.direction == "min" else score > best


@dataclass(frozen=True)
class TrainProgress:
    """A progress report, after every optimiser step and at the end of every epoch.

    Attributes:
        epoch: 1-based epoch.
        epochs: Most epochs.
        step: Steps done in this epoch.
        steps: Steps per epoch.
        train_loss: Mean training loss of the epoch so far.
        val_loss: The selecting validation score, at the end of an epoch only.
        best_val_loss: Best validation score so far, at the end of an epoch only.
        epoch_end: True for the report at the end of an epoch (after validation).
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    train_loss: float
    val_loss: float | None = None
    best_val_loss: float | None = None
    epoch_end: bool = False


ProgressCallback = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch achieved: mean training loss, validation score and terms (None and
    empty without a validation) and its duration."""

    epoch: int
    train_loss: float
    val_loss: float | None
    val_terms: Mapping[str, float]
    seconds: float


@dataclass(frozen=True, eq=False)
class FitResult(Generic[M]):
    """The trained model and how training went.

    Attributes:
        model: The model with the kept weights, in eval mode.
        history: One record per epoch run.
        best_epoch: Epoch whose weights were kept: the best validation epoch (0 when no
            epoch beat the initial weights, e.g. ``nan`` scores), else the last.
        stop_reason: ``epochs``, ``patience`` or ``time budget``.
        seconds: Wall-clock time of the loop, validation included.
    """

    model: M
    history: tuple[EpochRecord, ...]
    best_epoch: int
    stop_reason: str
    seconds: float

    @property
    def train_losses(self) -> tuple[float, ...]:
        """Mean training loss of each epoch."""
        return tuple(record.train_loss for record in self.history)


def fit(
    model: Callable[[], M],
    batches: EpochBatches[B] | Sequence[B],
    loss: Callable[[M, B], torch.Tensor],
    config: FitConfig,
    *,
    validation: Validation[M] | None = None,
    progress: ProgressCallback | None = None,
) -> FitResult[M]:
    """Train a fresh model: AdamW, cosine schedule, gradient clipping, best-epoch selection.

    Args:
        model: Builds the model; called once, right after ``torch.manual_seed(config.seed)``.
        batches: The training batches, the same every epoch (a sequence) or drawn per
            epoch (called with the 1-based epoch, ``len`` steps each).
        loss: The scalar loss of the model on one batch.
        config: Optimisation settings.
        validation: Scores the model after every epoch; the best epoch's weights are kept.
        progress: Called after every step and at the end of every epoch.

    Returns:
        The model with the kept weights in eval mode, and the history.

    Raises:
        ValueError: No batches, or ``patience`` without a validation.
    """
    if config.patience is not None and validation is None:
        raise ValueError("patience needs a validation to compare epochs by")
    steps = len(batches)
    if steps < 1:
        raise ValueError("fit needs at least one training batch per epoch")
    epoch_batches = batches if callable(batches) else (lambda epoch: batches)
    report = progress or (lambda update: None)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    net = model()
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.epochs * steps, eta_min=config.learning_rate / 10
    )
    history: list[EpochRecord] = []
    selecting = validation is not None and validation.keep_best
    best_state = copy.deepcopy(net.state_dict()) if selecting else None
    best_epoch, stop_reason = 0, "epochs"
    best = math.nan if validation is None else validation.worst
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        net.train()
        running = 0.0
        for step, batch in enumerate(epoch_batches(epoch), start=1):
            value = loss(net, batch)
            running += _optimiser_step(net, value, optimiser, schedule, config.grad_clip)
            report(TrainProgress(epoch, config.epochs, step, steps, running / step))
        terms = {} if validation is None else dict(validation.score(net))
        score = None if validation is None else terms[validation.key]
        if score is None or not selecting or validation.improves(score, best):  # type: ignore[union-attr]
            best_epoch, best = epoch, math.nan if score is None else score
            best_state = copy.deepcopy(net.state_dict()) if selecting else None
        train_loss = running / steps
        seconds = time.perf_counter() - epoch_started
        history.append(EpochRecord(epoch, train_loss, score, terms, seconds))
        kept = None if validation is None else best
        ended = TrainProgress(
            epoch, config.epochs, steps, steps, train_loss, score, kept, epoch_end=True
        )
        report(ended)
        if config.patience is not None and epoch - best_epoch >= config.patience:
            stop_reason = "patience"
            break
        elapsed = time.perf_counter() - started
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stop_reason = "time budget"
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return FitResult(net, tuple(history), best_epoch, stop_reason, time.perf_counter() - started)


def _optimiser_step(
    model: torch.nn.Module,
    loss: torch.Tensor,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    grad_clip: float,
) -> float:
    """One optimiser step on ``loss``; returns its value."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimiser.step()
    schedule.step()
    return float(loss.detach())


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch intra-op threads set to ``count`` inside the block (sums depend on the split,
    so a run's threads are part of its result), restored after it."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --- the product's trainer ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """How ``gnn-service train`` trains.

    Attributes:
        epochs: Most passes over the training windows.
        batch_size: Windows per optimiser step.
        learning_rate: AdamW learning rate (cosine-decayed to a tenth over ``epochs``).
        weight_decay: AdamW weight decay.
        patience: Epochs without a better validation loss before stopping.
        seed: Seed of initialisation, shuffling, dropout and type dropout.
        threads: Torch intra-op threads while training.
        loss: The objective's weights (:class:`training.objective.LossConfig`).
        type_dropout: Probability of hiding a component's type in a training batch.
        grad_clip: Largest gradient norm.
        level_corruption: Probability of shifting a healthy sensor's input steps (not its
            forecast target) by a random level in a training batch, so that the forecaster
            learns the level its neighbours imply and its residual grows where a fault moves
            a sensor away from it.
        corrupted_fraction: Share of steps that train the forecaster alone on shifted
            inputs (when ``level_corruption`` > 0); the other steps train every head on
            unshifted windows.
        max_seconds: Stop after the epoch that passes this wall-clock budget.
        select_on: ``selection``: the validation loss selects the kept epoch and stops early;
            ``last``: the last epoch's weights, validation only recorded (no early stopping).
        min_steps: Least optimiser steps: with few training windows, more epochs than
            ``epochs`` so that training takes at least this many steps (0: ``epochs``).
    """

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    threads: int = 2
    loss: LossConfig = field(default_factory=LossConfig)
    type_dropout: float = 0.2
    grad_clip: float = 1.0
    level_corruption: float = 0.2
    corrupted_fraction: float = 0.5
    max_seconds: float | None = None
    select_on: Literal["selection", "last"] = "selection"
    min_steps: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size, patience and threads must be >= 1")
        if not 0.0 <= self.type_dropout < 1.0:
            raise ValueError(f"type_dropout must be in [0, 1), got {self.type_dropout}")


@dataclass(frozen=True, eq=False)
class TrainResult:
    """The trained model (best validation epoch, eval mode) and how training went.

    Attributes:
        model: The model, built under ``contract``.
        contract: The training contract with fitted residual scales.
        history: One record per epoch run.
        best_epoch: Epoch whose weights were kept.
        seconds: Wall-clock training time, residual fit included.
        stop_reason: ``epochs``, ``patience`` or ``time budget``.
    """

    model: UniversalTemporalGNN
    contract: FeatureContract
    history: tuple[EpochRecord, ...]
    best_epoch: int
    seconds: float
    stop_reason: str

    @property
    def best_val_loss(self) -> float:
        """Validation loss of the kept weights."""
        value = self.history[self.best_epoch - 1].val_loss
        return math.nan if value is None else value


@dataclass(frozen=True, eq=False)
class _Augmented:
    """A training step's windows after augmentation; ``forecast_only`` when levels shifted."""

    labelled: LabelledBatch
    forecast_only: bool


def train_model(
    train_windows: Sequence[LabelledWindow],
    val_windows: Sequence[LabelledWindow],
    *,
    model_config: ModelConfig,
    contract: FeatureContract,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
) -> TrainResult:
    """Train a fresh model, keep the weights of the best validation epoch, fit residual scales.

    Args:
        train_windows: Labelled training windows (any mix of machines).
        val_windows: Labelled validation windows, from other runs than the training ones.
        model_config: Architecture.
        contract: Feature contract the windows were encoded under (its residual scales
            are ignored and refitted).
        config: Optimisation settings.
        progress: Called after every step and every epoch.

    Returns:
        The trained model in eval mode, its fitted contract and the history.

    Raises:
        ValueError: No training or no validation windows.
    """
    if not train_windows or not val_windows:
        raise ValueError("training needs at least one training and one validation window")
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)

    def make(rows: npt.NDArray[np.int64]) -> _Augmented:
        chunk = [train_windows[i] for i in rows]
        labelled = hide_component_types(collate_labelled(chunk), config.type_dropout, rng)
        if config.level_corruption > 0 and rng.random() < config.corrupted_fraction:
            # A forecasting-only step: the other heads never learn from shifted inputs.
            shifted = shift_levels(labelled, config.level_corruption, contract, rng)
            return _Augmented(shifted, forecast_only=True)
        return _Augmented(labelled, forecast_only=False)

    def step_loss(model: UniversalTemporalGNN, step: _Augmented) -> torch.Tensor:
        terms = training_loss(model(step.labelled.batch), step.labelled, config.loss)
        if step.forecast_only:
            return config.loss.weights.forecast * terms["forecast"]
        return terms["total"]

    unscaled = replace(contract, residual_scale=None)
    steps_per_epoch = math.ceil(len(train_windows) / config.batch_size)
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    with torch_threads(config.threads):
        result = fit(
            lambda: UniversalTemporalGNN(model_config, unscaled),
            ShuffledBatches(len(train_windows), config.batch_size, make, rng),
            step_loss,
            FitConfig(
                epochs=epochs,
                learning_rate=config.learning_rate,
                weight_decay=config.weight_decay,
                seed=config.seed,
                grad_clip=config.grad_clip,
                patience=config.patience,
                max_seconds=config.max_seconds,
            ),
            validation=Validation(
                lambda model: validation_loss(
                    model, val_windows, config.loss, batch_size=config.batch_size * 2
                ),
                key="selection",
                keep_best=config.select_on != "last",
            ),
            progress=progress,
        )
        fitted = fit_residual_scale(result.model, train_windows, contract)
        final = UniversalTemporalGNN(model_config, fitted)
        final.load_state_dict(result.model.state_dict())
    final.eval()
    return TrainResult(
        model=final,
        contract=fitted,
        history=result.history,
        best_epoch=max(result.best_epoch, 1),
        seconds=time.perf_counter() - started,
        stop_reason=result.stop_reason,
    )
