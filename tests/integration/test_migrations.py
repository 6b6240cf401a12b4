"""Migrations apply from empty and re-run cleanly on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.db.migrate import current_revision, upgrade


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite+aiosqlite:///{data_dir / 'nested' / 'gnn.db'}"


def test_upgrade_from_empty_then_again(database_url: str) -> None:
    assert current_revision(database_url) is None
    upgrade(database_url)
    head = current_revision(database_url)
    assert head is not None
    upgrade(database_url)  # a second run changes nothing and does not fail
    assert current_revision(database_url) == head
