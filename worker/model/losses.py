"""Training losses of UniversalTemporalGNN, and the targets they compare against."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor

from worker.model.batch import GraphBatch
from worker.model.outputs import ModelOutput

NORMAL_CLASS = 0
"""Candidate index of "no fault" in every component's candidate set."""


@dataclass(frozen=True, eq=False)
class Targets:
    """Per-component labels of a batch; any label may be absent (its ``*_valid`` is False).

    Attributes:
        component_health: Health in ``[0, 1]``.
        health_valid: Whether ``component_health`` is known.
        fault_index: Index into the component's candidates: 0 = normal, k = its k-th fault
            mode in spec order (``GraphBatch.fault_rank``).
        fault_valid: Whether ``fault_index`` is known.
        rul_hours: Remaining useful life, hours (>= 0).
        rul_valid: Whether ``rul_hours`` is known (e.g. False for a run never driven to
            failure).

    Shapes:
        every field: ``[C]`` (float32, bool or int64 for ``fault_index``).
    """

    component_health: Tensor
    health_valid: Tensor
    fault_index: Tensor
    fault_valid: Tensor
    rul_hours: Tensor
    rul_valid: Tensor

    def to(self, device: torch.device | str) -> Targets:
        """The same targets on ``device``."""
        return Targets(
            component_health=self.component_health.to(device),
            health_valid=self.health_valid.to(device),
            fault_index=self.fault_index.to(device),
            fault_valid=self.fault_valid.to(device),
            rul_hours=self.rul_hours.to(device),
            rul_valid=self.rul_valid.to(device),
        )


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term in the total loss.

    Attributes:
        forecast: Self-supervised forecasting (needs no labels).
        health: Component health, and machine health against the worst component's.
        fault: Fault classification.
        rul: Remaining useful life.
    """

    forecast: float = 1.0
    health: float = 1.0
    fault: float = 1.0
    rul: float = 0.5


def _masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    # Keeps the graph when nothing is valid, so backward still reaches every parameter.
    kept = torch.where(valid, values, torch.zeros_like(values))
    return kept.sum() / valid.sum().clamp_min(1).to(values.dtype)


def forecast_loss(output: ModelOutput, batch: GraphBatch) -> Tensor:
    """Mean squared error of the forecast over observed horizon steps.

    Shapes:
        output.forecast: ``[N, H]`` against ``batch.x[:, -H:]`` under ``batch.mask[:, -H:]``.
        returned: scalar.
    """
    horizon = output.forecast.shape[1]
    target, mask = batch.x[:, -horizon:], batch.mask[:, -horizon:]
    return _masked_mean((output.forecast - target) ** 2, mask > 0)


def fault_log_prob(output: ModelOutput, batch: GraphBatch, fault_index: Tensor) -> Tensor:
    """Log-probability of each component's target candidate (stable group log-softmax).

    Args:
        output: Model output with ``normal_logit`` and ``fault_logit``.
        batch: The batch it came from.
        fault_index: Target candidate per component (0 = normal).

    Returns:
        Log-probability per component.

    Raises:
        ValueError: A target index larger than the component's number of fault modes.

    Shapes:
        fault_index: ``[C]``; returned: ``[C]``.
    """
    normal, faults = output.normal_logit, output.fault_logit
    group = batch.fault_component
    top = normal.detach().scatter_reduce(0, group, faults.detach(), "amax", include_self=True)
    total = torch.exp(normal - top).index_add(0, group, torch.exp(faults - top[group]))
    log_norm = torch.log(total) + top

    candidates = torch.zeros_like(fault_index).index_add(0, group, torch.ones_like(group))
    if bool((fault_index > candidates).any()) or bool((fault_index < 0).any()):
        raise ValueError("fault_index names a candidate its component does not have")
    chosen = normal.clone()
    is_target = batch.fault_rank == fault_index[group]
    chosen = chosen.index_put((group[is_target],), faults[is_target])
    return chosen - log_norm


def model_loss(
    output: ModelOutput,
    batch: GraphBatch,
    targets: Targets,
    weights: LossWeights | None = None,
) -> dict[str, Tensor]:
    """Every training loss term and their weighted total.

    - ``forecast``: masked MSE of the forecast on the last H normalised steps.
    - ``health``: binary cross-entropy of component health, plus that of machine health
      against the lowest valid component health of the machine.
    - ``fault``: cross-entropy over each component's candidates (normal = index 0).
    - ``rul``: Gaussian negative log-likelihood of ``log1p(hours)`` with the predicted
      log-variance.

    Args:
        output: The forward pass of ``batch``.
        batch: The batch.
        targets: Labels, with validity masks.
        weights: Term weights (defaults: :class:`LossWeights`).

    Returns:
        Scalars ``forecast``, ``health``, ``fault``, ``rul`` and ``total``; a term with no
        valid label is 0 but stays connected to the graph.

    Shapes:
        targets: ``[C]`` fields; every returned tensor: scalar.
    """
    weights = weights or LossWeights()
    # Labels that are not valid may hold anything (NaN, -1); replace them before any maths.
    health_valid = targets.health_valid
    health_target = torch.where(
        health_valid, targets.component_health, torch.ones_like(targets.component_health)
    )
    health = _masked_mean(
        F.binary_cross_entropy(output.component_health, health_target, reduction="none"),
        health_valid,
    )
    # A machine is as healthy as its worst component with a known health.
    worst = health_target
    machine_target = torch.ones_like(output.machine_health).scatter_reduce(
        0, batch.component_graph, worst, "amin", include_self=True
    )
    machine_valid = torch.zeros_like(output.machine_health).index_add(
        0, batch.component_graph, health_valid.to(worst.dtype)
    )
    health = health + _masked_mean(
        F.binary_cross_entropy(output.machine_health, machine_target, reduction="none"),
        machine_valid > 0,
    )

    fault_index = torch.where(
        targets.fault_valid, targets.fault_index, torch.zeros_like(targets.fault_index)
    )
    fault = _masked_mean(-fault_log_prob(output, batch, fault_index), targets.fault_valid)

    rul_target = torch.where(
        targets.rul_valid, targets.rul_hours.clamp_min(0.0), torch.zeros_like(targets.rul_hours)
    )
    error = torch.log1p(output.rul_hours) - torch.log1p(rul_target)
    nll = 0.5 * (output.rul_log_var + error**2 * torch.exp(-output.rul_log_var))
    rul = _masked_mean(nll, targets.rul_valid)

    forecast = forecast_loss(output, batch)
    total = (
        weights.forecast * forecast
        + weights.health * health
        + weights.fault * fault
        + weights.rul * rul
    )
    return {"forecast": forecast, "health": health, "fault": fault, "rul": rul, "total": total}
