"""Recorded samples on a run's fixed-rate grid, and the gaps left in it.

Step ``k`` of a run at rate ``r`` is at ``k / r`` seconds after the first sample and covers
the samples from ``(k - 1/2) / r`` up to (not including) ``(k + 1/2) / r``: its value is their
mean, or NaN (missing) when there are none. Nothing is interpolated, so a gap in the
recording stays a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_STRETCH: Final = 100
"""A run's grid may hold at most this many steps per sample (and a million steps more):
beyond, one time is almost surely wrong, and the grid would be mostly invented gap."""


class GridError(ValueError):
    """The times cannot be put on a grid.

    Attributes:
        row: Position of the row at fault in the samples given, if one is.
    """

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


@dataclass(frozen=True, eq=False, repr=False)
class Grid:
    """A run's samples on its grid.

    Attributes:
        t_s: Time of each step, seconds since the first sample.
        values: Mean of each column's samples in each step; NaN where none.
        samples: Rows that fell in each step.
        rate_hz: Steps per second.
        rate_inferred: Whether the rate came from the times (not given).

    Shapes:
        t_s, samples: ``[T]``; values: ``[T, S]``.
    """

    t_s: FloatArray
    values: FloatArray
    samples: IntArray
    rate_hz: float
    rate_inferred: bool

    @property
    def steps(self) -> int:
        """Number of steps T."""
        return int(self.t_s.shape[0])

    @property
    def empty_steps(self) -> int:
        """Steps no row fell in (every column missing there)."""
        return int((self.samples == 0).sum())

    @property
    def merged_rows(self) -> int:
        """Rows averaged with another row of the same step."""
        return int(self.samples.sum() - (self.samples > 0).sum())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(steps={self.steps}, columns={self.values.shape[1]}, "
            f"rate_hz={self.rate_hz:g}, empty_steps={self.empty_steps})"
        )


def infer_rate(elapsed_s: FloatArray) -> float:
    """The sample rate the times imply: one over the median interval between distinct times
    (the interval taken to 6 significant digits, so that 60 s gives steps exactly 60 s apart).

    Raises:
        GridError: Fewer than two distinct times.
    """
    distinct = np.unique(elapsed_s)
    if distinct.size < 2:
        raise GridError("a single distinct time: the sample rate cannot be inferred")
    return 1.0 / float(f"{float(np.median(np.diff(distinct))):.6g}")


def to_grid(elapsed_s: FloatArray | None, values: FloatArray, rate_hz: float | None) -> Grid:
    """Put samples on the grid of the module docstring.

    Args:
        elapsed_s: Seconds since the first sample per row (any order); None: rows are
            consecutive steps.
        values: The columns' samples, NaN where missing.
        rate_hz: Steps per second; None: inferred (:func:`infer_rate`).

    Returns:
        The grid.

    Raises:
        GridError: The rate cannot be inferred, or the times span far more steps than there
            are samples (:data:`MAX_STRETCH`).

    Shapes:
        elapsed_s: ``[R]``; values: ``[R, S]``.
    """
    rows = values.shape[0]
    if elapsed_s is None:
        if rate_hz is None:
            raise GridError("without times, the sample rate must be given")
        t_s = np.arange(rows, dtype=np.float64) / rate_hz
        return Grid(t_s, values.copy(), np.ones(rows, dtype=np.int64), rate_hz, False)
    inferred = rate_hz is None
    rate = infer_rate(elapsed_s) if rate_hz is None else rate_hz
    index = np.rint(elapsed_s * rate).astype(np.int64)
    steps = int(index.max()) + 1
    if steps > MAX_STRETCH * rows + 1_000_000:
        row = int(np.argmax(index))
        raise GridError(
            f"time {elapsed_s[row]:g} s after the first sample makes {steps} steps at "
            f"{rate:g} Hz for {rows} samples; is this time wrong?",
            row,
        )
    samples = np.bincount(index, minlength=steps).astype(np.int64)
    gridded = np.full((steps, values.shape[1]), np.nan)
    for column in range(values.shape[1]):
        observed = ~np.isnan(values[:, column])
        counts = np.bincount(index[observed], minlength=steps)
        sums = np.bincount(index[observed], weights=values[observed, column], minlength=steps)
        np.divide(sums, counts, out=gridded[:, column], where=counts > 0)
    return Grid(np.arange(steps, dtype=np.float64) / rate, gridded, samples, rate, inferred)


@dataclass(frozen=True)
class Gaps:
    """Missing steps of one column.

    Attributes:
        missing_steps: Steps without a value.
        count: Runs of consecutive missing steps.
        longest_steps: Length of the longest run, in steps.
    """

    missing_steps: int
    count: int
    longest_steps: int


def gaps(column: FloatArray) -> Gaps:
    """The gaps (runs of NaN) of one column.

    Shapes:
        column: ``[T]``.
    """
    missing = np.isnan(column)
    if not missing.any():
        return Gaps(0, 0, 0)
    edges = np.diff(np.concatenate([[0], missing.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return Gaps(int(missing.sum()), int(starts.size), int((ends - starts).max()))


def is_constant(column: FloatArray) -> bool:
    """Whether every value present is the same (False when none is).

    Shapes:
        column: ``[T]``.
    """
    present = column[~np.isnan(column)]
    return bool(present.size) and float(present.max()) == float(present.min())
