"""The built-in demo machines, read from the YAML files shipped in ``machines/specs``."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from schemas import SystemSpec, parse_spec

_SPEC_PACKAGE = "machines"
_SPEC_DIR = "specs"


class UnknownMachineError(LookupError):
    """No built-in machine has the requested name.

    Attributes:
        name: The name asked for.
        known: The built-in names.
    """

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(f"unknown machine {name!r}; built-in machines are: {', '.join(known)}")


@cache
def _names() -> tuple[str, ...]:
    folder = resources.files(_SPEC_PACKAGE).joinpath(_SPEC_DIR)
    return tuple(
        sorted(
            item.name[: -len(".yaml")] for item in folder.iterdir() if item.name.endswith(".yaml")
        )
    )


def builtin_names() -> list[str]:
    """Names of the built-in machines, sorted."""
    return list(_names())


@cache
def builtin_spec(name: str) -> SystemSpec:
    """The spec of a built-in machine (read once, then cached).

    Args:
        name: One of :func:`builtin_names`.

    Returns:
        The validated spec; treat it as read-only, it is shared.

    Raises:
        UnknownMachineError: ``name`` is not a built-in machine.
    """
    if name not in _names():
        raise UnknownMachineError(name, builtin_names())
    folder = resources.files(_SPEC_PACKAGE).joinpath(_SPEC_DIR)
    text = folder.joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return parse_spec(yaml.safe_load(text))


def is_builtin(spec: SystemSpec) -> bool:
    """Whether ``spec`` is exactly the built-in machine of the same name."""
    return spec.name in _names() and builtin_spec(spec.name) == spec


#: Each demo machine and the fault that develops in it (onset and time to failure in
#: machine time).
DEMO_FAULTS = {
    "excavator": "pump_internal_leak@10m:exponential:1:60m",
    "injection_molding_machine": "heater_band_failure@10m:linear:1:60m",
    "cnc_machine": "spindle_bearing_wear@10m:exponential:1:60m",
    "industrial_robot": "gearbox_wear@10m:linear:1:60m",
}
