"""Database URLs: only async drivers, SQLite files get their directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service.errors import ConfigurationError

_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
}


def prepare_database_url(url: str) -> str:
    """Return ``url`` with its async driver, creating a SQLite file's directory.

    Raises:
        ConfigurationError: The URL is malformed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError(f"GNN_DATABASE__URL is not a database URL: {exc}") from exc
    driver = _ASYNC_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"GNN_DATABASE__URL: unsupported driver {parsed.drivername!r}; "
            "use postgresql+asyncpg:// or sqlite+aiosqlite://"
        )
    parsed = parsed.set(drivername=driver)
    if driver == "sqlite+aiosqlite" and parsed.database not in (None, "", ":memory:"):
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    return parsed.render_as_string(hide_password=False)
