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


def _sine(times: np.ndarray, period_s: float = 20.0) -> list[float | None]:
    return list((45.0 + 25.0 * np.sin(2 * math.pi * times / period_s)).tolist())


def _interval_means_by_loop(series: np.ndarray, rate_hz: float) -> np.ndarray:
    """The downsampling rule written plainly: model step k is the mean of the samples i
    with position_k - ratio < i <= position_k, the last step on the last sample."""
    ratio, last = rate_hz / CONTRACT.sample_rate_hz, len(series) - 1
    means = []
    for k in range(CONTRACT.window_steps):
        position = last - (CONTRACT.window_steps - 1 - k) * ratio
        inside = [
            series[i] for i in range(len(series)) if position - ratio + 1e-9 < i <= position + 1e-9
        ]
        means.append(np.mean(inside))
    return np.array(means)


def test_a_slower_window_is_interpolated_onto_the_model_steps(press_spec: SystemSpec) -> None:
    graph, end = _graph(press_spec), 100.0  # both windows end on the same instant
    reference = encode_window(graph, {"pump_temp": _sine(end - np.arange(60)[::-1])}, 1.0, CONTRACT)
    other = encode_window(
        graph, {"pump_temp": _sine(end - np.arange(34)[::-1] * 2.0)}, 0.5, CONTRACT
    )
    row = press_spec.sensor_index["pump_temp"]
    assert other.mask[row].all()
    np.testing.assert_allclose(other.x[row], reference.x[row], atol=0.06)


@pytest.mark.parametrize("rate_hz", [2.0, 2.5, 10.0, 35.0])
def test_a_faster_window_is_averaged_over_each_model_step(
    press_spec: SystemSpec, rate_hz: float
) -> None:
    rng = np.random.default_rng(3)
    steps = int(60 * rate_hz) + 4
    times = 100.0 - np.arange(steps)[::-1] / rate_hz
    series = np.array(_sine(times)) + rng.normal(0.0, 2.0, steps)
    sample = encode_window(_graph(press_spec), {"pump_temp": list(series)}, rate_hz, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert sample.mask[row].all()
    expected = (_interval_means_by_loop(series, rate_hz) - 45.0) / 25.0
    np.testing.assert_allclose(sample.x[row], expected, rtol=1e-5, atol=1e-6)


def test_ten_hertz_downsampled_to_one_hertz_is_the_mean_of_each_second(
    press_spec: SystemSpec,
) -> None:
    rng = np.random.default_rng(0)
    times = np.arange(600) / 10.0
    series = np.array(_sine(times)) + rng.normal(0.0, 3.0, 600)
    sample = encode_window(_graph(press_spec), {"pump_temp": list(series)}, 10.0, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    per_second = series.reshape(60, 10).mean(axis=1)
    np.testing.assert_allclose(sample.x[row], (per_second - 45.0) / 25.0, rtol=1e-5, atol=1e-6)
    assert sample.covered_steps == 60


def test_a_component_above_the_models_nyquist_rate_is_attenuated_not_aliased(
    press_spec: SystemSpec,
) -> None:
    # 0.9 Hz sampled once a second would alias to a full-amplitude 0.1 Hz wave; the mean
    # over each second passes |sinc(0.9)| ~ 0.11 of it. A slow wave passes almost whole.
    times = np.arange(600) / 10.0
    fast = encode_window(
        _graph(press_spec), {"pump_temp": _sine(times, period_s=1 / 0.9)}, 10.0, CONTRACT
    )
    slow = encode_window(
        _graph(press_spec), {"pump_temp": _sine(times, period_s=30.0)}, 10.0, CONTRACT
    )
    row = press_spec.sensor_index["pump_temp"]
    assert np.abs(fast.x[row]).max() < 0.15
    assert 0.95 < np.abs(slow.x[row]).max() <= 1.0


def test_a_model_step_with_no_observed_sample_in_its_interval_is_masked(
    press_spec: SystemSpec,
) -> None:
    series: list[float | None] = [45.0] * 600
    series[-20:-10] = [None] * 10  # every sample of the second step before the last
    series[-30:-25] = [None] * 5  # half of the third: the mean of the other half
    series[-24] = 70.0
    sample = encode_window(_graph(press_spec), {"pump_temp": series}, 10.0, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert sample.mask[row, -2] == 0.0
    assert sample.x[row, -2] == 0.0
    assert sample.mask[row, [-1, -3]].tolist() == [1.0, 1.0]
    assert sample.x[row, -3] == pytest.approx(0.2)  # (70 + 4 * 45) / 5 -> 5 / 25


def test_resampling_at_a_fractional_ratio_masks_an_interval_without_observations(
    press_spec: SystemSpec,
) -> None:
    # At 2.5 Hz the step 1 s before the last averages samples -5 and -4; the step 3 s
    # before it, samples -10 and -9.
    series: list[float | None] = [45.0] * 150
    series[-5] = series[-4] = None
    series[-10] = None
    series[-9] = 70.0
    sample = encode_window(_graph(press_spec), {"pump_temp": series}, 2.5, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert sample.mask[row, -2] == 0.0
    assert sample.mask[row, -4] == 1.0
    assert sample.x[row, -4] == pytest.approx(1.0)  # only the observed sample counts


def test_a_window_at_the_models_rate_is_taken_as_is_bit_for_bit(press_spec: SystemSpec) -> None:
    rng = np.random.default_rng(1)
    raw = rng.normal(45.0, 40.0, size=(75, 8))
    raw[rng.random(raw.shape) < 0.1] = np.nan
    graph = _graph(press_spec)
    for rate_hz in (1.0, 1.0 + 1e-9):
        sample = encode_window(graph, raw, rate_hz, CONTRACT)
        last = raw[-60:].T
        observed = np.isfinite(last)
        scaled = (np.where(observed, last, 0.0) - graph.centre[:, None]) / graph.half_width[:, None]
        clip = CONTRACT.value_clip
        expected = (np.clip(scaled, -clip, clip) * observed).astype(np.float32)
        np.testing.assert_array_equal(sample.x, expected)
        np.testing.assert_array_equal(sample.mask, observed.astype(np.float32))
        assert sample.covered_steps == 60


@pytest.mark.parametrize(
    ("samples", "rate_hz", "covered"),
    [(60, 1.0, 60), (200, 1.0, 60), (45, 1.0, 45), (60, 35.0, 2), (2100, 35.0, 60), (20, 0.5, 39)],
)
def test_covered_steps_counts_the_model_steps_the_window_spans(
    press_spec: SystemSpec, samples: int, rate_hz: float, covered: int
) -> None:
    readings: dict[str, list[float | None]] = {"pump_temp": [45.0] * samples}
    sample = encode_window(_graph(press_spec), readings, rate_hz, CONTRACT)
    assert sample.covered_steps == covered
    assert sample.padded_steps == 60 - covered
    row = press_spec.sensor_index["pump_temp"]
    assert not sample.mask[row, : 60 - covered].any()


def test_an_extreme_reading_cannot_spoil_the_other_steps_of_an_averaged_window(
    press_spec: SystemSpec,
) -> None:
    series: list[float | None] = [45.0] * 600
    series[5] = 1e308  # the running sums must not overflow into the later steps
    sample = encode_window(_graph(press_spec), {"pump_temp": series}, 10.0, CONTRACT)
    row = press_spec.sensor_index["pump_temp"]
    assert np.isfinite(sample.x).all()
    assert sample.x[row, 0] == pytest.approx(CONTRACT.value_clip / 10)
    assert not sample.x[row, 1:].any()


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
