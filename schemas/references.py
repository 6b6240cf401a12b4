"""Cross-reference checks of a SystemSpec: duplicate ids and references that do not resolve.

Run after pydantic has validated each item's own structure; every problem is reported with
its path (``connections[3].target``) so a user can fix them all in one pass.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from schemas.issues import Issue

if TYPE_CHECKING:
    from schemas.spec import SystemSpec


def _unknown(what: str, value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {what} {value!r}{hint}"


def _duplicate_issues(kind: str, field: str, ids: list[str]) -> list[Issue]:
    first: dict[str, int] = {}
    issues: list[Issue] = []
    for index, item_id in enumerate(ids):
        if item_id in first:
            issues.append(
                (
                    f"{field}[{index}].id",
                    f"duplicate {kind} id {item_id!r} (first at {field}[{first[item_id]}])",
                )
            )
        else:
            first[item_id] = index
    return issues


def _connection_issues(spec: SystemSpec, components: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, link in enumerate(spec.connections):
        for end, component in (("source", link.source), ("target", link.target)):
            if component not in components:
                message = _unknown("component", component, components)
                issues.append((f"connections[{index}].{end}", message))
        key = (link.source, link.target, link.type)
        if key in seen:
            issues.append(
                (
                    f"connections[{index}]",
                    f"duplicate of connections[{seen[key]}] "
                    f"({link.source} -> {link.target}, {link.type})",
                )
            )
        else:
            seen[key] = index
    return issues


def _fault_issues(spec: SystemSpec, components: set[str], sensors: set[str]) -> list[Issue]:
    issues: list[Issue] = []
    for index, fault in enumerate(spec.fault_modes):
        if fault.component not in components:
            message = _unknown("component", fault.component, components)
            issues.append((f"fault_modes[{index}].component", message))
        listed: set[str] = set()
        for position, sensor_id in enumerate(fault.affected_sensors):
            path = f"fault_modes[{index}].affected_sensors[{position}]"
            if sensor_id not in sensors:
                issues.append((path, _unknown("sensor", sensor_id, sensors)))
            elif sensor_id in listed:
                issues.append((path, f"sensor {sensor_id!r} is listed twice"))
            listed.add(sensor_id)
    return issues


def cross_reference_issues(spec: SystemSpec) -> list[Issue]:
    """Every duplicate id, dangling reference and empty machine in ``spec``.

    A component without sensors is allowed; a sensor on an unknown component is not.

    Returns:
        The problems as ``(path, message)``, in document order per section.
    """
    issues: list[Issue] = []
    if not spec.components:
        issues.append(("components", "a machine needs at least one component"))
    if not spec.sensors:
        issues.append(("sensors", "a machine needs at least one sensor"))
    issues += _duplicate_issues("component", "components", [c.id for c in spec.components])
    issues += _duplicate_issues("sensor", "sensors", [s.id for s in spec.sensors])
    issues += _duplicate_issues("fault mode", "fault_modes", [f.id for f in spec.fault_modes])
    components = {c.id for c in spec.components}
    sensors = {s.id for s in spec.sensors}
    for index, sensor in enumerate(spec.sensors):
        if sensor.component not in components:
            message = _unknown("component", sensor.component, components)
            issues.append((f"sensors[{index}].component", message))
    issues += _connection_issues(spec, components)
    issues += _fault_issues(spec, components, sensors)
    return issues
