"""Raw snapshot messages as the batch loop receives them, decoded without trusting them.

A message is a Celery protocol-2 task (docs/messages.md). Decoding checks the content type
(JSON only: a pickled body is never deserialized), the size limit, the JSON and the
protocol-2 shape; each refusal is an ``InvalidInput`` with its reason code.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import DeadLetterReason
from worker.admission import decode_body
from worker.errors import InvalidInput
from worker.settings import SecuritySettings
from worker.signing import SIGNED_CONTENT_TYPE, SignatureVerifier

#: Message header carrying the producer's correlation id to the worker.
CORRELATION_HEADER = "gnn_correlation_id"
#: Header set by our producers: publish time, seconds since the epoch (queue latency).
PUBLISHED_AT_HEADER = "gnn_published_at"


@dataclass
class Incoming:
    """One received message and what is known about it before decoding the body.

    Args:
        message: The kombu message (acked or requeued by the consumer).
        received_at: Wall-clock receipt time (seconds since the epoch).
    """

    message: Any
    received_at: float = field(default_factory=time.time)
    received_monotonic: float = field(default_factory=time.monotonic)
    _data: dict[str, Any] | None = field(default=None, repr=False)
    trace_span: Any = field(default=None, repr=False)  # this snapshot's span, when tracing
    _error: InvalidInput | None = field(default=None, repr=False)

    @classmethod
    def from_task(cls, snapshot: dict[str, Any], headers: Mapping[str, Any]) -> Incoming:
        """A message already decoded by Celery (the naive one-task-per-snapshot baseline)."""
        return cls(message=_DecodedTask(dict(headers)), _data=snapshot)

    def prepare(self, limits: SecuritySettings, verifier: SignatureVerifier | None = None) -> None:
        """Decode the body once, on receipt; a refusal is kept for processing.

        With a ``verifier``, only signed bodies whose signature checks out are decoded.
        """
        try:
            self._data = self._decode(limits, verifier)
        except InvalidInput as exc:
            self._error = exc

    @property
    def nodes(self) -> int:
        """Sensors in the snapshot (graph nodes), 0 before or without a decodable body."""
        if self._data is None:
            return 0
        window = self._data.get("window")
        readings = window.get("readings") if isinstance(window, dict) else None
        return len(readings) if isinstance(readings, dict) else 0

    @property
    def headers(self) -> Mapping[str, Any]:
        """The message headers (Celery's and ours)."""
        headers = getattr(self.message, "headers", None)
        return headers if isinstance(headers, Mapping) else {}

    @property
    def task_id(self) -> str | None:
        """The task id header (the snapshot id, for our producers)."""
        value = self.headers.get("id")
        return str(value) if value is not None else None

    @property
    def correlation_id(self) -> str | None:
        """The producer's correlation id header."""
        value = self.headers.get(CORRELATION_HEADER)
        return str(value) if value is not None else None

    @property
    def published_at(self) -> float | None:
        """Publish time from our producers' header, if present."""
        value = self.headers.get(PUBLISHED_AT_HEADER)
        return float(value) if isinstance(value, int | float) else None

    @property
    def expires(self) -> datetime | None:
        """Celery's ``expires`` header as an aware datetime, if present and readable."""
        value = self.headers.get("expires")
        if not isinstance(value, str):
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

    def raw_body(self) -> bytes:
        """The body as bytes, as it travelled."""
        body = self.message.body
        return body.encode("utf-8") if isinstance(body, str) else bytes(body)

    def payload_sha256(self) -> str:
        """SHA-256 of the raw body, to find the original of a dead letter."""
        return hashlib.sha256(self.raw_body()).hexdigest()

    def snapshot_data(self, limits: SecuritySettings) -> dict[str, Any]:
        """The snapshot object inside the task body (decoded once).

        Raises:
            InvalidInput: unsupported content type, oversize, malformed JSON, or a body that
                is not a protocol-2 task with the snapshot as its only argument.
        """
        if self._error is not None:
            raise self._error
        if self._data is None:
            self._data = self._decode(limits)
        return self._data

    def _decode(
        self, limits: SecuritySettings, verifier: SignatureVerifier | None = None
    ) -> dict[str, Any]:
        content_type = getattr(self.message, "content_type", None)
        expected = "application/json" if verifier is None else SIGNED_CONTENT_TYPE
        if content_type != expected:
            kind = "" if verifier is None else " (signed messages required)"
            raise InvalidInput(
                f"content type {content_type!r} refused: only {expected} is accepted{kind}",
                reason=DeadLetterReason.UNSUPPORTED_CONTENT_TYPE.value,
                field="<content-type>",
            )
        raw = self.raw_body()
        if verifier is not None:
            if len(raw) > 2 * limits.max_snapshot_bytes:  # base64 grows a body by a third
                decode_body(raw, limits=limits)  # raises oversize
            raw = verifier.verify(raw)
        body = decode_body(raw, limits=limits)
        return _snapshot_argument(body)


def _snapshot_argument(body: Any) -> dict[str, Any]:
    if (
        isinstance(body, list)
        and len(body) == 3
        and isinstance(body[0], list)
        and len(body[0]) == 1
        and isinstance(body[0][0], dict)
        and not body[1]
    ):
        return body[0][0]
    raise InvalidInput(
        "message body: expected a Celery protocol-2 task [[snapshot], {}, {...}] with the "
        "snapshot as the only argument",
        reason=DeadLetterReason.SCHEMA_INVALID.value,
        field="<body>",
    )


@dataclass
class _DecodedTask:
    """Stands where a kombu message would for a task Celery has already decoded."""

    headers: dict[str, Any]
    body: bytes = b""
    content_type: str = "application/json"
