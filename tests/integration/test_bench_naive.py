"""The pipeline benchmark's naive baseline (training/benchmarks/naive.py) as the benchmark
starts it: a real worker process, on the embedded broker and on Redis, that takes each
snapshot as one plain Celery task, stores its diagnosis and answers pollers, with no
micro-batching consumer running."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import demo_snapshots, log_events, outcomes

from producer.client import ProducerClient
from schemas.result import Diagnosed
from service.launcher import WorkerProcess
from training.benchmarks.naive import NAIVE_COMMAND

pytestmark = pytest.mark.integration


def test_a_naive_worker_diagnoses_each_snapshot_in_a_task_of_its_own(
    pipeline_env: dict[str, str], data_dir: Path, client: ProducerClient
) -> None:
    worker = WorkerProcess(
        env={**pipeline_env, "GNN_WORKER__POOL": "prefork", "GNN_WORKER__CONCURRENCY": "1"},
        hostname="naive@%h",
        log_path=data_dir / "naive.log",
        command=NAIVE_COMMAND,
    )
    worker.start()
    try:
        worker.wait_ready(timeout_s=90)
        snapshots = demo_snapshots(6, "naive")
        client.submit_many(snapshots)
        results = outcomes(client, [s.snapshot_id for s in snapshots])
        for snapshot_id, result in results.items():
            assert isinstance(result, Diagnosed), result
            assert result.diagnosis.snapshot_id == snapshot_id
            assert result.diagnosis.model_version == "universal:v1"
        stored = {d.snapshot_id: d for d in client.history(snapshots[0].system_id, limit=100)}
        assert stored.keys() >= results.keys()  # inserted by the task, one row each
    finally:
        assert worker.stop() == 0
    assert log_events(worker.log_path, "batch settled") == []  # no batch loop ran
    assert client.queue_depth() == 0
