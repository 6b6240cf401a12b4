from __future__ import annotations

import pytest
import redis
from kombu.exceptions import OperationalError

from service.disposition import Disposition, disposition
from service.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseUnavailable,
    DeadlineExceeded,
    InvalidInput,
    ModelError,
    QueueFull,
)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidInput("window.readings.p1: ragged", reason="ragged_window"), Disposition.DEAD_LETTER),
        (DeadlineExceeded("deadline passed"), Disposition.EXPIRE),
        (BrokerUnavailable("broker down"), Disposition.RETRY),
        (DatabaseUnavailable("db down"), Disposition.RETRY),
        (ConnectionResetError("reset"), Disposition.RETRY),
        (TimeoutError("slow"), Disposition.RETRY),
        (redis.ConnectionError("refused"), Disposition.RETRY),
        (OperationalError("kombu lost the connection"), Disposition.RETRY),
        (ModelError("forward failed"), Disposition.FAIL),
        (ConfigurationError("bad file"), Disposition.FAIL),
        (QueueFull("queue at 10000"), Disposition.FAIL),
        (ValueError("bug"), Disposition.FAIL),
    ],
)  # fmt: skip
def test_disposition_decides_each_errors_fate(error: BaseException, expected: Disposition) -> None:
    assert disposition(error) is expected


def test_invalid_input_carries_reason_and_field() -> None:
    error = InvalidInput(
        "window.readings.p1: 10 values, expected 60", reason="ragged_window", field="p1"
    )
    assert error.reason == "ragged_window"
    assert error.field == "p1"
    assert error.context["reason"] == "ragged_window"
    assert str(error) == "window.readings.p1: 10 values, expected 60"
