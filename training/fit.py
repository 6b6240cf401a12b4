"""The CPU training loop: AdamW on shuffled mini-batches, early stopping, residual scales.

Training is seeded and deterministic on one machine: the same windows, config and seed give
the same weights. Each step minimises :func:`training.objective.training_loss` on a batch
whose component types are partly hidden (:func:`training.data.augment.hide_component_types`),
so that the model also works on machines whose component types it never saw; a share of
the steps trains the forecaster alone on level-shifted inputs
(:func:`training.data.augment.shift_levels`). Early stopping keeps the weights of the epoch with
the best validation ``selection`` loss. Afterwards the per-sensor-kind residual scales are
fitted on healthy training windows (:func:`training.residual_scale.fit_residual_scale`),
so that anomaly scores are about 1 in normal operation, and stored in the returned contract.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from training.data.augment import hide_component_types, shift_levels
from training.data.demo import LabelledWindow, collate_labelled
from training.objective import LossConfig, training_loss
from training.residual_scale import fit_residual_scale
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN


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
            labelled = hide_component_types(collate_labelled(chunk), config.type_dropout, rng)
            if config.level_corruption > 0 and rng.random() < config.corrupted_fraction:
                # A forecasting-only step: the other heads never learn from shifted inputs.
                labelled = shift_levels(labelled, config.level_corruption, contract, rng)
                terms = training_loss(model(labelled.batch), labelled, config.loss)
                loss = config.loss.weights.forecast * terms["forecast"]
            else:
                loss = training_loss(model(labelled.batch), labelled, config.loss)["total"]
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
            terms = training_loss(model(labelled.batch), labelled, config.loss)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(chunk)
    return {name: value / len(windows) for name, value in sums.items()}
