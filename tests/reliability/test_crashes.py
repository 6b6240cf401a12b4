"""Workers that die: SIGKILL mid-batch (a running worker restores the dead one's messages
after the visibility timeout) and SIGTERM under load (warm shutdown); nothing lost, nothing
recorded twice."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime

import pytest
import redis
from pipeline_helpers import TableLock, demo_snapshots, log_events, waiting_writers
from reliability_helpers import (
    DEFAULTS,
    LONG,
    Reconciliation,
    copies,
    publish_at_rate,
    wait_for_outcomes,
)

from producer.client import ProducerClient
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def _held_by_workers(broker_url: str, queue: str) -> set[str]:
    """Task ids delivered from ``queue`` and not yet acknowledged (kombu's unacked hash)."""
    client = redis.Redis.from_url(broker_url)
    try:
        held = set()
        for raw in client.hvals("unacked"):
            message, _exchange, routing_key = json.loads(raw)
            if routing_key == queue:
                held.add(message["headers"]["id"])
        return held
    finally:
        client.close()


def test_a_worker_killed_mid_batch_is_redelivered_by_a_running_worker_and_stored_once(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    doomed = start_worker("doomed")  # the default settings: the measured recovery is theirs
    survivor = start_worker("survivor")
    templates = demo_snapshots(20, "kill")
    first = copies(templates, 200, "kill")
    with TableLock(url):  # both workers compute a batch and block in its INSERT
        client.submit_many(first)
        deadline = time.monotonic() + 30
        while waiting_writers(url) < 2:
            assert time.monotonic() < deadline, doomed.log_tail(20)
            time.sleep(0.05)
        held_before = _held_by_workers(pipeline_env["GNN_BROKER__URL"], client.queue)
        assert doomed.stop(sig=signal.SIGKILL) == -signal.SIGKILL  # mid-batch
        killed_at = time.time()
    # Traffic that keeps the survivor busy past the visibility timeout, so that the doomed
    # worker's messages come back through the survivor's restore scan while it works
    # (published after the lock is released: the survivor's write has a settle budget).
    visibility = float(DEFAULTS["GNN_BROKER__VISIBILITY_TIMEOUT_S"])
    scan = float(DEFAULTS["GNN_BROKER__RESTORE_CHECK_INTERVAL_S"])
    rate = 300.0 if LONG else 150.0
    backlog = copies(templates, int((visibility + scan + 10) * rate), "kill-backlog")
    publish_at_rate(client, backlog, rate)
    ids = [s.snapshot_id for s in first + backlog]
    result = wait_for_outcomes(url, ids, timeout_s=180, scenario="worker SIGKILL mid-batch")
    result.assert_complete()
    assert result.stored == len(ids)
    assert held_before, "no message was held at the kill"
    restored = log_events(survivor.log_path, "restored messages of vanished workers")
    assert restored, survivor.log_tail(20)
    backlog_done = max(result.recorded_at[s.snapshot_id].timestamp() for s in backlog)
    assert restored[0]["count"] > 0
    restored_s = datetime.fromisoformat(restored[0]["ts"]).timestamp() - killed_at
    assert restored_s < visibility + scan + 5, restored_s  # while the backlog kept it busy
    assert restored_s < backlog_done - killed_at
    redelivery_s = max(result.recorded_at[i].timestamp() for i in held_before) - killed_at
    result.figures = {
        "held_at_kill": float(len(held_before)),
        "backlog_behind_kill": float(len(backlog)),
        "redelivery_s": round(redelivery_s, 1),
        "backlog_drained_s": round(backlog_done - killed_at, 1),
        "restored_after_kill_s": round(restored_s, 1),
        "visibility_timeout_s": visibility,
    }
    report.append(result)


def test_sigterm_under_load_finishes_the_batch_in_hand_and_loses_nothing(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    leaving = start_worker("leaving")
    snapshots = copies(demo_snapshots(20, "term"), 1000 if LONG else 300, "term")
    ids = [s.snapshot_id for s in snapshots]
    client.submit_many(snapshots)
    deadline = time.monotonic() + 30
    while not log_events(leaving.log_path, "batch settled"):
        assert time.monotonic() < deadline, leaving.log_tail(20)
        time.sleep(0.02)
    stopped_at = time.monotonic()
    assert leaving.stop(sig=signal.SIGTERM) == 0  # warm shutdown under load
    shutdown_s = time.monotonic() - stopped_at
    settled_before = len(log_events(leaving.log_path, "batch settled"))
    start_worker("heir")
    result = wait_for_outcomes(url, ids, timeout_s=120, scenario="worker SIGTERM under load")
    result.assert_complete()
    assert result.stored == len(ids)
    assert client.queue_depth() == 0
    result.figures = {"shutdown_s": round(shutdown_s, 2), "batches_before_stop": settled_before}
    report.append(result)
