"""Ground-truth labels per component from a fault schedule: health, active fault, RUL."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from machines.faults import RUL_CAP_HOURS, FaultSpec
from machines.signals import FloatArray
from schemas import SystemSpec


def component_labels(
    spec: SystemSpec, faults: Sequence[FaultSpec], t_s: FloatArray
) -> tuple[NDArray[np.float32], NDArray[np.int16], NDArray[np.float32]]:
    """Labels of every component at every step.

    A component without an active fault has health 1, fault code 0 (``"normal"``) and
    remaining useful life :data:`~machines.faults.RUL_CAP_HOURS`. With several faults on
    one component, health and remaining life are the worst over its faults and the label is
    the fault with the lowest health (the first injected on a tie) among those past onset.

    Args:
        spec: The machine.
        faults: Injected faults; their ids must be fault modes of ``spec``.
        t_s: Step times in seconds.

    Returns:
        ``(health, fault_codes, rul_hours)``; fault codes index ``("normal", *spec.fault_ids)``.

    Shapes:
        t_s: ``[T]``.
        health: ``[T, C]`` float32.
        fault_codes: ``[T, C]`` int16.
        rul_hours: ``[T, C]`` float32.
    """
    steps, components = t_s.shape[0], len(spec.components)
    health = np.ones((steps, components))
    codes = np.zeros((steps, components), dtype=np.int16)
    rul = np.full((steps, components), RUL_CAP_HOURS)
    for fault in faults:
        column = spec.component_index[spec.fault_mode(fault.fault_id).component]
        fault_health = fault.health(t_s)
        active = t_s >= fault.onset_s
        worse = active & ((codes[:, column] == 0) | (fault_health < health[:, column]))
        codes[worse, column] = spec.fault_index[fault.fault_id] + 1
        health[:, column] = np.minimum(health[:, column], fault_health)
        rul[:, column] = np.minimum(rul[:, column], fault.rul_hours(t_s))
    return health.astype(np.float32), codes, rul.astype(np.float32)
