from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from schemas.spec import SystemSpec, parse_spec
from service.errors import InvalidInput
from worker.model.contract import FeatureContract
from worker.model.features import encode_window
from worker.model.spec_graph import SpecGraph

CONTRACT = FeatureContract()
MakeReadings = Callable[..., dict[str, list[float | None]]]


def _graph(spec: SystemSpec) -> SpecGraph:
    return SpecGraph.build(spec, CONTRACT)


def test_normal_range_edges_become_minus_one_and_plus_one(press_spec: SystemSpec) -> None:
    readings: dict[str, list[float | None]] = {"pump_flow": [5.0, 42.5, 80.0] * 20}
    sample = encode_window(_graph(press_spec), readings, 1.0, CONTRACT)
    row = press_spec.sensor_index["pump_flow"]
    np.testing.assert_allclose(sample.x[row, :3], [-1.0, 0.0, 1.0])
    assert sample.x.dtype == sample.mask.dtype == np.float32


def test_readings_far_outside_the_range_are_clipped(press_spec: SystemSpec) -> None:
    sample = encode_window(_graph(press_spec), {"pump_flow": [1e9] * 60}, 1.0, CONTRACT)
    assert sample.x.max() == CONTRACT.value_clip


def test_a_longer_window_keeps_its_last_steps(press_spec: SystemSpec) -> None:
    series: list[float | None] = [float(i) for i in range(100)]
    sample = encode_window(_graph(press_spec), {"pump_temp": series}, 1.0, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    np.testing.assert_allclose(sample.x[row], (np.arange(40, 100) - 45.0) / 25.0, rtol=1e-6)


def test_a_short_window_is_left_padded_and_masked(press_spec: SystemSpec) -> None:
    sample = encode_window(_graph(press_spec), {"pump_temp": [45.0, 70.0]}, 1.0, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert sample.mask[row].tolist() == [0.0] * 58 + [1.0, 1.0]
    assert sample.x[row, -2:].tolist() == [0.0, 1.0]
    assert not sample.x[row, :58].any()


@pytest.mark.parametrize(
    ("rate_hz", "tolerance"),
    [
        (2.0, 1e-6),  # every model step falls on a sample
        (2.5, 0.01),  # interpolated between samples 0.4 s apart
        (0.5, 0.06),  # upsampled from samples 2 s apart
    ],
)
def test_a_sine_at_another_rate_gives_the_features_of_the_one_hz_sine(
    press_spec: SystemSpec, rate_hz: float, tolerance: float
) -> None:
    def sine(times: np.ndarray) -> list[float | None]:
        return list((45.0 + 25.0 * np.sin(2 * math.pi * times / 20.0)).tolist())

    graph = _graph(press_spec)
    end = 100.0  # both windows end on the same instant
    reference = encode_window(graph, {"pump_temp": sine(end - np.arange(60)[::-1])}, 1.0, CONTRACT)
    steps = int(60 * rate_hz) + 4
    other = encode_window(
        graph, {"pump_temp": sine(end - np.arange(steps)[::-1] / rate_hz)}, rate_hz, CONTRACT
    )
    row = press_spec.sensor_index["pump_temp"]
    assert other.mask[row].all()
    np.testing.assert_allclose(other.x[row], reference.x[row], atol=tolerance)


def test_resampling_masks_a_step_whose_neighbours_are_both_missing(press_spec: SystemSpec) -> None:
    # At 2.5 Hz the model step 1 s before the end lies between samples -4 and -3; the step
    # 3 s before the end lies between samples -9 and -8.
    series: list[float | None] = [45.0] * 150
    series[-4] = series[-3] = None
    series[-9] = None
    series[-8] = 70.0
    sample = encode_window(_graph(press_spec), {"pump_temp": series}, 2.5, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert sample.mask[row, -2] == 0.0
    assert sample.mask[row, -4] == 1.0
    assert sample.x[row, -4] == pytest.approx(1.0)  # only the observed neighbour counts


def test_missing_none_nan_and_inf_are_masked_and_only_nonfinite_values_counted(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    readings = make_readings(press_spec)
    readings["pump_flow"][5] = None
    readings["pump_flow"][6] = math.nan
    readings["pump_temp"][7] = math.inf
    readings["pump_temp"][8] = -math.inf
    sample = encode_window(_graph(press_spec), readings, 1.0, CONTRACT)
    flow, temp = press_spec.sensor_index["pump_flow"], press_spec.sensor_index["pump_temp"]
    assert sample.nonfinite_count == 3
    assert sample.mask[flow, 5:7].tolist() == [0.0, 0.0]
    assert sample.mask[temp, 7:9].tolist() == [0.0, 0.0]
    assert sample.mask.sum() == 8 * 60 - 4
    assert np.isfinite(sample.x).all()
    assert sample.missing_sensors == ()


def test_absent_and_all_nan_sensors_are_fully_masked_and_reported(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    readings = make_readings(press_spec)
    del readings["valve_current"]
    readings["pump_vibration"] = [math.nan] * 60
    sample = encode_window(_graph(press_spec), readings, 1.0, CONTRACT)
    assert sample.missing_sensors == ("pump_vibration", "valve_current")
    assert sample.nonfinite_count == 60
    for sensor in sample.missing_sensors:
        assert not sample.mask[press_spec.sensor_index[sensor]].any()


def test_an_unknown_sensor_is_invalid_input_naming_the_field(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    readings = make_readings(press_spec)
    readings["pump_pressur"] = [1.0] * 60
    with pytest.raises(InvalidInput) as caught:
        encode_window(_graph(press_spec), readings, 1.0, CONTRACT)
    assert caught.value.reason == "unknown_sensor"
    assert caught.value.field == "window.readings.pump_pressur"


@pytest.mark.parametrize(
    ("readings", "rate_hz", "reason"),
    [
        ({"pump_flow": [1.0, 2.0], "pump_temp": [1.0]}, 1.0, "ragged_window"),
        ({"pump_flow": []}, 1.0, "window_too_short"),
        ({}, 1.0, "empty_readings"),
        (
            {"pump_flow": [None, float("nan")], "pump_temp": [float("inf"), None]},
            1.0,
            "empty_readings",
        ),
        ({"pump_flow": [1.0, 2.0]}, 0.0, "schema_invalid"),
    ],
)
def test_malformed_windows_are_invalid_input(
    press_spec: SystemSpec, readings: dict[str, Any], rate_hz: float, reason: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        encode_window(_graph(press_spec), readings, rate_hz, CONTRACT)
    assert caught.value.reason == reason


def test_the_training_array_form_encodes_like_the_snapshot_form(
    press_spec: SystemSpec, make_readings: MakeReadings
) -> None:
    readings = make_readings(press_spec, steps=90, rate_hz=1.5)
    readings["pump_flow"][10] = None
    readings["valve_position"][11] = math.inf
    array = np.array(
        [[math.nan if v is None else v for v in readings[s]] for s in press_spec.sensor_ids]
    ).T
    graph = _graph(press_spec)
    from_mapping = encode_window(graph, readings, 1.5, CONTRACT)
    from_array = encode_window(graph, array, 1.5, CONTRACT)
    np.testing.assert_array_equal(from_array.x, from_mapping.x)
    np.testing.assert_array_equal(from_array.mask, from_mapping.mask)
    assert from_array.nonfinite_count == from_mapping.nonfinite_count == 1


def test_an_array_of_the_wrong_width_is_refused(press_spec: SystemSpec) -> None:
    with pytest.raises(ValueError, match=r"\[T_in >= 1, 8\]"):
        encode_window(_graph(press_spec), np.zeros((60, 7)), 1.0, CONTRACT)


def test_a_kind_newer_than_the_contract_is_encoded_as_other(press_doc: dict[str, Any]) -> None:
    contract = FeatureContract(sensor_kinds=("pressure", "flow", "other"))
    graph = SpecGraph.build(parse_spec(press_doc), contract)
    kinds = dict(zip(graph.sensor_ids, graph.sensor_kind.tolist(), strict=True))
    assert (kinds["pump_pressure"], kinds["pump_flow"], kinds["pump_temp"]) == (0, 1, 2)
