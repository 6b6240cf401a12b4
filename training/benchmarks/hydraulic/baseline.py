"""The hydraulic benchmark's classical baseline: a seeded random forest per target on
per-cycle statistics of the eight 1 Hz sensors, fitted on the training cycles of a fold."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from training.benchmarks.hydraulic.dataset import TARGETS, HydraulicData


def cycle_features(readings: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per-cycle statistics of every sensor: mean, std, min, max, first, last, slope.

    Args:
        readings: Cycles.

    Returns:
        Seven statistics per sensor, grouped by statistic.

    Shapes:
        readings: ``[N, S, T]``; returned: ``[N, 7 * S]``.
    """
    steps = np.arange(readings.shape[2], dtype=np.float64)
    centred = steps - steps.mean()
    slope = (readings * centred).sum(axis=2) / np.sum(centred**2)
    stats = [
        readings.mean(axis=2),
        readings.std(axis=2),
        readings.min(axis=2),
        readings.max(axis=2),
        readings[:, :, 0],
        readings[:, :, -1],
        slope,
    ]
    return np.concatenate(stats, axis=1)


def baseline_predictions(
    train: HydraulicData, test: HydraulicData, *, trees: int, seed: int
) -> dict[str, npt.NDArray[np.int64]]:
    """A seeded random forest per target on :func:`cycle_features`, fitted on ``train``.

    Returns:
        Predicted class of each test cycle, per target name.
    """
    from sklearn.ensemble import RandomForestClassifier

    train_x, test_x = cycle_features(train.readings), cycle_features(test.readings)
    out: dict[str, npt.NDArray[np.int64]] = {}
    for target in TARGETS:
        forest = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=1)
        forest.fit(train_x, train.labels[target.name])
        out[target.name] = np.asarray(forest.predict(test_x), dtype=np.int64)
    return out
