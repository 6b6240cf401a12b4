"""Diagnosis: what the worker concludes about one snapshot, per component and for the machine."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.ids import CorrelationId, Identifier, OpaqueId

DIAGNOSIS_SCHEMA_VERSION: Final = 1
"""Version of the diagnosis format."""

NORMAL_FAULT: Final = "normal"
"""Fault label meaning no fault."""

HealthStatus = Literal["ok", "warning", "critical"]
"""Coarse state of a component, for dashboards and alerts."""

Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class Contribution(BaseModel):
    """How much one sensor or connection contributed to a component's diagnosis.

    Attributes:
        id: Sensor id, or ``"<source>-><target>"`` for a connection.
        score: Non-negative contribution; larger explains more.
    """

    model_config = _FROZEN

    id: str = Field(min_length=1, max_length=160)
    score: NonNegative


class RemainingLife(BaseModel):
    """Remaining useful life estimate with an uncertainty interval, each at most 1000 h:
    the cap means no failure in sight.

    Attributes:
        hours: Point estimate in hours.
        low_hours: Lower bound in hours.
        high_hours: Upper bound in hours.
    """

    model_config = _FROZEN

    hours: NonNegative
    low_hours: NonNegative
    high_hours: NonNegative

    @model_validator(mode="after")
    def _ordered(self) -> RemainingLife:
        if not self.low_hours <= self.hours <= self.high_hours:
            raise ValueError(
                f"expected low_hours <= hours <= high_hours, got "
                f"{self.low_hours:g} <= {self.hours:g} <= {self.high_hours:g}"
            )
        return self


class ComponentDiagnosis(BaseModel):
    """The diagnosis of one component.

    Attributes:
        component_id: The component.
        health: 1 healthy, 0 failed.
        status: Coarse state derived from health and anomaly.
        fault: Most likely fault id, or ``"normal"``.
        fault_probabilities: Probability per fault id (``"normal"`` included).
        anomaly_score: Non-negative score from forecasting residuals; finds unlabelled faults.
        rul: Remaining useful life, when the model estimates it.
        top_sensors: Sensors that explain the result most, best first.
        top_connections: Connections that explain the result most, best first.
    """

    model_config = _FROZEN

    component_id: Identifier
    health: Unit
    status: HealthStatus
    fault: Identifier = NORMAL_FAULT
    fault_probabilities: dict[Identifier, Unit] = Field(default_factory=dict)
    anomaly_score: NonNegative = 0.0
    rul: RemainingLife | None = None
    top_sensors: list[Contribution] = Field(default_factory=list)
    top_connections: list[Contribution] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fault_has_a_probability(self) -> ComponentDiagnosis:
        if self.fault_probabilities and self.fault not in self.fault_probabilities:
            raise ValueError(f"fault {self.fault!r} has no entry in fault_probabilities")
        return self


class Timings(BaseModel):
    """Where the time went for one snapshot, in milliseconds; ``None`` where unknown.

    Attributes:
        queue_ms: From publish to receipt by a worker.
        batch_wait_ms: Waiting in the batcher for the batch to close.
        features_ms: Building model inputs (the batch's share).
        forward_ms: Model forward pass (the batch's share).
        postprocess_ms: Turning outputs into diagnoses.
        total_ms: From receipt to diagnosis.
    """

    model_config = _FROZEN

    queue_ms: Millis | None = None
    batch_wait_ms: Millis | None = None
    features_ms: Millis | None = None
    forward_ms: Millis | None = None
    postprocess_ms: Millis | None = None
    total_ms: Millis | None = None


class Diagnosis(BaseModel):
    """The result for one snapshot.

    Attributes:
        schema_version: Format version (1).
        snapshot_id: The snapshot diagnosed (unique: one diagnosis per snapshot).
        system_id: The machine instance.
        model_version: Version of the model that produced it (``name:version``).
        spec_version: Version of the machine's spec it was diagnosed against: the machine
            registry's version number (``"3"``) for a machine named in the snapshot,
            ``builtin`` for a demo machine not in the registry, ``inline-`` and the first 12
            hex digits of the spec's SHA-256 for a spec carried in the snapshot. Absent in
            diagnoses stored before the registry existed.
        created_at: When it was produced (timezone-aware).
        correlation_id: The caller's correlation id, copied from the snapshot.
        machine_health: 1 healthy, 0 failed, for the whole machine.
        components: One entry per component of the machine.
        timings: Latency breakdown.
        warnings: Things the caller should know (masked samples, unknown sensors ignored).
    """

    model_config = _FROZEN

    schema_version: Literal[1] = DIAGNOSIS_SCHEMA_VERSION
    snapshot_id: OpaqueId
    system_id: OpaqueId
    model_version: str = Field(min_length=1, max_length=128)
    spec_version: str | None = Field(default=None, min_length=1, max_length=64)
    created_at: AwareDatetime
    correlation_id: CorrelationId | None = None
    machine_health: Unit
    components: list[ComponentDiagnosis]
    timings: Timings = Field(default_factory=Timings)
    warnings: list[str] = Field(default_factory=list)
