"""A synchronous face on the service database, for registries read by commands and workers.

The model and machine registries are synchronous (a command calls them, a worker asks them
between batches); they run their statements through ``run``, the process's way to wait for
a coroutine on the database's event loop, and retry transient failures as every database
use does.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Self

from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.database import Database
from service.errors import ConfigurationError
from service.settings import mask_url

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
"""Runs a coroutine to completion on the database's event loop."""


class StoreClosed(ConfigurationError):
    """A registry was used after it was closed."""


class SyncStore:
    """Statements run synchronously on a database owned by someone else.

    Args:
        database: The process's database.
        run: Runs a coroutine to completion on the database's event loop.
        what: What the store is, for messages (``model registry``).
    """

    def __init__(self, database: Database, *, run: Runner, what: str) -> None:
        self.database = database
        self.run = run
        self._what = what
        self._closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.database!r})"

    @property
    def location(self) -> str:
        """Where the store lives (the database URL, password masked)."""
        return mask_url(self.database.url)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Refuse further use (the database itself belongs to its owner)."""
        self._closed = True

    def _query(self, query: Any) -> list[Any]:
        self._check_open()

        async def read() -> list[Any]:
            async with self.database.engine.connect() as connection:
                return list((await connection.execute(query)).all())

        result: list[Any] = self.run(self.database.retrying(read, what=f"{self._what} read"))
        return result

    def _transaction(
        self, body: Callable[[AsyncConnection], Coroutine[Any, Any, None]], *, what: str
    ) -> None:
        self._check_open()

        async def write() -> None:
            async with self.database.engine.begin() as connection:
                await body(connection)

        self.run(self.database.retrying(write, what=what))

    def _check_open(self) -> None:
        if self._closed:
            raise self._closed_error()

    def _closed_error(self) -> ConfigurationError:
        return StoreClosed(f"the {self._what} is closed")
