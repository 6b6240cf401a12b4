from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from schemas.spec import SystemSpec
from worker.model.batch import GraphSample, collate
from worker.model.contract import FeatureContract
from worker.model.features import encode_window
from worker.model.spec_graph import SpecGraph

CONTRACT = FeatureContract()
MakeReadings = Callable[..., dict[str, list[float | None]]]


def _sample(spec: SystemSpec, make_readings: MakeReadings, seed: int = 0) -> GraphSample:
    graph = SpecGraph.build(spec, CONTRACT)
    return encode_window(graph, make_readings(spec, seed=seed), 1.0, CONTRACT)


def test_collate_offsets_every_index_by_the_graphs_before_it(
    press_spec: SystemSpec, skid_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    press, skid = _sample(press_spec, make_readings), _sample(skid_spec, make_readings)
    batch = collate([press, skid, press])

    assert batch.node_counts == (8, 5, 8)
    assert batch.component_counts == (3, 3, 3)
    assert batch.fault_counts == (3, 2, 3)
    assert (batch.num_graphs, batch.num_nodes, batch.num_components, batch.num_faults) == (
        3,
        21,
        9,
        8,
    )
    assert batch.node_graph.tolist() == [0] * 8 + [1] * 5 + [2] * 8
    assert batch.component_graph.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Every edge stays inside its graph, and its endpoints map to that graph's own edges.
    src, dst = batch.edge_index
    assert torch.equal(batch.node_graph[src], batch.node_graph[dst])
    skid_edges = batch.edge_index[:, batch.node_graph[src] == 1] - 8
    np.testing.assert_array_equal(skid_edges.numpy(), skid.graph.edge_index)
    # Nodes point to components of their own graph; faults to components and nodes of theirs.
    assert torch.equal(batch.component_graph[batch.node_component], batch.node_graph)
    fault_graph = batch.component_graph[batch.fault_component]
    assert fault_graph.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    fault, node = batch.fault_sensor
    assert torch.equal(fault_graph[fault], batch.node_graph[node])
    assert batch.fault_sensor[:, fault_graph[fault] == 2].min() >= 5


def test_collate_keeps_readings_and_static_features_in_order(
    press_spec: SystemSpec, skid_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    samples = [_sample(press_spec, make_readings, 1), _sample(skid_spec, make_readings, 2)]
    batch = collate(samples)
    np.testing.assert_array_equal(batch.x.numpy(), np.concatenate([s.x for s in samples]))
    np.testing.assert_array_equal(batch.mask.numpy(), np.concatenate([s.mask for s in samples]))
    assert batch.x.dtype == batch.edge_attr.dtype == torch.float32
    assert batch.edge_index.dtype == batch.fault_sensor.dtype == torch.int64
    assert batch.edge_attr.shape == (batch.edge_index.shape[1], CONTRACT.edge_dim)
    assert batch.sensor_kind.tolist() == [
        *samples[0].graph.sensor_kind,
        *samples[1].graph.sensor_kind,
    ]


def test_collate_does_not_alias_the_cached_graph_arrays(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    sample = _sample(press_spec, make_readings)
    before = sample.graph.edge_index.copy()
    batch = collate([sample])
    batch.edge_index.add_(100)
    np.testing.assert_array_equal(sample.graph.edge_index, before)


def test_collate_refuses_nothing_and_mixed_window_lengths(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        collate([])
    short = FeatureContract(window_steps=30)
    graph = SpecGraph.build(press_spec, short)
    other = encode_window(graph, make_readings(press_spec), 1.0, short)
    with pytest.raises(ValueError, match="different window lengths"):
        collate([_sample(press_spec, make_readings), other])


def test_to_moves_every_tensor_and_keeps_the_bookkeeping(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    batch = collate([_sample(press_spec, make_readings)])
    moved = batch.to("meta")
    assert moved.device.type == "meta"
    assert moved.fault_sensor.device.type == "meta"
    assert moved.node_counts == batch.node_counts
    assert moved.graphs == batch.graphs
    assert "graphs=1, nodes=8" in repr(batch)
