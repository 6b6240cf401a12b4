"""The result backend (its own redis-server) goes away for longer than the settle budget while
snapshots arrive: the batch is requeued unacknowledged, the worker pauses and probes the
backend, resumes when it is back, and every snapshot ends with one outcome, the same in the
database and the result backend."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis
from pipeline_helpers import PersistentRedis, demo_snapshots, log_events
from reliability_helpers import DEFAULTS, Reconciliation, copies, wait_for_outcomes

from producer.client import ProducerClient
from schemas.result import parse_outcome
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_a_result_backend_outage_requeues_pauses_and_heals(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    persistent_redis: PersistentRedis,
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    worker = start_worker("w1", GNN_RESULT_BACKEND__URL=f"{persistent_redis.url}/0")
    budget = float(DEFAULTS["GNN_WORKER__SETTLE_BUDGET_S"])
    snapshots = copies(demo_snapshots(10, "rb"), 60, "rb")
    ids = [s.snapshot_id for s in snapshots]
    persistent_redis.stop()
    stopped_at = time.time()
    client.submit_many(snapshots)  # the client publishes to the broker, not the backend
    deadline = time.monotonic() + budget + 5
    while worker.readiness()[0] != 503:  # paused: the result_backend check fails
        assert time.monotonic() < deadline, worker.log_tail(20)
        time.sleep(0.2)
    # Down for longer than the hard time limit and the settle budget together (which ended
    # the worker when the limit's clock also ran through storing).
    hard = float(DEFAULTS["GNN_WORKER__BATCH_HARD_TIME_LIMIT_S"])
    time.sleep(max(0.0, stopped_at + hard + budget + 2 - time.time()))
    assert worker.poll() is None  # still running
    persistent_redis.start()
    healed_at = time.time()
    result = wait_for_outcomes(url, ids, timeout_s=90, scenario="result backend outage")
    result.assert_complete()
    assert result.stored == len(ids)
    assert log_events(worker.log_path, "outcome store unavailable; batch requeued")
    assert log_events(worker.log_path, "result backend available again: resuming consumption")
    backend = redis.Redis(port=persistent_redis.port)
    deadline = time.monotonic() + 30
    while backend.exists(*(f"celery-task-meta-{i}" for i in ids)) < len(ids):
        assert time.monotonic() < deadline, "outcomes missing from the result backend"
        time.sleep(0.2)
    answered_s = time.time() - healed_at
    for snapshot_id in ids:  # what the backend shows is what the database holds
        stored = parse_outcome(json.loads(backend.get(f"celery-task-meta-{snapshot_id}"))["result"])
        assert stored.outcome == "diagnosed"
    result.figures = {
        "outage_s": round(healed_at - stopped_at, 1),
        "all_answered_after_heal_s": round(answered_s, 1),
    }
    report.append(result)
