"""Diagnosis and outcome records: bounds and cross-field rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import (
    ComponentDiagnosis,
    DeadLetter,
    DeadLetterReason,
    Diagnosis,
    Expired,
    RemainingLife,
    Timings,
)

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)


def component(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "component_id": "main_pump",
        "health": 0.7,
        "status": "warning",
        "fault": "pump_internal_leak",
        "fault_probabilities": {"normal": 0.2, "pump_internal_leak": 0.8},
        "anomaly_score": 2.5,
        "rul": {"hours": 40.0, "low_hours": 20.0, "high_hours": 80.0},
        "top_sensors": [{"id": "pump_flow", "score": 0.6}],
        "top_connections": [{"id": "main_pump->control_valve", "score": 0.3}],
    }
    data.update(overrides)
    return data


def test_a_diagnosis_round_trips_through_json() -> None:
    diagnosis = Diagnosis(
        snapshot_id="excavator-s7-000060",
        system_id="demo-excavator-s7",
        model_version="utgnn-2024.05.1",
        created_at=NOW,
        machine_health=0.7,
        components=[ComponentDiagnosis.model_validate(component())],
        timings=Timings(queue_ms=3.0, forward_ms=1.2, total_ms=9.5),
    )

    assert Diagnosis.model_validate_json(diagnosis.model_dump_json()) == diagnosis
    assert diagnosis.timings.batch_wait_ms is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"health": 1.2}, "less than or equal to 1"),
        ({"status": "bad"}, "'ok', 'warning' or 'critical'"),
        ({"anomaly_score": -0.1}, "greater than or equal to 0"),
        ({"fault": "cooler_fouling"}, "has no entry in fault_probabilities"),
        ({"rul": {"hours": 10.0, "low_hours": 20.0, "high_hours": 30.0}}, "low_hours <= hours"),
        ({"fault_probabilities": {"normal": 1.5}}, "less than or equal to 1"),
    ],
)
def test_component_diagnosis_rejects_out_of_range_values(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        ComponentDiagnosis.model_validate(component(**overrides))


def test_remaining_life_accepts_an_ordered_interval() -> None:
    assert RemainingLife(hours=5.0, low_hours=5.0, high_hours=9.0).hours == 5.0


def test_timings_reject_negative_durations() -> None:
    with pytest.raises(ValidationError):
        Timings(queue_ms=-1.0)


def test_dead_letter_records_reason_code_and_payload_hash() -> None:
    record = DeadLetter(
        snapshot_id=None,
        reason=DeadLetterReason.MALFORMED_JSON,
        detail="<root>: invalid JSON at line 1",
        payload_sha256="a" * 64,
        received_at=NOW,
    )

    assert record.model_dump(mode="json")["reason"] == "malformed_json"
    with pytest.raises(ValidationError):
        DeadLetter.model_validate({**record.model_dump(), "payload_sha256": "xyz"})
    with pytest.raises(ValidationError):
        DeadLetter.model_validate({**record.model_dump(), "reason": "whatever"})


def test_expired_requires_aware_times() -> None:
    expired = Expired(
        snapshot_id="s1", system_id="m1", deadline=NOW, observed_at=NOW, correlation_id="r"
    )

    assert Expired.model_validate_json(expired.model_dump_json()) == expired
    with pytest.raises(ValidationError):
        Expired(snapshot_id="s1", system_id="m1", deadline=datetime(2024, 1, 1), observed_at=NOW)
