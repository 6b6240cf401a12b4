"""Six-axis industrial robot doing pick-and-place: servo motors, gearboxes, controller, gripper.

Duty cycle of about 10 s: approach the part, grip, move it loaded, place, return, wait for
the next part; now and then the conveyor stops. Motor current is holding torque against
gravity (joints 2, 3 and 5, more with the payload) plus a speed-dependent part; motor
temperatures follow the copper losses (current squared) through a thermal lag.

Fault signatures (effect ``e``: 0 healthy, 1 at failure):

- ``gearbox_wear`` (joint 2): pitting and lost preload: gearbox vibration and temperature
  rise, the motor needs more current to overcome the friction.
- ``motor_overheating`` (joint 3): the holding brake drags and cooling degrades: the motor
  draws more current and runs much hotter.
- ``joint_friction_increase`` (joint 1): lubricant loss: more current at any speed, the
  gearbox and (through the extra copper losses) the motor warm up.
- ``gripper_pressure_loss``: a leaking gripper cylinder: supply pressure at the gripper
  falls and the valve island's air consumption rises.
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
)

PHASES = (
    Phase("approach", 1.5, 2.5),
    Phase("grip", 0.8, 1.2),
    Phase("move", 2.5, 3.5),
    Phase("place", 0.8, 1.2),
    Phase("return", 2.0, 3.0),
    Phase("wait", 0.5, 3.0),
    Phase("pause", 30, 300, probability=0.02),
)

JOINTS = 6
HOLD_CURRENT_A = np.array([0.8, 5.0, 3.5, 0.5, 0.8, 0.3])
PAYLOAD_CURRENT_A = np.array([0.0, 3.0, 2.0, 0.0, 0.6, 0.0])
MOTION_CURRENT_A = np.array([4.0, 5.0, 4.0, 1.5, 1.5, 1.0])
MOTOR_HEATING_K_PER_A2 = np.array([1.6, 0.22, 0.45, 5.0, 3.0, 9.0])
GEARBOX_HEATING_K = np.array([10.0, 14.0, 12.0, 6.0, 6.0, 4.0])
GEARBOX_VIBRATION_GAIN = np.array([1.0, 1.2, 1.1, 0.7, 0.7, 0.5])
MOTOR_TAU_S = 15 * 60.0
GEARBOX_TAU_S = 25 * 60.0


def simulate(ctx: SimContext) -> dict[str, FloatArray]:
    """Simulate the robot's true sensor values.

    Shapes:
        return: ``{sensor_id: [T]}``.
    """
    rng, n, dt = ctx.rng, ctx.n, ctx.dt_s
    schedule = cycle_schedule(rng, n, dt, PHASES)
    reach = rng.uniform(0.8, 1.2, (schedule.n_cycles, JOINTS))[schedule.cycle]
    ripple = bounded_normal(rng, (n, JOINTS + 3))
    ambient = ambient_temperature(rng, ctx.t_s, mean_c=22.0 + rng.uniform(-2, 2), daily_swing_c=3)

    wear = ctx.effect("gearbox_wear")
    overheating = ctx.effect("motor_overheating")
    friction = ctx.effect("joint_friction_increase")
    leak = ctx.effect("gripper_pressure_loss")

    moving = schedule.is_phase("approach", "move", "return").astype(np.float64)
    loaded = schedule.is_phase("grip", "move", "place").astype(np.float64)
    actuating = schedule.is_phase("grip", "place").astype(np.float64)

    # Normalised joint speed (1 = the joint's nominal speed), smoothed by the acceleration ramps.
    speed = np.stack([ctx.lag(moving * reach[:, j], 0.5) for j in range(JOINTS)], axis=1)
    current = (
        HOLD_CURRENT_A
        + PAYLOAD_CURRENT_A * loaded[:, np.newaxis]
        + MOTION_CURRENT_A * speed
        + 0.05 * ripple[:, :JOINTS]
    )
    current[:, 0] += friction * (0.8 + 2.5 * speed[:, 0])
    current[:, 1] += wear * (0.5 + 2.5 * speed[:, 1])
    current[:, 2] += 1.5 * overheating

    motor_rise = (
        np.stack(
            [ctx.lag(current[:, j] ** 2, MOTOR_TAU_S, settle_s=3600) for j in range(JOINTS)], axis=1
        )
        * MOTOR_HEATING_K_PER_A2
    )
    motor_rise[:, 2] *= 1.0 + 2.0 * overheating
    motor_temp = ambient[:, np.newaxis] + motor_rise

    gearbox_rise = (
        np.stack(
            [ctx.lag(speed[:, j], GEARBOX_TAU_S, settle_s=3600) for j in range(JOINTS)], axis=1
        )
        * GEARBOX_HEATING_K
    )
    gearbox_rise[:, 0] += 16.0 * ctx.lag(friction, GEARBOX_TAU_S)
    gearbox_rise[:, 1] += 20.0 * ctx.lag(wear, GEARBOX_TAU_S)
    gearbox_temp = ambient[:, np.newaxis] + 4.0 + gearbox_rise

    turning = speed > 0.05
    vibration = np.where(turning, (0.3 + 0.8 * speed) * GEARBOX_VIBRATION_GAIN, 0.15)
    vibration[:, 1] = np.where(
        turning[:, 1], vibration[:, 1] * (1.0 + 2.5 * wear) + 0.6 * wear, vibration[:, 1]
    )

    total_current = current.sum(axis=1)
    cabinet_temp = ambient + 10.0 + 0.12 * ctx.lag(total_current, 1200.0, settle_s=3600)
    dc_bus = 566.0 - 0.25 * total_current + 2.0 * ripple[:, JOINTS]

    gripper_pressure = (6.2 - 0.4 * actuating) * (1.0 - 0.5 * leak) + 0.03 * ripple[:, JOINTS + 1]
    air_flow = 0.5 + 15.0 * actuating + 35.0 * leak + 0.2 * ripple[:, JOINTS + 2]

    out: dict[str, FloatArray] = {}
    for j in range(JOINTS):
        name = f"j{j + 1}"
        out[f"{name}_motor_current"] = current[:, j]
        out[f"{name}_motor_temp"] = motor_temp[:, j]
        out[f"{name}_gearbox_temp"] = gearbox_temp[:, j]
        out[f"{name}_gearbox_vibration"] = vibration[:, j]
    out["controller_cabinet_temp"] = cabinet_temp
    out["dc_bus_voltage"] = dc_bus
    out["gripper_pressure"] = gripper_pressure
    out["gripper_air_flow"] = air_flow
    return out
