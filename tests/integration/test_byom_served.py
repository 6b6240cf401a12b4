"""docs/byom.md end to end with a real worker: every ``$ gnn-service`` line, in order, as a
user runs it (a subprocess on the embedded default), ``run --machine --data`` included; the
recordings are then diagnosed by the machine's own model, resolved from the registries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from doc_commands import ROOT, SKAB, doc_commands, doc_workdir

from service.db.reader import DiagnosisReader
from service.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not SKAB.is_dir(), reason=f"SKAB data not at {SKAB}"),
]


def test_the_tutorial_serves_the_users_machine_with_its_own_model(
    data_dir: Path, tmp_path: Path
) -> None:
    workdir = doc_workdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GNN_")}
    env["GNN_DATA_DIR"] = str(data_dir)
    printed = []
    for args, _ in doc_commands(ROOT / "docs" / "byom.md"):
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"gnn-service {' '.join(args)}\n{done.stdout}{done.stderr}"
        printed.append(done.stdout)
    served = printed[-1]
    assert "machine skab-pump-rig already registered, version 1; served by model skab:1" in served
    assert "diagnoses stored in" in served
    reader = DiagnosisReader(Settings(data_dir=data_dir))
    try:
        for run in ("valve1-2", "valve2-1"):
            diagnoses = reader.history(run, limit=1000)
            assert diagnoses, f"no diagnosis of {run}"
            assert {(d.model_version, d.spec_version) for d in diagnoses} == {("skab:1", "1")}
    finally:
        reader.close()
