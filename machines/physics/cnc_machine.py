"""Three-axis CNC machining centre: spindle, ball-screw feed drives, flood coolant, cutting tool.

Duty cycle per part: load the part (spindle and coolant off), rapid approach, roughing
pass, tool change, finishing pass, rapid retract; now and then a longer pause. During the
passes the X axis zig-zags (reversing every few seconds) while Y steps over.

Fault signatures (effect ``e``: 0 healthy, 1 at failure):

- ``spindle_bearing_wear``: speed-proportional vibration and the high-frequency
  acceleration envelope grow, friction heats the front bearing.
- ``tool_wear``: a blunt edge needs more cutting force; spindle power, current and acoustic
  emission rise with it.
- ``axis_backlash`` (X ball screw): lost motion at every reversal shows as following error
  peaks; the drive pushes extra current through them.
- ``coolant_pump_failure``: the pump's bearing drags and its impeller wears: more motor
  current, less pressure and flow.
"""

from __future__ import annotations

import math

import numpy as np

from machines.physics.base import SimContext
from machines.signals import (
    FloatArray,
    Phase,
    ambient_temperature,
    bounded_normal,
    cycle_schedule,
)

PHASES = (
    Phase("load", 30, 60),
    Phase("approach", 3, 5),
    Phase("rough", 60, 120),
    Phase("tool_change", 6, 10),
    Phase("finish", 40, 80),
    Phase("retract", 3, 5),
    Phase("pause", 300, 1200, probability=0.03),
)

CUTTER_DIAMETER_M = 0.05
RAPID_MM_PER_MIN = 20_000.0


def _following_error(speed_mm_min: FloatArray) -> FloatArray:
    # Feed-forward keeps the error small at feed rates; rapids still lag a few micrometres.
    return (
        0.5
        + 0.0022 * np.minimum(speed_mm_min, 3000.0)
        + 0.0004 * np.maximum(speed_mm_min - 3000.0, 0.0)
    )


def simulate(ctx: SimContext) -> dict[str, FloatArray]:
    """Simulate the CNC machine's true sensor values.

    Shapes:
        return: ``{sensor_id: [T]}``.
    """
    rng, n, dt = ctx.rng, ctx.n, ctx.dt_s
    schedule = cycle_schedule(rng, n, dt, PHASES)
    material = schedule.per_cycle(rng.uniform(0.85, 1.15, schedule.n_cycles))
    zigzag_s = schedule.per_cycle(rng.uniform(6.0, 10.0, schedule.n_cycles))
    ripple = bounded_normal(rng, (n, 6))
    ambient = ambient_temperature(rng, ctx.t_s, mean_c=21.0 + rng.uniform(-1, 1), daily_swing_c=2)

    bearing = ctx.effect("spindle_bearing_wear")
    tool = ctx.effect("tool_wear")
    backlash = ctx.effect("axis_backlash")
    pump = ctx.effect("coolant_pump_failure")

    rough = schedule.is_phase("rough")
    finish = schedule.is_phase("finish")
    cutting = rough | finish
    rapid = schedule.is_phase("approach", "retract", "tool_change")
    coolant_on = schedule.is_phase("approach", "rough", "tool_change", "finish", "retract")

    # Spindle and cutting.
    speed = ctx.lag(schedule.per_phase({"rough": 6000.0, "finish": 10_000.0}), 1.0)
    force = ctx.lag(
        (np.where(rough, 800.0 * material, 0.0) + np.where(finish, 250.0, 0.0))
        * (1.0 + 0.05 * ripple[:, 0])
        * (1.0 + 0.8 * tool),
        1.0,
    )
    cutting_speed = math.pi * CUTTER_DIAMETER_M * speed / 60.0
    spindle_power = (
        force * cutting_speed / 1000.0
        + np.where(speed > 50.0, 0.3 + 0.00012 * speed, 0.0)
        + 0.0001 * speed * bearing
    )
    spindle_current = 1.0 + 2.4 * spindle_power
    spindle_temp = (
        24.0 + 0.8 * (ambient - 21.0) + 1.8 * ctx.lag(spindle_power, 900.0, settle_s=3600)
    )
    bearing_temp = (
        25.0
        + 0.8 * (ambient - 21.0)
        + 0.0011 * ctx.lag(speed, 1200.0, settle_s=3600)
        + 22.0 * ctx.lag(bearing * speed / 8000.0, 600.0)
    )
    vibration = np.where(
        speed > 50.0,
        0.25 + 0.00011 * speed * (1.0 + 2.5 * bearing) + 0.0006 * force + 0.05 * ripple[:, 1],
        0.08,
    )
    envelope = 0.05 + 0.00002 * speed + 0.00025 * speed * bearing
    acoustic = (
        np.where(
            cutting,
            55.0 + 10.0 * np.log10(1.0 + force / 100.0) + 8.0 * tool,
            np.where(speed > 50.0, 50.0, 42.0),
        )
        + 0.8 * ripple[:, 2]
    )

    # Feed axes: X zig-zags through the passes, Y steps over, Z holds against gravity.
    x_speed = np.where(rough, 1800.0, 0.0) + np.where(finish, 1200.0, 0.0)
    x_speed = ctx.lag(x_speed + np.where(rapid, RAPID_MM_PER_MIN, 0.0), 0.5)
    since = schedule.time_in_phase(dt)
    reversal = cutting & (np.mod(since, zigzag_s) < dt)
    y_speed = ctx.lag(
        np.where(reversal, 600.0, 0.0) + np.where(rapid, RAPID_MM_PER_MIN * 0.6, 0.0), 0.5
    )
    z_speed = ctx.lag(
        np.where(schedule.is_phase("tool_change", "approach", "retract"), RAPID_MM_PER_MIN, 0.0),
        0.5,
    )
    x_error = (
        _following_error(x_speed)
        + np.where(reversal, 1.5 + 26.0 * backlash, 0.0)
        + 2.5 * (backlash * cutting)
    )
    x_current = (
        1.2
        + 0.0006 * np.minimum(x_speed, 3000.0)
        + 0.0001 * x_speed
        + 0.002 * force
        + np.where(reversal, 0.8 + 3.0 * backlash, 0.0)
        + 1.2 * backlash * cutting  # stick-slip in the lost motion, on every pass
        + 0.1 * ripple[:, 3]
    )
    y_current = 1.0 + 0.0006 * np.minimum(y_speed, 3000.0) + 0.0001 * y_speed + 0.0012 * force
    z_current = 3.0 + 0.0008 * np.minimum(z_speed, 3000.0) + 0.0001 * z_speed + 0.0008 * force
    screw_temps = {
        axis: 22.0 + 0.6 * (ambient - 21.0) + 0.004 * ctx.lag(v, 1800.0, settle_s=3600)
        for axis, v in (("x", x_speed), ("y", y_speed), ("z", z_speed))
    }

    # Flood coolant.
    delivery = 1.0 - 0.6 * pump
    coolant_pressure = ctx.lag(np.where(coolant_on, 6.0 * delivery + 0.1 * ripple[:, 4], 0.0), 1.0)
    coolant_flow = ctx.lag(np.where(coolant_on, 40.0 * delivery + 0.6 * ripple[:, 5], 0.0), 1.0)
    pump_current = np.where(coolant_on, 3.2 + 2.5 * pump, 0.0)
    coolant_temp = (
        21.0 + 0.8 * (ambient - 21.0) + 0.35 * ctx.lag(spindle_power, 1200.0, settle_s=3600)
    )

    return {
        "spindle_speed": speed,
        "spindle_motor_current": spindle_current,
        "spindle_power": spindle_power,
        "spindle_motor_temp": spindle_temp,
        "bearing_temp_front": bearing_temp,
        "bearing_vibration": vibration,
        "bearing_accel_envelope": envelope,
        "cutting_force": force,
        "acoustic_emission": acoustic,
        "x_motor_current": x_current,
        "x_following_error": x_error,
        "x_ballscrew_temp": screw_temps["x"],
        "y_motor_current": y_current,
        "y_following_error": _following_error(y_speed),
        "y_ballscrew_temp": screw_temps["y"],
        "z_motor_current": z_current,
        "z_following_error": _following_error(z_speed),
        "z_ballscrew_temp": screw_temps["z"],
        "coolant_pressure": coolant_pressure,
        "coolant_flow": coolant_flow,
        "coolant_pump_current": pump_current,
        "coolant_temp": coolant_temp,
    }
