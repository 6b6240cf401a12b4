"""Reconciliation and load helpers of the reliability suite (tests/reliability).

Every scenario ends with :func:`reconcile`: each published snapshot id must have exactly one
recorded outcome in the database (a diagnosis, an expiration or a dead letter), none missing
and none twice. The figures of each scenario are collected and, when
``GNN_RELIABILITY_REPORT`` names a file, written there as JSON (docs/reliability.md quotes
them).
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from producer.client import ProducerClient
from schemas import Snapshot
from service.settings import (
    BatchingSettings,
    BreakerSettings,
    BrokerSettings,
    ModelSettings,
    WorkerSettings,
)

LONG = os.environ.get("GNN_RELIABILITY_LONG", "").lower() in ("1", "true", "yes")
"""The longer variants (``GNN_RELIABILITY_LONG=1``): longer outages and load periods."""

#: What pipeline_env (tests/support/pipeline_fixtures.py) shortens for the integration
#: tests, put back to the defaults: the reliability scenarios run on the default settings,
#: and a scenario that changes one says why where it does.
DEFAULTS = {
    "GNN_BROKER__VISIBILITY_TIMEOUT_S": str(BrokerSettings().visibility_timeout_s),
    "GNN_BROKER__RESTORE_CHECK_INTERVAL_S": str(BrokerSettings().restore_check_interval_s),
    "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(BatchingSettings().max_batch_snapshots),
    "GNN_BREAKER__FAILURE_THRESHOLD": str(BreakerSettings().failure_threshold),
    "GNN_BREAKER__RESET_TIMEOUT_S": str(BreakerSettings().reset_timeout_s),
    "GNN_MODEL__REGISTRY_CHECK_INTERVAL_S": str(ModelSettings().registry_check_interval_s),
    "GNN_WORKER__SETTLE_BUDGET_S": str(WorkerSettings().settle_budget_s),
    "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": str(WorkerSettings().batch_hard_time_limit_s),
}


_OUTCOME_TABLES = {
    "stored": "SELECT snapshot_id, stored_at FROM diagnoses WHERE snapshot_id IN :ids",
    "expired": "SELECT snapshot_id, observed_at FROM expirations WHERE snapshot_id IN :ids",
    "dead_lettered": "SELECT message_key, stored_at FROM dead_letters WHERE message_key IN :ids",
}
_CHUNK = 5000


@dataclass
class Reconciliation:
    """What became of each published snapshot, and the scenario's own figures."""

    scenario: str
    published: int
    stored: int = 0
    expired: int = 0
    dead_lettered: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)
    recorded_at: dict[str, datetime] = field(default_factory=dict, repr=False)

    def assert_complete(self) -> None:
        """Every id has exactly one outcome."""
        assert not self.missing, f"{self.scenario}: {len(self.missing)} missing: {self.missing[:5]}"
        assert not self.duplicates, f"{self.scenario}: recorded twice: {self.duplicates[:5]}"
        assert self.stored + self.expired + self.dead_lettered == self.published

    def summary(self) -> dict[str, Any]:
        """The JSON-ready figures."""
        out = asdict(self)
        del out["recorded_at"]
        out["missing"] = len(self.missing)
        out["duplicates"] = len(self.duplicates)
        return out


def reconcile(scenario: str, database_url: str, ids: Sequence[str]) -> Reconciliation:
    """Count each id's outcomes over the three outcome tables."""

    async def query() -> dict[str, list[tuple[str, datetime]]]:
        engine = create_async_engine(database_url)
        found: dict[str, list[tuple[str, datetime]]] = {name: [] for name in _OUTCOME_TABLES}
        try:
            async with engine.connect() as connection:
                for name, sql in _OUTCOME_TABLES.items():
                    statement = text(sql).bindparams(bindparam("ids", expanding=True))
                    for start in range(0, len(ids), _CHUNK):
                        chunk = list(ids[start : start + _CHUNK])
                        rows = await connection.execute(statement, {"ids": chunk})
                        found[name].extend((row[0], row[1]) for row in rows)
        finally:
            await engine.dispose()
        return found

    found = asyncio.run(query())
    counts: dict[str, int] = {}
    result = Reconciliation(scenario=scenario, published=len(ids))
    for name, rows in found.items():
        setattr(result, name, len(rows))
        for snapshot_id, moment in rows:
            counts[snapshot_id] = counts.get(snapshot_id, 0) + 1
            result.recorded_at[snapshot_id] = moment
    result.missing = [i for i in ids if counts.get(i, 0) == 0]
    result.duplicates = sorted(i for i, n in counts.items() if n > 1)
    return result


def wait_for_outcomes(
    database_url: str, ids: Sequence[str], timeout_s: float, scenario: str = "wait"
) -> Reconciliation:
    """Poll the database until every id has an outcome (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = reconcile(scenario, database_url, ids)
        if not result.missing or time.monotonic() >= deadline:
            return result
        time.sleep(0.5)


def copies(templates: Sequence[Snapshot], count: int, prefix: str) -> list[Snapshot]:
    """``count`` snapshots cycling through ``templates``, each with its own id."""
    return [
        templates[i % len(templates)].model_copy(update={"snapshot_id": f"{prefix}-{i:06d}"})
        for i in range(count)
    ]


def publish_at_rate(
    client: ProducerClient,
    snapshots: Iterable[Snapshot],
    rate_per_s: float,
    *,
    stop: threading.Event | None = None,
    on_error: Callable[[Snapshot, Exception], None] | None = None,
) -> dict[str, float]:
    """Open-loop publishing on a fixed schedule; returns each acknowledged id's publish time.

    A snapshot whose submit raises is passed to ``on_error`` (or the error is raised); a
    submit that blocks (backpressure) delays the schedule, which is then not caught up.
    """
    published: dict[str, float] = {}
    interval = 1.0 / rate_per_s
    next_at = time.monotonic()
    for snapshot in snapshots:
        if stop is not None and stop.is_set():
            break
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        next_at = max(next_at + interval, time.monotonic() - interval)
        sent_at = time.time()
        try:
            client.submit(snapshot)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(snapshot, exc)
            continue
        published[snapshot.snapshot_id] = sent_at
    return published


def latencies_ms(result: Reconciliation, published: dict[str, float]) -> list[float]:
    """Publish to recorded, per acknowledged id, sorted."""
    return sorted(
        (result.recorded_at[i].timestamp() - sent) * 1000.0
        for i, sent in published.items()
        if i in result.recorded_at
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of sorted ``values`` (``q`` in [0, 100])."""
    if not values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(values)))
    return float(values[rank - 1])


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Sampler:
    """Calls ``probe`` every ``interval_s`` on a thread and keeps the largest value."""

    def __init__(self, probe: Callable[[], float], interval_s: float = 0.2) -> None:
        self.probe = probe
        self.interval_s = interval_s
        self.peak = -math.inf
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                value = self.probe()
            except Exception:  # a probe racing a stopping process: skip this sample
                value = -math.inf
            self.peak = max(self.peak, value)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
