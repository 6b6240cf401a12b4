"""Admission: turn a message body into a Snapshot the model can take, or say why not.

The producer client runs the same checks before publishing (a bad snapshot never reaches
the queue) and the worker runs them on every message it receives (producers in other
languages, or older clients, may send anything). Every refusal is an ``InvalidInput`` with a
stable reason code and the path of the field at fault, which the worker turns into a dead
letter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic import ValidationError

from schemas import DeadLetterReason, Snapshot, SystemSpec, validation_issues
from service.errors import InvalidInput
from service.settings import SecuritySettings

SpecResolver = Callable[[str], SystemSpec]
"""Finds the spec of a machine given by name; raises LookupError for unknown names."""

# pydantic error types that the snapshot schema raises with our own reason codes
_SCHEMA_REASONS = {reason.value: reason for reason in DeadLetterReason}


@dataclass(frozen=True)
class Admitted:
    """A snapshot that passed admission, with the spec it refers to."""

    snapshot: Snapshot
    spec: SystemSpec


def decode_body(body: bytes | str, *, limits: SecuritySettings) -> Any:
    """Parse a JSON message body within the size limit.

    Raises:
        InvalidInput: ``oversize`` or ``malformed_json``.
    """
    size = len(body)
    if size > limits.max_snapshot_bytes:
        raise InvalidInput(
            f"message body: {size} bytes exceeds GNN_SECURITY__MAX_SNAPSHOT_BYTES "
            f"({limits.max_snapshot_bytes})",
            reason=DeadLetterReason.OVERSIZE.value,
            field="<body>",
        )
    nul = b"\\u0000" in body if isinstance(body, bytes) else "\\u0000" in body
    if nul:
        # PostgreSQL can store no NUL character, in text or in JSONB: refuse it here, naming
        # it, rather than fail the batch's write.
        raise InvalidInput(
            "message body: contains a NUL character (\\u0000), which no field may hold",
            reason=DeadLetterReason.SCHEMA_INVALID.value,
            field="<body>",
        )
    try:
        # pydantic-core's parser: about 5x faster than json.loads on float arrays
        data = pydantic_core.from_json(body)
    except ValueError as exc:
        raise InvalidInput(
            f"message body: not valid JSON ({exc})",
            reason=DeadLetterReason.MALFORMED_JSON.value,
            field="<body>",
        ) from None
    return data


def parse_snapshot(data: dict[str, Any] | Snapshot) -> Snapshot:
    """Validate ``data`` against the Snapshot schema.

    Raises:
        InvalidInput: With the schema's own reason code (``ragged_window``, ...) when it has
            one, else ``schema_invalid``; the message lists each ``path: problem``.
    """
    if isinstance(data, Snapshot):
        return data
    try:
        return Snapshot.model_validate(data)
    except ValidationError as exc:
        issues = validation_issues(exc)
        first_type = exc.errors(include_url=False)[0]["type"]
        reason = _SCHEMA_REASONS.get(first_type, DeadLetterReason.SCHEMA_INVALID)
        raise InvalidInput(
            "; ".join(f"{path}: {message}" for path, message in issues),
            reason=reason.value,
            field=issues[0][0] if issues else None,
            snapshot_id=data.get("snapshot_id") if isinstance(data, dict) else None,
        ) from None


def admit(snapshot: Snapshot, *, limits: SecuritySettings, resolve_spec: SpecResolver) -> Admitted:
    """Check a schema-valid snapshot against the limits and its machine's spec.

    Raises:
        InvalidInput: ``unknown_spec``, ``unknown_sensor``, ``window_too_short``,
            ``window_too_long`` or ``oversize`` (too many sensors).
    """
    spec = _spec_of(snapshot, resolve_spec)
    readings = snapshot.window.readings
    steps = len(next(iter(readings.values())))
    if steps < limits.min_window_steps:
        raise _invalid(
            snapshot,
            f"window.readings: {steps} steps, fewer than GNN_SECURITY__MIN_WINDOW_STEPS "
            f"({limits.min_window_steps})",
            DeadLetterReason.WINDOW_TOO_SHORT,
            "window.readings",
        )
    if steps > limits.max_window_steps:
        raise _invalid(
            snapshot,
            f"window.readings: {steps} steps, more than GNN_SECURITY__MAX_WINDOW_STEPS "
            f"({limits.max_window_steps})",
            DeadLetterReason.WINDOW_TOO_LONG,
            "window.readings",
        )
    if len(spec.sensors) > limits.max_sensors:
        raise _invalid(
            snapshot,
            f"spec.sensors: {len(spec.sensors)} sensors, more than "
            f"GNN_SECURITY__MAX_SENSORS ({limits.max_sensors})",
            DeadLetterReason.OVERSIZE,
            "spec.sensors",
        )
    known = spec.sensor_index
    for sensor_id in readings:
        if sensor_id not in known:
            raise _invalid(
                snapshot,
                f"window.readings.{sensor_id}: unknown sensor for machine {spec.name!r}",
                DeadLetterReason.UNKNOWN_SENSOR,
                f"window.readings.{sensor_id}",
            )
    return Admitted(snapshot=snapshot, spec=spec)


def _spec_of(snapshot: Snapshot, resolve_spec: SpecResolver) -> SystemSpec:
    if isinstance(snapshot.spec, SystemSpec):
        return snapshot.spec
    try:
        return resolve_spec(snapshot.spec)
    except LookupError as exc:
        raise _invalid(
            snapshot,
            f"spec: unknown machine {snapshot.spec!r} ({exc})",
            DeadLetterReason.UNKNOWN_SPEC,
            "spec",
        ) from None


def _invalid(
    snapshot: Snapshot, message: str, reason: DeadLetterReason, field: str
) -> InvalidInput:
    return InvalidInput(message, reason=reason.value, field=field, snapshot_id=snapshot.snapshot_id)
