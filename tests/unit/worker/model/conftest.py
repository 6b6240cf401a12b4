"""Small real machines, windows of readings and a tiny model configuration for model tests."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from schemas.spec import SystemSpec, parse_spec

if TYPE_CHECKING:
    from worker.model import ModelConfig

Readings = dict[str, list[float | None]]
MakeReadings = Callable[..., Readings]

PRESS: dict[str, Any] = {
    "name": "press",
    "components": [
        {"id": "pump", "type": "hydraulic_pump"},
        {"id": "valve", "type": "valve_block"},
        {"id": "cylinder", "type": "hydraulic_cylinder"},
    ],
    "sensors": [
        {"id": "pump_pressure", "component": "pump", "kind": "pressure", "unit": "bar", "normal": [10, 200], "critical": [0, 250]},
        {"id": "pump_flow", "component": "pump", "kind": "flow", "unit": "l/min", "normal": [5, 80], "critical": [0, 100]},
        {"id": "pump_temp", "component": "pump", "kind": "temperature", "unit": "degC", "normal": [20, 70], "critical": [0, 90]},
        {"id": "pump_vibration", "component": "pump", "kind": "vibration", "unit": "mm/s", "normal": [0.2, 4], "critical": [0, 8]},
        {"id": "valve_position", "component": "valve", "kind": "position", "unit": "mm", "normal": [0, 10], "critical": [-1, 12]},
        {"id": "valve_current", "component": "valve", "kind": "current", "unit": "A", "normal": [0.1, 2], "critical": [0, 3]},
        {"id": "cylinder_pressure", "component": "cylinder", "kind": "pressure", "unit": "bar", "normal": [20, 180], "critical": [0, 220]},
        {"id": "cylinder_position", "component": "cylinder", "kind": "position", "unit": "mm", "normal": [0, 500], "critical": [-10, 520]},
    ],
    "connections": [
        {"source": "pump", "target": "valve", "type": "hydraulic_line", "attributes": {"length_m": 2.0, "diameter_mm": 20}},
        {"source": "valve", "target": "cylinder", "type": "hydraulic_line", "attributes": {"length_m": 4.0, "diameter_mm": 16}},
    ],
    "fault_modes": [
        {"id": "pump_wear", "component": "pump", "affected_sensors": ["pump_pressure", "pump_flow", "pump_temp"]},
        {"id": "valve_stick", "component": "valve", "affected_sensors": ["valve_position", "valve_current", "cylinder_position"]},
        {"id": "cylinder_leak", "component": "cylinder", "affected_sensors": ["cylinder_pressure", "pump_flow"]},
    ],
}  # fmt: skip
"""3 components, 8 sensors of 6 kinds, 2 connections, 3 fault modes."""

SKID: dict[str, Any] = {
    "name": "fan_skid",
    "components": [
        {"id": "motor", "type": "electric_motor"},
        {"id": "fan", "type": "fan"},
        {"id": "housing", "type": "enclosure"},
    ],
    "sensors": [
        {"id": "motor_current", "component": "motor", "kind": "current", "unit": "A", "normal": [5, 40], "critical": [0, 60]},
        {"id": "motor_speed", "component": "motor", "kind": "speed", "unit": "rpm", "normal": [1450, 1500], "critical": [0, 1600]},
        {"id": "motor_temp", "component": "motor", "kind": "temperature", "unit": "degC", "normal": [30, 80], "critical": [0, 110]},
        {"id": "fan_speed", "component": "fan", "kind": "speed", "unit": "rpm", "normal": [700, 750], "critical": [0, 800]},
        {"id": "fan_vibration", "component": "fan", "kind": "vibration", "unit": "mm/s", "normal": [0.5, 3], "critical": [0, 7]},
    ],
    "connections": [
        {"source": "motor", "target": "fan", "type": "mechanical_shaft", "attributes": {"ratio": 0.5}},
        {"source": "fan", "target": "housing", "type": "structural"},
    ],
    "fault_modes": [
        {"id": "motor_overheat", "component": "motor", "affected_sensors": ["motor_temp", "motor_current"]},
        {"id": "fan_imbalance", "component": "fan", "affected_sensors": ["fan_vibration", "motor_current"]},
    ],
}  # fmt: skip
"""A different machine: 3 components (one without sensors), 5 sensors, 2 fault modes."""


@pytest.fixture
def press_doc() -> dict[str, Any]:
    """The press as a fresh, editable document."""
    return copy.deepcopy(PRESS)


@pytest.fixture
def press_spec() -> SystemSpec:
    """The press, validated."""
    return parse_spec(PRESS)


@pytest.fixture
def skid_spec() -> SystemSpec:
    """The fan skid, validated."""
    return parse_spec(SKID)


@pytest.fixture
def make_readings() -> MakeReadings:
    """Factory of healthy windows: a slow sine plus noise inside each normal range."""

    def make(spec: SystemSpec, steps: int = 60, rate_hz: float = 1.0, seed: int = 0) -> Readings:
        rng = np.random.default_rng(seed)
        seconds = np.arange(steps) / rate_hz
        readings: Readings = {}
        for sensor in spec.sensors:
            low, high = sensor.normal
            centre, half = (low + high) / 2, (high - low) / 2
            phase = rng.uniform(0, 2 * math.pi)
            wave = np.sin(2 * math.pi * seconds / 20.0 + phase)
            series = centre + half * (0.5 * wave + 0.05 * rng.standard_normal(steps))
            readings[sensor.id] = list(series.tolist())
        return readings

    return make


@pytest.fixture
def tiny_config() -> ModelConfig:
    """A small model that runs in milliseconds; dropout on, to prove eval mode turns it off."""
    from worker.model import ModelConfig  # after the guarded torch_geometric import above

    return ModelConfig(
        hidden=16, layers=2, heads=2, dropout=0.1, temporal_channels=8, dilations=(1, 2)
    )
