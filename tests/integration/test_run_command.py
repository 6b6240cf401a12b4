"""`gnn-service run` as a newcomer meets it on the embedded default, its output not a
terminal (a CI log, a pipe): the live table, then the summary on a line of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_run_diagnoses_the_demo_machines_and_ends_with_a_summary_line(
    data_dir: Path, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GNN_")}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "run", "--duration", "5s", "--no-flower"],
        env={**clean, "GNN_DATA_DIR": str(data_dir)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    summary = [line for line in lines if "diagnoses stored in" in line]
    assert len(summary) == 1, done.stdout
    # What follows the live table starts its own line: its last frame ended with a newline.
    stopped = [line for line in lines if "stopped (exit" in line]
    assert stopped, done.stdout
    assert all(line.startswith("worker ") for line in stopped), done.stdout
    assert summary[0].split()[0].isdigit(), summary[0]
    stored = int(summary[0].split()[0])
    assert stored >= 4 * 5  # four machines, one window a second
    # Off a terminal the table is wide enough for whole machine ids.
    for machine in ("excavator", "injection_molding_machine", "cnc_machine", "industrial_robot"):
        assert f"demo-{machine}" in done.stdout
    assert "Traceback" not in done.stderr
