"""One async engine per process, the retry policy for transient database errors, pool health.

``Database`` owns a SQLAlchemy ``AsyncEngine`` (aiosqlite or asyncpg) built from the
settings, with pre-ping, pool sizing and, on SQLite, WAL mode and a busy timeout so that
several worker processes can share the embedded file. ``Database.retrying(operation)`` runs
an async operation (a whole transaction) with bounded, jittered exponential backoff on
transient errors; everything else is raised at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from loguru import logger
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.db.transient import transient_cause
from service.db.urls import prepare_database_url
from service.errors import DatabaseUnavailable
from service.settings import DatabaseSettings, Settings, mask_url

T = TypeVar("T")

RetryListener = Callable[[str, int, float], None]
"""Told about every retry: the cause, the attempt that failed and the delay before the next."""
AcquireListener = Callable[[float], None]
"""Told how many seconds each connection took to come out of the pool."""


class Encoded(str):
    """A JSON document encoded already (by pydantic-core, much faster than the stdlib):
    the engine's serializer passes it through instead of encoding it again."""


def encode_json(value: Any) -> str:
    """The engines' JSON serializer: pre-encoded documents as they are, anything else with
    the stdlib."""
    return str(value) if isinstance(value, Encoded) else json.dumps(value)


@dataclass(frozen=True)
class PoolStatus:
    """Connection pool gauges."""

    size: int
    checked_out: int
    overflow: int


class Database:
    """The async engine of one process.

    Args:
        url: A database URL (any of the supported drivers; the async one is used).
        settings: Pool sizing and retry policy.
        on_retry: Told about each retry (metrics).
        on_acquire: Told each connection's acquire time (metrics).
    """

    def __init__(
        self,
        url: str,
        settings: DatabaseSettings,
        *,
        on_retry: RetryListener | None = None,
        on_acquire: AcquireListener | None = None,
    ) -> None:
        self.url = prepare_database_url(url)
        self.settings = settings
        self.dialect = "sqlite" if self.url.startswith("sqlite") else "postgresql"
        self.on_retry = on_retry
        self.on_acquire = on_acquire
        self.retries = 0
        self._acquire_started: float | None = None
        self.engine: AsyncEngine = self._create_engine()

    def __repr__(self) -> str:
        return f"Database({mask_url(self.url)!r})"

    def _create_engine(self) -> AsyncEngine:
        settings = self.settings
        if self.dialect == "sqlite":
            engine = create_async_engine(
                self.url,
                pool_pre_ping=True,
                json_serializer=encode_json,
                connect_args={"timeout": settings.pool_timeout_s},
            )
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            engine = create_async_engine(
                self.url,
                pool_pre_ping=True,
                pool_size=settings.pool_size,
                max_overflow=settings.max_overflow,
                pool_timeout=settings.pool_timeout_s,
                pool_recycle=settings.pool_recycle_s,
                json_serializer=encode_json,
                connect_args={
                    "timeout": settings.pool_timeout_s,
                    "server_settings": {
                        "statement_timeout": str(int(settings.statement_timeout_s * 1000)),
                        "application_name": "gnn-service",
                    },
                },
            )
        event.listen(engine.sync_engine, "checkout", self._on_checkout)
        return engine

    def _on_checkout(self, *_: Any) -> None:
        # The pool calls this once a connection is handed out; the acquire clock starts in
        # ``retrying`` and is read here.
        started = self._acquire_started
        if started is not None and self.on_acquire is not None:
            self.on_acquire(time.perf_counter() - started)

    def pool_status(self) -> PoolStatus:
        """Pool size, connections checked out and overflow in use."""
        pool: Any = self.engine.pool
        size = int(pool.size()) if hasattr(pool, "size") else 1
        checked_out = int(pool.checkedout()) if hasattr(pool, "checkedout") else 0
        overflow = max(0, int(pool.overflow())) if hasattr(pool, "overflow") else 0
        return PoolStatus(size=size, checked_out=checked_out, overflow=overflow)

    async def ping(self, timeout_s: float | None = None) -> None:
        """One round trip within ``timeout_s`` (default: the pool timeout); raises what the
        driver raises, or TimeoutError."""

        async def round_trip() -> None:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

        await asyncio.wait_for(round_trip(), timeout=timeout_s or self.settings.pool_timeout_s)

    async def retrying(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        what: str,
        budget_s: float | None = None,
    ) -> T:
        """Run ``operation`` until it succeeds, retrying transient errors with backoff.

        Each attempt runs under a timeout of the time left, so that a database that hangs
        rather than refuses is a transient error too, not a stuck caller.

        Args:
            operation: One attempt.
            what: Named in logs and errors.
            budget_s: Seconds for every attempt and pause together (default
                ``retry_max_total_s``).

        Raises:
            DatabaseUnavailable: Transient errors outlasted the attempts or the time bound.
            Exception: Anything not transient, at once.
        """
        settings = self.settings
        deadline = time.monotonic() + (settings.retry_max_total_s if budget_s is None else budget_s)
        delay = settings.retry_base_delay_s
        attempt = 0
        while True:
            attempt += 1
            self._acquire_started = time.perf_counter()
            try:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no time left for the {what}")
                return await asyncio.wait_for(operation(), timeout=left)
            except Exception as exc:
                cause = transient_cause(exc)
                if cause is None:
                    raise
                pause = min(delay, settings.retry_max_delay_s) * random.uniform(0.5, 1.0)
                if attempt >= settings.retry_attempts or time.monotonic() + pause > deadline:
                    raise DatabaseUnavailable(
                        f"database {what} failed after {attempt} attempts ({cause}): {_short(exc)}",
                        cause=cause,
                    ) from exc
                self.retries += 1
                logger.warning(
                    "database retry",
                    what=what,
                    cause=cause,
                    attempt=attempt,
                    delay_s=round(pause, 3),
                    error=_short(exc),
                )
                if self.on_retry is not None:
                    self.on_retry(cause, attempt, pause)
                await asyncio.sleep(pause)
                delay *= 2
            finally:
                self._acquire_started = None

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]


class LoopRunner:
    """An event loop for synchronous code: ``runner(coro)`` runs ``coro`` to completion.

    Only one thread may wait on it at a time (the worker's batch thread, or the CLI).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __repr__(self) -> str:
        return f"LoopRunner(closed={self.loop.is_closed()})"

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        """Close the loop."""
        self.loop.close()


@contextlib.contextmanager
def connected(
    settings: Settings,
    *,
    migrate: bool | None = None,
    on_retry: RetryListener | None = None,
    on_acquire: AcquireListener | None = None,
) -> Iterator[tuple[Database, LoopRunner]]:
    """The service database and an event loop for it (a command, or a worker process):
    migrated first (when the settings say so), disposed at the end."""
    if settings.database.migrate_on_start if migrate is None else migrate:
        from service.db.migrate import upgrade

        upgrade(settings.database_url)
    runner = LoopRunner()
    database = Database(
        settings.database_url, settings.database, on_retry=on_retry, on_acquire=on_acquire
    )
    try:
        yield database, runner
    finally:
        runner(database.dispose())
        runner.close()
