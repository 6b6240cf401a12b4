"""The model and machine registries on a test database, without Settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from service.db.database import Database, LoopRunner
from service.db.machines import MachineRegistry
from service.settings import DatabaseSettings
from worker.model_store import DatabaseRegistry


@contextlib.contextmanager
def open_stores(url: str, cache_dir: Path) -> Iterator[tuple[DatabaseRegistry, MachineRegistry]]:
    """Both registries on one engine and event loop, disposed at the end."""
    runner = LoopRunner()
    database = Database(url, DatabaseSettings())
    try:
        with (
            DatabaseRegistry(database, run=runner, cache_dir=cache_dir) as models,
            MachineRegistry(database, run=runner) as machines,
        ):
            yield models, machines
    finally:
        runner(database.dispose())
        runner.close()
