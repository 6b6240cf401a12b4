"""GraphSample and GraphBatch: one encoded snapshot, and many of them as one disjoint graph.

:func:`collate` concatenates samples (of any mix of specs) into a :class:`GraphBatch` whose
indices are global: node, component and fault indices of graph ``g`` are offset by the
counts of the graphs before it. The per-graph counts are kept to split outputs back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from worker.model.spec_graph import SpecGraph


@dataclass(frozen=True, eq=False, repr=False)
class GraphSample:
    """One snapshot's window, encoded for the model.

    Attributes:
        graph: The static graph of the snapshot's spec.
        x: Normalised readings in spec sensor order; 0 where masked.
        mask: 1.0 where a reading was observed, 0.0 where missing, non-finite or padded.
        nonfinite_count: Readings that were NaN or infinite (masked).
        missing_sensors: Spec sensors with no usable reading in the window.
        covered_steps: Model steps (of T) the window spans after resampling; fewer than T
            means the steps before it are padding. ``None`` where the sample was not built
            by :func:`~worker.model.features.encode_window` (unknown).

    Shapes:
        x, mask: ``[S, T]`` float32.
    """

    graph: SpecGraph
    x: npt.NDArray[np.float32]
    mask: npt.NDArray[np.float32]
    nonfinite_count: int
    missing_sensors: tuple[str, ...]
    covered_steps: int | None = None

    @property
    def padded_steps(self) -> int:
        """Model steps before the window's first sample (0 when it covers the whole window
        or when ``covered_steps`` is unknown)."""
        if self.covered_steps is None:
            return 0
        return max(0, int(self.x.shape[1]) - self.covered_steps)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(spec={self.graph.name!r}, shape={tuple(self.x.shape)}, "
            f"observed={float(self.mask.mean()):.3f}, nonfinite_count={self.nonfinite_count}, "
            f"missing_sensors={len(self.missing_sensors)}, covered_steps={self.covered_steps})"
        )


@dataclass(frozen=True, eq=False, repr=False)
class GraphBatch:
    """Many encoded snapshots as one disjoint graph, ready for one forward pass.

    Attributes:
        x: Normalised readings, 0 where masked.
        mask: Observation mask.
        sensor_kind: Sensor kind index per node.
        component_type: Component-type bucket of each node's component.
        node_component: Global component index of each node.
        node_graph: Graph (snapshot) index of each node.
        edge_index: Global source and target node of each edge.
        edge_attr: Edge features.
        component_bucket: Component-type bucket of each component.
        component_graph: Graph index of each component.
        fault_component: Global component index of each fault mode.
        fault_rank: 1-based position of each fault among its component's candidates.
        fault_sensor: Pairs (global fault index, global node index).
        sensor_key: Identity key of each node's sensor (:attr:`SpecGraph.sensor_key`).
        fault_key: Identity key of each fault mode (:attr:`SpecGraph.fault_key`).
        component_edges: Global source and target component of each connection pair.
        graphs: The static graph of each snapshot, in batch order.
        node_counts: Nodes per graph.
        component_counts: Components per graph.
        fault_counts: Fault modes per graph.

    Shapes:
        x, mask: ``[N, T]`` float32.
        sensor_kind, component_type, node_component, node_graph: ``[N]`` int64.
        edge_index: ``[2, E]`` int64; edge_attr: ``[E, D_e]`` float32.
        component_bucket, component_graph: ``[C]`` int64.
        fault_component, fault_rank: ``[F]`` int64; fault_sensor: ``[2, P]`` int64.
        sensor_key: ``[N]`` int64; fault_key: ``[F]`` int64; component_edges: ``[2, K]``
            int64.
        node_counts, component_counts, fault_counts: ``num_graphs`` ints.
    """

    x: Tensor
    mask: Tensor
    sensor_kind: Tensor
    component_type: Tensor
    node_component: Tensor
    node_graph: Tensor
    edge_index: Tensor
    edge_attr: Tensor
    component_bucket: Tensor
    component_graph: Tensor
    fault_component: Tensor
    fault_rank: Tensor
    fault_sensor: Tensor
    sensor_key: Tensor
    fault_key: Tensor
    component_edges: Tensor
    graphs: tuple[SpecGraph, ...]
    node_counts: tuple[int, ...]
    component_counts: tuple[int, ...]
    fault_counts: tuple[int, ...]

    @property
    def num_graphs(self) -> int:
        """Snapshots in the batch."""
        return len(self.graphs)

    @property
    def num_nodes(self) -> int:
        """Sensor nodes N over all graphs (what the batcher bounds)."""
        return int(self.x.shape[0])

    @property
    def num_components(self) -> int:
        """Components C over all graphs."""
        return int(self.component_graph.shape[0])

    @property
    def num_faults(self) -> int:
        """Fault modes F over all graphs."""
        return int(self.fault_component.shape[0])

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.x.device

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> GraphBatch:
        """The same batch with every tensor on ``device``."""
        moved = {
            field.name: getattr(self, field.name).to(device, non_blocking=non_blocking)
            for field in fields(self)
            if isinstance(getattr(self, field.name), Tensor)
        }
        return replace(self, **moved)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(graphs={self.num_graphs}, nodes={self.num_nodes}, "
            f"edges={int(self.edge_index.shape[1])}, components={self.num_components}, "
            f"faults={self.num_faults}, steps={int(self.x.shape[1])}, device={self.device})"
        )


def _offsets(counts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return np.cumsum(counts) - counts


def collate(samples: Sequence[GraphSample]) -> GraphBatch:
    """Concatenate encoded snapshots into one batch with global indices.

    Args:
        samples: At least one sample; all encoded under the same contract.

    Returns:
        The batch, on the CPU.

    Raises:
        ValueError: No samples, or windows of different lengths.

    Shapes:
        See :class:`GraphBatch`.
    """
    if not samples:
        raise ValueError("collate needs at least one sample")
    steps = {sample.x.shape[1] for sample in samples}
    if len(steps) != 1:
        raise ValueError(f"samples have different window lengths: {sorted(steps)}")
    graphs = tuple(sample.graph for sample in samples)

    nodes = np.array([g.num_nodes for g in graphs], dtype=np.int64)
    components = np.array([g.num_components for g in graphs], dtype=np.int64)
    faults = np.array([g.num_faults for g in graphs], dtype=np.int64)
    edges = np.array([g.num_edges for g in graphs], dtype=np.int64)
    pairs = np.array([g.fault_sensor.shape[1] for g in graphs], dtype=np.int64)
    links = np.array([g.component_edges.shape[1] for g in graphs], dtype=np.int64)
    node_offset = _offsets(nodes)
    component_offset = _offsets(components)
    fault_offset = _offsets(faults)
    graph_ids = np.arange(len(graphs), dtype=np.int64)

    def cat(name: str, axis: int = 0) -> npt.NDArray[np.int64]:
        return np.concatenate([getattr(g, name) for g in graphs], axis=axis)

    fault_shift = np.stack([np.repeat(fault_offset, pairs), np.repeat(node_offset, pairs)])
    arrays: dict[str, npt.NDArray[np.generic]] = {
        "x": np.concatenate([s.x for s in samples]),
        "mask": np.concatenate([s.mask for s in samples]),
        "sensor_kind": cat("sensor_kind"),
        "component_type": cat("component_type"),
        "node_component": cat("node_component") + np.repeat(component_offset, nodes),
        "node_graph": np.repeat(graph_ids, nodes),
        "edge_index": cat("edge_index", axis=1) + np.repeat(node_offset, edges),
        "edge_attr": np.concatenate([g.edge_attr for g in graphs]),
        "component_bucket": cat("component_bucket"),
        "component_graph": np.repeat(graph_ids, components),
        "fault_component": cat("fault_component") + np.repeat(component_offset, faults),
        "fault_rank": cat("fault_rank"),
        "fault_sensor": cat("fault_sensor", axis=1) + fault_shift,
        "sensor_key": cat("sensor_key"),
        "fault_key": cat("fault_key"),
        "component_edges": cat("component_edges", axis=1) + np.repeat(component_offset, links),
    }
    tensors = {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in arrays.items()}
    return GraphBatch(
        **tensors,
        graphs=graphs,
        node_counts=tuple(nodes.tolist()),
        component_counts=tuple(components.tolist()),
        fault_counts=tuple(faults.tolist()),
    )
