"""Three worker processes on one Redis queue and one PostgreSQL database: they share a burst,
all switch to a newly activated model version without a restart, and killing one of them
mid-burst loses nothing and stores nothing twice."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
from pipeline_helpers import demo_snapshots, log_events, outcomes, stored_rows

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


def test_three_workers_share_a_queue_switch_models_together_and_survive_a_kill(
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
    client.submit_many(snapshots)
    deadline = time.monotonic() + 30
    while not log_events(workers[0].log_path, "batch settled"):
        assert time.monotonic() < deadline, "w0 never took a batch"
        time.sleep(0.05)
    assert workers[0].stop(sig=signal.SIGKILL) == -signal.SIGKILL  # mid-burst

    results = outcomes(client, ids, timeout=120)  # the rest, and w0's unacked after 10 s
    assert all(isinstance(r, Diagnosed) for r in results.values())
    versions = {r.diagnosis.model_version for r in results.values() if isinstance(r, Diagnosed)}
    assert versions == {"universal:v2"}
    assert set(stored_rows(pipeline_env["GNN_DATABASE__URL"], ids).values()) == {1}
    for survivor in workers[1:]:
        assert log_events(survivor.log_path, "batch settled")  # the burst was shared
    assert client.queue_depth() == 0
