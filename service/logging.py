"""Loguru configuration: JSON lines on stdout, context fields on every line.

Every line logged while a task or a batch runs carries the fields bound with
``log_context`` (task id, snapshot id, system id, the producer's correlation id). Standard
``logging`` records (Celery, kombu, SQLAlchemy, ...) are routed into loguru, so one format
covers the whole process. A line logged while an OpenTelemetry span is current also carries
``trace_id`` and ``span_id`` (lowercase hex, as trace viewers show them).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from loguru import logger
from opentelemetry.trace import format_span_id, format_trace_id, get_current_span

if TYPE_CHECKING:
    from loguru import Message, Record

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "gnn_log_context", default=None
)

# Names of record fields that are ours rather than loguru's extras.
_CORE = ("time", "level", "message", "name", "function", "line")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` to every log line emitted inside the block (this task, thread)."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def bind_context(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Bind ``fields`` until ``unbind_context(token)``; for signal-based task hooks."""
    current = _context.get() or {}
    return _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})


def unbind_context(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Undo one ``bind_context``."""
    _context.reset(token)


def _patch(record: Record) -> None:
    context = _context.get()
    if context:
        for key, value in context.items():
            record["extra"].setdefault(key, value)
    span_context = get_current_span().get_span_context()
    if span_context.is_valid:
        record["extra"].setdefault("trace_id", format_trace_id(span_context.trace_id))
        record["extra"].setdefault("span_id", format_span_id(span_context.span_id))


def _json_sink(stream: TextIO) -> Callable[[Message], None]:
    def write(message: Message) -> None:
        record = message.record
        line: dict[str, Any] = {
            "ts": record["time"].astimezone(UTC).isoformat(timespec="milliseconds"),
            "level": record["level"].name,
            "message": record["message"],
            "logger": record["extra"].pop("logger_name", None) or record["name"],
        }
        line.update(record["extra"])
        if record["exception"] is not None:
            line["exception"] = "".join(
                _format_exception(record["exception"].type, record["exception"].value)
            )
        stream.write(json.dumps(line, default=str) + "\n")
        stream.flush()

    return write


def _format_exception(exc_type: type[BaseException] | None, value: BaseException | None) -> str:
    import traceback

    if exc_type is None or value is None:
        return ""
    return "".join(traceback.format_exception(exc_type, value, value.__traceback__))


class _InterceptHandler(logging.Handler):
    """Sends standard ``logging`` records to loguru at the same level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(logger_name=record.name).opt(exception=record.exc_info).log(
            level, record.getMessage()
        )


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> None:
    """Route all logging of this process to one sink.

    Args:
        level: Lowest level written.
        fmt: ``json`` for JSON lines, ``console`` for a human format.
        stream: Where lines go; stdout by default (tests pass a buffer).
    """
    out = stream if stream is not None else sys.stdout
    logger.remove()
    logger.configure(patcher=_patch)
    if fmt == "console":
        logger.add(
            out,
            level=level,
            colorize=False,
            format="{time:HH:mm:ss.SSS} {level: <7} {message} {extra}",
        )
    else:
        logger.add(_json_sink(out), level=level)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    for noisy in ("sqlalchemy.engine", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def now_utc() -> datetime:
    """Timezone-aware now, for log fields and records."""
    return datetime.now(UTC)
