"""Run file format version 2: unknown labels as nulls, recorded runs' ids and label rows;
version 1 files are still read."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from machines import Run, RunFormatError, builtin_spec, generate, read_run, write_run
from machines.labels import RecordedLabel, recorded_labels
from machines.run_io import CSV_PREFIX, PARQUET_METADATA_KEY


@pytest.fixture(scope="module")
def recorded() -> Run:
    """A simulated excavator hour relabelled as a recorded run with unknown labels."""
    run = generate("excavator", duration_s=600, seed=4)
    spec = run.spec
    component = spec.fault_mode("pump_internal_leak").component
    labels = (
        RecordedLabel(component, "pump_internal_leak", start_s=100.0, end_s=300.0),
        RecordedLabel(spec.component_ids[0], None, failure_s=900.0, start_s=200.0),
    )
    health, codes, rul = recorded_labels(spec, labels, run.t_s)
    return replace(
        run, faults=(), health=health, fault_codes=codes, rul_hours=rul, run_id="r 1", labels=labels
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_recorded_run_with_unknown_labels_round_trips(
    recorded: Run, tmp_path: Path, suffix: str
) -> None:
    again = read_run(write_run(recorded, tmp_path / f"run{suffix}"))

    assert again.same_as(recorded)
    assert np.isnan(again.health).any()
    assert (again.fault_codes == -1).any()
    assert again.fault_labels.tolist() == recorded.fault_labels.tolist()
    assert again.labels == recorded.labels
    assert again.run_id == "r 1"


def test_unknown_labels_are_nulls_in_the_file(recorded: Run, tmp_path: Path) -> None:
    table = pq.read_table(write_run(recorded, tmp_path / "run.parquet"))
    metadata = json.loads(table.schema.metadata[PARQUET_METADATA_KEY])
    first = recorded.component_ids[0]

    assert metadata["format_version"] == 2
    assert metadata["source"] == "recorded"
    assert metadata["run_id"] == "r 1"
    assert metadata["labels"][1] == {
        "component": first,
        "fault": None,
        "severity": None,
        "start_s": 200.0,
        "end_s": None,
        "failure_s": 900.0,
    }
    assert table.column(f"health.{first}").null_count == 400
    assert table.column(f"fault.{first}").null_count == 400
    assert table.column(f"rul_h.{first}").null_count == 0
    lines = (write_run(recorded, tmp_path / "run.csv")).read_text().splitlines()
    header = lines[1].split(",")
    cells = lines[-1].split(",")
    assert cells[header.index(f"health.{first}")] == ""
    assert cells[header.index(f"fault.{first}")] == ""


def _as_version_1(path: Path) -> Path:
    """Rewrite a simulated run's metadata as a version 1 writer wrote it."""
    table = pq.read_table(path)
    metadata = json.loads(table.schema.metadata[PARQUET_METADATA_KEY])
    for key in ("source", "run_id", "labels"):
        del metadata[key]
    metadata["format_version"] = 1
    old = path.with_name("v1.parquet")
    pq.write_table(
        table.replace_schema_metadata({PARQUET_METADATA_KEY: json.dumps(metadata).encode()}), old
    )
    return old


def test_version_1_files_are_still_read(tmp_path: Path) -> None:
    run = generate("cnc_machine", duration_s=300, seed=2, faults=["spindle_bearing_wear@1m"])

    again = read_run(_as_version_1(write_run(run, tmp_path / "run.parquet")))

    assert again.same_as(run)
    assert not again.recorded
    assert again.faults == run.faults


def test_a_version_1_file_may_not_hold_an_unknown_fault(tmp_path: Path) -> None:
    run = generate("cnc_machine", duration_s=60, seed=2)
    old = _as_version_1(write_run(run, tmp_path / "run.parquet"))
    table = pq.read_table(old)
    name = f"fault.{run.component_ids[0]}"
    nulls = pa.nulls(table.num_rows, pa.string())
    table = table.set_column(table.column_names.index(name), name, nulls)
    pq.write_table(table, old)

    with pytest.raises(RunFormatError, match="an empty fault label"):
        read_run(old)


def test_other_versions_are_refused(tmp_path: Path) -> None:
    path = write_run(generate("cnc_machine", duration_s=60, seed=2), tmp_path / "run.csv")
    first, rest = path.read_text().split("\n", 1)
    metadata = json.loads(first[len(CSV_PREFIX) :])
    metadata["format_version"] = 3
    path.write_text(f"{CSV_PREFIX}{json.dumps(metadata)}\n{rest}")

    with pytest.raises(RunFormatError, match="version 1 or 2, got gnn-service-run version 3"):
        read_run(path)


def test_recorded_labels_refuse_rows_that_do_not_fit_the_machine() -> None:
    spec = builtin_spec("excavator")
    t = np.arange(10.0)
    with pytest.raises(ValueError, match="unknown component"):
        recorded_labels(spec, [RecordedLabel("nozzle", "normal")], t)
    component = spec.component_ids[0]
    rows = [RecordedLabel(component, failure_s=5.0), RecordedLabel(component, failure_s=6.0)]
    with pytest.raises(ValueError, match="more than one run-to-failure row"):
        recorded_labels(spec, rows, t)
