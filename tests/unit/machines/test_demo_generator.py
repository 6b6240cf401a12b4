"""The simulator: reproducible, healthy inside normal ranges, faults physically directed,
labels that follow the injected schedule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from machines import (
    RUL_CAP_HOURS,
    FaultSpecError,
    GenerationError,
    builtin_names,
    builtin_spec,
    generate,
)
from machines.physics.generic import fault_direction
from schemas import load_spec

REPO = Path(__file__).resolve().parents[3]
HOUR = 3600.0

# Expected direction (+1 up, -1 down) of every affected sensor of every built-in fault mode.
EXPECTED_DIRECTIONS: dict[str, dict[str, dict[str, int]]] = {
    "excavator": {
        "pump_internal_leak": {
            "pump_outlet_pressure": -1,
            "pump_flow": -1,
            "pump_case_drain_flow": +1,
            "pump_case_temp": +1,
            "tank_oil_temp": +1,
        },
        "valve_spool_sticking": {"valve_spool_position": -1, "boom_pilot_pressure": +1},
        "cylinder_seal_leak": {
            "boom_head_pressure": -1,
            "boom_rod_pressure": +1,
            "boom_cylinder_position": -1,
        },
        "cooler_fouling": {"cooler_outlet_temp": +1, "tank_oil_temp": +1, "cooler_fan_speed": +1},
        "filter_clogging": {"filter_diff_pressure": +1, "return_line_pressure": +1},
    },
    "injection_molding_machine": {
        "heater_band_failure": {
            "heater_current_zone2": -1,
            "barrel_temp_zone2": -1,
            "barrel_temp_zone3": -1,
            "screw_torque": +1,
        },
        "check_ring_wear": {"cushion_position": -1, "melt_pressure": -1},
        "hydraulic_leak": {
            "system_pressure": -1,
            "pump_motor_current": +1,
            "hydraulic_oil_temp": +1,
            "oil_tank_level": -1,
        },
        "clamp_pressure_loss": {"clamp_pressure": -1, "clamp_force": -1},
        "cooling_channel_blockage": {
            "coolant_flow": -1,
            "coolant_return_temp": +1,
            "mould_temp_fixed": +1,
            "mould_temp_moving": +1,
        },
    },
    "cnc_machine": {
        "spindle_bearing_wear": {
            "bearing_vibration": +1,
            "bearing_accel_envelope": +1,
            "bearing_temp_front": +1,
        },
        "tool_wear": {
            "cutting_force": +1,
            "spindle_power": +1,
            "spindle_motor_current": +1,
            "acoustic_emission": +1,
        },
        "axis_backlash": {"x_following_error": +1, "x_motor_current": +1},
        "coolant_pump_failure": {
            "coolant_pressure": -1,
            "coolant_flow": -1,
            "coolant_pump_current": +1,
        },
    },
    "industrial_robot": {
        "gearbox_wear": {"j2_gearbox_vibration": +1, "j2_gearbox_temp": +1, "j2_motor_current": +1},
        "motor_overheating": {"j3_motor_temp": +1, "j3_motor_current": +1},
        "joint_friction_increase": {
            "j1_motor_current": +1,
            "j1_gearbox_temp": +1,
            "j1_motor_temp": +1,
        },
        "gripper_pressure_loss": {"gripper_pressure": -1, "gripper_air_flow": +1},
    },
}


def test_the_same_seed_gives_the_same_run_and_another_seed_differs() -> None:
    first = generate("excavator", duration_s=HOUR, seed=7, faults=["filter_clogging@10m"])
    again = generate("excavator", duration_s=HOUR, seed=7, faults=["filter_clogging@10m"])
    other = generate("excavator", duration_s=HOUR, seed=8, faults=["filter_clogging@10m"])

    assert first.same_as(again)
    assert not np.array_equal(first.readings, other.readings, equal_nan=True)


def test_a_fault_leaves_everything_before_its_onset_untouched() -> None:
    healthy = generate("cnc_machine", duration_s=HOUR, seed=3)
    faulty = generate("cnc_machine", duration_s=HOUR, seed=3, faults=["tool_wear@30m"])
    onset = int(30 * 60 * faulty.sample_rate_hz)

    assert np.array_equal(healthy.readings[:onset], faulty.readings[:onset], equal_nan=True)
    assert not np.array_equal(healthy.readings[onset:], faulty.readings[onset:], equal_nan=True)


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("seed", [0, 1])
def test_healthy_readings_stay_inside_their_normal_ranges(name: str, seed: int) -> None:
    run = generate(name, duration_s=3 * HOUR, seed=seed)

    for index, sensor in enumerate(run.spec.sensors):
        values = run.readings[:, index]
        values = values[~np.isnan(values)]
        low, high = sensor.normal
        assert values.min() >= low, (sensor.id, float(values.min()), sensor.normal)
        assert values.max() <= high, (sensor.id, float(values.max()), sensor.normal)


def test_missing_samples_appear_as_nan_at_the_requested_rate() -> None:
    run = generate("industrial_robot", duration_s=HOUR, seed=2, missing_rate=0.01)

    assert 0.005 < np.isnan(run.readings).mean() < 0.03
    assert not np.isnan(generate("industrial_robot", duration_s=600, missing_rate=0).readings).any()


def test_the_direction_table_covers_every_affected_sensor_of_every_fault() -> None:
    assert sorted(EXPECTED_DIRECTIONS) == builtin_names()
    for name, faults in EXPECTED_DIRECTIONS.items():
        spec = builtin_spec(name)
        assert sorted(faults) == sorted(spec.fault_ids)
        for fault_id, directions in faults.items():
            assert sorted(directions) == sorted(spec.fault_mode(fault_id).affected_sensors)


FAULT_CASES = [
    pytest.param(name, fault_id, directions, id=f"{name}-{fault_id}")
    for name, faults in EXPECTED_DIRECTIONS.items()
    for fault_id, directions in faults.items()
]


@pytest.mark.parametrize(("name", "fault_id", "directions"), FAULT_CASES)
def test_each_fault_moves_its_sensors_in_the_physical_direction(
    name: str, fault_id: str, directions: dict[str, int]
) -> None:
    # Onset at 1 h, failure at 2.5 h; compare the last hour with the hour before onset,
    # and with the same hour of the healthy run (same seed, so the same duty cycles).
    faulty = generate(name, duration_s=4 * HOUR, seed=3, faults=[f"{fault_id}@1h:linear:1:90m"])
    healthy = generate(name, duration_s=4 * HOUR, seed=3)
    before, late = slice(0, 3600), slice(3 * 3600, 4 * 3600)

    for sensor_id, direction in directions.items():
        sensor = faulty.spec.sensor(sensor_id)
        width = sensor.normal[1] - sensor.normal[0]
        values = faulty.sensor(sensor_id)
        shift = (np.nanmean(values[late]) - np.nanmean(values[before])) * direction / width
        against_healthy = (
            (np.nanmean(values[late]) - np.nanmean(healthy.sensor(sensor_id)[late]))
            * direction
            / width
        )
        assert shift > 0.01, (sensor_id, shift)
        assert against_healthy > 0.02, (sensor_id, against_healthy)


def test_labels_follow_the_injected_schedule() -> None:
    run = generate(
        "excavator", duration_s=4 * HOUR, seed=1, faults=["pump_internal_leak@1h:exponential:1:2h"]
    )
    pump = run.spec.component_index["main_pump"]
    onset = int(HOUR * run.sample_rate_hz)
    failure = int(3 * HOUR * run.sample_rate_hz)
    labels = run.fault_labels[:, pump]
    health = run.health[:, pump]
    rul = run.rul_hours[:, pump]

    assert set(labels[:onset]) == {"normal"}
    assert set(labels[onset:]) == {"pump_internal_leak"}
    assert np.all(health[:onset] == 1.0)
    assert np.all(np.diff(health[onset:]) <= 0)
    assert health[failure] == pytest.approx(0.2, abs=1e-3)
    assert np.all(rul[:onset] == RUL_CAP_HOURS)
    assert rul[onset] == pytest.approx(2.0, abs=1e-3)
    assert np.all(np.diff(rul[onset:failure]) < 0)
    assert np.all(rul[failure + 1 :] == 0.0)
    others = np.delete(np.arange(len(run.component_ids)), pump)
    assert np.all(run.health[:, others] == 1.0)
    assert set(run.fault_labels[:, others].ravel()) == {"normal"}


def test_a_user_machine_runs_on_the_generic_physics() -> None:
    spec = load_spec(REPO / "docs" / "examples" / "hydraulic_press.yaml")
    healthy = generate(spec, duration_s=2 * HOUR, seed=0)
    faulty = generate(spec, duration_s=2 * HOUR, seed=0, faults=["pump_wear@30m:step"])

    for index, sensor in enumerate(spec.sensors):
        values = healthy.readings[:, index]
        values = values[~np.isnan(values)]
        assert sensor.normal[0] <= values.min() <= values.max() <= sensor.normal[1], sensor.id
    for sensor_id in spec.fault_mode("pump_wear").affected_sensors:
        late = slice(int(1.5 * HOUR), int(2 * HOUR))
        shift = np.nanmean(faulty.sensor(sensor_id)[late]) - np.nanmean(
            healthy.sensor(sensor_id)[late]
        )
        assert np.sign(shift) == fault_direction(spec.sensor(sensor_id).kind), sensor_id


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"duration_s": 1.0}, GenerationError, "fewer than 2 steps"),
        ({"duration_s": 60.0, "sample_rate_hz": 0.0}, GenerationError, "sample_rate_hz"),
        ({"duration_s": 60.0, "missing_rate": 1.0}, GenerationError, "missing_rate"),
        (
            {"duration_s": 60.0, "faults": ["tool_wear@1m"]},
            FaultSpecError,
            "unknown fault 'tool_wear'",
        ),
    ],
)
def test_invalid_requests_are_rejected(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        generate("excavator", **kwargs)  # type: ignore[arg-type]
