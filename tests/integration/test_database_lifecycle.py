"""The service's PostgreSQL connections live exactly as long as their owner: a worker
process's resources, a command's ``connected`` block, a registry opened for a command."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from service.db.database import connected
from service.db.migrate import current_revision
from service.db.repositories import OutcomeRepository
from service.settings import DatabaseSettings, Settings
from worker.model_store import open_registry
from worker.resources import ProcessResources

pytestmark = pytest.mark.postgres


def _service_connections(postgres_url: str) -> int:
    """Backends of the service's engine (application name gnn-service) in the test database,
    counted from a connection of our own."""

    async def count() -> int:
        admin = await asyncpg.connect(
            postgres_url.replace("postgresql+asyncpg://", "postgresql://")
        )
        try:
            found = await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'gnn-service' AND datname = current_database()"
            )
        finally:
            await admin.close()
        return int(found)

    return asyncio.run(count())


def _until_no_service_connections(postgres_url: str, timeout_s: float = 10) -> int:
    """Poll until the server has reaped every closed backend; the count left at the end."""
    deadline = time.monotonic() + timeout_s
    while (left := _service_connections(postgres_url)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


def _settings(data_dir: Path, postgres_url: str) -> Settings:
    return Settings(data_dir=data_dir, database=DatabaseSettings(url=postgres_url))


def test_process_resources_close_every_postgres_connection_they_opened(
    data_dir: Path, postgres_url: str
) -> None:
    resources = ProcessResources(_settings(data_dir, postgres_url))
    resources.open()
    try:
        assert current_revision(postgres_url) is not None  # migrated on open
        database = resources.database
        assert database.dialect == "postgresql"

        async def who() -> tuple[str, str]:
            async with database.engine.connect() as connection:
                row = (
                    await connection.execute(
                        text("SELECT current_database(), current_setting('application_name')")
                    )
                ).one()
            return str(row[0]), str(row[1])

        assert resources.run(who()) == (postgres_url.rsplit("/", 1)[1], "gnn-service")
        assert resources.run(OutcomeRepository(database).count(table="diagnoses")) == 0
        resources.run(database.ping())
        status = database.pool_status()
        assert (status.size, status.checked_out) == (5, 0)
        assert _service_connections(postgres_url) >= 1  # the pooled connection is open
    finally:
        resources.close()
    assert _until_no_service_connections(postgres_url) == 0


def test_a_command_database_and_registry_close_their_connections(
    data_dir: Path, postgres_url: str
) -> None:
    settings = _settings(data_dir, postgres_url)
    with connected(settings) as (database, run):
        run(database.ping())
        assert _service_connections(postgres_url) >= 1
    assert _until_no_service_connections(postgres_url) == 0

    with open_registry(settings) as registry:
        assert registry.list_versions() == []
        assert _service_connections(postgres_url) >= 1
    assert _until_no_service_connections(postgres_url) == 0
