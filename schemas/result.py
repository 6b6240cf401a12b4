"""What a poller reads from the result backend for one snapshot: exactly one outcome.

The worker stores one of three JSON objects under the snapshot id, told apart by
``outcome``: ``diagnosed`` with the Diagnosis, ``expired`` with the Expired record, or
``dead_lettered`` with the DeadLetter record.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.diagnosis import Diagnosis
from schemas.outcomes import DeadLetter, Expired


class Diagnosed(BaseModel):
    """The snapshot was diagnosed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Literal["diagnosed"] = "diagnosed"
    diagnosis: Diagnosis


class ExpiredOutcome(BaseModel):
    """The snapshot's deadline passed before it was computed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Literal["expired"] = "expired"
    expired: Expired


class DeadLettered(BaseModel):
    """The snapshot was rejected as bad input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Literal["dead_lettered"] = "dead_lettered"
    dead_letter: DeadLetter


SnapshotOutcome = Annotated[
    Diagnosed | ExpiredOutcome | DeadLettered, Field(discriminator="outcome")
]
"""One snapshot's outcome as stored in the result backend."""

_ADAPTER: TypeAdapter[Diagnosed | ExpiredOutcome | DeadLettered] = TypeAdapter(SnapshotOutcome)


def parse_outcome(value: Any) -> Diagnosed | ExpiredOutcome | DeadLettered:
    """Validate a stored outcome (a dict from the result backend, or JSON text)."""
    if isinstance(value, str | bytes):
        return _ADAPTER.validate_json(value)
    return _ADAPTER.validate_python(value)


def outcome_json_schema() -> dict[str, Any]:
    """JSON Schema of the outcome union."""
    return _ADAPTER.json_schema()
