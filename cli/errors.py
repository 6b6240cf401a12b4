"""How a ``gnn-service`` command ends on an error: one line on stderr and an exit status.

The console script's entry point asks :func:`describe_failure` about any exception a command
lets escape; the answer is the line to print (``gnn-service: <what failed>: <cause>``, URL
passwords masked, never a traceback) and the exit status:

=====  ===================================================================================
0      success
1      any other failure: a file, checkpoint or registry that cannot be used, the model, no
       answer to ``ping`` in time
2      bad usage or an invalid setting (the line names the option or ``GNN_*`` variable)
3      a service is unreachable or refuses us: the broker, the result backend (Redis) or the
       database (connection refused or timed out, wrong password, missing database)
=====  ===================================================================================

An exception that is none of the service's errors and no failure of a library it talks to
is a bug, and keeps its traceback (``describe_failure`` returns None).
"""

from __future__ import annotations

import enum
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from service.errors import ServiceError, TransientError
from service.settings import mask_url

#: PostgreSQL SQLSTATE classes and codes of a server that cannot be used at all: connection
#: exceptions (08), authorization (28: wrong password, unknown role), a missing database
#: (3D000), too many connections (53300), shutting down or starting (57P0x).
_REFUSING_SQLSTATES = ("08", "28", "3D000", "53300", "57P")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SQLALCHEMY_NOTE = re.compile(r"\(Background on this error at: [^)]*\)")
_LONGEST_LINE = 500


#: What each optional group of dependencies (``pip install 'gnn-service[NAME]'``) brings.
EXTRAS = {"train": ("sklearn", "matplotlib")}


class MissingExtra(ServiceError):
    """A command needs an optional group of dependencies that is not installed."""


def require_extra(command: str, extra: str = "train") -> None:
    """End ``command`` with one line when the packages of ``extra`` cannot be imported.

    Raises:
        MissingExtra: Names the command, the missing packages and the install command.
    """
    missing = []
    for module in EXTRAS[extra]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingExtra(
            f"gnn-service {command} needs the [{extra}] extra ({', '.join(missing)} not "
            f"installed): pip install 'gnn-service[{extra}]'",
            extra=extra,
            missing=missing,
        )


class ExitStatus(enum.IntEnum):
    """Exit statuses of ``gnn-service`` commands (documented in README.md)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    UNAVAILABLE = 3


@dataclass(frozen=True)
class CommandFailure:
    """How a command ends: its exit status and the one line printed on stderr."""

    status: ExitStatus
    line: str


def describe_failure(exc: BaseException) -> CommandFailure | None:
    """The exit status and one-line message for an error a command let escape.

    Args:
        exc: The exception raised by the command.

    Returns:
        The failure to report, or None when ``exc`` is a bug (keep its traceback).
    """
    if isinstance(exc, ServiceError):
        status = ExitStatus.UNAVAILABLE if isinstance(exc, TransientError) else ExitStatus.FAILURE
        return _failure(status, str(exc))
    kind, link = _library_error(exc)
    if kind is not None:
        return _library_failure(kind, link)
    if type(exc).__module__.startswith("alembic."):  # an unknown revision, in the database
        return _failure(ExitStatus.FAILURE, f"database migration failed: {exc}")  # or asked
    if isinstance(exc, ConnectionError | TimeoutError):
        return _failure(ExitStatus.UNAVAILABLE, f"connection failed: {exc}")
    if isinstance(exc, OSError):
        return _failure(ExitStatus.FAILURE, str(exc))
    return None


def one_line(text: str) -> str:
    """``text`` on one line, URL passwords masked, SQLAlchemy's help links dropped."""
    text = _SQLALCHEMY_NOTE.sub("", text)
    text = _URL.sub(lambda match: mask_url(match.group(0)), text)
    text = " ".join(text.split())
    if len(text) > _LONGEST_LINE:
        text = text[: _LONGEST_LINE - 3] + "..."
    return text


def _failure(status: ExitStatus, message: str) -> CommandFailure:
    return CommandFailure(status, one_line(message))


def _library_failure(kind: str, error: BaseException) -> CommandFailure:
    if kind == "database":
        if _database_refuses(error):
            return _failure(ExitStatus.UNAVAILABLE, f"database unavailable: {_db_cause(error)}")
        return _failure(ExitStatus.FAILURE, f"database error: {_db_cause(error)}")
    what = "broker" if kind == "broker" else "broker or result backend (Redis)"
    return _failure(ExitStatus.UNAVAILABLE, f"{what} unavailable: {error}")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _library_error(exc: BaseException) -> tuple[str | None, BaseException]:
    """Which service's client library raised ``exc`` or the error it was raised from
    (Celery re-raises a lost result backend as a ``RuntimeError`` from the Redis error):
    ``broker``, ``redis``, ``database`` or None, and that library's exception."""
    # Imported here: the CLI's --help must not pay for the drivers.
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import NoPermissionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from sqlalchemy.exc import SQLAlchemyError

    link: BaseException | None = exc
    while link is not None:
        if isinstance(link, KombuOperationalError):
            return "broker", link
        if isinstance(link, RedisConnectionError | RedisTimeoutError | NoPermissionError):
            return "redis", link
        if isinstance(link, SQLAlchemyError) or _is_driver_error(link):
            return "database", link
        link = link.__cause__  # explicit causes only: a bug raised while handling stays a bug
    return None, exc


def _is_driver_error(exc: BaseException) -> bool:
    import sqlite3

    # asyncpg ships no type information; its errors are told by their module.
    return isinstance(exc, sqlite3.Error) or type(exc).__module__.startswith("asyncpg.")


def _database_refuses(exc: BaseException) -> bool:
    """Whether the database cannot be reached or refuses the connection (not a bad query)."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    for link in _chain(exc):
        sqlstate = getattr(link, "sqlstate", None) or getattr(link, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_REFUSING_SQLSTATES):
            return True
        if isinstance(link, OSError | PoolTimeout):  # ConnectionError, TimeoutError, DNS
            return True
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if type(link).__name__ in {"ConnectionDoesNotExistError", "CannotConnectNowError"}:
            return True
    return False


def _db_cause(exc: BaseException) -> str:
    """The driver's own message: SQLAlchemy's wrapper text names its classes and the SQL."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return str(exc.orig) or type(exc.orig).__name__
    return str(exc) or type(exc).__name__
