"""Alarms as an operator sees them: how often a healthy machine's diagnosis carries a warning,
and how soon a developing fault is flagged, under the thresholds a worker would apply.

A window is flagged when any component is ``warning`` or ``critical`` by
:func:`worker.postprocess.status_of` with the model's calibrated thresholds (or the fixed
ones): the same rule, on the same model outputs, as a served diagnosis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.settings import DiagnosisSettings
from training.calibration import window_extremes
from training.data.runs import RunWindows
from worker.model import UniversalTemporalGNN


@dataclass(frozen=True)
class AlarmReport:
    """False alarms on healthy windows and detection of faults, per run and overall.

    Attributes:
        calibrated: Whether the thresholds were the model's calibrated ones.
        healthy_windows: Windows in which no component had a fault (labels known).
        false_alarms: Of those, windows with a warning or critical component.
        faulty_runs: Runs with at least one window of an active fault.
        detections: Per faulty run: its name and the seconds from the first faulty window
            to the first flagged one at or after it (None: never flagged).
    """

    calibrated: bool
    healthy_windows: int
    false_alarms: int
    faulty_runs: int
    detections: tuple[tuple[str, float | None], ...]

    @property
    def false_alarm_rate(self) -> float | None:
        """Share of healthy windows flagged; None without healthy windows."""
        return self.false_alarms / self.healthy_windows if self.healthy_windows else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        delays = [delay for _, delay in self.detections if delay is not None]
        return {
            "thresholds": "calibrated" if self.calibrated else "fixed",
            "healthy_windows": self.healthy_windows,
            "false_alarms": self.false_alarms,
            "false_alarm_rate": self.false_alarm_rate,
            "faulty_runs": self.faulty_runs,
            "detected_runs": len(delays),
            "median_delay_s": float(np.median(delays)) if delays else None,
            "max_delay_s": max(delays) if delays else None,
            "runs": [{"run": name, "delay_s": delay} for name, delay in self.detections],
        }

    def describe(self) -> str:
        """One line for people."""
        thresholds = "the model's calibrated" if self.calibrated else "the fixed"
        if self.healthy_windows:
            rate = f"{self.false_alarms / self.healthy_windows:.1%}"
            healthy = f"warnings on {rate} of {self.healthy_windows} healthy windows"
        else:
            healthy = "no healthy window to measure false alarms on"
        summary = self.to_dict()
        if not self.faulty_runs:
            faults = "no faulty run to measure detection on"
        elif summary["detected_runs"]:
            faults = (
                f"{summary['detected_runs']} of {self.faulty_runs} faulty runs flagged, "
                f"median delay {summary['median_delay_s']:.0f} s after the first faulty window "
                f"(longest {summary['max_delay_s']:.0f} s)"
            )
        else:
            faults = f"none of {self.faulty_runs} faulty runs flagged"
        return f"alarms with {thresholds} thresholds: {healthy}; {faults}"


def alarm_report(
    model: UniversalTemporalGNN,
    rules: DiagnosisSettings,
    runs: Sequence[RunWindows],
    *,
    calibrated: bool,
) -> AlarmReport:
    """Flag every window of ``runs`` as a worker would, then count.

    Args:
        model: The model.
        rules: The thresholds a worker applies (``DiagnosisSettings.for_model``).
        runs: Labelled windows per run, in time order.
        calibrated: Whether ``rules`` came from the model's calibration (for the report).
    """
    healthy_windows = false_alarms = faulty_runs = 0
    detections: list[tuple[str, float | None]] = []
    for run in runs:
        if not run.windows:
            continue
        extremes = window_extremes(model, run.windows)
        flagged = (
            (extremes["health"] < rules.warning_health)
            | (extremes["anomaly"] >= rules.warning_anomaly)
            | (extremes["fault_probability"] >= rules.fault_probability)
        )
        healthy = np.array([window.healthy for window in run.windows])
        faulty = np.array([bool((window.fault_code > 0).any()) for window in run.windows])
        healthy_windows += int(healthy.sum())
        false_alarms += int((flagged & healthy).sum())
        if faulty.any():
            faulty_runs += 1
            onset = int(np.flatnonzero(faulty)[0])
            after = np.flatnonzero(flagged[onset:])
            delay = float(run.ends_s[onset + after[0]] - run.ends_s[onset]) if after.size else None
            detections.append((run.name, delay))
    return AlarmReport(calibrated, healthy_windows, false_alarms, faulty_runs, tuple(detections))
