"""Deliver each snapshot's outcome to the Celery result backend, a whole batch at a time.

Pollers read the outcome under the snapshot id (``AsyncResult(snapshot_id)``). On Redis the
batch's results go out in one pipeline (SETEX and PUBLISH per snapshot, in the format
Celery's redis backend writes, so ``AsyncResult.get`` wakes up); other backends get one
``store_result`` per snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend

from service.disposition import Disposition as _Disposition
from service.disposition import disposition
from service.errors import TransientError


class ResultBackendUnavailable(TransientError):
    """The result backend refused or dropped the connection."""


class ResultWriter:
    """Stores outcomes for pollers.

    Args:
        backend: The Celery app's result backend.
        task_name: Recorded as the task name of every result.
    """

    def __init__(self, backend: Any, *, task_name: str) -> None:
        self.backend = backend
        self.task_name = task_name

    def __repr__(self) -> str:
        return f"ResultWriter(backend={type(self.backend).__name__})"

    def store(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """Store ``(snapshot_id, outcome as a JSON document)`` pairs.

        Raises:
            ResultBackendUnavailable: A connection-level failure; nothing may be assumed
                stored, and storing again is harmless.
        """
        if not outcomes:
            return
        try:
            if isinstance(self.backend, RedisBackend):
                self._store_redis(outcomes)
            else:
                for snapshot_id, document in outcomes:
                    self.backend.store_result(snapshot_id, json.loads(document), states.SUCCESS)
        except Exception as exc:
            if disposition(exc) is _Disposition.RETRY:
                raise ResultBackendUnavailable(f"result backend unavailable: {exc}") from exc
            raise

    def available(self) -> bool:
        """Whether the result backend answers now (a Redis PING; other backends: a read)."""
        try:
            if isinstance(self.backend, RedisBackend):
                self.backend.client.ping()
            else:
                self.backend.get_task_meta("gnn-availability-probe")
        except Exception:
            return False
        return True

    def _store_redis(self, outcomes: Sequence[tuple[str, str]]) -> None:
        backend = self.backend
        # The task meta document Celery's JSON result backend writes, assembled around the
        # outcome document as it is (encoding it again would cost more than the forward).
        tail = json.dumps(
            {
                "status": states.SUCCESS,
                "traceback": None,
                "children": [],
                "date_done": datetime.now(UTC).isoformat(),
                "name": self.task_name,
            }
        )[1:-1]
        expires = backend.expires
        with backend.client.pipeline(transaction=False) as pipe:
            for snapshot_id, document in outcomes:
                key = backend.get_key_for_task(snapshot_id)
                encoded = f'{{"result": {document}, "task_id": {json.dumps(snapshot_id)}, {tail}}}'

                if expires:
                    pipe.set(key, encoded, ex=int(expires))
                else:
                    pipe.set(key, encoded)
                pipe.publish(key, encoded)
            pipe.execute()


def release_result(async_result: Any) -> None:
    """Stop waiting on ``async_result`` now, while its backend is reachable.

    Celery otherwise unsubscribes from the result channel in ``AsyncResult.__del__``, that
    is whenever the garbage collector gets to the object, possibly after the connection (or
    an embedded server) is gone, where it retries for 20 s and then raises.
    """
    if async_result.backend is not None:
        async_result.backend.remove_pending_result(async_result)
        async_result.backend = None
