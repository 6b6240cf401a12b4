"""Labels per component and step (health, active fault, RUL): from a simulated run's fault
schedule (:func:`component_labels`), or from a recorded run's labels table
(:func:`recorded_labels`), where a label may be unknown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from machines.faults import FAILURE_HEALTH, RUL_CAP_HOURS, FaultSpec
from machines.signals import FloatArray
from schemas import NORMAL_FAULT, SystemSpec


def component_labels(
    spec: SystemSpec, faults: Sequence[FaultSpec], t_s: FloatArray
) -> tuple[NDArray[np.float32], NDArray[np.int16], NDArray[np.float32]]:
    """Labels of every component at every step.

    A component without an active fault has health 1, fault code 0 (``"normal"``) and
    remaining useful life :data:`~machines.faults.RUL_CAP_HOURS`. With several faults on
    one component, health and remaining life are the worst over its faults and the label is
    the fault with the lowest health (the first injected on a tie) among those past onset.

    Args:
        spec: The machine.
        faults: Injected faults; their ids must be fault modes of ``spec``.
        t_s: Step times in seconds.

    Returns:
        ``(health, fault_codes, rul_hours)``; fault codes index ``("normal", *spec.fault_ids)``.

    Shapes:
        t_s: ``[T]``.
        health: ``[T, C]`` float32.
        fault_codes: ``[T, C]`` int16.
        rul_hours: ``[T, C]`` float32.
    """
    steps, components = t_s.shape[0], len(spec.components)
    health, codes, rul = _healthy(steps, components)
    for fault in faults:
        column = spec.component_index[spec.fault_mode(fault.fault_id).component]
        fault_health = fault.health(t_s)
        active = t_s >= fault.onset_s
        worse = active & ((codes[:, column] == 0) | (fault_health < health[:, column]))
        codes[worse, column] = spec.fault_index[fault.fault_id] + 1
        health[:, column] = np.minimum(health[:, column], fault_health)
        rul[:, column] = np.minimum(rul[:, column], fault.rul_hours(t_s))
    return health.astype(np.float32), codes, rul.astype(np.float32)


UNKNOWN_FAULT_CODE: Final = -1
"""Fault code of a step whose fault is unknown (a run to failure before its known onset)."""


@dataclass(frozen=True)
class RecordedLabel:
    """One row of a recorded run's labels table (docs/data-format.md, "Recorded labels").

    The row's kind follows from which times it holds: ``failure_s`` makes it a run to
    failure, ``start_s`` or ``end_s`` an interval, neither a condition of the whole run.

    Attributes:
        component: Component id.
        fault: A fault id of that component, ``normal``, or None (only in a run to failure:
            the failure mode is not known).
        severity: How far the condition is along the way to failure, in ``(0, 1]``; it
            gives health ``1 - (1 - FAILURE_HEALTH) * severity``. None: health unknown.
        start_s: Onset, seconds since the run's first step (None: from the start, or for a
            run to failure: onset unknown).
        end_s: End of an interval, exclusive (None: to the end of the run).
        failure_s: When the component failed (health reached ``FAILURE_HEALTH``); gives the
            remaining useful life at every step.
    """

    component: str
    fault: str | None = None
    severity: float | None = None
    start_s: float | None = None
    end_s: float | None = None
    failure_s: float | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("severity", "start_s", "end_s", "failure_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {value}")
        if self.severity is not None and not 0 < self.severity <= 1:
            problems.append(f"severity must be in (0, 1], got {self.severity}")
        if self.fault is None and self.failure_s is None:
            problems.append("fault is required unless failure_s is given")
        if self.fault == NORMAL_FAULT and (self.severity is not None or self.failure_s is not None):
            problems.append("a 'normal' row takes no severity and no failure_s")
        if self.failure_s is not None and self.end_s is not None:
            problems.append("a run-to-failure row (failure_s) takes no end_s")
        if self.end_s is not None and self.end_s <= (self.start_s or 0.0):
            problems.append(f"end_s {self.end_s:g} must be after start_s {self.start_s or 0.0:g}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def kind(self) -> str:
        """``run_to_failure``, ``interval`` or ``run`` (a condition of the whole run)."""
        if self.failure_s is not None:
            return "run_to_failure"
        if self.start_s is not None or self.end_s is not None:
            return "interval"
        return "run"

    def to_json(self) -> dict[str, Any]:
        """The row as stored in a run file's metadata (``labels``)."""
        return {
            "component": self.component,
            "fault": self.fault,
            "severity": self.severity,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "failure_s": self.failure_s,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecordedLabel:
        """The inverse of :meth:`to_json`.

        Raises:
            ValueError: A field is missing, of the wrong type or out of range.
        """

        def number(name: str) -> float | None:
            value = data.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number or null, got {value!r}")
            return float(value)

        component, fault = data.get("component"), data.get("fault")
        if not isinstance(component, str) or not (fault is None or isinstance(fault, str)):
            raise ValueError(f"a label needs a component id and a fault id or null: {data!r}")
        return cls(
            component=component,
            fault=fault,
            severity=number("severity"),
            start_s=number("start_s"),
            end_s=number("end_s"),
            failure_s=number("failure_s"),
        )


def recorded_labels(
    spec: SystemSpec, labels: Sequence[RecordedLabel], t_s: FloatArray
) -> tuple[NDArray[np.float32], NDArray[np.int16], NDArray[np.float32]]:
    """Labels of every component at every step of a recorded run; NaN and
    :data:`UNKNOWN_FAULT_CODE` where a label is unknown.

    A component no row names is healthy (health 1, ``normal``, remaining life
    :data:`~machines.faults.RUL_CAP_HOURS`), as in :func:`component_labels`. A run-to-failure
    row gives the remaining life ``(failure_s - t) / 3600`` h (clamped to ``[0, cap]``) at
    every step and, from its onset (``start_s``, else from the first step), health unknown and
    its fault (unknown when it names none; before ``failure_s`` too when the onset is
    unknown); before a known onset the component is healthy. Interval and whole-run rows
    then set the fault, and health from ``severity`` (unknown without), over
    ``start_s <= t < end_s``; the remaining life there is unknown unless a run-to-failure row
    gives it (``normal`` rows: healthy).

    Args:
        spec: The machine.
        labels: The run's rows; intervals on one component must not overlap, and a
            component has at most one run-to-failure row.
        t_s: Step times in seconds since the first step.

    Returns:
        ``(health, fault_codes, rul_hours)`` as :func:`component_labels`.

    Raises:
        LabelError: The rows do not pass :func:`check_labels`.

    Shapes:
        t_s: ``[T]``.
        health: ``[T, C]`` float32.
        fault_codes: ``[T, C]`` int16.
        rul_hours: ``[T, C]`` float32.
    """
    steps, components = t_s.shape[0], len(spec.components)
    health, codes, rul = _healthy(steps, components)
    check_labels(spec, labels)
    failures = [label for label in labels if label.kind == "run_to_failure"]
    spans = [label for label in labels if label.kind != "run_to_failure"]
    for label in failures:
        column = spec.component_index[label.component]
        assert label.failure_s is not None
        rul[:, column] = np.clip((label.failure_s - t_s) / 3600.0, 0.0, RUL_CAP_HOURS)
        degrading = t_s >= _start(label)
        health[degrading, column] = np.nan
        code = _code(spec, label.fault)
        if label.start_s is None:
            codes[:, column] = np.where(t_s >= label.failure_s, code, UNKNOWN_FAULT_CODE)
        else:
            codes[degrading, column] = code
    for label in spans:
        column = spec.component_index[label.component]
        inside = (t_s >= _start(label)) & (t_s < _end(label))
        codes[inside, column] = _code(spec, label.fault)
        if label.fault == NORMAL_FAULT:
            health[inside, column] = 1.0
            if not any(failure.component == label.component for failure in failures):
                rul[inside, column] = RUL_CAP_HOURS
            continue
        severity = math.nan if label.severity is None else label.severity
        health[inside, column] = 1.0 - (1.0 - FAILURE_HEALTH) * severity
        if not any(failure.component == label.component for failure in failures):
            rul[inside, column] = np.nan
    return health.astype(np.float32), codes, rul.astype(np.float32)


def _start(label: RecordedLabel) -> float:
    return 0.0 if label.start_s is None else label.start_s


def _end(label: RecordedLabel) -> float:
    return math.inf if label.end_s is None else label.end_s


def _code(spec: SystemSpec, fault: str | None) -> int:
    if fault is None:
        return UNKNOWN_FAULT_CODE
    if fault == NORMAL_FAULT:
        return 0
    return spec.fault_index[fault] + 1


class LabelError(ValueError):
    """Label rows that do not fit the machine, or each other.

    Attributes:
        rows: Positions of the rows at fault in the sequence checked.
    """

    def __init__(self, message: str, rows: Sequence[int]) -> None:
        super().__init__(message)
        self.rows = tuple(rows)


def check_label(spec: SystemSpec, label: RecordedLabel) -> None:
    """Check that a row names a component of ``spec`` and a fault mode of that component.

    Raises:
        ValueError: It does not.
    """
    if label.component not in spec.component_index:
        raise ValueError(
            f"unknown component {label.component!r}; the machine's components are: "
            f"{', '.join(spec.component_ids)}"
        )
    if label.fault is not None and label.fault != NORMAL_FAULT:
        own = [mode.id for mode in spec.fault_modes_of(label.component)]
        if label.fault not in own:
            raise ValueError(
                f"fault {label.fault!r} is not a fault mode of component {label.component!r} "
                f"(its fault modes: {', '.join(own) or 'none'}; or 'normal')"
            )


def check_labels(spec: SystemSpec, labels: Sequence[RecordedLabel]) -> None:
    """Check one run's rows: each with :func:`check_label`, at most one run-to-failure row
    per component, and no two intervals of a component overlapping.

    Raises:
        LabelError: Names the problem and the rows at fault.
    """
    by_component: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        try:
            check_label(spec, label)
        except ValueError as exc:
            raise LabelError(str(exc), [index]) from None
        by_component.setdefault(label.component, []).append(index)
    for component, indices in by_component.items():
        failures = [i for i in indices if labels[i].kind == "run_to_failure"]
        if len(failures) > 1:
            raise LabelError(
                f"component {component!r} has more than one run-to-failure row", failures
            )
        spans = sorted(
            (_start(labels[i]), _end(labels[i]), i)
            for i in indices
            if labels[i].kind != "run_to_failure"
        )
        for (_, end, first), (start, _, second) in pairwise(spans):
            if start < end:
                raise LabelError(
                    f"component {component!r} has overlapping label intervals", [first, second]
                )


def _healthy(
    steps: int, components: int
) -> tuple[NDArray[np.float64], NDArray[np.int16], NDArray[np.float64]]:
    """Labels of a machine with nothing wrong: health 1, fault ``normal``, RUL at the cap."""
    return (
        np.ones((steps, components)),
        np.zeros((steps, components), dtype=np.int16),
        np.full((steps, components), RUL_CAP_HOURS),
    )
