"""Restore scans: messages of vanished workers put back on the queue.

kombu's Redis transport records each delivered message in an "unacked" index with its
delivery time; Celery's own consumer scans that index from its event loop, which the
snapshot consumer's loop replaces, so the loop runs :class:`RestoreScan` between batches. A
message still unacked after the visibility timeout belongs to a worker that died (a live one
finishes or requeues every batch within the hard time limit, which the settings keep below
the visibility timeout).
"""

from __future__ import annotations

import time
from typing import Any

from loguru import logger

from service.metrics import ServiceMetrics


class RestoreScan:
    """Restores the messages of vanished workers, at most once per interval.

    Args:
        interval_s: Seconds between scans (``broker.restore_check_interval_s``).
        scan_limit: Messages restored per scan at most (``broker.restore_scan_limit``).
        metrics: Where restored messages are counted (None: nowhere).
    """

    def __init__(
        self, *, interval_s: float, scan_limit: int, metrics: ServiceMetrics | None = None
    ) -> None:
        self.interval_s = interval_s
        self.scan_limit = scan_limit
        self.metrics = metrics
        self._next = 0.0

    def __repr__(self) -> str:
        return f"RestoreScan(interval_s={self.interval_s}, scan_limit={self.scan_limit})"

    def run_if_due(self, connection: Any) -> None:
        """Scan ``connection``'s unacked index when the interval has passed; restore what
        has waited past the visibility timeout."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.interval_s
        channel = connection.default_channel
        qos: Any = getattr(channel, "qos", None)
        if qos is None or not hasattr(qos, "restore_visible"):
            return  # a transport without visibility bookkeeping
        with channel.conn_or_acquire() as client:
            due = int(client.zcount(qos.unacked_index_key, 0, time.time() - qos.visibility_timeout))
        if due == 0:
            return
        qos.restore_visible(num=self.scan_limit, interval=1)
        logger.warning("restored messages of vanished workers", count=due)
        if self.metrics is not None:
            self.metrics.restored.inc(due)
