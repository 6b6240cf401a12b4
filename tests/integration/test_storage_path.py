"""The worker's write path against real PostgreSQL faults: acks only after commit, and a
database outage that pauses consumption and heals by itself. Redis broker, real workers."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from pipeline_helpers import (
    TableLock,
    TcpProxy,
    demo_snapshots,
    log_events,
    outcomes,
    stored_rows,
    waiting_writers,
)
from sqlalchemy.engine import make_url

from producer.client import ProducerClient
from schemas.result import Diagnosed
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_a_worker_killed_between_compute_and_commit_leaves_the_batch_to_be_stored_once(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    short = {
        "GNN_BROKER__VISIBILITY_TIMEOUT_S": "10",
        "GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S": "4",
        "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": "5",
        "GNN_WORKER__SETTLE_BUDGET_S": "4",  # with the short visibility timeout, checked at start
    }
    first = start_worker("doomed", **short)
    snapshots = demo_snapshots(6, "commit")
    ids = [s.snapshot_id for s in snapshots]
    with TableLock(url):
        client.submit_many(snapshots)
        deadline = time.monotonic() + 30
        while waiting_writers(url) == 0:  # computed; its INSERT waits on the lock
            assert time.monotonic() < deadline, "the worker never reached its write"
            time.sleep(0.05)
        assert first.stop(sig=signal.SIGKILL) == -signal.SIGKILL
    assert set(stored_rows(url, ids).values()) == {0}  # nothing committed, nothing acked
    start_worker("heir", **short)
    results = outcomes(client, ids, timeout=60)  # redelivered after the visibility timeout
    assert all(isinstance(r, Diagnosed) for r in results.values())
    assert set(stored_rows(url, ids).values()) == {1}  # stored exactly once each


def test_a_database_outage_pauses_consumption_loses_nothing_and_heals(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    url = make_url(pipeline_env["GNN_DATABASE__URL"])
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.up()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    try:
        worker = start_worker(
            "w1",
            GNN_DATABASE__URL=through_proxy,
            GNN_DATABASE__RETRY_MAX_TOTAL_S="1.5",
            GNN_DATABASE__RETRY_BASE_DELAY_S="0.05",
            GNN_DATABASE__POOL_TIMEOUT_S="2",
            GNN_DATABASE__OUTAGE_PROBE_INTERVAL_S="0.3",
        )
        before = demo_snapshots(8, "before")
        client.submit_many(before)
        assert all(
            isinstance(r, Diagnosed)
            for r in outcomes(client, [s.snapshot_id for s in before]).values()
        )
        proxy.down()
        during = demo_snapshots(12, "during")
        client.submit_many(during)
        deadline = time.monotonic() + 30
        while worker.readiness()[0] == 200:  # the database check turns the worker not-ready
            assert time.monotonic() < deadline, worker.log_tail(40)
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while client.queue_depth() != 12:  # every snapshot back in the queue, none acked
            assert time.monotonic() < deadline, f"queue depth {client.queue_depth()}"
            time.sleep(0.1)
        time.sleep(1.0)
        assert client.queue_depth() == 12  # paused: it takes nothing while the database is down
        assert log_events(worker.log_path, "outcome store unavailable; batch requeued")
        proxy.up()
        ids = [s.snapshot_id for s in during]
        results = outcomes(client, ids, timeout=60)
        assert all(isinstance(r, Diagnosed) for r in results.values())
        assert set(stored_rows(str(pipeline_env["GNN_DATABASE__URL"]), ids).values()) == {1}
        assert log_events(worker.log_path, "database available again: resuming consumption")
        assert worker.readiness()[0] == 200
        retries = log_events(worker.log_path, "database retry")
        assert retries
        assert all(event["cause"] for event in retries)
    finally:
        proxy.down()
