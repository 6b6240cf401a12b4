"""The broker dies and comes back: a redis-server of the test's own with append-only
persistence (fsync on every write) is killed with SIGKILL while a producer publishes and two
workers consume, then restarted on the same port and files. Producers retry with backoff,
workers reconnect, and every snapshot a producer was told is published is stored once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from pipeline_helpers import PersistentRedis, demo_snapshots
from reliability_helpers import (
    LONG,
    Reconciliation,
    copies,
    publish_at_rate,
    wait_for_outcomes,
)

from producer.client import ProducerClient
from schemas import Snapshot
from service.launcher import WorkerProcess
from service.settings import Settings

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_a_broker_killed_and_restarted_loses_nothing_a_producer_was_told_was_published(
    start_worker: StartWorker,
    pipeline_env: dict[str, str],
    persistent_redis: PersistentRedis,
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    broker = {
        "GNN_BROKER__URL": f"{persistent_redis.url}/0",
        "GNN_RESULT_BACKEND__URL": f"{persistent_redis.url}/1",
        "GNN_BROKER__PUBLISH_RETRIES": "8",
    }
    workers = [start_worker(name, **broker) for name in ("a", "b")]
    with pytest.MonkeyPatch.context() as env:
        for name, value in {**pipeline_env, **broker}.items():
            env.setenv(name, value)
        client_settings = Settings()
    count, rate = (2000, 50.0) if LONG else (500, 50.0)
    snapshots = copies(demo_snapshots(20, "brk"), count, "broker")
    refused: list[tuple[Snapshot, Exception]] = []
    published: dict[str, float] = {}

    def produce() -> None:
        with ProducerClient(client_settings) as client:
            published.update(
                publish_at_rate(
                    client, snapshots, rate, on_error=lambda s, e: refused.append((s, e))
                )
            )

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(count / rate / 3)
    persistent_redis.kill()
    down_s = 2.0
    time.sleep(down_s)
    persistent_redis.start()
    restarted_at = time.time()
    producer.join(120)
    assert not producer.is_alive()
    assert not refused, refused[:3]  # the retries outlasted the outage

    ids = list(published)
    result = wait_for_outcomes(url, ids, timeout_s=120, scenario="broker SIGKILL and restart")
    result.assert_complete()
    assert result.stored == len(ids) == count
    for worker in workers:  # reconnected (by redis-py's retries or the consumer's own loop)
        assert worker.readiness()[0] == 200
    after = [result.recorded_at[i].timestamp() - restarted_at for i in ids]
    result.figures = {
        "outage_s": down_s,
        "publish_refused": float(len(refused)),
        "all_stored_after_restart_s": round(max(after), 1),
    }
    report.append(result)
