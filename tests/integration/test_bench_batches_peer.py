"""The pipeline benchmark's celery-batches peer (training/benchmarks/batches_peer.py) as the
benchmark starts it: a real worker process whose Batches task takes the snapshots in
batches, stores their diagnoses in one transaction per flush and answers pollers, with no
micro-batching consumer of ours running."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pipeline_helpers import demo_snapshots, log_events, outcomes

from producer.client import ProducerClient
from schemas.result import Diagnosed
from service.launcher import WorkerProcess
from training.benchmarks.batches_peer import BATCHES_COMMAND, FLUSH_EVERY

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True),
]


def test_a_celery_batches_worker_diagnoses_snapshots_in_flushed_batches(
    pipeline_env: dict[str, str], data_dir: Path, client: ProducerClient
) -> None:
    worker = WorkerProcess(
        env={
            **pipeline_env,
            "GNN_WORKER__POOL": "prefork",
            "GNN_WORKER__CONCURRENCY": "1",
            "GNN_WORKER__PREFETCH_MULTIPLIER": str(FLUSH_EVERY),
        },
        hostname="batches@%h",
        log_path=data_dir / "batches.log",
        command=BATCHES_COMMAND,
    )
    worker.start()
    try:
        worker.wait_ready(timeout_s=90)
        snapshots = demo_snapshots(FLUSH_EVERY + 6, "peer")  # one full flush, one on time
        client.submit_many(snapshots)
        results = outcomes(client, [s.snapshot_id for s in snapshots])
        for snapshot_id, result in results.items():
            assert isinstance(result, Diagnosed), result
            assert result.diagnosis.snapshot_id == snapshot_id
            assert result.diagnosis.model_version == "universal:v1"
        stored = {d.snapshot_id: d for d in client.history(snapshots[0].system_id, limit=1000)}
        assert stored.keys() >= results.keys()
        # A flush is one process() call: its diagnoses share one creation time.
        flushes = Counter(stored[i].created_at for i in results)
        assert max(flushes.values()) > 1, flushes
        assert client.queue_depth() == 0
    finally:
        assert worker.stop() == 0
    assert log_events(worker.log_path, "batch settled") == []  # our batch loop never ran
