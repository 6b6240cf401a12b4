"""The CPU training loop: AdamW on shuffled mini-batches, early stopping, residual scales.

Training is seeded and deterministic on one machine: the same windows, config and seed give
the same weights. The loss is :func:`worker.model.model_loss` for health and remaining
useful life, with two changes made here, where the training data is known:

- the forecasting term only counts sensors no active fault affects, so the forecaster
  learns normal behaviour and its residual (the anomaly score) grows where a fault acts;
- the fault term weighs components with an active fault ``faulty_weight`` times, because
  almost every component of almost every window is normal.

Component types are dropped to the "unknown" bucket at random (``type_dropout``) so that
the model also works on machines whose component types it never saw. After training, the
per-sensor-kind residual scales are fitted on healthy training windows, so that anomaly
scores are about 1 in normal operation, and stored in the returned contract.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

import numpy as np
import torch
from torch import Tensor

from training.demo_data import LabelledBatch, LabelledWindow, collate_labelled
from worker.model import (
    FeatureContract,
    LossWeights,
    ModelConfig,
    ModelOutput,
    UniversalTemporalGNN,
    model_loss,
)
from worker.model.contract import UNKNOWN_COMPONENT_TYPE
from worker.model.losses import fault_log_prob

_MIN_SCALE: Final = 1e-4


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        epochs: Most passes over the training windows.
        batch_size: Windows per optimiser step.
        learning_rate: AdamW learning rate (cosine-decayed to a tenth over ``epochs``).
        weight_decay: AdamW weight decay.
        patience: Epochs without a better validation loss before stopping.
        seed: Seed of initialisation, shuffling, dropout and type dropout.
        threads: Torch intra-op threads while training.
        loss_weights: Weights of the loss terms.
        faulty_weight: Weight of components with an active fault in the fault term.
        type_dropout: Probability of hiding a component's type in a training batch.
        grad_clip: Largest gradient norm.
        rul_log_var_floor: Soft floor of the remaining-life log-variance in the loss.
        rul_faulty_weighted: Weigh components with an active fault ``faulty_weight`` times in
            the remaining-life term too.
        level_corruption: Probability of shifting a healthy sensor's input steps (not its
            forecast target) by a random level in a training batch, so that the forecaster
            learns the level its neighbours imply and its residual grows where a fault moves
            a sensor away from it.
        corrupted_fraction: Share of steps that train the forecaster alone on shifted
            inputs (when ``level_corruption`` > 0); the other steps train every head on
            unshifted windows.
        max_seconds: Stop after the epoch that passes this wall-clock budget.
    """

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 5
    seed: int = 0
    threads: int = 2
    loss_weights: LossWeights = field(default_factory=LossWeights)
    faulty_weight: float = 4.0
    type_dropout: float = 0.2
    grad_clip: float = 1.0
    rul_log_var_floor: float = -2.0
    rul_faulty_weighted: bool = True
    level_corruption: float = 0.2
    corrupted_fraction: float = 0.5
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1 or self.threads < 1:
            raise ValueError("epochs, batch_size, patience and threads must be >= 1")
        if not 0.0 <= self.type_dropout < 1.0:
            raise ValueError(f"type_dropout must be in [0, 1), got {self.type_dropout}")


@dataclass(frozen=True)
class TrainProgress:
    """A progress report, after every optimiser step and every epoch.

    Attributes:
        epoch: 1-based epoch.
        epochs: Most epochs.
        step: Steps done in this epoch.
        steps: Steps per epoch.
        train_loss: Mean training loss of the epoch so far.
        val_loss: Validation loss, at the end of an epoch only.
        best_val_loss: Best validation loss so far.
    """

    epoch: int
    epochs: int
    step: int
    steps: int
    train_loss: float
    val_loss: float | None = None
    best_val_loss: float | None = None


ProgressCallback = Callable[[TrainProgress], None]


@dataclass(frozen=True)
class EpochRecord:
    """What one epoch achieved: losses (validation terms by name) and its duration."""

    epoch: int
    train_loss: float
    val_loss: float
    val_terms: dict[str, float]
    seconds: float


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
        return self.history[self.best_epoch - 1].val_loss


def training_loss(
    output: ModelOutput, labelled: LabelledBatch, config: TrainConfig
) -> dict[str, Tensor]:
    """The loss terms of the module docstring and their weighted total.

    Shapes:
        every returned tensor: scalar.
    """
    batch, targets, weights = labelled.batch, labelled.targets, config.loss_weights
    terms = model_loss(output, batch, targets, replace(weights, forecast=0.0, fault=0.0, rul=0.0))

    horizon = output.forecast.shape[1]
    healthy = (~labelled.sensor_label).to(batch.x.dtype)[:, None]
    mask = batch.mask[:, -horizon:] * healthy
    squared = (output.forecast - batch.x[:, -horizon:]) ** 2
    forecast = (squared * mask).sum() / mask.sum().clamp_min(1.0)

    # The spread of remaining life cannot be read from one window; a floor on the predicted
    # log-variance keeps the Gaussian likelihood from rewarding memorised certainty.
    floor = config.rul_log_var_floor
    log_var = floor + torch.nn.functional.softplus(output.rul_log_var - floor)
    target = torch.log1p(targets.rul_hours.clamp_min(0.0))
    error = torch.log1p(output.rul_hours) - target
    rul_nll = 0.5 * (log_var + error**2 * torch.exp(-log_var))
    faulty = (targets.fault_index > 0).to(batch.x.dtype)
    weight = 1.0 + (config.faulty_weight - 1.0) * faulty
    rul_weight = (weight if config.rul_faulty_weighted else torch.ones_like(weight)) * targets.rul_valid
    rul = (rul_nll * rul_weight).sum() / rul_weight.sum().clamp_min(1e-6)
    rul_abs = (error.abs() * rul_weight).sum() / rul_weight.sum().clamp_min(1e-6)
    fault = (weight * -fault_log_prob(output, batch, targets.fault_index)).sum() / weight.sum()

    total = terms["total"] + weights.forecast * forecast + weights.fault * fault
    total = total + weights.rul * rul
    # Early stopping reads the absolute log error of remaining life instead of its likelihood:
    # one confident miss must not outweigh every other head.
    selection = terms["total"] + weights.forecast * forecast + weights.fault * fault
    selection = selection + weights.rul * rul_abs
    return {
        **terms,
        "forecast": forecast,
        "fault": fault,
        "rul": rul,
        "rul_abs_log_error": rul_abs,
        "total": total,
        "selection": selection,
    }


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
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _train(
            train_windows,
            val_windows=val_windows,
            model_config=model_config,
            contract=contract,
            config=config,
            progress=progress,
        )
    finally:
        torch.set_num_threads(threads)


def _train(
    train_windows: Sequence[LabelledWindow],
    *,
    val_windows: Sequence[LabelledWindow],
    model_config: ModelConfig,
    contract: FeatureContract,
    config: TrainConfig,
    progress: ProgressCallback | None,
) -> TrainResult:
    started = time.perf_counter()
    report = progress or (lambda update: None)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    unscaled = replace(contract, residual_scale=None)
    model = UniversalTemporalGNN(model_config, unscaled)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = math.ceil(len(train_windows) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.epochs * steps, eta_min=config.learning_rate / 10
    )
    history: list[EpochRecord] = []
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, best_loss, stop_reason = 0, math.inf, "epochs"
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        order = rng.permutation(len(train_windows))
        running = 0.0
        for step in range(steps):
            chunk = [
                train_windows[i] for i in order[step * config.batch_size :][: config.batch_size]
            ]
            labelled = _hide_types(collate_labelled(chunk), config.type_dropout, rng)
            if config.level_corruption > 0 and rng.random() < config.corrupted_fraction:
                # A forecasting-only step: the other heads never learn from shifted inputs.
                labelled = _shift_levels(labelled, config.level_corruption, contract, rng)
                terms = training_loss(model(labelled.batch), labelled, config)
                loss = config.loss_weights.forecast * terms["forecast"]
            else:
                loss = training_loss(model(labelled.batch), labelled, config)["total"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
            report(TrainProgress(epoch, config.epochs, step + 1, steps, running / (step + 1)))
        val_terms = validation_loss(model, val_windows, config)
        history.append(
            EpochRecord(
                epoch,
                running / steps,
                val_terms["selection"],
                val_terms,
                time.perf_counter() - epoch_started,
            )
        )
        if val_terms["selection"] < best_loss:
            best_epoch, best_loss = epoch, val_terms["selection"]
            best_state = copy.deepcopy(model.state_dict())
        report(
            TrainProgress(
                epoch,
                config.epochs,
                steps,
                steps,
                running / steps,
                val_terms["selection"],
                best_loss,
            )
        )
        if epoch - best_epoch >= config.patience:
            stop_reason = "patience"
            break
        elapsed = time.perf_counter() - started
        if config.max_seconds is not None and elapsed >= config.max_seconds:
            stop_reason = "time budget"
            break

    model.load_state_dict(best_state)
    fitted = fit_residual_scale(model, train_windows, contract)
    final = UniversalTemporalGNN(model_config, fitted)
    final.load_state_dict(best_state)
    final.eval()
    return TrainResult(
        model=final,
        contract=fitted,
        history=tuple(history),
        best_epoch=max(best_epoch, 1),
        seconds=time.perf_counter() - started,
        stop_reason=stop_reason,
    )


def _hide_types(labelled: LabelledBatch, rate: float, rng: np.random.Generator) -> LabelledBatch:
    """Hide each component's type (unknown bucket) with probability ``rate``."""
    if rate <= 0.0:
        return labelled
    batch = labelled.batch
    hide = torch.from_numpy(rng.random(batch.num_components) < rate)
    bucket = batch.component_bucket.masked_fill(hide, UNKNOWN_COMPONENT_TYPE)
    hidden = replace(batch, component_bucket=bucket, component_type=bucket[batch.node_component])
    return replace(labelled, batch=hidden)


def _shift_levels(
    labelled: LabelledBatch, rate: float, contract: FeatureContract, rng: np.random.Generator
) -> LabelledBatch:
    """Shift the observed input steps of random healthy sensors by 0.3-1.5 normal half-widths."""
    if rate <= 0.0:
        return labelled
    batch = labelled.batch
    chosen = rng.random(batch.num_nodes) < rate
    chosen &= ~labelled.sensor_label.numpy()
    if not chosen.any():
        return labelled
    size = rng.uniform(0.3, 1.5, batch.num_nodes) * rng.choice([-1.0, 1.0], batch.num_nodes)
    offset = torch.from_numpy(np.where(chosen, size, 0.0).astype(np.float32))
    split = contract.encoder_steps
    x = batch.x.clone()
    x[:, :split] += offset[:, None] * batch.mask[:, :split]
    return replace(labelled, batch=replace(batch, x=x))


def validation_loss(
    model: UniversalTemporalGNN,
    windows: Sequence[LabelledWindow],
    config: TrainConfig,
) -> dict[str, float]:
    """Mean loss terms over ``windows`` in eval mode (batches weighted by their size)."""
    model.eval()
    sums: dict[str, float] = {}
    with torch.inference_mode():
        for start in range(0, len(windows), config.batch_size * 2):
            chunk = windows[start : start + config.batch_size * 2]
            labelled = collate_labelled(chunk)
            terms = training_loss(model(labelled.batch), labelled, config)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(chunk)
    return {name: value / len(windows) for name, value in sums.items()}


def fit_residual_scale(
    model: UniversalTemporalGNN,
    windows: Sequence[LabelledWindow],
    contract: FeatureContract,
    *,
    batch_size: int = 64,
) -> FeatureContract:
    """Fit each sensor kind's residual scale: the mean forecast RMS residual of sensors of that
    kind in windows where no component has an active fault.

    Kinds never seen healthy get the median of the fitted scales (1.0 if none was fitted).

    Args:
        model: The trained model (any residual scales; they are divided out).
        windows: Labelled windows; only healthy ones are used.
        contract: The contract to copy with the fitted scales.

    Returns:
        ``contract`` with ``residual_scale`` set.
    """
    model.eval()
    kinds = len(contract.sensor_kinds)
    total = np.zeros(kinds)
    count = np.zeros(kinds)
    healthy = [window for window in windows if window.healthy]
    horizon = contract.forecast_horizon
    with torch.inference_mode():
        for start in range(0, len(healthy), batch_size):
            batch = collate_labelled(healthy[start : start + batch_size]).batch
            output = model(batch)
            residual = output.sensor_anomaly * model.residual_scale[batch.sensor_kind]
            observed = batch.mask[:, -horizon:].sum(dim=1) > 0
            kind = batch.sensor_kind[observed].numpy()
            np.add.at(total, kind, residual[observed].double().numpy())
            np.add.at(count, kind, 1.0)
    fitted = count > 0
    scales = np.ones(kinds)
    scales[fitted] = np.maximum(total[fitted] / count[fitted], _MIN_SCALE)
    scales[~fitted] = float(np.median(scales[fitted])) if fitted.any() else 1.0
    return replace(contract, residual_scale=tuple(float(s) for s in scales))
