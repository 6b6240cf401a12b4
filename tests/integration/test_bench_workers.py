"""`gnn-service benchmark workers` at a tiny size: real worker processes on Redis and a
scratch PostgreSQL database drain the burst once per worker count and once per batch limit,
and the result follows the shared format with a speedup per count and a ratio per limit."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.postgres]

CliRunner = Callable[..., subprocess.CompletedProcess[str]]


def test_the_scaling_benchmark_drains_a_burst_per_worker_count_and_batch_limit(
    gnn_cli: CliRunner, redis_server: str, postgres_server: str, tmp_path: Path
) -> None:
    out = tmp_path / "workers.json"
    done = gnn_cli(
        "benchmark", "workers", "--count", "1", "--count", "2", "--burst", "40",
        "--repeats", "1", "--batch-limit", "16", "--batch-limit", "64",
        "--redis-url", redis_server,
        "--postgres-url", postgres_server.replace("postgresql://", "postgresql+asyncpg://", 1),
        "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["benchmark"] == "workers"
    assert set(result["results"]) == {"1_workers", "2_workers", "batch_16", "batch_64"}
    for row in result["results"].values():
        assert row["drain_throughput_rps"] > 0
        assert len(row["bursts_rps"]) == 1
    assert set(result["ratios"]) == {"speedup_2_vs_1", "batch_16_vs_64"}
    assert "wrote" in done.stdout
