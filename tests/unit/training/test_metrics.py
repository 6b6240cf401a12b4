from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    accuracy,
    auroc,
    finite_or_none,
    macro_f1,
    mean_absolute_error,
    per_class_f1,
    rul_mae,
)


def test_macro_f1_averages_the_f1_of_every_class_present() -> None:
    # a: tp 1, 2 predicted, 2 true -> 0.5; b: tp 2, 3 predicted, 2 true -> 0.8; c: missed -> 0.
    truth = ["a", "a", "b", "b", "c"]
    guess = ["a", "b", "b", "b", "a"]
    assert macro_f1(truth, guess) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert per_class_f1(truth, guess) == pytest.approx({"a": 0.5, "b": 0.8, "c": 0.0})


def test_a_class_only_predicted_counts_with_f1_zero() -> None:
    # a: tp 1, 1 predicted, 2 true -> 2/3; b never true -> 0.
    assert macro_f1(["a", "a"], ["a", "b"]) == pytest.approx(1 / 3)


def test_a_class_never_predicted_counts_with_f1_zero() -> None:
    # a: tp 1, 3 predicted, 1 true -> 0.5; b and c never predicted -> 0.
    assert macro_f1(["a", "b", "c"], ["a", "a", "a"]) == pytest.approx(0.5 / 3)
    assert per_class_f1(["a", "b", "c"], ["a", "a", "a"]) == {"a": 0.5, "b": 0.0, "c": 0.0}


def test_macro_f1_is_one_for_perfect_predictions_and_nan_without_samples() -> None:
    assert macro_f1([0, 1, 2, 1], [0, 1, 2, 1]) == 1.0
    assert math.isnan(macro_f1([], []))
    assert per_class_f1([], []) == {}


def test_macro_f1_refuses_truth_and_prediction_of_different_lengths() -> None:
    with pytest.raises(ValueError, match=r"y_true has shape \(2,\), y_pred \(1,\)"):
        macro_f1([0, 1], [0])


def test_accuracy_is_the_share_of_correct_predictions_and_nan_without_samples() -> None:
    assert accuracy([0, 1, 1, 2], [0, 1, 2, 2]) == 0.75
    assert math.isnan(accuracy([], []))


def test_auroc_is_the_share_of_positive_negative_pairs_ranked_right() -> None:
    # Pairs (pos, neg): (0.35, 0.1) ok, (0.35, 0.4) wrong, (0.8, 0.1) ok, (0.8, 0.4) ok -> 3/4.
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([1, 2, 3], [False, True, True]) == 1.0
    assert auroc([3, 2, 1], [False, True, True]) == 0.0


def test_auroc_counts_ties_as_half() -> None:
    assert auroc([1.0, 1.0], [0, 1]) == pytest.approx(0.5)
    # pos 2 vs negs (1, 2): 1 + 0.5; pos 3 vs both: 2 -> 3.5 / 4.
    assert auroc([1.0, 2.0, 2.0, 3.0], [0, 0, 1, 1]) == pytest.approx(0.875)


def test_auroc_is_nan_with_one_class_only() -> None:
    assert math.isnan(auroc([0.2, 0.3], [1, 1]))
    assert math.isnan(auroc([0.2, 0.3], [0, 0]))


def test_auroc_agrees_with_counting_all_pairs_on_random_data() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 300).astype(float)  # many ties
    labels = rng.random(300) < 0.3
    pos, neg = scores[labels], scores[~labels]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auroc(scores, labels) == pytest.approx(pairs)


def test_mean_absolute_error_over_a_selection() -> None:
    assert mean_absolute_error([1.0, 0.5, 0.0], [0.5, 0.5, 1.0]) == pytest.approx(0.5)
    assert mean_absolute_error([1.0, 0.5, 0.0], [0.5, 0.5, 1.0], [True, True, False]) == 0.25
    assert math.isnan(mean_absolute_error([1.0], [0.0], [False]))


def test_rul_error_caps_both_sides_before_comparing() -> None:
    # 3000 h predicted for a capped 1000 h is no error; 15 h for 5 h is 10 h off.
    assert rul_mae([1000.0, 5.0], [3000.0, 15.0], cap_hours=1000.0, where=[True, True]) == 5.0
    assert rul_mae([1000.0, 5.0], [0.0, 15.0], cap_hours=1000.0, where=[False, True]) == 10.0


def test_non_finite_metrics_become_json_null_at_any_depth() -> None:
    metrics = {"a": math.nan, "b": {"c": math.inf, "d": 1.5}, "e": [math.nan, 2], "f": 3}
    assert finite_or_none(metrics) == {
        "a": None,
        "b": {"c": None, "d": 1.5},
        "e": [None, 2],
        "f": 3,
    }
