"""``gnn-service import``: options, the printed report, and one-line errors with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from cli.importing import import_runs
from machines import read_run

PRESS = Path(__file__).resolve().parents[3] / "docs" / "examples" / "hydraulic_press.yaml"


def _app() -> typer.Typer:
    """The command mounted as the root CLI mounts it: ``app.command("import")(import_runs)``."""
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        pass

    app.command("import")(import_runs)
    return app


def _invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(_app(), ["import", *(str(arg) for arg in args)])


def _one_error_line(result: Result, status: int) -> str:
    assert result.exit_code == status, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0].removeprefix("error: ")


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec" / "run-1.csv"
    path.parent.mkdir()
    rows = ["time,pump_flow,oil_temp,extra"]
    rows += [f"2024-01-01T00:00:{s:02d},{30 + s},{40},x" for s in range(0, 40) if s not in (7, 8)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_import_writes_run_files_and_prints_what_it_kept_and_dropped(
    tmp_path: Path, recording: Path
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("run,component,fault,start_s,end_s\nrun-1,pump,pump_wear,20,\n")
    out = tmp_path / "out"

    result = _invoke(
        recording,
        "--spec",
        PRESS,
        "--labels",
        labels,
        "--time-column",
        "time",
        "--out",
        out,
        "--format",
        "csv",
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # no progress bar off a terminal
    run = read_run(out / "run-1.csv")
    assert run.steps == 40
    assert run.fault_labels[25, run.spec.component_index["pump"]] == "pump_wear"
    assert "run-1: ignored columns (not in the spec): extra" in result.stdout
    assert (
        "run-1: no column for sensors (all missing): motor_current, pump_pressure" in result.stdout
    )
    assert "run-1: constant sensors: oil_temp" in result.stdout
    assert "gaps in 2 sensor(s), up to 1 in one, longest 2 s" in result.stdout
    assert f"wrote 1 run file(s) to {out}, dropped 0" in " ".join(result.stdout.split())
    report = json.loads((out / "import-report.json").read_text())
    assert report["runs"][0]["output"] == str(out / "run-1.csv")


def test_min_duration_drops_short_runs_and_says_why(tmp_path: Path, recording: Path) -> None:
    result = _invoke(
        recording,
        "--spec",
        PRESS,
        "--time-column",
        "time",
        "--min-duration",
        "1m",
        "--out",
        tmp_path / "out",
    )

    assert result.exit_code == 0, result.output
    assert "run-1: dropped: shorter than --min-duration (40 s < 60 s)" in result.stdout
    assert not (tmp_path / "out" / "run-1.parquet").exists()


def test_a_missing_column_is_one_line(tmp_path: Path, recording: Path) -> None:
    result = _invoke(recording, "--spec", PRESS, "--time-column", "t", "--out", tmp_path / "o")

    line = _one_error_line(result, 1)
    assert line.startswith(f"{recording}, column 't': no such column; the file's columns are:")


def test_an_unknown_sensor_in_the_mapping_is_one_line(tmp_path: Path, recording: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text("flow: pump_flow\n")

    result = _invoke(
        recording,
        "--spec",
        PRESS,
        "--columns",
        mapping,
        "--time-column",
        "time",
        "--out",
        tmp_path / "o",
    )

    line = _one_error_line(result, 1)
    assert line.startswith(f"{mapping}: unknown sensor 'flow'; the machine's sensors are:")


def test_a_bad_timestamp_is_one_line_naming_the_row(tmp_path: Path, recording: Path) -> None:
    text = recording.read_text().replace("2024-01-01T00:00:05", "2024-01-01 soon")
    recording.write_text(text)

    result = _invoke(recording, "--spec", PRESS, "--time-column", "time", "--out", tmp_path / "o")

    line = _one_error_line(result, 1)
    assert line == (
        f"{recording}, column 'time', row 6: bad time '2024-01-01 soon': expected seconds or "
        "ISO 8601"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ((), "give --time-column (times in the files) or --rate (rows evenly spaced)"),
        (("--rate", "0"), "--rate must be a positive number of Hz, got 0"),
        (("--rate", "1", "--min-duration", "soon"), "--min-duration: "),
        (("--rate", "1", "--delimiter", ";;"), "--delimiter must be one character"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(
    tmp_path: Path, recording: Path, options: tuple[str, ...], expected: str
) -> None:
    result = _invoke(recording, "--spec", PRESS, "--out", tmp_path / "o", *options)

    assert _one_error_line(result, 2).startswith(expected)


def test_a_bad_spec_is_one_line_and_exit_2(tmp_path: Path, recording: Path) -> None:
    spec = tmp_path / "machine.yaml"
    spec.write_text("name: [unclosed\n")

    for value, expected in ((spec, f"--spec: {spec}: invalid YAML"), ("no_such", "--spec: ")):
        result = _invoke(recording, "--spec", value, "--rate", "1", "--out", tmp_path / "o")
        assert _one_error_line(result, 2).startswith(expected)
