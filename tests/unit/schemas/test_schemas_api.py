"""The schemas package's public surface: everything in __all__ exists, and nothing of ours
is imported by it."""

from __future__ import annotations

import subprocess
import sys

import schemas
from schemas import Diagnosis, Snapshot, SystemSpec


def test_every_public_name_is_importable() -> None:
    for name in schemas.__all__:
        assert hasattr(schemas, name), name
    assert sorted(schemas.__all__) == sorted(set(schemas.__all__))


def test_schemas_imports_no_other_package_of_ours() -> None:
    code = (
        "import sys, schemas; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('producer', 'worker', 'training')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_every_contract_exports_a_json_schema() -> None:
    for model in (SystemSpec, Snapshot, Diagnosis):
        schema = model.model_json_schema()
        assert schema["type"] == "object"
        assert schema["properties"]
