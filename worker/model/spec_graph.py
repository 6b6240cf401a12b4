"""SpecGraph: everything static about a machine spec, as arrays, built once per spec.

A spec becomes a graph whose nodes are its sensors. Edges join every ordered pair of sensors
on one component, every ordered pair of sensors across two components that a connection
joins (both directions), and each sensor to itself. Readings are normalised by the spec's
own normal range, so that healthy operation falls in ``[-1, 1]`` on any machine: this is
what lets one model serve machines it never saw.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from schemas.spec import SystemSpec
from worker.model.contract import QUANTILE_SPAN, FeatureContract

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]

_TINY = 1e-9
_K = TypeVar("_K")
_V = TypeVar("_V")


@dataclass(frozen=True, eq=False, repr=False)
class SpecGraph:
    """Static graph of one spec under one :class:`FeatureContract`.

    Indices are local to the spec: sensors (nodes) and components in spec order.

    Attributes:
        name: The spec's machine name.
        sensor_ids: Node order.
        component_ids: Component order.
        fault_ids: Fault mode order.
        sensor_index: Node index of each sensor id.
        sensor_kind: Sensor kind index per node (contract vocabulary).
        component_type: Component-type bucket of each node's component.
        component_bucket: Component-type bucket of each component.
        node_component: Component index of each node.
        edge_index: Source and target node of each edge.
        edge_attr: Edge features (layout in :attr:`FeatureContract.edge_dim`).
        centre: Middle of each sensor's normal range, in its unit.
        half_width: Half the width of each sensor's normal range (never zero).
        fault_component: Component index of each fault mode.
        fault_rank: Position of each fault among its component's candidates, 1-based
            (0 is "normal").
        fault_sensor: Pairs (fault index, node index) of each fault's affected sensors.
        sensor_key: Stable key of each sensor's identity (CRC-32 of ``component/sensor``),
            which a model may embed (:attr:`~worker.model.gnn.ModelConfig.identity_buckets`)
            to tell apart sensors of one kind on one component.
        fault_key: Stable key of each fault mode's identity (CRC-32 of
            ``component/fault``), so that faults sharing affected sensors can score apart.
        component_edges: Source and target component of each pair of components a
            connection joins, both directions, no self loops, each pair once.
        input_knots: Node index -> ``(readings, scaled)`` of each sensor the contract scales
            by its training quantiles (:attr:`FeatureContract.input_quantiles`): increasing
            readings and where each lands; empty when every sensor is scaled by its range.

    Shapes:
        sensor_kind, component_type, node_component, centre, half_width: ``[S]``.
        component_bucket: ``[C]``.
        edge_index: ``[2, E]``; edge_attr: ``[E, D_e]``.
        fault_component, fault_rank: ``[F]``; fault_sensor: ``[2, P]``.
        sensor_key: ``[S]``; fault_key: ``[F]``; component_edges: ``[2, K]``.
    """

    name: str
    sensor_ids: tuple[str, ...]
    component_ids: tuple[str, ...]
    fault_ids: tuple[str, ...]
    sensor_index: Mapping[str, int]
    sensor_kind: IntArray
    component_type: IntArray
    component_bucket: IntArray
    node_component: IntArray
    edge_index: IntArray
    edge_attr: FloatArray
    centre: npt.NDArray[np.float64]
    half_width: npt.NDArray[np.float64]
    fault_component: IntArray
    fault_rank: IntArray
    fault_sensor: IntArray
    sensor_key: IntArray
    fault_key: IntArray
    component_edges: IntArray
    component_links: tuple[tuple[tuple[str, int], ...], ...] = ()
    input_knots: Mapping[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def __post_init__(self) -> None:
        # Graphs are cached and shared by every sample of a spec: make accidents loud.
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                value.setflags(write=False)

    @functools.cached_property
    def component_sensors(self) -> tuple[IntArray, ...]:
        """Node indices of each component's sensors."""
        return tuple(np.flatnonzero(self.node_component == c) for c in range(self.num_components))

    @functools.cached_property
    def component_faults(self) -> tuple[IntArray, ...]:
        """Fault-mode indices of each component."""
        return tuple(np.flatnonzero(self.fault_component == c) for c in range(self.num_components))

    @property
    def num_nodes(self) -> int:
        """Number of sensors S."""
        return len(self.sensor_ids)

    @property
    def num_components(self) -> int:
        """Number of components C."""
        return len(self.component_ids)

    @property
    def num_faults(self) -> int:
        """Number of fault modes F."""
        return len(self.fault_ids)

    @property
    def num_edges(self) -> int:
        """Number of directed edges E, self loops included."""
        return int(self.edge_index.shape[1])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, nodes={self.num_nodes}, "
            f"components={self.num_components}, edges={self.num_edges}, "
            f"faults={self.num_faults})"
        )

    @classmethod
    def build(cls, spec: SystemSpec, contract: FeatureContract) -> SpecGraph:
        """Compute the graph of ``spec``; prefer :class:`SpecGraphCache` on hot paths.

        Args:
            spec: A validated machine description.
            contract: Vocabularies, attribute names and buckets to encode with.

        Returns:
            The static graph.
        """
        component_index = spec.component_index
        sensor_index = spec.sensor_index
        node_component = np.array(
            [component_index[s.component] for s in spec.sensors], dtype=np.int64
        )
        component_bucket = np.array(
            [contract.component_type_bucket(c.type) for c in spec.components], dtype=np.int64
        )
        edge_index, edge_attr = _edges(spec, contract, node_component)

        faults_of: dict[str, int] = {}
        fault_rank = np.empty(len(spec.fault_modes), dtype=np.int64)
        pairs: list[tuple[int, int]] = []
        for index, fault in enumerate(spec.fault_modes):
            faults_of[fault.component] = faults_of.get(fault.component, 0) + 1
            fault_rank[index] = faults_of[fault.component]
            pairs += [(index, sensor_index[sid]) for sid in fault.affected_sensors]

        centre, half_width = _normalisation(spec)
        return cls(
            name=spec.name,
            sensor_ids=spec.sensor_ids,
            component_ids=spec.component_ids,
            fault_ids=spec.fault_ids,
            sensor_index=MappingProxyType(dict(sensor_index)),
            sensor_kind=np.array(
                [contract.kind_index(s.kind) for s in spec.sensors], dtype=np.int64
            ),
            component_type=component_bucket[node_component],
            component_bucket=component_bucket,
            node_component=node_component,
            edge_index=edge_index,
            edge_attr=edge_attr,
            centre=centre,
            half_width=half_width,
            fault_component=np.array(
                [component_index[f.component] for f in spec.fault_modes], dtype=np.int64
            ),
            fault_rank=fault_rank,
            fault_sensor=np.array(pairs, dtype=np.int64).reshape(-1, 2).T.copy(),
            sensor_key=_keys(f"{s.component}/{s.id}" for s in spec.sensors),
            fault_key=_keys(f"{f.component}/{f.id}" for f in spec.fault_modes),
            component_edges=_component_edges(spec),
            component_links=_links(spec),
            input_knots=MappingProxyType(_knots(spec, contract)),
        )


def _keys(names: Iterable[str]) -> IntArray:
    """CRC-32 of each name: the same in every process and run."""
    return np.array([zlib.crc32(name.encode("utf-8")) for name in names], dtype=np.int64)


def _component_edges(spec: SystemSpec) -> IntArray:
    index = spec.component_index
    pairs = set()
    for connection in spec.connections:
        source, target = index[connection.source], index[connection.target]
        if source != target:
            pairs |= {(source, target), (target, source)}
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2).T.copy()


def _links(spec: SystemSpec) -> tuple[tuple[tuple[str, int], ...], ...]:
    """Per component: each connection touching it, as (``source->target``, other end)."""
    index = spec.component_index
    links: list[list[tuple[str, int]]] = [[] for _ in spec.components]
    for connection in spec.connections:
        name = f"{connection.source}->{connection.target}"
        source, target = index[connection.source], index[connection.target]
        links[source].append((name, target))
        if target != source:
            links[target].append((name, source))
    return tuple(tuple(items) for items in links)


def _knots(
    spec: SystemSpec, contract: FeatureContract
) -> dict[int, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Piecewise-linear scaling of each sensor with training quantiles: tied knots (a value
    that fills several quantiles) become one, landing at the middle of their targets."""
    out = {}
    for sensor, knots in contract.quantiles_of(spec.name).items():
        node = spec.sensor_index.get(sensor)
        values = np.asarray(knots, dtype=np.float64)
        targets = np.linspace(-QUANTILE_SPAN, QUANTILE_SPAN, values.size)
        unique, inverse = np.unique(values, return_inverse=True)
        if node is None or unique.size < 2:
            continue  # a constant sensor keeps its normal range
        landed = np.bincount(inverse, weights=targets) / np.bincount(inverse)
        for array in (unique, landed):
            array.setflags(write=False)
        out[node] = (unique, landed)
    return out


def _normalisation(
    spec: SystemSpec,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    normal = np.array([s.normal for s in spec.sensors], dtype=np.float64)
    critical = np.array([s.critical for s in spec.sensors], dtype=np.float64)
    centre = normal.mean(axis=1)
    half = (normal[:, 1] - normal[:, 0]) / 2
    # A degenerate normal range (min == max) falls back to the critical range, then to 1.
    tiny = _TINY * np.maximum(1.0, np.abs(centre))
    half = np.where(half > tiny, half, (critical[:, 1] - critical[:, 0]) / 2)
    half = np.where(half > tiny, half, 1.0)
    return centre, half


def _edges(
    spec: SystemSpec, contract: FeatureContract, node_component: IntArray
) -> tuple[IntArray, FloatArray]:
    num_types = len(contract.connection_types)
    same_slot, self_slot, direction_slot = num_types, num_types + 1, num_types + 2
    nodes_of = [np.flatnonzero(node_component == c) for c in range(len(spec.components))]
    sources: list[IntArray] = []
    targets: list[IntArray] = []
    attrs: list[FloatArray] = []

    def add(src: IntArray, dst: IntArray, attr: FloatArray) -> None:
        sources.append(src)
        targets.append(dst)
        attrs.append(np.broadcast_to(attr, (src.size, attr.size)))

    for nodes in nodes_of:
        src, dst = np.meshgrid(nodes, nodes, indexing="ij")
        keep = src != dst
        attr = np.zeros(contract.edge_dim, dtype=np.float32)
        attr[same_slot] = 1.0
        add(src[keep], dst[keep], attr)

    component_index = spec.component_index
    for link in spec.connections:
        upstream = nodes_of[component_index[link.source]]
        downstream = nodes_of[component_index[link.target]]
        attr = np.zeros(contract.edge_dim, dtype=np.float32)
        if link.type in contract.connection_types:
            attr[contract.connection_types.index(link.type)] = 1.0
        for offset, name in enumerate(contract.edge_attributes):
            value = link.attributes.get(name, 0.0)
            attr[direction_slot + 1 + offset] = np.sign(value) * np.log1p(abs(value))
        src, dst = np.meshgrid(upstream, downstream, indexing="ij")
        forward = attr.copy()
        forward[direction_slot] = 1.0
        backward = attr.copy()
        backward[direction_slot] = -1.0
        add(src.ravel(), dst.ravel(), forward)
        add(dst.ravel(), src.ravel(), backward)

    loops = np.arange(node_component.size, dtype=np.int64)
    attr = np.zeros(contract.edge_dim, dtype=np.float32)
    attr[self_slot] = 1.0
    add(loops, loops, attr)

    edge_index = np.stack([np.concatenate(sources), np.concatenate(targets)]).astype(np.int64)
    edge_attr = np.concatenate(attrs).astype(np.float32)
    return edge_index, edge_attr


class SpecGraphCache:
    """Least-recently-used cache of :class:`SpecGraph` for one contract; thread-safe.

    A spec object seen before is found by identity (the cache holds it, so its id cannot be
    reused while cached); a new object with the same content, as every inline spec of a
    deserialised snapshot is, is found by a SHA-256 digest of its JSON.

    Args:
        contract: The contract every graph is built under.
        maxsize: Most distinct specs kept.
    """

    def __init__(self, contract: FeatureContract, *, maxsize: int = 256) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.contract = contract
        self.maxsize = maxsize
        self._by_identity: OrderedDict[int, tuple[SystemSpec, SpecGraph]] = OrderedDict()
        self._by_digest: OrderedDict[str, SpecGraph] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, spec: SystemSpec) -> SpecGraph:
        """The graph of ``spec``, built on first sight.

        Args:
            spec: A validated machine description; treated as immutable.

        Returns:
            The cached or freshly built graph.
        """
        with self._lock:
            entry = self._by_identity.get(id(spec))
            if entry is not None and entry[0] is spec:
                self._by_identity.move_to_end(id(spec))
                self.hits += 1
                return entry[1]
        digest = hashlib.sha256(spec.model_dump_json().encode("utf-8")).hexdigest()
        with self._lock:
            graph = self._by_digest.get(digest)
            if graph is not None:
                self._by_digest.move_to_end(digest)
                self.hits += 1
            else:
                self.misses += 1
        if graph is None:
            graph = SpecGraph.build(spec, self.contract)
        with self._lock:
            self._remember(self._by_digest, digest, graph)
            self._remember(self._by_identity, id(spec), (spec, graph))
        return graph

    def _remember(self, store: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        store[key] = value
        store.move_to_end(key)
        while len(store) > self.maxsize:
            store.popitem(last=False)

    def __len__(self) -> int:
        return len(self._by_digest)

    def clear(self) -> None:
        """Forget every graph."""
        with self._lock:
            self._by_identity.clear()
            self._by_digest.clear()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(contract={self.contract!r}, maxsize={self.maxsize}, "
            f"size={len(self)}, hits={self.hits}, misses={self.misses})"
        )
