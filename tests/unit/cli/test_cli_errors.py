"""How a failed command ends: the exit status and the one line for each kind of error."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from cli.errors import ExitStatus, describe_failure, one_line
from service.errors import BrokerUnavailable, ConfigurationError


def _raised_from(outer: Exception, cause: Exception) -> Exception:
    try:
        try:
            raise cause
        except Exception as exc:
            raise outer from exc
    except Exception as exc:
        return exc


def test_one_line_masks_url_passwords_and_joins_lines() -> None:
    text = (
        "cannot reach postgresql+asyncpg://svc:hunter2@db:5432/gnn\n[SQL: SELECT 1]\n"
        "(Background on this error at: https://sqlalche.me/e/21/dbapi) via redis://:pw@r:6379/0"
    )
    line = one_line(text)
    assert "\n" not in line
    assert "hunter2" not in line
    assert ":pw@" not in line
    assert "postgresql+asyncpg://svc:***@db:5432/gnn" in line
    assert "redis://:***@r:6379/0" in line
    assert "sqlalche.me" not in line


@pytest.mark.parametrize(
    ("error", "status", "start"),
    [
        (BrokerUnavailable("queue q: broker unreachable"), ExitStatus.UNAVAILABLE, "queue q"),
        (ConfigurationError("no model"), ExitStatus.FAILURE, "no model"),
        (KombuOperationalError("refused"), ExitStatus.UNAVAILABLE, "broker unavailable"),
        (AuthenticationError("invalid password"), ExitStatus.UNAVAILABLE, "broker or result"),
        (ConnectionRefusedError(111, "refused"), ExitStatus.UNAVAILABLE, "connection failed"),
        (FileNotFoundError(2, "No such file", "x.ckpt"), ExitStatus.FAILURE, "[Errno 2]"),
        # Celery re-raises a lost result backend as a RuntimeError from the Redis error.
        (
            _raised_from(RuntimeError("Retry limit exceeded"), RedisConnectionError("down")),
            ExitStatus.UNAVAILABLE,
            "broker or result backend (Redis) unavailable: down",
        ),
    ],
)
def test_service_errors_get_a_status_and_a_line(
    error: Exception, status: ExitStatus, start: str
) -> None:
    failure = describe_failure(error)
    assert failure is not None
    assert failure.status == status
    assert failure.line.startswith(start), failure.line


def test_a_bug_keeps_its_traceback() -> None:
    assert describe_failure(ValueError("bad")) is None
    # Raised while handling a Redis error (its __context__), but not from it: still a bug.
    bug = KeyError("oops")
    bug.__context__ = RedisConnectionError("down")
    assert describe_failure(bug) is None
