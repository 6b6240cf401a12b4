"""The hydraulic data-set adapter: a run per stretch of one condition, the labels table a
user would write, and files that ``gnn-service import`` takes as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from csv_rows import csv_rows
from typer.testing import CliRunner

from cli.importing import import_runs
from machines import read_run
from training.benchmarks.hydraulic.adapter import adapt_hydraulic
from training.benchmarks.hydraulic.dataset import SENSORS, HydraulicData, label_indices

# (cooler %, valve %, pump leakage, accumulator bar) of each run; 3 cycles each, the first
# one not yet stable.
CONDITIONS = [(100, 100, 0, 130), (20, 90, 1, 115), (3, 80, 2, 100), (100, 73, 0, 90)] * 2
CYCLES = 3


def _data() -> HydraulicData:
    profile = np.array(
        [[*condition, int(cycle == 0)] for condition in CONDITIONS for cycle in range(CYCLES)]
    )
    rng = np.random.default_rng(0)
    readings = 40.0 + rng.normal(size=(len(profile), len(SENSORS), 60))
    return HydraulicData(readings, profile, label_indices(profile), Path("synthetic"))


def test_each_condition_stretch_is_one_run_labelled_per_run_and_per_interval(
    tmp_path: Path,
) -> None:
    files = adapt_hydraulic(_data(), tmp_path, folds=4)
    assert (files.train_runs, files.test_runs) == (6, 2)
    train_ids = {row["run"] for row in csv_rows(files.train)}
    test_ids = {row["run"] for row in csv_rows(files.test)}
    assert not train_ids & test_ids
    assert len(train_ids | test_ids) == len(CONDITIONS)

    labels = [row for row in csv_rows(files.labels) if row["run"] == "run001"]
    assert [(r["component"], r["fault"], r["start_s"], r["end_s"]) for r in labels] == [
        ("cooler", "cooler_reduced_efficiency", "", ""),
        ("valve", "valve_small_lag", "", ""),
        ("pump", "pump_weak_leakage", "", ""),
        ("accumulator", "accumulator_slightly_reduced", "", ""),
        ("tank", "not_stable", "0", "60"),
    ]
    optimal = [row for row in csv_rows(files.labels) if row["run"] == "run000"]
    assert [(r["component"], r["fault"]) for r in optimal] == [("tank", "not_stable")]
    first = csv_rows(files.train if "run001" in train_ids else files.test)
    seconds = [float(row["t_s"]) for row in first if row["run"] == "run001"]
    assert seconds == list(range(CYCLES * 60))  # one time base over the run's cycles


def test_the_files_import_as_written_with_their_labels(tmp_path: Path) -> None:
    files = adapt_hydraulic(_data(), tmp_path / "adapted", folds=4)
    app = typer.Typer(pretty_exceptions_enable=False)
    app.command()(import_runs)
    out = tmp_path / "runs"
    args = [
        str(files.train), "--spec", str(files.spec), "--labels", str(files.labels),
        "--run-column", "run", "--time-column", "t_s", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "labels table names 2 run(s) not imported (ignored)" in result.stdout
    written = sorted(out.glob("*.parquet"))
    assert len(written) == files.train_runs
    run = read_run(next(p for p in written if p.stem == "run001"))
    assert run.steps == CYCLES * 60
    tank = run.component_ids.index("tank")
    cooler = run.component_ids.index("cooler")
    assert set(run.fault_labels[:60, tank]) == {"not_stable"}
    assert set(run.fault_labels[60:, tank]) == {"normal"}
    assert set(run.fault_labels[:, cooler]) == {"cooler_reduced_efficiency"}
