"""The broker-read queue gauges: depth, oldest message age and unacknowledged messages.

``QueueCollector`` asks the broker (Redis) at scrape time, one round trip per gauge, so the
numbers are never stale and nothing polls between scrapes. It is registered on every worker's
/metrics and on ``gnn-service exporter``, which serves the queue gauges without a worker. When
the broker does not answer, the scrape still succeeds and ``gnn_broker_up`` says 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class QueueCollector(Collector):
    """Queue depth, oldest message age and unacknowledged messages, read from the broker at
    scrape time (one Redis round trip each).

    Args:
        client_factory: Returns a redis client of the broker's database.
        queues: Queue names to report.
        unacked_key: The transport's hash of delivered, unacknowledged messages.
        published_header: Message header with the publish time (epoch seconds).
    """

    def __init__(
        self,
        client_factory: Callable[[], Any],
        queues: Iterable[str],
        *,
        unacked_key: str = "unacked",
        published_header: str = "gnn_published_at",
    ) -> None:
        self._client_factory = client_factory
        self.queues = tuple(queues)
        self.unacked_key = unacked_key
        self.published_header = published_header

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        depth, age, unacked, up = self._families()
        try:
            client = self._client_factory()
            for queue in self.queues:
                depth.add_metric([queue], float(client.llen(queue)))
                oldest = client.lindex(queue, -1)  # kombu LPUSHes and BRPOPs: oldest at the tail
                age.add_metric([queue], self._age(oldest))
            unacked.add_metric([], float(client.hlen(self.unacked_key)))
            up.add_metric([], 1.0)
        except Exception:  # the broker is down: say so, do not fail the scrape
            up.add_metric([], 0.0)
        yield from (depth, age, unacked, up)

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "gnn_queue_depth_messages", "Messages waiting in the queue.", labels=["queue"]
            ),
            GaugeMetricFamily(
                "gnn_queue_oldest_message_age_seconds",
                "Age of the oldest waiting message (0 when empty or unknown).",
                labels=["queue"],
            ),
            GaugeMetricFamily(
                "gnn_queue_unacked_messages",
                "Messages delivered to workers and not yet acknowledged.",
            ),
            GaugeMetricFamily("gnn_broker_up", "1 when the broker answered this scrape."),
        )

    def _age(self, raw: bytes | None) -> float:
        if raw is None:
            return 0.0
        try:
            published = json.loads(raw)["headers"].get(self.published_header)
        except (ValueError, KeyError, TypeError, AttributeError):
            return 0.0
        return max(0.0, time.time() - float(published)) if published is not None else 0.0
