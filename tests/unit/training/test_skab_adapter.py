"""The SKAB data-set adapter: every experiment and the anomaly-free recording a run, whole runs
held out, the ``anomaly`` column's intervals as the staged fault, ranges from training only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from csv_rows import csv_rows

from training.benchmarks.skab.adapter import adapt_skab, run_id, staged_fault
from training.benchmarks.skab.dataset import read_recording

SKAB = Path(__file__).resolve().parents[4] / "shared" / "data" / "skab"
pytestmark = pytest.mark.skipif(not SKAB.is_dir(), reason=f"SKAB data not at {SKAB}")


def test_runs_are_held_out_whole_and_labelled_from_the_anomaly_column(tmp_path: Path) -> None:
    files = adapt_skab(SKAB, tmp_path)
    assert (files.train_runs, files.test_runs) == (28, 7)
    train = {row["run"] for row in csv_rows(files.train)}
    test = {row["run"] for row in csv_rows(files.test)}
    assert not train & test
    assert len(train | test) == 35
    assert "anomaly-free" in train | test

    labels = csv_rows(files.labels)
    assert {row["run"] for row in labels} == (train | test) - {"anomaly-free"}
    recording = read_recording(SKAB / "valve2" / "1.csv")
    assert recording.labels is not None
    rows = [row for row in labels if row["run"] == run_id("valve2/1")]
    assert {(row["component"], row["fault"]) for row in rows} == {
        ("hydraulic_loop", "outlet_valve_closing")
    }
    # Each labelled second is inside an interval; every interval's seconds are labelled.
    seconds = [
        float(r["t_s"])
        for r in csv_rows(files.train) + csv_rows(files.test)
        if r["run"] == "valve2-1"
    ]
    inside = np.zeros(len(seconds), dtype=bool)
    for row in rows:
        inside |= (np.asarray(seconds) >= float(row["start_s"])) & (
            np.asarray(seconds) < float(row["end_s"])
        )
    assert np.array_equal(inside, recording.labels == 1)


def test_the_spec_ranges_come_from_training_runs_only(tmp_path: Path) -> None:
    first = yaml.safe_load(adapt_skab(SKAB, tmp_path / "a", seed=0).spec.read_text("utf-8"))
    other = yaml.safe_load(adapt_skab(SKAB, tmp_path / "b", seed=1).spec.read_text("utf-8"))
    assert first["sensors"] != other["sensors"]  # another fold, other training rows
    assert {f["id"] for f in first["fault_modes"]} >= {
        staged_fault(f"other/{n}") for n in range(1, 15)
    }


@pytest.mark.parametrize(
    ("name", "fault"),
    [("valve1/0", "inlet_valve_closing"), ("valve2/3", "outlet_valve_closing"),
     ("other/7", "rotor_imbalance"), ("other/13", "cavitation"), ("other/14", "hot_water")],
)  # fmt: skip
def test_each_experiment_stages_the_fault_the_data_set_describes(name: str, fault: str) -> None:
    assert staged_fault(name) == fault
