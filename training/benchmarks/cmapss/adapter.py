"""NASA C-MAPSS FD001 as a user's machine: recordings, a spec and a labels table.

The data-set adapter of the product-path benchmark (docs/benchmarks.md): everything after it
is ``gnn-service import``, ``train`` and ``evaluate`` as a user runs them. Each engine of
``train_FD001.txt`` is a recorded run to failure. An operating cycle becomes one hour (time
column ``t_s`` = (cycle - 1) x 3600, so the files' rate is 1/3600 Hz and a remaining life in
cycles reads as hours); the labels table gives each engine a run-to-failure row on the
high-pressure compressor with ``failure_s`` at its last cycle (remaining life 0 there) and no
onset (health and fault unknown, remaining life known at every cycle). The test engines are
one grouped fold (seeded); the spec's ranges come from the training engines only.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Final

import numpy as np

from schemas.spec import parse_spec
from training.benchmarks.adapted import RUN_COLUMN, TIME_COLUMN, AdaptedFiles
from training.benchmarks.cmapss.dataset import SENSORS, engine_spec, read_cmapss
from training.benchmarks.hydraulic.protocol import grouped_folds

CYCLE_S: Final = 3600.0
"""Seconds per operating cycle in the adapted recordings: one hour."""

LABEL_COLUMNS: Final = ("run", "component", "fault", "failure_s")


def adapt_cmapss(
    data_dir: Path, out: Path, *, folds: int = 5, test_fold: int = 0, seed: int = 0
) -> AdaptedFiles:
    """Write the engines' recordings, spec and labels under ``out``.

    Args:
        data_dir: Folder holding ``train_FD001.txt``.
        out: Folder to write into (created).
        folds: Grouped folds of the engines.
        test_fold: The fold held out as test engines.
        seed: Seed of the folds.

    Returns:
        The files and run counts.

    Raises:
        ValueError: The file is missing or malformed.
    """
    recording = read_cmapss(data_dir / "train_FD001.txt")
    units = np.asarray(recording.unit_ids)
    test = grouped_folds(np.arange(units.size), folds, seed) == test_fold
    document = engine_spec(recording, units[~test].tolist()).model_dump(
        mode="json", exclude_none=True
    )
    for sensor in document["sensors"]:
        sensor["sample_rate_hz"] = 1.0 / CYCLE_S
    spec = parse_spec(document)
    paths = AdaptedFiles.begin(out, spec, train_runs=int((~test).sum()), test_runs=int(test.sum()))
    for side, path in ((units[~test], paths.train), (units[test], paths.test)):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([RUN_COLUMN, TIME_COLUMN, *(sensor.id for sensor in SENSORS)])
            for unit in side.tolist():
                for row in recording.rows_of(unit).tolist():
                    t_s = (int(recording.cycle[row]) - 1) * CYCLE_S
                    values = (f"{value:.6g}" for value in recording.readings[row])
                    writer.writerow([run_id(unit), f"{t_s:.0f}", *values])
    with paths.labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for unit in units.tolist():
            last = int(recording.cycle[recording.rows_of(unit)[-1]])
            writer.writerow([run_id(unit), "hpc", "hpc_degradation", f"{(last - 1) * CYCLE_S:.0f}"])
    return paths


def run_id(unit: int) -> str:
    """A run's id: engine 7 -> ``engine007``."""
    return f"engine{unit:03d}"
