"""Celery task events for the snapshot work, so that Flower shows it.

The snapshot consumer reads its queue itself, in micro-batches, so Celery sends no event for
a snapshot. :class:`TaskEvents` sends what Celery's own worker would for each one (received,
started, then succeeded or failed with its runtime and outcome), buffered and published once
per micro-batch (one ``task.multi`` message, which Celery's event receivers and Flower read
as the events it holds). A diagnosis or an expiry is a task that succeeded (its result says
which); a dead letter is a task that failed with its reason and field; a model failure sent
back to the queue is a task retried. Events are never a reason to fail a batch: a publish
that fails is logged and counted, and the next batch tries again on a fresh connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from schemas.result import Diagnosed, ExpiredOutcome
from service.wire import TASK_DIAGNOSE
from worker.messages import Incoming
from worker.pipeline import Finished, Outcome

_BUFFER_LIMIT = 1_000_000  # flushed by every batch, never by size


class TaskEvents:
    """Task events of settled snapshots, one broker round trip per batch.

    Args:
        app: The worker's Celery app (its broker and event settings).
        hostname: Gives the Celery node name the events carry (Flower's worker name); called
            when the first batch is sent, since Celery names the node after the app is built.
    """

    def __init__(self, app: Any, hostname: Callable[[], str]) -> None:
        self.app = app
        self._hostname = hostname
        self._connection: Any = None
        self._dispatcher: Any = None
        self.failures = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(open={self._dispatcher is not None}, failures={self.failures})"
        )

    def batch(
        self,
        settled: Sequence[tuple[Finished, Outcome]],
        requeued: Sequence[Incoming],
        *,
        runtime_s: float,
    ) -> None:
        """Send the events of one settled batch in one publish.

        Args:
            settled: Each settled message with the outcome stored for its key.
            requeued: Messages sent back to the queue (model failures).
            runtime_s: Seconds the batch took, from closing it to settling it.
        """
        try:
            dispatcher = self._open()
            for item, outcome in settled:
                self._started(dispatcher, item.incoming)
                _finished(dispatcher, item.incoming.key, outcome, runtime_s)
            for incoming in requeued:
                self._started(dispatcher, incoming)
                dispatcher.send(
                    "task-retried",
                    uuid=incoming.key,
                    exception="requeued: the model failed on its batch",
                    traceback="",
                )
            dispatcher.flush()
        except Exception as exc:  # events must never fail a batch
            self.failures += 1
            logger.warning("task events not sent", error=f"{type(exc).__name__}: {exc}")
            self.close()

    def close(self) -> None:
        """Drop the events connection (a later batch opens a new one)."""
        dispatcher, connection = self._dispatcher, self._connection
        self._dispatcher = self._connection = None
        for closing in (dispatcher, connection):
            if closing is not None:
                try:
                    closing.close()
                except Exception as exc:  # closing what may already be broken
                    logger.debug("closing task events", error=str(exc))

    def _open(self) -> Any:
        if self._dispatcher is None:
            self._connection = self.app.connection_for_write()
            self._dispatcher = self.app.events.Dispatcher(
                self._connection,
                hostname=self._hostname(),
                enabled=True,
                buffer_group={"task"},
                buffer_limit=_BUFFER_LIMIT,
            )
        return self._dispatcher

    @staticmethod
    def _started(dispatcher: Any, incoming: Incoming) -> None:
        received = time.time() - (time.monotonic() - incoming.received_monotonic)
        dispatcher.send(
            "task-received",
            uuid=incoming.key,
            name=TASK_DIAGNOSE,
            args=f"[snapshot {incoming.shown_id or incoming.key}]",
            kwargs="{}",
            root_id=incoming.key,
            parent_id=None,
            retries=0,
            eta=None,
            expires=_iso(incoming),
            timestamp=received,
        )
        dispatcher.send("task-started", uuid=incoming.key)


def _iso(incoming: Incoming) -> str | None:
    try:
        expires = incoming.expires
    except Exception:  # an unreadable header: its dead letter says so
        return None
    return None if expires is None else expires.isoformat()


def _finished(dispatcher: Any, key: str, outcome: Outcome, runtime_s: float) -> None:
    if isinstance(outcome, Diagnosed):
        diagnosis = outcome.diagnosis
        worst = min(diagnosis.components, key=lambda c: c.health)
        dispatcher.send(
            "task-succeeded",
            uuid=key,
            result=(
                f"diagnosed: {diagnosis.system_id} health {diagnosis.machine_health:.2f}, "
                f"worst {worst.component_id} ({worst.status})"
            ),
            runtime=runtime_s,
        )
    elif isinstance(outcome, ExpiredOutcome):
        dispatcher.send(
            "task-succeeded",
            uuid=key,
            result=f"expired: deadline {outcome.expired.deadline.isoformat()} passed",
            runtime=runtime_s,
        )
    else:
        letter = outcome.dead_letter
        at = f" at {letter.field}" if letter.field else ""
        dispatcher.send(
            "task-failed",
            uuid=key,
            exception=f"dead_lettered: {letter.reason.value}{at}",
            traceback=letter.detail,
            runtime=runtime_s,
        )
