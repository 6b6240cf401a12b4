"""``gnn-service benchmark workers``: drain throughput of 1..N worker processes on one Redis
queue and one PostgreSQL database, the same burst for each count, then of the batch limits
(``GNN_BATCHING__MAX_BATCH_SNAPSHOTS``) at one worker count, so that the defaults are chosen
from figures (docs/benchmarks.md)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from service.embedded import EmbeddedRedis
from service.settings import DatabaseSettings, Settings
from training.benchmarks.pipeline import (
    PipelineBenchConfig,
    Report,
    bench_payloads,
    drain_burst,
    running_workers,
)
from training.benchmarks.report import result_document, scratch_database
from worker.model_store import open_registry


@dataclass(frozen=True)
class ScalingBenchConfig:
    """Drain throughput of 1..N worker processes on one Redis queue and one PostgreSQL, and
    of each batch limit at ``limits_workers`` processes."""

    counts: tuple[int, ...] = (1, 2, 3)
    batch_limits: tuple[int, ...] = (16, 32, 64, 128)
    limits_workers: int = 2
    burst: int = 1500
    repeats: int = 2
    max_batch_snapshots: int = 64
    max_wait_ms: int = 50
    system: str = "excavator"
    window_steps: int = 60
    seed: int = 7
    extra: dict[str, Any] = field(default_factory=dict)


def run_scaling_benchmark(
    config: ScalingBenchConfig, *, redis_url: str, postgres_url: str, report: Report
) -> dict[str, Any]:
    """Drain the same burst with each worker count, then with each batch limit at
    ``limits_workers`` processes; the median of ``repeats`` bursts each.

    Args:
        config: Worker counts, batch limits, burst size and repeats.
        redis_url: Redis server (databases 5 and 6).
        postgres_url: Any database of the PostgreSQL server (a scratch database is made).
        report: Progress lines.
    """
    payload_config = PipelineBenchConfig(
        burst=config.burst,
        latency_seconds=0.0,
        system=config.system,
        window_steps=config.window_steps,
        seed=config.seed,
    )
    snapshots = bench_payloads(payload_config)[: config.burst]
    data_dir = Path(tempfile.mkdtemp(prefix="gnn-bench-"))
    results: dict[str, dict[str, float]] = {}
    try:
        with scratch_database(postgres_url, f"gnn_bench_workers_{os.getpid()}") as database:
            with open_registry(
                Settings(data_dir=data_dir, database=DatabaseSettings(url=database))
            ):
                pass  # migrates the scratch database once, before the workers race to
            env = {
                "GNN_DATA_DIR": str(data_dir),
                "GNN_LOG_LEVEL": "WARNING",
                "GNN_BATCHING__MAX_WAIT_MS": str(config.max_wait_ms),
                "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(config.max_batch_snapshots),
                "GNN_MODEL__WARMUP_BATCHES": "2",
                "GNN_MODEL__TORCH_THREADS": "1",
                "GNN_WORKER__SEND_TASK_EVENTS": "false",
                "GNN_BROKER__URL": f"{redis_url}/5",
                "GNN_RESULT_BACKEND__URL": f"{redis_url}/6",
                "GNN_DATABASE__URL": database,
            }
            runs = [
                (f"{count}_workers", count, config.max_batch_snapshots) for count in config.counts
            ]
            runs += [
                (f"batch_{limit}", config.limits_workers, limit) for limit in config.batch_limits
            ]
            for key, count, limit in runs:
                limited = {**env, "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(limit)}
                with running_workers(key, limited, count, data_dir) as target:
                    rates = []
                    for repeat in range(config.repeats):
                        rates.append(drain_burst(target, snapshots))
                        report(f"{key} (batch {limit}), burst {repeat + 1}: {rates[-1]:.0f}/s")
                    results[key] = {
                        "drain_throughput_rps": float(np.median(rates)),
                        "bursts_rps": rates,  # type: ignore[dict-item]
                    }
    finally:
        EmbeddedRedis(data_dir).stop()
    one = results[f"{config.counts[0]}_workers"]["drain_throughput_rps"]
    ratios = {
        f"speedup_{count}_vs_{config.counts[0]}": results[f"{count}_workers"][
            "drain_throughput_rps"
        ]
        / one
        for count in config.counts[1:]
    }
    if config.max_batch_snapshots in config.batch_limits:
        reference = results[f"batch_{config.max_batch_snapshots}"]["drain_throughput_rps"]
        ratios.update(
            {
                f"batch_{limit}_vs_{config.max_batch_snapshots}": results[f"batch_{limit}"][
                    "drain_throughput_rps"
                ]
                / reference
                for limit in config.batch_limits
                if limit != config.max_batch_snapshots
            }
        )
    return result_document(
        "workers",
        command=config.extra.get("command", ""),
        config={
            **{k: v for k, v in config.__dict__.items() if k != "extra"},
            "cpus": os.cpu_count(),
            "torch_threads_per_worker": 1,
            "stop_clock": "stored: committed to the database, then visible to a poller",
        },
        results=results,
        ratios=ratios,
    )
