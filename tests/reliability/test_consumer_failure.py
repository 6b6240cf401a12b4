"""A store that fails in a way no retry helps (the outcomes table renamed away under a live
worker): the batch is requeued once, its messages come back one per batch, the consumer
restarts after each failure, and past GNN_WORKER__MAX_CONSUMER_RESTARTS the process exits
(71) for its supervisor; nothing is acked without an outcome, and a fresh worker on the
repaired database stores every snapshot once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from pipeline_helpers import demo_snapshots, log_events
from reliability_helpers import Reconciliation, wait_for_outcomes
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from producer.client import ProducerClient
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def _execute(url: str, statement: str) -> None:
    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_store_failing_for_good_restarts_the_consumer_then_ends_the_process(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    doomed = start_worker("doomed")
    snapshots = demo_snapshots(3, "crash")
    _execute(url, "ALTER TABLE outcomes RENAME TO outcomes_away")
    try:
        client.submit_many(snapshots)
        deadline = time.monotonic() + 90
        while doomed.poll() is None:
            assert time.monotonic() < deadline, doomed.log_tail(30)
            time.sleep(0.2)
        assert doomed.poll() == 71
    finally:
        _execute(url, "ALTER TABLE outcomes_away RENAME TO outcomes")
    failed = log_events(doomed.log_path, "batch failed unexpectedly; requeued")
    assert failed[0]["snapshots"] == 3  # the first batch held all three
    assert {event["snapshots"] for event in failed[1:]} == {1}  # then one per batch
    assert len(log_events(doomed.log_path, "snapshot consumer failed; restarting it")) == 6
    assert log_events(doomed.log_path, "snapshot consumer keeps failing; ending the process")
    start_worker("heir")
    ids = [s.snapshot_id for s in snapshots]
    result = wait_for_outcomes(url, ids, timeout_s=90, scenario="store fails for good")
    result.assert_complete()
    assert result.stored == len(ids)  # nothing was acked or dead-lettered without a store
    report.append(result)
