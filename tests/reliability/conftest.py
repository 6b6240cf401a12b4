"""The reliability suite: real workers on Redis and PostgreSQL under faults, each scenario
ending in a reconciliation of every published snapshot (tests/support/reliability_helpers)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pipeline_helpers import PersistentRedis
from reliability_helpers import DEFAULTS, Reconciliation

from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(start_worker: StartWorker) -> StartWorker:
    """``start_worker`` on the default settings (what a scenario passes still wins)."""

    def start(name: str = "w1", **extra_env: str) -> WorkerProcess:
        return start_worker(name, **{**DEFAULTS, **extra_env})

    return start


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[PersistentRedis]:
    """A redis-server with append-only persistence, killed and restarted by the test."""
    server = PersistentRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


_REPORT: list[dict[str, object]] = []


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
