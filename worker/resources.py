"""What one worker process owns, created at process init and closed at shutdown.

One ``ProcessResources`` per process: an asyncio event loop, the database engine on it
(migrated first when ``database.migrate_on_start``), and everything later resources add
through ``enter`` (the snapshot consumer). Closing unwinds them in reverse order: the
consumer stops, then the engine is disposed, then the loop closes. The state guard refuses
use before ``open`` and after ``close``. :func:`freeze_heap` is what a process does to its
heap after each model load.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from loguru import logger

from service.db.database import Database, LoopRunner, connected
from service.metrics import ServiceMetrics
from service.settings import Settings

T = TypeVar("T")


class ResourceState(enum.Enum):
    """Lifecycle of a resource owner."""

    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class ProcessResources:
    """Per-process resources of a worker.

    Args:
        settings: The service settings.
        metrics: Where the database reports retries and pool waits.
    """

    def __init__(self, settings: Settings, *, metrics: ServiceMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = ResourceState.NEW
        self.pid = os.getpid()
        self._stack = contextlib.ExitStack()
        self._runner: LoopRunner | None = None
        self._database: Database | None = None

    def __repr__(self) -> str:
        return f"ProcessResources(pid={self.pid}, state={self.state.value})"

    @property
    def database(self) -> Database:
        """The process's database engine."""
        self._require_open()
        assert self._database is not None
        return self._database

    def open(self) -> None:
        """Create the event loop and the database engine (migrating first if configured)."""
        if self.state is not ResourceState.NEW:
            raise RuntimeError(f"process resources cannot open from state {self.state.value}")
        metrics = self.metrics
        database, runner = self._stack.enter_context(
            connected(
                self.settings,
                on_retry=(
                    (lambda cause, *_: metrics.db_retries.labels(cause=cause).inc())
                    if metrics is not None
                    else None
                ),
                on_acquire=metrics.db_acquire.observe if metrics is not None else None,
            )
        )
        self._runner = runner
        self._database = database
        self.state = ResourceState.OPEN
        logger.info("process resources opened", pid=self.pid, database=repr(database))

    def enter(self, close: Callable[[], None]) -> None:
        """Register ``close`` to run (in reverse order of registration) at ``close()``."""
        self._require_open()
        self._stack.callback(close)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` to completion on the process's loop (one thread at a time)."""
        if self.state is not ResourceState.OPEN:
            coro.close()  # never awaited: close it rather than leak a warning
        self._require_open()
        assert self._runner is not None
        return self._runner(coro)

    def close(self) -> None:
        """Close everything opened, newest first; safe to call twice."""
        if self.state is not ResourceState.OPEN:
            return
        try:
            self._stack.close()
        finally:
            self.state = ResourceState.CLOSED
            self._runner = None
            self._database = None
            logger.info("process resources closed", pid=self.pid)

    def _require_open(self) -> None:
        if self.state is not ResourceState.OPEN:
            raise RuntimeError(f"process resources are {self.state.value}, not open")


def freeze_heap() -> None:
    """Move the heap as it is now out of the garbage collector's sight (after a model load).

    A worker's heap (torch, Celery, SQLAlchemy, the model) holds millions of objects, and
    the batch loop allocates enough to trigger full collections that walk all of them
    (the pipeline benchmark's ``heap_freeze_gain``: 1.07-1.3x the drain). Frozen objects
    are still freed by reference counting; only cycles among them would stay, so each
    freeze first unfreezes and collects (a pause of a fraction of a second, once per load).
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
