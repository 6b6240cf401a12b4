"""Run: one simulated or recorded run of a machine, with its labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from machines.faults import FaultSpec
from machines.labels import UNKNOWN_FAULT_CODE, RecordedLabel
from schemas import NORMAL_FAULT, SystemSpec

UNKNOWN_LABEL: Final = ""
"""What :attr:`Run.fault_labels` shows for a step whose fault is unknown."""


@dataclass(frozen=True, eq=False)
class Run:
    """Readings of every sensor and labels of every component, simulated or recorded.

    A simulated run knows every label; a recorded one (``run_id`` set, made by
    ``gnn-service import``) may not: NaN health or remaining life and fault code
    :data:`~machines.labels.UNKNOWN_FAULT_CODE` mean unknown.

    Attributes:
        spec: The machine.
        seed: Seed the run was generated with (a recorded run: CRC-32 of its run id, so
            that snapshot ids of different runs differ).
        sample_rate_hz: Steps per second.
        start: Wall-clock time of step 0 (timezone-aware).
        faults: Injected faults (none in a recorded run).
        t_s: Seconds since ``start`` per step.
        readings: Sensor readings in the spec's sensor order; NaN is a missing sample.
        health: Health per component, 1 healthy, 0 broken; NaN unknown.
        fault_codes: Active fault per component as an index into :attr:`fault_vocabulary`
            (0 is ``"normal"``; -1 unknown).
        rul_hours: Remaining useful life per component in hours (capped; see
            :data:`machines.faults.RUL_CAP_HOURS`); NaN unknown.
        run_id: The recorded run's id; None for a simulated run.
        labels: The recorded run's label rows, which gave its label arrays.
        fault_vocabulary: ``("normal", *spec.fault_ids)``.

    Shapes:
        t_s: ``[T]`` float64.
        readings: ``[T, S]`` float32, S = number of sensors.
        health: ``[T, C]`` float32, C = number of components.
        fault_codes: ``[T, C]`` int16.
        rul_hours: ``[T, C]`` float32.
    """

    spec: SystemSpec
    seed: int
    sample_rate_hz: float
    start: datetime
    faults: tuple[FaultSpec, ...]
    t_s: NDArray[np.float64]
    readings: NDArray[np.float32]
    health: NDArray[np.float32]
    fault_codes: NDArray[np.int16]
    rul_hours: NDArray[np.float32]
    run_id: str | None = None
    labels: tuple[RecordedLabel, ...] = ()

    def __post_init__(self) -> None:
        steps = self.t_s.shape[0]
        expected = {
            "readings": (steps, len(self.spec.sensors)),
            "health": (steps, len(self.spec.components)),
            "fault_codes": (steps, len(self.spec.components)),
            "rul_hours": (steps, len(self.spec.components)),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"Run.{name} has shape {actual}, expected {shape}")
        if self.start.tzinfo is None:
            raise ValueError("Run.start must be timezone-aware")
        codes = self.fault_codes
        if codes.size and not (
            int(codes.min()) >= UNKNOWN_FAULT_CODE and int(codes.max()) < len(self.fault_vocabulary)
        ):
            raise ValueError(
                f"Run.fault_codes must be in [{UNKNOWN_FAULT_CODE}, {len(self.fault_vocabulary)})"
            )

    @property
    def system(self) -> str:
        """Machine name."""
        return self.spec.name

    @property
    def steps(self) -> int:
        """Number of time steps T."""
        return int(self.t_s.shape[0])

    @property
    def sensor_ids(self) -> tuple[str, ...]:
        """Sensor ids, the columns of :attr:`readings`."""
        return self.spec.sensor_ids

    @property
    def component_ids(self) -> tuple[str, ...]:
        """Component ids, the columns of the label arrays."""
        return self.spec.component_ids

    @property
    def fault_vocabulary(self) -> tuple[str, ...]:
        """Fault label per code: ``"normal"`` then the spec's fault ids."""
        return (NORMAL_FAULT, *self.spec.fault_ids)

    @property
    def recorded(self) -> bool:
        """Whether the run was recorded (imported) rather than simulated."""
        return self.run_id is not None

    @property
    def fault_labels(self) -> NDArray[np.str_]:
        """Active fault per step and component as strings (:data:`UNKNOWN_LABEL` unknown).

        Shapes:
            return: ``[T, C]``.
        """
        vocabulary = np.asarray((*self.fault_vocabulary, UNKNOWN_LABEL))
        return vocabulary[np.where(self.fault_codes == UNKNOWN_FAULT_CODE, -1, self.fault_codes)]

    def timestamp(self, index: int) -> datetime:
        """Wall-clock time of step ``index``."""
        return self.start + timedelta(seconds=float(self.t_s[index]))

    def sensor(self, sensor_id: str) -> NDArray[np.float32]:
        """Readings of one sensor.

        Shapes:
            return: ``[T]``.
        """
        return self.readings[:, self.spec.sensor_index[sensor_id]]

    def component_health(self, component_id: str) -> NDArray[np.float32]:
        """Health label of one component.

        Shapes:
            return: ``[T]``.
        """
        return self.health[:, self.spec.component_index[component_id]]

    def same_as(self, other: Run) -> bool:
        """Whether two runs hold identical metadata, readings and labels (NaN equals NaN)."""
        return (
            self.spec == other.spec
            and self.seed == other.seed
            and self.sample_rate_hz == other.sample_rate_hz
            and self.start == other.start
            and self.faults == other.faults
            and np.array_equal(self.t_s, other.t_s)
            and np.array_equal(self.readings, other.readings, equal_nan=True)
            and np.array_equal(self.health, other.health, equal_nan=True)
            and np.array_equal(self.fault_codes, other.fault_codes)
            and np.array_equal(self.rul_hours, other.rul_hours, equal_nan=True)
            and self.run_id == other.run_id
            and self.labels == other.labels
        )

    def __repr__(self) -> str:
        faults = ", ".join(str(fault) for fault in self.faults) or "none"
        recorded = f"run_id={self.run_id!r}, labels={len(self.labels)}, " if self.recorded else ""
        return (
            f"Run(system={self.system!r}, {recorded}seed={self.seed}, steps={self.steps}, "
            f"sensors={len(self.sensor_ids)}, sample_rate_hz={self.sample_rate_hz:g}, "
            f"faults=[{faults}])"
        )
