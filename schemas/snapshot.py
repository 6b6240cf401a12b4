"""Snapshot: the task payload, a window of one machine's readings to diagnose.

The schema checks structure only (ids, a non-empty rectangular window of at least two steps).
Size limits, unknown sensors and built-in spec names are checked by the worker, which knows
its settings and registry. Validation stays in pydantic-core (no per-sample Python code)
because batches of hundreds of snapshots are validated on the hot path.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.ids import CorrelationId, Identifier, OpaqueId
from schemas.issues import AT_CONTEXT_KEY
from schemas.outcomes import DeadLetterReason
from schemas.spec import SystemSpec

SNAPSHOT_SCHEMA_VERSION: Final = 1
"""Version of the snapshot payload format."""

MIN_WINDOW_STEPS: Final = 2
"""Fewest time steps a window may have."""


def _spec_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "name"
    if isinstance(value, dict | SystemSpec):
        return "inline"
    return None


SpecRef = Annotated[
    Annotated[Identifier, Tag("name")] | Annotated[SystemSpec, Tag("inline")],
    Discriminator(
        _spec_tag,
        custom_error_type="spec_reference",
        custom_error_message="expected a built-in machine name or an inline SystemSpec object",
    ),
]
"""A machine given by built-in name (``"excavator"``) or inline as a full SystemSpec."""


class Window(BaseModel):
    """Readings of a machine over consecutive, equally spaced time steps.

    Attributes:
        start: Time of the first step (timezone-aware).
        sample_rate_hz: Steps per second.
        readings: Series per sensor id, all of the same length T >= 2; ``None`` (JSON
            ``null``) is a missing sample. NaN and infinities pass the schema; the worker
            masks and counts them.

    Shapes:
        readings: ``{sensor_id: [T]}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: AwareDatetime
    sample_rate_hz: float = Field(gt=0, allow_inf_nan=False)
    readings: dict[Identifier, list[float | None]]

    @field_validator("readings")
    @classmethod
    def _rectangular(cls, value: dict[str, list[float | None]]) -> dict[str, list[float | None]]:
        if not value:
            raise PydanticCustomError(
                DeadLetterReason.EMPTY_READINGS.value, "a window needs at least one sensor series"
            )
        lengths = {sensor: len(series) for sensor, series in value.items()}
        first, expected = next(iter(lengths.items()))
        for sensor, length in lengths.items():
            if length != expected:
                raise PydanticCustomError(
                    DeadLetterReason.RAGGED_WINDOW.value,
                    "series has {length} samples but '{first}' has {expected}",
                    {
                        AT_CONTEXT_KEY: sensor,
                        "length": length,
                        "first": first,
                        "expected": expected,
                    },
                )
        if expected < MIN_WINDOW_STEPS:
            raise PydanticCustomError(
                DeadLetterReason.WINDOW_TOO_SHORT.value,
                "a window needs at least {minimum} time steps, got {steps}",
                {"minimum": MIN_WINDOW_STEPS, "steps": expected},
            )
        return value

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return len(next(iter(self.readings.values())))


class Snapshot(BaseModel):
    """One diagnosis task: which machine, and a window of its readings.

    Attributes:
        schema_version: Payload format version (1).
        snapshot_id: Caller-chosen unique id; diagnoses are stored idempotently on it.
        system_id: The machine instance (one excavator of a fleet).
        spec: Built-in machine name or inline SystemSpec.
        window: The readings.
        deadline: When the result stops being useful (timezone-aware); expired snapshots
            are recorded, not diagnosed.
        correlation_id: Caller's id for tracing.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SNAPSHOT_SCHEMA_VERSION
    snapshot_id: OpaqueId
    system_id: OpaqueId
    spec: SpecRef
    window: Window
    deadline: AwareDatetime | None = None
    correlation_id: CorrelationId | None = None

    @property
    def spec_name(self) -> str:
        """The machine name, whether the spec was given by name or inline."""
        return self.spec if isinstance(self.spec, str) else self.spec.name
