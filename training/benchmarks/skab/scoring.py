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

    FAR = FP / (FP + TN) * 100; MAR = FN / (FN + TP) * 100; F1 = 2 TP / (2 TP + FP + FN)
    (0 where a denominator is 0).

    Shapes:
        labels, predicted: ``[N]`` of 0/1.
    """
    truth, alarm = np.asarray(labels) == 1, np.asarray(predicted) == 1
    tp = int((truth & alarm).sum())
    fp = int((~truth & alarm).sum())
    fn = int((truth & ~alarm).sum())
    tn = int((~truth & ~alarm).sum())

    def ratio(num: float, den: float) -> float:
        return num / den if den else 0.0

    return {
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "far_pct": 100 * ratio(fp, fp + tn),
        "mar_pct": 100 * ratio(fn, fn + tp),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
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
