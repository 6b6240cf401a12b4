"""The UCI hydraulic rig as a user's machine: recordings, a spec and a labels table.

The data-set adapter of the product-path benchmark (docs/benchmarks.md): everything after it
is ``gnn-service import``, ``train`` and ``evaluate`` as a user runs them. A recorded run is
a stretch of consecutive cycles in one condition of the four components (194 runs, median 10
cycles of 60 s), so that holding out whole runs holds out whole conditions' stretches, as the
grouped protocol does. The labels table says each run's condition per component (a condition
of the whole run) and, for the oil tank, the intervals in which the rig was not yet stable.
The test runs are one grouped fold (seeded); the spec's normal ranges come from the training
runs' readings only.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import numpy.typing as npt

from training.benchmarks.adapted import (
    LABEL_COLUMNS,
    RUN_COLUMN,
    TIME_COLUMN,
    AdaptedFiles,
    flagged_stretches,
)
from training.benchmarks.hydraulic.dataset import (
    CYCLE_STEPS,
    SAMPLE_RATE_HZ,
    SENSORS,
    TARGETS,
    HydraulicData,
    condition_runs,
    fit_normal_ranges,
    hydraulic_spec,
)
from training.benchmarks.hydraulic.protocol import grouped_folds


def adapt_hydraulic(
    data: HydraulicData, out: Path, *, folds: int = 5, test_fold: int = 0, seed: int = 0
) -> AdaptedFiles:
    """Write the rig's recordings, spec and labels under ``out``.

    Args:
        data: Every cycle (:func:`~training.benchmarks.hydraulic.dataset.load_hydraulic`).
        out: Folder to write into (created).
        folds: Grouped folds of the runs.
        test_fold: The fold held out as test runs.
        seed: Seed of the folds.

    Returns:
        The files and run counts.
    """
    group = condition_runs(data.profile)
    fold = grouped_folds(group, folds, seed)
    test = fold == test_fold
    spec = hydraulic_spec(fit_normal_ranges(data.readings[~test]))
    paths = AdaptedFiles.begin(
        out,
        spec,
        train_runs=len(np.unique(group[~test])),
        test_runs=len(np.unique(group[test])),
    )
    for side, path in ((~test, paths.train), (test, paths.test)):
        _write_recordings(data, group, np.flatnonzero(side), path)
    with paths.labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for run in np.unique(group):
            writer.writerows(_label_rows(data, np.flatnonzero(group == run), _run_id(run)))
    return paths


def _run_id(group: int) -> str:
    return f"run{group:03d}"


def _write_recordings(
    data: HydraulicData,
    group: npt.NDArray[np.int64],
    cycles: npt.NDArray[np.int64],
    path: Path,
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([RUN_COLUMN, TIME_COLUMN, *(sensor.id for sensor in SENSORS)])
        first_cycle: dict[int, int] = {}
        for cycle in cycles.tolist():
            run = int(group[cycle])
            offset = (cycle - first_cycle.setdefault(run, cycle)) * CYCLE_STEPS
            for step in range(CYCLE_STEPS):
                values = (f"{value:.6g}" for value in data.readings[cycle, :, step])
                writer.writerow([_run_id(run), offset + step, *values])


def _label_rows(data: HydraulicData, cycles: npt.NDArray[np.int64], run_id: str) -> list[list[str]]:
    """A row per non-optimal component condition of the run (the whole run), and a row per
    stretch of unstable cycles on the tank (an interval); a run's cycles are consecutive."""
    rows: list[list[str]] = []
    for target in TARGETS:
        labels = data.labels[target.name][cycles]
        if target.name == "stable":
            rows += [
                [run_id, target.component, target.faults[0], f"{start:g}", f"{end:g}"]
                for start, end in _intervals_s(labels)
            ]
        elif labels[0] > 0:
            rows.append([run_id, target.component, target.faults[labels[0] - 1], "", ""])
    return rows


def _intervals_s(labels: npt.NDArray[np.int64]) -> list[tuple[float, float]]:
    """``[start_s, end_s)`` of each stretch of consecutive cycles with a non-zero label."""
    cycle_s = CYCLE_STEPS / SAMPLE_RATE_HZ
    return [(first * cycle_s, end * cycle_s) for first, end in flagged_stretches(labels)]
