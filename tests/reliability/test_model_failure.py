"""A model version that fails for 10 s: the worker that runs it opens its breaker and stops
consuming, another worker (still on the previous version) takes the messages, and the first
recovers by itself within 30 s of the fault's end; every snapshot is diagnosed once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_helpers import demo_snapshots, log_events
from reliability_helpers import LONG, Reconciliation, copies, publish_at_rate, wait_for_outcomes
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine

from producer.client import ProducerClient
from schemas import load_spec
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]
Activate = Callable[..., None]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)

PRESS = Path(__file__).parents[2] / "docs" / "examples" / "hydraulic_press.yaml"


def _stored_by_version(database_url: str, ids: list[str]) -> dict[str, list[float]]:
    import asyncio

    async def query() -> dict[str, list[float]]:
        engine = create_async_engine(database_url)
        found: dict[str, list[float]] = {}
        try:
            async with engine.connect() as connection:
                statement = text(
                    "SELECT model_version, stored_at FROM diagnoses WHERE snapshot_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True))
                for version, stored_at in await connection.execute(statement, {"ids": ids}):
                    found.setdefault(version, []).append(stored_at.timestamp())
        finally:
            await engine.dispose()
        return found

    return asyncio.run(query())


def test_a_failing_model_opens_the_breaker_another_worker_takes_over_and_it_recovers(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    activate_model: Activate,
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    # The broken version overflows on machines whose component types the demos lack.
    # Published at 15/s for 2 s before the fault, through it, and 16 s after it: past the
    # default breaker reset (10 s), so that the failing worker serves again.
    snapshots = copies(demo_snapshots(10, "mf", load_spec(PRESS)), 600 if LONG else 420, "mf")
    # "keeper" checks the registry once a minute: it stays on v1 through the fault.
    keeper = start_worker("keeper", GNN_MODEL__REGISTRY_CHECK_INTERVAL_S="60")
    swapper = start_worker("swapper")  # every other setting the default
    fault_s = 10.0
    published: dict[str, float] = {}
    producer = threading.Thread(
        target=lambda: published.update(publish_at_rate(client, snapshots, 15.0))
    )
    producer.start()
    time.sleep(2.0)
    activate_model(pipeline_env, "broken", broken=True)
    time.sleep(fault_s)
    activate_model(pipeline_env, "v3")
    fault_ended_at = time.time()
    producer.join(120)
    ids = list(published)
    result = wait_for_outcomes(url, ids, timeout_s=90, scenario="model fails for 10 s")
    result.assert_complete()
    assert result.stored == len(ids)
    assert result.dead_lettered == 0  # the breaker opened before any snapshot was failed

    assert log_events(swapper.log_path, "circuit breaker open: stopped consuming")
    assert not log_events(keeper.log_path, "circuit breaker open: stopped consuming")
    by_version = _stored_by_version(url, ids)
    assert "universal:broken" not in by_version
    assert by_version["universal:v1"]  # the keeper served through the fault
    recovered_s = min(by_version["universal:v3"]) - fault_ended_at  # the swapper again
    assert recovered_s < 30
    assert swapper.readiness()[0] == 200
    result.figures = {
        "fault_s": fault_s,
        "recovered_after_fault_s": round(recovered_s, 1),
        "diagnosed_by_keeper_v1": float(len(by_version["universal:v1"])),
        "diagnosed_after_recovery_v3": float(len(by_version["universal:v3"])),
    }
    report.append(result)
