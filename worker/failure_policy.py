"""The failure policy: what becomes of failed messages, and of a consumer that keeps failing.

- A snapshot the model failed on alone is requeued; the ``max_failures_per_snapshot``-th
  time it is dead-lettered with reason ``model_failed``. The settings keep that number
  above the breaker's failure threshold, so that a model failing on everything opens the
  breaker (and its messages go to other workers) before a healthy snapshot can reach it.
- An unexpected error that escapes a batch requeues the batch once and makes its messages
  suspects: each comes back in a batch of its own, and one whose batch fails again alone is
  dead-lettered, ``unprocessable``, without being computed.
- The consumer loop restarts after such an error; past ``max_consumer_restarts`` in ten
  minutes the process ends (status 71) so that its supervisor starts a fresh one.

The counts are per outcome key, bounded (the oldest keys are forgotten first), and cleared
once a key's message is settled.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Sequence

from loguru import logger

from schemas import DeadLetterReason
from service import spans
from worker.messages import Incoming
from worker.pipeline import BatchResult, Finished, dead_letter

RESTARTS_EXIT_STATUS = 71
"""The process's exit status when the consumer keeps failing."""
RESTART_WINDOW_S = 600.0
"""Restarts older than this no longer count against ``max_consumer_restarts``."""
_REMEMBERED_KEYS = 10_000


class FailurePolicy:
    """Failure and crash counts per outcome key, and the consumer's restarts.

    Args:
        max_failures_per_snapshot: Model failures alone before ``model_failed``.
        max_consumer_restarts: Restarts in ten minutes before the process ends.
    """

    def __init__(self, *, max_failures_per_snapshot: int, max_consumer_restarts: int) -> None:
        self.max_failures_per_snapshot = max_failures_per_snapshot
        self.max_consumer_restarts = max_consumer_restarts
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._suspects: OrderedDict[str, int] = OrderedDict()  # key: loop crashes it was in
        self._restarts: deque[float] = deque()

    def __repr__(self) -> str:
        return (
            f"FailurePolicy(max_failures_per_snapshot={self.max_failures_per_snapshot}, "
            f"max_consumer_restarts={self.max_consumer_restarts}, "
            f"suspects={len(self._suspects)})"
        )

    # model failures ------------------------------------------------------------------

    def sort_model_failures(self, result: BatchResult) -> tuple[list[Finished], list[Incoming]]:
        """Count a model failure for each of ``result``'s failed messages.

        Returns:
            The messages failed for good (dead-lettered, ``model_failed``), and those to
            requeue.
        """
        failed_for_good: list[Finished] = []
        requeue: list[Incoming] = []
        for incoming, _ in result.failed:
            if self._count_failure(incoming.key) >= self.max_failures_per_snapshot:
                failed_for_good.append(self._failed_for_good(incoming, result.error))
            else:
                requeue.append(incoming)
        return failed_for_good, requeue

    def settled(self, key: str) -> None:
        """The message of ``key`` was stored and acknowledged: forget its counts."""
        self._failures.pop(key, None)
        self._suspects.pop(key, None)

    def _count_failure(self, key: str) -> int:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        self._failures.move_to_end(key)
        while len(self._failures) > _REMEMBERED_KEYS:
            self._failures.popitem(last=False)
        return count

    def _failed_for_good(self, incoming: Incoming, error: Exception | None) -> Finished:
        return dead_letter(
            incoming,
            DeadLetterReason.MODEL_FAILED.value,
            f"the model failed on this snapshot alone "
            f"{self.max_failures_per_snapshot} times: {error}",
        )

    # crashes -------------------------------------------------------------------------

    def is_suspect(self, key: str) -> bool:
        """Whether ``key`` was in a batch that failed unexpectedly (it goes alone then)."""
        return key in self._suspects

    def screen(self, batch: Sequence[Incoming]) -> tuple[list[Incoming], list[Finished]]:
        """Split ``batch`` into the messages to compute and those dead-lettered as
        ``unprocessable`` (their batch failed twice, the second time with them alone)."""
        fresh: list[Incoming] = []
        crashed: list[Finished] = []
        for incoming in batch:
            if self._suspects.get(incoming.key, 0) >= 2:
                crashed.append(
                    dead_letter(
                        incoming,
                        DeadLetterReason.UNPROCESSABLE.value,
                        "the worker failed twice on a batch holding this message, the second "
                        "time with it alone",
                    )
                )
            else:
                fresh.append(incoming)
        return fresh, crashed

    def requeue_crashed(self, batch: Sequence[Incoming]) -> None:
        """An unexpected error escaped ``batch``: requeue its unsettled messages and remember
        them, so that they come back one per batch (and one that fails alone again is
        dead-lettered)."""
        logger.error(
            "batch failed unexpectedly; requeued",
            keys=[incoming.key for incoming in batch][:50],
            snapshots=len(batch),
        )
        for incoming in batch:
            count = self._suspects.get(incoming.key, 0) + (2 if len(batch) == 1 else 1)
            self._suspects[incoming.key] = count
            self._suspects.move_to_end(incoming.key)
            try:
                if not incoming.message.acknowledged:
                    incoming.message.reject(requeue=True)
            except Exception as exc:  # the broker restores it after the visibility timeout
                logger.warning("requeue failed", key=incoming.key, error=str(exc))
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued")
        while len(self._suspects) > _REMEMBERED_KEYS:
            self._suspects.popitem(last=False)

    def restart_or_exit(self, stop: threading.Event) -> None:
        """Count a restart; past ``max_consumer_restarts`` in ten minutes, end the process
        (status 71) so that its supervisor starts a fresh one; else pause a second (or
        until ``stop``)."""
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW_S:
            self._restarts.popleft()
        limit = self.max_consumer_restarts
        if len(self._restarts) > limit:
            logger.critical("snapshot consumer keeps failing; ending the process", restarts=limit)
            os._exit(RESTARTS_EXIT_STATUS)
        stop.wait(1.0)
