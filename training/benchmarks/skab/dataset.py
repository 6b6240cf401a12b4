"""SKAB (Skoltech Anomaly Benchmark): the pump rig's recordings, its topology and its split.

The rig is a water-circulation loop: an electric motor drives a centrifugal pump through a
shaft; the pump pushes water round a loop with valves and a tank. Eight sensors at 1 Hz sit
on three components (motor, pump bearing, hydraulic loop). Each experiment file holds one
anomaly (a valve closing, a leak, a rotor imbalance, cavitation, ...); the published
protocol (../shared/data/README.md) trains on the first rows of each file, assumed normal,
and scores every later row. This module reads the files, checks their header, splits them,
and describes the rig as a :class:`~schemas.spec.SystemSpec` whose normal ranges are
calibrated on rows of the caller's choosing (a file's training prefix, or anomaly-free data).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import yaml

from schemas.spec import SystemSpec, parse_spec

FloatArray = npt.NDArray[np.float64]

SENSOR_COLUMNS: Final = (
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
)
"""The sensor columns, in file order (also the spec's sensor order)."""

LABEL_COLUMNS: Final = ("anomaly", "changepoint")
"""Label columns of an experiment file (absent from the anomaly-free file)."""

EXPERIMENT_HEADER: Final = ("datetime", *SENSOR_COLUMNS, *LABEL_COLUMNS)
ANOMALY_FREE_HEADER: Final = ("datetime", *SENSOR_COLUMNS)

EXPERIMENTS: Final = (
    *(f"valve1/{i}" for i in range(16)),
    *(f"valve2/{i}" for i in range(4)),
    *(f"other/{i}" for i in range(1, 15)),
)
"""The 34 experiment files of the protocol, as ``folder/number`` without ``.csv``."""

ANOMALY_FREE: Final = "anomaly-free/anomaly-free"
"""The recording of normal operation only."""

# column -> (sensor id, component, kind, unit); kinds and units from schemas.vocabulary.
_SENSORS: Final = {
    "Current": ("motor_current", "motor", "current", "A"),
    "Voltage": ("motor_voltage", "motor", "voltage", "V"),
    "Temperature": ("motor_temperature", "motor", "temperature", "degC"),
    "Accelerometer1RMS": ("pump_vibration_1", "pump", "vibration", "g"),
    "Accelerometer2RMS": ("pump_vibration_2", "pump", "vibration", "g"),
    "Pressure": ("loop_pressure", "hydraulic_loop", "pressure", "bar"),
    "Volume Flow RateRMS": ("loop_flow", "hydraulic_loop", "flow", "l/min"),
    "Thermocouple": ("fluid_temperature", "hydraulic_loop", "temperature", "degC"),
}

_NORMAL_STDS: Final = 3.0  # normal range: mean +- 3 standard deviations of the calibration rows
_CRITICAL_STDS: Final = 10.0
_MIN_HALF_WIDTH: Final = 1e-6


@dataclass(frozen=True, eq=False, repr=False)
class Recording:
    """One SKAB file.

    Attributes:
        name: ``folder/number`` (``valve1/3``) or ``anomaly-free/anomaly-free``.
        path: The file read.
        values: Sensor readings in :data:`SENSOR_COLUMNS` order.
        labels: The ``anomaly`` column (1 = anomalous row); ``None`` for the anomaly-free file.

    Shapes:
        values: ``[R, 8]`` float64; labels: ``[R]`` int64.
    """

    name: str
    path: Path
    values: FloatArray
    labels: npt.NDArray[np.int64] | None

    @property
    def rows(self) -> int:
        """Number of rows R."""
        return int(self.values.shape[0])

    def __repr__(self) -> str:
        labelled = "unlabelled" if self.labels is None else f"{int(self.labels.sum())} anomalous"
        return f"{type(self).__name__}(name={self.name!r}, rows={self.rows}, {labelled})"


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """An experiment cut at ``train_rows``: the training prefix and the test rest.

    Attributes:
        recording: The whole file.
        train_rows: Rows ``[0, train_rows)`` are training data; the rest is test.

    Shapes:
        train: ``[train_rows, 8]``; test: ``[R - train_rows, 8]``;
        test_labels: ``[R - train_rows]``.
    """

    recording: Recording
    train_rows: int

    @property
    def train(self) -> FloatArray:
        """Readings of the training prefix (labels deliberately not offered)."""
        return self.recording.values[: self.train_rows]

    @property
    def test(self) -> FloatArray:
        """Readings of the test rows."""
        return self.recording.values[self.train_rows :]

    @property
    def test_labels(self) -> npt.NDArray[np.int64]:
        """Point labels of the test rows."""
        labels = self.recording.labels
        if labels is None:
            raise ValueError(f"{self.recording.path}: no anomaly labels")
        return labels[self.train_rows :]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.recording.name!r}, train_rows={self.train_rows}, "
            f"test_rows={self.recording.rows - self.train_rows})"
        )


def read_recording(path: Path, *, name: str | None = None, labelled: bool = True) -> Recording:
    """Read one SKAB file (``;``-separated, header first).

    Args:
        path: The file.
        name: Name to give it (default: ``parent/stem``).
        labelled: Expect the ``anomaly`` and ``changepoint`` columns (experiment files);
            ``False`` for the anomaly-free file.

    Returns:
        The recording.

    Raises:
        ValueError: The file is missing or empty, its header is not the expected one, or a
            cell is not a number; the message names the file, and the row and column.

    Shapes:
        returned values: ``[R, 8]``.
    """
    expected = EXPERIMENT_HEADER if labelled else ANOMALY_FREE_HEADER
    if not path.is_file():
        raise ValueError(f"{path}: SKAB file not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected header {';'.join(expected)}")
        if tuple(cell.strip() for cell in header) != expected:
            missing = [column for column in expected if column not in header]
            detail = f" (missing: {', '.join(missing)})" if missing else ""
            raise ValueError(
                f"{path}: header is {';'.join(header)!r}, expected {';'.join(expected)!r}{detail}"
            )
        rows = [row[1:] for row in reader if row]
    if not rows:
        raise ValueError(f"{path}: no data rows")
    width = len(expected) - 1
    table = np.empty((len(rows), width))
    for index, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(
                f"{path}: row {index + 2} has {len(row) + 1} fields, expected {width + 1}"
            )
        for column, cell in enumerate(row):
            try:
                table[index, column] = float(cell)
            except ValueError:
                raise ValueError(
                    f"{path}: row {index + 2}, column {expected[column + 1]!r}: "
                    f"{cell!r} is not a number"
                ) from None
    values = table[:, : len(SENSOR_COLUMNS)]
    labels = table[:, len(SENSOR_COLUMNS)].astype(np.int64) if labelled else None
    return Recording(
        name=name or f"{path.parent.name}/{path.stem}", path=path, values=values, labels=labels
    )


def read_experiments(data_dir: Path, names: Sequence[str] = EXPERIMENTS) -> list[Recording]:
    """Read experiment files by name (``valve1/0``) from a SKAB data directory.

    Raises:
        ValueError: A file is missing or malformed (see :func:`read_recording`).
    """
    return [read_recording(data_dir / f"{name}.csv", name=name) for name in names]


def read_anomaly_free(data_dir: Path) -> Recording:
    """Read ``anomaly-free/anomaly-free.csv``.

    Raises:
        ValueError: The file is missing or malformed.
    """
    return read_recording(data_dir / f"{ANOMALY_FREE}.csv", name=ANOMALY_FREE, labelled=False)


def split(recording: Recording, train_rows: int) -> Split:
    """Cut an experiment into its training prefix and test rest.

    Raises:
        ValueError: ``train_rows`` leaves no training or no test row.
    """
    if not 1 <= train_rows < recording.rows:
        raise ValueError(
            f"{recording.path}: --train-rows {train_rows} must be in [1, {recording.rows - 1}] "
            f"(the file has {recording.rows} rows)"
        )
    return Split(recording, train_rows)


def rig_spec(name: str, calibration: FloatArray, *, description: str | None = None) -> SystemSpec:
    """The pump rig as a spec, each sensor's normal range fitted on ``calibration`` rows.

    Normal range: mean +- 3 standard deviations of the rows; critical range: +- 10. Only
    ``calibration`` is read, so passing a file's training prefix keeps its test rows out.

    Args:
        name: Machine name (letters, digits, ``_`` and ``-``).
        calibration: Rows of normal operation in :data:`SENSOR_COLUMNS` order.
        description: What the spec was calibrated on, for people.

    Returns:
        The validated spec.

    Raises:
        ValueError: No finite calibration row for some sensor.

    Shapes:
        calibration: ``[R, 8]``.
    """
    data = np.asarray(calibration, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(SENSOR_COLUMNS):
        raise ValueError(f"calibration rows must be [R, {len(SENSOR_COLUMNS)}], got {data.shape}")
    sensors: list[dict[str, Any]] = []
    for column, series in zip(SENSOR_COLUMNS, data.T, strict=True):
        finite = series[np.isfinite(series)]
        if finite.size == 0:
            raise ValueError(f"{name}: no finite calibration value for {column!r}")
        mean = float(finite.mean())
        std = max(float(finite.std()), _MIN_HALF_WIDTH * max(1.0, abs(mean)))
        sensor_id, component, kind, unit = _SENSORS[column]
        sensors.append(
            {
                "id": sensor_id,
                "component": component,
                "kind": kind,
                "unit": unit,
                "sample_rate_hz": 1.0,
                "normal": [_round(mean - _NORMAL_STDS * std), _round(mean + _NORMAL_STDS * std)],
                "critical": [
                    _round(mean - _CRITICAL_STDS * std),
                    _round(mean + _CRITICAL_STDS * std),
                ],
                "description": f"SKAB column {column!r}",
            }
        )
    document = {
        "schema_version": 1,
        "name": name,
        "description": description
        or "SKAB pump rig: motor, centrifugal pump, water loop (Katser & Kozitsin 2020).",
        "components": [
            {"id": "motor", "type": "electric_motor", "description": "Pump drive motor"},
            {"id": "pump", "type": "centrifugal_pump", "description": "Pump and its bearing"},
            {
                "id": "hydraulic_loop",
                "type": "water_loop",
                "description": "Circulation loop: valves, tank, piping",
            },
        ],
        "sensors": sensors,
        "connections": [
            {"source": "motor", "target": "pump", "type": "mechanical_shaft"},
            {"source": "pump", "target": "hydraulic_loop", "type": "hydraulic_line"},
        ],
    }
    return parse_spec(document)


def spec_yaml(spec: SystemSpec) -> str:
    """The spec as a YAML document that :func:`~schemas.spec.load_spec` reads back."""
    data = spec.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _round(value: float) -> float:
    """Six significant digits: readable YAML, well below the sensors' resolution."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.6g}")
