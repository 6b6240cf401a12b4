"""Three worker processes on one Redis queue and one PostgreSQL database: they share a burst,
all switch to a newly activated model version without a restart, and each snapshot is
stored once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from pipeline_helpers import (
    demo_snapshots,
    log_events,
    outcomes,
    stored_rows,
)

from producer.client import ProducerClient
from schemas.result import Diagnosed
from worker.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]
Activate = Callable[..., None]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)

_SHORT = {
    "GNN_BROKER__VISIBILITY_TIMEOUT_S": "10",
    "GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S": "4",
    "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": "5",
}


def test_three_workers_share_a_queue_and_switch_models_together(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    activate_model: Activate,
) -> None:
    workers = [start_worker(f"w{i}", **_SHORT) for i in range(3)]

    # A version activated through the registry reaches every worker without a restart.
    activate_model(pipeline_env, "v2")
    deadline = time.monotonic() + 30
    while not all(log_events(w.log_path, "model swapped between batches") for w in workers):
        assert time.monotonic() < deadline, "not every worker switched to v2"
        time.sleep(0.1)

    snapshots = demo_snapshots(300, "fleet")
    ids = [s.snapshot_id for s in snapshots]
    url = pipeline_env["GNN_DATABASE__URL"]
    client.submit_many(snapshots)
    results = outcomes(client, ids, timeout=120)
    assert all(isinstance(r, Diagnosed) for r in results.values())
    versions = {r.diagnosis.model_version for r in results.values() if isinstance(r, Diagnosed)}
    assert versions == {"universal:v2"}
    assert set(stored_rows(url, ids).values()) == {1}
    for worker in workers:
        assert log_events(worker.log_path, "batch settled")  # the burst was shared
    assert client.queue_depth() == 0
