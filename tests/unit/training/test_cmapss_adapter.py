"""The C-MAPSS data-set adapter: each engine a run to failure (a cycle an hour), whole engines
held out, and files that ``gnn-service import`` takes as they are, remaining life included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from csv_rows import csv_rows
from typer.testing import CliRunner

from cli.importing import import_runs
from machines import read_run
from training.benchmarks.cmapss.adapter import CYCLE_S, adapt_cmapss

CMAPSS = Path(__file__).resolve().parents[4] / "shared" / "data" / "cmapss_fd001"
pytestmark = pytest.mark.skipif(not CMAPSS.is_dir(), reason=f"C-MAPSS data not at {CMAPSS}")


def test_engines_are_held_out_whole_and_each_fails_at_its_last_cycle(tmp_path: Path) -> None:
    files = adapt_cmapss(CMAPSS, tmp_path / "adapted")
    assert (files.train_runs, files.test_runs) == (80, 20)
    test_rows = csv_rows(files.test)
    test_runs = {row["run"] for row in test_rows}
    assert len(test_runs) == 20
    assert not test_runs & {row["run"] for row in csv_rows(files.train)}
    labels = {row["run"]: row for row in csv_rows(files.labels)}
    assert len(labels) == 100
    engine = sorted(test_runs)[0]
    last_s = max(float(row["t_s"]) for row in test_rows if row["run"] == engine)
    assert float(labels[engine]["failure_s"]) == last_s

    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(import_runs)
    out = tmp_path / "runs"
    args = [
        str(files.test), "--spec", str(files.spec), "--labels", str(files.labels),
        "--run-column", "run", "--time-column", "t_s", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    run = read_run(out / f"{engine}.parquet")
    assert run.sample_rate_hz == pytest.approx(1.0 / CYCLE_S)
    hpc = run.component_ids.index("hpc")
    life = run.rul_hours[:, hpc]
    # One hour per cycle: the remaining life counts the cycles down to 0 at the last one.
    assert np.array_equal(life, np.arange(run.steps - 1, -1, -1, dtype=np.float32))
    # No onset given: the fault is unknown before the failure, and known at it.
    assert (run.fault_codes[:-1, hpc] == -1).all()
    assert run.fault_vocabulary[run.fault_codes[-1, hpc]] == "hpc_degradation"
    assert np.isnan(run.health[:-1, hpc]).all()
