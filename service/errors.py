"""The one error hierarchy of the service, and the one place that decides what an error means.

Branches are grouped by what the caller can do about them:

- ``TransientError``: the world is briefly unavailable (broker, database); try again later.
- ``InvalidInput``: the snapshot itself is wrong; retrying cannot help, so it is dead-lettered
  with a machine-readable reason and the field at fault.
- ``DeadlineExceeded``: the answer would come too late; it is recorded as expired.
- Everything else (``ModelError``, ``ConfigurationError``, unknown exceptions) fails.

``disposition(exc)`` is the only function that maps an exception to a fate; tasks, the
batcher and the CLI all ask it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ServiceError(Exception):
    """Root of every error the service raises on purpose.

    Args:
        message: Human-readable sentence; names the field or resource at fault.
        **context: Machine-readable details (snapshot id, field, limits) kept for logs
            and dead-letter records.
    """

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: Mapping[str, Any] = context

    def __str__(self) -> str:
        return self.message


class ConfigurationError(ServiceError):
    """Settings or files the service was given cannot work."""


class TransientError(ServiceError):
    """A dependency is briefly unavailable; the same work may succeed later."""


class BrokerUnavailable(TransientError):
    """The broker refused or dropped the connection."""


class DatabaseUnavailable(TransientError):
    """The database refused or dropped the connection, or asked for a retry."""


class InvalidInput(ServiceError):
    """A snapshot that can never be diagnosed as sent.

    Args:
        message: Names the field and the problem.
        reason: Stable machine-readable code (``schema_invalid``, ``oversize``, ...).
        field: Dotted path of the field at fault, when there is one.
    """

    def __init__(
        self, message: str, *, reason: str, field: str | None = None, **context: Any
    ) -> None:
        super().__init__(message, reason=reason, field=field, **context)
        self.reason = reason
        self.field = field


class DeadlineExceeded(ServiceError):
    """The snapshot's deadline passed before it could be computed."""


class ModelError(ServiceError):
    """The model failed on input that was valid."""


class QueueFull(ServiceError):
    """The queue is deeper than the producer's configured bound."""


class RefusedContent(ServiceError):
    """A message or stored result in a serialization the service never reads (only JSON)."""
