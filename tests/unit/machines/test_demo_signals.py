"""Vectorised signal blocks agree with their step-by-step definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from machines.signals import (
    Phase,
    cycle_schedule,
    first_order_lag,
    smooth_noise,
)


def lag_by_steps(x: np.ndarray, tau_s: float, dt_s: float, y0: np.ndarray) -> np.ndarray:
    a = math.exp(-dt_s / tau_s)
    out = np.empty_like(x)
    state = y0.copy()
    for index in range(x.shape[0]):
        state = a * state + (1 - a) * x[index]
        out[index] = state
    return out


@pytest.mark.parametrize("tau_s", [0.02, 0.5, 1.0, 7.0, 300.0, 1e6])
@pytest.mark.parametrize("steps", [1, 5, 3000])
def test_first_order_lag_matches_the_recursion(tau_s: float, steps: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(steps, 3))
    y0 = np.array([0.5, -1.0, 2.0])

    assert np.allclose(first_order_lag(x, tau_s, 1.0, y0=y0), lag_by_steps(x, tau_s, 1.0, y0))


def test_first_order_lag_of_a_step_approaches_the_step_with_its_time_constant() -> None:
    y = first_order_lag(np.ones(1000), tau_s=100.0, dt_s=1.0, y0=0.0)

    assert y[99] == pytest.approx(1 - math.exp(-1), rel=1e-3)
    assert y[-1] == pytest.approx(1.0, abs=1e-4)


def test_smooth_noise_has_unit_spread() -> None:
    noise = smooth_noise(np.random.default_rng(1), 200_000, tau_s=5.0, dt_s=1.0)

    assert abs(noise.std() - 1.0) < 0.05
    assert abs(noise.mean()) < 0.05


def test_cycle_schedule_covers_every_step_in_phase_order() -> None:
    phases = (Phase("a", 2, 4), Phase("b", 1, 1), Phase("rare", 10, 20, probability=0.1))

    schedule = cycle_schedule(np.random.default_rng(2), 20_000, 1.0, phases)

    assert schedule.phase.shape == schedule.cycle.shape == (20_000,)
    assert np.all(np.diff(schedule.cycle) >= 0)
    same_cycle = np.diff(schedule.cycle) == 0
    assert np.all(np.diff(schedule.phase)[same_cycle] >= 0)  # phases run in order
    b_steps = schedule.is_phase("b")
    cycles_seen = schedule.cycle[-1]
    assert abs(b_steps.sum() - cycles_seen) <= 1  # "b" lasts exactly one step per cycle
    rare_cycles = np.unique(schedule.cycle[schedule.is_phase("rare")]).size
    assert 0.05 < rare_cycles / cycles_seen < 0.15
    elapsed = schedule.time_in_phase(1.0)
    starts = np.flatnonzero(np.diff(schedule.phase) != 0) + 1
    assert np.all(elapsed[starts] == 0)
    assert elapsed.max() <= 20
