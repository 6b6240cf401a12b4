"""The hydraulic benchmark's folds: grouped and random k-fold splits
(../shared/docs/BENCHMARKS.md "hydraulic"); accuracy and macro-F1 are
:func:`training.metrics.accuracy` and :func:`training.metrics.macro_f1` (scikit-learn)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def grouped_folds(groups: npt.NDArray[np.int64], folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold of each cycle such that every group lies in one fold.

    Groups are visited in a seeded random order and each goes to the fold with the fewest
    cycles so far, so that folds are about equal in size.

    Args:
        groups: Group id of each cycle (``0 .. G-1``).
        folds: Number of folds.
        seed: Seed of the group order.

    Returns:
        Fold index of each cycle.

    Raises:
        ValueError: Fewer groups than folds.

    Shapes:
        groups: ``[N]``; returned: ``[N]`` int64.
    """
    sizes = np.bincount(groups)
    if np.count_nonzero(sizes) < folds:
        raise ValueError(f"{np.count_nonzero(sizes)} groups cannot fill {folds} folds")
    load = np.zeros(folds, dtype=np.int64)
    fold_of_group = np.zeros(sizes.size, dtype=np.int64)
    for group in np.random.default_rng(seed).permutation(sizes.size):
        target = int(np.argmin(load))
        fold_of_group[group] = target
        load[target] += sizes[group]
    return fold_of_group[groups]


def random_folds(count: int, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold of each of ``count`` cycles, shuffled, sizes differing by at most one.

    Shapes:
        returned: ``[count]`` int64.
    """
    return np.random.default_rng(seed).permutation(np.arange(count, dtype=np.int64) % folds)
