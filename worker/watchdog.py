"""The batch watchdog: a batch's compute against its soft and hard time limits.

The consumer runs each batch's compute inside :meth:`BatchWatchdog.timing`; a thread of its
own runs :meth:`BatchWatchdog.watch`, which logs a batch past the soft limit (once) and ends
the process past the hard limit, as Celery does with a task past its hard limit. The
batch's unacknowledged messages are redelivered to another worker after the visibility
timeout, and nothing of the stuck batch was acked.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from loguru import logger

HARD_LIMIT_EXIT_STATUS = 70
"""The process's exit status when a batch passes its hard time limit."""


class BatchWatchdog:
    """Watches the batch in hand against its time limits.

    Args:
        soft_limit_s: Past this, the batch is logged, once.
        hard_limit_s: Past this, the process ends (status 70).
    """

    def __init__(self, *, soft_limit_s: float, hard_limit_s: float) -> None:
        self.soft_limit_s = soft_limit_s
        self.hard_limit_s = hard_limit_s
        self._started: float | None = None

    def __repr__(self) -> str:
        return f"BatchWatchdog(soft_limit_s={self.soft_limit_s}, hard_limit_s={self.hard_limit_s})"

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Time the block as the batch in hand."""
        self._started = time.monotonic()
        try:
            yield
        finally:
            self._started = None

    def watch(self, stop: threading.Event) -> None:
        """Check the batch in hand until ``stop`` is set (run on a thread of its own)."""
        warned_for = 0.0
        interval = max(0.001, min(0.05, self.soft_limit_s / 4))
        while not stop.wait(interval):
            started = self._started
            if started is None:
                continue
            running = time.monotonic() - started
            if running >= self.hard_limit_s:
                logger.critical(
                    "batch passed its hard time limit; ending the process",
                    running_s=round(running, 3),
                    limit_s=self.hard_limit_s,
                )
                os._exit(HARD_LIMIT_EXIT_STATUS)
            if running >= self.soft_limit_s and warned_for != started:
                warned_for = started
                logger.warning(
                    "batch passed its soft time limit",
                    running_s=round(running, 3),
                    limit_s=self.soft_limit_s,
                )
