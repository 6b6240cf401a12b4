"""``gnn-service benchmark pipeline``: the pipeline side by side, in one run, same weights and
payloads (docs/benchmarks.md, "pipeline").

Variants: ``raw_model`` (in process: features + forward at the best batch size, the limit),
``batched`` (worker processes with micro-batching), ``unbatched`` (the same with batch size
1), ``naive`` (one plain Celery task per snapshot that runs the model and inserts its row,
the design this service replaces: :mod:`training.benchmarks.naive`), the batched variant
without the heap freeze, and the batched variant on the embedded default. Load: a burst of
N snapshots (drain throughput from the first to the last stored outcome) and open-loop
publishing at fixed rates (latency from publish to stored, p50/p95/p99). The production
variants run on Redis and a scratch PostgreSQL database, the embedded one on the embedded
broker and SQLite. The clock stops when the diagnosis is stored: workers commit it to the
database first and then write it to the result backend, whose ``date_done`` (taken after
the commit) is the stop time.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis
import torch

from machines.catalog import builtin_spec
from machines.generator import generate
from machines.windows import windows
from schemas import Snapshot
from service.embedded import EmbeddedRedis
from service.launcher import WORKER_COMMAND, WorkerProcess
from service.settings import DatabaseSettings, Settings
from service.wire import PUBLISHED_AT_HEADER, TASK_DIAGNOSE
from training.benchmarks.naive import NAIVE_COMMAND
from training.benchmarks.report import result_document, scratch_database
from worker.app import create_app
from worker.model import encode_window
from worker.model_source import ModelSource
from worker.model_store import open_registry
from worker.resources import freeze_heap

Report = Callable[[str], None]


@dataclass(frozen=True)
class PipelineBenchConfig:
    """Everything that changes the result."""

    burst: int = 2000
    latency_seconds: float = 15.0
    rate_low: float = 50.0
    workers: int = 2
    max_batch_snapshots: int = 64
    max_wait_ms: int = 50
    system: str = "excavator"
    window_steps: int = 60
    seed: int = 7
    raw_batch_sizes: tuple[int, ...] = (8, 16, 32, 64, 128)
    model_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


EVENTS_REPEATS = 2
"""Extra bursts of ``batched`` and ``batched_events``, alternating, for ``task_events_cost``
(the median of three drains each)."""


def run_pipeline_benchmark(
    config: PipelineBenchConfig, *, redis_url: str, postgres_url: str, report: Report
) -> dict[str, Any]:
    """Run every variant and return the result document (docs/benchmarks.md format).

    Args:
        config: Sizes and settings of the run.
        redis_url: Redis for the production variants (databases 5 and 6).
        postgres_url: Any database of the PostgreSQL server; the run creates and drops its
            own scratch database there.
        report: Progress lines.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="gnn-bench-"))
    try:
        with scratch_database(postgres_url, f"gnn_bench_pipeline_{os.getpid()}") as database:
            return _run(
                config, redis_url=redis_url, database_url=database, data_dir=data_dir,
                report=report,
            )  # fmt: skip
    finally:
        EmbeddedRedis(data_dir).stop()


def _run(
    config: PipelineBenchConfig,
    *,
    redis_url: str,
    database_url: str,
    data_dir: Path,
    report: Report,
) -> dict[str, Any]:
    base_env = {
        "GNN_DATA_DIR": str(data_dir),
        "GNN_LOG_LEVEL": "WARNING",
        "GNN_BATCHING__MAX_WAIT_MS": str(config.max_wait_ms),
        "GNN_MODEL__WARMUP_BATCHES": "2",
        "GNN_WORKER__SEND_TASK_EVENTS": "false",
    }
    snapshots = _payloads(config)
    report(f"payloads: {len(snapshots)} {config.system} windows of {config.window_steps} steps")
    settings = Settings(data_dir=data_dir)
    production = Settings(data_dir=data_dir, database=DatabaseSettings(url=database_url))
    for place in (settings, production):
        with open_registry(place) as registry:  # migrates the database too
            if config.model_path is not None:
                version = registry.register(config.model_path, name=settings.model.name)
                registry.activate(version.name, version.version)
    results: dict[str, dict[str, float]] = {}
    results["raw_model"], model_version = _raw_model(settings, snapshots, config, report)

    redis_env = {
        **base_env,
        "GNN_BROKER__URL": f"{redis_url}/5",
        "GNN_RESULT_BACKEND__URL": f"{redis_url}/6",
        "GNN_DATABASE__URL": database_url,
    }
    batched_env = {
        **redis_env,
        "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(config.max_batch_snapshots),
    }
    naive_env = {
        **redis_env,
        "GNN_WORKER__POOL": "prefork",
        "GNN_WORKER__CONCURRENCY": str(config.workers),
    }
    embedded_env = {
        **base_env,
        "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(config.max_batch_snapshots),
    }
    variants: list[tuple[str, dict[str, str], int]] = [
        ("naive", naive_env, 1),
        ("unbatched", {**redis_env, "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": "1"}, config.workers),
        ("batched", batched_env, config.workers),
        # the same without freezing the heap after the model load (GNN_WORKER__FREEZE_HEAP)
        ("batched_unfrozen", {**batched_env, "GNN_WORKER__FREEZE_HEAP": "false"}, config.workers),
        # the same with the snapshot task events Flower reads (on by default outside benchmarks)
        ("batched_events", {**batched_env, "GNN_WORKER__SEND_TASK_EVENTS": "true"}, config.workers),
        ("embedded_batched", embedded_env, config.workers),
    ]
    for name, env, processes in variants:
        command = NAIVE_COMMAND if name == "naive" else WORKER_COMMAND
        with _workers(name, env, processes, data_dir, command=command) as target:
            report(f"{name}: burst of {config.burst}")
            results[name] = {"drain_throughput_rps": _burst(target, snapshots[: config.burst])}
            report(f"{name}: {results[name]['drain_throughput_rps']:.0f} snapshots/s")
            if name == "batched":
                for label, rate in (
                    ("50rps", config.rate_low),
                    ("2x_naive", 2 * results["naive"]["drain_throughput_rps"]),
                ):
                    report(f"{name}: open loop at {rate:.0f}/s for {config.latency_seconds:.0f} s")
                    latency = _open_loop(target, snapshots, rate, config.latency_seconds)
                    results[name].update({f"{k}_at_{label}": v for k, v in latency.items()})
                    results[name][f"offered_rps_at_{label}"] = rate
    # The events' cost is a few per cent at most, less than two bursts of one variant differ
    # on shared cores: both are measured again, alternating, and compared by their medians.
    repeats: dict[str, list[float]] = {"batched": [], "batched_events": []}
    for _ in range(EVENTS_REPEATS):
        for name, drains in repeats.items():
            env = dict(next(e for n, e, _ in variants if n == name))
            with _workers(f"{name}-again", env, config.workers, data_dir) as target:
                drains.append(_burst(target, snapshots[: config.burst]))
            report(f"{name} again: {drains[-1]:.0f} snapshots/s")
    for name, drains in repeats.items():
        results[name].update({f"drain_again_{i}_rps": v for i, v in enumerate(drains, 1)})
    batched = results["batched"]["drain_throughput_rps"]
    medians = {
        name: statistics.median([results[name]["drain_throughput_rps"], *drains])
        for name, drains in repeats.items()
    }
    ratios = {
        "batching_gain": batched / results["unbatched"]["drain_throughput_rps"],
        "pipeline_efficiency": batched / results["raw_model"]["features_forward_rps"],
        "vs_naive_throughput": batched / results["naive"]["drain_throughput_rps"],
        "heap_freeze_gain": batched / results["batched_unfrozen"]["drain_throughput_rps"],
        "task_events_cost": 1.0 - medians["batched_events"] / medians["batched"],
        "p95_ms_at_50rps": results["batched"]["p95_ms_at_50rps"],
        "p95_ms_at_2x_naive": results["batched"]["p95_ms_at_2x_naive"],
    }
    return result_document(
        "pipeline",
        command=config.extra.get("command", ""),
        config={
            **{
                k: str(v) if isinstance(v, Path) else v
                for k, v in config.__dict__.items()
                if k != "extra"
            },
            "model_version": model_version,
            "stop_clock": "stored: committed to the database, then visible to a poller",
            "databases": {"production": "PostgreSQL (scratch)", "embedded": "SQLite"},
        },
        results=results,
        baselines={"naive": results["naive"]},
        ratios=ratios,
    )


# payloads and targets -------------------------------------------------------------------


def _payloads(config: PipelineBenchConfig) -> list[Snapshot]:
    needed = config.burst + int(config.rate_low * config.latency_seconds * 12) + 10
    stride = 10
    run = generate(
        builtin_spec(config.system),
        duration_s=float(config.window_steps + needed * stride),
        seed=config.seed,
    )
    cut = windows(run, config.window_steps, stride)
    return [snapshot for _, snapshot in (next(cut) for _ in range(needed))]


@dataclass
class _Target:
    """Where a variant's snapshots go and its outcomes land."""

    name: str
    env: dict[str, str]
    queue: str
    results: redis.Redis
    publish: Callable[[Snapshot, str], None]
    counter: Iterator[int]


@contextmanager
def _workers(
    name: str,
    env: dict[str, str],
    processes: int,
    data_dir: Path,
    *,
    command: tuple[str, ...] = WORKER_COMMAND,
) -> Iterator[_Target]:
    queue = f"bench.{name}.{os.getpid()}"
    env = {**env, "GNN_WORKER__QUEUE": queue, "GNN_WORKER__CONTROL_QUEUE": f"{queue}.control"}
    settings = Settings(**_settings_kwargs(env))
    app = create_app(settings)
    backend_client = (
        redis.Redis.from_url(env["GNN_RESULT_BACKEND__URL"])
        if "GNN_RESULT_BACKEND__URL" in env
        else EmbeddedRedis(data_dir).client(db=1)
    )
    backend_client.flushdb()
    started = []
    for index in range(processes):
        process = WorkerProcess(
            env=env,
            hostname=f"{name}{index}@%h",
            log_path=data_dir / f"{name}{index}.log",
            command=command,
        )
        process.start()
        started.append(process)
    try:
        for process in started:
            process.wait_ready(timeout_s=120)
        producer = app.amqp.producer_pool.acquire(block=True)
        amqp = app.amqp

        def publish(snapshot: Snapshot, task_id: str) -> None:
            body = snapshot.model_dump(mode="json")
            body["snapshot_id"] = task_id  # the contract: task id = snapshot id
            message = amqp.create_task_message(
                task_id, TASK_DIAGNOSE, args=[body], kwargs={},
                argsrepr="[snapshot]", kwargsrepr="{}",
            )  # fmt: skip
            amqp.send_task_message(
                producer, TASK_DIAGNOSE, message, queue=queue,
                headers={PUBLISHED_AT_HEADER: time.time()},
            )  # fmt: skip

        yield _Target(name, env, queue, backend_client, publish, iter(range(10**9)))
        producer.release()
    finally:
        for process in started:
            process.stop()
        app.close()


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for key, value in env.items():
        parts = key.removeprefix("GNN_").lower().split("__")
        target = kwargs
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return kwargs


def _wait_outcomes(target: _Target, ids: list[str], timeout_s: float = 600.0) -> dict[str, float]:
    """Stored time (epoch seconds) of each outcome, waiting until all are there."""
    keys = [f"celery-task-meta-{i}" for i in ids]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if target.results.exists(*keys) == len(keys):
            break
        time.sleep(0.2)
    else:
        raise TimeoutError(f"{target.name}: outcomes missing after {timeout_s} s")
    stored: dict[str, float] = {}
    for key, raw in zip(keys, target.results.mget(keys), strict=True):
        meta = json.loads(raw or b"{}")
        done = datetime.fromisoformat(meta["date_done"])
        if done.tzinfo is None:
            done = done.replace(tzinfo=UTC)
        stored[key.removeprefix("celery-task-meta-")] = done.timestamp()
    return stored


def _burst(target: _Target, snapshots: list[Snapshot]) -> float:
    ids = [f"{target.name}-burst-{next(target.counter)}" for _ in snapshots]
    for snapshot, task_id in zip(snapshots, ids, strict=True):
        target.publish(snapshot, task_id)
    stored = _wait_outcomes(target, ids)
    times = sorted(stored.values())
    span = times[-1] - times[0]
    return (len(times) - 1) / span if span > 0 else float("inf")


def _open_loop(
    target: _Target, snapshots: list[Snapshot], rate: float, seconds: float
) -> dict[str, float]:
    count = max(1, int(rate * seconds))
    sent: dict[str, float] = {}
    start = time.monotonic()
    for number in range(count):
        due = start + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        task_id = f"{target.name}-rate{int(rate)}-{next(target.counter)}"
        sent[task_id] = time.time()
        target.publish(snapshots[number % len(snapshots)], task_id)
    achieved = count / (time.monotonic() - start)
    stored = _wait_outcomes(target, list(sent))
    latencies = np.array([(stored[i] - sent[i]) * 1000.0 for i in sent])
    return {
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "achieved_rps": achieved,
    }


# in process -----------------------------------------------------------------------------


def _raw_model(
    settings: Settings, snapshots: list[Snapshot], config: PipelineBenchConfig, report: Report
) -> tuple[dict[str, float], str]:
    torch.set_num_threads(1)
    with open_registry(settings) as registry:
        runner = ModelSource(settings, registry).load()
    spec = builtin_spec(config.system)
    graph = runner.specs.get(spec)
    bodies = [json.dumps(s.model_dump(mode="json")) for s in snapshots[:512]]
    freeze_heap()  # as the workers do after their load: the limit is measured the same way
    best: dict[str, float] = {"features_forward_rps": 0.0}
    for size in config.raw_batch_sizes:
        rounds = max(3, 1024 // size)
        started = time.perf_counter()
        for r in range(rounds):
            chunk = bodies[(r * size) % 256 : (r * size) % 256 + size]
            parsed = [Snapshot.model_validate_json(body) for body in chunk]
            samples = [
                encode_window(graph, p.window.readings, p.window.sample_rate_hz, runner.contract)
                for p in parsed
            ]
            runner.forward(samples)
        rate = rounds * size / (time.perf_counter() - started)
        forward_started = time.perf_counter()
        for _ in range(rounds):
            runner.forward(samples)
        forward_rate = rounds * size / (time.perf_counter() - forward_started)
        report(f"raw_model: batch {size}: {rate:.0f}/s with features, {forward_rate:.0f}/s forward")
        if rate > best["features_forward_rps"]:
            best = {"features_forward_rps": rate, "forward_rps": forward_rate, "batch_size": size}
    gc.unfreeze()
    return best, runner.version


# several workers on one queue ------------------------------------------------------------


@dataclass(frozen=True)
class ScalingBenchConfig:
    """Drain throughput of 1..N worker processes on one Redis queue and one PostgreSQL."""

    counts: tuple[int, ...] = (1, 2, 3)
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
    """Drain the same burst with each worker count; the median of ``repeats`` bursts each.

    Args:
        config: Worker counts, burst size and repeats.
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
    snapshots = _payloads(payload_config)[: config.burst]
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
            for count in config.counts:
                with _workers(f"workers{count}", env, count, data_dir) as target:
                    rates = []
                    for repeat in range(config.repeats):
                        rates.append(_burst(target, snapshots))
                        report(f"{count} worker(s), burst {repeat + 1}: {rates[-1]:.0f}/s")
                    results[f"{count}_workers"] = {
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
