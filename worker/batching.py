"""Batch cutting: the consumer's buffer of received messages and the batches cut from it.

:class:`BatchBuffer` fetches messages from the queue (each recorded as delivered in the same
Redis step that takes it off, :class:`~worker.fetch.AtomicFetcher`), reads each one as it
is buffered (a message that cannot be read keeps its refusal and is dead-lettered with its
batch), and says when a batch is due: at ``max_batch_snapshots`` or ``max_batch_nodes``, or
once the oldest has waited ``max_wait_ms``. Batches are cut at the snapshot and node bounds;
a suspect (a message whose batch failed unexpectedly) is cut alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from service import spans
from service.metrics import ServiceMetrics
from service.settings import BatchingSettings, SecuritySettings
from service.signing import SignatureVerifier
from worker.fetch import AtomicFetcher
from worker.messages import Incoming


class BatchBuffer:
    """Received messages waiting for their batch.

    Args:
        queue: The snapshot queue's name.
        batching: The batch bounds and waits.
        security: The limits each message is read under.
        verifier: Checks signed messages (None: signatures are not checked).
        stop: Set when the consumer stops (a batch is due at once then).
        metrics: Where received messages are reported (None: nowhere).
    """

    def __init__(
        self,
        *,
        queue: str,
        batching: BatchingSettings,
        security: SecuritySettings,
        verifier: SignatureVerifier | None,
        stop: threading.Event,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.queue = queue
        self.batching = batching
        self.security = security
        self.verifier = verifier
        self.metrics = metrics
        self._stop = stop
        self._fetcher = AtomicFetcher(queue)
        self._buffer: list[Incoming] = []
        self._pending: deque[Any] = deque()  # fetched past the node bound: next batch
        self._nodes = 0

    def __repr__(self) -> str:
        return (
            f"BatchBuffer(queue={self.queue!r}, messages={len(self._buffer)}, nodes={self._nodes})"
        )

    def __len__(self) -> int:
        return len(self._buffer)

    @property
    def waiting(self) -> Sequence[Incoming]:
        """The buffered messages, oldest first."""
        return self._buffer

    def fill(self, connection: Any) -> None:
        """Receive messages until the batch is due (size, nodes or oldest's wait).

        Messages come from :class:`~worker.fetch.AtomicFetcher`; an empty queue is polled
        every ``poll_interval_ms``. Fetched messages past the node bound wait for the next
        batch.
        """
        batching = self.batching
        poll_s = batching.poll_interval_ms / 1000.0
        while (
            len(self._buffer) < batching.max_batch_snapshots
            and self._nodes < batching.max_batch_nodes
            and not self._stop.is_set()
        ):
            if self._pending:
                self._receive(self._pending.popleft())
                continue
            room = batching.max_batch_snapshots - len(self._buffer)
            fetched = self._fetcher.fetch(connection.default_channel, room)
            if fetched:
                self._pending.extend(fetched)
                continue
            if not self._buffer:
                self._stop.wait(poll_s)  # idle: back to the loop for stop, swaps, breaker
                return
            waited = time.monotonic() - self._buffer[0].received_monotonic
            remaining = batching.max_wait_ms / 1000.0 - waited
            if remaining <= 0:
                return
            self._stop.wait(min(poll_s, remaining))

    def due(self) -> bool:
        """Whether a batch is due; the buffer must not be empty."""
        batching = self.batching
        if (
            len(self._buffer) >= batching.max_batch_snapshots
            or self._nodes >= batching.max_batch_nodes
        ):
            return True
        waited = time.monotonic() - self._buffer[0].received_monotonic
        return waited * 1000.0 >= batching.max_wait_ms or self._stop.is_set()

    def closed_by(self) -> str:
        """Why the batch about to be cut closes: size, nodes, max_wait or shutdown."""
        batching = self.batching
        if len(self._buffer) >= batching.max_batch_snapshots:
            return "size"
        if self._nodes >= batching.max_batch_nodes:
            return "nodes"
        return "shutdown" if self._stop.is_set() else "max_wait"

    def take(self, alone: Callable[[str], bool]) -> list[Incoming]:
        """Cut the buffer at the snapshot and node bounds; the rest waits for the next batch.

        Args:
            alone: Whether a key's message must be a batch of its own; the first such
                message buffered is cut alone.
        """
        batching = self.batching
        for position, incoming in enumerate(self._buffer):
            if alone(incoming.key):
                del self._buffer[position]
                self._nodes -= incoming.nodes
                return [incoming]
        size, nodes = 0, 0
        for incoming in self._buffer[: batching.max_batch_snapshots]:
            if size and nodes + incoming.nodes > batching.max_batch_nodes:
                break
            size += 1
            nodes += incoming.nodes
        batch, self._buffer = self._buffer[:size], self._buffer[size:]
        self._nodes -= nodes
        return batch

    def requeue(self) -> None:
        """Put every buffered and fetched message back on the queue."""
        for incoming in self._buffer:
            incoming.message.reject(requeue=True)
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued")
        while self._pending:
            self._pending.popleft().reject(requeue=True)
        self._buffer = []
        self._nodes = 0

    def forget(self) -> None:
        """Drop every reference: the connection is gone, and the broker restores unacked
        messages after the visibility timeout."""
        self._buffer = []
        self._pending.clear()
        self._nodes = 0

    def _receive(self, message: Any) -> None:
        """Buffer one message; never raises, whatever it holds (a message that cannot be
        read keeps its refusal and is dead-lettered with its batch)."""
        incoming = Incoming(message)
        incoming.prepare(self.security, self.verifier)
        try:
            incoming.trace_span = spans.start_snapshot_span(
                spans.SNAPSHOT_SPAN,
                spans.snapshot_context(incoming.headers),
                {
                    spans.ATTR_SNAPSHOT_ID: incoming.key,
                    spans.ATTR_CORRELATION_ID: incoming.correlation_id,
                    spans.ATTR_DESTINATION: self.queue,
                },
            )
        except Exception as exc:  # a trace header that cannot be read costs the span only
            logger.warning("snapshot span not started", key=incoming.key, error=str(exc))
        if self.metrics is not None:
            self.metrics.record_received(
                published_at=incoming.published_at,
                received_at=incoming.received_at,
                redelivered=incoming.redelivered,
                size_bytes=len(incoming.raw_body()),
            )
        self._buffer.append(incoming)
        self._nodes += incoming.nodes
