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

This module holds the thread and its loop; the pieces it drives live beside it:
:mod:`worker.batching` (buffering and cutting batches), :mod:`worker.settlement` (storing
outcomes, then acks), :mod:`worker.outage` (the store-down pause and its probes),
:mod:`worker.failure_policy` (model failures, crashed batches, suspects, restarts),
:mod:`worker.model_swap` (loading and swapping the model), :mod:`worker.restore` (restore
scans) and :mod:`worker.watchdog` (batch time limits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from kombu.entity import Queue
from loguru import logger

from service import spans
from service.logging import log_context
from service.metrics import ServiceMetrics
from service.results import ResultWriter
from service.settings import Settings
from service.signing import SignatureVerifier
from service.wire import TASK_DIAGNOSE
from worker.batching import BatchBuffer
from worker.breaker import BreakerState, CircuitBreaker
from worker.engine import ModelRunner
from worker.failure_policy import FailurePolicy
from worker.fetch import touch
from worker.messages import Incoming
from worker.model_swap import ModelSwapper, RunnerLoader, VersionProbe
from worker.outage import StoreOutage
from worker.pipeline import BatchProcessor, BatchResult
from worker.restore import RestoreScan
from worker.settlement import BatchSettler
from worker.storage import OutcomeStore
from worker.task_events import TaskEvents
from worker.watchdog import BatchWatchdog


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
        prepare: Runs before the first model load (reads the machines and model routes).
        also_check: Run between batches when the registry check is due.
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
        prepare: Callable[[], object] | None = None,
        also_check: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.app = app
        self.settings = settings
        self.breaker = breaker
        self.store = store
        self.results = ResultWriter(app.backend, task_name=TASK_DIAGNOSE)
        self.metrics = metrics
        trusted = settings.security.trusted_certificates
        self.verifier = (
            SignatureVerifier(trusted, settings.security.signing_digest) if trusted else None
        )
        self.ready = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost_connection: tuple[type[BaseException], ...] = (OSError,)
        self._models = ModelSwapper(
            load_runner=load_runner,
            probe_version=probe_version,
            processor_factory=processor_factory,
            check_interval_s=settings.model.registry_check_interval_s,
            freezes_heap=settings.worker.freeze_heap,
            metrics=metrics,
            prepare=prepare,
            also_check=also_check,
        )
        self._buffer = BatchBuffer(
            queue=settings.worker.queue,
            batching=settings.batching,
            security=settings.security,
            verifier=self.verifier,
            stop=self._stop,
            metrics=metrics,
        )
        self._policy = FailurePolicy(
            max_failures_per_snapshot=settings.model.max_failures_per_snapshot,
            max_consumer_restarts=settings.worker.max_consumer_restarts,
        )
        self._outage = StoreOutage(
            store=store,
            results=self.results,
            probe_interval_s=settings.database.outage_probe_interval_s,
            metrics=metrics,
        )
        self._settler = BatchSettler(
            breaker=breaker,
            store=store,
            results=self.results,
            policy=self._policy,
            outage=self._outage,
            budget_s=settings.worker.settle_budget_s,
            stop=self._stop,
            metrics=metrics,
        )
        self._restore = RestoreScan(
            interval_s=settings.broker.restore_check_interval_s,
            scan_limit=settings.broker.restore_scan_limit,
            metrics=metrics,
        )
        self._events = (
            TaskEvents(app, lambda: getattr(app, "node_name", None) or "gnn-worker")
            if settings.worker.send_task_events
            else None
        )
        self._watchdog = BatchWatchdog(
            soft_limit_s=settings.worker.batch_soft_time_limit_s,
            hard_limit_s=settings.worker.batch_hard_time_limit_s,
        )

    def __repr__(self) -> str:
        return (
            f"SnapshotConsumer(queue={self.settings.worker.queue!r}, ready={self.ready}, "
            f"breaker={self.breaker.state.value})"
        )

    @property
    def processor(self) -> BatchProcessor | None:
        """The batch processor of the model version served (None before the first load)."""
        return self._models.processor

    @property
    def database_down(self) -> bool:
        """Whether the database stayed down through a settle budget (consuming paused)."""
        return self._outage.database_down

    @property
    def backend_down(self) -> bool:
        """Whether the result backend stayed down through a settle budget (consuming paused)."""
        return self._outage.backend_down

    # lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Load and warm the model, then consume, on a new thread; watch batch time limits."""
        if self._thread is not None:
            raise RuntimeError("snapshot consumer already started")
        self._thread = threading.Thread(target=self._main, name="gnn-batches", daemon=True)
        self._thread.start()
        threading.Thread(
            target=self._watchdog.watch, args=(self._stop,), name="gnn-watchdog", daemon=True
        ).start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the batch in hand, requeue the rest, close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.error("snapshot consumer did not stop in time", timeout_s=timeout_s)
        self._thread = None
        if self._events is not None:
            self._events.close()

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
        self._models.request()

    # the batch loop ------------------------------------------------------------------

    def _main(self) -> None:
        try:
            runner = self._models.first_runner(
                self._stop, retry_s=self.settings.database.outage_probe_interval_s
            )
            if runner is None:
                return
            self._models.install(runner)
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

    def _consume_until_stopped(self) -> None:
        worker = self.settings.worker
        self._lost_connection = (OSError, *connection_errors(self.app))
        queue = Queue(worker.queue, routing_key=worker.queue)
        lost_connection = self._lost_connection
        while not self._stop.is_set():
            try:
                if self._outage.paused:
                    self._outage.wait(self._stop)
                    continue
                self._models.check()
                if not self.breaker.allows():
                    self._stop.wait(min(0.25, max(0.01, self.breaker.seconds_until_trial())))
                    continue
                with self.app.connection_for_read() as connection:
                    queue(connection.default_channel).declare()
                    self._consume_batches(connection)
                    self._buffer.requeue()
                # Leaving the block closed the channel: kombu returns anything still in
                # its unacked books to the queue.
            except lost_connection as exc:
                self._buffer.forget()
                logger.warning("broker connection lost; reconnecting", error=str(exc))
                self._stop.wait(1.0)
            except Exception:
                logger.exception("snapshot consumer failed; restarting it")
                self._buffer.forget()
                self._policy.restart_or_exit(self._stop)

    def _consume_batches(self, connection: Any) -> None:
        """Batches until stopped or until the breaker opens."""
        while not self._stop.is_set():
            if self._outage.paused:  # before the version check
                logger.error(
                    "outcome store unavailable: stopped consuming",
                    store=self._outage.down_store,
                )
                return
            self._models.check()
            if self.breaker.state is BreakerState.OPEN:
                logger.warning("circuit breaker open: stopped consuming")
                return
            self._restore.run_if_due(connection)
            self._buffer.fill(connection)
            if self._buffer and self._buffer.due():
                self._run_batch(connection)

    def _run_batch(self, connection: Any) -> None:
        assert self.processor is not None
        closed_by = self._buffer.closed_by()
        batch = self._buffer.take(alone=self._policy.is_suspect)
        waiting = self._buffer.waiting
        touch([item.message for item in (*batch, *waiting)], connection.default_channel)
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
                    for model, share in result.models.items():
                        self.metrics.per_model.record(
                            model,
                            snapshots=share.snapshots,
                            forward_s=share.forward_s,
                            failed=share.failed,
                        )
                settled = self._settler.settle(result)
                if self._events is not None and (settled.outcomes or settled.requeued):
                    self._events.batch(
                        settled.outcomes, settled.requeued, runtime_s=time.monotonic() - closed_at
                    )
            except self._lost_connection:
                raise
            except Exception:
                self._policy.requeue_crashed(batch)
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
        """Decode, admit and diagnose ``batch`` under the hard time limit's watch; the
        messages the failure policy gave up on are dead-lettered instead."""
        assert self.processor is not None
        fresh, crashed = self._policy.screen(batch)
        with self._watchdog.timing():
            result = self.processor.process(fresh) if fresh else BatchResult()
        result.finished.extend(crashed)
        return result

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


def connection_errors(app: Any) -> tuple[type[BaseException], ...]:
    """The broker library's connection-level errors for ``app``'s transport."""
    with app.connection_for_read() as connection:
        return tuple(connection.connection_errors) + tuple(connection.channel_errors)
