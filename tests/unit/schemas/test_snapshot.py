"""Snapshot: structural checks with reason codes, JSON round trips, spec by name or inline."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import DeadLetterReason, Snapshot, SystemSpec, Window, validation_issues

INLINE_SPEC = {
    "name": "fan",
    "components": [{"id": "motor", "type": "electric_motor"}],
    "sensors": [
        {
            "id": "current",
            "component": "motor",
            "kind": "current",
            "unit": "A",
            "normal": [1, 10],
            "critical": [0, 15],
        },
        {
            "id": "temp",
            "component": "motor",
            "kind": "temperature",
            "unit": "degC",
            "normal": [20, 60],
            "critical": [0, 90],
        },
    ],
}


def payload(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "snapshot_id": "fan-7:000060",
        "system_id": "plant-1.fan-7",
        "spec": "excavator",
        "window": {
            "start": "2024-05-01T12:00:00Z",
            "sample_rate_hz": 1.0,
            "readings": {"current": [4.0, 4.2, None, 4.1], "temp": [41.0, 41.1, 41.1, 41.3]},
        },
    }
    data.update(overrides)
    return data


def test_a_snapshot_by_name_validates() -> None:
    snapshot = Snapshot.model_validate(payload())

    assert snapshot.spec == "excavator"
    assert snapshot.spec_name == "excavator"
    assert snapshot.window.steps == 4
    assert snapshot.window.readings["current"][2] is None
    assert snapshot.schema_version == 1


def test_an_inline_spec_validates_as_a_system_spec() -> None:
    snapshot = Snapshot.model_validate(payload(spec=INLINE_SPEC))

    assert isinstance(snapshot.spec, SystemSpec)
    assert snapshot.spec_name == "fan"


def test_json_round_trip_keeps_everything() -> None:
    deadline = datetime(2024, 5, 1, 12, 5, tzinfo=UTC)
    for spec in ("excavator", INLINE_SPEC):
        original = Snapshot.model_validate(
            payload(spec=spec, deadline=deadline.isoformat(), correlation_id="req-1")
        )

        again = Snapshot.model_validate_json(original.model_dump_json())

        assert again == original
        assert again.deadline == deadline


def test_ragged_readings_are_rejected_naming_the_sensor_and_both_lengths() -> None:
    data = payload()
    data["window"]["readings"]["temp"] = [41.0, 41.1, 41.2]

    with pytest.raises(ValidationError) as caught:
        Snapshot.model_validate(data)

    assert validation_issues(caught.value) == [
        ("window.readings.temp", "series has 3 samples but 'current' has 4")
    ]
    assert caught.value.errors()[0]["type"] == DeadLetterReason.RAGGED_WINDOW


@pytest.mark.parametrize(
    ("readings", "reason"),
    [
        ({}, DeadLetterReason.EMPTY_READINGS),
        ({"current": [1.0]}, DeadLetterReason.WINDOW_TOO_SHORT),
    ],
)
def test_structural_problems_carry_their_dead_letter_reason(
    readings: dict[str, list[float]], reason: DeadLetterReason
) -> None:
    data = payload()
    data["window"]["readings"] = readings

    with pytest.raises(ValidationError) as caught:
        Snapshot.model_validate(data)

    assert caught.value.errors()[0]["type"] == reason.value
    assert validation_issues(caught.value)[0][0] == "window.readings"


def test_nan_and_infinity_pass_the_schema_and_null_is_missing() -> None:
    text = json.dumps(payload()).replace("4.2", "NaN").replace("41.3", "Infinity")

    snapshot = Snapshot.model_validate_json(text)

    assert math.isnan(snapshot.window.readings["current"][1] or 0.0)
    assert snapshot.window.readings["temp"][3] == math.inf
    assert snapshot.window.readings["current"][2] is None


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"snapshot_id": "has space"}, "snapshot_id"),
        ({"snapshot_id": "x" * 129}, "snapshot_id"),
        ({"system_id": ""}, "system_id"),
        ({"deadline": "2024-05-01T12:00:00"}, "deadline"),
        ({"correlation_id": "c" * 129}, "correlation_id"),
        ({"spec": 3}, "spec"),
        ({"spec": {"name": "fan", "components": []}}, "spec.inline.sensors"),
        ({"schema_version": 2}, "schema_version"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_fields_are_reported_at_their_path(overrides: dict[str, Any], path: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Snapshot.model_validate(payload(**overrides))

    assert path in [issue_path for issue_path, _ in validation_issues(caught.value)]


def test_window_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        Window(start=datetime(2024, 5, 1), sample_rate_hz=1.0, readings={"a": [1.0, 2.0]})


def test_a_batch_of_snapshots_validates_quickly() -> None:
    readings = {f"s{i}": [float(j) for j in range(60)] for i in range(30)}
    text = json.dumps(payload(window={**payload()["window"], "readings": readings}))
    started = datetime.now(UTC)

    for _ in range(200):
        Snapshot.model_validate_json(text)

    # ~0.1 ms each on a laptop; the bound only catches a per-sample Python validator.
    assert datetime.now(UTC) - started < timedelta(seconds=2)
