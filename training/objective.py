"""The training objective: what training minimises, and what early stopping compares.

It is :func:`worker.model.model_loss` for component and machine health, with the other
terms defined here, where the training data is known:

- forecasting counts only sensors no active fault affects, so the forecaster learns normal
  behaviour and its residual (the anomaly score) grows where a fault acts;
- the fault term and the remaining-life term weigh components with an active fault
  ``faulty_weight`` times, because almost every component of almost every window is normal;
- remaining life is the Gaussian likelihood of ``log1p`` hours with a soft floor on the
  predicted log-variance: the time to failure cannot be read from one window, and the floor
  keeps the likelihood from rewarding memorised certainty.

Early stopping reads ``selection``, averaged over the validation windows by
:func:`validation_loss`: the same terms with the absolute ``log1p`` error of remaining life
in place of its likelihood, so one confident miss cannot outweigh the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from training.data.demo import LabelledBatch, LabelledWindow, collate_labelled
from worker.model import LossWeights, ModelOutput, UniversalTemporalGNN, model_loss
from worker.model.losses import fault_log_prob


@dataclass(frozen=True)
class LossConfig:
    """Weights of the training objective.

    Attributes:
        weights: Weight of each term.
        faulty_weight: Weight of components with an active fault in the fault term (and in
            the remaining-life term when ``rul_faulty_weighted``).
        rul_log_var_floor: Soft floor of the remaining-life log-variance.
        rul_faulty_weighted: Weigh faulty components ``faulty_weight`` times in the
            remaining-life term too.
    """

    weights: LossWeights = field(default_factory=LossWeights)
    faulty_weight: float = 4.0
    rul_log_var_floor: float = -2.0
    rul_faulty_weighted: bool = True


def training_loss(
    output: ModelOutput, labelled: LabelledBatch, config: LossConfig
) -> dict[str, Tensor]:
    """The terms of the module docstring, their weighted ``total`` and ``selection``.

    Args:
        output: The forward pass of ``labelled.batch``.
        labelled: The batch with its labels.
        config: Weights.

    Returns:
        Scalars ``forecast``, ``health``, ``fault``, ``rul``, ``rul_abs_log_error``,
        ``total`` and ``selection``.

    Shapes:
        every returned tensor: scalar.
    """
    batch, targets, weights = labelled.batch, labelled.targets, config.weights
    terms = model_loss(output, batch, targets, replace(weights, forecast=0.0, fault=0.0, rul=0.0))

    horizon = output.forecast.shape[1]
    healthy = (~labelled.sensor_label).to(batch.x.dtype)[:, None]
    mask = batch.mask[:, -horizon:] * healthy
    squared = (output.forecast - batch.x[:, -horizon:]) ** 2
    forecast = (squared * mask).sum() / mask.sum().clamp_min(1.0)

    faulty = (targets.fault_index > 0).to(batch.x.dtype)
    weight = 1.0 + (config.faulty_weight - 1.0) * faulty
    fault_index = torch.where(targets.fault_valid, targets.fault_index, 0)
    fault = _weighted_mean(
        -fault_log_prob(output, batch, fault_index), weight * targets.fault_valid
    )

    floor = config.rul_log_var_floor
    log_var = floor + torch.nn.functional.softplus(output.rul_log_var - floor)
    error = torch.log1p(output.rul_hours) - torch.log1p(targets.rul_hours.clamp_min(0.0))
    error = torch.where(targets.rul_valid, error, torch.zeros_like(error))
    rul_weight = (weight if config.rul_faulty_weighted else 1.0) * targets.rul_valid
    rul = _weighted_mean(0.5 * (log_var + error**2 * torch.exp(-log_var)), rul_weight)
    rul_abs = _weighted_mean(error.abs(), rul_weight)

    total = terms["total"] + weights.forecast * forecast + weights.fault * fault
    total = total + weights.rul * rul
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


def validation_loss(
    model: UniversalTemporalGNN,
    windows: Sequence[LabelledWindow],
    config: LossConfig,
    *,
    batch_size: int,
) -> dict[str, float]:
    """Mean :func:`training_loss` terms over ``windows`` in eval mode, ``batch_size`` windows
    per forward pass (batches weighted by their size)."""
    model.eval()
    sums: dict[str, float] = {}
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            chunk = windows[start : start + batch_size]
            labelled = collate_labelled(chunk)
            terms = training_loss(model(labelled.batch), labelled, config)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(chunk)
    return {name: value / len(windows) for name, value in sums.items()}


def _weighted_mean(values: Tensor, weight: Tensor) -> Tensor:
    return (values * weight).sum() / weight.sum().clamp_min(1e-6)
