"""UCI "Condition monitoring of hydraulic systems", 1 Hz sensors: reading, topology, labels.

The rig (Helwig et al., I2MTC 2015) repeats 60 s load cycles while the condition of four
components is varied: a cooler, a switching valve, the main pump (internal leakage) and a
hydraulic accumulator. A working circuit and a cooling-filtration circuit share one oil tank.
The 1 Hz files carry eight signals of 2,205 cycles each; ``profile.txt`` holds each cycle's
conditions. One cycle is one window of 60 steps at 1 Hz.

The machine is described as a :class:`~schemas.spec.SystemSpec` whose fault modes are the
non-optimal conditions of each component, so that the model's per-component candidates
("normal" plus its fault modes, in spec order) are the classes of each target: class 0 is
the optimal condition and class ``k`` the ``k``-th fault mode. The stable flag is the one
fault mode of the oil tank, where the thermal state of both circuits meets.

The model scores a fault mode from its component and a summary of the sensors it affects,
and from nothing else: two fault modes of one component with the same affected sensors
would always score alike. The severity grades of one component therefore have nested
sensor sets, a more severe grade reaching further (valve small lag: SE; severe lag: SE,
VS1; close to failure: SE, VS1, TS2).

``documentation.txt`` names each sensor's quantity but not where it sits. The placement
here follows the rig's layout and the temperature levels: TS2 is always the warmest
(pump outlet, working circuit), TS4 the coolest (cooler outlet), TS3 in between (cooler
inlet) and TS1 the tank; VS1 is the vibration of the main pump and SE its efficiency
factor; CE and CP are the cooler's virtual efficiency and power.

Normal ranges, which the model uses to normalise readings, are fitted per training fold
(:func:`fit_normal_ranges`), never on test cycles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from schemas.spec import SystemSpec, parse_spec

CYCLE_STEPS: Final = 60
"""Samples per cycle and sensor (60 s at 1 Hz)."""

SAMPLE_RATE_HZ: Final = 1.0
"""Rate of the 1 Hz files."""

PROFILE_FILE: Final = "profile.txt"


@dataclass(frozen=True)
class SensorInfo:
    """One 1 Hz signal of the rig.

    Attributes:
        id: Sensor id in the spec; also the file stem (``TS1`` reads ``TS1.txt``).
        component: Component it sits on.
        kind: Sensor kind (:data:`~schemas.vocabulary.SENSOR_KINDS`).
        unit: Unit of the readings.
        description: What it measures.
    """

    id: str
    component: str
    kind: str
    unit: str
    description: str


SENSORS: Final[tuple[SensorInfo, ...]] = (
    SensorInfo("TS1", "tank", "temperature", "degC", "oil temperature in the tank"),
    SensorInfo("TS2", "pump", "temperature", "degC", "oil temperature at the pump outlet"),
    SensorInfo("TS3", "cooler", "temperature", "degC", "oil temperature at the cooler inlet"),
    SensorInfo("TS4", "cooler", "temperature", "degC", "oil temperature at the cooler outlet"),
    SensorInfo("VS1", "pump", "vibration", "mm/s", "vibration of the main pump"),
    SensorInfo("CE", "cooler", "other", "%", "cooling efficiency (virtual)"),
    SensorInfo("CP", "cooler", "power", "kW", "cooling power (virtual)"),
    SensorInfo("SE", "pump", "other", "%", "efficiency factor of the main pump"),
)
"""The eight 1 Hz signals, in spec (node) order."""


@dataclass(frozen=True)
class Target:
    """One condition of ``profile.txt`` as a classification target.

    Attributes:
        name: Target name (``valve``).
        column: Column of ``profile.txt`` (0-based).
        component: Component whose candidates are the classes.
        values: Profile value of each class; index 0 is the optimal condition.
        faults: Fault mode id of each non-optimal class (``values[1:]``).
        affected: Sensors each of its fault modes moves, per fault mode.
    """

    name: str
    column: int
    component: str
    values: tuple[int, ...]
    faults: tuple[str, ...]
    affected: tuple[tuple[str, ...], ...]

    @property
    def num_classes(self) -> int:
        """Classes of the target, the optimal one included."""
        return len(self.values)


TARGETS: Final[tuple[Target, ...]] = (
    Target(
        "cooler",
        0,
        "cooler",
        (100, 20, 3),
        ("cooler_reduced_efficiency", "cooler_near_failure"),
        (("CE", "CP"), ("CE", "CP", "TS3", "TS4")),
    ),
    Target(
        "valve",
        1,
        "valve",
        (100, 90, 80, 73),
        ("valve_small_lag", "valve_severe_lag", "valve_near_failure"),
        (("SE",), ("SE", "VS1"), ("SE", "VS1", "TS2")),
    ),
    Target(
        "pump",
        2,
        "pump",
        (0, 1, 2),
        ("pump_weak_leakage", "pump_severe_leakage"),
        (("SE", "VS1"), ("SE", "VS1", "TS2")),
    ),
    Target(
        "accumulator",
        3,
        "accumulator",
        (130, 115, 100, 90),
        (
            "accumulator_slightly_reduced",
            "accumulator_severely_reduced",
            "accumulator_near_failure",
        ),
        (("SE",), ("SE", "TS2"), ("SE", "TS2", "VS1")),
    ),
    Target("stable", 4, "tank", (0, 1), ("not_stable",), (("TS1", "TS2", "TS3", "TS4"),)),
)
"""The five targets, in ``profile.txt`` column order."""

TARGET_NAMES: Final = tuple(target.name for target in TARGETS)

_COMPONENTS: Final = (
    ("cooler", "oil_cooler", "cooler of the cooling-filtration circuit (condition 3-100 %)"),
    ("valve", "switching_valve", "directional valve of the working circuit (switching lag)"),
    ("pump", "hydraulic_pump", "main pump of the working circuit (internal leakage)"),
    ("accumulator", "hydraulic_accumulator", "accumulators of the working circuit"),
    ("tank", "oil_tank", "oil tank joining the working and cooling-filtration circuits"),
)
_CONNECTIONS: Final = (
    ("tank", "pump", "hydraulic_line"),
    ("pump", "valve", "hydraulic_line"),
    ("valve", "accumulator", "hydraulic_line"),
    ("valve", "tank", "hydraulic_line"),
    ("tank", "cooler", "coolant_line"),
    ("cooler", "tank", "thermal"),
)
_FAULT_DESCRIPTIONS: Final = {
    "cooler_reduced_efficiency": "cooler at 20 % of full efficiency",
    "cooler_near_failure": "cooler at 3 % of full efficiency, close to total failure",
    "valve_small_lag": "valve switching at 90 %, small lag",
    "valve_severe_lag": "valve switching at 80 %, severe lag",
    "valve_near_failure": "valve switching at 73 %, close to total failure",
    "pump_weak_leakage": "weak internal leakage of the main pump",
    "pump_severe_leakage": "severe internal leakage of the main pump",
    "accumulator_slightly_reduced": "accumulator pre-charge 115 bar (optimal 130 bar)",
    "accumulator_severely_reduced": "accumulator pre-charge 100 bar",
    "accumulator_near_failure": "accumulator pre-charge 90 bar, close to total failure",
    "not_stable": "static conditions might not have been reached yet",
}


@dataclass(frozen=True, eq=False)
class HydraulicData:
    """The recordings and conditions of every cycle.

    Attributes:
        readings: Each cycle's readings in :data:`SENSORS` order.
        profile: Each cycle's row of ``profile.txt`` (cooler %, valve %, pump leakage,
            accumulator bar, stable flag).
        labels: Class index of each cycle per target (:data:`TARGET_NAMES`).
        source: Directory the files were read from.

    Shapes:
        readings: ``[N, S, T]`` float64 with S = 8, T = 60; profile: ``[N, 5]`` int64;
        each label array: ``[N]`` int64.
    """

    readings: npt.NDArray[np.float64]
    profile: npt.NDArray[np.int64]
    labels: Mapping[str, npt.NDArray[np.int64]]
    source: Path

    @property
    def num_cycles(self) -> int:
        """Cycles N."""
        return int(self.readings.shape[0])

    def subset(self, rows: npt.NDArray[np.int64]) -> HydraulicData:
        """The cycles ``rows`` only, in that order."""
        return HydraulicData(
            readings=self.readings[rows],
            profile=self.profile[rows],
            labels={name: labels[rows] for name, labels in self.labels.items()},
            source=self.source,
        )


def load_hydraulic(data_dir: Path, *, limit: int | None = None) -> HydraulicData:
    """Read the eight 1 Hz files and ``profile.txt`` of the UCI hydraulic data set.

    Args:
        data_dir: Directory holding ``TS1.txt`` ... ``SE.txt`` and ``profile.txt``.
        limit: Read only the first ``limit`` cycles (tests and quick runs).

    Returns:
        The cycles with their labels.

    Raises:
        ValueError: A missing file, a row with the wrong number of values, a value that is
            not a number, files of different lengths, or a profile value outside the
            documented conditions; the message names the file, line and column.
    """
    profile = _read_profile(data_dir / PROFILE_FILE, limit)
    series = []
    for sensor in SENSORS:
        path = data_dir / f"{sensor.id}.txt"
        matrix = _read_matrix(path, CYCLE_STEPS, limit)
        if matrix.shape[0] != profile.shape[0]:
            raise ValueError(
                f"{path}: {matrix.shape[0]} cycles, but {data_dir / PROFILE_FILE} has "
                f"{profile.shape[0]}"
            )
        series.append(matrix)
    return HydraulicData(
        readings=np.stack(series, axis=1),
        profile=profile,
        labels=label_indices(profile),
        source=data_dir,
    )


def label_indices(
    profile: npt.NDArray[np.int64], *, source: str = PROFILE_FILE
) -> dict[str, npt.NDArray[np.int64]]:
    """Class index of each cycle per target (0 = optimal, ``k`` = ``k``-th fault mode).

    Args:
        profile: Rows of ``profile.txt``.
        source: File name for error messages.

    Returns:
        One array per target name.

    Raises:
        ValueError: A value that is not one of the target's documented conditions.

    Shapes:
        profile: ``[N, 5]``; each returned array: ``[N]`` int64.
    """
    labels: dict[str, npt.NDArray[np.int64]] = {}
    for target in TARGETS:
        column = profile[:, target.column]
        known = np.array(target.values, dtype=np.int64)
        hit = column[:, None] == known[None, :]
        bad = np.flatnonzero(~hit.any(axis=1))
        if bad.size:
            raise ValueError(
                f"{source}: line {bad[0] + 1}, column {target.column + 1} ({target.name}): "
                f"value {column[bad[0]]} is not one of {list(target.values)}"
            )
        labels[target.name] = hit.argmax(axis=1).astype(np.int64)
    return labels


def condition_runs(profile: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Group id of each cycle: a contiguous run of identical component conditions.

    The stable flag is not a condition of the rig, so it does not start a new run.

    Args:
        profile: Rows of ``profile.txt`` in cycle order.

    Returns:
        Run index of each cycle, 0 for the first run, increasing by one at every change
        of (cooler, valve, pump, accumulator).

    Shapes:
        profile: ``[N, >= 4]``; returned: ``[N]`` int64.
    """
    conditions = profile[:, :4]
    changed = np.any(conditions[1:] != conditions[:-1], axis=1)
    return np.concatenate([[0], np.cumsum(changed)]).astype(np.int64)


def fit_normal_ranges(
    readings: npt.NDArray[np.float64], *, quantiles: tuple[float, float] = (0.01, 0.99)
) -> dict[str, tuple[float, float]]:
    """Each sensor's normal range from the cycles given (pass training cycles only).

    The range runs between two quantiles of every reading of the sensor, so that most
    training readings normalise into ``[-1, 1]``.

    Args:
        readings: Training cycles.
        quantiles: Lower and upper quantile.

    Returns:
        ``{sensor_id: (low, high)}`` in :data:`SENSORS` order.

    Shapes:
        readings: ``[N, S, T]``.
    """
    values = readings.transpose(1, 0, 2).reshape(len(SENSORS), -1)
    low = np.quantile(values, quantiles[0], axis=1)
    high = np.quantile(values, quantiles[1], axis=1)
    return {
        sensor.id: (float(lo), float(max(hi, lo + 1e-3)))
        for sensor, lo, hi in zip(SENSORS, low, high, strict=True)
    }


def hydraulic_spec(normal_ranges: Mapping[str, tuple[float, float]]) -> SystemSpec:
    """The rig as a machine spec, with the given normal range of each sensor.

    Args:
        normal_ranges: ``{sensor_id: (low, high)}`` for every sensor of :data:`SENSORS`
            (from :func:`fit_normal_ranges` on training cycles).

    Returns:
        The validated spec: components ``cooler``, ``valve``, ``pump``, ``accumulator``
        and ``tank``; each target's fault modes on its component, in class order.
    """
    sensors: list[dict[str, Any]] = []
    for sensor in SENSORS:
        low, high = normal_ranges[sensor.id]
        margin = high - low
        sensors.append(
            {
                "id": sensor.id,
                "component": sensor.component,
                "kind": sensor.kind,
                "unit": sensor.unit,
                "sample_rate_hz": SAMPLE_RATE_HZ,
                "normal": [low, high],
                "critical": [low - margin, high + margin],
                "description": sensor.description,
            }
        )
    faults = [
        {
            "id": fault,
            "component": target.component,
            "description": _FAULT_DESCRIPTIONS[fault],
            "affected_sensors": list(affected),
        }
        for target in TARGETS
        for fault, affected in zip(target.faults, target.affected, strict=True)
    ]
    return parse_spec(
        {
            "name": "uci_hydraulic_rig",
            "description": "UCI hydraulic test rig (Helwig et al. 2015), 1 Hz sensors",
            "components": [
                {"id": cid, "type": ctype, "description": text} for cid, ctype, text in _COMPONENTS
            ],
            "sensors": sensors,
            "connections": [
                {"source": source, "target": target, "type": kind}
                for source, target, kind in _CONNECTIONS
            ],
            "fault_modes": faults,
        }
    )


def component_of_target(spec: SystemSpec) -> dict[str, int]:
    """Index of each target's component in ``spec``, by target name."""
    return {target.name: spec.component_index[target.component] for target in TARGETS}


def _lines(path: Path, limit: int | None) -> list[str]:
    if not path.is_file():
        raise ValueError(f"{path}: file not found (expected the UCI hydraulic 1 Hz files)")
    lines = path.read_text(encoding="latin-1").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: file is empty")
    return lines if limit is None else lines[:limit]


def _parse_rows(path: Path, lines: Sequence[str], columns: int) -> npt.NDArray[np.float64]:
    out = np.empty((len(lines), columns), dtype=np.float64)
    for number, line in enumerate(lines, start=1):
        fields = line.split("\t")
        if len(fields) != columns:
            raise ValueError(
                f"{path}: line {number}: expected {columns} tab-separated values, got {len(fields)}"
            )
        try:
            out[number - 1] = [float(field) for field in fields]
        except ValueError:
            bad = next(i for i, field in enumerate(fields) if not _is_number(field))
            raise ValueError(
                f"{path}: line {number}, column {bad + 1}: {fields[bad]!r} is not a number"
            ) from None
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_matrix(path: Path, columns: int, limit: int | None) -> npt.NDArray[np.float64]:
    return _parse_rows(path, _lines(path, limit), columns)


def _read_profile(path: Path, limit: int | None) -> npt.NDArray[np.int64]:
    rows = _parse_rows(path, _lines(path, limit), len(TARGETS))
    whole = np.rint(rows)
    bad = np.argwhere(np.abs(rows - whole) > 1e-9)
    if bad.size:
        line, column = bad[0]
        raise ValueError(
            f"{path}: line {line + 1}, column {column + 1}: {rows[line, column]:g} is not "
            "a whole number"
        )
    profile = whole.astype(np.int64)
    label_indices(profile, source=str(path))
    return profile
