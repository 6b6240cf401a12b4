"""Records for snapshots that produced no diagnosis: expired and dead-lettered ones."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from schemas.ids import CorrelationId, OpaqueId

OUTCOME_SCHEMA_VERSION: Final = 1
"""Version of the outcome record formats."""


class DeadLetterReason(StrEnum):
    """Machine-readable reason a snapshot was rejected without retry.

    The snapshot schema raises its structural errors with these codes as pydantic error
    types (``ragged_window``, ``window_too_short``, ``empty_readings``), so a consumer maps a
    validation error to a reason without parsing messages.
    """

    MALFORMED_JSON = "malformed_json"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    SCHEMA_INVALID = "schema_invalid"
    UNKNOWN_SPEC = "unknown_spec"
    UNKNOWN_SENSOR = "unknown_sensor"
    EMPTY_READINGS = "empty_readings"
    RAGGED_WINDOW = "ragged_window"
    WINDOW_TOO_SHORT = "window_too_short"
    WINDOW_TOO_LONG = "window_too_long"
    OVERSIZE = "oversize"
    SIGNATURE_INVALID = "signature_invalid"
    MALFORMED_ENVELOPE = "malformed_envelope"
    """Not a readable kombu envelope (not JSON, body not base64, properties not objects)."""
    INVALID_HEADER = "invalid_header"
    """A header the worker relies on is missing or unreadable (``task``, ``id``, ``expires``)."""
    HEADER_MISMATCH = "header_mismatch"
    """A header disagrees with the body: ``id`` with ``snapshot_id``, or (signed) ``expires``
    with ``deadline``."""
    MODEL_FAILED = "model_failed"
    """The model failed on this snapshot alone ``GNN_MODEL__MAX_FAILURES_PER_SNAPSHOT`` times."""
    UNPROCESSABLE = "unprocessable"
    """The worker raised an unexpected error on this message (it never stops the consumer)."""


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Expired(BaseModel):
    """A snapshot skipped because its deadline passed before it was diagnosed.

    Attributes:
        snapshot_id: The snapshot's id.
        system_id: The machine instance it came from.
        deadline: The deadline it carried.
        observed_at: When the worker found it expired.
        correlation_id: The caller's correlation id, if any.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = OUTCOME_SCHEMA_VERSION
    snapshot_id: OpaqueId
    system_id: OpaqueId
    deadline: AwareDatetime
    observed_at: AwareDatetime
    correlation_id: CorrelationId | None = None


class DeadLetter(BaseModel):
    """A message rejected as bad input; it is never retried.

    Attributes:
        snapshot_id: The snapshot's id when it could be read, else ``None``.
        reason: Machine-readable reason code.
        detail: Human message naming the offending field (``window.readings.p2: ...``).
        field: Dotted path of the field at fault (``window.readings.p2``, ``headers.id``,
            ``<envelope>``), when the reason has one; ``None`` for a model failure.
        payload_sha256: SHA-256 of the raw message body, hex, to find the original.
        received_at: When the worker received the message.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = OUTCOME_SCHEMA_VERSION
    snapshot_id: str | None = Field(default=None, max_length=256)
    reason: DeadLetterReason
    detail: str = Field(max_length=4000)
    field: str | None = Field(default=None, max_length=256)
    payload_sha256: Sha256Hex
    received_at: AwareDatetime
