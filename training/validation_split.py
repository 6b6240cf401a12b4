"""Which runs validate: whole runs held out, never windows of a run that is trained on.

Windows of one run overlap and share the run's conditions, so validation windows cut from
training runs flatter a model that learned nothing. :func:`split_runs` holds out whole runs,
chosen by the seed; with one run only it splits that run in time, leaving a gap of one window
between the last training window and the first validation window, and says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from training.data.runs import RunWindows
from training.errors import SplitError

DEFAULT_VAL_FRACTION: Final = 0.2
"""Share of runs (or, with one run, of its windows) that validates by default."""


@dataclass(frozen=True, eq=False)
class ValidationSplit:
    """Training and validation runs.

    Attributes:
        train: Runs (or, chronologically, the early part of the one run) trained on.
        val: Runs (or the late part) validated on.
        method: ``runs`` (whole runs held out) or ``chronological`` (one run split in time).
        note: What was done, in plain words.
    """

    train: tuple[RunWindows, ...]
    val: tuple[RunWindows, ...]
    method: Literal["runs", "chronological"]
    note: str

    def describe(self) -> dict[str, Any]:
        """JSON-ready record: the method, the note and the runs on each side."""
        return {
            "method": self.method,
            "note": self.note,
            "train_runs": [run.name for run in self.train],
            "val_runs": [run.name for run in self.val],
        }


def split_runs(
    runs: Sequence[RunWindows],
    *,
    seed: int,
    val_runs: int | None = None,
    val_fraction: float | None = None,
) -> ValidationSplit:
    """Hold out whole runs for validation, deterministically by ``seed``.

    Validation runs are drawn in a seeded order, preferring a run whose conditions
    (``normal``, fault ids) and machine stay represented among the training runs and whose
    conditions validation does not have yet; then the rest of the order fills up.

    Args:
        runs: Runs with windows.
        seed: Seed of the choice.
        val_runs: Runs to hold out (None: ``val_fraction`` of them, at least one).
        val_fraction: Share of runs to hold out (default :data:`DEFAULT_VAL_FRACTION`).

    Returns:
        The split; a chronological one when there is one run only.

    Raises:
        SplitError: No run, a count that leaves no training run, or one run too short to
            split in time.
    """
    if val_runs is not None and val_fraction is not None:
        raise SplitError("give --val-runs or --val-fraction, not both")
    fraction = DEFAULT_VAL_FRACTION if val_fraction is None else val_fraction
    if not 0.0 < fraction < 1.0:
        raise SplitError(f"--val-fraction must be between 0 and 1, got {fraction}")
    if not runs:
        raise SplitError("no run to split into training and validation")
    if len(runs) == 1:
        return chronological_split(runs[0], fraction)
    count = max(1, round(len(runs) * fraction)) if val_runs is None else val_runs
    if not 1 <= count < len(runs):
        raise SplitError(
            f"--val-runs {count} must be between 1 and {len(runs) - 1}: {len(runs)} runs, "
            "and at least one must train"
        )
    chosen = _choose(runs, count, seed)
    val = tuple(run for index, run in enumerate(runs) if index in chosen)
    train = tuple(run for index, run in enumerate(runs) if index not in chosen)
    names = first_names([run.name for run in val], _NAMED)
    note = (
        f"validation: {len(val)} of {len(runs)} runs held out whole (seed {seed}): {names}; "
        "no window of them is trained on"
    )
    return ValidationSplit(train, val, "runs", note)


_NAMED = 12  # held-out runs named in the note; the checkpoint's record lists them all


def first_names(names: Sequence[str], most: int, *, rest: str = "") -> str:
    """The first ``most`` names, comma-separated, then ``and N more`` (followed by ``rest``)
    for the others."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more{rest}" if len(names) > most else "")


def _choose(runs: Sequence[RunWindows], count: int, seed: int) -> set[int]:
    order = [int(i) for i in np.random.default_rng(seed).permutation(len(runs))]
    left_conditions = Counter(run.conditions for run in runs)
    left_systems = Counter(run.system for run in runs)
    chosen: set[int] = set()
    seen: set[tuple[str, ...]] = set()
    for index in order:  # first pass: conditions new to validation, still trained on
        run = runs[index]
        if len(chosen) == count:
            break
        if run.conditions in seen or left_conditions[run.conditions] < 2:
            continue
        if left_systems[run.system] < 2:
            continue
        chosen.add(index)
        seen.add(run.conditions)
        left_conditions[run.conditions] -= 1
        left_systems[run.system] -= 1
    for index in order:  # then any run whose machine keeps a training run, then any
        if len(chosen) == count:
            break
        if index not in chosen and left_systems[runs[index].system] >= 2:
            chosen.add(index)
            left_systems[runs[index].system] -= 1
    for index in order:
        if len(chosen) == count:
            break
        chosen.add(index)
    return chosen


def chronological_split(run: RunWindows, fraction: float) -> ValidationSplit:
    """Split one run in time: its last windows validate, earlier windows that end at least
    one window length before the first validation window starts train.

    Raises:
        SplitError: Too few windows for a training window, a gap and a validation window.
    """
    total = len(run.windows)
    held = max(1, round(total * fraction))
    first_val = total - held
    length_s = float(run.ends_s[0] - run.starts_s[0])
    gap_until = float(run.starts_s[first_val]) - length_s
    train_rows = np.flatnonzero(run.ends_s[:first_val] < gap_until)
    if first_val < 1 or train_rows.size == 0:
        raise SplitError(
            f"only one run ({run.name}, {total} windows): too short to split in time into "
            "training windows, a gap of one window and validation windows; give more runs, "
            "a shorter --stride or a shorter --window-steps"
        )
    train = run.part(train_rows, f"{run.name} (until {run.ends_s[train_rows[-1]]:g} s)")
    val = run.part(np.arange(first_val, total), f"{run.name} (from {run.starts_s[first_val]:g} s)")
    note = (
        f"validation: only one run file ({run.name}), so it is split in time: its last "
        f"{held} of {total} windows (from {run.starts_s[first_val]:g} s) validate, "
        f"{train_rows.size} windows ending by {run.ends_s[train_rows[-1]]:g} s train, with a "
        f"gap of at least one window ({length_s:g} s) between them; one run's windows "
        "share its conditions, so these numbers say little about other runs"
    )
    return ValidationSplit((train,), (val,), "chronological", note)
