"""``produce --file`` with a run shorter than one window ends with one line that says what
would fit, instead of publishing nothing and succeeding."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from machines import generate, write_run

#: The ``gnn_cli`` fixture of tests/conftest.py.
CliRunner = Callable[..., "subprocess.CompletedProcess[str]"]


def test_a_run_shorter_than_the_window_is_refused_with_what_fits(
    gnn_cli: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "short.parquet"
    write_run(generate("excavator", duration_s=30, faults=[], seed=1), path)
    done = gnn_cli("produce", "--file", str(path), "--window", "60")
    assert done.returncode == 2, done.stderr
    assert "has 30 steps (30 s at 1 Hz), fewer than one --window of 60 steps" in done.stderr
    assert "--window 30 or fewer" in done.stderr
    assert "published" not in done.stdout
