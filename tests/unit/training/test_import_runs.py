"""Importing recorded runs: real CSV and Parquet files in, run files and a report out.

The labels table examples are read from docs/data-format.md itself, so the documented
meaning of each kind of row is the one tested.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from machines import read_run
from machines.labels import UNKNOWN_FAULT_CODE
from schemas import SystemSpec, load_spec
from training.data.import_report import REPORT_NAME
from training.data.importer import ImportOptions, import_runs
from training.data.recordings import RecordingError, TableOptions

ROOT = Path(__file__).resolve().parents[3]
PRESS = ROOT / "docs" / "examples" / "hydraulic_press.yaml"
HOUR = 3600.0


@pytest.fixture(scope="module")
def press() -> SystemSpec:
    return load_spec(PRESS)


def _write_csv(path: Path, header: list[str], rows: list[list[object]], sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        sep.join(header),
        *(sep.join("" if v is None else str(v) for v in row) for row in rows),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _recording(path: Path, spec: SystemSpec, seconds: float, period: float) -> Path:
    """Every sensor of ``spec`` sampled every ``period`` s, with a time column ``t``."""
    times = np.arange(0.0, seconds, period)
    rows = [[f"{t:g}", *(f"{i + t / 1000:g}" for i in range(len(spec.sensor_ids)))] for t in times]
    return _write_csv(path, ["t", *spec.sensor_ids], rows)


def _doc_label_table() -> str:
    text = (ROOT / "docs" / "data-format.md").read_text(encoding="utf-8")
    block = re.search(r"```csv\n(run,component,fault,severity.*?)```", text, re.S)
    assert block is not None, "docs/data-format.md lost its labels table example"
    return block.group(1)


def _options(
    spec: SystemSpec,
    files: list[Path],
    out: Path,
    *,
    table: TableOptions | None = None,
    **kwargs: Any,
) -> ImportOptions:
    table = table or TableOptions(time_column="t")
    return ImportOptions(spec=spec, recordings=files, out_dir=out, table=table, **kwargs)


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_documented_label_kinds_round_trip_into_run_files_unknown_as_nan(
    tmp_path: Path, press: SystemSpec, file_format: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(_doc_label_table(), encoding="utf-8")
    names = [f"press-0{n}" for n in range(3, 10)]  # press-09 is in no row of the table
    files = [_recording(tmp_path / "rec" / f"{name}.csv", press, 3 * HOUR, 60.0) for name in names]

    report = import_runs(
        _options(press, files, tmp_path / "out", labels=labels, file_format=file_format)
    )

    runs = {name: read_run(tmp_path / "out" / f"{name}.{file_format}") for name in names}
    t = runs["press-03"].t_s
    assert t[1] == 60.0
    assert runs["press-03"].steps == 180
    pump, ram, tank = (press.component_index[c] for c in ("pump", "ram", "tank"))
    wear = press.fault_index["pump_wear"] + 1

    def column(name: str, field: str, component: int) -> np.ndarray:
        return getattr(runs[name], field)[:, component]

    # a condition of the whole run, with severity: health 1 - 0.8 * 0.5, RUL unknown
    assert np.allclose(column("press-03", "health", pump), 0.6)
    assert (column("press-03", "fault_codes", pump) == wear).all()
    assert np.isnan(column("press-03", "rul_hours", pump)).all()
    # without severity: health unknown too
    assert np.isnan(column("press-04", "health", pump)).all()
    assert (column("press-04", "fault_codes", pump) == wear).all()
    # intervals: the fault inside, normal outside
    leak = (t >= 1800) & (t < 5400)
    assert (runs["press-05"].fault_labels[leak, ram] == "ram_seal_leak").all()
    assert (runs["press-05"].fault_labels[~leak, ram] == "normal").all()
    assert np.isnan(column("press-05", "health", ram)[leak]).all()
    assert (column("press-05", "health", ram)[~leak] == 1.0).all()
    assert (column("press-05", "rul_hours", ram)[~leak] == 1000.0).all()
    assert (runs["press-05"].fault_labels[t >= 7200, tank] == "oil_leak").all()
    assert (runs["press-05"].fault_labels[t < 7200, tank] == "normal").all()
    # run to failure, onset unknown: RUL known everywhere, health and fault unknown
    assert np.allclose(column("press-06", "rul_hours", pump), (86400 - t) / HOUR)
    assert np.isnan(column("press-06", "health", pump)).all()
    assert (column("press-06", "fault_codes", pump) == UNKNOWN_FAULT_CODE).all()
    assert (runs["press-06"].fault_labels[:, pump] == "").all()
    # run to failure with a known onset and mode: healthy before it
    before = t < 3600
    assert (column("press-07", "health", pump)[before] == 1.0).all()
    assert np.isnan(column("press-07", "health", pump)[~before]).all()
    assert (column("press-07", "fault_codes", pump)[before] == 0).all()
    assert (column("press-07", "fault_codes", pump)[~before] == wear).all()
    assert np.allclose(column("press-07", "rul_hours", pump), (86400 - t) / HOUR)
    # explicitly normal, and not named at all: healthy references
    for name in ("press-08", "press-09"):
        assert (runs[name].health == 1.0).all()
        assert (runs[name].fault_codes == 0).all()
        assert (runs[name].rul_hours == 1000.0).all()
    # components no row names stay healthy
    motor = press.component_index["motor"]
    assert all((run.health[:, motor] == 1.0).all() for run in runs.values())
    # the run files say where they came from
    assert runs["press-05"].run_id == "press-05"
    assert runs["press-05"].faults == ()
    assert [label.fault for label in runs["press-05"].labels] == ["ram_seal_leak", "oil_leak"]
    assert runs["press-05"].seed != runs["press-06"].seed  # distinct snapshot ids per run
    by_run = {run.run: run for run in report.runs}
    assert by_run["press-09"].labels.healthy_reference
    assert not by_run["press-08"].labels.healthy_reference
    assert by_run["press-06"].labels.unknown_fault_steps == 180
    assert by_run["press-04"].labels.unknown_rul_steps == 180
    assert by_run["press-05"].labels.rows[0]["line"] == 4
    assert by_run["press-05"].labels.rows[0]["kind"] == "interval"


def test_irregular_timestamps_are_averaged_per_step_and_empty_steps_stay_missing(
    tmp_path: Path, press: SystemSpec
) -> None:
    start = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
    # 10 Hz with jitter, two samples in step 2, nothing in steps 4-6, a late sample for step 8
    offsets = [0.0, 0.101, 0.19, 0.23, 0.298, 0.702, 0.81, 0.9, 0.79]
    values = [1.0, 2.0, 3.0, 5.0, 4.0, 7.0, 8.0, 9.0, 10.0]
    rows = [
        [(start + timedelta(seconds=s)).isoformat().replace("+00:00", "Z"), v, 100.0 + v]
        for s, v in zip(offsets, values, strict=True)
    ]
    file = _write_csv(tmp_path / "jitter.csv", ["time", "pump_flow", "oil_temp"], rows)

    report = import_runs(
        _options(
            press, [file], tmp_path / "out", table=TableOptions(time_column="time", rate_hz=10.0)
        )
    )

    run = read_run(tmp_path / "out" / "jitter.parquet")
    flow = run.sensor("pump_flow")
    assert run.sample_rate_hz == 10.0
    assert run.start == start
    assert np.allclose(run.t_s, np.arange(10) / 10)
    expected = [1.0, 2.0, 4.0, 4.0, np.nan, np.nan, np.nan, 7.0, 9.0, 9.0]
    # step 7 (0.7 s): 0.702; step 8: 0.81 and 0.79 averaged; step 3: 0.298
    assert np.allclose(flow, expected, equal_nan=True)
    item = report.runs[0]
    assert item.empty_steps == 3
    assert item.merged_rows == 2  # 0.19 with 0.23, 0.79 with 0.81
    assert not item.rate_inferred
    flow_report = next(s for s in item.sensors if s.sensor == "pump_flow")
    assert (flow_report.missing_steps, flow_report.gaps) == (3, 1)
    assert flow_report.longest_gap_s == pytest.approx(0.3)


def test_the_rate_is_inferred_from_the_median_interval(tmp_path: Path, press: SystemSpec) -> None:
    rows = [[t, 1.0 + t] for t in (0, 2, 4, 6, 10, 12)]  # one sample missing at 8 s
    file = _write_csv(tmp_path / "slow.csv", ["t", "pump_flow"], rows)

    report = import_runs(_options(press, [file], tmp_path / "out"))

    run = read_run(tmp_path / "out" / "slow.parquet")
    assert report.runs[0].rate_inferred
    assert run.sample_rate_hz == 0.5
    assert np.isnan(run.sensor("pump_flow")[4])
    assert report.runs[0].duration_s == 14.0


def test_one_parquet_file_with_a_run_column_gives_a_run_file_per_run(
    tmp_path: Path, press: SystemSpec
) -> None:
    file = tmp_path / "all.parquet"
    pq.write_table(
        pa.table(
            {
                "unit": pa.array([7, 3, 7, 3, 7, 3], pa.int64()),
                "t": [0.0, 0.0, 1.0, 1.0, 2.0, 2.0],
                "pump_flow": [1.0, 10.0, 2.0, 20.0, 3.0, 30.0],
            }
        ),
        file,
    )

    report = import_runs(
        _options(
            press,
            [file],
            tmp_path / "out",
            table=TableOptions(time_column="t", rate_hz=1.0, run_column="unit"),
        )
    )

    assert [run.run for run in report.runs] == ["7", "3"]  # order of first appearance
    assert read_run(tmp_path / "out" / "7.parquet").sensor("pump_flow").tolist() == [1, 2, 3]
    assert read_run(tmp_path / "out" / "3.parquet").sensor("pump_flow").tolist() == [10, 20, 30]
    assert report.runs[1].rows == 3
    assert report.runs[0].ignored_columns == []


def test_column_mapping_and_every_report_item(tmp_path: Path, press: SystemSpec) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("pump_flow: Flow (l/min)\nram_position: stroke\n", encoding="utf-8")
    header = [
        "Flow (l/min)",
        "stroke",
        "oil_temp",
        "oil_level",
        "motor_current",
        "pump_flow",
        "note",
    ]
    rows = []
    for step in range(12):
        gap = step in (3, 4, 5, 9)
        flow = None if gap else 30.0 + step
        current = "inf" if step == 2 else 10.0 + step
        rows.append([flow, 5.0, None, 70.0 + step, current, 99.0, "text is fine here"])
    file = _write_csv(tmp_path / "renamed.csv", header, rows, sep=";")

    report = import_runs(
        _options(
            press,
            [file],
            tmp_path / "out",
            table=TableOptions(rate_hz=2.0),
            columns=mapping,
            min_duration_s=None,
        )
    )

    item = report.runs[0]
    sensors = {s.sensor: s for s in item.sensors}
    run = read_run(tmp_path / "out" / "renamed.parquet")
    assert sensors["pump_flow"].column == "Flow (l/min)"  # the mapping wins over the name
    assert run.sensor("pump_flow")[0] == 30.0
    assert (sensors["pump_flow"].gaps, sensors["pump_flow"].longest_gap_s) == (2, 1.5)
    assert sensors["pump_flow"].missing_steps == 4
    assert sensors["ram_position"].constant
    assert item.constant_sensors == ["ram_position"]
    assert sensors["oil_temp"].all_missing
    assert item.all_missing_sensors == ["oil_temp"]
    assert sensors["motor_current"].infinite_values == 1
    assert np.isnan(run.sensor("motor_current")[2])
    assert item.missing_sensors == ["pump_pressure", "valve_spool_position", "ram_pressure"]
    assert sensors["pump_pressure"].status == "missing"
    assert np.isnan(run.sensor("pump_pressure")).all()
    assert item.ignored_columns == ["pump_flow", "note"]
    assert (item.duration_s, item.sample_rate_hz, item.steps) == (6.0, 2.0, 12)
    written = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert written["runs"][0]["missing_sensors"] == item.missing_sensors
    assert written["runs"][0]["ignored_columns"] == ["pump_flow", "note"]
    assert written["runs"][0]["sensors"][0]["sensor"] == press.sensor_ids[0]
    assert written["summary"] == {
        "runs": 1,
        "written": 1,
        "dropped": 0,
        "healthy_reference_runs": 1,
        "unused_label_runs": [],
    }


def test_runs_shorter_than_min_duration_are_dropped_and_listed(
    tmp_path: Path, press: SystemSpec
) -> None:
    files = [
        _recording(tmp_path / "long.csv", press, 600.0, 1.0),
        _recording(tmp_path / "short.csv", press, 60.0, 1.0),
    ]
    labels = tmp_path / "labels.csv"
    labels.write_text("run,component,fault\nshort,pump,pump_wear\nghost,pump,pump_wear\n")

    report = import_runs(
        _options(press, files, tmp_path / "out", min_duration_s=120.0, labels=labels)
    )

    short = next(run for run in report.runs if run.run == "short")
    assert short.status == "dropped"
    assert short.duration_s == 60.0
    assert "min-duration" in (short.reason or "")
    assert short.output is None
    assert not (tmp_path / "out" / "short.parquet").exists()
    assert (tmp_path / "out" / "long.parquet").exists()
    assert report.unused_label_runs == ["ghost"]
    # without a minimum, none is dropped; every duration is listed
    again = import_runs(_options(press, files, tmp_path / "all"))
    assert [(run.status, run.duration_s) for run in again.runs] == [
        ("written", 600.0),
        ("written", 60.0),
    ]


def test_files_in_different_folders_are_named_by_their_relative_path(
    tmp_path: Path, press: SystemSpec
) -> None:
    files = [
        _recording(tmp_path / "a" / "0.csv", press, 10.0, 1.0),
        _recording(tmp_path / "b" / "0.csv", press, 10.0, 1.0),
    ]

    ticks: list[tuple[str, int, int]] = []

    report = import_runs(
        _options(press, files, tmp_path / "out"),
        progress=lambda stage, done, total: ticks.append((stage, done, total)),
    )

    assert [run.run for run in report.runs] == ["a-0", "b-0"]
    assert ticks[0] == ("reading", 0, 2)
    assert ("reading", 2, 2) in ticks
    assert ticks[-1] == ("writing", 2, 2)
    assert read_run(tmp_path / "out" / "b-0.parquet").run_id == "b-0"


def _error(tmp_path: Path, options: ImportOptions) -> str:
    with pytest.raises(RecordingError) as caught:
        import_runs(options)
    assert not options.out_dir.exists()  # nothing written
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_errors_name_the_file_column_and_row(tmp_path: Path, press: SystemSpec) -> None:
    out = tmp_path / "out"
    good = _recording(tmp_path / "good.csv", press, 10.0, 1.0)
    bad_time = _write_csv(
        tmp_path / "bad_time.csv", ["t", "pump_flow"], [["2024-01-01T00:00:00", 1], ["soon", 2]]
    )
    bad_value = _write_csv(tmp_path / "bad_value.csv", ["t", "pump_flow"], [[0, 1], [1, "high"]])
    mapping = tmp_path / "map.yaml"

    message = _error(tmp_path, _options(press, [good, bad_time], out))
    assert (
        message == f"{bad_time}, column 't', row 2: bad time 'soon': expected seconds or ISO 8601"
    )
    message = _error(tmp_path, _options(press, [bad_value], out))
    assert message == f"{bad_value}, column 'pump_flow', row 2: 'high' is not a number"
    message = _error(tmp_path, _options(press, [good], out, table=TableOptions(time_column="ts")))
    assert message.startswith(f"{good}, column 'ts': no such column; the file's columns are: t,")
    mapping.write_text("pump_flw: Flow\n")
    message = _error(tmp_path, _options(press, [good], out, columns=mapping))
    assert message.startswith(f"{mapping}: unknown sensor 'pump_flw'; the machine's sensors are:")
    mapping.write_text("pump_flow: Flow\n")
    message = _error(tmp_path, _options(press, [good], out, columns=mapping))
    assert message.startswith(
        f"{good}, column 'Flow': no such column (mapped to sensor 'pump_flow'"
    )


def test_bad_label_rows_name_the_line(tmp_path: Path, press: SystemSpec) -> None:
    out = tmp_path / "out"
    good = _recording(tmp_path / "good.csv", press, 10.0, 1.0)
    labels = tmp_path / "labels.csv"
    cases = {
        "run,component,fault\ngood,pump,ram_seal_leak\n": f"{labels}, line 2: fault "
        "'ram_seal_leak' is not a fault mode of component 'pump'",
        "run,component,fault\ngood,pumpp,pump_wear\n": f"{labels}, line 2: unknown component",
        "run,component,fault,start_s,end_s\ngood,ram,ram_seal_leak,0,5\n"
        "good,ram,ram_seal_leak,4,8\n": f"{labels}, line 2, 3: run 'good': component 'ram' "
        "has overlapping label intervals",
        "run,component,severity\ngood,pump,0.5\n": f"{labels}, line 2: fault is required",
        "run,component,fault,severity\ngood,pump,pump_wear,2\n": f"{labels}, line 2: severity",
        "run,component,fault,onset\ngood,pump,pump_wear,3\n": f"{labels}: unknown column 'onset'",
        "run,component,fault,start_s\ngood,pump,pump_wear,soon\n": f"{labels}, line 2, "
        "column 'start_s': 'soon' is not a number",
    }
    for text, expected in cases.items():
        labels.write_text(text)
        assert _error(tmp_path, _options(press, [good], out, labels=labels)).startswith(expected)


def test_a_run_in_two_files_is_refused(tmp_path: Path, press: SystemSpec) -> None:
    rows = [["r1", 0, 1.0]]
    first = _write_csv(tmp_path / "x.csv", ["run", "t", "pump_flow"], rows)
    second = _write_csv(tmp_path / "y.csv", ["run", "t", "pump_flow"], rows)
    table = TableOptions(time_column="t", rate_hz=1.0, run_column="run")

    message = _error(tmp_path, _options(press, [first, second], tmp_path / "out", table=table))

    assert message == f"{second}, column 'run': run 'r1' is also in {first}; run ids must be unique"


def test_the_labels_table_example_is_valid_csv() -> None:
    rows = list(csv.DictReader(io.StringIO(_doc_label_table())))
    assert {row["run"] for row in rows} == {f"press-0{n}" for n in range(3, 9)}
