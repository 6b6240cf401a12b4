"""Run files: Parquet and CSV hold the same run in the documented column layout."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from machines import Run, RunFormatError, generate, read_run, write_run
from machines.run_io import CSV_PREFIX, PARQUET_METADATA_KEY


@pytest.fixture(scope="module")
def run() -> Run:
    return generate(
        "injection_molding_machine",
        duration_s=1800,
        seed=5,
        faults=["heater_band_failure@10m:step:0.6", "check_ring_wear@5m:exponential:1:20m"],
        missing_rate=0.02,
    )


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_a_run_round_trips_unchanged(run: Run, tmp_path: Path, suffix: str) -> None:
    path = write_run(run, tmp_path / f"run{suffix}")

    again = read_run(path)

    assert again.same_as(run)
    assert again.fault_labels.tolist() == run.fault_labels.tolist()


def test_parquet_columns_and_metadata_follow_the_documented_format(
    run: Run, tmp_path: Path
) -> None:
    path = write_run(run, tmp_path / "run.parquet")

    table = pq.read_table(path)
    metadata = json.loads(table.schema.metadata[PARQUET_METADATA_KEY])

    component = run.component_ids[0]
    assert table.column_names[: 1 + len(run.sensor_ids)] == ["t_s", *run.sensor_ids]
    assert table.column_names[1 + len(run.sensor_ids) :][:3] == [
        f"health.{component}",
        f"fault.{component}",
        f"rul_h.{component}",
    ]
    assert metadata["system"] == "injection_molding_machine"
    assert metadata["seed"] == 5
    assert metadata["sample_rate_hz"] == 1.0
    assert metadata["faults"] == [str(fault) for fault in run.faults]
    assert metadata["format_version"] == 2
    assert table.column(run.sensor_ids[0]).null_count > 0  # missing samples are nulls


def test_csv_starts_with_the_metadata_line_then_the_header(run: Run, tmp_path: Path) -> None:
    path = write_run(run, tmp_path / "run.csv")

    first, header = path.read_text().splitlines()[:2]

    assert first.startswith(CSV_PREFIX)
    assert json.loads(first[len(CSV_PREFIX) :])["system"] == run.system
    assert header.split(",")[:2] == ["t_s", run.sensor_ids[0]]


def test_files_in_another_format_are_rejected(run: Run, tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("t_s,a\n0,1\n")

    with pytest.raises(RunFormatError, match="first line"):
        read_run(plain)
    with pytest.raises(RunFormatError, match="unsupported"):
        write_run(run, tmp_path / "run.xlsx")
    with pytest.raises(RunFormatError, match="cannot read"):
        read_run(tmp_path / "absent.parquet")
