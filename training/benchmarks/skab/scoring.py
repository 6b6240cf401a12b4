"""SKAB scoring: point-wise metrics, the prefix threshold, and the PCA T²+Q baseline."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def trailing_mean(series: FloatArray, steps: int) -> FloatArray:
    """Mean of each row and the ``steps - 1`` rows before it (fewer at the start).

    Shapes:
        series, returned: ``[R]``.
    """
    cumulative = np.concatenate([[0.0], np.cumsum(series)])
    end = np.arange(1, len(series) + 1)
    start = np.maximum(end - steps, 0)
    mean: FloatArray = (cumulative[end] - cumulative[start]) / (end - start)
    return mean


def prefix_threshold(scores: FloatArray, train_rows: int, quantile: float, factor: float) -> float:
    """The alarm threshold from the training prefix's scores only.

    Shapes:
        scores: ``[R]`` (only ``[:train_rows]`` is read).
    """
    return float(np.quantile(scores[:train_rows], quantile) * factor)


def point_metrics(labels: IntArray, predicted: IntArray) -> dict[str, float]:
    """Point-wise F1, false alarm rate and missed alarm rate.

    F1, precision and recall are scikit-learn's (``pos_label=1``, ``zero_division=0``);
    FAR = FP / (FP + TN) * 100 and MAR = FN / (FN + TP) * 100 (0 where a denominator is 0)
    from its confusion matrix.

    Shapes:
        labels, predicted: ``[N]`` of 0/1.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    truth = (np.asarray(labels) == 1).astype(np.int64)
    alarm = (np.asarray(predicted) == 1).astype(np.int64)
    if truth.size == 0:  # scikit-learn refuses empty input; every rate is 0 by the rule above
        return dict.fromkeys(("f1", "far_pct", "mar_pct", "precision", "recall"), 0.0)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth, alarm, average="binary", pos_label=1, zero_division=0.0
    )
    tn, fp, fn, tp = (int(n) for n in confusion_matrix(truth, alarm, labels=[0, 1]).ravel())

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    return {
        "f1": float(f1),
        "far_pct": 100 * ratio(fp, fp + tn),
        "mar_pct": 100 * ratio(fn, fn + tp),
        "precision": float(precision),
        "recall": float(recall),
    }


@dataclass(frozen=True)
class PcaFit:
    """PCA T²+Q control limits fitted on one training prefix."""

    mean: FloatArray
    scale: FloatArray
    components: FloatArray
    variances: FloatArray
    t2_limit: float
    q_limit: float


def fit_pca(train: FloatArray, variance: float, quantile: float, seed: int) -> PcaFit:
    """Standardise by the prefix, keep the components explaining ``variance``, and set the
    T² and Q limits at ``quantile`` of the prefix's own statistics.

    Shapes:
        train: ``[train_rows, 8]``.
    """
    from sklearn.decomposition import PCA

    mean = train.mean(axis=0)
    scale = np.where(train.std(axis=0) > 0, train.std(axis=0), 1.0)
    z = (train - mean) / scale
    pca = PCA(svd_solver="full", random_state=seed).fit(z)
    keep = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), variance) + 1)
    keep = min(keep, z.shape[1])
    fit = PcaFit(mean, scale, pca.components_[:keep], pca.explained_variance_[:keep], 0.0, 0.0)
    t2, q = pca_statistics(fit, train)
    return replace(
        fit, t2_limit=float(np.quantile(t2, quantile)), q_limit=float(np.quantile(q, quantile))
    )


def pca_statistics(fit: PcaFit, values: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Hotelling T² and squared prediction error Q of each row.

    Shapes:
        values: ``[R, 8]``; returned: ``[R]``, ``[R]``.
    """
    z = (values - fit.mean) / fit.scale
    t = z @ fit.components.T
    t2 = (t**2 / np.maximum(fit.variances, 1e-12)).sum(axis=1)
    q = ((z - t @ fit.components) ** 2).sum(axis=1)
    return t2, q
