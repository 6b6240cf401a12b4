"""NASA C-MAPSS turbofan run-to-failure data (sub-set FD001) as a machine, windows and labels.

A C-MAPSS file is space-separated text, one row per engine (unit) and operating cycle, 26
columns: unit, cycle, three operational settings and 21 sensors. Training units run until
failure; test units stop some cycles before it, and a RUL file gives the true remaining
life of each test unit at its last cycle (../shared/data/README.md). The engine becomes a
:class:`~schemas.spec.SystemSpec`: the gas-path modules and the two spools are components,
each sensor sits on the module it measures, shafts and gas and coolant paths join them.

FD001 runs at one operating condition, so the three settings carry no information and are
not model inputs. Seven sensors are constant in FD001 (T2, P2, epr, farB, Nf_dmd,
PCNfR_dmd) or nearly so (P15): they are kept, and a sensor whose normal range is a single
value is normalised by the spec's fallback (``SpecGraph``), so it reads a constant 0.
Readings are converted from the file's imperial units to units of the vocabulary
(Rankine to kelvin, psia to psi, lbm/s to kg/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from schemas.spec import SystemSpec, parse_spec
from schemas.vocabulary import SensorKind
from worker.model.contract import FeatureContract
from worker.model.features import encode_window
from worker.model.spec_graph import SpecGraph

COLUMNS: Final = 26
"""Columns of a C-MAPSS data file: unit, cycle, 3 settings, 21 sensors."""

RUL_CAP: Final = 125
"""The usual cap of the remaining-useful-life label, in cycles."""

_RANKINE_TO_K: Final = 5.0 / 9.0
_LBM_TO_KG: Final = 0.45359237


@dataclass(frozen=True)
class CmapssSensor:
    """One C-MAPSS sensor column and where it sits in the engine.

    Attributes:
        id: Sensor id in the spec (the data set's symbol, lower case).
        component: The engine module it measures.
        kind: Sensor kind from the vocabulary.
        unit: Unit of the spec (after conversion).
        scale: Factor from the file's unit to ``unit``.
        description: The data set's description.
    """

    id: str
    component: str
    kind: SensorKind
    unit: str
    scale: float
    description: str


SENSORS: Final[tuple[CmapssSensor, ...]] = (
    CmapssSensor("t2", "fan", "temperature", "K", _RANKINE_TO_K, "Total temperature at fan inlet"),
    CmapssSensor(
        "t24", "lpc", "temperature", "K", _RANKINE_TO_K, "Total temperature at LPC outlet"
    ),
    CmapssSensor(
        "t30", "hpc", "temperature", "K", _RANKINE_TO_K, "Total temperature at HPC outlet"
    ),
    CmapssSensor(
        "t50", "lpt", "temperature", "K", _RANKINE_TO_K, "Total temperature at LPT outlet"
    ),
    CmapssSensor("p2", "fan", "pressure", "psi", 1.0, "Pressure at fan inlet (psia)"),
    CmapssSensor("p15", "bypass_nozzle", "pressure", "psi", 1.0, "Total pressure in bypass duct"),
    CmapssSensor("p30", "hpc", "pressure", "psi", 1.0, "Total pressure at HPC outlet"),
    CmapssSensor("nf", "low_spool", "speed", "rpm", 1.0, "Physical fan speed"),
    CmapssSensor("nc", "high_spool", "speed", "rpm", 1.0, "Physical core speed"),
    CmapssSensor("epr", "bypass_nozzle", "other", "ratio", 1.0, "Engine pressure ratio P50/P2"),
    CmapssSensor("ps30", "hpc", "pressure", "psi", 1.0, "Static pressure at HPC outlet"),
    CmapssSensor("phi", "combustor", "other", "pps/psi", 1.0, "Ratio of fuel flow to Ps30"),
    CmapssSensor("nrf", "low_spool", "speed", "rpm", 1.0, "Corrected fan speed"),
    CmapssSensor("nrc", "high_spool", "speed", "rpm", 1.0, "Corrected core speed"),
    CmapssSensor("bpr", "bypass_nozzle", "other", "ratio", 1.0, "Bypass ratio"),
    CmapssSensor("farb", "combustor", "other", "ratio", 1.0, "Burner fuel-air ratio"),
    CmapssSensor("htbleed", "hpc", "other", "enthalpy", 1.0, "Bleed enthalpy"),
    CmapssSensor("nf_dmd", "low_spool", "speed", "rpm", 1.0, "Demanded fan speed"),
    CmapssSensor("pcnfr_dmd", "low_spool", "other", "%", 1.0, "Demanded corrected fan speed"),
    CmapssSensor("w31", "hpt", "flow", "kg/s", _LBM_TO_KG, "HPT coolant bleed"),
    CmapssSensor("w32", "lpt", "flow", "kg/s", _LBM_TO_KG, "LPT coolant bleed"),
)
"""The 21 sensors in file order (columns 6 to 26)."""

_COMPONENTS: Final = (
    ("fan", "fan", "Fan, first stage of the low-pressure spool"),
    ("lpc", "low_pressure_compressor", "Low-pressure compressor (booster)"),
    ("hpc", "high_pressure_compressor", "High-pressure compressor, where FD001 degrades"),
    ("combustor", "combustor", "Burner"),
    ("hpt", "high_pressure_turbine", "High-pressure turbine, drives the HPC"),
    ("lpt", "low_pressure_turbine", "Low-pressure turbine, drives the fan and LPC"),
    ("bypass_nozzle", "nozzle", "Bypass duct and exhaust nozzles"),
    ("low_spool", "shaft", "Low-pressure spool: LPT to fan and LPC"),
    ("high_spool", "shaft", "High-pressure spool: HPT to HPC"),
)

_CONNECTIONS: Final = (
    # Gas path: core flow through the modules, bypass flow from the fan to the nozzle.
    ("fan", "lpc", "pneumatic_line"),
    ("lpc", "hpc", "pneumatic_line"),
    ("hpc", "combustor", "pneumatic_line"),
    ("combustor", "hpt", "pneumatic_line"),
    ("hpt", "lpt", "pneumatic_line"),
    ("lpt", "bypass_nozzle", "pneumatic_line"),
    ("fan", "bypass_nozzle", "pneumatic_line"),
    # Turbine cooling air bled from the compressor (W31, W32).
    ("hpc", "hpt", "coolant_line"),
    ("hpc", "lpt", "coolant_line"),
    # Spools: each turbine drives its shaft, each shaft drives its compressors.
    ("lpt", "low_spool", "mechanical_shaft"),
    ("low_spool", "fan", "mechanical_shaft"),
    ("low_spool", "lpc", "mechanical_shaft"),
    ("hpt", "high_spool", "mechanical_shaft"),
    ("high_spool", "hpc", "mechanical_shaft"),
)


@dataclass(frozen=True, eq=False)
class CmapssRecording:
    """One C-MAPSS file, rows in file order.

    Attributes:
        path: The file read.
        unit: Engine number of each row.
        cycle: Operating cycle of each row (1, 2, ... within a unit).
        readings: The 21 sensors in :data:`SENSORS` order, in spec units.

    Shapes:
        unit, cycle: ``[R]`` int64; readings: ``[R, 21]`` float64.
    """

    path: Path
    unit: npt.NDArray[np.int64]
    cycle: npt.NDArray[np.int64]
    readings: npt.NDArray[np.float64]

    @property
    def unit_ids(self) -> tuple[int, ...]:
        """Engine numbers in file order."""
        return tuple(int(u) for u in dict.fromkeys(self.unit.tolist()))

    def rows_of(self, unit: int) -> npt.NDArray[np.int64]:
        """Row indices of one unit, in cycle order.

        Shapes:
            returned: ``[L]``.
        """
        return np.flatnonzero(self.unit == unit)

    def last_rows(self, units: Sequence[int] | None = None) -> npt.NDArray[np.int64]:
        """The row of each unit's last cycle, in ``units`` order (default: file order).

        Shapes:
            returned: ``[len(units)]``.
        """
        chosen = self.unit_ids if units is None else units
        return np.array([self.rows_of(u)[-1] for u in chosen], dtype=np.int64)


def read_cmapss(path: Path) -> CmapssRecording:
    """Read a C-MAPSS train or test file (``train_FD001.txt``, ``test_FD001.txt``).

    Raises:
        ValueError: The file is missing or unreadable, a row has other than 26 columns or a
            non-number, or a unit's cycles are not 1, 2, 3, ... in consecutive rows; the
            message names the file and the line.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read C-MAPSS file: {exc.strerror or exc}") from None
    rows: list[list[float]] = []
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != COLUMNS:
            raise ValueError(
                f"{path}: line {number} has {len(fields)} columns, expected {COLUMNS} "
                "(unit, cycle, 3 operational settings, 21 sensors)"
            )
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            raise ValueError(f"{path}: line {number} has a value that is not a number") from None
    if not rows:
        raise ValueError(f"{path}: no data rows, expected {COLUMNS} space-separated columns")
    table = np.array(rows)
    unit = table[:, 0].astype(np.int64)
    cycle = table[:, 1].astype(np.int64)
    _check_cycles(path, unit, cycle)
    scale = np.array([sensor.scale for sensor in SENSORS])
    return CmapssRecording(path=path, unit=unit, cycle=cycle, readings=table[:, 5:] * scale)


def _check_cycles(path: Path, unit: npt.NDArray[np.int64], cycle: npt.NDArray[np.int64]) -> None:
    starts = np.r_[True, unit[1:] != unit[:-1]]
    expected = np.arange(unit.size) - np.maximum.accumulate(
        np.where(starts, np.arange(unit.size), 0)
    )
    bad = np.flatnonzero(cycle != expected + 1)
    if bad.size:
        line = int(bad[0]) + 1
        raise ValueError(
            f"{path}: line {line}: unit {unit[bad[0]]} cycle {cycle[bad[0]]}, expected "
            f"{expected[bad[0]] + 1} (each unit's rows must be cycles 1, 2, 3, ... in order)"
        )
    if len(set(unit[starts].tolist())) != int(starts.sum()):
        raise ValueError(f"{path}: a unit's rows are split into more than one block")


def read_rul(path: Path, *, units: int) -> npt.NDArray[np.int64]:
    """Read a RUL file (``RUL_FD001.txt``): the true RUL of each test unit, in unit order.

    Args:
        path: The file, one integer per line.
        units: Test units the file must cover.

    Raises:
        ValueError: The file is missing, a line is not one non-negative integer, or the file
            has another count of values than ``units``; the message names the file.

    Shapes:
        returned: ``[units]``.
    """
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read RUL file: {exc.strerror or exc}") from None
    values: list[int] = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        try:
            value = int(float(line))
        except ValueError:
            raise ValueError(
                f"{path}: line {number} is {line!r}, expected one integer RUL per line"
            ) from None
        if value < 0:
            raise ValueError(f"{path}: line {number} is a negative RUL ({value})")
        values.append(value)
    if len(values) != units:
        raise ValueError(
            f"{path}: {len(values)} RUL values for {units} test units; expected one per unit"
        )
    return np.array(values, dtype=np.int64)


def rul_labels(recording: CmapssRecording, *, cap: int | None = RUL_CAP) -> npt.NDArray[np.float64]:
    """Remaining useful life of every row of a run-to-failure file, capped at ``cap``.

    A row's RUL is its unit's last cycle minus its cycle (0 at the failing cycle); ``cap``
    ``None`` leaves it uncapped.

    Shapes:
        returned: ``[R]``.
    """
    last = np.zeros(int(recording.unit.max()) + 1, dtype=np.int64)
    np.maximum.at(last, recording.unit, recording.cycle)
    remaining = (last[recording.unit] - recording.cycle).astype(np.float64)
    return remaining if cap is None else np.minimum(remaining, float(cap))


def split_units(
    unit_ids: Sequence[int], *, validation: int, seed: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split engines into training and validation units, seeded; each part sorted.

    Raises:
        ValueError: ``validation`` leaves no unit on either side.
    """
    if not 0 < validation < len(unit_ids):
        raise ValueError(f"validation units must be in 1..{len(unit_ids) - 1}, got {validation}")
    order = np.random.default_rng(seed).permutation(np.asarray(unit_ids))
    held = set(order[:validation].tolist())
    return (
        tuple(sorted(u for u in unit_ids if u not in held)),
        tuple(sorted(u for u in unit_ids if u in held)),
    )


def engine_spec(
    recording: CmapssRecording, units: Sequence[int], *, cap: int = RUL_CAP
) -> SystemSpec:
    """The turbofan spec, with normal and critical ranges learned from ``units`` only.

    The normal range of a sensor is the 0.5 to 99.5 percentile of its readings in the
    early, healthy life of the given units (rows whose uncapped RUL exceeds ``cap``); the
    critical range is the span of all their rows, widened to contain the normal range.

    Args:
        recording: A run-to-failure file.
        units: The training units; no other row is read.
        cap: RUL above which a cycle counts as healthy.

    Raises:
        ValueError: ``units`` names an engine not in the file, or none.
    """
    missing = sorted(set(units) - set(recording.unit_ids))
    if not units or missing:
        raise ValueError(f"{recording.path}: no rows for training units {missing or '(none)'}")
    rows = np.isin(recording.unit, np.asarray(units))
    uncapped = rul_labels(recording, cap=None)
    healthy = rows & (uncapped > cap)
    reference = recording.readings[healthy if healthy.any() else rows]
    low, high = np.percentile(reference, [0.5, 99.5], axis=0)
    all_low = np.minimum(recording.readings[rows].min(axis=0), low)
    all_high = np.maximum(recording.readings[rows].max(axis=0), high)
    document: dict[str, Any] = {
        "name": "turbofan_cmapss",
        "description": "Two-spool high-bypass turbofan of the NASA C-MAPSS simulation (FD001)",
        "components": [{"id": c, "type": t, "description": d} for c, t, d in _COMPONENTS],
        "sensors": [
            {
                "id": sensor.id,
                "component": sensor.component,
                "kind": sensor.kind,
                "unit": sensor.unit,
                "sample_rate_hz": 1.0,
                "normal": [float(low[i]), float(high[i])],
                "critical": [float(all_low[i]), float(all_high[i])],
                "description": sensor.description,
            }
            for i, sensor in enumerate(SENSORS)
        ],
        "connections": [{"source": s, "target": t, "type": k} for s, t, k in _CONNECTIONS],
        "fault_modes": [
            {
                "id": "hpc_degradation",
                "component": "hpc",
                "description": "Loss of HPC efficiency and flow, the one fault mode of FD001",
                "affected_sensors": ["t30", "p30", "ps30", "t50", "phi", "nc", "nrc"],
            }
        ],
    }
    return parse_spec(document)


def encode_windows(
    graph: SpecGraph,
    contract: FeatureContract,
    recording: CmapssRecording,
    end_rows: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Encode the window that ends at each of ``end_rows`` through :func:`encode_window`.

    A window holds the ``contract.encoder_steps`` cycles up to and including its end row
    (one sample per cycle), then ``contract.forecast_horizon`` unobserved steps: the model
    reads the cycles seen so far and nothing after them. A window that starts before the
    unit's first cycle is left-padded with mask 0.

    Shapes:
        end_rows: ``[W]``; returned x, mask: ``[W, S, contract.window_steps]`` float32.
    """
    seen, horizon = contract.encoder_steps, contract.forecast_horizon
    sensors = recording.readings.shape[1]
    x = np.empty((end_rows.size, sensors, contract.window_steps), dtype=np.float32)
    mask = np.empty_like(x)
    unseen = np.full((horizon, sensors), np.nan)
    for index, end in enumerate(end_rows.tolist()):
        start = max(end - seen + 1, end - int(recording.cycle[end]) + 1)
        window = np.concatenate([recording.readings[start : end + 1], unseen])
        sample = encode_window(graph, window, 1.0, contract)
        x[index], mask[index] = sample.x, sample.mask
    return x, mask
