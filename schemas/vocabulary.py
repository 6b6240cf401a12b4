"""The fixed vocabularies of a machine description: sensor kinds, units and connection types.

The model embeds sensor kinds and connection types by their index in these tuples, so the
order is part of the contract: append new entries at the end, never reorder or remove.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final, Literal, get_args

SensorKind = Literal[
    "pressure",
    "temperature",
    "vibration",
    "flow",
    "current",
    "voltage",
    "power",
    "speed",
    "position",
    "force",
    "torque",
    "level",
    "other",
    "acceleration",
]
"""What a sensor measures (append new kinds at the end: the order is the embedding's)."""

ConnectionType = Literal[
    "hydraulic_line",
    "mechanical_shaft",
    "coupling",
    "electrical",
    "thermal",
    "signal",
    "pneumatic_line",
    "coolant_line",
    "structural",
]
"""How two components are physically joined."""

SENSOR_KINDS: Final[tuple[SensorKind, ...]] = get_args(SensorKind)
"""All sensor kinds in their stable embedding order."""

CONNECTION_TYPES: Final[tuple[ConnectionType, ...]] = get_args(ConnectionType)
"""All connection types in their stable embedding order."""

ANY_UNIT: Final = "*"
"""Marker in :data:`UNITS_BY_KIND` for a kind that accepts any non-empty unit."""

UNITS_BY_KIND: Final = MappingProxyType(
    {
        "pressure": ("bar", "mbar", "Pa", "kPa", "MPa", "psi"),
        "temperature": ("degC", "K", "degF"),
        "vibration": ("mm/s", "m/s", "in/s", "g", "m/s2", "um", "mm"),
        "flow": ("l/min", "l/h", "m3/h", "m3/s", "gpm", "kg/s", "kg/h"),
        "current": ("A", "mA", "kA"),
        "voltage": ("V", "mV", "kV"),
        "power": ("W", "kW", "MW", "hp", "VA", "kVA"),
        "speed": ("rpm", "Hz", "rad/s", "m/s", "mm/s", "m/min"),
        "position": ("mm", "m", "um", "in", "deg", "rad", "%"),
        "force": ("N", "kN", "MN", "lbf"),
        "torque": ("N.m", "kN.m", "lbf.ft"),
        "level": ("%", "mm", "m", "l", "m3"),
        "other": (ANY_UNIT,),
        "acceleration": ("m/s2", "mm/s2", "g"),
    }
)
"""Accepted units per sensor kind (``other`` accepts any non-empty unit)."""


def accepted_units(kind: SensorKind) -> tuple[str, ...]:
    """Units a sensor of ``kind`` may use; ``(ANY_UNIT,)`` when any unit is accepted."""
    return UNITS_BY_KIND[kind]


def unit_is_accepted(kind: SensorKind, unit: str) -> bool:
    """Whether ``unit`` is a valid unit for a sensor of ``kind``."""
    units = UNITS_BY_KIND[kind]
    return bool(unit) and (ANY_UNIT in units or unit in units)
