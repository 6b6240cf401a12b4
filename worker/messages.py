"""Raw snapshot messages as the batch loop receives them, decoded without trusting them.

A message is a Celery protocol-2 task (docs/messages.md). Decoding checks the content type
(JSON only: a pickled body is never deserialized), the size limit, the JSON and the
protocol-2 shape; each refusal is an ``InvalidInput`` with its reason code.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas import DeadLetterReason
from service.admission import decode_body
from service.errors import InvalidInput
from service.settings import SecuritySettings
from service.signing import SIGNED_CONTENT_TYPE, SignatureVerifier
from service.wire import CORRELATION_HEADER, PUBLISHED_AT_HEADER, TASK_DIAGNOSE

#: Longest outcome key: a header ``id`` past it (the dead-letter record's limit) is not used
#: as a key; the message is keyed by the hash of its bytes instead.
MAX_KEY_CHARS = 256


@dataclass
class Incoming:
    """One received message and what is known about it before decoding the body.

    Nothing here raises on what a message contains: a message that cannot be read keeps
    its refusal (an ``InvalidInput``) for the batch processor, which dead-letters it.

    Args:
        message: The kombu message (acked or requeued by the consumer), or an
            :class:`~worker.fetch.UnreadableMessage` standing in for an item that is not one.
        received_at: Wall-clock receipt time (seconds since the epoch).
    """

    message: Any
    received_at: float = field(default_factory=time.time)
    received_monotonic: float = field(default_factory=time.monotonic)
    _data: dict[str, Any] | None = field(default=None, repr=False)
    trace_span: Any = field(default=None, repr=False)  # this snapshot's span, when tracing
    _error: InvalidInput | None = field(default=None, repr=False)
    _sha256: str | None = field(default=None, repr=False)
    signed: bool = False

    def prepare(self, limits: SecuritySettings, verifier: SignatureVerifier | None = None) -> None:
        """Check the headers and decode the body once, on receipt; a refusal is kept.

        With a ``verifier``, only signed bodies whose signature checks out are decoded.
        Never raises: an unexpected error becomes an ``unprocessable`` refusal.
        """
        self.signed = verifier is not None
        try:
            self._check_headers()
            self._data = self._decode(limits, verifier)
        except InvalidInput as exc:
            self._error = exc
        except Exception as exc:  # what a message holds must never raise out of here
            self._error = InvalidInput(
                f"message could not be read: {type(exc).__name__}: {exc}",
                reason=DeadLetterReason.UNPROCESSABLE.value,
                field="<message>",
            )

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
        """The message headers (Celery's and ours); empty when they are not an object."""
        headers = getattr(self.message, "headers", None)
        return headers if isinstance(headers, Mapping) else {}

    @property
    def task_id(self) -> str | None:
        """The task id header (the snapshot id, for our producers), when it is a string."""
        value = self.headers.get("id")
        return value if isinstance(value, str) else None

    @property
    def key(self) -> str:
        """The key of this message's one outcome, in the database and the result backend.

        The header ``id`` when it is a usable key (a printable string of at most
        ``MAX_KEY_CHARS``); without an ``id`` header, the body's ``snapshot_id``; otherwise
        ``sha256:`` and the hash of the message's bytes.
        """
        value = self._claimed_id()
        if isinstance(value, str) and _usable_key(value):
            return value
        return f"sha256:{self.payload_sha256()}"

    @property
    def shown_id(self) -> str | None:
        """The id this message claims, cut to ``MAX_KEY_CHARS`` and made printable (for
        dead-letter records and logs), or None."""
        value = self._claimed_id()
        if value is None:
            return None
        text = value if isinstance(value, str) else repr(value)
        return printable(text)[:MAX_KEY_CHARS] or None

    def _claimed_id(self) -> Any:
        """The header ``id``, else the decoded body's ``snapshot_id`` (any type, or None)."""
        value = self.headers.get("id")
        if value is None and self._data is not None:
            value = self._data.get("snapshot_id")
        return value

    @property
    def correlation_id(self) -> str | None:
        """The producer's correlation id header (printable, at most 128 characters)."""
        value = self.headers.get(CORRELATION_HEADER)
        return printable(str(value))[:128] if value is not None else None

    @property
    def published_at(self) -> float | None:
        """Publish time from our producers' header, if present and a finite number."""
        value = self.headers.get(PUBLISHED_AT_HEADER)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            moment = float(value)
        except OverflowError:
            return None
        return moment if math.isfinite(moment) else None

    @property
    def redelivered(self) -> bool:
        """Whether the broker marked this message as delivered before."""
        info = getattr(self.message, "delivery_info", None)
        return bool(info.get("redelivered")) if isinstance(info, Mapping) else False

    @property
    def expires(self) -> datetime | None:
        """Celery's ``expires`` header as an aware datetime (checked on receipt)."""
        return _expires(self.headers.get("expires"))

    def raw_body(self) -> bytes:
        """The body as bytes, as it travelled (empty when there is none)."""
        body = getattr(self.message, "body", None)
        if body is None:
            return b""
        if isinstance(body, str):
            return body.encode("utf-8", errors="surrogatepass")
        return bytes(body)

    def payload_sha256(self) -> str:
        """SHA-256 of the raw body, to find the original of a dead letter."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.raw_body()).hexdigest()
        return self._sha256

    def snapshot_data(self, limits: SecuritySettings) -> dict[str, Any]:
        """The snapshot object inside the task body (decoded once).

        Raises:
            InvalidInput: unsupported content type, oversize, malformed JSON, a body that is
                not a protocol-2 task with the snapshot as its only argument, or headers
                that are unreadable or disagree with the body.
        """
        if self._error is not None:
            raise self._error
        if self._data is None:
            self.prepare(limits)
            return self.snapshot_data(limits)
        return self._data

    def _check_headers(self) -> None:
        unreadable = getattr(self.message, "unreadable", None)
        if unreadable is not None:
            raise InvalidInput(
                f"message envelope: {unreadable}",
                reason=DeadLetterReason.MALFORMED_ENVELOPE.value,
                field="<envelope>",
            )
        headers = self.headers
        task = headers.get("task")
        if task != TASK_DIAGNOSE:
            raise InvalidInput(
                f"headers.task: {printable(repr(task))[:100]} is not the snapshot task "
                f"{TASK_DIAGNOSE!r}",
                reason=DeadLetterReason.INVALID_HEADER.value,
                field="headers.task",
            )
        task_id = headers.get("id")
        if task_id is not None and not (isinstance(task_id, str) and _usable_key(task_id)):
            raise InvalidInput(
                f"headers.id: must be a printable string of 1-{MAX_KEY_CHARS} characters",
                reason=DeadLetterReason.INVALID_HEADER.value,
                field="headers.id",
            )
        _expires(headers.get("expires"))  # raises when unreadable

    def _decode(
        self, limits: SecuritySettings, verifier: SignatureVerifier | None = None
    ) -> dict[str, Any]:
        content_type = getattr(self.message, "content_type", None)
        expected = "application/json" if verifier is None else SIGNED_CONTENT_TYPE
        if content_type != expected:
            kind = "" if verifier is None else " (signed messages required)"
            raise InvalidInput(
                f"content type {printable(repr(content_type))[:100]} refused: only {expected} "
                f"is accepted{kind}",
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


def printable(text: str) -> str:
    """``text`` with every non-printable character written as its escape."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _usable_key(value: str) -> bool:
    return 0 < len(value) <= MAX_KEY_CHARS and value.isprintable()


def _expires(value: Any) -> datetime | None:
    """Celery's ``expires`` header: absent or null, or an ISO-8601 moment.

    Raises:
        InvalidInput: ``invalid_header`` naming ``headers.expires``.
    """
    if value is None:
        return None
    parsed: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise InvalidInput(
            f"headers.expires: {printable(repr(value))[:100]} is not an ISO-8601 moment",
            reason=DeadLetterReason.INVALID_HEADER.value,
            field="headers.expires",
        )
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


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
