"""The labels table of ``gnn-service import``: one CSV row per labelled condition of a run.

Columns (docs/data-format.md, "Labels table"): ``run`` and ``component`` always, then any of
``fault``, ``severity``, ``start_s``, ``end_s``, ``failure_s``; each row becomes a
:class:`machines.labels.RecordedLabel`. A run no row names is a healthy reference.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from machines.labels import LabelError, RecordedLabel, check_label, check_labels
from schemas import SystemSpec
from training.data.recordings import RecordingError

REQUIRED: Final = ("run", "component")
OPTIONAL: Final = ("fault", "severity", "start_s", "end_s", "failure_s")
COLUMNS: Final = (*REQUIRED, *OPTIONAL)
"""Columns a labels table may have."""


@dataclass(frozen=True)
class LabelRow:
    """One row of the table.

    Attributes:
        run: Run id.
        line: Line of the file it is on (the header is line 1).
        label: What it says.
    """

    run: str
    line: int
    label: RecordedLabel


@dataclass(frozen=True)
class LabelTable:
    """A labels table, checked against the machine.

    Attributes:
        path: The file.
        rows: Its rows in file order.
    """

    path: Path
    rows: tuple[LabelRow, ...]

    def for_run(self, run_id: str) -> tuple[LabelRow, ...]:
        """The rows of one run."""
        return tuple(row for row in self.rows if row.run == run_id)

    @property
    def runs(self) -> tuple[str, ...]:
        """Run ids the table names, in order of first appearance."""
        return tuple(dict.fromkeys(row.run for row in self.rows))


def read_label_table(path: Path, spec: SystemSpec) -> LabelTable:
    """Read and check a labels table.

    Raises:
        RecordingError: Unreadable file, unknown or missing columns, a bad value, or rows
            that do not fit the machine or each other (names the file, line and column).
    """
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            _check_header(path, header)
            reader.fieldnames = header
            rows = [_row(path, reader.line_num, record, spec) for record in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordingError(f"{path}: cannot read the labels table: {exc}") from None
    table = LabelTable(path, tuple(rows))
    for run in table.runs:
        check_run_labels(table, run, spec)
    return table


def check_run_labels(table: LabelTable, run: str, spec: SystemSpec) -> None:
    """Check one run's rows together (:func:`machines.labels.check_labels`).

    Raises:
        RecordingError: Names the file, the run and the lines at fault.
    """
    rows = table.for_run(run)
    try:
        check_labels(spec, [row.label for row in rows])
    except LabelError as exc:
        lines = ", ".join(str(rows[index].line) for index in exc.rows)
        raise RecordingError(f"{table.path}, line {lines}: run {run!r}: {exc}") from None


def _check_header(path: Path, header: Sequence[str]) -> None:
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in REQUIRED if name not in header]
    if unknown or missing:
        problem = f"unknown column {unknown[0]!r}" if unknown else f"no column {missing[0]!r}"
        raise RecordingError(
            f"{path}: {problem}; a labels table has the columns {', '.join(REQUIRED)} and "
            f"any of {', '.join(OPTIONAL)}"
        )


def _row(path: Path, line: int, record: Mapping[str, str | None], spec: SystemSpec) -> LabelRow:
    def text(name: str) -> str | None:
        value = record.get(name)
        return value.strip() or None if isinstance(value, str) else None

    def number(name: str) -> float | None:
        value = text(name)
        if value is None:
            return None
        try:
            result = float(value)
        except ValueError:
            raise RecordingError(
                f"{path}, line {line}, column {name!r}: {value!r} is not a number"
            ) from None
        if not math.isfinite(result):
            raise RecordingError(f"{path}, line {line}, column {name!r}: {value!r} is not finite")
        return result

    if record.get(None):  # type: ignore[call-overload]  # DictReader's key for extra fields
        raise RecordingError(f"{path}, line {line}: more fields than the header has columns")
    run, component = text("run"), text("component")
    if run is None or component is None:
        name = "run" if run is None else "component"
        raise RecordingError(f"{path}, line {line}, column {name!r}: empty")
    try:
        label = RecordedLabel(
            component=component,
            fault=text("fault"),
            severity=number("severity"),
            start_s=number("start_s"),
            end_s=number("end_s"),
            failure_s=number("failure_s"),
        )
        check_label(spec, label)
    except ValueError as exc:
        raise RecordingError(f"{path}, line {line}: {exc}") from None
    return LabelRow(run, line, label)
