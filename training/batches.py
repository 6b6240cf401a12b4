"""The training batches of an epoch: what :func:`training.fit.fit` iterates over.

A trainer hands :func:`~training.fit.fit` either a fixed sequence of batches or an
:class:`EpochBatches`, which draws them afresh each epoch; :class:`ShuffledBatches` is the
one every trainer of this project uses: a seeded permutation of its items per epoch, cut
into mini-batches that the trainer builds (and augments) as each step comes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

B = TypeVar("B")
B_co = TypeVar("B_co", covariant=True)


class EpochBatches(Protocol[B_co]):
    """Training batches drawn afresh each epoch; ``len`` is the steps per epoch."""

    def __len__(self) -> int: ...

    def __call__(self, epoch: int) -> Iterable[B_co]: ...


@dataclass(frozen=True, eq=False)
class ShuffledBatches(Generic[B]):
    """Each epoch, a permutation of ``count`` items drawn from ``rng``, cut into mini-batches
    of item indices that ``make`` turns into what the loss reads.

    ``make`` runs as each step comes, so the random draws of an augmentation it makes with
    ``rng`` interleave with the permutations in a fixed order.

    Attributes:
        count: Items to draw from.
        batch_size: Items per step (the last step of an epoch may have fewer).
        make: Builds a step's batch from its item indices (``[<= batch_size]`` int64).
        rng: Draws the permutations.
        per_epoch: Items drawn without replacement per epoch (None: all of them).
    """

    count: int
    batch_size: int
    make: Callable[[npt.NDArray[np.int64]], B]
    rng: np.random.Generator
    per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.batch_size < 1:
            raise ValueError(
                f"count and batch_size must be >= 1, got {self.count}, {self.batch_size}"
            )

    @property
    def drawn(self) -> int:
        """Items drawn per epoch."""
        return self.count if self.per_epoch is None else min(self.per_epoch, self.count)

    def __len__(self) -> int:
        return math.ceil(self.drawn / self.batch_size)

    def __call__(self, epoch: int) -> Iterator[B]:
        order = self.rng.permutation(self.count)[: self.drawn]
        for start in range(0, order.size, self.batch_size):
            yield self.make(order[start : start + self.batch_size])
