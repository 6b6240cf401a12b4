from __future__ import annotations

import copy
import io
import json
import math
import random
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest
import torch

from schemas.spec import SystemSpec, parse_spec
from service.errors import ConfigurationError
from worker.model import (
    FeatureContract,
    GraphBatch,
    GraphSample,
    ModelConfig,
    ModelOutput,
    SpecGraph,
    UniversalTemporalGNN,
    collate,
    encode_window,
)

CONTRACT = FeatureContract()
Readings = dict[str, list[float | None]]
MakeReadings = Callable[..., Readings]
PRESS_SENSORS = (
    "cylinder_position",
    "cylinder_pressure",
    "pump_flow",
    "pump_pressure",
    "pump_temp",
    "pump_vibration",
    "valve_current",
    "valve_position",
)


def _model(config: ModelConfig, contract: FeatureContract = CONTRACT) -> UniversalTemporalGNN:
    torch.manual_seed(0)
    return UniversalTemporalGNN(config, contract).eval()


def _sample(
    spec: SystemSpec, readings: Readings, contract: FeatureContract = CONTRACT
) -> GraphSample:
    return encode_window(SpecGraph.build(spec, contract), readings, 1.0, contract)


def _run(model: UniversalTemporalGNN, samples: list[GraphSample]) -> tuple[GraphBatch, ModelOutput]:
    batch = collate(samples)
    with torch.inference_mode():
        return batch, model(batch)


def _all_finite(output: ModelOutput) -> bool:
    return all(bool(torch.isfinite(getattr(output, f.name)).all()) for f in fields(output))


def _by_id(graph: SpecGraph, output: ModelOutput) -> dict[str, torch.Tensor]:
    """Every result keyed by the id of what it is about, independent of spec order."""
    results: dict[str, torch.Tensor] = {}
    for i, cid in enumerate(graph.component_ids):
        results[f"component:{cid}"] = torch.stack(
            [
                output.component_health[i],
                output.normal_prob[i],
                output.rul_hours[i],
                output.rul_log_var[i],
                output.component_anomaly[i],
                output.component_attention[i],
            ]
        )
    for i, fid in enumerate(graph.fault_ids):
        results[f"fault:{fid}"] = output.fault_prob[i : i + 1]
    for i, sid in enumerate(graph.sensor_ids):
        results[f"sensor:{sid}"] = torch.cat(
            [
                output.forecast[i],
                output.sensor_anomaly[i : i + 1],
                output.sensor_attention[i : i + 1],
            ]
        )
    results["machine"] = output.machine_health
    return results


def test_a_mixed_batch_splits_into_outputs_shaped_like_each_spec(
    tiny_config: ModelConfig,
    press_spec: SystemSpec,
    skid_spec: SystemSpec,
    make_readings: MakeReadings,
) -> None:
    specs = [press_spec, skid_spec, press_spec]
    samples = [_sample(spec, make_readings(spec, seed=i)) for i, spec in enumerate(specs)]
    batch, output = _run(_model(tiny_config), samples)
    parts = output.split(batch)

    assert len(parts) == 3
    horizon = CONTRACT.forecast_horizon
    for spec, part in zip(specs, parts, strict=True):
        sensors, components, faults = len(spec.sensors), len(spec.components), len(spec.fault_modes)
        for name in (
            "component_health",
            "normal_prob",
            "normal_logit",
            "rul_hours",
            "rul_log_var",
            "component_anomaly",
            "component_attention",
        ):
            assert getattr(part, name).shape == (components,), name
        for name in ("fault_prob", "fault_logit"):
            assert getattr(part, name).shape == (faults,), name
        for name in ("sensor_anomaly", "sensor_attention"):
            assert getattr(part, name).shape == (sensors,), name
        assert part.forecast.shape == (sensors, horizon)
        assert part.machine_health.shape == (1,)
        assert _all_finite(part)

        graph = SpecGraph.build(spec, CONTRACT)
        candidates = part.normal_prob.index_add(
            0, torch.tensor(graph.fault_component), part.fault_prob
        )
        torch.testing.assert_close(candidates, torch.ones(components))
        attention = torch.zeros(components).index_add(
            0, torch.tensor(graph.node_component), part.sensor_attention
        )
        has_sensors = torch.bincount(torch.tensor(graph.node_component), minlength=components) > 0
        torch.testing.assert_close(attention[has_sensors], torch.ones(int(has_sensors.sum())))
        assert float(part.component_attention.sum()) == pytest.approx(1.0, abs=1e-5)
        for name in ("component_health", "machine_health"):
            values = getattr(part, name)
            assert bool(((values >= 0) & (values <= 1)).all())
        assert bool((part.rul_hours >= 0).all())
        low, high = part.rul_interval()
        assert bool((low <= part.rul_hours).all())
        assert bool((part.rul_hours <= high).all())


def _shuffled(doc: dict[str, Any], seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    shuffled = copy.deepcopy(doc)
    for key in ("components", "sensors", "connections", "fault_modes"):
        rng.shuffle(shuffled[key])
    for fault in shuffled["fault_modes"]:
        rng.shuffle(fault["affected_sensors"])
    return shuffled


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_reordering_the_spec_gives_the_same_results_by_id(
    tiny_config: ModelConfig, press_doc: dict[str, Any], make_readings: MakeReadings, seed: int
) -> None:
    model = _model(tiny_config)
    spec = parse_spec(press_doc)
    reordered = parse_spec(_shuffled(press_doc, seed))
    assert reordered.sensor_ids != spec.sensor_ids
    readings = make_readings(spec, seed=seed)

    results = []
    for variant in (spec, reordered):
        batch, output = _run(model, [_sample(variant, readings)])
        results.append(_by_id(batch.graphs[0], output))
    assert results[0].keys() == results[1].keys()
    for key, value in results[0].items():
        torch.testing.assert_close(results[1][key], value, atol=1e-5, rtol=0, msg=key)


def test_a_batch_of_three_equals_each_graph_alone(
    tiny_config: ModelConfig,
    press_spec: SystemSpec,
    skid_spec: SystemSpec,
    make_readings: MakeReadings,
) -> None:
    model = _model(tiny_config)
    specs = [press_spec, skid_spec, press_spec]
    samples = [_sample(spec, make_readings(spec, seed=i)) for i, spec in enumerate(specs)]
    batch, output = _run(model, samples)
    for sample, part in zip(samples, output.split(batch), strict=True):
        _, alone = _run(model, [sample])
        for field in fields(ModelOutput):
            torch.testing.assert_close(
                getattr(part, field.name),
                getattr(alone, field.name),
                atol=1e-5,
                rtol=0,
                msg=field.name,
            )


def _drop_valve(readings: Readings) -> None:
    del readings["valve_position"], readings["valve_current"]


def _drop_one(readings: Readings) -> None:
    del readings["pump_flow"]


def _nan_flood(readings: Readings) -> None:
    """Every reading NaN but the last one of ``pump_temp`` (all NaN is dead-lettered)."""
    for series in readings.values():
        series[:] = [math.nan] * len(series)
    readings["pump_temp"][-1] = 40.0


def _infinities(readings: Readings) -> None:
    readings["pump_temp"][::2] = [math.inf] * 30
    readings["cylinder_pressure"][:] = [-math.inf] * 60


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (_drop_one, (("pump_flow",), 0)),
        (_drop_valve, (("valve_current", "valve_position"), 0)),
        (_nan_flood, (tuple(s for s in PRESS_SENSORS if s != "pump_temp"), 8 * 60 - 1)),
        (_infinities, (("cylinder_pressure",), 90)),
    ],
    ids=["one_sensor_missing", "component_all_missing", "nan_flood", "infinities"],
)
def test_missing_and_nonfinite_readings_never_yield_nan(
    tiny_config: ModelConfig,
    press_spec: SystemSpec,
    make_readings: MakeReadings,
    damage: Callable[[Readings], None],
    expected: tuple[tuple[str, ...], int],
) -> None:
    missing, nonfinite = expected
    readings = make_readings(press_spec)
    damage(readings)
    sample = _sample(press_spec, readings)
    assert sorted(sample.missing_sensors) == sorted(missing)
    assert sample.nonfinite_count == nonfinite
    for mode in ("eval", "train"):
        model = _model(tiny_config)
        model.train(mode == "train")
        _, output = _run(model, [sample])
        assert _all_finite(output), mode
    missing_rows = [press_spec.sensor_index[s] for s in missing]
    assert bool((output.sensor_anomaly[missing_rows] == 0).all())


def test_the_anomaly_score_is_the_residual_over_the_contracts_scale(
    tiny_config: ModelConfig, press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    readings = make_readings(press_spec)
    untrained = _model(tiny_config)
    scaled_contract = FeatureContract(residual_scale=(4.0,) * len(CONTRACT.sensor_kinds))
    scaled = _model(tiny_config, scaled_contract)
    _, plain = _run(untrained, [_sample(press_spec, readings)])
    _, quarter = _run(scaled, [_sample(press_spec, readings, scaled_contract)])
    torch.testing.assert_close(quarter.sensor_anomaly, plain.sensor_anomaly / 4)
    assert bool((plain.sensor_anomaly > 0).all())


def test_a_checkpoint_of_config_contract_and_weights_restores_the_same_model(
    tiny_config: ModelConfig, press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    contract = FeatureContract(
        residual_scale=tuple(float(i + 1) for i in range(len(CONTRACT.sensor_kinds)))
    )
    model = _model(tiny_config, contract)
    buffer = io.BytesIO()
    torch.save(
        {
            "config": model.config.to_dict(),
            "contract": contract.to_dict(),
            "state_dict": model.state_dict(),
        },
        buffer,
    )
    assert "residual_scale" not in model.state_dict()  # the contract is its one source

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    restored = UniversalTemporalGNN(
        ModelConfig.from_dict(saved["config"]), FeatureContract.from_dict(saved["contract"])
    ).eval()
    restored.load_state_dict(saved["state_dict"])
    sample = _sample(press_spec, make_readings(press_spec), contract)
    _, before = _run(model, [sample])
    _, after = _run(restored, [sample])
    for field in fields(ModelOutput):
        torch.testing.assert_close(getattr(after, field.name), getattr(before, field.name))


def test_a_window_of_another_length_is_refused(
    tiny_config: ModelConfig, press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    short = FeatureContract(window_steps=30)
    sample = _sample(press_spec, make_readings(press_spec), short)
    with pytest.raises(ValueError, match="30 steps, contract 60"):
        _run(_model(tiny_config), [sample])


def test_the_default_model_is_small() -> None:
    model = _model(ModelConfig())
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    assert 50_000 <= model.num_parameters() <= 200_000
    assert buffer.tell() < 2_000_000
    assert "hidden=64" in repr(model)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hidden": 30, "heads": 4}, "divisible by heads"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"dilations": []}, "dilations must be positive"),
        ({"width": 64}, "unknown keys width"),
    ],
)
def test_invalid_model_config_is_rejected(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ModelConfig.from_dict(data)


def test_model_config_survives_a_json_round_trip(tiny_config: ModelConfig) -> None:
    assert ModelConfig.from_dict(json.loads(json.dumps(tiny_config.to_dict()))) == tiny_config
