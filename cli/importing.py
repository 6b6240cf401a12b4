"""``gnn-service import``: recorded runs + the machine's spec + a labels table -> run files.

A thin command over :func:`training.data.importer.import_runs`: it resolves the options,
shows a progress bar on a terminal, and prints what was kept, dropped and why (the same as
``import-report.json``, shorter). Bad input ends it with one line on stderr: exit status 2
for a bad option, 1 for a file that cannot be imported (the line names the file, and the
column and row where there is one). docs/byom.md walks through it.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from training.data.import_report import REPORT_NAME, ImportReport, RunReport

if TYPE_CHECKING:
    from schemas import SystemSpec
    from training.data.importer import ImportProgress

_SPEC_SUFFIXES = (".yaml", ".yml", ".json")


class RunFileFormat(enum.StrEnum):
    """Format of the run files written."""

    PARQUET = "parquet"
    CSV = "csv"


_NAMED = 12  # runs named on one line; the import report lists every one


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def _errors_as_lines() -> Iterator[None]:
    from machines import RunFormatError
    from service.errors import ConfigurationError

    try:
        yield
    except (ConfigurationError, RunFormatError, OSError) as exc:
        _fail(str(exc))


def _spec(text: str) -> SystemSpec:
    from machines import UnknownMachineError, builtin_spec
    from schemas import SpecError, load_spec

    try:
        if text.lower().endswith(_SPEC_SUFFIXES):
            return load_spec(text)
        return builtin_spec(text)
    except SpecError as exc:
        _fail(f"--spec: {'; '.join(str(exc).splitlines())}", 2)
    except UnknownMachineError as exc:
        _fail(f"--spec: {exc}", 2)


def import_runs(
    recordings: Annotated[
        list[Path],
        typer.Argument(help="Recordings: .csv or .parquet files, one run each or a --run-column."),
    ],
    spec: Annotated[
        str, typer.Option("--spec", help="The machine: a .yaml/.json spec file or a built-in name.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the run files and import-report.json.")
    ],
    labels: Annotated[
        Path | None,
        typer.Option(help="Labels table (CSV, docs/data-format.md); without: every run healthy."),
    ] = None,
    columns: Annotated[
        Path | None,
        typer.Option(help="YAML mapping 'sensor_id: column' for columns not named like sensors."),
    ] = None,
    time_column: Annotated[
        str | None, typer.Option(help="Column of times: seconds or ISO 8601 (UTC if no offset).")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Sample rate, Hz: of the rows without --time-column; "
            "else the grid to resample to (default: inferred from the times).",
        ),
    ] = None,
    run_column: Annotated[
        str | None, typer.Option(help="Column of run ids, for files holding several runs.")
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option(help="CSV delimiter (default: guessed from the header line).")
    ] = None,
    min_duration: Annotated[
        str | None, typer.Option(help="Drop runs shorter than this (90s, 10m, 2h); default none.")
    ] = None,
    file_format: Annotated[
        RunFileFormat, typer.Option("--format", help="Run file format.")
    ] = RunFileFormat.PARQUET,
) -> None:
    """Turn recorded runs into run files: readings on a fixed-rate grid, labels from a table
    (unknown ones left unknown), and a report of what was kept, dropped and why."""
    from machines import DurationError, parse_duration
    from training.data.importer import ImportOptions
    from training.data.importer import import_runs as run_import
    from training.data.recordings import TableOptions

    if time_column is None and rate is None:
        _fail("give --time-column (times in the files) or --rate (rows evenly spaced)", 2)
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        _fail(f"--rate must be a positive number of Hz, got {rate:g}", 2)
    if delimiter is not None and len(delimiter) != 1:
        _fail(f"--delimiter must be one character, got {delimiter!r}", 2)
    minimum = None
    if min_duration is not None:
        try:
            minimum = parse_duration(min_duration)
        except DurationError as exc:
            _fail(f"--min-duration: {exc}", 2)
    options = ImportOptions(
        spec=_spec(spec),
        recordings=recordings,
        out_dir=out,
        table=TableOptions(
            time_column=time_column, rate_hz=rate, run_column=run_column, delimiter=delimiter
        ),
        labels=labels,
        columns=columns,
        min_duration_s=minimum,
        file_format=file_format.value,
    )
    with _errors_as_lines(), _progress() as tick:
        report = run_import(options, progress=tick)
    print_report(report, Console(highlight=False, soft_wrap=True))


@contextmanager
def _progress() -> Iterator[ImportProgress | None]:
    """A progress bar per stage on a terminal's stderr; nothing elsewhere (no stray lines)."""
    from cli.progress import stage_bars

    if not Console(stderr=True).is_terminal:
        yield None
        return
    with stage_bars("") as (tick, _):
        yield tick


def print_report(report: ImportReport, console: Console) -> None:
    """A table of the runs, then what each lacks or ignores, then the totals."""
    table = Table(title=f"import of {len(report.runs)} run(s) of {report.system}")
    table.add_column("run", overflow="fold")
    table.add_column("status")
    for column in ("seconds", "Hz", "steps", "empty", "missing"):
        table.add_column(column, justify="right")
    table.add_column("labels")
    for run in report.runs:
        table.add_row(
            run.run,
            run.status,
            f"{run.duration_s:g}",
            f"{run.sample_rate_hz:g}{'*' if run.rate_inferred else ''}",
            str(run.steps),
            str(run.empty_steps),
            _missing_share(run),
            _labels(run),
        )
    console.print(table)
    if any(run.rate_inferred for run in report.runs):
        console.print("* rate inferred from the times (median interval)", markup=False)
    for run in report.runs:
        for line in _details(run):
            console.print(f"{run.run}: {line}", markup=False)
    if report.unused_label_runs:
        from training.validation_split import first_names

        unused = report.unused_label_runs
        console.print(
            f"labels table names {len(unused)} run(s) not imported (ignored): "
            + first_names(unused, _NAMED, rest=" (all in the report)"),
            markup=False,
        )
    console.print(
        f"wrote {len(report.written)} run file(s) to {report.out_dir}, dropped "
        f"{len(report.dropped)}; details in {Path(report.out_dir) / REPORT_NAME}",
        markup=False,
    )


def _missing_share(run: RunReport) -> str:
    """Share of the kept sensors' steps without a value."""
    kept = [item for item in run.sensors if item.column]
    steps = sum(item.missing_steps for item in kept)
    return f"{steps / max(len(kept) * run.steps, 1):.1%}"


def _labels(run: RunReport) -> str:
    if run.labels.healthy_reference:
        return "healthy reference"
    kinds = sorted({str(row["kind"]).replace("_", " ") for row in run.labels.rows})
    return f"{len(run.labels.rows)} {'/'.join(kinds)}"


def _details(run: RunReport) -> list[str]:
    lines = []
    if run.reason:
        lines.append(f"dropped: {run.reason}")
    if run.missing_sensors:
        lines.append(f"no column for sensors (all missing): {', '.join(run.missing_sensors)}")
    if run.ignored_columns:
        lines.append(f"ignored columns (not in the spec): {', '.join(run.ignored_columns)}")
    if run.all_missing_sensors:
        lines.append(f"columns without a value: {', '.join(run.all_missing_sensors)}")
    if run.constant_sensors:
        lines.append(f"constant sensors: {', '.join(run.constant_sensors)}")
    gappy = [item for item in run.sensors if item.gaps and item.column and not item.all_missing]
    if gappy:
        worst = max(gappy, key=lambda item: item.longest_gap_s)
        lines.append(
            f"gaps in {len(gappy)} sensor(s), up to {max(item.gaps for item in gappy)} in one, "
            f"longest {worst.longest_gap_s:g} s ({worst.sensor})"
        )
    infinite = sum(item.infinite_values for item in run.sensors)
    if infinite:
        lines.append(f"{infinite} infinite value(s) read as missing")
    lines += run.labels.notes
    return lines
