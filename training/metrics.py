"""Quality metrics of numpy arrays, computed by scikit-learn.

Every function returns ``nan`` where scikit-learn would refuse or warn because the metric is
undefined for the input (no samples, or only one class for AUROC); :func:`finite_or_none`
turns that into JSON's ``null``. scikit-learn is imported by the functions, not by the module,
so that the CLI can convert metrics without the training extra.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def macro_f1(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Unweighted mean of per-class F1 over the classes present in truth or prediction
    (``sklearn.metrics.f1_score(..., average="macro")``).

    A class only predicted (never true) counts with F1 0; a class in neither is not scored.

    Args:
        y_true: True class labels (any values numpy can compare).
        y_pred: Predicted labels, same length.

    Returns:
        Macro-F1 in ``[0, 1]``; ``nan`` without samples.

    Shapes:
        y_true, y_pred: ``[M]``.
    """
    from sklearn.metrics import f1_score

    truth, guess = _pair(y_true, y_pred)
    if truth.size == 0:
        return math.nan
    return float(f1_score(truth, guess, average="macro", zero_division=0.0))


def per_class_f1(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """F1 of each class present in truth or prediction, keyed by ``str(label)``
    (``sklearn.metrics.f1_score(..., average=None)``).

    Shapes:
        y_true, y_pred: ``[M]``.
    """
    from sklearn.metrics import f1_score

    truth, guess = _pair(y_true, y_pred)
    if truth.size == 0:
        return {}
    labels = np.unique(np.concatenate([truth, guess]))
    scores = f1_score(truth, guess, labels=labels, average=None, zero_division=0.0)
    return {str(label): float(score) for label, score in zip(labels, scores, strict=True)}


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Share of correct predictions (``sklearn.metrics.accuracy_score``); ``nan`` without
    samples.

    Shapes:
        y_true, y_pred: ``[M]``.
    """
    from sklearn.metrics import accuracy_score

    truth, guess = _pair(y_true, y_pred)
    return float(accuracy_score(truth, guess)) if truth.size else math.nan


def mean_absolute_error(
    y_true: ArrayLike, y_pred: ArrayLike, where: ArrayLike | None = None
) -> float:
    """Mean of ``|y_true - y_pred|`` over ``where`` when given
    (``sklearn.metrics.mean_absolute_error``); ``nan`` without samples.

    Shapes:
        y_true, y_pred, where: ``[M]``.
    """
    from sklearn.metrics import mean_absolute_error as mae

    truth = np.asarray(y_true, dtype=np.float64)
    guess = np.asarray(y_pred, dtype=np.float64)
    if where is not None:
        chosen = np.asarray(where, dtype=bool)
        truth, guess = truth[chosen], guess[chosen]
    return float(mae(truth, guess)) if truth.size else math.nan


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
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``): the probability that a
    random positive scores higher than a random negative, ties counting one half.

    Args:
        scores: Higher means more likely positive.
        labels: True for positives.

    Returns:
        AUROC in ``[0, 1]``; ``nan`` when either class is absent.

    Shapes:
        scores, labels: ``[M]``.
    """
    from sklearn.metrics import roc_auc_score

    values = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(labels, dtype=bool)
    if values.shape != positive.shape:
        raise ValueError(f"scores have shape {values.shape}, labels {positive.shape}")
    if positive.all() or not positive.any():
        return math.nan
    return float(roc_auc_score(positive, values))


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    if truth.shape != guess.shape:
        raise ValueError(f"y_true has shape {truth.shape}, y_pred {guess.shape}")
    return truth, guess


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
