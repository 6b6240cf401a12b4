"""The reliability suite: real workers on Redis and PostgreSQL under faults, each scenario
ending in a reconciliation of every published snapshot (tests/support/reliability_helpers)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import Reconciliation

#: Worker settings that make redelivery after a crash quick enough for a test: a killed
#: worker's messages come back after the visibility timeout (its minimum, 10 s), found by a
#: surviving worker's scan every second.
FAST_REDELIVERY = {
    "GNN_BROKER__VISIBILITY_TIMEOUT_S": "10",
    "GNN_BROKER__RESTORE_CHECK_INTERVAL_S": "1",
    "GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S": "6",
    "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": "8",
}

_REPORT: list[dict[str, object]] = []


@pytest.fixture
def fast_redelivery() -> dict[str, str]:
    """Settings for workers whose crashes are redelivered within seconds."""
    return dict(FAST_REDELIVERY)


@pytest.fixture
def report() -> Iterator[list[Reconciliation]]:
    """Append each scenario's reconciliation; kept for ``GNN_RELIABILITY_REPORT``."""
    found: list[Reconciliation] = []
    yield found
    _REPORT.extend(item.summary() for item in found)


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("GNN_RELIABILITY_REPORT")
    if target and _REPORT:
        Path(target).write_text(json.dumps(_REPORT, indent=2, default=str) + "\n")
