"""Status thresholds calibrated on healthy validation windows, so that the false-alarm rate
at default settings is a stated number rather than a consequence of fixed thresholds.

A diagnosis carries a warning when any component's health is below ``warning_health``, its
anomaly score reaches ``warning_anomaly``, or its fault probability (1 - P(normal)) reaches
``fault_probability`` (:func:`worker.postprocess.status_of`). Each threshold here is set
from the windows in which no component has a fault: per window, the lowest component health,
the largest anomaly score and the largest fault probability; the target false-alarm rate is
shared equally between the three, and critical thresholds take a tenth of it. Each
threshold is a conformal order statistic: with ``n`` healthy windows, the ``ceil((n + 1) *
(1 - a))``-th smallest value, so that a new healthy window from the same distribution
crosses it with probability at most ``a``.

The thresholds are stored with the checkpoint (``CheckpointMetadata.calibration``); workers
use them instead of ``GNN_DIAGNOSIS__*`` unless ``GNN_DIAGNOSIS__CALIBRATED`` is false.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from training.data.demo import LabelledWindow, collate_labelled
from worker.model import UniversalTemporalGNN

#: Share of healthy windows with a warning that calibration aims at (1 %).
DEFAULT_FALSE_ALARM = 0.01
#: Fewer healthy windows than this give no calibration: the thresholds would be guesses.
#: Between this and about 300 windows each threshold sits just beyond the most extreme
#: healthy value, and the false-alarm rate a new healthy window can be promised is about
#: ``3 / (n + 1)`` rather than the target (``false_alarm_bound``): still far below what the
#: fixed thresholds, made for the bundled model, give a machine's own model (95 % of
#: SKAB's healthy test windows warned with them, docs/benchmarks.md).
MIN_HEALTHY_WINDOWS = 20
_CRITICAL_SHARE = 0.1  # critical statuses: a tenth of the warnings' false-alarm budget
_CRITERIA = 3  # health, anomaly score, fault probability share the budget
_CLEARANCE = 1e-6  # thresholds strictly beyond the calibration windows' values


def window_extremes(
    model: UniversalTemporalGNN, windows: Sequence[LabelledWindow], *, batch_size: int = 64
) -> dict[str, npt.NDArray[np.float64]]:
    """Per window, what the worker's status rules look at: the lowest component health, the
    largest anomaly score and the largest fault probability, clipped as the worker clips
    them.

    Shapes:
        each returned array: ``[len(windows)]``.
    """
    model.eval()
    device = next(model.parameters()).device
    lowest, anomaly, fault = [], [], []
    for start in range(0, len(windows), batch_size):
        batch = collate_labelled(windows[start : start + batch_size]).batch
        with torch.inference_mode():
            output = model(batch.to(device)).to("cpu")
        for part in output.split(batch):
            lowest.append(float(part.component_health.clamp(0, 1).min()))
            anomaly.append(float(part.component_anomaly.clamp(min=0).max()))
            fault.append(float((1.0 - part.normal_prob).clamp(0, 1).max()))
    return {
        "health": np.asarray(lowest),
        "anomaly": np.asarray(anomaly),
        "fault_probability": np.asarray(fault),
    }


def calibrate(
    model: UniversalTemporalGNN,
    windows: Sequence[LabelledWindow],
    *,
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> dict[str, Any]:
    """Thresholds from the healthy windows among ``windows`` (validation data).

    Returns:
        ``{"calibrated": True, "false_alarm_target", "healthy_windows", "warning_health",
        "critical_health", "warning_anomaly", "critical_anomaly", "fault_probability",
        "false_alarm_measured", "false_alarm_bound"}`` (the bound: what a new healthy
        window can be promised with this many windows, at least the target), or
        ``{"calibrated": False, "reason": ...}`` when there are too few healthy windows.

    Raises:
        ValueError: ``false_alarm`` outside (0, 0.5).
    """
    if not 0 < false_alarm < 0.5:
        raise ValueError(f"false_alarm must be in (0, 0.5), got {false_alarm}")
    healthy = [window for window in windows if window.healthy]
    if len(healthy) < MIN_HEALTHY_WINDOWS:
        return {
            "calibrated": False,
            "reason": f"{len(healthy)} healthy validation windows; calibration needs at "
            f"least {MIN_HEALTHY_WINDOWS}",
        }
    extremes = window_extremes(model, healthy)
    warning = false_alarm / _CRITERIA
    critical = warning * _CRITICAL_SHARE
    warning_health = _lower(extremes["health"], warning)
    critical_health = min(_lower(extremes["health"], critical), warning_health * 0.9)
    warning_anomaly = _upper(extremes["anomaly"], warning)
    critical_anomaly = max(_upper(extremes["anomaly"], critical), warning_anomaly * 1.1)
    fault_probability = _upper(extremes["fault_probability"], warning)
    flagged = (
        (extremes["health"] < warning_health)
        | (extremes["anomaly"] >= warning_anomaly)
        | (extremes["fault_probability"] >= fault_probability)
    )
    return {
        "calibrated": True,
        "false_alarm_target": false_alarm,
        "healthy_windows": len(healthy),
        "warning_health": round(max(warning_health, 1e-3), 6),
        "critical_health": round(max(critical_health, 0.0), 6),
        "warning_anomaly": round(warning_anomaly, 6),
        "critical_anomaly": round(critical_anomaly, 6),
        "fault_probability": round(min(fault_probability, 1.0), 6),
        "false_alarm_measured": round(float(flagged.mean()), 6),
        "false_alarm_bound": round(_bound(len(healthy), warning), 6),
    }


def _bound(count: int, share: float) -> float:
    """The false-alarm rate the thresholds promise a new healthy window: each criterion's
    share, or ``1 / (n + 1)`` where ``n`` windows cannot resolve it (the rank is capped)."""
    return min(1.0, _CRITERIA * max(share, 1.0 / (count + 1)))


def _rank(count: int, share: float) -> int:
    """1-based rank of the conformal bound: ``ceil((n + 1) * (1 - share))``, capped at n."""
    return min(count, math.ceil((count + 1) * (1.0 - share)))


def _upper(values: npt.NDArray[np.float64], share: float) -> float:
    """A threshold that a share of at most ``share`` of new values reach."""
    ordered = np.sort(values)
    return float(ordered[_rank(len(ordered), share) - 1]) + _CLEARANCE


def _lower(values: npt.NDArray[np.float64], share: float) -> float:
    """A threshold that a share of at most ``share`` of new values fall below."""
    ordered = np.sort(values)[::-1]
    return float(ordered[_rank(len(ordered), share) - 1]) - _CLEARANCE


def describe(calibration: dict[str, Any]) -> str:
    """One line for people: the calibrated thresholds, or why there are none."""
    if not calibration.get("calibrated"):
        reason = calibration.get("reason", "not calibrated")
        return f"statuses: fixed GNN_DIAGNOSIS__* thresholds ({reason})"
    bound = calibration.get("false_alarm_bound", calibration["false_alarm_target"])
    promise = (
        f" (with so few windows at most {bound:.1%} can be promised)"
        if bound > calibration["false_alarm_target"] + 1e-9
        else ""
    )
    return (
        f"statuses calibrated on {calibration['healthy_windows']} healthy validation windows "
        f"for {calibration['false_alarm_target']:.1%} false alarms{promise}: warning at health < "
        f"{calibration['warning_health']:.3f}, anomaly >= {calibration['warning_anomaly']:.2f} "
        f"or fault probability >= {calibration['fault_probability']:.3f}; critical at health < "
        f"{calibration['critical_health']:.3f} or anomaly >= "
        f"{calibration['critical_anomaly']:.2f} (windows flagged on validation: "
        f"{calibration['false_alarm_measured']:.1%})"
    )


def recalibrate(
    path: str | Path,
    windows: Sequence[LabelledWindow],
    *,
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> dict[str, Any]:
    """Calibrate a saved checkpoint's thresholds on ``windows`` and save it again, weights,
    contract and metadata unchanged but for the calibration.

    Returns:
        The calibration (:func:`calibrate`).
    """
    from dataclasses import replace

    from worker.model.loader import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(path)
    calibration = calibrate(loaded.model, windows, false_alarm=false_alarm)
    if calibration["calibrated"]:
        metadata = replace(loaded.metadata, calibration=calibration)
        save_checkpoint(path, model=loaded.model, contract=loaded.contract, metadata=metadata)
    return calibration
