"""Status thresholds calibrated on healthy validation windows, stored with the checkpoint,
applied by workers, and the alarm report that measures them on other runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from machines import generate
from service.settings import DiagnosisSettings
from training.alarms import alarm_report
from training.calibration import MIN_HEALTHY_WINDOWS, calibrate, recalibrate, window_extremes
from training.data.demo import LabelledWindow, label_windows
from training.data.runs import RunWindows
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN
from worker.model.loader import CheckpointMetadata, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def healthy_windows(contract: FeatureContract) -> list[LabelledWindow]:
    """Three simulated hours of a healthy excavator, a window every 90 s."""
    run = generate("excavator", duration_s=3 * 3600, faults=[], seed=11)
    return label_windows(run, contract, stride_s=90)


@pytest.fixture
def model(tiny_config: ModelConfig, contract: FeatureContract) -> UniversalTemporalGNN:
    torch.manual_seed(0)
    return UniversalTemporalGNN(tiny_config, contract).eval()


def _flagged(extremes: dict[str, np.ndarray], rules: DiagnosisSettings) -> np.ndarray:
    return (
        (extremes["health"] < rules.warning_health)
        | (extremes["anomaly"] >= rules.warning_anomaly)
        | (extremes["fault_probability"] >= rules.fault_probability)
    )


def test_thresholds_flag_at_most_the_target_share_of_the_calibration_windows(
    model: UniversalTemporalGNN, healthy_windows: list[LabelledWindow]
) -> None:
    assert len(healthy_windows) >= MIN_HEALTHY_WINDOWS
    calibration = calibrate(model, healthy_windows, false_alarm=0.05)
    assert calibration["calibrated"] is True
    assert calibration["healthy_windows"] == len(healthy_windows)
    rules = DiagnosisSettings().for_model(calibration)
    assert rules.warning_health == calibration["warning_health"]
    assert rules.critical_health < rules.warning_health
    assert rules.critical_anomaly > rules.warning_anomaly
    flagged = _flagged(window_extremes(model, healthy_windows), rules)
    assert flagged.mean() <= 0.05
    assert flagged.mean() == pytest.approx(calibration["false_alarm_measured"])
    # An untrained model's fixed thresholds flag far more of the same healthy windows.
    fixed = _flagged(window_extremes(model, healthy_windows), DiagnosisSettings())
    assert fixed.mean() > flagged.mean()


def test_too_few_healthy_windows_give_no_calibration_and_say_why(
    model: UniversalTemporalGNN, leak_windows: list[LabelledWindow]
) -> None:
    calibration = calibrate(model, leak_windows)
    assert calibration["calibrated"] is False
    assert "healthy validation windows" in calibration["reason"]
    assert DiagnosisSettings().for_model(calibration) == DiagnosisSettings()


def test_workers_can_be_told_to_ignore_the_calibration(
    model: UniversalTemporalGNN, healthy_windows: list[LabelledWindow]
) -> None:
    calibration = calibrate(model, healthy_windows)
    fixed = DiagnosisSettings(calibrated=False)
    assert fixed.for_model(calibration) == fixed


def test_calibration_travels_in_the_checkpoint_and_weights_stay(
    model: UniversalTemporalGNN,
    contract: FeatureContract,
    healthy_windows: list[LabelledWindow],
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.gnnckpt"
    save_checkpoint(path, model=model, contract=contract, metadata=CheckpointMetadata("m", "1"))
    before = load_checkpoint(path)
    assert before.metadata.calibration == {}
    calibration = recalibrate(path, healthy_windows)
    after = load_checkpoint(path)
    assert after.metadata.calibration == calibration
    assert after.sha256 == before.sha256  # same weights, only the metadata changed


def test_the_alarm_report_counts_false_alarms_and_the_detection_delay(
    model: UniversalTemporalGNN,
    contract: FeatureContract,
    healthy_windows: list[LabelledWindow],
    leak_windows: list[LabelledWindow],
) -> None:
    def windows_of(name: str, windows: list[LabelledWindow], stride_s: float) -> RunWindows:
        ends = np.arange(len(windows), dtype=np.float64) * stride_s + 60.0
        return RunWindows(
            name=name, system="excavator", duration_s=float(ends[-1]), windows=tuple(windows),
            starts_s=ends - 60.0, ends_s=ends, vocabulary=("normal",),
        )  # fmt: skip

    runs = [windows_of("healthy", healthy_windows, 90.0), windows_of("leak", leak_windows, 60.0)]
    never = DiagnosisSettings(warning_anomaly=999.0, critical_anomaly=1000.0, fault_probability=1.0,
                              warning_health=0.001, critical_health=0.0)  # fmt: skip
    quiet = alarm_report(model, never, runs, calibrated=False)
    healthy_count = sum(w.healthy for w in healthy_windows) + sum(w.healthy for w in leak_windows)
    assert quiet.healthy_windows == healthy_count
    assert quiet.false_alarms == 0
    assert quiet.faulty_runs == 1
    assert quiet.detections == (("leak", None),)
    loud = alarm_report(model, DiagnosisSettings(fault_probability=1e-6), runs, calibrated=False)
    assert loud.false_alarms == loud.healthy_windows  # every window is flagged
    assert loud.detections == (("leak", 0.0),)
    assert "of 1 faulty runs flagged" in loud.describe()


def test_a_few_dozen_healthy_windows_calibrate_and_say_what_they_can_promise(
    model: UniversalTemporalGNN, healthy_windows: list[LabelledWindow]
) -> None:
    from training.calibration import describe

    few = [w for w in healthy_windows if w.healthy][:40]
    calibration = calibrate(model, few)
    assert calibration["calibrated"] is True
    assert calibration["healthy_windows"] == 40
    # 40 windows cannot resolve a 1 % rate: each threshold sits beyond the most extreme one.
    assert calibration["false_alarm_bound"] == pytest.approx(3 / 41, abs=1e-6)
    assert calibration["false_alarm_measured"] == 0.0
    assert "at most 7.3% can be promised" in describe(calibration)
    many = calibrate(model, healthy_windows)
    assert many["false_alarm_bound"] <= 3 / (many["healthy_windows"] + 1) + 1e-6
