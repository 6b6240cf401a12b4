"""The SKAB pump rig as a user's machine: recordings, a spec and a labels table.

The data-set adapter of the product-path benchmark (docs/benchmarks.md): everything after it
is ``gnn-service import``, ``train`` and ``evaluate`` as a user runs them. Each of the 34
experiment files and the anomaly-free recording is a recorded run; the labels table gives, per
experiment, the intervals of its ``anomaly`` column as the fault the experiment stages
(:data:`STAGED`), so a user's supervised route is measured (whole runs held out), not the
published protocol's training prefixes. The test runs are one grouped fold (seeded); the
spec's normal ranges come from the training runs' rows labelled normal only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from schemas.spec import parse_spec
from training.benchmarks.adapted import (
    LABEL_COLUMNS,
    RUN_COLUMN,
    TIME_COLUMN,
    AdaptedFiles,
    flagged_stretches,
)
from training.benchmarks.hydraulic.protocol import grouped_folds
from training.benchmarks.skab.dataset import (
    ANOMALY_FREE,
    EXPERIMENTS,
    Recording,
    read_anomaly_free,
    read_experiments,
    rig_spec,
)

_FAULTS: Final = {
    "inlet_valve_closing": ("hydraulic_loop", ["loop_flow", "loop_pressure"]),
    "outlet_valve_closing": ("hydraulic_loop", ["loop_flow", "loop_pressure"]),
    "fluid_leak": ("hydraulic_loop", ["loop_flow", "loop_pressure"]),
    "water_added": ("hydraulic_loop", ["loop_flow", "loop_pressure"]),
    "hot_water": ("hydraulic_loop", ["fluid_temperature", "loop_flow"]),
    "rotor_imbalance": ("pump", ["pump_vibration_1", "pump_vibration_2", "motor_current"]),
    "cavitation": ("pump", ["pump_vibration_1", "pump_vibration_2", "loop_pressure", "loop_flow"]),
}
"""Fault modes of the rig: id -> (component, affected sensors)."""

_OTHER: Final = {
    **dict.fromkeys(range(1, 5), "fluid_leak"),
    **dict.fromkeys(range(5, 10), "rotor_imbalance"),
    **dict.fromkeys(range(10, 12), "water_added"),
    **dict.fromkeys(range(12, 14), "cavitation"),
    14: "hot_water",
}
"""``other/N`` -> the fault it stages (the data set's README)."""


def staged_fault(name: str) -> str:
    """The fault an experiment (``valve1/3``, ``other/12``) stages."""
    folder, number = name.split("/")
    if folder == "valve1":
        return "inlet_valve_closing"
    if folder == "valve2":
        return "outlet_valve_closing"
    return _OTHER[int(number)]


def adapt_skab(
    data_dir: Path, out: Path, *, folds: int = 5, test_fold: int = 0, seed: int = 0
) -> AdaptedFiles:
    """Write the rig's recordings, spec and labels under ``out``.

    Args:
        data_dir: SKAB's folder (``valve1/``, ``valve2/``, ``other/``, ``anomaly-free/``).
        out: Folder to write into (created).
        folds: Grouped folds of the runs.
        test_fold: The fold held out as test runs.
        seed: Seed of the folds.

    Returns:
        The files and run counts.

    Raises:
        ValueError: A file is missing or malformed.
    """
    runs = [*read_experiments(data_dir, EXPERIMENTS), read_anomaly_free(data_dir)]
    times = [_seconds(data_dir / f"{run.name}.csv") for run in runs]
    # Each run weighs one (the anomaly-free run is eight experiments long).
    test_side = grouped_folds(np.arange(len(runs)), folds, seed) == test_fold
    calibration = np.concatenate(
        [_normal_rows(run) for run, held in zip(runs, test_side, strict=True) if not held]
    )
    document = rig_spec(
        "skab-pump-rig", calibration, description="SKAB pump rig (product-path benchmark)"
    ).model_dump(mode="json", exclude_none=True)
    document["fault_modes"] = [
        {"id": fault, "component": component, "affected_sensors": sensors}
        for fault, (component, sensors) in _FAULTS.items()
    ]
    spec = parse_spec(document)
    paths = AdaptedFiles.begin(
        out, spec, train_runs=int((~test_side).sum()), test_runs=int(test_side.sum())
    )
    sensor_ids = [sensor.id for sensor in spec.sensors]
    for side, path in ((~test_side, paths.train), (test_side, paths.test)):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([RUN_COLUMN, TIME_COLUMN, *sensor_ids])
            for index in np.flatnonzero(side).tolist():
                run, seconds = runs[index], times[index]
                for second, values in zip(seconds.tolist(), run.values, strict=True):
                    writer.writerow([run_id(run.name), second, *(f"{v:.6g}" for v in values)])
    with paths.labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for run, seconds in zip(runs, times, strict=True):
            writer.writerows(_label_rows(run, seconds))
    return paths


def run_id(name: str) -> str:
    """A run's id: ``valve1/3`` -> ``valve1-3``."""
    return "anomaly-free" if name == ANOMALY_FREE else name.replace("/", "-")


def _seconds(path: Path) -> npt.NDArray[np.int64]:
    """Seconds since the first row of each row of a SKAB file (its ``datetime`` column)."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        next(reader)
        stamps = np.asarray([row[0] for row in reader if row], dtype="datetime64[s]")
    seconds: npt.NDArray[np.int64] = (stamps - stamps[0]).astype(np.int64)
    return seconds


def _normal_rows(run: Recording) -> npt.NDArray[np.float64]:
    return run.values if run.labels is None else run.values[run.labels == 0]


def _label_rows(run: Recording, seconds: npt.NDArray[np.int64]) -> list[list[str]]:
    """A row per stretch of anomalous rows: ``[start_s, end_s)``, ``end_s`` one second after
    the stretch's last row."""
    if run.labels is None:
        return []
    fault = staged_fault(run.name)
    component = _FAULTS[fault][0]
    return [
        [run_id(run.name), component, fault, str(int(seconds[a])), str(int(seconds[b - 1]) + 1)]
        for a, b in flagged_stretches(run.labels)
    ]
