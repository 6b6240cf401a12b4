"""The same-run baseline: a seeded tree ensemble on per-window statistics of each sensor.

A GNN that does not beat this baseline on the same training and validation windows has not
learned anything a random forest on window statistics would not: its figures need that
context. Features come from the encoded window (:class:`~worker.model.GraphSample`), so the
baseline sees exactly the samples the model sees, normalised the same way; masked samples
are left out of every statistic, and a sensor with no observed sample gets ``nan`` features
(scikit-learn's forests route missing values). One forest per machine predicts, from the
features, whether any component is faulty (the window's fault score) and each component's
fault label; where training windows have a failure in sight (a known remaining life below
the cap), one regression forest per machine and component estimates the remaining life too.
Its predictions go through the metric functions of :mod:`training.evaluate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from training.data.demo import LabelledWindow
from training.evaluate import UNKNOWN
from training.window_scores import WindowPredictions, window_predictions_of

if TYPE_CHECKING:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

STATISTICS: Final = ("mean", "std", "min", "max", "mean_abs_diff", "last")
"""Per-sensor statistics, in feature order (all sensors of one statistic, then the next)."""

DEFAULT_TREES: Final = 200


class BaselineError(ValueError):
    """The baseline cannot predict these windows (a machine it was not fitted on)."""


def window_features(windows: Sequence[LabelledWindow]) -> npt.NDArray[np.float64]:
    """:data:`STATISTICS` of each sensor over the observed samples of each window.

    Args:
        windows: Windows of one machine (same sensors).

    Returns:
        Features grouped by statistic; ``nan`` for a sensor without an observed sample
        (and ``mean_abs_diff`` without two consecutive observed samples).

    Shapes:
        returned: ``[W, len(STATISTICS) * S]``.
    """
    x = np.stack([w.sample.x for w in windows]).astype(np.float64)  # [W, S, T]
    seen = np.stack([w.sample.mask for w in windows]) > 0
    count = seen.sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(seen, x, 0.0).sum(axis=2) / count
        std = np.sqrt(np.where(seen, (x - mean[..., None]) ** 2, 0.0).sum(axis=2) / count)
        both = seen[..., 1:] & seen[..., :-1]
        steps = np.abs(np.diff(x, axis=2))
        mad = np.where(both, steps, 0.0).sum(axis=2) / both.sum(axis=2)
    low = np.where(seen, x, np.inf).min(axis=2)
    high = np.where(seen, x, -np.inf).max(axis=2)
    last_index = x.shape[2] - 1 - np.argmax(seen[..., ::-1], axis=2)
    last = np.take_along_axis(x, last_index[..., None], axis=2)[..., 0]
    none = count == 0
    stats = [mean, std, low, high, mad, last]
    for values in stats:
        values[none] = np.nan
    return np.concatenate(stats, axis=1)


@dataclass(eq=False)
class WindowStatsBaseline:
    """One seeded random forest per machine on :func:`window_features`.

    Attributes:
        trees: Trees per forest.
        seed: Random state of every forest.
    """

    trees: int = DEFAULT_TREES
    seed: int = 0
    _forests: dict[str, RandomForestClassifier] = field(default_factory=dict, repr=False)
    _vocabularies: dict[str, npt.NDArray[np.str_]] = field(default_factory=dict, repr=False)
    _lives: dict[str, list[RandomForestRegressor | float]] = field(default_factory=dict, repr=False)

    def fit(self, windows: Sequence[LabelledWindow]) -> WindowStatsBaseline:
        """Fit a forest per machine on exactly ``windows`` (but those of a recorded run
        whose faulty-or-not status is unknown).

        Targets: column 0 whether any component is faulty, then each component's fault
        code (an index into ``("normal", *fault_ids)``, -1 unknown).

        Raises:
            ValueError: No windows.
        """
        from sklearn.ensemble import RandomForestClassifier

        if not windows:
            raise ValueError("the baseline needs training windows")
        known = [w for w in windows if w.healthy or bool((w.fault_code > 0).any())]
        for system, chunk in _by_system(known).items():
            faulty = [int((w.fault_code > 0).any()) for w in chunk]
            targets = np.column_stack([faulty, np.stack([w.fault_code for w in chunk])])
            forest = RandomForestClassifier(
                n_estimators=self.trees, random_state=self.seed, n_jobs=1
            )
            forest.fit(window_features(chunk), targets)
            self._forests[system] = forest
            fault_ids = chunk[0].sample.graph.fault_ids
            self._vocabularies[system] = np.asarray(("normal", *fault_ids, UNKNOWN))
        for system, chunk in _by_system(windows).items():
            lives = _fit_lives(chunk, self.trees, self.seed)
            if lives is not None:
                self._lives[system] = lives
        return self

    @property
    def systems(self) -> tuple[str, ...]:
        """Machines fitted."""
        return tuple(sorted(self._forests))

    def predict(self, runs: Sequence[tuple[str, Sequence[LabelledWindow]]]) -> WindowPredictions:
        """Predict the windows of named runs.

        Raises:
            BaselineError: A window of a machine the baseline was not fitted on.
        """
        windows = [window for _, chunk in runs for window in chunk]
        names = np.asarray([name for name, chunk in runs for _ in chunk])
        unknown = sorted({w.system for w in windows} - set(self._forests))
        if unknown:
            raise BaselineError(
                f"the baseline has no training window of {', '.join(unknown)} "
                f"(fitted on {', '.join(self.systems) or 'nothing'})"
            )
        score = np.zeros(len(windows))
        labels: list[npt.NDArray[np.str_]] = [np.asarray([], dtype=str)] * len(windows)
        lives = [np.full(len(w.fault_code), np.nan) for w in windows]
        for system, rows in _rows_by_system(windows).items():
            forest = self._forests[system]
            features = window_features([windows[i] for i in rows])
            score[rows] = _positive_probability(forest, features)
            codes = np.asarray(forest.predict(features), dtype=np.int64)[:, 1:]
            for row, code in zip(rows, codes, strict=True):
                labels[row] = self._vocabularies[system][code]
            for component, model in enumerate(self._lives.get(system, [])):
                hours = (
                    np.full(len(rows), model)
                    if isinstance(model, float)
                    else np.asarray(model.predict(features), dtype=np.float64)
                )
                for row, value in zip(rows, hours, strict=True):
                    lives[row][component] = value
        return window_predictions_of(names, windows, score, labels, np.concatenate(lives))


def _fit_lives(
    windows: Sequence[LabelledWindow], trees: int, seed: int
) -> list[RandomForestRegressor | float] | None:
    """Per component, a regression forest of the remaining life on the windows where it is
    known, or the constant life of a component that never changes; None when no training
    window has a failure in sight (then the baseline gives no estimate)."""
    from sklearn.ensemble import RandomForestRegressor

    from machines import RUL_CAP_HOURS

    life = np.stack([w.rul_hours for w in windows]).astype(np.float64)  # [W, C]
    if not (np.isfinite(life) & (life < RUL_CAP_HOURS)).any():
        return None
    features = window_features(windows)
    models: list[RandomForestRegressor | float] = []
    for component in range(life.shape[1]):
        known = np.isfinite(life[:, component])
        values = life[known, component]
        if values.size == 0 or np.ptp(values) == 0:
            models.append(float(values[0]) if values.size else math.nan)
            continue
        forest = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1)
        forest.fit(features[known], values)
        models.append(forest)
    return models


def _positive_probability(
    forest: RandomForestClassifier, features: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Probability of target 0 ("some component is faulty") being 1; 0 when training had no
    faulty window."""
    proba: Any = forest.predict_proba(features)
    first = np.asarray(proba[0], dtype=np.float64)
    classes = np.asarray(forest.classes_[0])
    if 1 not in classes:
        return np.zeros(features.shape[0])
    return first[:, int(np.flatnonzero(classes == 1)[0])]


def _by_system(windows: Sequence[LabelledWindow]) -> dict[str, list[LabelledWindow]]:
    out: dict[str, list[LabelledWindow]] = {}
    for window in windows:
        out.setdefault(window.system, []).append(window)
    return out


def _rows_by_system(windows: Sequence[LabelledWindow]) -> dict[str, npt.NDArray[np.int64]]:
    systems = np.asarray([w.system for w in windows])
    return {str(s): np.flatnonzero(systems == s) for s in np.unique(systems)}
