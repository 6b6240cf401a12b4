from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from service.db.migrate import current_revision
from service.settings import Settings
from worker.resources import ProcessResources, ResourceState


async def _answer() -> int:
    return 42


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def test_resources_open_run_and_close_in_reverse_order(tmp_path: Path) -> None:
    resources = ProcessResources(_settings(tmp_path))
    closed: list[str] = []
    resources.open()
    resources.enter(lambda: closed.append("engine"))
    resources.enter(lambda: closed.append("model"))
    assert resources.run(_answer()) == 42
    resources.close()
    assert closed == ["model", "engine"]
    assert resources.state is ResourceState.CLOSED
    resources.close()  # twice is harmless


def test_the_database_is_migrated_at_open_and_its_connections_closed_at_close(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)
    resources = ProcessResources(settings)
    resources.open()
    assert current_revision(settings.database_url) is not None
    database = resources.database
    closed: list[Any] = []
    event.listen(database.engine.sync_engine, "close", lambda *args: closed.append(args))

    async def count() -> int:
        async with database.engine.connect() as connection:
            return int(
                (await connection.execute(text("SELECT count(*) FROM diagnoses"))).scalar_one()
            )

    assert resources.run(count()) == 0
    assert database.pool_status().checked_out == 0
    assert closed == []
    resources.close()
    assert len(closed) == 1  # the pooled connection was closed by dispose


def test_resources_refuse_use_outside_their_lifetime(tmp_path: Path) -> None:
    resources = ProcessResources(_settings(tmp_path))
    with pytest.raises(RuntimeError, match="new, not open"):
        _ = resources.database
    resources.open()
    resources.close()
    with pytest.raises(RuntimeError, match="closed, not open"):
        resources.enter(lambda: None)
    with pytest.raises(RuntimeError, match="closed, not open"):
        resources.run(_answer())
    with pytest.raises(RuntimeError, match="cannot open from state closed"):
        resources.open()
