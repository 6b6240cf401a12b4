"""Hydraulic injection moulding machine: power pack, injection unit, screw, barrel, clamp, mould.

Duty cycle of about 25 s: close clamp, inject, hold, cool while the screw recovers the next
shot, open, eject; now and then a stop (material, operator) with heaters kept on.
Barrel zones are PID-controlled: temperatures sit near set point as long as the heaters
have power to spare. Melt viscosity rises as the barrel cools, which the screw feels.

Fault signatures (effect ``e``: 0 healthy, 1 at failure):

- ``heater_band_failure`` (zone 2): heater bands open one by one; once the remaining bands
  saturate, zone 2 current and temperature fall, zone 3 follows a little (conduction along
  the barrel) and the colder, stiffer melt needs more screw torque.
- ``check_ring_wear``: melt leaks back past the worn non-return valve during inject and
  hold: the cushion shrinks and melt pressure cannot be built or held.
- ``hydraulic_leak``: external leak on the power pack: system pressure sags, the servo pump
  runs harder (motor current up), the oil runs warmer and the tank level falls as oil is lost.
- ``clamp_pressure_loss``: clamp cylinder seals leak: clamp pressure and force fall.
- ``cooling_channel_blockage``: scale narrows the mould's cooling channels: coolant flow
  falls, the water returns hotter and both mould halves run warmer.
"""

from __future__ import annotations

import numpy as np

from machines.physics.base import SimContext
from machines.signals import (
    FloatArray,
    Phase,
    ambient_temperature,
    bounded_normal,
    cycle_schedule,
    smooth_noise,
)

PHASES = (
    Phase("close", 1.5, 2.5),
    Phase("inject", 1.5, 2.5),
    Phase("hold", 3.5, 4.5),
    Phase("cool", 11, 14),
    Phase("open", 1.5, 2.5),
    Phase("eject", 1, 1.5),
    Phase("stop", 60, 600, probability=0.01),
)

ZONE_SETPOINTS_C = (200.0, 220.0, 230.0, 235.0)
ZONE_HOLD_CURRENT_A = (6.5, 6.0, 5.5, 5.0)
HEATER_MAX_CURRENT_A = 12.0
KELVIN_PER_MISSING_AMP = 8.0
TANK_VOLUME_L = 400.0


def simulate(ctx: SimContext) -> dict[str, FloatArray]:
    """Simulate the injection moulding machine's true sensor values.

    Shapes:
        return: ``{sensor_id: [T]}``.
    """
    rng, n, dt = ctx.rng, ctx.n, ctx.dt_s
    schedule = cycle_schedule(rng, n, dt, PHASES)
    shot = schedule.per_cycle(rng.normal(1.0, 0.02, schedule.n_cycles))
    wobble = np.clip(smooth_noise(rng, n, 30.0, dt, columns=8), -3.0, 3.0)
    ripple = bounded_normal(rng, (n, 4))
    ambient = ambient_temperature(rng, ctx.t_s, mean_c=24.0 + rng.uniform(-2, 2), daily_swing_c=3)

    heater = ctx.effect("heater_band_failure")
    check_ring = ctx.effect("check_ring_wear")
    leak = ctx.effect("hydraulic_leak")
    clamp_loss = ctx.effect("clamp_pressure_loss")
    blockage = ctx.effect("cooling_channel_blockage")

    stopped = schedule.is_phase("stop")
    recovering = schedule.is_phase("cool") & (schedule.time_in_phase(dt) < 7.0)
    clamped = schedule.is_phase("inject", "hold", "cool")

    # Barrel: zone 2 loses heater capacity; deficits spread to the neighbours by conduction.
    demand = np.array(ZONE_HOLD_CURRENT_A)[np.newaxis] * (1.0 + 0.08 * wobble[:, :4])
    demand = demand + np.where(stopped, -0.8, 0.0)[:, np.newaxis]
    # Mains voltage fluctuation moves the current of a saturated (fully on) heater.
    mains = 1.0 + 0.02 * ripple[:, 3]
    capacity = HEATER_MAX_CURRENT_A * np.repeat(mains[:, np.newaxis], 4, axis=1)
    capacity[:, 1] *= np.maximum(1.0 - 0.85 * heater, 0.05)
    currents = np.minimum(demand, capacity)
    deficit = KELVIN_PER_MISSING_AMP * (demand - currents)
    spread = deficit @ np.array(
        [
            [1.0, 0.15, 0.0, 0.0],
            [0.15, 1.0, 0.25, 0.0],
            [0.0, 0.25, 1.0, 0.15],
            [0.0, 0.0, 0.15, 1.0],
        ]
    )
    zone_temps = [
        ZONE_SETPOINTS_C[z] + 1.2 * wobble[:, 4 + z] - ctx.lag(spread[:, z], 180.0)
        for z in range(4)
    ]
    # The melt passes zones 2-4; a colder barrel leaves it colder and stiffer.
    melt_cooling = ctx.lag(spread[:, 1:] @ np.array([0.5, 0.35, 0.15]), 180.0)
    viscosity = 1.0 + 0.02 * melt_cooling

    # Injection unit and screw.
    backflow = 0.6 * check_ring
    melt_pressure = ctx.lag(
        schedule.per_phase({"inject": 900.0, "hold": 620.0, "cool": 70.0}, default=10.0)
        * shot
        * viscosity
        * np.where(schedule.is_phase("hold"), 1.0 - backflow, 1.0 - 0.5 * backflow),
        0.7,
    )
    injection_pressure = ctx.lag(
        schedule.per_phase({"inject": 125.0, "hold": 80.0, "cool": 12.0}, default=4.0) * shot,
        0.7,
    )
    cushion = schedule.per_cycle(rng.normal(6.0, 0.25, schedule.n_cycles)) - 5.0 * check_ring
    screw_position = ctx.lag(
        np.where(
            schedule.is_phase("inject", "hold"),
            cushion,
            np.where(schedule.is_phase("cool", "open", "eject", "close", "stop"), 86.0, cushion),
        ),
        2.0,
    )
    screw_speed = ctx.lag(np.where(recovering, 110.0 * shot, 0.0), 1.0)
    screw_torque = ctx.lag(np.where(recovering, 1150.0 * viscosity * shot, 0.0), 1.0)

    # Power pack: servo pump supplies whichever unit is moving.
    system_pressure = ctx.lag(
        schedule.per_phase(
            {"close": 80.0, "inject": 140, "hold": 95, "cool": 70, "open": 60, "eject": 50},
            default=25.0,
        )
        + 3.0 * ripple[:, 0],
        0.8,
    ) * (1.0 - 0.3 * leak)
    pump_current = 9.0 + 0.22 * system_pressure + 18.0 * leak + 0.5 * ripple[:, 1]
    hydraulic_power = ctx.lag(system_pressure * pump_current / 1000.0, 600.0, settle_s=1800)
    oil_temp = 41.0 + 0.12 * (ambient - 24.0) + 1.5 * hydraulic_power + 14.0 * leak
    lost_litres = np.cumsum(0.3 * leak) * dt / 60.0
    tank_level = np.maximum(80.0 - 100.0 * lost_litres / TANK_VOLUME_L, 2.0) + 0.04 * (
        oil_temp - 45.0
    )

    # Clamp.
    clamp_pressure = ctx.lag(
        np.where(clamped, 140.0 * (1.0 - 0.35 * clamp_loss), 0.0)
        + schedule.per_phase({"close": 60.0, "open": 40.0}, default=0.0)
        + 5.0,
        0.8,
    )
    clamp_force = ctx.lag(np.where(clamped, 7.0 * clamp_pressure, 0.0), 0.8)

    # Mould temperature control: less flow, more temperature rise in the water and the steel.
    coolant_flow = 30.0 * (1.0 - 0.7 * blockage) + 0.4 * ripple[:, 2]
    supply_temp = 50.0 + 0.4 * wobble[:, 7] + 0.05 * (ambient - 24.0)
    shot_heat = ctx.lag(np.where(schedule.is_phase("inject", "hold"), 1.0, 0.0), 8.0)
    heat_load = ctx.lag(1.0 - 0.8 * stopped.astype(np.float64), 600.0, settle_s=900)
    rise = 3.2 * heat_load * 30.0 / np.maximum(coolant_flow, 3.0)
    return_temp = supply_temp + rise
    mould_base = supply_temp + 2.0 * rise + 3.5 * heat_load
    mould_fixed = mould_base + 4.0 * shot_heat
    mould_moving = mould_base - 1.0 + 3.0 * shot_heat

    return {
        "system_pressure": system_pressure,
        "pump_motor_current": pump_current,
        "hydraulic_oil_temp": oil_temp,
        "oil_tank_level": tank_level,
        "injection_pressure": injection_pressure,
        "melt_pressure": melt_pressure,
        "screw_position": screw_position,
        "cushion_position": cushion,
        "screw_speed": screw_speed,
        "screw_torque": screw_torque,
        **{f"barrel_temp_zone{z + 1}": zone_temps[z] for z in range(4)},
        **{f"heater_current_zone{z + 1}": currents[:, z] for z in range(4)},
        "clamp_pressure": clamp_pressure,
        "clamp_force": clamp_force,
        "mould_temp_fixed": mould_fixed,
        "mould_temp_moving": mould_moving,
        "coolant_supply_temp": supply_temp,
        "coolant_return_temp": return_temp,
        "coolant_flow": coolant_flow,
    }
