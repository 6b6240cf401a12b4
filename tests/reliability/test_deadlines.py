"""Snapshots whose deadline passes while they wait in the queue are recorded as expired, not
computed; the others published with them are diagnosed."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from pipeline_helpers import demo_snapshots
from reliability_helpers import LONG, Reconciliation, copies, wait_for_outcomes

from producer.client import ProducerClient
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_deadlines_that_pass_in_the_queue_are_recorded_expired(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    count = 500 if LONG else 100
    templates = demo_snapshots(10, "dl")
    deadline = datetime.now(UTC) + timedelta(seconds=3)
    doomed = [
        s.model_copy(update={"deadline": deadline})
        for s in copies(templates, count, "deadline-passes")
    ]
    patient = copies(templates, count, "no-deadline")
    for pair in zip(doomed, patient, strict=True):
        client.submit_many(pair)  # interleaved, published before any worker runs
    time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 0.5)
    start_worker("late")
    ids = [s.snapshot_id for s in doomed + patient]
    result = wait_for_outcomes(
        pipeline_env["GNN_DATABASE__URL"], ids, timeout_s=90, scenario="deadlines pass in queue"
    )
    result.assert_complete()
    assert result.expired == count
    assert result.stored == count
    expired = {s.snapshot_id for s in doomed}
    assert all(result.recorded_at[i] > deadline for i in expired)
    report.append(result)
