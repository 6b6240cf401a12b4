"""What happens to work that raised: retried, dead-lettered, expired or failed."""

from __future__ import annotations

import enum

from service.errors import DeadlineExceeded, InvalidInput, TransientError


class Disposition(enum.Enum):
    """What happens to a snapshot whose processing raised."""

    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    EXPIRE = "expire"
    FAIL = "fail"


def disposition(exc: BaseException) -> Disposition:
    """Decide the fate of work that raised ``exc``.

    Connection-level errors of the libraries we talk to count as transient even when they
    are not wrapped in a ``TransientError``.
    """
    if isinstance(exc, InvalidInput):
        return Disposition.DEAD_LETTER
    if isinstance(exc, DeadlineExceeded):
        return Disposition.EXPIRE
    if isinstance(exc, TransientError | ConnectionError | TimeoutError):
        return Disposition.RETRY
    if _is_library_transient(exc):
        return Disposition.RETRY
    return Disposition.FAIL


def _is_library_transient(exc: BaseException) -> bool:
    # Imported here so that this module stays importable without optional drivers.
    from kombu.exceptions import OperationalError as KombuOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, KombuOperationalError | RedisConnectionError | RedisTimeoutError)
