"""Migrations apply from empty, re-run, downgrade and re-apply cleanly on SQLite and
PostgreSQL, and leave exactly the schema that ``service.db.schema`` declares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, String, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.db.migrate import alembic_config, current_revision, upgrade
from service.db.schema import metadata

T = TypeVar("T")
BASELINE = "0001"


def _inspect(database_url: str, look: Callable[[Connection], T]) -> T:
    """Run ``look`` on a synchronous connection to the database."""

    async def run() -> T:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(look)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _tables(database_url: str) -> set[str]:
    return _inspect(database_url, lambda sync: set(inspect(sync).get_table_names()))


def _differences(database_url: str, target: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match ``target``, with the
    options of the migration environment (types) and server defaults compared too."""
    options = {"compare_type": True, "compare_server_default": True}
    return _inspect(
        database_url,
        lambda sync: compare_metadata(MigrationContext.configure(sync, opts=options), target),
    )


def test_upgrade_from_empty_then_again(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    head = current_revision(database_url)
    assert head is not None
    assert _tables(database_url) == {*metadata.tables, "alembic_version"}
    upgrade(database_url)  # a second run changes nothing and does not fail
    assert current_revision(database_url) == head


def test_downgrade_to_the_baseline_and_up_again(database_url: str) -> None:
    upgrade(database_url)
    head = current_revision(database_url)
    command.downgrade(alembic_config(database_url), BASELINE)
    assert current_revision(database_url) == BASELINE
    assert _tables(database_url) == {"alembic_version"}
    upgrade(database_url)
    assert current_revision(database_url) == head
    assert _tables(database_url) == {*metadata.tables, "alembic_version"}
    assert _differences(database_url, metadata) == []


def test_the_migrated_schema_matches_the_table_metadata(database_url: str) -> None:
    upgrade(database_url)
    assert _differences(database_url, metadata) == []


def test_the_schema_comparison_reports_columns_types_and_nullability_that_differ(
    database_url: str,
) -> None:
    """The drift check above can fail: metadata that differs from the migrations is reported."""
    upgrade(database_url)
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(changed)
    diagnoses = changed.tables["diagnoses"]
    diagnoses.append_column(Column("severity", Integer, nullable=True))
    diagnoses.c.status.type = String(32)
    diagnoses.c.top_fault.nullable = True
    found = set()
    for difference in _differences(database_url, changed):
        # Column additions are tuples; modifications come as lists of tuples.
        for kind, _, table, column, *_ in (
            difference if isinstance(difference, list) else [difference]
        ):
            found.add((kind, table, column if isinstance(column, str) else column.name))
    assert found == {
        ("add_column", "diagnoses", "severity"),
        ("modify_type", "diagnoses", "status"),
        ("modify_nullable", "diagnoses", "top_fault"),
    }
