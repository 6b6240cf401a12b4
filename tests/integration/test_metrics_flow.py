"""A live worker's /metrics move as snapshots flow; the exporter reports a queue with no
worker at all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipeline_helpers import demo_snapshots, outcomes, publish_raw, scrape, task_body, value

from producer.client import ProducerClient
from schemas.result import DeadLettered, Diagnosed
from service.launcher import WorkerProcess, free_port

StartWorker = Callable[..., WorkerProcess]


def test_a_live_worker_reports_traffic_outcomes_latency_and_storage(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    worker = start_worker()
    before = scrape(f"{worker.base_url}/metrics")
    assert value(before, "gnn_worker_ready") == 1
    snapshots = demo_snapshots(20, "metrics")
    client.submit_many(snapshots)
    bad = snapshots[0].model_dump(mode="json") | {"snapshot_id": "metrics-bad"}
    bad["window"]["sample_rate_hz"] = -1
    publish_raw(client, task_body(bad), content_type="application/json", task_id="metrics-bad")
    results = outcomes(client, [s.snapshot_id for s in snapshots] + ["metrics-bad"])
    assert sum(isinstance(r, Diagnosed) for r in results.values()) == 20
    assert isinstance(results["metrics-bad"], DeadLettered)
    deadline = time.monotonic() + 10
    while True:  # the ack and the counters follow the result-backend write
        after = scrape(f"{worker.base_url}/metrics")
        if (
            value(after, "gnn_snapshots_acked_total") - value(before, "gnn_snapshots_acked_total")
            >= 21
        ):
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gnn_snapshots_consumed_total") == 21
    assert delta("gnn_snapshots_diagnosed_total") == 20
    assert delta("gnn_dead_letters_total", reason="schema_invalid") == 1
    assert delta("gnn_db_rows_written_total", table="diagnoses") == 20
    assert delta("gnn_db_rows_written_total", table="dead_letters") == 1
    assert delta("gnn_end_to_end_seconds_count") == 20
    assert delta("gnn_queue_wait_seconds_count") == 20  # the raw message had no publish time
    assert delta("gnn_forward_seconds_count") >= 2  # batches of at most 16
    assert delta("gnn_batch_size_snapshots_sum") == 21
    assert (
        sum(
            delta("gnn_diagnoses_total", machine="excavator", status=s)
            for s in ("ok", "warning", "critical")
        )
        == 20
    )
    assert value(after, "gnn_queue_depth_messages", queue=client.queue) == 0
    assert value(after, "gnn_broker_up") == 1
    assert value(after, "gnn_breaker_state", state="closed") == 1
    assert value(after, "gnn_db_available") == 1
    assert value(after, "gnn_model_info", version="universal:v1", device="cpu") == 1
    assert value(after, "gnn_cuda_memory_allocated_bytes") == 0  # CPU
    assert value(after, "process_resident_memory_bytes") > 0


def test_the_exporter_reports_depth_and_age_with_no_worker_running(
    client: ProducerClient, pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GNN_")},
        **pipeline_env,
        "GNN_OBSERVABILITY__EXPORTER_PORT": str(port),
    }
    before_publish = time.time()
    client.submit_many(demo_snapshots(5, "exporter"))
    log = (tmp_path / "exporter.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "exporter"], env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                samples = scrape(f"http://127.0.0.1:{port}/metrics")
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "exporter.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert value(samples, "gnn_broker_up") == 1
        assert value(samples, "gnn_queue_depth_messages", queue=client.queue) == 5
        age = value(samples, "gnn_queue_oldest_message_age_seconds", queue=client.queue)
        assert 0 < age <= time.time() - before_publish  # the first message's age, from its header
    finally:
        process.terminate()
        process.wait(10)
        log.close()
