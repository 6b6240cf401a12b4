"""Generate a simulated run of a machine, with injected faults and ground-truth labels.

The pipeline: a physics model turns duty cycles and fault effects into true values per
sensor; a sensor model adds bounded measurement noise, a slow calibration drift and missing
samples; the fault schedule gives the labels. Three independent random streams (physics,
sensor noise, missing samples) come from one seed, so a run is reproducible and a faulty run
equals the healthy run with the same seed until the fault's onset.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final

import numpy as np

from machines.catalog import builtin_spec, is_builtin
from machines.faults import FaultSpec, FaultSpecError, parse_fault
from machines.labels import component_labels
from machines.physics import SimContext, physics_for
from machines.physics.generic import generic_model
from machines.run import Run
from machines.signals import FloatArray, bounded_normal, bounded_smooth_noise
from schemas import SystemSpec

DEFAULT_START: Final = datetime(2024, 1, 1, tzinfo=UTC)
"""Wall-clock time of the first step unless another is given."""

NOISE_FRACTION: Final = 0.004
"""Standard deviation of measurement noise as a fraction of the normal range's width
(clipped at 3 standard deviations)."""

DRIFT_FRACTION: Final = 0.005
"""Largest calibration drift as a fraction of the normal range's width."""

DRIFT_TAU_S: Final = 4 * 3600.0
"""Correlation time of the calibration drift."""

WARMUP_S: Final = 2 * 3600.0
"""Simulated time before the first step, discarded, in which thermal lags settle."""

DEFAULT_MISSING_RATE: Final = 0.001
"""Probability that any one sample is missing."""

DROPOUT_INTERVAL_S: Final = 8 * 3600.0
"""Mean time between communication dropouts (all sensors missing for 5-30 s)."""

ProgressCallback = Callable[[str, float], None]
"""Called with a stage name and the fraction of the work done, from 0 to 1."""


class GenerationError(ValueError):
    """The generation request is invalid (bad duration, rate or fault)."""


def resolve_faults(spec: SystemSpec, faults: Sequence[FaultSpec | str]) -> tuple[FaultSpec, ...]:
    """Parse fault strings and check every fault id belongs to ``spec``.

    Raises:
        FaultSpecError: A fault is malformed or unknown to the machine.
    """
    resolved = []
    for fault in faults:
        parsed = parse_fault(fault, spec.fault_ids) if isinstance(fault, str) else fault
        if parsed.fault_id not in spec.fault_index:
            raise FaultSpecError(
                f"unknown fault {parsed.fault_id!r}; this machine's faults are: "
                f"{', '.join(spec.fault_ids)}"
            )
        resolved.append(parsed)
    return tuple(resolved)


def generate(
    system: str | SystemSpec,
    *,
    duration_s: float,
    faults: Sequence[FaultSpec | str] = (),
    seed: int = 0,
    sample_rate_hz: float = 1.0,
    missing_rate: float = DEFAULT_MISSING_RATE,
    start: datetime = DEFAULT_START,
    progress: ProgressCallback | None = None,
) -> Run:
    """Simulate a machine.

    Built-in machines use their own physics model; any other spec uses the generic model
    (:mod:`machines.physics.generic`).

    Args:
        system: Built-in machine name or a spec.
        duration_s: Simulated time in seconds (at least two steps).
        faults: Faults to inject, as :class:`FaultSpec` or strings such as
            ``pump_internal_leak@6h:exponential``.
        seed: Seed of all randomness; the same arguments give the same run.
        sample_rate_hz: Steps per second.
        missing_rate: Probability that a sample is missing (NaN), in ``[0, 1)``.
        start: Wall-clock time of the first step (timezone-aware).
        progress: Optional callback for progress reports.

    Returns:
        The run with readings and labels.

    Raises:
        UnknownMachineError: ``system`` is not a built-in name.
        FaultSpecError: A fault is malformed or not a fault of this machine.
        GenerationError: Duration, sample rate or missing rate is out of range.
    """
    spec = builtin_spec(system) if isinstance(system, str) else system
    fault_specs = resolve_faults(spec, faults)
    if not (math.isfinite(sample_rate_hz) and 0 < sample_rate_hz <= 100):
        raise GenerationError(f"sample_rate_hz must be in (0, 100], got {sample_rate_hz}")
    if not 0 <= missing_rate < 1:
        raise GenerationError(f"missing_rate must be in [0, 1), got {missing_rate}")
    steps = round(duration_s * sample_rate_hz) if math.isfinite(duration_s) else 0
    if steps < 2:
        raise GenerationError(f"duration {duration_s:g} s gives fewer than 2 steps")
    if start.tzinfo is None:
        raise GenerationError("start must be timezone-aware")

    report = progress or (lambda stage, done: None)
    dt_s = 1.0 / sample_rate_hz
    t_s = np.arange(steps, dtype=np.float64) * dt_s
    physics_rng, noise_rng, missing_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(3)
    )

    report("physics", 0.0)
    # The physics starts WARMUP_S before the run so slow temperatures settle on healthy,
    # fault-free data: nothing before a fault's onset may depend on the fault.
    warmup = round(WARMUP_S * sample_rate_hz)
    t_sim = np.arange(-warmup, steps, dtype=np.float64) * dt_s
    effects: dict[str, FloatArray] = {}
    for fault in fault_specs:
        effect = fault.effect(t_sim)
        previous = effects.get(fault.fault_id)
        effects[fault.fault_id] = effect if previous is None else np.maximum(previous, effect)
    model = physics_for(spec.name) if is_builtin(spec) else None
    if model is None:
        model = generic_model(spec)
    simulated = model(SimContext(t_s=t_sim, dt_s=dt_s, rng=physics_rng, effects=effects))
    true_values = {sensor_id: values[warmup:] for sensor_id, values in simulated.items()}
    if set(true_values) != set(spec.sensor_ids):
        missing = sorted(set(spec.sensor_ids) - set(true_values))
        extra = sorted(set(true_values) - set(spec.sensor_ids))
        raise RuntimeError(f"physics of {spec.name!r} disagrees with its spec: {missing=} {extra=}")

    report("sensors", 0.6)
    readings = _measure(spec, true_values, noise_rng, dt_s)
    _drop_samples(readings, missing_rng, missing_rate, dt_s)

    report("labels", 0.9)
    health, codes, rul = component_labels(spec, fault_specs, t_s)
    report("done", 1.0)
    return Run(
        spec=spec,
        seed=seed,
        sample_rate_hz=sample_rate_hz,
        start=start,
        faults=fault_specs,
        t_s=t_s,
        readings=readings.astype(np.float32),
        health=health,
        fault_codes=codes,
        rul_hours=rul,
    )


def _measure(
    spec: SystemSpec, true_values: dict[str, FloatArray], rng: np.random.Generator, dt_s: float
) -> FloatArray:
    """Add measurement noise and drift; sensors whose critical range starts at 0 read >= 0.

    Shapes:
        return: ``[T, S]``.
    """
    values = np.stack([true_values[sensor_id] for sensor_id in spec.sensor_ids], axis=1)
    steps, sensors = values.shape
    width = np.array([s.normal[1] - s.normal[0] for s in spec.sensors])
    noise = bounded_normal(rng, (steps, sensors)) * (NOISE_FRACTION * width)
    drift = bounded_smooth_noise(rng, steps, DRIFT_TAU_S, dt_s, columns=sensors)
    measured = values + noise + drift * (DRIFT_FRACTION * width)
    floor = np.array([0.0 if s.critical[0] == 0.0 else -np.inf for s in spec.sensors])
    floored: FloatArray = np.maximum(measured, floor)
    return floored


def _drop_samples(readings: FloatArray, rng: np.random.Generator, rate: float, dt_s: float) -> None:
    """Blank random samples and short all-sensor dropouts with NaN, in place.

    Shapes:
        readings: ``[T, S]``.
    """
    steps = readings.shape[0]
    readings[rng.random(readings.shape) < rate] = np.nan
    dropouts = rng.poisson(steps * dt_s / DROPOUT_INTERVAL_S) if rate > 0 else 0
    starts = rng.integers(0, steps, dropouts)
    lengths = np.maximum(1, np.rint(rng.uniform(5, 30, dropouts) / dt_s)).astype(np.int64)
    for begin, length in zip(starts, lengths, strict=True):
        readings[begin : begin + length] = np.nan
