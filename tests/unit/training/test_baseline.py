from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from training.baseline import STATISTICS, WindowStatsBaseline, window_features
from training.comparison import FLAT_STD, MARGIN, honesty_warnings
from training.data.demo import LabelledWindow
from training.window_scores import undefined_reasons, window_metrics


def _poisoned(window: LabelledWindow, value: float) -> LabelledWindow:
    """The window with every masked sample replaced by ``value``."""
    x = np.where(window.sample.mask > 0, window.sample.x, np.float32(value))
    return replace(window, sample=replace(window.sample, x=x.astype(np.float32)))


def test_features_are_statistics_of_observed_samples_only(
    leak_windows: list[LabelledWindow],
) -> None:
    windows = leak_windows[:8]
    assert any((w.sample.mask == 0).any() for w in windows)  # the generator drops samples
    clean = window_features(windows)
    assert clean.shape == (8, len(STATISTICS) * windows[0].sample.x.shape[0])
    for poison in (1e9, -1e9, float("nan")):
        assert np.array_equal(window_features([_poisoned(w, poison) for w in windows]), clean)


def test_a_sensor_without_observations_has_nan_features_and_the_forest_copes(
    leak_windows: list[LabelledWindow], other_windows: list[LabelledWindow]
) -> None:
    blind = []
    for window in leak_windows:
        mask = window.sample.mask.copy()
        mask[0] = 0.0
        x = window.sample.x * mask
        blind.append(replace(window, sample=replace(window.sample, x=x, mask=mask)))
    features = window_features(blind)
    sensors = blind[0].sample.x.shape[0]
    assert np.isnan(features[:, 0::sensors]).all()  # sensor 0, every statistic
    assert np.isfinite(features[:, 1:sensors]).all()
    predictions = WindowStatsBaseline(trees=20).fit(blind).predict([("other", other_windows)])
    assert predictions.fault_score.shape == (len(other_windows),)


def test_the_baseline_is_seeded_and_scored_by_the_shared_window_metrics(
    leak_windows: list[LabelledWindow], other_windows: list[LabelledWindow]
) -> None:
    runs = [("other", other_windows)]
    first = WindowStatsBaseline(trees=30, seed=3).fit(leak_windows).predict(runs)
    second = WindowStatsBaseline(trees=30, seed=3).fit(leak_windows).predict(runs)
    assert np.array_equal(first.fault_score, second.fault_score)
    assert np.array_equal(first.label_pred, second.label_pred)
    metrics = window_metrics(first)
    assert metrics["windows"] == len(other_windows)
    assert metrics["faulty_windows"] == sum(not w.healthy for w in other_windows)
    assert 0.0 <= metrics["window_anomaly_auroc"] <= 1.0
    assert math.isnan(metrics["anomaly_score_std"])  # the baseline has no anomaly score


def test_healthy_only_windows_have_reasons_instead_of_numbers(
    leak_windows: list[LabelledWindow],
) -> None:
    healthy = [w for w in leak_windows if w.healthy]
    predictions = WindowStatsBaseline(trees=10).fit(leak_windows).predict([("h", healthy)])
    metrics = window_metrics(predictions)
    assert math.isnan(metrics["window_anomaly_auroc"])
    assert math.isnan(metrics["fault_macro_f1"])  # not a flattering 1.0
    assert 0.0 <= metrics["false_alarm_rate"] <= 1.0
    reasons = undefined_reasons(predictions)
    assert reasons["window_anomaly_auroc"] == "validation has no faulty window"
    assert reasons["fault_macro_f1"].startswith("validation has no faulty component")


def test_warnings_name_the_metric_the_numbers_and_the_margin() -> None:
    gnn = {"window_anomaly_auroc": 0.52, "fault_macro_f1": 0.9, "fault_score_std": 0.001}
    gnn["anomaly_score_std"] = 0.4
    baseline = {"window_anomaly_auroc": 0.955, "fault_macro_f1": 0.5}
    warnings = honesty_warnings(gnn, baseline, {})
    assert len(warnings) == 2
    assert "window anomaly AUROC: 0.520 against 0.955" in warnings[0]
    assert f"must win by at least {MARGIN:g}" in warnings[0]
    assert "fault probability barely varies" in warnings[1]
    assert f"below {FLAT_STD:g}" in warnings[1]
    tied = {**gnn, "window_anomaly_auroc": 0.96, "fault_score_std": 0.2}
    assert len(honesty_warnings(tied, baseline, {})) == 1  # within the margin: still not better
    better = {**tied, "window_anomaly_auroc": 0.99}
    assert honesty_warnings(better, baseline, {}) == []
    undefined = {"window_anomaly_auroc": "validation has no faulty window"}
    assert honesty_warnings(tied, baseline, undefined) == []


def test_where_a_failure_is_in_sight_the_baseline_estimates_remaining_life(
    leak_windows: list[LabelledWindow], other_windows: list[LabelledWindow]
) -> None:
    from machines import RUL_CAP_HOURS

    predictions = WindowStatsBaseline(trees=20).fit(leak_windows).predict([("o", other_windows)])
    assert np.isfinite(predictions.rul_pred).all()
    in_sight = predictions.rul_true < RUL_CAP_HOURS
    assert in_sight.any()
    expected = np.sqrt(
        np.mean(
            (
                np.clip(predictions.rul_pred[in_sight], 0, RUL_CAP_HOURS)
                - predictions.rul_true[in_sight]
            )
            ** 2
        )
    )
    assert window_metrics(predictions)["rul_rmse_hours"] == expected
    # Healthy training windows only: no failure in sight, no estimate, and a reason.
    healthy = [w for w in leak_windows if w.healthy and (w.rul_hours >= RUL_CAP_HOURS).all()]
    blind = WindowStatsBaseline(trees=10).fit(healthy).predict([("h", healthy)])
    assert np.isnan(blind.rul_pred).all()
    assert math.isnan(window_metrics(blind)["rul_rmse_hours"])
    assert "no component with a failure in sight" in undefined_reasons(blind)["rul_rmse_hours"]


def test_a_remaining_life_error_not_lower_than_the_baseline_is_a_warning() -> None:
    baseline = {"rul_rmse_hours": 40.0}
    assert honesty_warnings({"rul_rmse_hours": 39.9}, baseline, {})  # within 1 %
    (warning,) = honesty_warnings({"rul_rmse_hours": 45.0}, baseline, {})
    assert "remaining-life RMSE (hours): 45.0 against 40.0" in warning
    assert honesty_warnings({"rul_rmse_hours": 30.0}, baseline, {}) == []


def test_level_with_a_perfect_baseline_is_no_warning() -> None:
    baseline = {"fault_macro_f1": 1.0}
    assert honesty_warnings({"fault_macro_f1": 1.0}, baseline, {}) == []
    assert honesty_warnings({"fault_macro_f1": 0.98}, baseline, {})
