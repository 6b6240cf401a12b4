"""The retry policy against real faults: PostgreSQL backends terminated mid-write, an
unreachable server, an exhausted pool, a locked SQLite file; and errors that must not be
retried."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from schemas import Diagnosis, Expired
from schemas.diagnosis import ComponentDiagnosis
from service.db import schema as tables
from service.db.database import Database, LoopRunner, transient_cause
from service.db.migrate import upgrade
from service.db.repositories import OutcomeRepository, SavedCounts
from service.errors import DatabaseUnavailable
from service.settings import DatabaseSettings

Admin = Callable[[], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]

#: Backends of the service's engine in the current database (the engine names itself).
SERVICE_BACKENDS = (
    "FROM pg_stat_activity WHERE application_name = 'gnn-service' AND datname = current_database()"
)
FAST_RETRIES = DatabaseSettings(retry_attempts=5, retry_base_delay_s=0.01, retry_max_total_s=20)
UNREACHABLE = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def _diagnosis(snapshot_id: str) -> Diagnosis:
    return Diagnosis(
        snapshot_id=snapshot_id,
        system_id="excavator-7",
        model_version="universal@1",
        created_at=NOW,
        machine_health=0.9,
        components=[ComponentDiagnosis(component_id="engine", health=0.9, status="ok")],
    )


def _expired(snapshot_id: str) -> Expired:
    return Expired(snapshot_id=snapshot_id, system_id="cnc-2", deadline=NOW, observed_at=NOW)


def _admin_url(url: str) -> str:
    """The asyncpg (not SQLAlchemy) form of a test database URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _poll(check: Callable[[], Awaitable[bool]], *, what: str, timeout_s: float = 30) -> None:
    """Wait until ``check()`` is true, asking every 10 ms; fail naming ``what`` on timeout."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"not seen within {timeout_s} s: {what}") from None


@pytest.fixture
def migrated_postgres(postgres_url: str) -> str:
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def admin(migrated_postgres: str) -> Admin:
    """``async with admin() as connection``: a plain asyncpg connection to the test database,
    not one of the service's (no application name)."""

    def connect() -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        return _connection(_admin_url(migrated_postgres))

    return connect


@contextlib.asynccontextmanager
async def _connection(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


# PostgreSQL: real faults ----------------------------------------------------------------


@pytest.mark.postgres
def test_a_write_after_the_pooled_connections_were_terminated_is_stored_once(
    migrated_postgres: str, admin: Admin
) -> None:
    async def scenario() -> tuple[SavedCounts, int, int, int]:
        database = Database(migrated_postgres, FAST_RETRIES)
        try:
            repository = OutcomeRepository(database)
            await repository.save_batch(diagnoses=[_diagnosis("s0")])
            async with admin() as connection:
                terminated = await connection.fetchval(
                    f"SELECT count(pg_terminate_backend(pid)) {SERVICE_BACKENDS}"
                )

                async def gone() -> bool:
                    return (
                        int(await connection.fetchval(f"SELECT count(*) {SERVICE_BACKENDS}")) == 0
                    )

                await _poll(gone, what="the terminated backends are gone")
            counts = await repository.save_batch(diagnoses=[_diagnosis("s1"), _diagnosis("s2")])
            stored = await repository.count(table="diagnoses")
            return counts, terminated, stored, database.retries
        finally:
            await database.dispose()

    counts, terminated, stored, retries = asyncio.run(scenario())
    assert terminated >= 1  # the pooled connection was really cut
    assert counts == SavedCounts(diagnoses=2)
    assert stored == 3
    assert retries >= 0  # pre-ping may notice the dead connection before the write does


@pytest.mark.postgres
def test_a_write_whose_connection_is_terminated_mid_statement_is_retried_and_stored_once(
    migrated_postgres: str, admin: Admin
) -> None:
    """The write blocks on a table lock held by an admin transaction; the admin terminates
    the write's backend, waits for the retry, then releases the lock."""

    async def scenario() -> tuple[SavedCounts, list[str], int, int, int]:
        retried = asyncio.Event()
        causes: list[str] = []

        def on_retry(cause: str, attempt: int, delay: float) -> None:
            causes.append(cause)
            retried.set()

        database = Database(migrated_postgres, FAST_RETRIES, on_retry=on_retry)
        repository = OutcomeRepository(database)
        try:
            await repository.save_batch(expired=[_expired("warm-up")])
            async with admin() as locker, admin() as killer:
                lock = locker.transaction()
                await lock.start()
                await locker.execute("LOCK TABLE diagnoses IN ACCESS EXCLUSIVE MODE")
                write = asyncio.create_task(
                    repository.save_batch(
                        diagnoses=[_diagnosis("s1"), _diagnosis("s2")], expired=[_expired("e1")]
                    )
                )

                async def waiting_on_the_lock() -> bool:
                    if write.done():  # it must block; surface what it did instead
                        write.result()
                        raise AssertionError("the write did not wait for the lock")
                    blocked = await killer.fetchval(
                        f"SELECT count(*) {SERVICE_BACKENDS} AND wait_event_type = 'Lock'"
                    )
                    return bool(blocked)

                await _poll(waiting_on_the_lock, what="the write waits for the lock")
                terminated = await killer.fetchval(
                    f"SELECT count(pg_terminate_backend(pid)) {SERVICE_BACKENDS}"
                )
                waiter = asyncio.create_task(retried.wait())
                try:
                    async with asyncio.timeout(30):
                        done, _ = await asyncio.wait(
                            [write, waiter], return_when=asyncio.FIRST_COMPLETED
                        )
                finally:
                    waiter.cancel()
                if write in done:
                    write.result()  # raises what the write raised
                    raise AssertionError("the write finished without a retry")
                await lock.rollback()  # release the lock: the retry goes through
                counts = await asyncio.wait_for(write, timeout=30)
                rows = await killer.fetchval(
                    "SELECT count(*) FROM diagnoses WHERE snapshot_id IN ('s1', 's2')"
                )
                expirations = await killer.fetchval("SELECT count(*) FROM expirations")
            return counts, causes, terminated, rows, expirations
        finally:
            await database.dispose()

    counts, causes, terminated, rows, expirations = asyncio.run(scenario())
    assert terminated >= 1
    assert counts == SavedCounts(diagnoses=2, expired=1)
    assert (rows, expirations) == (2, 2)  # e1 and the warm-up row, each once
    assert len(causes) >= 1
    assert causes[0] in {"connection_invalidated", "sqlstate_57P01", "connection_closed"}


@pytest.mark.postgres
def test_an_unreachable_database_fails_after_the_configured_attempts_naming_the_cause() -> None:
    settings = DatabaseSettings(retry_attempts=3, retry_base_delay_s=0.01, retry_max_total_s=2)
    attempts: list[int] = []

    async def scenario() -> None:
        database = Database(
            UNREACHABLE, settings, on_retry=lambda cause, attempt, delay: attempts.append(attempt)
        )
        try:
            with pytest.raises(DatabaseUnavailable) as raised:
                await OutcomeRepository(database).save_batch(diagnoses=[_diagnosis("s1")])
        finally:
            await database.dispose()
        error = raised.value
        assert error.context["cause"] == "ConnectionRefusedError"
        assert "batch write failed after 3 attempts (ConnectionRefusedError)" in str(error)
        assert isinstance(error.__cause__, ConnectionRefusedError)
        assert database.retries == 2

    asyncio.run(scenario())
    assert attempts == [1, 2]


@pytest.mark.postgres
def test_an_exhausted_pool_is_retried_then_reported_as_unavailable(
    migrated_postgres: str,
) -> None:
    settings = DatabaseSettings(
        pool_size=1,
        max_overflow=0,
        pool_timeout_s=0.05,
        retry_attempts=2,
        retry_base_delay_s=0.01,
        retry_max_total_s=5,
    )

    async def scenario() -> None:
        database = Database(migrated_postgres, settings)
        try:
            async with database.engine.connect():  # the pool's only connection, held
                assert database.pool_status().checked_out == 1
                with pytest.raises(DatabaseUnavailable, match=r"after 2 attempts \(pool_timeout\)"):
                    await OutcomeRepository(database).save_batch(diagnoses=[_diagnosis("s1")])
            assert database.retries == 1
            assert database.pool_status().checked_out == 0
            counts = await OutcomeRepository(database).save_batch(diagnoses=[_diagnosis("s1")])
            assert counts == SavedCounts(diagnoses=1)
        finally:
            await database.dispose()

    asyncio.run(scenario())


# Errors that are not transient are raised at once, on both databases ---------------------


@pytest.fixture
def service(migrated_database_url: str) -> Iterator[tuple[Database, LoopRunner]]:
    runner = LoopRunner()
    database = Database(migrated_database_url, FAST_RETRIES)
    yield database, runner
    runner(database.dispose())
    runner.close()


def test_a_constraint_violation_is_raised_at_once_without_retry(
    service: tuple[Database, LoopRunner],
) -> None:
    database, run = service
    repository = OutcomeRepository(database)
    row = {"snapshot_id": "s1", "system_id": None, "deadline": NOW, "observed_at": NOW}

    async def insert() -> int:
        async with database.engine.begin() as connection:
            return await repository._insert(connection, tables.expirations, [row], "snapshot_id")

    with pytest.raises(IntegrityError, match=r"(?i)null"):
        run(database.retrying(insert, what="raw insert"))
    assert database.retries == 0
    assert run(repository.count(table="expirations")) == 0


def test_a_syntax_error_is_raised_at_once_without_retry(
    service: tuple[Database, LoopRunner],
) -> None:
    database, run = service
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        async with database.engine.connect() as connection:
            await connection.execute(text("SELEC 1"))

    with pytest.raises(DBAPIError, match=r"(?i)syntax error"):
        run(database.retrying(broken, what="typo"))
    assert (calls, database.retries) == ([1], 0)
    run(database.ping())  # the connection survived for the next caller


# transient_cause on real exceptions ------------------------------------------------------


async def _raised(action: Callable[[], Awaitable[Any]]) -> BaseException:
    try:
        await action()
    except Exception as exc:
        return exc
    raise AssertionError("nothing was raised")


def test_a_refused_socket_connection_is_transient() -> None:
    with pytest.raises(ConnectionRefusedError) as refused:
        socket.create_connection(("127.0.0.1", 1), timeout=2).close()
    assert transient_cause(refused.value) == "ConnectionRefusedError"


def _write_over_a_refused_connection() -> None:
    try:
        socket.create_connection(("127.0.0.1", 1), timeout=2).close()
    except OSError as exc:
        raise RuntimeError("write failed") from exc


def test_the_cause_is_found_through_the_exception_chain() -> None:
    with pytest.raises(RuntimeError, match="write failed") as wrapped:
        _write_over_a_refused_connection()
    assert transient_cause(wrapped.value) == "ConnectionRefusedError"
    looped = ValueError("a")
    looped.__context__ = KeyError("b")
    looped.__context__.__context__ = looped  # a cycle must end the walk, not hang it
    assert transient_cause(looped) is None


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("sqlstate", "cause"),
    [
        ("40001", "sqlstate_40001"),  # serialization failure
        ("40P01", "sqlstate_40P01"),  # deadlock detected
        ("53300", "sqlstate_53300"),  # too many connections
        ("57P03", "sqlstate_57P03"),  # cannot connect now (starting up)
        ("23505", None),  # unique violation
        ("42501", None),  # insufficient privilege
        ("22012", None),  # division by zero
    ],
)
def test_postgres_errors_are_transient_by_their_sqlstate(
    migrated_postgres: str, sqlstate: str, cause: str | None
) -> None:
    async def scenario() -> BaseException:
        engine = create_async_engine(migrated_postgres)
        statement = text(
            f"DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '{sqlstate}'; END $$"
        )
        try:
            async with engine.connect() as connection:
                return await _raised(lambda: connection.execute(statement))
        finally:
            await engine.dispose()

    assert transient_cause(asyncio.run(scenario())) == cause


@pytest.mark.postgres
def test_a_terminated_postgres_connection_is_transient(migrated_postgres: str) -> None:
    async def scenario() -> BaseException:
        engine = create_async_engine(migrated_postgres)
        try:
            async with engine.connect() as connection:
                pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
                async with _connection(_admin_url(migrated_postgres)) as admin:
                    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
                return await _raised(lambda: connection.execute(text("SELECT 1")))
        finally:
            await engine.dispose()

    assert transient_cause(asyncio.run(scenario())) is not None


def test_a_locked_sqlite_database_is_transient(data_dir: Path) -> None:
    path = data_dir / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("CREATE TABLE t (x INTEGER)")
        holder.execute("BEGIN EXCLUSIVE")

        async def scenario() -> BaseException:
            engine = create_async_engine(f"sqlite+aiosqlite:///{path}", connect_args={"timeout": 0})
            try:
                async with engine.begin() as connection:
                    return await _raised(
                        lambda: connection.execute(text("INSERT INTO t VALUES (1)"))
                    )
            finally:
                await engine.dispose()

        error = asyncio.run(scenario())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "database is locked" in str(error)
    assert transient_cause(error) == "sqlite_locked"


def test_errors_of_the_request_itself_are_not_transient(data_dir: Path) -> None:
    async def scenario() -> list[BaseException]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{data_dir / 'plain.db'}")
        try:
            async with engine.connect() as connection:
                return [
                    await _raised(lambda: connection.execute(text("SELEC 1"))),
                    await _raised(lambda: connection.execute(text("SELECT * FROM missing"))),
                ]
        finally:
            await engine.dispose()

    errors = [*asyncio.run(scenario()), ValueError("bad value"), KeyError("diagnoses")]
    assert [transient_cause(error) for error in errors] == [None, None, None, None]
