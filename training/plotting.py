"""Plot a run's sensors and health labels around a fault (matplotlib, imported on use)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from machines.run import Run

MAX_SENSORS = 4
"""Most sensors drawn when none are named."""


def rolling_mean(values: NDArray[np.float32], window: int) -> NDArray[np.float64]:
    """Centred moving average that skips NaN (NaN where a window holds no sample).

    Shapes:
        values: ``[T]``.
        return: ``[T]``.
    """
    present = ~np.isnan(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(present, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(present)])
    half = window // 2
    index = np.arange(values.shape[0])
    low = np.clip(index - half, 0, values.shape[0])
    high = np.clip(index + half + 1, 0, values.shape[0])
    total, count = sums[high] - sums[low], counts[high] - counts[low]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def default_sensors(run: Run) -> list[str]:
    """The first injected fault's affected sensors (at most :data:`MAX_SENSORS`), or the
    first sensors of the machine when no fault is injected."""
    if run.faults:
        return list(run.spec.fault_mode(run.faults[0].fault_id).affected_sensors[:MAX_SENSORS])
    return list(run.sensor_ids[:MAX_SENSORS])


def plot_run(
    run: Run,
    path: str | Path,
    *,
    sensors: Sequence[str] | None = None,
    smooth_s: float = 300.0,
    title: str | None = None,
) -> Path:
    """Draw selected sensors (raw and smoothed, with normal and critical ranges) and the
    health label of each faulty component, with fault onsets marked, to a PNG file.

    Args:
        run: The run.
        path: Output image file.
        sensors: Sensor ids to draw; :func:`default_sensors` when ``None``.
        smooth_s: Width of the moving average drawn over the raw readings.
        title: Figure title; a summary of machine and faults when ``None``.

    Returns:
        The path written.

    Raises:
        KeyError: A sensor id is not in the run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = list(sensors) if sensors is not None else default_sensors(run)
    columns = [run.spec.sensor_index[sensor_id] for sensor_id in chosen]
    hours = run.t_s / 3600.0
    window = max(1, int(smooth_s * run.sample_rate_hz))
    figure, axes = plt.subplots(
        len(chosen) + 1, 1, figsize=(10, 2.0 * (len(chosen) + 1) + 0.6), sharex=True
    )
    for axis, sensor_id, column in zip(axes, chosen, columns, strict=False):
        sensor = run.spec.sensor(sensor_id)
        values = run.readings[:, column]
        axis.axhspan(*sensor.normal, color="tab:green", alpha=0.08, label="normal range")
        for bound in sensor.critical:
            axis.axhline(bound, color="tab:red", linestyle=":", linewidth=0.8)
        axis.plot(hours, values, color="tab:blue", linewidth=0.3, alpha=0.35)
        axis.plot(hours, rolling_mean(values, window), color="tab:blue", linewidth=1.4)
        axis.set_ylabel(f"{sensor_id}\n[{sensor.unit}]", fontsize=8)
        finite = values[np.isfinite(values)]
        if finite.size:
            low = min(float(finite.min()), sensor.normal[0])
            high = max(float(finite.max()), sensor.normal[1])
            margin = 0.05 * (high - low or 1.0)
            axis.set_ylim(low - margin, high + margin)
    health_axis = axes[-1]
    faulty = sorted({run.spec.fault_mode(f.fault_id).component for f in run.faults})
    for component_id in faulty or list(run.component_ids[:1]):
        health_axis.plot(hours, run.component_health(component_id), label=f"health.{component_id}")
    health_axis.axhline(0.2, color="tab:red", linestyle=":", linewidth=0.8, label="failure")
    health_axis.set_ylim(-0.05, 1.05)
    health_axis.set_ylabel("health", fontsize=8)
    health_axis.set_xlabel("time [h]")
    health_axis.legend(loc="lower left", fontsize=7)
    for fault in run.faults:
        for axis in axes:
            axis.axvline(fault.onset_s / 3600.0, color="black", linestyle="--", linewidth=0.8)
    faults = ", ".join(str(fault) for fault in run.faults) or "no faults"
    figure.suptitle(title or f"{run.system} (seed {run.seed}): {faults}", fontsize=10)
    figure.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target
