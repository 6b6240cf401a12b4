"""Recorded runs as read from a user's files: CSV or Parquet, one run per file or a run column.

:func:`read_file` turns a file into :class:`Recording` objects, one per run: its rows'
times (seconds since its first sample) and its columns as float64 arrays, with the row number
of every row in its file so that an error can name it. Nothing here knows the machine; column
mapping and resampling come after (:mod:`training.data.importer`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from service.errors import ConfigurationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SUFFIXES: Final = (".csv", ".parquet")
"""File types read."""

DELIMITERS: Final = (",", ";", "\t", "|")
"""Delimiters a CSV file's header line is searched for, when none is given."""

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class RecordingError(ConfigurationError):
    """A recording, labels table or column mapping cannot be imported as given; the message
    names the file, and the column and row where there is one."""


def where(path: Path, column: str | None = None, row: int | None = None) -> str:
    """``file``, ``file, column 'c'``, ``file, column 'c', row 7``: where a problem is."""
    text = str(path)
    if column is not None:
        text += f", column {column!r}"
    if row is not None:
        text += f", row {row}"
    return text


@dataclass(frozen=True)
class TableOptions:
    """How to read the files.

    Attributes:
        time_column: Column of times: seconds (numbers) or ISO 8601 timestamps (without an
            offset read as UTC). None: rows are ``1 / rate_hz`` apart.
        rate_hz: Sample rate without a time column (required then).
        run_column: Column of run ids; None: each file is one run.
        delimiter: CSV delimiter; None: the one of :data:`DELIMITERS` the header holds most.
    """

    time_column: str | None = None
    rate_hz: float | None = None
    run_column: str | None = None
    delimiter: str | None = None

    def __post_init__(self) -> None:
        if self.time_column is None and self.rate_hz is None:
            raise ValueError("give a time column or a sample rate")
        if self.rate_hz is not None and not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"the sample rate must be a positive number, got {self.rate_hz}")


@dataclass(frozen=True, eq=False, repr=False)
class Recording:
    """One run's rows, in file order.

    Attributes:
        run_id: The run's id.
        path: The file it came from.
        rows: Row number of each row in its file (1 = the first data row).
        elapsed_s: Seconds since the run's earliest sample (None without a time column).
        start: Wall-clock time of the earliest sample (numbers in the time column count
            from the Unix epoch; without a time column: the epoch).
        columns: Every column but the time and run columns, in file order, as read.

    Shapes:
        rows, elapsed_s: ``[R]``.
    """

    run_id: str
    path: Path
    rows: IntArray
    elapsed_s: FloatArray | None
    start: datetime
    columns: dict[str, pa.Array]

    @property
    def row_count(self) -> int:
        """Number of rows R."""
        return int(self.rows.shape[0])

    def floats(self, column: str) -> tuple[FloatArray, int]:
        """A column as float64, null as NaN, with how many values were infinite (now NaN).

        Raises:
            RecordingError: A value is not a number (names the file, column and row).
        """
        values = self.columns[column]
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = _numbers(values, lambda row: where(self.path, column, int(self.rows[row])))
        elif not (
            pa.types.is_integer(values.type)
            or pa.types.is_floating(values.type)
            or pa.types.is_boolean(values.type)
            or pa.types.is_null(values.type)
        ):
            raise RecordingError(
                f"{where(self.path, column)}: holds {values.type} values, not numbers"
            )
        array = np.array(values.cast(pa.float64()).to_numpy(zero_copy_only=False), np.float64)
        infinite = np.isinf(array)
        array[infinite] = np.nan
        return array, int(infinite.sum())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(run_id={self.run_id!r}, path={str(self.path)!r}, "
            f"rows={self.row_count}, columns={len(self.columns)})"
        )


def file_run_ids(paths: Sequence[Path]) -> list[str]:
    """The run id of each file read as one run: its path relative to the folder all the files
    share, without the suffix, ``/`` read as ``-`` (``valve1/0.csv`` and ``valve2/0.csv`` give
    ``valve1-0`` and ``valve2-0``; files of one folder: their names).

    Raises:
        RecordingError: No files.
    """
    if not paths:
        raise RecordingError("no recordings given")
    resolved = [path.absolute() for path in paths]
    common = Path(os.path.commonpath([str(path.parent) for path in resolved]))
    return [str(path.relative_to(common).with_suffix("")).replace(os.sep, "-") for path in resolved]


def read_file(path: Path, name: str, options: TableOptions) -> list[Recording]:
    """A file's runs: one named ``name``, or one per value of the run column (in order of
    first appearance).

    Raises:
        RecordingError: The file cannot be read, lacks the time or run column, has no rows,
            or holds a bad time or an empty run id (names the file, column and row).
    """
    table = read_table(path, options)
    for column in (options.time_column, options.run_column):
        if column is not None and column not in table.column_names:
            raise RecordingError(
                f"{where(path, column)}: no such column; the file's columns are: "
                f"{', '.join(table.column_names)}"
            )
    if table.num_rows == 0:
        raise RecordingError(f"{path}: holds no rows")
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    times = None
    if options.time_column is not None:
        times = _times(table.column(options.time_column).combine_chunks(), path, options)
    data = {
        column: table.column(column).combine_chunks()
        for column in table.column_names
        if column not in (options.time_column, options.run_column)
    }
    if options.run_column is None:
        return [_recording(name, path, rows, times, data)]
    ids = table.column(options.run_column).combine_chunks().cast(pa.string())
    if ids.null_count:
        row = int(np.flatnonzero(ids.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise RecordingError(f"{where(path, options.run_column, row)}: no run id")
    values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    order, inverse = np.unique(values, return_index=True, return_inverse=True)[1:]
    recordings = []
    for group in np.argsort(order, kind="stable"):  # runs in order of first appearance
        chosen = np.flatnonzero(inverse == group)
        if not str(values[chosen[0]]).strip():
            raise RecordingError(f"{where(path, options.run_column, int(chosen[0]) + 1)}: empty")
        taken = pa.array(chosen)
        recordings.append(
            _recording(
                str(values[chosen[0]]),
                path,
                rows[chosen],
                None if times is None else times[chosen],
                {column: array.take(taken) for column, array in data.items()},
            )
        )
    return recordings


def _recording(
    run_id: str,
    path: Path,
    rows: IntArray,
    times: npt.NDArray[Any] | None,
    data: dict[str, pa.Array],
) -> Recording:
    if times is None:
        return Recording(run_id, path, rows, None, EPOCH, data)
    if times.dtype.kind == "M":  # datetime64[ns]: exact integer arithmetic before seconds
        nanoseconds = times.astype(np.int64)
        first = int(nanoseconds.min())
        elapsed = (nanoseconds - first).astype(np.float64) / 1e9
        start = EPOCH + timedelta(microseconds=first // 1000)
    else:
        first_s = float(times.min())
        elapsed = times.astype(np.float64) - first_s
        start = EPOCH + timedelta(seconds=first_s)
    return Recording(run_id, path, rows, elapsed, start, data)


def read_table(path: Path, options: TableOptions) -> pa.Table:
    """A CSV or Parquet file as an Arrow table (the run column read as text).

    Raises:
        RecordingError: The file is missing, of another type, or cannot be parsed.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise RecordingError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        delimiter = options.delimiter or sniff_delimiter(path)
        types = {options.run_column: pa.string()} if options.run_column else {}
        return pa_csv.read_csv(
            path,
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
    except (OSError, pa.ArrowException) as exc:
        raise RecordingError(f"{path}: cannot read: {' '.join(str(exc).split())}") from None


def sniff_delimiter(path: Path) -> str:
    """The delimiter of :data:`DELIMITERS` that the header line holds most (``,`` if none)."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    counts = {delimiter: header.count(delimiter) for delimiter in DELIMITERS}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _times(values: pa.Array, path: Path, options: TableOptions) -> npt.NDArray[Any]:
    """Seconds (float64) or moments (datetime64[ns], UTC) of each row.

    Raises:
        RecordingError: A time is empty, not finite, or neither a number nor ISO 8601.
    """
    column = options.time_column
    assert column is not None

    def fail(row: int, problem: str) -> RecordingError:
        return RecordingError(f"{where(path, column, row + 1)}: {problem}")

    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise fail(row, "empty time")
    kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        try:
            moments = values.cast(pa.timestamp("ns", tz=getattr(kind, "tz", None)))
        except pa.ArrowInvalid as exc:
            raise RecordingError(f"{where(path, column)}: bad time: {exc}") from None
        return np.asarray(moments.cast(pa.int64()).to_numpy(), dtype=np.int64).astype(
            "datetime64[ns]"
        )
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        seconds = np.asarray(values.cast(pa.float64()).to_numpy(), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(seconds))
        if bad.size:
            raise fail(int(bad[0]), f"time {seconds[bad[0]]} is not a finite number of seconds")
        return seconds
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise RecordingError(f"{where(path, column)}: holds {kind} values, not times")
    return _parse_times(values.to_pylist(), fail)


def _parse_times(texts: list[Any], fail: Any) -> npt.NDArray[Any]:
    """Text times, all numbers (seconds) or all ISO 8601 moments, one at a time."""
    try:
        return np.array([float(text) for text in texts], dtype=np.float64)
    except ValueError:
        pass
    moments = np.empty(len(texts), dtype=np.int64)
    for row, text in enumerate(texts):
        try:
            moment = datetime.fromisoformat(str(text).strip())
        except ValueError:
            raise fail(row, f"bad time {text!r}: expected seconds or ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - EPOCH
        moments[row] = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + (
            delta.microseconds * 1000
        )
    return moments.astype("datetime64[ns]")


def _numbers(values: pa.Array, place: Any) -> pa.Array:
    """Text read as numbers; the first that is not one ends the import, naming its row."""
    try:
        return values.cast(pa.float64())
    except pa.ArrowInvalid:
        pass
    for row, text in enumerate(values.to_pylist()):
        if text is None:
            continue
        try:
            float(text)
        except ValueError:
            raise RecordingError(f"{place(row)}: {text!r} is not a number") from None
    return pa.array([None if text is None else float(text) for text in values.to_pylist()])
