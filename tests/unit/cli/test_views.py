"""Tables of stored diagnoses keep every id whole, in a terminal of 80 columns and in a pipe."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from rich.console import Console
from rich.table import Table

from cli.views import fleet_table, history_table, print_table, wide_console
from schemas import ComponentDiagnosis, Diagnosis

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
SYSTEMS = ("demo-excavator-s0", "demo-injection_molding_machine-s0", "demo-excavator")


def _diagnosis(system: str, index: int) -> Diagnosis:
    component = ComponentDiagnosis.model_validate(
        {
            "component_id": "hydraulic_main_pump_assembly",
            "health": 0.7,
            "status": "warning",
            "fault": "pump_internal_leak",
            "fault_probabilities": {"normal": 0.2, "pump_internal_leak": 0.8},
            "anomaly_score": 2.5,
            "rul": {"hours": 40.0, "low_hours": 20.0, "high_hours": 80.0},
            "top_sensors": [{"id": "pump_outlet_pressure_bar", "score": 0.6}],
            "top_connections": [],
        }
    )
    return Diagnosis(
        snapshot_id=f"{system}-{index:06d}",
        system_id=system,
        model_version="universal:1.0.0",
        created_at=NOW,
        machine_health=0.7,
        components=[component],
    )


def _render(table: Table, width: int) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    print_table(console, table)
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 120])
def test_every_id_is_printed_whole_even_at_80_columns(width: int) -> None:
    latest = [_diagnosis(system, 0) for system in SYSTEMS]
    fleet = _render(fleet_table("latest", latest), width)
    history = _render(history_table("history", latest), width)
    # Other columns give way (at 80 columns some headers shrink to "…"), never an id.
    assert "hydraulic_main_pump_assembly" in fleet
    assert "pump_outlet_pressure_bar" in fleet
    for system in SYSTEMS:
        assert f"│ {system} " in fleet or f"system={system} " in fleet  # a whole cell
        assert f"{system}-000000" in history


def test_a_console_that_is_not_a_terminal_is_wide() -> None:
    console = wide_console()  # pytest captures stdout: not a terminal
    assert not console.is_terminal
    assert console.width >= 200


def test_a_component_that_warns_without_a_likely_fault_says_why() -> None:
    from cli.views import likely_fault

    quiet = ComponentDiagnosis.model_validate(
        {
            "component_id": "pump",
            "health": 0.55,
            "status": "warning",
            "fault": "normal",
            "fault_probabilities": {"normal": 0.7, "pump_internal_leak": 0.3},
            "anomaly_score": 4.2,
            "top_sensors": [{"id": "pump_flow", "score": 0.9}],
            "top_connections": [],
        }
    )
    assert likely_fault(quiet) == "no fault; anomaly 4.2 at pump_flow, health 0.55"
    faulty = quiet.model_copy(
        update={"fault_probabilities": {"normal": 0.2, "pump_internal_leak": 0.8}}
    )
    assert likely_fault(faulty) == "pump_internal_leak (0.80)"


def test_a_machine_whose_latest_diagnosis_is_old_is_marked_stale() -> None:
    from datetime import timedelta

    fresh = _diagnosis("demo-excavator-s0", 1).model_copy(update={"created_at": datetime.now(UTC)})
    old = _diagnosis("demo-cnc_machine-s0", 2).model_copy(
        update={"created_at": datetime.now(UTC) - timedelta(hours=3)}
    )
    text = _render(fleet_table("latest", [fresh, old], stale_after_s=600), 200)
    lines = {line.split("│")[1].strip(): line for line in text.splitlines() if "demo-" in line}
    assert "stale: 3h ago" in lines["demo-cnc_machine-s0"]
    assert "stale" not in lines["demo-excavator-s0"]
    assert f"{old.created_at:%Y-%m-%d}" in lines["demo-cnc_machine-s0"]  # the date, not just a time
    assert "stale" not in _render(fleet_table("latest", [old]), 200)  # the live view: no limit
