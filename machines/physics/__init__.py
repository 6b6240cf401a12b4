"""Physics models of the demo machines, one module per machine, plus a generic fallback."""

from __future__ import annotations

from machines.physics import (
    cnc_machine,
    excavator,
    industrial_robot,
    injection_molding_machine,
)
from machines.physics.base import SimContext, Simulator

_MODELS: dict[str, Simulator] = {
    "excavator": excavator.simulate,
    "injection_molding_machine": injection_molding_machine.simulate,
    "cnc_machine": cnc_machine.simulate,
    "industrial_robot": industrial_robot.simulate,
}


def physics_for(name: str) -> Simulator | None:
    """The physics model of a built-in machine, or ``None`` for any other name."""
    return _MODELS.get(name)


__all__ = ["SimContext", "Simulator", "physics_for"]
