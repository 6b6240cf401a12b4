"""Recorded runs + the machine's spec + a labels table -> run files (``gnn-service import``).

Each recording (:mod:`training.data.recordings`) has its columns matched to the spec's
sensors (a column named like the sensor, or the one a column mapping names), its samples
put on the run's fixed-rate grid (:mod:`training.data.grid`) and its labels made from the
labels table (:mod:`training.data.label_table`, :func:`machines.labels.recorded_labels`);
it is then written as a run file (docs/data-format.md) named after its run id. Every run is
read and checked before the first file is written, so bad input writes nothing. The report
(:mod:`training.data.import_report`) lists what was kept, dropped and why.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Literal

import numpy as np
import yaml

from machines.labels import UNKNOWN_FAULT_CODE, LabelError, RecordedLabel, recorded_labels
from machines.run import Run
from machines.run_io import write_run
from schemas import SystemSpec
from training.data.grid import Grid, GridError, gaps, is_constant, to_grid
from training.data.import_report import (
    REPORT_NAME,
    ImportReport,
    LabelSummary,
    RunReport,
    SensorReport,
)
from training.data.label_table import LabelRow, LabelTable, read_label_table
from training.data.recordings import (
    Recording,
    RecordingError,
    TableOptions,
    file_run_ids,
    read_file,
    where,
)

FileFormat = Literal["parquet", "csv"]
ImportProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stages ``reading`` (files) and ``writing`` (runs)."""

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ImportOptions:
    """What to import and how.

    Attributes:
        spec: The machine.
        recordings: The files.
        out_dir: Folder for the run files and the report.
        table: How to read the files (times, rate, run column, delimiter).
        labels: The labels table; None: every run is a healthy reference.
        columns: A YAML mapping ``sensor_id: column`` for columns not named like sensors.
        min_duration_s: Runs shorter than this are dropped (None: none is).
        file_format: ``parquet`` or ``csv``.
    """

    spec: SystemSpec
    recordings: Sequence[Path]
    out_dir: Path
    table: TableOptions
    labels: Path | None = None
    columns: Path | None = None
    min_duration_s: float | None = None
    file_format: FileFormat = "parquet"


def read_column_map(path: Path, spec: SystemSpec) -> dict[str, str]:
    """A YAML mapping of sensor ids to column names.

    Raises:
        RecordingError: Unreadable, not a mapping, an unknown sensor, or a column named twice.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RecordingError(f"{path}: cannot read the column mapping: {exc}") from None
    if not isinstance(document, Mapping):
        raise RecordingError(f"{path}: expected a mapping 'sensor_id: column name'")
    mapping: dict[str, str] = {}
    for sensor, column in document.items():
        if sensor not in spec.sensor_index:
            raise RecordingError(
                f"{path}: unknown sensor {sensor!r}; the machine's sensors are: "
                f"{', '.join(spec.sensor_ids)}"
            )
        if not isinstance(column, str | int | float) or isinstance(column, bool):
            raise RecordingError(f"{path}: sensor {sensor!r}: expected a column name")
        if str(column) in mapping.values():
            raise RecordingError(f"{path}: column {str(column)!r} is mapped to two sensors")
        mapping[str(sensor)] = str(column)
    return mapping


@dataclass(frozen=True, eq=False)
class _Prepared:
    run: Run
    report: RunReport


def import_runs(options: ImportOptions, *, progress: ImportProgress | None = None) -> ImportReport:
    """Import every recording; write the run files and ``import-report.json``.

    Returns:
        The report (also written to ``options.out_dir``).

    Raises:
        RecordingError: Bad input, naming the file, and the column and row where there is
            one; nothing is written then.
    """
    spec = options.spec
    mapping = read_column_map(options.columns, spec) if options.columns else {}
    table = read_label_table(options.labels, spec) if options.labels else None
    tick = progress or (lambda stage, done, total: None)
    prepared: list[_Prepared] = []
    seen: dict[str, Path] = {}
    names = file_run_ids(options.recordings)
    for done, (path, name) in enumerate(zip(options.recordings, names, strict=True)):
        tick("reading", done, len(names))
        for recording in read_file(path, name, options.table):
            if recording.run_id in seen:
                raise RecordingError(
                    f"{where(path, options.table.run_column)}: run {recording.run_id!r} is also "
                    f"in {seen[recording.run_id]}; run ids must be unique"
                )
            seen[recording.run_id] = path
            prepared.append(_prepare(recording, options, mapping, table))
    tick("reading", len(names), len(names))
    outputs = _output_paths([item.run for item in prepared], options)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    reports = []
    for done, item in enumerate(prepared):
        tick("writing", done, len(prepared))
        output = outputs.get(item.run.run_id or "")
        if output is not None:
            write_run(item.run, output)
            reports.append(replace(item.report, output=str(output)))
        else:
            reports.append(item.report)
    tick("writing", len(prepared), len(prepared))
    report = ImportReport(
        system=spec.name,
        out_dir=str(options.out_dir),
        file_format=options.file_format,
        min_duration_s=options.min_duration_s,
        labels_file=None if options.labels is None else str(options.labels),
        columns_file=None if options.columns is None else str(options.columns),
        runs=reports,
        unused_label_runs=[run for run in (table.runs if table else ()) if run not in seen],
    )
    report.write(options.out_dir / REPORT_NAME)
    return report


def _output_paths(runs: Sequence[Run], options: ImportOptions) -> dict[str, Path]:
    """Run id -> file to write, for the runs kept; ids that clash as file names are refused."""
    outputs: dict[str, Path] = {}
    owners: dict[str, str] = {}
    for run in runs:
        assert run.run_id is not None
        stem = _UNSAFE.sub("_", run.run_id).lstrip(".") or "run"
        if stem in owners:
            raise RecordingError(
                f"runs {owners[stem]!r} and {run.run_id!r} would both be written as "
                f"{stem}.{options.file_format}; rename one"
            )
        owners[stem] = run.run_id
        if not _too_short(run, options):
            outputs[run.run_id] = options.out_dir / f"{stem}.{options.file_format}"
    return outputs


def _duration_s(steps: int, rate_hz: float) -> float:
    return steps / rate_hz


def _too_short(run: Run, options: ImportOptions) -> bool:
    minimum = options.min_duration_s
    return minimum is not None and _duration_s(run.steps, run.sample_rate_hz) < minimum


def _prepare(
    recording: Recording,
    options: ImportOptions,
    mapping: Mapping[str, str],
    table: LabelTable | None,
) -> _Prepared:
    spec = options.spec
    columns = _sensor_columns(recording, spec, mapping, options.columns)
    used = [sensor for sensor in spec.sensor_ids if columns[sensor] is not None]
    values = np.full((recording.row_count, len(used)), np.nan)
    infinite: dict[str, int] = {}
    for index, sensor in enumerate(used):
        column = columns[sensor]
        assert column is not None
        values[:, index], infinite[sensor] = recording.floats(column)
    try:
        grid = to_grid(recording.elapsed_s, values, options.table.rate_hz)
    except GridError as exc:
        row = None if exc.row is None else int(recording.rows[exc.row])
        raise RecordingError(
            f"{where(recording.path, options.table.time_column, row)}: run "
            f"{recording.run_id!r}: {exc}"
        ) from None
    readings = np.full((grid.steps, len(spec.sensor_ids)), np.nan, dtype=np.float32)
    for index, sensor in enumerate(used):
        readings[:, spec.sensor_index[sensor]] = grid.values[:, index]
    rows = table.for_run(recording.run_id) if table else ()
    labels = tuple(row.label for row in rows)
    try:
        health, codes, rul = recorded_labels(spec, labels, grid.t_s)
    except LabelError as exc:  # checked when the table was read; kept for a direct caller
        raise RecordingError(f"{options.labels}: run {recording.run_id!r}: {exc}") from None
    run = Run(
        spec=spec,
        seed=zlib.crc32(recording.run_id.encode("utf-8")),
        sample_rate_hz=grid.rate_hz,
        start=recording.start,
        faults=(),
        t_s=grid.t_s,
        readings=readings,
        health=health,
        fault_codes=codes,
        rul_hours=rul,
        run_id=recording.run_id,
        labels=labels,
    )
    ignored = [name for name in recording.columns if name not in set(columns.values())]
    report = _run_report(
        recording,
        run,
        grid=grid,
        columns=columns,
        infinite=infinite,
        ignored=ignored,
        rows=rows,
        options=options,
    )
    return _Prepared(run, report)


def _sensor_columns(
    recording: Recording, spec: SystemSpec, mapping: Mapping[str, str], source: Path | None
) -> dict[str, str | None]:
    """Each sensor's column: the mapped one (which must exist), else its own name, else None."""
    columns: dict[str, str | None] = {}
    for sensor in spec.sensor_ids:
        if sensor in mapping:
            column = mapping[sensor]
            if column not in recording.columns:
                raise RecordingError(
                    f"{where(recording.path, column)}: no such column (mapped to sensor "
                    f"{sensor!r} in {source}); the file's columns are: "
                    f"{', '.join(recording.columns)}"
                )
            columns[sensor] = column
        else:
            columns[sensor] = sensor if sensor in recording.columns else None
    return columns


def _run_report(
    recording: Recording,
    run: Run,
    *,
    grid: Grid,
    columns: Mapping[str, str | None],
    infinite: Mapping[str, int],
    ignored: list[str],
    rows: Sequence[LabelRow],
    options: ImportOptions,
) -> RunReport:
    period = 1.0 / grid.rate_hz
    sensors = []
    for sensor in run.sensor_ids:
        values = run.readings[:, run.spec.sensor_index[sensor]].astype(np.float64)
        found = gaps(values)
        sensors.append(
            SensorReport(
                sensor=sensor,
                column=columns[sensor],
                status="kept" if columns[sensor] is not None else "missing",
                missing_steps=found.missing_steps,
                gaps=found.count,
                longest_gap_s=found.longest_steps * period,
                constant=is_constant(values),
                all_missing=found.missing_steps == run.steps,
                infinite_values=infinite.get(sensor, 0),
            )
        )
    duration = _duration_s(run.steps, run.sample_rate_hz)
    short = _too_short(run, options)
    return RunReport(
        run=recording.run_id,
        source=str(recording.path),
        rows=recording.row_count,
        status="dropped" if short else "written",
        reason=f"shorter than --min-duration ({duration:g} s < {options.min_duration_s:g} s)"
        if short
        else None,
        output=None,  # set by import_runs
        start=run.start.isoformat(),
        duration_s=duration,
        sample_rate_hz=grid.rate_hz,
        rate_inferred=grid.rate_inferred,
        steps=run.steps,
        empty_steps=grid.empty_steps,
        merged_rows=grid.merged_rows,
        sensors=sensors,
        ignored_columns=ignored,
        labels=_label_summary(run, rows),
    )


def _label_summary(run: Run, rows: Sequence[LabelRow]) -> LabelSummary:
    end_s = run.steps / run.sample_rate_hz
    notes = [
        f"line {row.line}: starts at {_start(row.label):g} s, after the run's end ({end_s:g} s)"
        for row in rows
        if _start(row.label) >= end_s
    ]
    return LabelSummary(
        rows=[{"line": row.line, "kind": row.label.kind, **row.label.to_json()} for row in rows],
        healthy_reference=not rows,
        faulty_steps=int((run.fault_codes > 0).any(axis=1).sum()),
        unknown_health_steps=int(np.isnan(run.health).any(axis=1).sum()),
        unknown_fault_steps=int((run.fault_codes == UNKNOWN_FAULT_CODE).any(axis=1).sum()),
        unknown_rul_steps=int(np.isnan(run.rul_hours).any(axis=1).sum()),
        notes=notes,
    )


def _start(label: RecordedLabel) -> float:
    return label.start_s or 0.0
