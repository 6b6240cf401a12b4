"""Apply Alembic migrations from code (the CLI and worker start-up use this)."""

from __future__ import annotations

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

import migrations
from service.db.transient import transient_cause
from service.db.urls import prepare_database_url
from service.errors import DatabaseUnavailable


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the packaged migrations and ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["database_url"] = prepare_database_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at ``database_url`` up to ``revision``.

    Several processes may call this at once (workers starting together): on PostgreSQL an
    advisory lock in the migration environment makes them take turns, on SQLite a lock
    file next to the database does.

    Raises:
        DatabaseUnavailable: The database cannot be reached (the cause is named; the URL,
            which may hold a password, is not).
    """
    try:
        _upgrade(database_url, revision)
    except Exception as exc:
        cause = transient_cause(exc)
        if cause is None:
            raise
        raise DatabaseUnavailable(
            f"database migration failed: the database cannot be reached ({cause}): {exc}"
        ) from exc


def _upgrade(database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    url = make_url(config.attributes["database_url"])
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        command.upgrade(config, revision)
        return
    with open(f"{url.database}.migrate-lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            command.upgrade(config, revision)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    import asyncio

    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.ext.asyncio import create_async_engine

    async def read() -> str | None:
        engine = create_async_engine(prepare_database_url(database_url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())
