"""The snapshot consumer: reads the snapshot queue through kombu in micro-batches.

One ``SnapshotConsumer`` per worker process, on its own thread and broker connection, next
to Celery's own consumer (which keeps serving the control queue, ping and remote control).
Per batch: collect messages until ``max_batch_snapshots`` or ``max_batch_nodes`` is reached
or the oldest has waited ``max_wait_ms``; process them with ONE model forward; store every
outcome in the database (one transaction) and then in the result backend; only then
acknowledge. Why not celery-batches: its batch path skips acks-late
semantics, expiry and time limits, and it measured at under half the throughput of a direct
kombu loop, because Celery's per-message work in the main process became the ceiling.

Failure handling:
- nothing a message holds can raise out of the batch loop: a message that cannot be read
  (not a kombu envelope, bad headers, a body that is not a snapshot) is dead-lettered under
  its outcome key (``Incoming.key``) and acknowledged, never looped;
- one outcome per key: the database keeps the first outcome of a key, and the result backend
  is written with what the database holds, so a duplicate or redelivered message returns
  the stored outcome;
- a model failure splits the batch until the failures are isolated; healthy snapshots are
  diagnosed, the isolated ones requeued; a batch the model diagnosed none of counts against
  the circuit breaker; while it is open this consumer holds no messages; it half-opens after
  the reset timeout;
- a snapshot that fails the model alone ``max_failures_per_snapshot`` times here is
  dead-lettered with reason ``model_failed``; the settings keep that number above the
  breaker's failure threshold, so that a model failing on everything opens the breaker
  (and its messages go to other workers) before a healthy snapshot can reach it;
- the hard time limit covers a batch's compute; storing its outcomes has its own budget
  (``settle_budget_s``). When the database or the result backend is still failing when it is
  spent, the batch is requeued unacknowledged and the consumer stops consuming, probing the
  store that failed until it answers, then resumes by itself;
- an unexpected error in the loop is logged with the batch, the batch is requeued once (its
  messages come back one per batch; one that fails again is dead-lettered, ``unprocessable``)
  and the loop restarts; past ``max_consumer_restarts`` the process exits for its supervisor.
Shutdown finishes the batch in hand, acks it, and requeues everything still buffered.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import torch
from kombu.entity import Queue
from loguru import logger

from schemas import DeadLetterReason
from schemas.result import Diagnosed, ExpiredOutcome
from service import spans
from service.db.repositories import SavedCounts
from service.errors import DatabaseUnavailable, TransientError
from service.logging import log_context
from service.metrics import ServiceMetrics
from service.results import ResultBackendUnavailable, ResultWriter
from service.settings import Settings
from service.signing import SignatureVerifier
from worker.breaker import BreakerState, CircuitBreaker
from worker.engine import ModelRunner
from worker.fetch import AtomicFetcher, acknowledge, touch
from worker.messages import Incoming
from worker.pipeline import BatchProcessor, BatchResult, Finished, Outcome, dead_letter
from worker.resources import freeze_heap
from worker.storage import OutcomeStore

RunnerLoader = Callable[[], ModelRunner]
"""Loads and warms the active model version."""
VersionProbe = Callable[[], str]
"""Cheap: the active model version's token (changes when another version is activated)."""


class SnapshotConsumer:
    """Consumes snapshots in micro-batches on a thread of its own.

    Args:
        app: The Celery app (broker connection, result backend).
        settings: Service settings.
        load_runner: Loads and warms the active model version.
        probe_version: Token of the active version, checked between batches.
        processor_factory: Builds the batch processor for a runner.
        breaker: The circuit breaker around model execution.
        store: Where outcomes are stored (the database) before they are acknowledged.
        metrics: Where the consumer reports (None: nowhere).
    """

    def __init__(
        self,
        *,
        app: Any,
        settings: Settings,
        load_runner: RunnerLoader,
        probe_version: VersionProbe,
        processor_factory: Callable[[ModelRunner], BatchProcessor],
        breaker: CircuitBreaker,
        store: OutcomeStore,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.breaker = breaker
        self.store = store
        self.database_down = False
        self.results = ResultWriter(app.backend, task_name="gnn.diagnose")
        self._load_runner = load_runner
        self._probe_version = probe_version
        self._processor_factory = processor_factory
        self.metrics = metrics
        self._buffer: list[Incoming] = []
        self._pending: deque[Any] = deque()  # fetched past the node bound: next batch
        self._fetcher = AtomicFetcher(settings.worker.queue)
        self._buffered_nodes = 0
        self._stop = threading.Event()
        self._swap = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures: OrderedDict[str, int] = OrderedDict()
        self._suspects: OrderedDict[str, int] = OrderedDict()  # key: loop crashes it was in
        self._restarts: deque[float] = deque()
        self.backend_down = False
        self.processor: BatchProcessor | None = None
        trusted = settings.security.trusted_certificates
        self.verifier = (
            SignatureVerifier(trusted, settings.security.signing_digest) if trusted else None
        )
        self.ready = False
        self.error: str | None = None
        self._next_version_check = 0.0
        self._next_restore = 0.0
        self._batch_started: float | None = None
        self._version_token = ""
        self._lost_connection: tuple[type[BaseException], ...] = (OSError,)

    def __repr__(self) -> str:
        return (
            f"SnapshotConsumer(queue={self.settings.worker.queue!r}, ready={self.ready}, "
            f"breaker={self.breaker.state.value})"
        )

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load and warm the model, then consume, on a new thread; watch batch time limits."""
        if self._thread is not None:
            raise RuntimeError("snapshot consumer already started")
        self._thread = threading.Thread(target=self._main, name="gnn-batches", daemon=True)
        self._thread.start()
        threading.Thread(target=self._watch_time_limits, name="gnn-watchdog", daemon=True).start()

    def _watch_time_limits(self) -> None:
        """Soft limit: log. Hard limit: end the process, as Celery does with a task past its
        hard limit; the batch's unacknowledged messages are redelivered to another worker
        after the visibility timeout, and nothing of the stuck batch was acked."""
        limits = self.settings.worker
        warned_for = 0.0
        interval = max(0.001, min(0.05, limits.batch_soft_time_limit_s / 4))
        while not self._stop.wait(interval):
            started = self._batch_started
            if started is None:
                continue
            running = time.monotonic() - started
            if running >= limits.batch_hard_time_limit_s:
                logger.critical(
                    "batch passed its hard time limit; ending the process",
                    running_s=round(running, 3),
                    limit_s=limits.batch_hard_time_limit_s,
                )
                os._exit(70)
            if running >= limits.batch_soft_time_limit_s and warned_for != started:
                warned_for = started
                logger.warning(
                    "batch passed its soft time limit",
                    running_s=round(running, 3),
                    limit_s=limits.batch_soft_time_limit_s,
                )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand, requeue the rest, close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("snapshot consumer did not stop in time", timeout_s=timeout_s)
        self._thread = None

    @property
    def failed(self) -> bool:
        """Whether the consumer stopped without being asked to (liveness fails then, so
        that the supervisor restarts the process)."""
        if self.error is not None:
            return True
        thread = self._thread
        return thread is not None and not thread.is_alive() and not self._stop.is_set()

    def request_swap(self) -> None:
        """Check the active model version before the next batch (remote control)."""
        self._swap.set()

    # the batch loop ------------------------------------------------------------------

    def _main(self) -> None:
        try:
            runner = self._first_runner()
            if runner is None:
                return
            self.processor = self._processor_factory(runner)
            self._version_token = self._probe_version()
            self._freeze_heap()
            self.ready = True
            if self.metrics is not None:
                self.metrics.ready.set(1)
            logger.info(
                "snapshot consumer ready",
                model_version=runner.version,
                device=str(runner.device),
                warmup_s=round(runner.warmup_seconds or 0.0, 3),
            )
            self._consume_until_stopped()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            logger.exception("snapshot consumer stopped on an error")
        finally:
            self.ready = False
            if self.metrics is not None:
                self.metrics.ready.set(0)

    def _first_runner(self) -> ModelRunner | None:
        """Load the model to serve, waiting out a registry (database) outage."""
        while not self._stop.is_set():
            try:
                return self._timed_load(swap=False)
            except TransientError as exc:
                logger.warning("model registry unavailable; retrying the load", error=str(exc))
                self._stop.wait(self.settings.database.outage_probe_interval_s)
        return None

    def _consume_until_stopped(self) -> None:
        worker = self.settings.worker
        self._lost_connection = (OSError, *connection_errors(self.app))
        queue = Queue(worker.queue, routing_key=worker.queue)
        lost_connection = self._lost_connection
        while not self._stop.is_set():
            try:
                if self.database_down or self.backend_down:
                    self._wait_for_stores()
                    continue
                self._check_version()
                if not self.breaker.allows():
                    self._stop.wait(min(0.25, max(0.01, self.breaker.seconds_until_trial())))
                    continue
                with self.app.connection_for_read() as connection:
                    queue(connection.default_channel).declare()
                    self._consume_batches(connection)
                    self._requeue_buffer()
                # Leaving the block closed the channel: kombu returns anything still in
                # its unacked books to the queue.
            except lost_connection as exc:
                self._requeue_buffer_quietly()
                logger.warning("broker connection lost; reconnecting", error=str(exc))
                self._stop.wait(1.0)
            except Exception:
                logger.exception("snapshot consumer failed; restarting it")
                self._requeue_buffer_quietly()
                self._restart_or_exit()

    def _restart_or_exit(self) -> None:
        """Count a restart; past ``max_consumer_restarts`` in ten minutes, end the process
        (status 71) so that its supervisor starts a fresh one."""
        now = time.monotonic()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > 600:
            self._restarts.popleft()
        limit = self.settings.worker.max_consumer_restarts
        if len(self._restarts) > limit:
            logger.critical("snapshot consumer keeps failing; ending the process", restarts=limit)
            os._exit(71)
        self._stop.wait(1.0)

    def _consume_batches(self, connection: Any) -> None:
        """Batches until stopped or until the breaker opens."""
        while not self._stop.is_set():
            if self.database_down or self.backend_down:  # before the version check
                logger.error(
                    "outcome store unavailable: stopped consuming",
                    store="database" if self.database_down else "result_backend",
                )
                return
            self._check_version()
            if self.breaker.state is BreakerState.OPEN:
                logger.warning("circuit breaker open: stopped consuming")
                return
            self._restore_vanished(connection)
            self._fill(connection)
            if self._buffer and self._batch_due():
                self._run_batch(connection)

    def _restore_vanished(self, connection: Any) -> None:
        """Put messages of vanished workers back on the queue, every restore interval.

        kombu's Redis transport records each delivered message in an "unacked" index with
        its delivery time; Celery's own consumer scans that index from its event loop, which
        this loop replaces. A message still unacked after the visibility timeout belongs to
        a worker that died (a live one finishes or requeues every batch within the hard time
        limit, which the settings keep below the visibility timeout).
        """
        now = time.monotonic()
        if now < self._next_restore:
            return
        broker = self.settings.broker
        self._next_restore = now + broker.restore_check_interval_s
        channel = connection.default_channel
        qos: Any = getattr(channel, "qos", None)
        if qos is None or not hasattr(qos, "restore_visible"):
            return  # a transport without visibility bookkeeping
        with channel.conn_or_acquire() as client:
            due = int(client.zcount(qos.unacked_index_key, 0, time.time() - qos.visibility_timeout))
        if due == 0:
            return
        qos.restore_visible(num=broker.restore_scan_limit, interval=1)
        logger.warning("restored messages of vanished workers", count=due)
        if self.metrics is not None:
            self.metrics.restored.inc(due)

    def _check_version(self) -> None:
        now = time.monotonic()
        if now >= self._next_version_check or self._swap.is_set():
            self._maybe_swap()
            self._next_version_check = now + self.settings.model.registry_check_interval_s

    def _receive(self, message: Any) -> None:
        """Buffer one message; never raises, whatever it holds (a message that cannot be
        read keeps its refusal and is dead-lettered with its batch)."""
        incoming = Incoming(message)
        incoming.prepare(self.settings.security, self.verifier)
        try:
            incoming.trace_span = spans.start_snapshot_span(
                spans.SNAPSHOT_SPAN,
                spans.snapshot_context(incoming.headers),
                {
                    spans.ATTR_SNAPSHOT_ID: incoming.key,
                    spans.ATTR_CORRELATION_ID: incoming.correlation_id,
                    spans.ATTR_DESTINATION: self.settings.worker.queue,
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
        self._buffered_nodes += incoming.nodes

    def _fill(self, connection: Any) -> None:
        """Receive messages until the batch is due (size, nodes or oldest's wait).

        Messages come from :class:`~worker.fetch.AtomicFetcher` (each recorded as delivered
        in the same Redis step that takes it off the queue); an empty queue is polled every
        ``poll_interval_ms``. Fetched messages past the node bound wait for the next batch.
        """
        batching = self.settings.batching
        poll_s = batching.poll_interval_ms / 1000.0
        while (
            len(self._buffer) < batching.max_batch_snapshots
            and self._buffered_nodes < batching.max_batch_nodes
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

    def _batch_due(self) -> bool:
        batching = self.settings.batching
        if (
            len(self._buffer) >= batching.max_batch_snapshots
            or self._buffered_nodes >= batching.max_batch_nodes
        ):
            return True
        waited = time.monotonic() - self._buffer[0].received_monotonic
        return waited * 1000.0 >= batching.max_wait_ms or self._stop.is_set()

    def _run_batch(self, connection: Any) -> None:
        assert self.processor is not None
        closed_by = self._closed_by()
        batch = self._take_batch()
        touch([item.message for item in (*batch, *self._buffer)], connection.default_channel)
        closed_at = time.monotonic()
        waited = closed_at - batch[0].received_monotonic
        version = self.processor.runner.version
        with (
            log_context(batch_size=len(batch), model_version=version),
            spans.batch_span(
                [item.trace_span for item in batch],
                {spans.ATTR_MODEL_VERSION: version, spans.ATTR_BATCH_SIZE: len(batch)},
            ),
        ):
            try:
                result = self._compute(batch)
                if self.metrics is not None:
                    self.metrics.record_batch(
                        snapshots=len(batch),
                        nodes=sum(incoming.nodes for incoming in batch),
                        closed_by=closed_by,
                        waits_s=[closed_at - item.received_monotonic for item in batch],
                        timings=result.timings,
                    )
                self._settle(result)
            except self._lost_connection:
                raise
            except Exception:
                self._requeue_crashed(batch)
                raise
            if self.metrics is not None:
                self.metrics.batch_seconds.observe(time.monotonic() - closed_at)
                self._report_resources(result)
            logger.debug(
                "batch settled",
                snapshots=len(batch),
                nodes=result.nodes,
                diagnosed=result.count("diagnosed"),
                expired=result.count("expired"),
                dead_lettered=result.count("dead_lettered"),
                requeued_or_failed=len(result.failed),
                wait_ms=round(waited * 1000.0, 1),
            )

    def _compute(self, batch: list[Incoming]) -> BatchResult:
        """Decode, admit and diagnose ``batch`` under the hard time limit's watch."""
        assert self.processor is not None
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
        self._batch_started = time.monotonic()
        try:
            result = self.processor.process(fresh) if fresh else BatchResult()
        finally:
            self._batch_started = None
        result.finished.extend(crashed)
        return result

    def _requeue_crashed(self, batch: list[Incoming]) -> None:
        """An unexpected error escaped a batch: requeue its unsettled messages and remember
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
        while len(self._suspects) > 10_000:
            self._suspects.popitem(last=False)

    def _closed_by(self) -> str:
        """Why the batch about to be cut closes: size, nodes, max_wait or shutdown."""
        batching = self.settings.batching
        if len(self._buffer) >= batching.max_batch_snapshots:
            return "size"
        if self._buffered_nodes >= batching.max_batch_nodes:
            return "nodes"
        return "shutdown" if self._stop.is_set() else "max_wait"

    def _report_resources(self, result: BatchResult) -> None:
        assert self.metrics is not None
        assert self.processor is not None
        runner = self.processor.runner
        self.metrics.record_device(runner.memory(), threads=torch.get_num_threads())
        self.metrics.oom.inc(result.out_of_memory)
        self.metrics.batch_splits.inc(result.splits)
        pool = self.store.resources.database.pool_status()
        self.metrics.record_pool(
            size=pool.size, checked_out=pool.checked_out, overflow=pool.overflow
        )

    def _take_batch(self) -> list[Incoming]:
        """Cut the buffer at the snapshot and node bounds; the rest waits for the next batch."""
        batching = self.settings.batching
        for position, incoming in enumerate(self._buffer):
            if incoming.key in self._suspects:  # was in a batch that failed: alone
                del self._buffer[position]
                self._buffered_nodes -= incoming.nodes
                return [incoming]
        size, nodes = 0, 0
        for incoming in self._buffer[: batching.max_batch_snapshots]:
            if size and nodes + incoming.nodes > batching.max_batch_nodes:
                break
            size += 1
            nodes += incoming.nodes
        batch, self._buffer = self._buffer[:size], self._buffer[size:]
        self._buffered_nodes -= nodes
        return batch

    def _settle(self, result: BatchResult) -> None:
        """Store the batch's outcomes (database, then result backend), then acknowledge;
        requeue the isolated model failures; on a store outage requeue everything."""
        finished = list(result.finished)
        requeue: list[Incoming] = []
        if result.model_failed:
            self.breaker.record_failure()
        elif result.count("diagnosed"):
            self.breaker.record_success()
        self._count_failed(result)
        for incoming, _ in result.failed:
            if self._count_failure(incoming.key) >= self.settings.model.max_failures_per_snapshot:
                finished.append(self._failed_for_good(incoming, result.error))
            else:
                requeue.append(incoming)
        deadline = time.monotonic() + self.settings.worker.settle_budget_s
        started = time.perf_counter()
        try:
            with spans.stage_span(spans.STAGE_DB_WRITE, **{"db.rows": len(finished)}):
                saved, outcomes = self.store.save(finished, budget_s=deadline - time.monotonic())
            stored = time.perf_counter()
            with spans.stage_span(spans.STAGE_RESULT_BACKEND):
                self._store_results(outcomes, deadline)
        except (DatabaseUnavailable, ResultBackendUnavailable) as exc:
            self._requeue_unsettled(finished, requeue, exc)
            return
        done = time.perf_counter()
        acknowledge([item.incoming.message for item in finished])
        for item in finished:
            key = item.incoming.key
            outcome = outcomes.get(key, item.outcome)
            spans.end_snapshot_span(
                item.incoming.trace_span,
                outcome=outcome.outcome,
                attributes={spans.ATTR_SYSTEM_ID: _system_id(outcome)},
            )
            self._failures.pop(key, None)
            self._suspects.pop(key, None)
            if outcome is not item.outcome:
                logger.warning(
                    "message answered with the outcome already stored for its key",
                    key=key,
                    stored=outcome.outcome,
                    carried=item.outcome.outcome,
                )
            logger.debug(
                "snapshot stored",
                key=key,
                snapshot_id=item.snapshot_id,
                system_id=_system_id(outcome),
                correlation_id=item.incoming.correlation_id,
                outcome=outcome.outcome,
            )
        for incoming in requeue:
            incoming.message.reject(requeue=True)
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued", error=result.error)
        if self.metrics is not None:
            self._report_settled(finished, len(requeue), saved, (stored - started, done - stored))

    def _requeue_unsettled(
        self, finished: list[Finished], requeue: list[Incoming], exc: Exception
    ) -> None:
        """A store stayed down through the settle budget: nothing is acked, every message
        of the batch goes back to the queue, and consumption pauses until it answers."""
        database = isinstance(exc, DatabaseUnavailable)
        store = "database" if database else "result_backend"
        logger.error("outcome store unavailable; batch requeued", store=store, error=str(exc))
        everything = [item.incoming for item in finished] + requeue
        for incoming in everything:
            incoming.message.reject(requeue=True)
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued", error=exc)
        if database:
            self._set_database_down(True)
        else:
            self.backend_down = True
            if self.metrics is not None:
                self.metrics.record_pause("result_backend", True)
        if self.metrics is not None:
            if database:
                self.metrics.db_errors.labels(kind="unavailable").inc()
            self.metrics.requeued.labels(reason=store).inc(len(everything))

    def _report_settled(
        self,
        finished: list[Finished],
        requeued: int,
        saved: SavedCounts,
        write_s: tuple[float, float],
    ) -> None:
        """Metrics of a settled batch: write times, rows, acks, requeues and outcomes."""
        assert self.metrics is not None
        metrics = self.metrics
        metrics.db_write.observe(write_s[0])
        metrics.backend_write.observe(write_s[1])
        for table, rows in saved.as_tables().items():
            metrics.db_rows.labels(table=table).inc(rows)
        metrics.acked.inc(len(finished))
        metrics.requeued.labels(reason="model_failed").inc(requeued)
        metrics.record_outcomes(
            (
                (item.spec.name if item.spec else "", item.incoming.published_at, item.outcome)
                for item in finished
            ),
            stored_at=time.time(),
        )

    def _count_failed(self, result: BatchResult) -> None:
        if self.metrics is not None and result.error is not None:
            error_type = type(result.error).__name__
            self.metrics.failed.labels(error_type=error_type).inc(len(result.failed))

    def _set_database_down(self, down: bool) -> None:
        self.database_down = down
        if self.metrics is not None:
            self.metrics.record_pause("database", down)

    def _store_results(self, outcomes: dict[str, Outcome], deadline: float) -> None:
        """Write the stored outcomes to the result backend under their keys (pollers ask
        by the snapshot id, which is the key for producers that follow the contract),
        retrying until ``deadline``.

        Raises:
            ResultBackendUnavailable: The backend still failed when the deadline came.
        """
        documents = [(key, outcome.model_dump_json()) for key, outcome in outcomes.items()]
        delay = 0.1
        while True:
            try:
                self.results.store(documents)
                return
            except TransientError as exc:
                left = deadline - time.monotonic()
                if self._stop.is_set() or left <= delay:
                    raise ResultBackendUnavailable(str(exc)) from exc
                logger.warning("storing outcomes failed; retrying", error=str(exc), delay_s=delay)
                if self.metrics is not None:
                    self.metrics.backend_retries.inc()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _count_failure(self, key: str) -> int:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        self._failures.move_to_end(key)
        while len(self._failures) > 10_000:
            self._failures.popitem(last=False)
        return count

    def _failed_for_good(self, incoming: Incoming, error: Exception | None) -> Finished:
        return dead_letter(
            incoming,
            DeadLetterReason.MODEL_FAILED.value,
            f"the model failed on this snapshot alone "
            f"{self.settings.model.max_failures_per_snapshot} times: {error}",
        )

    # breaker, database outage, swaps, requeue -----------------------------------------

    def _wait_for_stores(self) -> None:
        """Probe the store that failed until it answers (or the consumer stops)."""
        interval = self.settings.database.outage_probe_interval_s
        if self._stop.wait(interval):
            return
        if self.database_down and self.store.available(timeout_s=max(1.0, interval)):
            self._set_database_down(False)
            logger.info("database available again: resuming consumption")
        if self.backend_down and self.results.available():
            self.backend_down = False
            if self.metrics is not None:
                self.metrics.record_pause("result_backend", False)
            logger.info("result backend available again: resuming consumption")

    def _maybe_swap(self) -> None:
        self._swap.clear()
        try:
            token = self._probe_version()
        except TransientError as exc:
            logger.warning("model registry unavailable; serving the current model", error=str(exc))
            return
        if token == self._version_token:
            return
        assert self.processor is not None
        old = self.processor.runner.version
        try:
            runner = self._timed_load(swap=True)
        except Exception as exc:
            logger.error("new model version could not be loaded; keeping the old", error=str(exc))
            self._version_token = token
            if self.metrics is not None:
                self.metrics.model_swap_failures.inc()
            return
        self.processor = self._processor_factory(runner)
        self._version_token = token
        self._freeze_heap()
        logger.info("model swapped between batches", old=old, new=runner.version)

    def _freeze_heap(self) -> None:
        if self.settings.worker.freeze_heap:
            freeze_heap()

    def _timed_load(self, *, swap: bool) -> ModelRunner:
        started = time.perf_counter()
        runner = self._load_runner()
        if self.metrics is not None:
            self.metrics.record_model(
                version=runner.version,
                device=str(runner.device),
                load_s=time.perf_counter() - started,
                warmup_s=runner.warmup_seconds or 0.0,
                swap=swap,
            )
        return runner

    def _requeue_buffer(self) -> None:
        for incoming in self._buffer:
            incoming.message.reject(requeue=True)
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued")
        while self._pending:
            self._pending.popleft().reject(requeue=True)
        self._buffer = []
        self._buffered_nodes = 0

    def _requeue_buffer_quietly(self) -> None:
        # The connection is gone: the broker restores unacked messages after the
        # visibility timeout; forget our references.
        self._buffer = []
        self._pending.clear()
        self._buffered_nodes = 0


def _system_id(outcome: Outcome) -> str | None:
    if isinstance(outcome, Diagnosed):
        return outcome.diagnosis.system_id
    if isinstance(outcome, ExpiredOutcome):
        return outcome.expired.system_id
    return None


def connection_errors(app: Any) -> tuple[type[BaseException], ...]:
    """The broker library's connection-level errors for ``app``'s transport."""
    with app.connection_for_read() as connection:
        return tuple(connection.connection_errors) + tuple(connection.channel_errors)
