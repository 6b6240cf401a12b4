"""Quality metrics as pure functions of numpy arrays (no scikit-learn needed).

Every function returns ``nan`` when its metric is undefined for the input (no samples, or
only one class for AUROC); :func:`finite_or_none` turns that into JSON's ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unweighted mean of per-class F1 over the classes present in truth or prediction.

    A class only predicted (never true) counts with F1 0, as scikit-learn's ``f1_score(...,
    average="macro")`` does.

    Args:
        y_true: True class labels (any hashable values numpy can compare).
        y_pred: Predicted labels, same length.

    Returns:
        Macro-F1 in ``[0, 1]``; ``nan`` without samples.

    Shapes:
        y_true, y_pred: ``[M]``.
    """
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    if truth.shape != guess.shape:
        raise ValueError(f"y_true has shape {truth.shape}, y_pred {guess.shape}")
    if truth.size == 0:
        return math.nan
    scores = []
    for label in np.unique(np.concatenate([truth, guess])):
        true_positive = float(np.sum((truth == label) & (guess == label)))
        predicted = float(np.sum(guess == label))
        actual = float(np.sum(truth == label))
        scores.append(2 * true_positive / (predicted + actual))
    return float(np.mean(scores))


def per_class_f1(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """F1 of each class present in truth or prediction, keyed by ``str(label)``.

    Shapes:
        y_true, y_pred: ``[M]``.
    """
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    result = {}
    for label in np.unique(np.concatenate([truth, guess])):
        true_positive = float(np.sum((truth == label) & (guess == label)))
        total = float(np.sum(guess == label) + np.sum(truth == label))
        result[str(label)] = 2 * true_positive / total
    return result


def mean_absolute_error(
    y_true: ArrayLike, y_pred: ArrayLike, where: ArrayLike | None = None
) -> float:
    """Mean of ``|y_true - y_pred|`` (over ``where`` when given); ``nan`` without samples.

    Shapes:
        y_true, y_pred, where: ``[M]``.
    """
    error = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))
    if where is not None:
        error = error[np.asarray(where, dtype=bool)]
    return float(error.mean()) if error.size else math.nan


def rul_mae(
    true_hours: ArrayLike, predicted_hours: ArrayLike, *, cap_hours: float, where: ArrayLike
) -> float:
    """Mean absolute error of remaining useful life in hours, both sides capped at
    ``cap_hours``, over the components selected by ``where`` (typically: with an active fault).

    Shapes:
        true_hours, predicted_hours, where: ``[M]``.
    """
    truth = np.clip(np.asarray(true_hours, dtype=np.float64), 0.0, cap_hours)
    guess = np.clip(np.asarray(predicted_hours, dtype=np.float64), 0.0, cap_hours)
    return mean_absolute_error(truth, guess, where)


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve: the probability that a random positive scores higher than a
    random negative (ties count one half), from the Mann-Whitney rank statistic.

    Args:
        scores: Higher means more likely positive.
        labels: True for positives.

    Returns:
        AUROC in ``[0, 1]``; ``nan`` when either class is absent.

    Shapes:
        scores, labels: ``[M]``.
    """
    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape:
        raise ValueError(f"scores have shape {values.shape}, labels {positive.shape}")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(values)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def average_ranks(values: ArrayLike) -> npt.NDArray[np.float64]:
    """1-based ranks with ties sharing the mean of their ranks.

    Shapes:
        values: ``[M]``; returned: ``[M]``.
    """
    data = np.asarray(values, dtype=np.float64)
    order = np.argsort(data, kind="mergesort")
    ordered = data[order]
    # Start and end of each run of equal values in sorted order.
    boundaries = np.flatnonzero(np.diff(ordered)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [data.size]])
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(data.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def finite_or_none(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The same (nested) metrics with every non-finite float replaced by ``None``."""
    return {str(key): _finite(value) for key, value in metrics.items()}


def _finite(value: Any) -> Any:
    if isinstance(value, Mapping):
        return finite_or_none(value)
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
