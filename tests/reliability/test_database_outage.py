"""PostgreSQL goes away for 30 s (every connection dropped, new ones refused) while snapshots
keep arriving: workers stop consuming, requeue what they hold, probe, and resume by
themselves; nothing is lost and nothing recorded twice."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from pipeline_helpers import TableLock, TcpProxy, demo_snapshots, log_events
from reliability_helpers import (
    DEFAULTS,
    LONG,
    Reconciliation,
    copies,
    publish_at_rate,
    wait_for_outcomes,
)
from sqlalchemy.engine import make_url

from producer.client import ProducerClient
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_a_30_s_database_outage_loses_nothing_and_heals_by_itself(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    target = make_url(url)
    proxy = TcpProxy(target.host or "127.0.0.1", target.port or 5432)
    proxy.up()
    # The database behind a proxy the test can cut; every other setting is the default.
    outage = {
        "GNN_DATABASE__URL": target.set(host="127.0.0.1", port=proxy.port).render_as_string(False),
    }
    down_s, rate = (120.0, 20.0) if LONG else (30.0, 10.0)
    lead_s, tail_s = 3.0, 3.0
    count = int((lead_s + down_s + tail_s) * rate)
    snapshots = copies(demo_snapshots(20, "pg"), count, "pg-outage")
    try:
        workers = [start_worker(name, **outage) for name in ("a", "b")]
        published: dict[str, float] = {}
        producer = threading.Thread(
            target=lambda: published.update(publish_at_rate(client, snapshots, rate))
        )
        producer.start()
        time.sleep(lead_s)
        proxy.down()
        time.sleep(down_s)
        proxy.up()
        healed_at = time.time()
        producer.join(120)
        ids = list(published)
        result = wait_for_outcomes(url, ids, timeout_s=120, scenario="PostgreSQL outage")
    finally:
        proxy.down()
    result.assert_complete()
    assert result.stored == len(ids) == count
    for worker in workers:
        assert log_events(worker.log_path, "database available again: resuming consumption")
    during = [i for i, sent in published.items() if healed_at - down_s <= sent < healed_at]
    result.figures = {
        "outage_s": down_s,
        "published_during_outage": float(len(during)),
        "backlog_stored_after_heal_s": round(
            max(result.recorded_at[i].timestamp() for i in during) - healed_at, 1
        ),
    }
    report.append(result)


def _probe(worker: WorkerProcess, seconds: float) -> dict[str, list[int]]:
    """/healthz and /readyz status codes, sampled every 0.2 s for ``seconds``."""
    codes: dict[str, list[int]] = {"healthz": [], "readyz": []}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path, seen in codes.items():
            try:
                with urllib.request.urlopen(f"{worker.base_url}/{path}", timeout=5) as reply:
                    seen.append(reply.status)
            except urllib.error.HTTPError as exc:
                seen.append(exc.code)
        time.sleep(0.2)
    return codes


def test_a_database_that_hangs_pauses_the_worker_and_never_ends_it(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    """A table lock makes every batch write hang (no error, no answer) for twice the settle
    budget: each write gives up at the budget, the batch is requeued, the worker pauses and
    probes; it never passes its hard time limit, and all is stored once afterwards."""
    url = pipeline_env["GNN_DATABASE__URL"]
    worker = start_worker("w1")
    budget = float(DEFAULTS["GNN_WORKER__SETTLE_BUDGET_S"])
    snapshots = copies(demo_snapshots(10, "hang"), 100, "hang")
    ids = [s.snapshot_id for s in snapshots]
    with TableLock(url):
        client.submit_many(snapshots)
        probes = _probe(worker, 2 * budget + 2)
    assert 503 in probes["readyz"]  # paused at some point: the database check failed
    assert set(probes["healthz"]) == {200}  # alive throughout: no reason to restart
    released_at = time.time()
    result = wait_for_outcomes(url, ids, timeout_s=90, scenario="database hangs (table lock)")
    result.assert_complete()
    assert result.stored == len(ids)
    assert log_events(worker.log_path, "outcome store unavailable; batch requeued")
    assert not log_events(worker.log_path, "batch passed its hard time limit; ending the process")
    result.figures = {
        "hang_s": round(2 * budget + 2, 1),
        "stored_after_release_s": round(
            max(stamp.timestamp() for stamp in result.recorded_at.values()) - released_at, 1
        ),
    }
    report.append(result)
