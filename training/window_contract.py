"""The model's window at training: its length in steps and its rate, chosen from the data.

The rate defaults to the run files' sample rate (the lowest, when they differ), capped at the
fastest sensor rate of the specs (a model step finer than any sensor samples adds nothing).
The window defaults to :data:`DEFAULT_WINDOW_STEPS` steps, fewer when the shortest run is
shorter, so that every run gives at least one window; the forecast horizon shrinks with it.
Whatever is chosen is said in plain words (:attr:`WindowChoice.reasons`) and ends up in the
checkpoint through the :class:`~worker.model.FeatureContract`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from machines import Run
from schemas import SystemSpec
from training.data.runs import MIN_WINDOW_STEPS, duration_s
from training.errors import WindowOptionError
from worker.model import FeatureContract

DEFAULT_WINDOW_STEPS: Final = FeatureContract.window_steps
"""Window length when the runs allow it (the contract's default)."""

DEFAULT_HORIZON: Final = FeatureContract.forecast_horizon
"""Forecast horizon of a default-length window."""

GENERATED_RATE_HZ: Final = 1.0
"""Rate of generated demo runs."""


def horizon_for(window_steps: int, most: int = DEFAULT_HORIZON) -> int:
    """Forecast horizon of a window: a sixth of it, between 1 and ``most`` (10 steps for 60
    by default), so that at least two steps always remain for the encoder."""
    return max(1, min(most, window_steps // 6))


@dataclass(frozen=True)
class WindowChoice:
    """The window a model is trained with.

    Attributes:
        window_steps: Steps the model sees.
        sample_rate_hz: The model's rate.
        forecast_horizon: Steps the forecaster predicts.
        reasons: Why, in plain words, one line each.
    """

    window_steps: int
    sample_rate_hz: float
    forecast_horizon: int
    reasons: tuple[str, ...]

    @property
    def seconds(self) -> float:
        """The window's length in seconds."""
        return self.window_steps / self.sample_rate_hz

    def overrides(self) -> dict[str, Any]:
        """Keyword arguments of :class:`FeatureContract` (for ``contract_for``)."""
        return {
            "window_steps": self.window_steps,
            "sample_rate_hz": self.sample_rate_hz,
            "forecast_horizon": self.forecast_horizon,
        }

    def describe(self) -> str:
        """One line: the window in steps, Hz and seconds, and the horizon."""
        return (
            f"window: {self.window_steps} steps at {self.sample_rate_hz:g} Hz = "
            f"{self.seconds:g} s (forecast horizon {self.forecast_horizon} steps)"
        )


def choose_window(
    runs: Sequence[tuple[str, Run]],
    specs: Sequence[SystemSpec],
    *,
    window_steps: int | None = None,
    rate_hz: float | None = None,
    max_horizon: int = DEFAULT_HORIZON,
) -> WindowChoice:
    """The model's window for training on ``runs`` (and generated data of ``specs``).

    Args:
        runs: ``(name, run)`` of the run files (none for generated data only).
        specs: Every machine trained on.
        window_steps: ``--window-steps`` (None: from the data).
        rate_hz: ``--rate`` (None: from the data).
        max_horizon: Most forecast steps (the training recipe's).

    Returns:
        The window, with the reasons for each default taken.

    Raises:
        WindowOptionError: A window shorter than :data:`MIN_WINDOW_STEPS` or a rate that is
            not a positive number.
    """
    reasons: list[str] = []
    if rate_hz is not None:
        if not (math.isfinite(rate_hz) and rate_hz > 0):
            raise WindowOptionError(f"--rate must be a positive number of Hz, got {rate_hz}")
        rate = rate_hz
    else:
        rate = _default_rate(runs, specs, reasons)
    if window_steps is not None:
        if window_steps < MIN_WINDOW_STEPS:
            raise WindowOptionError(
                f"--window-steps must be >= {MIN_WINDOW_STEPS} (two encoder steps and a "
                f"one-step forecast), got {window_steps}"
            )
        steps = window_steps
    else:
        steps = _default_steps(runs, rate, reasons)
    return WindowChoice(steps, rate, horizon_for(steps, max_horizon), tuple(reasons))


def _default_rate(
    runs: Sequence[tuple[str, Run]], specs: Sequence[SystemSpec], reasons: list[str]
) -> float:
    if runs:
        rates = sorted({run.sample_rate_hz for _, run in runs})
        rate = rates[0]
        said = f"the run files' rate, {rate:g} Hz"
        if len(rates) > 1:
            said = f"the lowest rate of the run files ({', '.join(f'{r:g}' for r in rates)} Hz)"
    else:
        rate, said = GENERATED_RATE_HZ, f"the generated runs' rate, {GENERATED_RATE_HZ:g} Hz"
    fastest = max(
        (sensor.sample_rate_hz for spec in specs for sensor in spec.sensors), default=rate
    )
    if fastest < rate:
        reasons.append(
            f"rate: {fastest:g} Hz, the fastest sensor rate of the specs, below {said} "
            "(pass --rate to choose)"
        )
        return fastest
    reasons.append(f"rate: {said} (pass --rate to choose)")
    return rate


def _default_steps(runs: Sequence[tuple[str, Run]], rate: float, reasons: list[str]) -> int:
    if not runs:
        return DEFAULT_WINDOW_STEPS
    name, shortest = min(runs, key=lambda item: duration_s(item[1]))
    # A run gives a window when it holds window_steps model steps' worth of its samples.
    fits = math.floor(shortest.steps * rate / shortest.sample_rate_hz + 1e-9)
    if fits >= DEFAULT_WINDOW_STEPS:
        return DEFAULT_WINDOW_STEPS
    steps = max(MIN_WINDOW_STEPS, fits)
    reasons.append(
        f"window: {steps} steps instead of {DEFAULT_WINDOW_STEPS}: the shortest run, {name}, "
        f"is {duration_s(shortest):g} s long (pass --window-steps to choose)"
    )
    return steps
