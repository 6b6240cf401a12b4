from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from schemas.spec import SystemSpec, parse_spec
from worker.model.contract import FeatureContract
from worker.model.spec_graph import SpecGraph, SpecGraphCache

CONTRACT = FeatureContract()
TYPES = len(CONTRACT.connection_types)
SAME, SELF, DIRECTION = TYPES, TYPES + 1, TYPES + 2


def _edges(graph: SpecGraph) -> dict[tuple[str, str], list[np.ndarray]]:
    found: dict[tuple[str, str], list[np.ndarray]] = {}
    for (src, dst), attr in zip(graph.edge_index.T, graph.edge_attr, strict=True):
        key = (graph.sensor_ids[src], graph.sensor_ids[dst])
        found.setdefault(key, []).append(attr)
    return found


def test_sensors_of_one_component_are_joined_in_both_directions(press_spec: SystemSpec) -> None:
    edges = _edges(SpecGraph.build(press_spec, CONTRACT))
    pump = ["pump_pressure", "pump_flow", "pump_temp", "pump_vibration"]
    for a in pump:
        for b in pump:
            if a != b:
                (attr,) = edges[(a, b)]
                assert attr[SAME] == 1.0
                assert attr[DIRECTION] == 0.0


def test_connected_components_join_every_sensor_pair_with_direction(press_spec: SystemSpec) -> None:
    edges = _edges(SpecGraph.build(press_spec, CONTRACT))
    hydraulic = CONTRACT.connection_types.index("hydraulic_line")
    (forward,) = edges[("pump_flow", "valve_current")]
    (backward,) = edges[("valve_current", "pump_flow")]
    assert forward[hydraulic] == backward[hydraulic] == 1.0
    assert (forward[DIRECTION], backward[DIRECTION]) == (1.0, -1.0)
    length = DIRECTION + 1 + CONTRACT.edge_attributes.index("length_m")
    assert forward[length] == pytest.approx(np.log1p(2.0))
    assert ("pump_flow", "cylinder_pressure") not in edges  # pump and cylinder are not connected


def test_every_sensor_has_one_self_loop_and_nothing_else_is_duplicated(
    press_spec: SystemSpec,
) -> None:
    graph = SpecGraph.build(press_spec, CONTRACT)
    edges = _edges(graph)
    for sensor in graph.sensor_ids:
        (loop,) = edges[(sensor, sensor)]
        assert loop[SELF] == 1.0
    assert all(len(attrs) == 1 for attrs in edges.values())
    # 4*3 + 2*1 + 2*1 within, 2*(4*2 + 2*2) across, 8 loops
    assert graph.num_edges == 16 + 24 + 8


def test_fault_modes_point_at_their_component_and_affected_sensors(press_spec: SystemSpec) -> None:
    graph = SpecGraph.build(press_spec, CONTRACT)
    leak = graph.fault_ids.index("cylinder_leak")
    assert graph.component_ids[graph.fault_component[leak]] == "cylinder"
    affected = graph.fault_sensor[1][graph.fault_sensor[0] == leak]
    assert sorted(graph.sensor_ids[i] for i in affected) == ["cylinder_pressure", "pump_flow"]
    assert graph.fault_rank.tolist() == [1, 1, 1]


def test_normal_range_maps_to_plus_minus_one_and_a_degenerate_range_uses_critical(
    press_doc: dict[str, Any],
) -> None:
    press_doc["sensors"][0]["normal"] = [50, 50]
    press_doc["sensors"][0]["critical"] = [0, 250]
    graph = SpecGraph.build(parse_spec(press_doc), CONTRACT)
    flow = graph.sensor_index["pump_flow"]
    assert (graph.centre[flow], graph.half_width[flow]) == (42.5, 37.5)
    assert (graph.centre[0], graph.half_width[0]) == (50.0, 125.0)


def test_a_component_without_sensors_still_counts(skid_spec: SystemSpec) -> None:
    graph = SpecGraph.build(skid_spec, CONTRACT)
    assert graph.num_components == 3
    assert set(graph.node_component.tolist()) == {0, 1}


def test_cache_finds_the_same_object_and_an_equal_copy_without_rebuilding(
    press_spec: SystemSpec, skid_spec: SystemSpec
) -> None:
    cache = SpecGraphCache(CONTRACT, maxsize=1)
    first = cache.get(press_spec)
    assert cache.get(press_spec) is first
    assert cache.get(SystemSpec.model_validate(press_spec.model_dump())) is first
    assert (cache.hits, cache.misses) == (2, 1)
    cache.get(skid_spec)  # evicts the press
    assert cache.get(press_spec) is not first
    assert len(cache) == 1


def test_graph_arrays_are_read_only_because_graphs_are_shared(press_spec: SystemSpec) -> None:
    graph = SpecGraph.build(press_spec, CONTRACT)
    with pytest.raises(ValueError, match="read-only"):
        graph.centre[0] = 1.0
