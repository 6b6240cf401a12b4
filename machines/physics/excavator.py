"""Hydraulic excavator: diesel engine, load-sensing pump, valve block, cylinders, swing, travel.

Duty cycle: dig, swing loaded, dump, swing back; now and then a wait for the next truck
(engine auto-idles) or a travel move. Hydraulic pressures and flows follow the cycle; the
oil temperature is a heat balance (losses in, cooler out) through a slow thermal lag.

Fault signatures (effect ``e``: 0 healthy, 1 at failure):

- ``pump_internal_leak``: part of the pump flow returns through the case drain: delivered
  flow and reachable pressure fall (and with them every actuator pressure), case drain flow
  and pump case temperature rise, the leak's throttling heat warms the oil.
- ``valve_spool_sticking``: the boom spool strokes less for the same pilot pressure; the
  operator pushes harder (pilot pressure up), the spool still moves less.
- ``cylinder_seal_leak`` (boom): oil bypasses the piston: head pressure cannot hold the
  boom, rod-side pressure rises, the boom drifts down, the leak heats the oil a little.
- ``cooler_fouling``: the cooler removes less heat: its outlet temperature and the oil
  temperature rise, the thermostatic fan speeds up.
- ``filter_clogging``: the return filter's pressure drop rises and with it the return line
  pressure upstream of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from machines.physics.base import SimContext
from machines.signals import (
    FloatArray,
    Phase,
    Schedule,
    ambient_temperature,
    bounded_normal,
    cycle_schedule,
)

PHASES = (
    Phase("dig", 6, 10),
    Phase("swing_loaded", 5, 7),
    Phase("dump", 2, 4),
    Phase("swing_back", 4, 6),
    Phase("wait", 20, 120, probability=0.12),
    Phase("travel", 60, 240, probability=0.01),
)

OIL_TAU_S = 20 * 60.0
COOLER_CONDUCTANCE_KW_PER_K = 0.2


@dataclass(frozen=True)
class _Cycle:
    """Everything random about one run, drawn before any fault effect is applied."""

    ctx: SimContext
    schedule: Schedule
    hardness: FloatArray
    ripple: FloatArray
    ambient: FloatArray

    def fast(self, x: FloatArray, tau_s: float = 1.0) -> FloatArray:
        return self.ctx.lag(x, tau_s)

    def phase_level(self, levels: dict[str, float], default: float = 0.0) -> FloatArray:
        return self.schedule.per_phase(levels, default)


def simulate(ctx: SimContext) -> dict[str, FloatArray]:
    """Simulate the excavator's true sensor values.

    Shapes:
        return: ``{sensor_id: [T]}``.
    """
    rng = ctx.rng
    schedule = cycle_schedule(rng, ctx.n, ctx.dt_s, PHASES)
    cycle = _Cycle(
        ctx=ctx,
        schedule=schedule,
        hardness=schedule.per_cycle(rng.uniform(0.7, 1.1, schedule.n_cycles)),
        ripple=bounded_normal(rng, (ctx.n, 6)),
        ambient=ambient_temperature(
            rng, ctx.t_s, mean_c=20.0 + rng.uniform(-3, 3), daily_swing_c=5
        ),
    )
    pump = _pump_and_engine(cycle)
    actuators = _actuators(cycle, pump)
    oil = _oil_circuit(cycle, pump, actuators)
    return {
        name: values
        for name, values in {**pump, **actuators, **oil}.items()
        if not name.startswith("_")
    }


def _pump_and_engine(cycle: _Cycle) -> dict[str, FloatArray]:
    """Pump delivery and the engine driving it; ``_``-names are internal signals."""
    leak = cycle.ctx.effect("pump_internal_leak")
    digging = cycle.schedule.is_phase("dig")
    waiting = cycle.schedule.is_phase("wait")
    # Load pressure set by the heaviest function, flow by the operator's demand.
    load_pressure = cycle.phase_level(
        {
            "dig": 180.0,
            "swing_loaded": 170,
            "dump": 110,
            "swing_back": 90,
            "wait": 35,
            "travel": 200,
        }
    ) + np.where(digging, 90.0 * cycle.hardness, 0.0)
    load_pressure = cycle.fast(load_pressure + 6.0 * cycle.ripple[:, 0])
    flow_demand = cycle.fast(
        cycle.phase_level(
            {
                "dig": 170.0,
                "swing_loaded": 200,
                "dump": 150,
                "swing_back": 180,
                "wait": 35,
                "travel": 215,
            }
        )
        + 4.0 * cycle.ripple[:, 1]
    )
    pressure_factor = 1.0 - 0.45 * leak
    pump_pressure = load_pressure * pressure_factor
    leak_flow = 0.4 * leak * flow_demand
    pump_flow = flow_demand - leak_flow
    hydraulic_kw = pump_pressure * pump_flow / 600.0

    # The engine droops under load and auto-idles while waiting.
    engine_kw = cycle.fast(hydraulic_kw / 0.85 + 12.0, 2.0)
    engine_speed = cycle.fast(np.where(waiting, 1050.0, 1960.0 - 0.9 * engine_kw), 2.0)
    coolant_temp = (
        84.0 + 0.06 * cycle.ctx.lag(engine_kw, 300.0, settle_s=1800) + 0.12 * (cycle.ambient - 20)
    )
    return {
        "engine_speed": engine_speed,
        "engine_power": engine_kw,
        "fuel_rate": 0.26 * engine_kw + 1.2,
        "engine_coolant_temp": coolant_temp,
        "engine_oil_pressure": 1.4 + 0.0018 * engine_speed - 0.02 * (coolant_temp - 88.0),
        "pump_outlet_pressure": pump_pressure,
        "pump_flow": pump_flow,
        "pump_case_drain_flow": 1.8 + 0.008 * pump_pressure + 0.25 * leak_flow,
        "pump_vibration": 1.2
        + 0.008 * pump_pressure * (pump_flow / 200.0)
        + 0.15 * cycle.ripple[:, 3],
        "_flow_demand": flow_demand,
        "_pressure_factor": pressure_factor,
        "_leak_heat_kw": pump_pressure * leak_flow / 600.0,
        "_hydraulic_kw": hydraulic_kw,
    }


def _actuators(cycle: _Cycle, pump: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """Valve block, cylinders, swing and travel; pressures are capped by the pump's."""
    sticking = cycle.ctx.effect("valve_spool_sticking")
    seal = cycle.ctx.effect("cylinder_seal_leak")
    fast, level = cycle.fast, cycle.phase_level
    digging = cycle.schedule.is_phase("dig")
    travelling = cycle.schedule.is_phase("travel")
    factor = pump["_pressure_factor"]

    boom_command = fast(
        np.abs(level({"dig": 0.3, "swing_loaded": 0.95, "dump": 0.2, "swing_back": -0.7}))
    )
    boom_head_load = fast(
        level(
            {
                "dig": 150.0,
                "swing_loaded": 170,
                "dump": 120,
                "swing_back": 70,
                "wait": 85,
                "travel": 85,
            }
        )
        + np.where(digging, 40.0 * cycle.hardness, 0.0)
        + 4.0 * cycle.ripple[:, 2]
    )
    boom_rod = fast(
        level({"dig": 55.0, "dump": 25, "swing_back": 30}, default=20.0) + 3.0 * cycle.ripple[:, 4]
    )
    holding = ~cycle.schedule.is_phase("swing_back")
    boom_position = (
        fast(
            level(
                {
                    "dig": 600.0,
                    "swing_loaded": 1150,
                    "dump": 1250,
                    "swing_back": 750,
                    "wait": 900,
                    "travel": 1000,
                }
            ),
            2.0,
        )
        - np.where(holding, 260.0, 80.0) * seal
    )
    arm_head = fast(
        level({"swing_loaded": 120.0, "dump": 60, "swing_back": 50, "wait": 30, "travel": 30})
        + np.where(digging, 200.0 * cycle.hardness, 0.0)
    )
    arm_rod = fast(
        level({"dig": 60.0, "swing_loaded": 40, "dump": 130, "swing_back": 40}, default=20.0)
    )
    bucket_head = fast(
        level({"swing_loaded": 90.0, "dump": 40, "swing_back": 30}, default=25.0)
        + np.where(digging, 180.0 * cycle.hardness, 0.0)
    )
    swing_pressure = fast(level({"swing_loaded": 190.0, "swing_back": 150}, default=15.0))
    swing_speed = fast(
        level({"swing_loaded": 8.0, "swing_back": 9.5})
        * np.sqrt(pump["pump_flow"] / pump["_flow_demand"]),
        1.5,
    )
    travel_load = fast(np.where(travelling, 210.0 + 15.0 * cycle.ripple[:, 5], 8.0), 2.0)
    return {
        # The operator pushes harder, and a sticking spool needs a breakaway pressure.
        "boom_pilot_pressure": (1.0 + 26.0 * boom_command) * (1.0 + 0.3 * sticking)
        + 8.0 * sticking * (boom_command > 0.05),
        "valve_spool_position": 10.5 * boom_command * (1.0 - 0.45 * sticking),
        "boom_head_pressure": boom_head_load * factor * (1.0 - 0.35 * seal),
        "boom_rod_pressure": boom_rod * factor + 85.0 * seal,
        "boom_cylinder_position": boom_position,
        "arm_head_pressure": arm_head * factor,
        "arm_rod_pressure": arm_rod * factor,
        "bucket_head_pressure": bucket_head * factor,
        "swing_motor_pressure": swing_pressure * factor,
        "swing_speed": swing_speed,
        "travel_left_pressure": travel_load * factor,
        "travel_right_pressure": (travel_load + np.where(travelling, 10.0, 0.0)) * factor,
        # 12 l/min across the boom piston at failure, throttled from head pressure.
        "_seal_heat_kw": boom_head_load * 12.0 * seal / 600.0,
    }


def _oil_circuit(
    cycle: _Cycle, pump: dict[str, FloatArray], actuators: dict[str, FloatArray]
) -> dict[str, FloatArray]:
    """Oil heat balance (losses in, cooler out), cooler, tank and return filter."""
    fouling = cycle.ctx.effect("cooler_fouling")
    clogging = cycle.ctx.effect("filter_clogging")
    heat_kw = (
        0.12 * pump["_hydraulic_kw"]
        + pump["_leak_heat_kw"]
        + actuators["_seal_heat_kw"]
        + 1.5 * clogging
    )
    conductance = COOLER_CONDUCTANCE_KW_PER_K * (1.0 - 0.6 * fouling)
    oil_temp = cycle.ambient + cycle.ctx.lag(heat_kw / conductance, OIL_TAU_S, settle_s=1800)
    return_temp = oil_temp + 1.5 + cycle.fast(0.06 * heat_kw, 30.0)
    effectiveness = 0.35 * (1.0 - 0.7 * fouling)
    pump_pressure, pump_flow = pump["pump_outlet_pressure"], pump["pump_flow"]
    leak = cycle.ctx.effect("pump_internal_leak")
    # Cold oil is viscous: the filter's pressure drop grows with flow, cold and clogging.
    viscosity = np.exp(-0.025 * (oil_temp - 50.0))
    filter_dp = (0.12 + 0.45 * pump_flow / 220.0) * viscosity * (1.0 + 5.0 * clogging**2)
    return {
        "pump_case_temp": oil_temp + 4.0 + cycle.fast(0.02 * pump_pressure, 60.0) + 20.0 * leak,
        "cooler_inlet_temp": return_temp,
        "cooler_outlet_temp": return_temp - effectiveness * (return_temp - cycle.ambient),
        "cooler_fan_speed": np.clip(750.0 + 28.0 * (oil_temp - 40.0), 750.0, 2000.0),
        "tank_oil_temp": oil_temp,
        "tank_oil_level": 70.0
        + 0.08 * (oil_temp - 50.0)
        - 3.0 * (actuators["boom_cylinder_position"] - 800.0) / 600.0,
        "filter_diff_pressure": filter_dp,
        "return_line_pressure": 1.2 + 0.6 * pump_flow / 220.0 + filter_dp,
    }
