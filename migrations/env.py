"""Alembic environment: async engine from the service settings, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.db.schema import metadata
from service.db.urls import prepare_database_url

config = context.config


def _database_url() -> str:
    url = config.attributes.get("database_url")
    if url is None:  # plain `alembic upgrade head`: read the service settings
        from service.settings import Settings

        url = Settings().database_url
    return prepare_database_url(str(url))


#: Key of the PostgreSQL advisory lock that makes concurrent upgrades (several workers
#: starting at once) take turns.
_MIGRATION_LOCK = 7_301_555_201


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
