"""Vectorised signal building blocks for the simulator: lags, bounded noise, duty cycles.

Everything here works on whole time series at once; nothing loops over time steps in Python,
so a simulated day at 1 Hz (86,400 steps) costs milliseconds per signal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# Within one chunk the filter scales samples by a**-i; keeping a**-L below e**30 keeps the
# cumulative sums well inside float64 range and precision.
_MAX_CHUNK_DECAY = 30.0


def first_order_lag(
    x: FloatArray, tau_s: float, dt_s: float, y0: float | FloatArray | None = None
) -> FloatArray:
    """Filter ``x`` through a first-order lag ``tau dy/dt = x - y`` (exact discretisation).

    Computes ``y[n] = a * y[n-1] + (1 - a) * x[n]`` with ``a = exp(-dt / tau)`` without a
    per-step loop: the series is cut into chunks short enough for a closed form with
    cumulative sums, and the chunk boundary states follow the same recursion one level up.

    Args:
        x: Input series.
        tau_s: Time constant in seconds; ``<= 0`` returns a copy of ``x``.
        dt_s: Sample period in seconds.
        y0: State before the first sample (per column for 2-D input); ``x[0]`` when ``None``.

    Returns:
        The filtered series, same shape as ``x``.

    Shapes:
        x: ``[T]`` or ``[T, K]`` (each column filtered independently).
        y0: scalar or ``[K]``.
        return: same as ``x``.
    """
    values = np.asarray(x, dtype=np.float64)
    initial = (
        values[0]
        if y0 is None
        else np.broadcast_to(np.asarray(y0, dtype=np.float64), values.shape[1:])
    )
    if tau_s <= 0 or values.shape[0] == 0:
        return values.copy()
    return _lag(values, math.exp(-dt_s / tau_s), np.asarray(initial, dtype=np.float64))


def _lag(x: FloatArray, a: float, y0: FloatArray) -> FloatArray:
    n = x.shape[0]
    decay = -math.log(a) if a > 0 else math.inf
    if decay >= _MAX_CHUNK_DECAY:
        # The previous state weighs less than e**-30: one explicit step is exact enough.
        previous = np.concatenate([y0[np.newaxis], x[:-1]], axis=0)
        return (1 - a) * x + a * previous
    chunk = max(2, int(_MAX_CHUNK_DECAY / decay))
    if chunk >= n:
        return _lag_closed_form(x, a, y0)
    chunks = -(-n // chunk)
    padded = np.zeros((chunks * chunk, *x.shape[1:]))
    padded[:n] = x
    blocks = padded.reshape(chunks, chunk, *x.shape[1:])
    # Zero-state response inside every chunk at once.
    powers = a ** np.arange(chunk, dtype=np.float64)
    shape = (1, chunk) + (1,) * (x.ndim - 1)
    scaled = blocks / powers.reshape(shape)
    zero_state = (1 - a) * np.cumsum(scaled, axis=1) * powers.reshape(shape)
    # State carried into each chunk: the same recursion over chunk ends, coefficient a**chunk.
    carry_coef = a**chunk
    ends = zero_state[:, -1]
    inputs = ends / (1 - carry_coef)
    states = _lag(inputs, carry_coef, y0)
    carried_in = np.concatenate([y0[np.newaxis], states[:-1]], axis=0)
    decay_in = (a * powers).reshape(shape)
    full = zero_state + carried_in[:, np.newaxis] * decay_in
    return full.reshape(chunks * chunk, *x.shape[1:])[:n]


def _lag_closed_form(x: FloatArray, a: float, y0: FloatArray) -> FloatArray:
    n = x.shape[0]
    powers = a ** np.arange(n, dtype=np.float64)
    shape = (n,) + (1,) * (x.ndim - 1)
    zero_state = (1 - a) * np.cumsum(x / powers.reshape(shape), axis=0) * powers.reshape(shape)
    return zero_state + y0[np.newaxis] * (a * powers).reshape(shape)


def bounded_normal(
    rng: np.random.Generator, shape: int | tuple[int, ...], limit: float = 3.0
) -> FloatArray:
    """Standard normal samples clipped to ``[-limit, limit]`` (sensor noise with bounded tails)."""
    return np.clip(rng.standard_normal(shape), -limit, limit)


def smooth_noise(
    rng: np.random.Generator, n: int, tau_s: float, dt_s: float, *, columns: int | None = None
) -> FloatArray:
    """Slowly varying noise with unit standard deviation and correlation time ``tau_s``.

    White noise is passed through :func:`first_order_lag` and rescaled by the filter's
    stationary gain, so the result is an AR(1) process with standard deviation 1 from the
    first sample on (the initial state is drawn from the stationary distribution).

    Shapes:
        return: ``[n]``, or ``[n, columns]`` when ``columns`` is given.
    """
    shape: tuple[int, ...] = (n,) if columns is None else (n, columns)
    white = rng.standard_normal(shape)
    a = math.exp(-dt_s / tau_s)
    gain = math.sqrt((1 - a) / (1 + a))
    initial = rng.standard_normal(shape[1:]) * gain
    return first_order_lag(white, tau_s, dt_s, y0=initial) / gain


def bounded_smooth_noise(
    rng: np.random.Generator, n: int, tau_s: float, dt_s: float, *, columns: int | None = None
) -> FloatArray:
    """:func:`smooth_noise` squashed into ``(-1, 1)`` with ``tanh`` (for drifts that must stay
    within a band)."""
    return np.tanh(0.6 * smooth_noise(rng, n, tau_s, dt_s, columns=columns))


@dataclass(frozen=True)
class Phase:
    """One phase of a duty cycle.

    Attributes:
        name: Phase name (``dig``).
        min_s: Shortest duration in seconds.
        max_s: Longest duration in seconds.
        probability: Chance the phase occurs in a given cycle (1 for every cycle).
    """

    name: str
    min_s: float
    max_s: float
    probability: float = 1.0


@dataclass(frozen=True)
class Schedule:
    """Which phase and which cycle each time step belongs to.

    Attributes:
        phase: Phase index per step, into the phase list the schedule was built from.
        cycle: Cycle number per step (0, 1, ...).
        n_cycles: Number of cycles drawn (some may lie beyond the last step).
        phase_names: Names of the phases, by index.

    Shapes:
        phase: ``[T]``.
        cycle: ``[T]``.
    """

    phase: IntArray
    cycle: IntArray
    n_cycles: int
    phase_names: tuple[str, ...]

    def is_phase(self, *names: str) -> NDArray[np.bool_]:
        """Boolean mask of the steps in any of the named phases.

        Shapes:
            return: ``[T]``.
        """
        indices = [self.phase_names.index(name) for name in names]
        return np.isin(self.phase, indices)

    def per_phase(self, values: dict[str, float], default: float = 0.0) -> FloatArray:
        """Piecewise-constant series taking ``values[name]`` during each named phase.

        Shapes:
            return: ``[T]``.
        """
        table = np.array([values.get(name, default) for name in self.phase_names])
        return table[self.phase]

    def per_cycle(self, values: FloatArray) -> FloatArray:
        """Spread one value per cycle over that cycle's steps.

        Shapes:
            values: ``[n_cycles]``.
            return: ``[T]``.
        """
        return values[self.cycle]

    def time_in_phase(self, dt_s: float) -> FloatArray:
        """Seconds since the current phase began, per step.

        Shapes:
            return: ``[T]``.
        """
        n = self.phase.shape[0]
        starts = np.ones(n, dtype=bool)
        starts[1:] = (self.phase[1:] != self.phase[:-1]) | (self.cycle[1:] != self.cycle[:-1])
        index = np.arange(n)
        last_start = np.maximum.accumulate(np.where(starts, index, 0))
        return (index - last_start).astype(np.float64) * dt_s


def cycle_schedule(
    rng: np.random.Generator, n_steps: int, dt_s: float, phases: Sequence[Phase]
) -> Schedule:
    """Draw a sequence of duty cycles long enough to cover ``n_steps`` steps.

    Each cycle runs the phases in order; every phase lasts a uniform random time in
    ``[min_s, max_s]`` (at least one step) and optional phases are skipped at random. The
    number of random draws depends only on ``n_steps`` and the phase list, never on faults.

    Shapes:
        Schedule.phase: ``[n_steps]``.
    """
    mean_cycle = sum(p.probability * (p.min_s + p.max_s) / 2 for p in phases)
    shortest = sum(max(dt_s, p.min_s) for p in phases if p.probability >= 1.0) or dt_s
    n_cycles = int(n_steps * dt_s / min(mean_cycle, shortest) * 1.2) + 2
    low = np.array([p.min_s for p in phases])
    high = np.array([p.max_s for p in phases])
    probability = np.array([p.probability for p in phases])
    seconds = rng.uniform(low, high, size=(n_cycles, len(phases)))
    present = rng.random((n_cycles, len(phases))) < probability
    steps = np.where(present, np.maximum(1, np.rint(seconds / dt_s)), 0).astype(np.int64)
    phase_ids = np.broadcast_to(np.arange(len(phases)), steps.shape)
    cycle_ids = np.broadcast_to(np.arange(n_cycles)[:, np.newaxis], steps.shape)
    phase = np.repeat(phase_ids.ravel(), steps.ravel())
    cycle = np.repeat(cycle_ids.ravel(), steps.ravel())
    if phase.shape[0] < n_steps:
        raise RuntimeError("duty cycle schedule too short; this is a bug in cycle_schedule")
    return Schedule(
        phase=phase[:n_steps].astype(np.int64),
        cycle=cycle[:n_steps].astype(np.int64),
        n_cycles=n_cycles,
        phase_names=tuple(p.name for p in phases),
    )


def ambient_temperature(
    rng: np.random.Generator, t_s: FloatArray, *, mean_c: float, daily_swing_c: float
) -> FloatArray:
    """Ambient air temperature in degC: a daily cycle plus slow weather noise.

    The result stays within ``mean_c +- (daily_swing_c + 1.5)``.

    Shapes:
        t_s: ``[T]``.
        return: ``[T]``.
    """
    phase = rng.uniform(0, 2 * math.pi)
    dt_s = float(t_s[1] - t_s[0]) if t_s.shape[0] > 1 else 1.0
    weather = 1.5 * bounded_smooth_noise(rng, t_s.shape[0], 3 * 3600.0, dt_s)
    daily = daily_swing_c * np.sin(2 * math.pi * t_s / 86_400.0 + phase)
    return mean_c + daily + weather
