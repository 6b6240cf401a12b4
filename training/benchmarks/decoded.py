"""Snapshots that reach the batch processor already decoded, as a plain Celery task receives
its argument: the naive baseline's task (:mod:`training.benchmarks.naive`) and the db-write
benchmark's template diagnoses (:mod:`training.benchmarks.db_write`).

The worker's own consumer never makes these: it receives raw messages and decodes each once
(:class:`worker.messages.Incoming`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker.messages import Incoming


@dataclass
class DecodedTask:
    """Stands where a kombu message would for a task Celery has already decoded."""

    headers: dict[str, Any]
    unreadable: None = None
    body: bytes = b""
    content_type: str = "application/json"


def decoded_incoming(snapshot: dict[str, Any], headers: Mapping[str, Any]) -> Incoming:
    """An :class:`~worker.messages.Incoming` holding ``snapshot``, already decoded.

    Args:
        snapshot: The snapshot object (the task's one argument).
        headers: The task's headers the batch processor reads: ``id`` (the outcome key,
            which must be the snapshot id) and ``expires``.
    """
    # The body is decoded: it is given as the message's decoded data, so nothing is parsed
    # twice (a plain Celery task gets its argument decoded by kombu).
    return Incoming(message=DecodedTask(dict(headers)), _data=snapshot)
