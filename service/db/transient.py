"""Which database errors are worth another attempt, and why (the cause names the retry in
logs and metrics)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

#: PostgreSQL SQLSTATEs worth another attempt: connection exceptions (class 08),
#: serialization failure, deadlock, too many connections, server shutting down or starting.
_TRANSIENT_SQLSTATES = ("08", "40001", "40P01", "53300", "57P01", "57P02", "57P03")
_TRANSIENT_SQLITE = ("database is locked", "database table is locked", "disk i/o error")


def transient_cause(exc: BaseException) -> str | None:
    """A short name for why ``exc`` is worth retrying, or None when it is not.

    Looks through the exception chain: SQLAlchemy wraps the driver's error, which may wrap
    an ``OSError`` from the socket.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = _own_cause(current)
        if cause is not None:
            return cause
        current = current.__cause__ or current.__context__
    return None


def _own_cause(exc: BaseException) -> str | None:
    """The transient cause of ``exc`` itself, not looking at what it wraps."""
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    message = str(exc).lower()
    checks: list[tuple[bool, str]] = [
        (isinstance(exc, PoolTimeout), "pool_timeout"),
        (
            isinstance(exc, DBAPIError) and bool(exc.connection_invalidated),
            "connection_invalidated",
        ),
        (
            isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_SQLSTATES),
            f"sqlstate_{sqlstate}",
        ),
        (isinstance(exc, ConnectionError | TimeoutError), type(exc).__name__),
        (isinstance(exc, OSError), "os_error"),
        (
            isinstance(exc, OperationalError | InterfaceError)
            and any(marker in message for marker in _TRANSIENT_SQLITE),
            "sqlite_locked",
        ),
        (
            isinstance(exc, OperationalError | InterfaceError)
            and "connection" in message
            and ("closed" in message or "lost" in message),
            "connection_closed",
        ),
        (
            type(exc).__name__ in {"ConnectionDoesNotExistError", "CannotConnectNowError"},
            type(exc).__name__,
        ),
    ]
    return next((name for matched, name in checks if matched), None)
