"""Contracts shared by producer and worker: machine specs, snapshots, diagnoses, outcomes.

Pure pydantic models; this package imports nothing else of the project.
"""

from __future__ import annotations

from schemas.diagnosis import (
    DIAGNOSIS_SCHEMA_VERSION,
    NORMAL_FAULT,
    ComponentDiagnosis,
    Contribution,
    Diagnosis,
    HealthStatus,
    RemainingLife,
    Timings,
)
from schemas.ids import CorrelationId, Identifier, OpaqueId
from schemas.issues import Issue, IssueError, format_location, validation_issues
from schemas.outcomes import OUTCOME_SCHEMA_VERSION, DeadLetter, DeadLetterReason, Expired
from schemas.snapshot import MIN_WINDOW_STEPS, SNAPSHOT_SCHEMA_VERSION, Snapshot, Window
from schemas.spec import (
    SPEC_SCHEMA_VERSION,
    Component,
    Connection,
    FaultMode,
    Sensor,
    SpecError,
    SystemSpec,
    load_spec,
    parse_spec,
)
from schemas.vocabulary import (
    CONNECTION_TYPES,
    SENSOR_KINDS,
    UNITS_BY_KIND,
    ConnectionType,
    SensorKind,
)

__all__ = [
    "CONNECTION_TYPES",
    "DIAGNOSIS_SCHEMA_VERSION",
    "MIN_WINDOW_STEPS",
    "NORMAL_FAULT",
    "OUTCOME_SCHEMA_VERSION",
    "SENSOR_KINDS",
    "SNAPSHOT_SCHEMA_VERSION",
    "SPEC_SCHEMA_VERSION",
    "UNITS_BY_KIND",
    "Component",
    "ComponentDiagnosis",
    "Connection",
    "ConnectionType",
    "Contribution",
    "CorrelationId",
    "DeadLetter",
    "DeadLetterReason",
    "Diagnosis",
    "Expired",
    "FaultMode",
    "HealthStatus",
    "Identifier",
    "Issue",
    "IssueError",
    "OpaqueId",
    "RemainingLife",
    "Sensor",
    "SensorKind",
    "Snapshot",
    "SpecError",
    "SystemSpec",
    "Timings",
    "Window",
    "format_location",
    "load_spec",
    "parse_spec",
    "validation_issues",
]
