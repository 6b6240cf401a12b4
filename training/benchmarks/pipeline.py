"""``gnn-service benchmark pipeline``: the pipeline side by side, in one run, same weights and
payloads (docs/benchmarks.md, "pipeline").

Variants: ``raw_model`` (in process: features + forward at the best batch size, the limit),
``batched`` (worker processes with micro-batching), ``unbatched`` (the same with batch size
1), ``naive`` (one plain Celery task per snapshot that runs the model and inserts its row,
the design this service replaces: :mod:`training.benchmarks.naive`), ``celery_batches`` (the
same work in a celery-batches ``Batches`` task, the peer a Celery user would pick:
:mod:`training.benchmarks.batches_peer`), the batched variant
without the heap freeze, with task events, with two models (half the load routed to a
second model of the same cost: ``batched_mixed``), and on the embedded default. Load: a burst of
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
from service.db.machines import open_machines
from service.embedded import EmbeddedRedis
from service.launcher import WORKER_COMMAND, WorkerProcess
from service.settings import DatabaseSettings, Settings
from service.wire import PUBLISHED_AT_HEADER, TASK_DIAGNOSE
from training.benchmarks.batches_peer import BATCHES_COMMAND
from training.benchmarks.naive import NAIVE_COMMAND
from training.benchmarks.report import result_document, scratch_database
from worker.app import create_app
from worker.model import encode_window
from worker.model.registry import bundled_checkpoints
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
    snapshots = bench_payloads(config)
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
    # The peer a Celery user would pick: celery-batches (training/benchmarks/batches_peer.py),
    # prefork 2, 64 messages prefetched per process (a flush needs 64 in hand).
    batches_env = {
        **batched_env,
        "GNN_WORKER__POOL": "prefork",
        "GNN_WORKER__CONCURRENCY": str(config.workers),
        "GNN_WORKER__PREFETCH_MULTIPLIER": str(config.max_batch_snapshots),
    }
    embedded_env = {
        **base_env,
        "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": str(config.max_batch_snapshots),
    }
    variants: list[tuple[str, dict[str, str], int]] = [
        ("naive", naive_env, 1),
        ("unbatched", {**redis_env, "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": "1"}, config.workers),
        ("batched", batched_env, config.workers),
        ("celery_batches", batches_env, 1),
        # the same without freezing the heap after the model load (GNN_WORKER__FREEZE_HEAP)
        ("batched_unfrozen", {**batched_env, "GNN_WORKER__FREEZE_HEAP": "false"}, config.workers),
        # the same with the snapshot task events Flower reads (on by default outside benchmarks)
        ("batched_events", {**batched_env, "GNN_WORKER__SEND_TASK_EVENTS": "true"}, config.workers),
        ("embedded_batched", embedded_env, config.workers),
    ]
    commands = {"naive": NAIVE_COMMAND, "celery_batches": BATCHES_COMMAND}
    for name, env, processes in variants:
        command = commands.get(name, WORKER_COMMAND)
        with running_workers(name, env, processes, data_dir, command=command) as target:
            report(f"{name}: burst of {config.burst}")
            results[name] = {"drain_throughput_rps": drain_burst(target, snapshots[: config.burst])}
            report(f"{name}: {results[name]['drain_throughput_rps']:.0f} snapshots/s")
            if name in ("batched", "celery_batches"):
                results[name].update(_latency(target, snapshots, config, results, report))
    # The events' cost is a few per cent at most, less than two bursts of one variant differ
    # on shared cores: both are measured again, alternating, and compared by their medians.
    repeats: dict[str, list[float]] = {"batched": [], "batched_events": []}
    for _ in range(EVENTS_REPEATS):
        for name, drains in repeats.items():
            env = dict(next(e for n, e, _ in variants if n == name))
            with running_workers(f"{name}-again", env, config.workers, data_dir) as target:
                drains.append(drain_burst(target, snapshots[: config.burst]))
            report(f"{name} again: {drains[-1]:.0f} snapshots/s")
    for name, drains in repeats.items():
        results[name].update({f"drain_again_{i}_rps": v for i, v in enumerate(drains, 1)})
    results["batched_mixed"] = _mixed(
        production, config, batched_env, snapshots=snapshots, data_dir=data_dir,
        results=results, report=report,
    )  # fmt: skip
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
        # against the median of batched's three bursts: one burst varies by +-10 % here
        "vs_celery_batches_drain": batched / results["celery_batches"]["drain_throughput_rps"],
        "p95_ms_celery_batches_at_50rps": results["celery_batches"]["p95_ms_at_50rps"],
        "p95_ms_celery_batches_at_2x_naive": results["celery_batches"]["p95_ms_at_2x_naive"],
        "mixed_vs_single_drain": results["batched_mixed"]["drain_throughput_rps"]
        / medians["batched"],
        "p95_ms_mixed_at_50rps": results["batched_mixed"]["p95_ms_at_50rps"],
        "p95_ms_mixed_at_2x_naive": results["batched_mixed"]["p95_ms_at_2x_naive"],
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


def _latency(
    target: _Target, snapshots: list[Snapshot], config: PipelineBenchConfig,
    results: dict[str, dict[str, float]], report: Report,
) -> dict[str, float]:  # fmt: skip
    """p50/p95/p99 from publish to stored at 50/s and at twice the naive drain."""
    found: dict[str, float] = {}
    for label, rate in (
        ("50rps", config.rate_low),
        ("2x_naive", 2 * results["naive"]["drain_throughput_rps"]),
    ):
        report(f"{target.name}: open loop at {rate:.0f}/s for {config.latency_seconds:.0f} s")
        latency = _open_loop(target, snapshots, rate, config.latency_seconds)
        found.update({f"{k}_at_{label}": v for k, v in latency.items()})
        found[f"offered_rps_at_{label}"] = rate
    return found


#: The second machine and model of ``batched_mixed``: the benchmark's machine and model again
#: under other names, so that half the load is routed to another model of the same cost.
MIXED_MACHINE = "bench_machine_b"
MIXED_MODEL = "bench_model_b"


def _mixed(
    settings: Settings, config: PipelineBenchConfig, env: dict[str, str], *,
    snapshots: list[Snapshot], data_dir: Path, results: dict[str, dict[str, float]],
    report: Report,
) -> dict[str, float]:  # fmt: skip
    """``batched`` with two models, half the snapshots each (every other one names the
    second machine, routed to the second model): drain and latency."""
    spec = builtin_spec(config.system).model_copy(update={"name": MIXED_MACHINE})
    with open_machines(settings) as machines:
        machines.register(spec)
    path = config.model_path or bundled_checkpoints()[settings.model.name]
    with open_registry(settings) as registry:
        registry.register(path, name=MIXED_MODEL, version="1", serves=[MIXED_MACHINE])
        registry.activate(MIXED_MODEL, "1")
    mixed = [
        s if i % 2 == 0 else s.model_copy(update={"spec": MIXED_MACHINE})
        for i, s in enumerate(snapshots)
    ]
    with running_workers("batched_mixed", env, config.workers, data_dir) as target:
        drain_burst(target, mixed[: 8 * config.max_batch_snapshots])  # routed model loaded
        report(f"batched_mixed: burst of {config.burst}, two models")
        found = {"drain_throughput_rps": drain_burst(target, mixed[: config.burst])}
        report(f"batched_mixed: {found['drain_throughput_rps']:.0f} snapshots/s")
        found.update(_latency(target, mixed, config, results, report))
    return found


# payloads and targets -------------------------------------------------------------------


def bench_payloads(config: PipelineBenchConfig) -> list[Snapshot]:
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
def running_workers(
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


def drain_burst(target: _Target, snapshots: list[Snapshot]) -> float:
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
