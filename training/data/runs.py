"""Labelled windows kept per run, and the runs too short to give one.

Validation holds out whole runs and evaluation reports per run, so windows travel with the run
they were cut from (:class:`RunWindows`). A run shorter than the model's window gives no
window; :func:`cut_runs` returns it as a :class:`ShortRun` so that every command can say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from machines import Run
from training.data.demo import DEFAULT_STRIDE_S, LabelledWindow, RunRecipe, labelled_windows
from worker.model import FeatureContract, SpecGraphCache

MIN_WINDOW_STEPS: Final = 3
"""Shortest model window: two encoder steps and a one-step forecast."""


@dataclass(frozen=True, eq=False, repr=False)
class RunWindows:
    """The labelled windows of one run, in time order.

    Attributes:
        name: The run's name (its file name, or a generated run's description).
        system: Machine name.
        duration_s: Length of the whole run.
        windows: Labelled windows, earliest first.
        starts_s, ends_s: Time of each window's first and last sample (seconds since the
            run's start).
        vocabulary: ``("normal", *spec.fault_ids)``: the meaning of ``fault_code``.
        path: The run file (None for a generated run).
        empty_windows: Windows left out because they held no observed reading.

    Shapes:
        starts_s, ends_s: ``[W]``.
    """

    name: str
    system: str
    duration_s: float
    windows: tuple[LabelledWindow, ...]
    starts_s: npt.NDArray[np.float64]
    ends_s: npt.NDArray[np.float64]
    vocabulary: tuple[str, ...]
    path: Path | None = None
    empty_windows: int = 0

    @property
    def conditions(self) -> tuple[str, ...]:
        """Labels present at the windows' last steps (``normal`` and fault ids), sorted."""
        codes = {int(code) for window in self.windows for code in window.fault_code}
        named = (*self.vocabulary, "unknown")  # code -1: a recorded run's unknown label
        return tuple(sorted(named[code] for code in codes))

    def part(self, rows: Sequence[int] | npt.NDArray[np.int64], name: str) -> RunWindows:
        """The windows at ``rows``, as a run named ``name`` (a chronological part)."""
        index = np.asarray(rows, dtype=np.int64)
        return RunWindows(
            name=name,
            system=self.system,
            duration_s=self.duration_s,
            windows=tuple(self.windows[i] for i in index),
            starts_s=self.starts_s[index],
            ends_s=self.ends_s[index],
            vocabulary=self.vocabulary,
            path=self.path,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, system={self.system!r}, "
            f"windows={len(self.windows)}, conditions={list(self.conditions)})"
        )


@dataclass(frozen=True)
class ShortRun:
    """A run that gave no window.

    Attributes:
        name: The run's name.
        duration_s: Its length.
        needed_s: The window's length in seconds.
        needed_steps: The window's length in model steps.
        sample_rate_hz: The model's rate.
        gaps: Windows it would give that hold no observed reading (long enough, but every
            window a gap), 0 for a run shorter than the window.
    """

    name: str
    duration_s: float
    needed_s: float
    needed_steps: int
    sample_rate_hz: float
    gaps: int = 0

    def describe(self) -> str:
        """One line: which run, how long, and what the window needs."""
        if self.gaps:
            return (
                f"{self.name}: {self.duration_s:g} s long gives no window: each of its "
                f"{self.gaps} windows is a gap without an observed reading"
            )
        return (
            f"{self.name}: {self.duration_s:g} s long gives no window; the window needs "
            f"{self.needed_s:g} s ({self.needed_steps} steps at {self.sample_rate_hz:g} Hz)"
        )


def duration_s(run: Run) -> float:
    """Length of a run in seconds: its steps times its sample period."""
    return run.steps / run.sample_rate_hz


def window_samples(run: Run, contract: FeatureContract) -> int:
    """Samples of ``run`` that one model window covers (as :func:`label_windows` cuts)."""
    return max(2, round(contract.window_steps * run.sample_rate_hz / contract.sample_rate_hz))


def run_windows(
    name: str,
    run: Run,
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
    path: Path | None = None,
) -> RunWindows:
    """Cut ``run`` into labelled windows (:func:`labelled_windows`) and keep where each lies."""
    windows, ends, empty = labelled_windows(run, contract, stride_s=stride_s, cache=cache)
    length = window_samples(run, contract)
    return RunWindows(
        name=name,
        system=run.system,
        duration_s=duration_s(run),
        windows=tuple(windows),
        starts_s=run.t_s[ends - length + 1].astype(np.float64),
        ends_s=run.t_s[ends].astype(np.float64),
        vocabulary=run.fault_vocabulary,
        path=path,
        empty_windows=empty,
    )


def cut_runs(
    runs: Iterable[tuple[str, Run]],
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
    paths: Sequence[Path | None] | None = None,
) -> tuple[list[RunWindows], list[ShortRun]]:
    """Cut named runs into windows; the runs that give none are returned, not dropped silently.

    Args:
        runs: ``(name, run)`` pairs.
        contract: Window length and time base.
        stride_s: Seconds between window starts.
        cache: Spec graph cache under ``contract``.
        paths: The file of each run, when read from files.

    Returns:
        The runs with at least one window, and the runs too short for one.
    """
    graphs = cache or SpecGraphCache(contract)
    named = list(runs)
    files = list(paths) if paths is not None else [None] * len(named)
    kept: list[RunWindows] = []
    short: list[ShortRun] = []
    for (name, run), path in zip(named, files, strict=True):
        needed_s = contract.window_steps / contract.sample_rate_hz
        unfit = ShortRun(
            name, duration_s(run), needed_s, contract.window_steps, contract.sample_rate_hz
        )
        if run.steps < window_samples(run, contract):
            short.append(unfit)
            continue
        cut = run_windows(name, run, contract, stride_s=stride_s, cache=graphs, path=path)
        if cut.windows:
            kept.append(cut)
        else:
            short.append(replace(unfit, gaps=cut.empty_windows))
    return kept, short


def recipe_runs(
    recipes: Iterable[RunRecipe],
    contract: FeatureContract,
    *,
    stride_s: float = DEFAULT_STRIDE_S,
    cache: SpecGraphCache | None = None,
) -> list[RunWindows]:
    """Simulate each recipe and keep its windows as one run (named after the recipe)."""
    graphs = cache or SpecGraphCache(contract)
    named = []
    for recipe in recipes:
        faults = ",".join(fault.fault_id for fault in recipe.faults) or "healthy"
        named.append((f"{recipe.system} seed {recipe.seed} {faults}", recipe.simulate()))
    kept, _ = cut_runs(named, contract, stride_s=stride_s, cache=graphs)
    return kept


def gaps_note(runs: Iterable[RunWindows]) -> str | None:
    """A line naming the windows left out as gaps without an observed reading, if any."""
    gaps = [(run.name, run.empty_windows) for run in runs if run.empty_windows]
    if not gaps:
        return None
    named = ", ".join(f"{name} ({count})" for name, count in gaps[:5])
    more = ", ..." if len(gaps) > 5 else ""
    total = sum(count for _, count in gaps)
    return f"{total} window(s) without an observed reading left out: {named}{more}"


def too_short_message(short: Sequence[ShortRun], contract: FeatureContract) -> str:
    """Why no window is left, and what to pass instead."""
    if all(item.gaps for item in short):
        return "no run gives a window: every window of every run is a gap without a reading"
    short = [item for item in short if not item.gaps]
    longest = max(item.duration_s for item in short)
    lengths = sorted({f"{item.duration_s:g}" for item in short})
    said = f"{lengths[0]} s" if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]} s"
    needed = contract.window_steps / contract.sample_rate_hz
    fits = math.floor(longest * contract.sample_rate_hz)
    hint = (
        f"pass --window-steps {fits} or fewer, or longer runs"
        if fits >= MIN_WINDOW_STEPS
        else f"a window needs at least {MIN_WINDOW_STEPS} steps: pass a higher --rate if the "
        "data has one, or longer runs"
    )
    return (
        f"no run gives a window: runs are {said} long; the model's window is "
        f"{contract.window_steps} steps at {contract.sample_rate_hz:g} Hz = {needed:g} s; {hint}"
    )


def run_names(paths: Sequence[Path]) -> list[str]:
    """A name per run file: its file name, or its whole path where file names repeat (runs
    are told apart by name in splits and reports)."""
    names = [path.name for path in paths]
    return [
        name if names.count(name) == 1 else str(path)
        for name, path in zip(names, paths, strict=True)
    ]


def flatten(runs: Iterable[RunWindows]) -> list[LabelledWindow]:
    """Every window of ``runs``, run after run."""
    return [window for run in runs for window in run.windows]
