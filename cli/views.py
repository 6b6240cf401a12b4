"""Terminal views of stored diagnoses, shared by ``gnn-service diagnoses`` and ``run``."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from schemas import ComponentDiagnosis, Diagnosis

_STYLE = {"ok": "green", "warning": "yellow", "critical": "red"}


def status_text(status: str) -> str:
    """A status word coloured for the terminal."""
    style = _STYLE.get(status, "white")
    return f"[{style}]{status}[/{style}]"


def likely_fault(component: ComponentDiagnosis) -> str:
    """The component's most probable fault other than normal, with its probability."""
    faults = [(p, f) for f, p in component.fault_probabilities.items() if f != "normal"]
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
    for column in ("created (UTC)", "snapshot", "system", "health", "worst component",
                   "status", "likely fault", "anomaly", "RUL h", "model"):  # fmt: skip
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


def fleet_table(title: str, latest: Sequence[Diagnosis], *, per_machine: int = 3) -> Table:
    """The latest diagnosis of each machine, its ``per_machine`` worst components a row each."""
    table = Table(title=title)
    for column in ("system", "health", "component", "status", "likely fault", "anomaly",
                   "RUL h", "top sensor", "diagnosed at (UTC)"):  # fmt: skip
        table.add_column(column)
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
                diagnosis.created_at.strftime("%H:%M:%S") if first else "",
                end_section=index == min(per_machine, len(diagnosis.components)) - 1,
            )
    return table
