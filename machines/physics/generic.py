"""A generic physics model for machines described by the user (no hand-written physics).

Every component follows one machine-wide duty cycle (work, light work, idle), delayed a
little more the further it sits downstream along the connections. Each sensor sits in the
middle of its normal range and moves with its component's load (voltages sag under load);
temperatures and levels follow through a slow thermal lag. A fault moves each of its
affected sensors towards the critical bound in the direction its kind usually fails:
up for temperature, vibration, current, power, torque, force and other; down for pressure,
flow, speed, level, voltage and position. At failure (effect 1) a sensor is 95 % of the way
from the middle of its normal range to that critical bound.
"""

from __future__ import annotations

from collections import deque
from typing import Final

import numpy as np

from machines.physics.base import SimContext, Simulator
from machines.signals import FloatArray, Phase, cycle_schedule, smooth_noise
from schemas import SensorKind, SystemSpec

FAILS_UPWARDS: Final[frozenset[SensorKind]] = frozenset(
    {"temperature", "vibration", "current", "power", "torque", "force", "other"}
)
"""Sensor kinds whose readings rise as a fault develops; all others fall."""

SLOW_KINDS: Final[frozenset[SensorKind]] = frozenset({"temperature", "level"})
"""Sensor kinds that follow load through a slow lag."""

PHASES = (
    Phase("work", 40, 120),
    Phase("light", 20, 60),
    Phase("idle", 60, 300, probability=0.15),
)
_LOAD = {"work": 0.9, "light": 0.5, "idle": 0.1}


def fault_direction(kind: SensorKind) -> int:
    """+1 when a fault pushes a sensor of ``kind`` up, -1 when down."""
    return 1 if kind in FAILS_UPWARDS else -1


def _depths(spec: SystemSpec) -> dict[str, int]:
    targets = {link.target for link in spec.connections}
    children: dict[str, list[str]] = {cid: [] for cid in spec.component_ids}
    for link in spec.connections:
        children[link.source].append(link.target)
    roots = [cid for cid in spec.component_ids if cid not in targets] or [spec.component_ids[0]]
    depth = dict.fromkeys(roots, 0)
    queue = deque(roots)
    while queue:
        current = queue.popleft()
        for child in children[current]:
            if child not in depth:
                depth[child] = depth[current] + 1
                queue.append(child)
    return {cid: depth.get(cid, 0) for cid in spec.component_ids}


def generic_model(spec: SystemSpec) -> Simulator:
    """Build the generic physics model of ``spec``."""
    depths = _depths(spec)

    def simulate(ctx: SimContext) -> dict[str, FloatArray]:
        schedule = cycle_schedule(ctx.rng, ctx.n, ctx.dt_s, PHASES)
        load = ctx.lag(schedule.per_phase(_LOAD), 5.0)
        gains = ctx.rng.uniform(0.8, 1.0, len(spec.components))
        wobble = smooth_noise(ctx.rng, ctx.n, 20.0, ctx.dt_s, columns=len(spec.sensors))
        loads = {
            cid: gains[index] * ctx.lag(load, 2.0 + 3.0 * depths[cid])
            for index, cid in enumerate(spec.component_ids)
        }
        out: dict[str, FloatArray] = {}
        for index, sensor in enumerate(spec.sensors):
            low, high = sensor.normal
            middle, half = (low + high) / 2, (high - low) / 2
            sign = -1.0 if sensor.kind == "voltage" else 1.0
            value = 0.6 * half * sign * (loads[sensor.component] - 0.5)
            if sensor.kind in SLOW_KINDS:
                value = ctx.lag(value, 900.0, settle_s=1800.0)
            out[sensor.id] = middle + value + 0.04 * half * np.clip(wobble[:, index], -3, 3)
        for fault in spec.fault_modes:
            effect = ctx.effect(fault.id)
            if not effect.any():
                continue
            for sensor_id in fault.affected_sensors:
                sensor = spec.sensor(sensor_id)
                direction = fault_direction(sensor.kind)
                middle = sum(sensor.normal) / 2
                bound = sensor.critical[1] if direction > 0 else sensor.critical[0]
                out[sensor_id] = out[sensor_id] + 0.95 * effect * (bound - middle)
        return out

    return simulate
