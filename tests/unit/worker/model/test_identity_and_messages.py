"""Identity embeddings of sensors and fault modes, and messages between connected
components: what they let a model tell apart, and checkpoints saved before them."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from schemas.spec import SystemSpec, parse_spec
from service.errors import ConfigurationError
from worker.model import (
    FeatureContract,
    ModelConfig,
    SpecGraph,
    UniversalTemporalGNN,
    collate,
    encode_window,
)
from worker.model.gnn import neighbour_mean

CONTRACT = FeatureContract()


def _twin_faults(press_doc: dict[str, Any]) -> SystemSpec:
    """The press with a second pump fault listing exactly the first one's sensors."""
    doc = copy.deepcopy(press_doc)
    doc["fault_modes"].append(
        {"id": "pump_cavitation", "component": "pump",
         "affected_sensors": ["pump_pressure", "pump_flow", "pump_temp"]}
    )  # fmt: skip
    return parse_spec(doc)


def _batch(spec: SystemSpec, readings: dict[str, list[float | None]]) -> Any:
    return collate([encode_window(SpecGraph.build(spec, CONTRACT), readings, 1.0, CONTRACT)])


def _randomise_identities(model: UniversalTemporalGNN) -> None:
    assert model.sensor_identity is not None
    assert model.fault_identity is not None
    torch.nn.init.normal_(model.sensor_identity.weight)
    torch.nn.init.normal_(model.fault_identity.weight)


def test_keys_are_stable_and_name_the_component(press_spec: SystemSpec) -> None:
    first = SpecGraph.build(press_spec, CONTRACT)
    again = SpecGraph.build(press_spec, CONTRACT)
    np.testing.assert_array_equal(first.sensor_key, again.sensor_key)
    assert len(set(first.sensor_key.tolist())) == first.num_nodes
    assert len(set(first.fault_key.tolist())) == first.num_faults
    # Connections pump->valve and valve->cylinder, both ways, each pair once.
    pairs = set(map(tuple, first.component_edges.T.tolist()))
    assert pairs == {(0, 1), (1, 0), (1, 2), (2, 1)}


def test_faults_sharing_their_sensors_score_alike_without_identities_and_apart_with_them(
    tiny_config: ModelConfig, press_doc: dict[str, Any], make_readings: Any
) -> None:
    spec = _twin_faults(press_doc)
    batch = _batch(spec, make_readings(spec))
    twins = [spec.fault_ids.index("pump_wear"), spec.fault_ids.index("pump_cavitation")]
    torch.manual_seed(0)
    without = UniversalTemporalGNN(replace(tiny_config, identity_buckets=0), CONTRACT).eval()
    with torch.inference_mode():
        logits = without(batch).fault_logit[twins]
    assert logits[0] == logits[1]

    torch.manual_seed(0)
    model = UniversalTemporalGNN(tiny_config, CONTRACT).eval()
    with torch.inference_mode():
        fresh = model(batch).fault_logit[twins]
        _randomise_identities(model)
        trained = model(batch).fault_logit[twins]
    assert fresh[0] == fresh[1]  # zero-initialised: a fresh model reads no identity yet
    assert trained[0] != trained[1]


def test_sensors_of_one_kind_on_one_component_are_told_apart_only_with_identities(
    tiny_config: ModelConfig, press_doc: dict[str, Any]
) -> None:
    doc = copy.deepcopy(press_doc)
    for sensor in doc["sensors"]:
        if sensor["id"] in ("pump_pressure", "pump_flow"):
            sensor.update(kind="pressure", unit="bar", normal=[0, 100], critical=[-10, 110])
    spec = parse_spec(doc)
    rng = np.random.default_rng(3)
    readings = {s.id: [float(v) for v in rng.uniform(10, 60, 60)] for s in spec.sensors}
    swapped = dict(
        readings, pump_pressure=readings["pump_flow"], pump_flow=readings["pump_pressure"]
    )
    for buckets, differ in ((0, False), (tiny_config.identity_buckets, True)):
        torch.manual_seed(0)
        config = replace(tiny_config, identity_buckets=buckets, dropout=0.0)
        model = UniversalTemporalGNN(config, CONTRACT).eval()
        if buckets:
            _randomise_identities(model)
        with torch.inference_mode():
            first = model(_batch(spec, readings)).machine_health
            second = model(_batch(spec, swapped)).machine_health
        assert bool(not torch.allclose(first, second, atol=1e-6)) is differ, buckets


def test_each_component_receives_the_mean_of_its_connected_neighbours(
    skid_spec: SystemSpec, make_readings: Any
) -> None:
    batch = _batch(skid_spec, make_readings(skid_spec))  # motor - fan - housing
    motor, fan, housing = (skid_spec.component_ids.index(c) for c in ("motor", "fan", "housing"))
    vectors = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4)
    received = neighbour_mean(vectors, batch)
    torch.testing.assert_close(received[housing], vectors[fan])
    torch.testing.assert_close(received[motor], vectors[fan])
    torch.testing.assert_close(received[fan], (vectors[motor] + vectors[housing]) / 2)


def test_with_messages_a_component_without_sensors_reads_its_neighbours(
    tiny_config: ModelConfig, skid_spec: SystemSpec, make_readings: Any
) -> None:
    housing = skid_spec.component_ids.index("housing")  # no sensor; joined to the fan
    quiet = make_readings(skid_spec, seed=1)
    shaking = dict(quiet, fan_vibration=[v * 5 for v in quiet["fan_vibration"]])
    torch.manual_seed(0)
    model = UniversalTemporalGNN(replace(tiny_config, dropout=0.0), CONTRACT).eval()
    assert model.component_message is not None
    with torch.inference_mode():
        before = model(_batch(skid_spec, quiet)).normal_logit[housing]
        # Only the message changes: the machine vector is the same for both passes.
        torch.nn.init.normal_(model.component_message[2].weight)
        after = model(_batch(skid_spec, quiet)).normal_logit[housing]
        moved = model(_batch(skid_spec, shaking)).normal_logit[housing]
    assert not torch.isclose(before, after)
    assert not torch.isclose(after, moved)


def test_configs_saved_before_the_options_build_models_without_them(
    tiny_config: ModelConfig,
) -> None:
    assert ModelConfig().identity_buckets > 0
    assert ModelConfig().component_messages
    saved = tiny_config.to_dict()
    del saved["identity_buckets"], saved["component_messages"]
    config = ModelConfig.from_dict(saved)
    assert config.identity_buckets == 0
    assert config.component_messages is False
    model = UniversalTemporalGNN(config, CONTRACT)
    assert model.sensor_identity is None
    assert model.component_message is None
    names = set(model.state_dict())
    assert not any(
        n.startswith(("sensor_identity", "fault_identity", "component_message")) for n in names
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("identity_buckets", -1, "identity_buckets must be >= 0"),
        ("component_messages", "yes", "component_messages must be true or false"),
    ],
)
def test_bad_values_are_refused(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ModelConfig.from_dict({key: value})
