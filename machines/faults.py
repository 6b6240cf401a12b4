"""Fault injection: which fault starts when, how it progresses, and the labels it implies.

A fault's *effect* ``e(t)`` is the fraction of the way to failure: 0 while healthy, 1 when
the component's health reaches :data:`FAILURE_HEALTH`, at most :data:`MAX_EFFECT` (health 0).
Physics models scale their fault signatures with ``e``; labels follow from it:

- health ``h = 1 - e * (1 - FAILURE_HEALTH)``, clipped to ``[0, 1]``;
- ``e = severity * g(tau)`` with ``tau = (t - onset) / time_to_failure`` and ``g`` by
  progression: ``step`` 1, ``linear`` ``tau``, ``exponential``
  ``(exp(k tau) - 1) / (exp(k) - 1)`` with ``k =`` :data:`EXPONENTIAL_RATE`. With severity 1
  the component fails exactly at ``onset + time_to_failure``; a smaller severity delays
  failure (a ``step`` fault below severity 1 never fails);
- remaining useful life: hours until health reaches :data:`FAILURE_HEALTH`, capped at
  :data:`RUL_CAP_HOURS`, which is also the value for every component without an active fault.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np

from machines.durations import DurationError, format_duration, parse_duration
from machines.signals import FloatArray

Progression = Literal["step", "linear", "exponential"]
"""How a fault's effect grows after onset."""

PROGRESSIONS: Final[tuple[Progression, ...]] = get_args(Progression)

FAILURE_HEALTH: Final = 0.2
"""Health at which a component counts as failed (remaining useful life 0)."""

MAX_EFFECT: Final = 1.0 / (1.0 - FAILURE_HEALTH)
"""Largest fault effect, reached at health 0."""

RUL_CAP_HOURS: Final = 1000.0
"""Remaining useful life reported for healthy components, and the cap for faulty ones."""

EXPONENTIAL_RATE: Final = 4.0
"""Rate ``k`` of the exponential progression: the effect is 3 % of its failure value
at a quarter of the time to failure and 36 % at three quarters."""

DEFAULT_PROGRESSION: Final[Progression] = "linear"
DEFAULT_SEVERITY: Final = 1.0
DEFAULT_TIME_TO_FAILURE_S: Final = 12 * 3600.0

_FAULT_PATTERN = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9_\-]*)@(?P<rest>.+)$")


class FaultSpecError(ValueError):
    """A fault specification is malformed or names an unknown fault."""


@dataclass(frozen=True)
class FaultSpec:
    """One injected fault.

    Attributes:
        fault_id: Fault mode id from the machine's spec.
        onset_s: Seconds from the start of the run when the fault begins.
        progression: ``step``, ``linear`` or ``exponential``.
        severity: In ``(0, 1]``; 1 reaches failure at ``onset + time_to_failure``.
        time_to_failure_s: Seconds from onset to failure at severity 1.
    """

    fault_id: str
    onset_s: float
    progression: Progression = DEFAULT_PROGRESSION
    severity: float = DEFAULT_SEVERITY
    time_to_failure_s: float = DEFAULT_TIME_TO_FAILURE_S

    def __post_init__(self) -> None:
        if not math.isfinite(self.onset_s) or self.onset_s < 0:
            raise FaultSpecError(f"{self.fault_id}: onset must be >= 0 s, got {self.onset_s}")
        if self.progression not in PROGRESSIONS:
            raise FaultSpecError(
                f"{self.fault_id}: unknown progression {self.progression!r}; "
                f"expected one of: {', '.join(PROGRESSIONS)}"
            )
        if not 0 < self.severity <= 1:
            raise FaultSpecError(
                f"{self.fault_id}: severity must be in (0, 1], got {self.severity}"
            )
        if not math.isfinite(self.time_to_failure_s) or self.time_to_failure_s <= 0:
            raise FaultSpecError(
                f"{self.fault_id}: time to failure must be > 0 s, got {self.time_to_failure_s}"
            )

    def __str__(self) -> str:
        return (
            f"{self.fault_id}@{format_duration(self.onset_s)}:{self.progression}:"
            f"{self.severity:g}:{format_duration(self.time_to_failure_s)}"
        )

    def effect(self, t_s: FloatArray) -> FloatArray:
        """Fraction of the way to failure at each time, in ``[0, MAX_EFFECT]``.

        Shapes:
            t_s: ``[T]``.
            return: ``[T]``.
        """
        tau = np.maximum(t_s - self.onset_s, 0.0) / self.time_to_failure_s
        if self.progression == "step":
            shape = np.ones_like(tau)
        elif self.progression == "linear":
            shape = tau
        else:
            shape = np.expm1(np.minimum(EXPONENTIAL_RATE * tau, 50.0)) / math.expm1(
                EXPONENTIAL_RATE
            )
        effect = np.where(t_s >= self.onset_s, self.severity * shape, 0.0)
        return np.minimum(effect, MAX_EFFECT)

    def health(self, t_s: FloatArray) -> FloatArray:
        """Component health implied by this fault alone: 1 healthy, 0 broken.

        Shapes:
            t_s: ``[T]``.
            return: ``[T]``.
        """
        return np.clip(1.0 - self.effect(t_s) * (1.0 - FAILURE_HEALTH), 0.0, 1.0)

    @property
    def failure_time_s(self) -> float:
        """Run time in seconds when health reaches :data:`FAILURE_HEALTH` (``inf`` if never)."""
        if self.progression == "step":
            return self.onset_s if self.severity >= 1.0 else math.inf
        target = 1.0 / self.severity
        if self.progression == "linear":
            tau = target
        else:
            tau = math.log1p(target * math.expm1(EXPONENTIAL_RATE)) / EXPONENTIAL_RATE
        return self.onset_s + tau * self.time_to_failure_s

    def rul_hours(self, t_s: FloatArray) -> FloatArray:
        """Remaining useful life in hours: capped, and :data:`RUL_CAP_HOURS` before onset.

        Shapes:
            t_s: ``[T]``.
            return: ``[T]``.
        """
        remaining = np.clip((self.failure_time_s - t_s) / 3600.0, 0.0, RUL_CAP_HOURS)
        return np.where(t_s >= self.onset_s, remaining, RUL_CAP_HOURS)


def parse_fault(text: str, known: Collection[str] | None = None) -> FaultSpec:
    """Read a fault written as ``<fault_id>@<onset>[:<progression>[:<severity>[:<ttf>]]]``.

    Examples: ``pump_internal_leak@6h``, ``pump_internal_leak@6h:exponential``,
    ``tool_wear@30m:linear:0.8:4h``. Onset and time to failure are durations (``90s``,
    ``10m``, ``6h``, ``2d``).

    Args:
        text: The fault specification.
        known: Fault ids of the machine; when given, any other id is an error.

    Returns:
        The parsed fault.

    Raises:
        FaultSpecError: The text is malformed or the fault id is not in ``known``.
    """
    match = _FAULT_PATTERN.match(text.strip())
    if match is None:
        raise FaultSpecError(
            f"invalid fault {text!r}: expected <fault_id>@<onset>[:<progression>"
            "[:<severity>[:<time_to_failure>]]], e.g. pump_internal_leak@6h:exponential"
        )
    fault_id = match.group("id")
    if known is not None and fault_id not in known:
        raise FaultSpecError(
            f"unknown fault {fault_id!r}; this machine's faults are: {', '.join(known)}"
        )
    parts = match.group("rest").split(":")
    if len(parts) > 4:
        raise FaultSpecError(f"invalid fault {text!r}: too many ':'-separated fields")
    try:
        onset = parse_duration(parts[0])
        progression = parts[1] if len(parts) > 1 else DEFAULT_PROGRESSION
        severity = float(parts[2]) if len(parts) > 2 else DEFAULT_SEVERITY
        ttf = parse_duration(parts[3]) if len(parts) > 3 else DEFAULT_TIME_TO_FAILURE_S
    except (DurationError, ValueError) as exc:
        raise FaultSpecError(f"invalid fault {text!r}: {exc}") from None
    if progression not in PROGRESSIONS:
        raise FaultSpecError(
            f"invalid fault {text!r}: unknown progression {progression!r}; "
            f"expected one of: {', '.join(PROGRESSIONS)}"
        )
    return FaultSpec(fault_id, onset, progression, severity, ttf)
