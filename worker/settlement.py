"""Settling a batch: its outcomes stored, then its messages acknowledged or requeued.

:class:`BatchSettler` stores every outcome of a batch in the database (one transaction) and
then in the result backend, and only then acknowledges the messages; the isolated model
failures are requeued (or dead-lettered by the failure policy). The result backend is
written with what the database holds, so a duplicate or redelivered message is answered
with the outcome already stored for its key. Storing has its own budget
(``settle_budget_s``): a store still failing when it is spent gets the whole batch requeued
unacknowledged, and the store marked down (:class:`~worker.outage.StoreOutage`).
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

from loguru import logger

from schemas.result import Diagnosed, ExpiredOutcome
from service import spans
from service.db.repositories import SavedCounts
from service.errors import DatabaseUnavailable, TransientError
from service.metrics import ServiceMetrics
from service.results import ResultBackendUnavailable, ResultWriter
from worker.breaker import CircuitBreaker
from worker.failure_policy import FailurePolicy
from worker.fetch import acknowledge
from worker.messages import Incoming
from worker.outage import Store, StoreOutage
from worker.pipeline import BatchResult, Finished, Outcome
from worker.storage import OutcomeStore


class Settled(NamedTuple):
    """What :meth:`BatchSettler.settle` settled: each acknowledged message with its stored
    outcome, and the messages requeued."""

    outcomes: tuple[tuple[Finished, Outcome], ...]
    requeued: tuple[Incoming, ...]


class BatchSettler:
    """Stores a batch's outcomes, then acknowledges its messages.

    Args:
        breaker: The circuit breaker, told whether the model diagnosed the batch.
        store: Where outcomes are stored first (the database).
        results: Where the stored outcomes are written next (the result backend).
        policy: Decides what becomes of the model's failures; told what was settled.
        outage: Told which store stayed down through the budget.
        budget_s: Seconds to store a batch's outcomes (``worker.settle_budget_s``).
        stop: Set when the consumer stops (result backend retries end then).
        metrics: Where settled batches are reported (None: nowhere).
    """

    def __init__(
        self,
        *,
        breaker: CircuitBreaker,
        store: OutcomeStore,
        results: ResultWriter,
        policy: FailurePolicy,
        outage: StoreOutage,
        budget_s: float,
        stop: threading.Event,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.breaker = breaker
        self.store = store
        self.results = results
        self.policy = policy
        self.outage = outage
        self.budget_s = budget_s
        self.metrics = metrics
        self._stop = stop

    def __repr__(self) -> str:
        return f"BatchSettler(budget_s={self.budget_s})"

    def settle(self, result: BatchResult) -> Settled:
        """Store the batch's outcomes (database, then result backend), then acknowledge;
        requeue the isolated model failures; on a store outage requeue everything.

        Returns:
            Each acknowledged message with the outcome stored for its key, and the messages
            requeued (both empty when a store outage sent everything back).
        """
        finished = list(result.finished)
        if result.model_failed:
            self.breaker.record_failure()
        elif result.count("diagnosed"):
            self.breaker.record_success()
        self._count_failed(result)
        failed_for_good, requeue = self.policy.sort_model_failures(result)
        finished.extend(failed_for_good)
        deadline = time.monotonic() + self.budget_s
        started = time.perf_counter()
        try:
            with spans.stage_span(spans.STAGE_DB_WRITE, **{"db.rows": len(finished)}):
                saved, outcomes = self.store.save(finished, budget_s=deadline - time.monotonic())
            stored = time.perf_counter()
            with spans.stage_span(spans.STAGE_RESULT_BACKEND):
                self._store_results(outcomes, deadline)
        except (DatabaseUnavailable, ResultBackendUnavailable) as exc:
            self._requeue_unsettled(finished, requeue, exc)
            return Settled((), ())
        done = time.perf_counter()
        acknowledge([item.incoming.message for item in finished])
        settled: list[tuple[Finished, Outcome]] = []
        for item in finished:
            key = item.incoming.key
            outcome = outcomes.get(key, item.outcome)
            settled.append((item, outcome))
            spans.end_snapshot_span(
                item.incoming.trace_span,
                outcome=outcome.outcome,
                attributes={spans.ATTR_SYSTEM_ID: _system_id(outcome)},
            )
            self.policy.settled(key)
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
        return Settled(tuple(settled), tuple(requeue))

    def _requeue_unsettled(
        self, finished: list[Finished], requeue: list[Incoming], exc: Exception
    ) -> None:
        """A store stayed down through the settle budget: nothing is acked, every message
        of the batch goes back to the queue, and consumption pauses until it answers."""
        database = isinstance(exc, DatabaseUnavailable)
        store: Store = "database" if database else "result_backend"
        logger.error("outcome store unavailable; batch requeued", store=store, error=str(exc))
        everything = [item.incoming for item in finished] + requeue
        for incoming in everything:
            incoming.message.reject(requeue=True)
            spans.end_snapshot_span(incoming.trace_span, outcome="requeued", error=exc)
        self.outage.mark_down(store)
        if self.metrics is not None:
            if database:
                self.metrics.db_errors.labels(kind="unavailable").inc()
            self.metrics.requeued.labels(reason=store).inc(len(everything))

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

    def _count_failed(self, result: BatchResult) -> None:
        if self.metrics is not None and result.error is not None:
            error_type = type(result.error).__name__
            self.metrics.failed.labels(error_type=error_type).inc(len(result.failed))

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


def _system_id(outcome: Outcome) -> str | None:
    """The machine an outcome is about, when it says."""
    if isinstance(outcome, Diagnosed):
        return outcome.diagnosis.system_id
    if isinstance(outcome, ExpiredOutcome):
        return outcome.expired.system_id
    return None
