"""The Python example of docs/data-format.md ("Writing") runs and writes a file that reads
back with its unknown labels unknown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from machines import read_run

DOC = Path(__file__).resolve().parents[3] / "docs" / "data-format.md"


def test_the_writing_example_runs_and_round_trips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = DOC.read_text("utf-8").split("## Writing", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "no Python example under '## Writing'"
    monkeypatch.chdir(tmp_path)
    exec(compile(code.group(1), str(DOC), "exec"), {})  # the doc's own example
    run = read_run(tmp_path / "run.parquet")
    assert run.run_id == "press-2026-01-01"
    assert run.steps == 600
    assert np.isnan(run.health).all()
    assert np.isnan(run.rul_hours).all()
    assert (run.fault_codes == 0).all()
