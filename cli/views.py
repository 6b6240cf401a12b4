"""Terminal views of stored diagnoses, shared by ``gnn-service diagnoses`` and ``run``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from schemas import ComponentDiagnosis, Diagnosis

_STYLE = {"ok": "green", "warning": "yellow", "critical": "red"}


_NARROWEST = 6  # the least useful width of a column of values (a status, a number)
_WIDE = 200  # columns of a console that is not a terminal (a pipe, a file, a CI log)


def wide_console(*, stderr: bool = False) -> Console:
    """A console for tables: the terminal's width, or a wide one when output is not a
    terminal, so that piped tables keep whole ids instead of an 80-column squeeze."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=_WIDE)


def print_table(console: Console, table: Table) -> None:
    """Print ``table``, or, when its ids cannot fit the console's width, the same rows as
    ``header=value`` lines that wrap instead of cutting anything."""
    # Each column's least width (ids: their longest), its padding and a border each.
    needed = sum((column.min_width or _NARROWEST) + 2 for column in table.columns)
    if needed + len(table.columns) + 1 <= console.width:
        console.print(table)
        return
    if table.title:
        console.print(table.title)
    columns = [(str(column.header), list(column.cells)) for column in table.columns]
    for row in range(table.row_count):
        cells = [(header, str(cells[row])) for header, cells in columns]
        console.print("  ".join(f"{h}={v}" for h, v in cells if v), soft_wrap=True)


def _id_column(table: Table, header: str, values: Sequence[str]) -> None:
    """A column of ids: never wrapped or cut; other columns give way first."""
    widest = max((len(value) for value in values), default=0)
    table.add_column(header, no_wrap=True, min_width=max(widest, len(header)))


def status_text(status: str) -> str:
    """A status word coloured for the terminal."""
    style = _STYLE.get(status, "white")
    return f"[{style}]{status}[/{style}]"


def likely_fault(component: ComponentDiagnosis) -> str:
    """The component's most probable fault other than normal, with its probability; for a
    component that warns while no fault is more likely than normal, why it warns instead."""
    faults = [(p, f) for f, p in component.fault_probabilities.items() if f != "normal"]
    normal = component.fault_probabilities.get("normal", 0.0)
    if component.status != "ok" and (not faults or max(faults)[0] < normal):
        where = f" at {component.top_sensors[0].id}" if component.top_sensors else ""
        return (
            f"no fault; anomaly {component.anomaly_score:.1f}{where}, health {component.health:.2f}"
        )
    if not faults:
        return "normal"
    probability, fault = max(faults)
    return f"{fault} ({probability:.2f})"


def worst_components(diagnosis: Diagnosis, count: int) -> list[ComponentDiagnosis]:
    """The ``count`` components in the worst state: status first, then lowest health."""
    rank = {"critical": 0, "warning": 1, "ok": 2}
    ordered = sorted(diagnosis.components, key=lambda c: (rank[c.status], c.health))
    return ordered[:count]


def history_table(title: str, diagnoses: Sequence[Diagnosis]) -> Table:
    """One row per diagnosis: when, machine health, its worst component and why."""
    table = Table(title=title)
    table.add_column("created (UTC)", no_wrap=True)
    _id_column(table, "snapshot", [d.snapshot_id for d in diagnoses])
    _id_column(table, "system", [d.system_id for d in diagnoses])
    table.add_column("health")
    _id_column(
        table, "worst component", [worst_components(d, 1)[0].component_id for d in diagnoses]
    )
    for column in ("status", "likely fault", "anomaly", "RUL h", "model"):
        table.add_column(column)
    for diagnosis in diagnoses:
        worst = worst_components(diagnosis, 1)[0]
        table.add_row(
            diagnosis.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            diagnosis.snapshot_id,
            diagnosis.system_id,
            f"{diagnosis.machine_health:.2f}",
            worst.component_id,
            status_text(worst.status),
            likely_fault(worst),
            f"{worst.anomaly_score:.1f}",
            f"{worst.rul.hours:.0f}" if worst.rul else "-",
            diagnosis.model_version,
        )
    return table


def fleet_table(
    title: str,
    latest: Sequence[Diagnosis],
    *,
    per_machine: int = 3,
    stale_after_s: float | None = None,
) -> Table:
    """The latest diagnosis of each machine, its ``per_machine`` worst components a row each;
    a diagnosis older than ``stale_after_s`` says so and how old it is (the machine has sent
    nothing diagnosed since)."""
    table = Table(title=title)
    shown = [(d, c) for d in latest for c in worst_components(d, per_machine)]
    _id_column(table, "system", [d.system_id for d in latest])
    table.add_column("health")
    _id_column(table, "component", [c.component_id for _, c in shown])
    for column in ("status", "likely fault", "anomaly", "RUL h"):
        table.add_column(column)
    _id_column(table, "top sensor", [c.top_sensors[0].id for _, c in shown if c.top_sensors])
    table.add_column("diagnosed at (UTC)")
    for diagnosis in latest:
        for index, component in enumerate(worst_components(diagnosis, per_machine)):
            first = index == 0
            table.add_row(
                diagnosis.system_id if first else "",
                f"{diagnosis.machine_health:.2f}" if first else "",
                component.component_id,
                status_text(component.status),
                likely_fault(component),
                f"{component.anomaly_score:.1f}",
                f"{component.rul.hours:.0f}" if component.rul else "-",
                component.top_sensors[0].id if component.top_sensors else "-",
                _diagnosed_at(diagnosis, stale_after_s) if first else "",
                end_section=index == min(per_machine, len(diagnosis.components)) - 1,
            )
    return table


def _diagnosed_at(diagnosis: Diagnosis, stale_after_s: float | None) -> str:
    """The time of day, with the date and ``stale: N ago`` once older than the limit."""
    if stale_after_s is None:
        return diagnosis.created_at.strftime("%H:%M:%S")
    age = (datetime.now(UTC) - diagnosis.created_at).total_seconds()
    if age <= stale_after_s:
        return diagnosis.created_at.strftime("%H:%M:%S")
    return f"{diagnosis.created_at:%Y-%m-%d %H:%M:%S}, stale: {_age(age)} ago"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
