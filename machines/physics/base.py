"""What every machine's physics model receives and returns."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from machines.signals import FloatArray, first_order_lag


@dataclass(frozen=True)
class SimContext:
    """Inputs to a physics model for one run.

    A model must draw the same random numbers whatever faults are injected (draw everything
    first, then apply fault effects), so a run with a fault equals the healthy run with the
    same seed up to the fault's onset.

    Attributes:
        t_s: Time of each step in seconds from the start of the run.
        dt_s: Sample period in seconds.
        rng: The model's own random generator.
        effects: Fault effect per fault id, 0 healthy to 1 at failure (see
            :mod:`machines.faults`); faults not injected are absent.

    Shapes:
        t_s: ``[T]``.
        effects: ``{fault_id: [T]}``.
    """

    t_s: FloatArray
    dt_s: float
    rng: np.random.Generator
    effects: Mapping[str, FloatArray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of time steps T."""
        return int(self.t_s.shape[0])

    def effect(self, fault_id: str) -> FloatArray:
        """The effect of ``fault_id``, zeros when it is not injected.

        Shapes:
            return: ``[T]``.
        """
        effect = self.effects.get(fault_id)
        return np.zeros(self.n) if effect is None else effect

    def lag(self, x: FloatArray, tau_s: float, *, settle_s: float = 0.0) -> FloatArray:
        """First-order lag of ``x`` starting from steady state.

        The initial state is the mean of ``x`` over its first ``settle_s`` seconds (the first
        sample when 0), so a slow temperature starts warm instead of climbing from zero. The
        generator runs the physics from a fault-free warm-up period before the run, so this
        mean never sees a fault.

        Shapes:
            x: ``[T]``.
            return: ``[T]``.
        """
        steps = max(1, int(settle_s / self.dt_s))
        return first_order_lag(x, tau_s, self.dt_s, y0=float(np.mean(x[:steps])))


Simulator = Callable[[SimContext], dict[str, FloatArray]]
"""A physics model: context in, true (noise-free at the sensor) value per sensor id out."""
