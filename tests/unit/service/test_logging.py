from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from loguru import logger

from service.logging import bind_context, configure_logging, log_context, unbind_context


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=buffer)
    yield buffer
    logger.remove()


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_lines_are_json_with_bound_context(stream: io.StringIO) -> None:
    with log_context(task_id="t-1", correlation_id="corr-9"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = _lines(stream)
    assert inside["message"] == "inside"
    assert inside["task_id"] == "t-1"
    assert inside["correlation_id"] == "corr-9"
    assert inside["level"] == "INFO"
    assert "correlation_id" not in outside


def test_standard_logging_is_routed_with_the_context(stream: io.StringIO) -> None:
    token = bind_context(correlation_id="corr-std")
    try:
        logging.getLogger("celery.worker").warning("from stdlib %s", "logging")
    finally:
        unbind_context(token)
    (line,) = _lines(stream)
    assert line["message"] == "from stdlib logging"
    assert line["logger"] == "celery.worker"
    assert line["level"] == "WARNING"
    assert line["correlation_id"] == "corr-std"


def test_exceptions_are_logged_with_their_traceback(stream: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (line,) = _lines(stream)
    assert "ValueError: boom" in str(line["exception"])


def test_console_format_is_human_readable() -> None:
    buffer = io.StringIO()
    configure_logging(level="INFO", fmt="console", stream=buffer)
    try:
        with log_context(correlation_id="c-1"):
            logger.info("hello")
    finally:
        logger.remove()
    text = buffer.getvalue()
    assert "hello" in text
    assert "c-1" in text
    assert not text.startswith("{")
