"""UniversalTemporalGNN: one model for every machine spec whose sensor kinds it knows.

Nodes are sensors. A shared temporal encoder turns each sensor's window (the first T - H
steps, with its mask) into a vector once, and (``window_stats``) a small MLP over the
window's summary statistics adds another; learned embeddings of the sensor kind and the
component type are added; GATv2 layers with edge features pass messages within components
and across connections, once per snapshot. Attention pools sensors into components and
components into the machine. Heads read component health, a fault distribution over each
component's own candidates ("normal" plus its fault modes, however many the spec lists),
remaining useful life with its uncertainty, and a forecast of the last H steps whose
residual is each sensor's anomaly score. Nothing depends on the order of sensors,
components or connections in a spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv
from torch_geometric.utils import softmax

from service.errors import ConfigurationError
from worker.model.batch import GraphBatch
from worker.model.contract import FeatureContract
from worker.model.outputs import ModelOutput
from worker.model.pooling import AttentionPool
from worker.model.statistics import StatisticsEncoder
from worker.model.temporal import TEMPORAL_POOLS, TemporalEncoder, last_observed

_LOG_VAR_BOUND = 10.0
_MIN_OBSERVED = 1e-3  # floor of the observed fraction inside the attention log-prior


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`UniversalTemporalGNN`; saved with each checkpoint.

    Attributes:
        hidden: Width of node, component and machine vectors.
        layers: GATv2 message-passing layers.
        heads: Attention heads per layer (``hidden`` must divide by it).
        dropout: Dropout on attention and layer outputs (training only).
        temporal_channels: Channels of the temporal convolutions.
        dilations: Dilation of each temporal convolution.
        kernel_size: Width of the temporal convolutions.
        temporal_pool: Poolings of the temporal convolution features over time, among
            ``last``, ``mean``, ``max`` and ``segments`` (see
            :class:`~worker.model.temporal.TemporalEncoder`); the default is the original
            architecture, so checkpoints saved without this key load unchanged.
        temporal_segments: Parts of the window of the ``segments`` temporal pooling.
        rul_unit_hours: Scale of the remaining-useful-life head's output.
        window_stats: Add a per-sensor branch over the window's summary statistics (mean,
            standard deviation, min, max, mean absolute first difference, last observed
            value, observed fraction; :class:`~worker.model.statistics.StatisticsEncoder`)
            to the sensor embedding before message passing. On for new models; a
            checkpoint saved without this key was built without the branch and loads with
            it off (see :meth:`from_dict`).
        identity_buckets: Buckets of the learned identity embeddings of sensors and fault
            modes (their :attr:`~worker.model.spec_graph.SpecGraph.sensor_key` and
            ``fault_key`` modulo this), 0 for none. Without them, sensors of one kind on one
            component are interchangeable to the model and fault modes that list the same
            affected sensors always score alike; with them, each trained sensor and fault
            learns its own offset. The embeddings start at zero and an identity no training
            sample carried stays zero, so a spec the model never saw is read as without them.
            Configs saved before this key load with 0 (see :meth:`from_dict`).
        component_messages: After sensors are pooled into components, each component adds
            a message from the components its connections join (the mean of their vectors
            through an MLP), so that a component without sensors of its own (a valve
            between two pressure sensors' components) is read from its neighbours instead
            of from its type alone. Configs saved before this key load with it off.
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    temporal_channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    kernel_size: int = 3
    temporal_pool: tuple[str, ...] = ("last", "mean")
    temporal_segments: int = 4
    rul_unit_hours: float = 100.0
    window_stats: bool = True
    identity_buckets: int = 512
    component_messages: bool = True

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.hidden < 2 or self.hidden % self.heads:
            problems.append(f"hidden ({self.hidden}) must be >= 2 and divisible by heads")
        if self.heads < 1 or self.layers < 1:
            problems.append(f"heads ({self.heads}) and layers ({self.layers}) must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if self.temporal_channels < 1 or self.kernel_size < 1:
            problems.append("temporal_channels and kernel_size must be >= 1")
        if not self.dilations or min(self.dilations) < 1:
            problems.append(f"dilations must be positive, got {list(self.dilations)}")
        pools = self.temporal_pool
        if not pools or set(pools) - set(TEMPORAL_POOLS) or len(set(pools)) != len(pools):
            problems.append(
                f"temporal_pool must be distinct names among {list(TEMPORAL_POOLS)}, "
                f"got {list(pools)}"
            )
        if self.temporal_segments < 1:
            problems.append(f"temporal_segments must be >= 1, got {self.temporal_segments}")
        for name in ("window_stats", "component_messages"):
            flag: object = getattr(self, name)  # JSON may hold anything here
            if not isinstance(flag, bool):
                problems.append(f"{name} must be true or false, got {flag!r}")
        if self.identity_buckets < 0:
            problems.append(f"identity_buckets must be >= 0, got {self.identity_buckets}")
        if not self.rul_unit_hours > 0:
            problems.append(f"rul_unit_hours must be > 0, got {self.rul_unit_hours}")
        if problems:
            raise ConfigurationError("invalid model config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready form for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config saved by :meth:`to_dict`.

        Raises:
            ConfigurationError: Unknown keys or invalid values.
        """
        unknown = sorted(set(data) - {field.name for field in fields(cls)})
        if unknown:
            raise ConfigurationError(f"invalid model config: unknown keys {', '.join(unknown)}")
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
        }
        # Configs saved before the statistics branch existed describe models without it.
        values.setdefault("window_stats", False)
        values.setdefault("identity_buckets", 0)
        values.setdefault("component_messages", False)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigurationError(f"invalid model config: {exc}") from None


def _mlp(in_features: int, hidden: int, out_features: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, out_features))


def neighbour_mean(component: Tensor, batch: GraphBatch) -> Tensor:
    """Mean vector of each component's connected neighbours (0 for none).

    Shapes:
        component: ``[C, hidden]``; returned: ``[C, hidden]``.
    """
    source, target = batch.component_edges[0], batch.component_edges[1]
    ones = torch.ones_like(target, dtype=component.dtype)
    count = torch.zeros(component.shape[0], dtype=component.dtype, device=component.device)
    count = count.index_add(0, target, ones).clamp_min(1.0)
    total = torch.zeros_like(component).index_add(0, target, component[source])
    return total / count[:, None]


def _identity(buckets: int, width: int) -> nn.Embedding | None:
    """A zero-initialised embedding of identity keys (``None`` for 0 buckets)."""
    if not buckets:
        return None
    embedding = nn.Embedding(buckets, width)
    nn.init.zeros_(embedding.weight)
    return embedding


class UniversalTemporalGNN(nn.Module):
    """Diagnose any machine from a batch of encoded snapshots in one forward pass.

    Args:
        config: Hyper-parameters.
        contract: Feature contract the inputs were encoded under (vocabulary sizes, edge
            width, window and horizon, residual scales).
    """

    residual_scale: Tensor

    def __init__(self, config: ModelConfig, contract: FeatureContract) -> None:
        super().__init__()
        self.config = config
        self.contract = contract
        width = config.hidden
        self.temporal = TemporalEncoder(
            width,
            channels=config.temporal_channels,
            dilations=config.dilations,
            kernel_size=config.kernel_size,
            pools=config.temporal_pool,
            segments=config.temporal_segments,
        )
        self.kind_embedding = nn.Embedding(len(contract.sensor_kinds), width)
        self.type_embedding = nn.Embedding(contract.component_type_buckets, width)
        self.input_norm = nn.LayerNorm(width)
        self.convs = nn.ModuleList(
            GATv2Conv(
                width,
                width // config.heads,
                heads=config.heads,
                edge_dim=contract.edge_dim,
                add_self_loops=False,  # SpecGraph has explicit self loops with their own slot
                dropout=config.dropout,
            )
            for _ in range(config.layers)
        )
        self.conv_norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)
        self.sensor_pool = AttentionPool(width)
        self.component_norm = nn.LayerNorm(width)
        self.machine_pool = AttentionPool(width)
        self.forecast_head = _mlp(width, width, contract.forecast_horizon)
        self.health_head = _mlp(2 * width, width, 1)
        self.normal_head = _mlp(2 * width, width, 1)
        self.fault_head = _mlp(3 * width + 2, width, 1)
        self.rul_head = _mlp(2 * width, width, 2)
        self.machine_head = nn.Linear(width, 1)
        self.component_message = _mlp(width, width, width) if config.component_messages else None
        # Built last, so that under one seed every other weight starts the same with or
        # without it (a like-for-like comparison of the two).
        self.statistics = StatisticsEncoder(width) if config.window_stats else None
        self.sensor_identity = _identity(config.identity_buckets, width)
        self.fault_identity = _identity(config.identity_buckets, width)
        # Derived from the contract (saved with the checkpoint), so not part of state_dict.
        self.register_buffer(
            "residual_scale",
            torch.tensor(contract.residual_scales(), dtype=torch.float32),
            persistent=False,
        )

    def num_parameters(self) -> int:
        """Trainable parameter count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, batch: GraphBatch) -> ModelOutput:
        """Diagnose every snapshot of ``batch``.

        Args:
            batch: Collated samples encoded under this model's contract.

        Returns:
            Results per node, component, fault mode and machine (shapes in
            :class:`~worker.model.outputs.ModelOutput`).

        Raises:
            ValueError: The batch's window length is not the contract's.

        Shapes:
            batch.x, batch.mask: ``[N, T]``; see :class:`~worker.model.batch.GraphBatch`.
            returned: ``[C]``, ``[F]``, ``[N]``, ``[N, H]`` and ``[num_graphs]`` fields.
        """
        steps, split = self.contract.window_steps, self.contract.encoder_steps
        if batch.x.shape[1] != steps:
            raise ValueError(f"batch windows have {batch.x.shape[1]} steps, contract {steps}")
        x_seen, mask_seen = batch.x[:, :split], batch.mask[:, :split]
        num_components, num_graphs = batch.num_components, batch.num_graphs

        h = self.temporal(x_seen, mask_seen)
        if self.statistics is not None:
            # Of the first T - H steps too: the forecast must not read the steps it predicts.
            h = h + self.statistics(x_seen, mask_seen)
        h = h + self.kind_embedding(batch.sensor_kind) + self.type_embedding(batch.component_type)
        if self.sensor_identity is not None:
            h = h + self.sensor_identity(batch.sensor_key % self.config.identity_buckets)
        h = self.input_norm(h)
        for conv, norm in zip(self.convs, self.conv_norms, strict=True):
            update = conv(h, batch.edge_index, batch.edge_attr)
            h = norm(h + self.dropout(F.silu(update)))

        forecast = last_observed(x_seen, mask_seen)[:, None] + self.forecast_head(h)
        sensor_anomaly = self._anomaly(forecast.detach(), batch, split)

        observed = batch.mask.mean(dim=1).clamp_min(_MIN_OBSERVED)
        component, sensor_attention = self.sensor_pool(
            h, batch.node_component, num_components, bias=torch.log(observed)
        )
        component = component + self.type_embedding(batch.component_bucket)
        if self.component_message is not None:
            component = component + self.component_message(neighbour_mean(component, batch))
        component = self.component_norm(component)
        machine, component_attention = self.machine_pool(
            component, batch.component_graph, num_graphs
        )
        context = torch.cat([component, machine[batch.component_graph]], dim=1)

        normal_logit = self.normal_head(context).squeeze(-1)
        fault_logit = self._fault_logits(h, context, sensor_anomaly, batch)
        probability = softmax(
            torch.cat([normal_logit, fault_logit]),
            torch.cat([torch.arange(num_components, device=h.device), batch.fault_component]),
            num_nodes=num_components,
        )
        rul_raw, log_var = self.rul_head(context).unbind(dim=-1)
        component_anomaly = torch.zeros_like(normal_logit).scatter_reduce(
            0, batch.node_component, sensor_anomaly, reduce="amax", include_self=True
        )
        return ModelOutput(
            component_health=torch.sigmoid(self.health_head(context).squeeze(-1)),
            normal_prob=probability[:num_components],
            normal_logit=normal_logit,
            fault_prob=probability[num_components:],
            fault_logit=fault_logit,
            rul_hours=F.softplus(rul_raw) * self.config.rul_unit_hours,
            rul_log_var=_LOG_VAR_BOUND * torch.tanh(log_var / _LOG_VAR_BOUND),
            forecast=forecast,
            sensor_anomaly=sensor_anomaly,
            component_anomaly=component_anomaly,
            sensor_attention=sensor_attention,
            component_attention=component_attention,
            machine_health=torch.sigmoid(self.machine_head(machine).squeeze(-1)),
        )

    def _anomaly(self, forecast: Tensor, batch: GraphBatch, split: int) -> Tensor:
        """Masked RMS forecast residual per sensor over the horizon, per-kind scaled.

        Shapes:
            forecast: ``[N, H]``; returned: ``[N]`` (0 where nothing was observed).
        """
        mask = batch.mask[:, split:]
        squared = ((forecast - batch.x[:, split:]) * mask) ** 2
        rms = torch.sqrt(squared.sum(dim=1) / mask.sum(dim=1).clamp_min(1.0))
        return rms / self.residual_scale[batch.sensor_kind]

    def _fault_logits(
        self, h: Tensor, context: Tensor, sensor_anomaly: Tensor, batch: GraphBatch
    ) -> Tensor:
        """Score each fault mode from its component and a summary of its affected sensors.

        The summary is the mean embedding of the affected sensors (plus the fault's own
        identity embedding, with ``identity_buckets``) and the mean and max of
        their ``log1p`` anomaly scores (detached: the forecast learns only to forecast).

        Shapes:
            h: ``[N, hidden]``; context: ``[C, 2 * hidden]``; sensor_anomaly: ``[N]``.
            returned: ``[F]``.
        """
        fault, node = batch.fault_sensor[0], batch.fault_sensor[1]
        num_faults = batch.num_faults
        ones = torch.ones_like(fault, dtype=h.dtype)
        count = torch.zeros(num_faults, dtype=h.dtype, device=h.device).index_add(0, fault, ones)
        count = count.clamp_min(1.0)
        summary = torch.zeros(num_faults, h.shape[1], dtype=h.dtype, device=h.device)
        summary = summary.index_add(0, fault, h[node]) / count[:, None]
        if self.fault_identity is not None:
            summary = summary + self.fault_identity(batch.fault_key % self.config.identity_buckets)
        anomaly = torch.log1p(sensor_anomaly)[node]
        zeros = torch.zeros(num_faults, dtype=h.dtype, device=h.device)
        anomaly_mean = zeros.index_add(0, fault, anomaly) / count
        anomaly_max = zeros.scatter_reduce(0, fault, anomaly, reduce="amax", include_self=True)
        features = torch.cat(
            [
                context[batch.fault_component],
                summary,
                anomaly_mean[:, None],
                anomaly_max[:, None],
            ],
            dim=1,
        )
        logits: Tensor = self.fault_head(features).squeeze(-1)
        return logits

    def extra_repr(self) -> str:
        return f"config={self.config!r},\ncontract={self.contract!r}"
