"""The producer client: validate, publish and poll snapshots.

Typical use::

    settings = Settings()
    with ProducerClient(settings) as client:
        handle = client.submit(snapshot)
        outcome = client.result(handle.snapshot_id, timeout=10)
        stored = client.history("excavator-7", limit=20)   # from the database

A snapshot is validated (schema, limits, known machine and sensors) before it is published,
so a bad one never reaches the queue: ``submit`` raises ``InvalidInput`` naming the field.
Publishing retries broker connection errors with backoff (``GNN_BROKER__PUBLISH_RETRIES``)
and then raises ``BrokerUnavailable``. Above ``GNN_PRODUCER__MAX_QUEUE_DEPTH`` messages in the
queue, ``submit`` waits for room or raises ``QueueFull`` (``GNN_PRODUCER__BACKPRESSURE``).

The message is a Celery task (protocol 2, JSON) named ``gnn.diagnose`` whose only argument
is the snapshot; its task id is the snapshot id. docs/messages.md documents it for producers
in other languages.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from kombu.exceptions import ChannelError, ContentDisallowed, DecodeError, OperationalError
from loguru import logger
from prometheus_client import CollectorRegistry

from machines.catalog import builtin_spec
from schemas import Diagnosis, Snapshot, SystemSpec
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome, parse_outcome
from service.admission import SpecResolver, admit, parse_snapshot
from service.celery_app import ServiceApp, create_service_app
from service.db.reader import DiagnosisReader
from service.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    QueueFull,
    RefusedContent,
)
from service.metrics import ProducerMetrics
from service.results import release_result
from service.settings import Settings, mask_url
from service.spans import (
    ATTR_CORRELATION_ID,
    ATTR_MESSAGE_ID,
    ATTR_SNAPSHOT_ID,
    ATTR_SYSTEM_ID,
    publish_span,
)
from service.wire import CORRELATION_HEADER, PUBLISHED_AT_HEADER, TASK_DIAGNOSE

#: Seconds a registered machine's spec is held before the registry is read again.
SPEC_HOLD_S = 30.0


class _SpecUnchecked(Exception):
    """The machine registry could not be read: the worker checks the snapshot instead."""


@dataclass(frozen=True)
class SnapshotHandle:
    """What ``submit`` returns: enough to poll for the outcome."""

    snapshot_id: str
    queue: str


class ProducerClient:
    """Publishes snapshots to the diagnosis queue and reads their outcomes.

    Args:
        settings: The service settings (broker, limits, backpressure).
        app: A Celery app to publish with; one is created from ``settings`` if omitted.
        resolve_spec: Finds a machine's spec by name (default: the built-in demo machines,
            then the machine registry of the configured database).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        app: ServiceApp | None = None,
        resolve_spec: SpecResolver | None = None,
    ) -> None:
        self.settings = settings
        self.app = app if app is not None else create_service_app(settings)
        self.queue = settings.worker.queue
        self._resolve_spec = resolve_spec or self._registered_spec
        self._specs: dict[str, tuple[float, SystemSpec | _SpecUnchecked | None]] = {}
        self._depth = 0
        self._depth_checked_at = float("-inf")
        self._closed = False
        self._reader = DiagnosisReader(settings)
        self.metrics_registry = CollectorRegistry()
        self.metrics = ProducerMetrics(self.metrics_registry)

    def __repr__(self) -> str:
        return f"ProducerClient(queue={self.queue!r}, closed={self._closed})"

    def __enter__(self) -> ProducerClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release broker connections; the client refuses use afterwards."""
        if not self._closed:
            self._closed = True
            self.app.close()
            self._reader.close()

    def validate(self, snapshot: Snapshot | Mapping[str, Any]) -> Snapshot:
        """Run every check the worker will run on the message.

        Raises:
            InvalidInput: Names the field and the reason.
        """
        parsed = parse_snapshot(snapshot if isinstance(snapshot, Snapshot) else dict(snapshot))
        try:
            admit(parsed, limits=self.settings.security, resolve_spec=self._resolve_spec)
        except _SpecUnchecked as exc:  # the worker checks it against the registry
            logger.debug(
                "machine registry not readable; spec checks left to the worker", error=str(exc)
            )
        body_size = len(parsed.model_dump_json())
        limit = self.settings.security.max_snapshot_bytes
        if body_size > limit:
            raise InvalidInput(
                f"snapshot {parsed.snapshot_id}: {body_size} bytes of JSON exceed "
                f"GNN_SECURITY__MAX_SNAPSHOT_BYTES ({limit})",
                reason="oversize",
                field="<body>",
                snapshot_id=parsed.snapshot_id,
            )
        return parsed

    def _registered_spec(self, name: str) -> SystemSpec:
        """A demo machine's spec, else the registered machine's. What the registry said of
        a name (or that it could not be read) is held for SPEC_HOLD_S."""
        try:
            return builtin_spec(name)
        except LookupError:
            pass
        held = self._specs.get(name)
        if held is None or time.monotonic() - held[0] >= SPEC_HOLD_S:
            held = self._specs[name] = (time.monotonic(), self._look_up(name))
        found = held[1]
        if isinstance(found, _SpecUnchecked):
            raise found
        if found is None:
            raise LookupError(
                f"no machine named {name!r} is registered in {mask_url(self.settings.database_url)}"
                " (gnn-service machines register SPEC.yaml)"
            )
        return found

    def _look_up(self, name: str) -> SystemSpec | _SpecUnchecked | None:
        try:
            found = self._reader.machine(name)
        except ConfigurationError:  # a database with no tables yet: nothing registered
            return None
        except Exception as exc:  # a producer may have no access to the database
            return _SpecUnchecked(str(exc))
        return None if found is None else found.spec

    def submit(self, snapshot: Snapshot | Mapping[str, Any]) -> SnapshotHandle:
        """Validate and publish one snapshot."""
        return self.submit_many([snapshot])[0]

    def submit_many(
        self, snapshots: Iterable[Snapshot | Mapping[str, Any]]
    ) -> list[SnapshotHandle]:
        """Validate every snapshot, then publish them over one broker connection.

        Nothing is published if any snapshot is invalid.
        """
        self._require_open()
        try:
            parsed = [self.validate(snapshot) for snapshot in snapshots]
        except InvalidInput as exc:
            self.metrics.refused.labels(reason=exc.reason).inc()
            raise
        handles = []
        published = self.metrics.published.labels(queue=self.queue)
        with self.app.producer_or_acquire() as producer:
            for snapshot in parsed:
                waited = time.perf_counter()
                self._wait_for_room()
                started = time.perf_counter()
                self.metrics.backpressure_seconds.inc(started - waited)
                self._publish(snapshot, producer)
                self.metrics.publish_seconds.observe(time.perf_counter() - started)
                published.inc()
                self._depth += 1
                handles.append(SnapshotHandle(snapshot.snapshot_id, self.queue))
        return handles

    def result(
        self, snapshot_id: str, timeout: float = 30.0
    ) -> Diagnosed | ExpiredOutcome | DeadLettered:
        """Wait for the outcome of a snapshot: diagnosed, expired or dead-lettered.

        Raises:
            TimeoutError: No outcome within ``timeout`` seconds.
            ModelError: The worker failed the snapshot (the message says why).
            RefusedContent: The stored result is not JSON (a pickled result is never read).
        """
        self._require_open()
        async_result = self.app.AsyncResult(snapshot_id)
        try:
            value = async_result.get(timeout=timeout, propagate=False, interval=0.05)
            failed = async_result.failed()
        except CeleryTimeoutError:
            raise TimeoutError(f"snapshot {snapshot_id}: no outcome within {timeout} s") from None
        except (DecodeError, ContentDisallowed) as exc:
            raise RefusedContent(
                f"snapshot {snapshot_id}: result refused, only JSON is read ({exc})",
                snapshot_id=snapshot_id,
            ) from None
        finally:
            release_result(async_result)
        if failed:
            raise ModelError(f"snapshot {snapshot_id}: worker failed: {value!r}")
        return parse_outcome(value)

    def history(
        self, system_id: str, *, since: datetime | None = None, limit: int = 100
    ) -> list[Diagnosis]:
        """A system's stored diagnoses, newest first, created at or after ``since``.

        Raises:
            ConfigurationError: The database has no tables yet.
        """
        self._require_open()
        return self._reader.history(system_id, since=since, limit=limit)

    def latest(self, system_id: str) -> Diagnosis | None:
        """A system's newest stored diagnosis, or None."""
        self._require_open()
        return self._reader.latest(system_id)

    def queue_depth(self) -> int:
        """Messages waiting in the snapshot queue (not counting prefetched ones).

        Raises:
            BrokerUnavailable: The broker cannot be reached.
        """
        self._require_open()
        try:
            with self.app.connection_for_read() as connection:
                try:
                    declared = connection.default_channel.queue_declare(
                        queue=self.queue, passive=True
                    )
                except ChannelError:
                    return 0  # an empty Redis queue does not exist as a key
                return int(declared.message_count)
        except OperationalError as exc:
            raise BrokerUnavailable(
                f"queue {self.queue}: broker unreachable while reading its depth ({exc})"
            ) from exc

    def _publish(self, snapshot: Snapshot, producer: Any) -> None:
        expires = None
        if snapshot.deadline is not None:
            if snapshot.deadline.timestamp() <= time.time():
                raise DeadlineExceeded(
                    f"snapshot {snapshot.snapshot_id}: deadline {snapshot.deadline} already passed",
                    snapshot_id=snapshot.snapshot_id,
                )
            expires = snapshot.deadline.isoformat()
        headers: dict[str, Any] = {PUBLISHED_AT_HEADER: time.time()}
        if snapshot.correlation_id is not None:
            headers[CORRELATION_HEADER] = snapshot.correlation_id
        # Built and sent in two steps rather than with app.send_task, which would also
        # subscribe this process to every snapshot's result channel: pollers subscribe
        # when they ask (result()), publishers need not hold thousands of subscriptions.
        amqp = self.app.amqp
        message = amqp.create_task_message(
            snapshot.snapshot_id,
            TASK_DIAGNOSE,
            args=[snapshot.model_dump(mode="json")],
            kwargs={},
            expires=expires,
            # Keep sensor payloads out of headers, logs and Flower.
            argsrepr=f"[snapshot {snapshot.snapshot_id}]",
            kwargsrepr="{}",
        )
        retries = self.settings.broker.publish_retries
        # A no-op unless tracing is configured: the span puts the trace context into
        # ``headers``, and the worker's snapshot span continues the trace from there.
        with publish_span(
            self.queue,
            headers,
            {
                ATTR_SNAPSHOT_ID: snapshot.snapshot_id,
                ATTR_SYSTEM_ID: snapshot.system_id,
                ATTR_CORRELATION_ID: snapshot.correlation_id,
                ATTR_MESSAGE_ID: snapshot.snapshot_id,
            },
        ):
            try:
                amqp.send_task_message(
                    producer,
                    TASK_DIAGNOSE,
                    message,
                    queue=self.queue,
                    headers=headers,
                    retry=retries > 0,
                    retry_policy={
                        "max_retries": retries,
                        "interval_start": 0.1,
                        "interval_step": 0.5,
                        "interval_max": 5.0,
                    },
                )
            except OperationalError as exc:
                raise BrokerUnavailable(
                    f"snapshot {snapshot.snapshot_id}: broker unreachable after {retries} "
                    f"retries ({exc})",
                    snapshot_id=snapshot.snapshot_id,
                ) from exc

    def _wait_for_room(self) -> None:
        config = self.settings.producer
        deadline = time.monotonic() + config.backpressure_timeout_s
        waited = False
        while True:
            now = time.monotonic()
            if now - self._depth_checked_at >= config.depth_check_interval_s:
                self._depth = self.queue_depth()
                self._depth_checked_at = now
            if self._depth < config.max_queue_depth:
                if waited:
                    logger.info("queue has room again", queue=self.queue, depth=self._depth)
                return
            if config.backpressure == "raise" or now >= deadline:
                raise QueueFull(
                    f"queue {self.queue} holds {self._depth} messages, at or above "
                    f"GNN_PRODUCER__MAX_QUEUE_DEPTH ({config.max_queue_depth})",
                    depth=self._depth,
                )
            if not waited:
                logger.info("backpressure: waiting for room", queue=self.queue, depth=self._depth)
                waited = True
            time.sleep(min(0.05, max(config.depth_check_interval_s, 0.01)))
            self._depth_checked_at = float("-inf")

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("ProducerClient is closed")
