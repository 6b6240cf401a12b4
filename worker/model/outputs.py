"""ModelOutput: what one forward pass says about a batch, and how to split it per snapshot."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import torch
from torch import Tensor

from worker.model.batch import GraphBatch

_NODE: Final = ("forecast", "sensor_anomaly", "sensor_attention")
_COMPONENT: Final = (
    "component_health",
    "normal_prob",
    "normal_logit",
    "rul_hours",
    "rul_log_var",
    "component_anomaly",
    "component_attention",
)
_FAULT: Final = ("fault_prob", "fault_logit")
_GRAPH: Final = ("machine_health",)


@dataclass(frozen=True, eq=False, repr=False)
class ModelOutput:
    """Per-node, per-component, per-fault and per-machine results of one forward pass.

    Indices follow the :class:`~worker.model.batch.GraphBatch` the output came from (or one
    graph of it after :meth:`split`). Each component's candidates are "normal" plus its own
    fault modes: ``normal_prob`` and the ``fault_prob`` of its faults sum to 1.

    Attributes:
        component_health: Health in ``[0, 1]`` (1 = as new).
        normal_prob: Probability that the component has none of its fault modes.
        normal_logit: Unnormalised score behind ``normal_prob``.
        fault_prob: Probability of each fault mode, among its component's candidates.
        fault_logit: Unnormalised score behind ``fault_prob``.
        rul_hours: Remaining useful life, hours (median estimate).
        rul_log_var: Log-variance of ``log1p(rul_hours)``; see :meth:`rul_interval`.
        forecast: Predicted normalised readings of the last H steps.
        sensor_anomaly: Masked forecast RMS residual over the last H steps divided by the
            contract's residual scale for the sensor kind; about 1 in healthy operation
            once trained, 0 when nothing was observed.
        component_anomaly: Largest ``sensor_anomaly`` among the component's sensors.
        sensor_attention: Weight of each sensor in its component's embedding (sums to 1
            per component): which sensors the component's results rest on.
        component_attention: Weight of each component in the machine's embedding.
        machine_health: Health of each machine in ``[0, 1]``.

    Shapes:
        component_health, normal_prob, normal_logit, rul_hours, rul_log_var,
        component_anomaly, component_attention: ``[C]``.
        fault_prob, fault_logit: ``[F]``.
        forecast: ``[N, H]``; sensor_anomaly, sensor_attention: ``[N]``.
        machine_health: ``[num_graphs]``.
    """

    component_health: Tensor
    normal_prob: Tensor
    normal_logit: Tensor
    fault_prob: Tensor
    fault_logit: Tensor
    rul_hours: Tensor
    rul_log_var: Tensor
    forecast: Tensor
    sensor_anomaly: Tensor
    component_anomaly: Tensor
    sensor_attention: Tensor
    component_attention: Tensor
    machine_health: Tensor

    def split(self, batch: GraphBatch) -> list[ModelOutput]:
        """One output per snapshot of ``batch``, as views (no copies).

        Args:
            batch: The batch this output was computed from.

        Returns:
            ``batch.num_graphs`` outputs; output ``g`` is indexed like ``batch.graphs[g]``.

        Raises:
            ValueError: The output does not match the batch's sizes.
        """
        sizes = {
            **dict.fromkeys(_NODE, batch.node_counts),
            **dict.fromkeys(_COMPONENT, batch.component_counts),
            **dict.fromkeys(_FAULT, batch.fault_counts),
            **dict.fromkeys(_GRAPH, (1,) * batch.num_graphs),
        }
        pieces: dict[str, tuple[Tensor, ...]] = {}
        for field in fields(self):
            tensor: Tensor = getattr(self, field.name)
            counts = sizes[field.name]
            if tensor.shape[0] != sum(counts):
                raise ValueError(
                    f"{field.name} has {tensor.shape[0]} rows but the batch needs {sum(counts)}"
                )
            pieces[field.name] = torch.split(tensor, list(counts))
        return [
            ModelOutput(**{name: parts[g] for name, parts in pieces.items()})
            for g in range(batch.num_graphs)
        ]

    def to(self, device: torch.device | str) -> ModelOutput:
        """The same output with every tensor on ``device``."""
        return ModelOutput(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def rul_interval(self, z: float = 1.645) -> tuple[Tensor, Tensor]:
        """Low and high remaining useful life, hours, at ``z`` standard deviations.

        The spread is Gaussian in ``log1p(hours)``, so the interval is skewed upward.

        Args:
            z: Standard deviations each side (1.645: a 90 % interval).

        Returns:
            ``(low, high)``.

        Shapes:
            low, high: ``[C]``.
        """
        centre = torch.log1p(self.rul_hours)
        spread = z * torch.exp(0.5 * self.rul_log_var)
        return torch.expm1((centre - spread).clamp_min(0.0)), torch.expm1(centre + spread)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(graphs={self.machine_health.shape[0]}, "
            f"nodes={self.sensor_anomaly.shape[0]}, "
            f"components={self.component_health.shape[0]}, "
            f"faults={self.fault_prob.shape[0]}, horizon={self.forecast.shape[-1]})"
        )
