"""JSON Schema files of the contracts, for producers and consumers in other languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.diagnosis import Diagnosis
from schemas.outcomes import DeadLetter, Expired
from schemas.result import outcome_json_schema
from schemas.snapshot import Snapshot
from schemas.spec import SystemSpec


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every exported schema by file name."""
    return {
        "system_spec.schema.json": SystemSpec.model_json_schema(),
        "snapshot.schema.json": Snapshot.model_json_schema(),
        "diagnosis.schema.json": Diagnosis.model_json_schema(mode="serialization"),
        "expired.schema.json": Expired.model_json_schema(mode="serialization"),
        "dead_letter.schema.json": DeadLetter.model_json_schema(mode="serialization"),
        "outcome.schema.json": outcome_json_schema(),
    }


def render(schema: dict[str, Any]) -> str:
    """The text written for one schema (stable key order, trailing newline)."""
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = directory / name
        path.write_text(render(schema))
        written.append(path)
    return written
