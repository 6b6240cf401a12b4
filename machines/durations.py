"""Durations written as ``90s``, ``10m``, ``6h``, ``2d`` (or ``1.5h``)."""

from __future__ import annotations

import math
import re
from typing import Final

UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
"""Seconds per duration unit suffix."""

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class DurationError(ValueError):
    """A duration string could not be read."""


def parse_duration(text: str) -> float:
    """Read a duration such as ``90s``, ``10m``, ``6h``, ``2d`` or ``1.5h``.

    Args:
        text: A non-negative number followed by one unit: s, m, h or d.

    Returns:
        The duration in seconds.

    Raises:
        DurationError: The text is not a number with one of those units.
    """
    match = _PATTERN.match(text)
    if match is None:
        raise DurationError(
            f"invalid duration {text!r}: use a number and a unit s, m, h or d (e.g. 90s, 6h, 2d)"
        )
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Write seconds in the largest unit that expresses them exactly (``21600`` -> ``6h``)."""
    for unit in ("d", "h", "m"):
        value = seconds / UNIT_SECONDS[unit]
        if value >= 1 and math.isclose(value, round(value), abs_tol=1e-9):
            return f"{round(value)}{unit}"
    return f"{seconds:g}s"
