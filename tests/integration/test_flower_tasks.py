"""Flower shows the snapshot work: a worker's micro-batches send task events (one publish per
batch), so Flower's API lists each snapshot as a ``gnn.diagnose`` task with its outcome, and
the snapshot queue is among the worker's active queues with its depth."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hostile_helpers import envelope
from pipeline_helpers import demo_snapshots, task_body

from producer.client import ProducerClient
from service.launcher import WorkerProcess, free_port
from service.settings import Settings

AUTH = ("operator", "flower-test-pass")


def _text(url: str) -> str:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode("utf-8"))


def _get(url: str) -> Any:
    return json.loads(_text(url))


@pytest.fixture(scope="module")
def stack(redis_server: str, postgres_server: str) -> Iterator[tuple[dict[str, str], str]]:
    """A worker (default settings, bundled model, private queues) and Flower on its broker."""
    from training.benchmarks.report import scratch_database

    data_dir = Path(tempfile.mkdtemp(prefix="gnn-"))
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    with scratch_database(postgres_server, f"gnn_test_{uuid.uuid4().hex[:10]}") as url:
        env = {
            "GNN_DATA_DIR": str(data_dir),
            "GNN_BROKER__URL": f"{redis_server}/7",
            "GNN_RESULT_BACKEND__URL": f"{redis_server}/8",
            "GNN_WORKER__QUEUE": f"test.flower.{suffix}",
            "GNN_WORKER__CONTROL_QUEUE": f"test.flower-control.{suffix}",
            "GNN_DATABASE__URL": url,
            "GNN_SECURITY__FLOWER_PORT": str(port),
            "GNN_SECURITY__FLOWER_USER": AUTH[0],
            "GNN_SECURITY__FLOWER_PASSWORD": AUTH[1],
        }
        clean = {k: v for k, v in os.environ.items() if not k.startswith("GNN_")}
        log = (data_dir / "flower.log").open("wb")
        flower = subprocess.Popen(
            [sys.executable, "-m", "cli", "flower"], env={**clean, **env}, stdout=log, stderr=log
        )
        worker = WorkerProcess(env=env, hostname=f"flower-{suffix}@%h", log_path=data_dir / "w.log")
        worker.start()
        try:
            worker.wait_ready(timeout_s=90)
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    _get(f"{base}/api/workers?refresh=1")
                    break
                except OSError:
                    assert flower.poll() is None, (data_dir / "flower.log").read_text()
                    assert time.monotonic() < deadline, "Flower never listened"
                    time.sleep(0.3)
            yield env, base
        finally:
            worker.stop()
            flower.terminate()
            try:
                flower.wait(20)
            except subprocess.TimeoutExpired:
                flower.kill()
                flower.wait()
            log.close()


def test_flower_lists_snapshot_tasks_with_their_outcome_and_the_snapshot_queue(
    stack: tuple[dict[str, str], str],
) -> None:
    env, base = stack
    settings = Settings(**_settings_kwargs(env))
    good = demo_snapshots(3, prefix="flower")
    with ProducerClient(settings) as client:
        for snapshot in good:
            client.submit(snapshot)
    # A window too short to diagnose, pushed as a producer in another language would.
    short = good[0].model_dump(mode="json")
    short["snapshot_id"] = short_id = f"flower-short-{uuid.uuid4().hex[:6]}"
    short["window"]["readings"] = {k: v[:4] for k, v in short["window"]["readings"].items()}
    headers = {"task": "gnn.diagnose", "id": short_id, "lang": "py"}
    broker = redis.Redis.from_url(env["GNN_BROKER__URL"])
    broker.lpush(
        env["GNN_WORKER__QUEUE"],
        envelope(task_body(short), queue=env["GNN_WORKER__QUEUE"], headers=headers),
    )
    broker.close()
    ids = {s.snapshot_id for s in good}
    deadline = time.monotonic() + 60
    tasks: dict[str, Any] = {}
    while time.monotonic() < deadline:
        tasks = _get(f"{base}/api/tasks?taskname=gnn.diagnose")
        if ids | {short_id} <= set(tasks) and tasks[short_id]["state"] == "FAILURE":
            break
        time.sleep(0.5)
    assert ids <= set(tasks), sorted(tasks)
    for snapshot_id in ids:
        task = tasks[snapshot_id]
        assert task["name"] == "gnn.diagnose"
        assert task["state"] == "SUCCESS"
        assert task["result"].startswith("diagnosed: ")
        assert task["runtime"] > 0
        assert task["worker"].startswith("flower-")
    _get(f"{base}/api/workers?refresh=1")  # Flower learns the active queues by inspecting
    letter = tasks[short_id]
    assert letter["state"] == "FAILURE"
    assert letter["exception"] == "dead_lettered: window_too_short at window.readings"
    queues = _get(f"{base}/api/queues/length")["active_queues"]
    assert env["GNN_WORKER__QUEUE"] in {q["name"] for q in queues}
    # Flower's Prometheus endpoint counts the snapshot tasks by event type and times them.
    metrics = _samples(_text(f"{base}/metrics"))
    succeeded = metrics.get(("flower_events_total", "task-succeeded"), 0.0)
    assert succeeded >= len(ids)
    assert metrics.get(("flower_events_total", "task-failed"), 0.0) >= 1
    assert metrics.get(("flower_task_runtime_seconds_count", ""), 0.0) >= len(ids)


def _samples(text: str) -> dict[tuple[str, str], float]:
    """Prometheus samples of the ``gnn.diagnose`` task: (metric, event type) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("task") == "gnn.diagnose":
                key = (sample.name, sample.labels.get("type", ""))
                out[key] = out.get(key, 0.0) + sample.value
    return out


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    return {
        "data_dir": env["GNN_DATA_DIR"],
        "broker": {"url": env["GNN_BROKER__URL"]},
        "result_backend": {"url": env["GNN_RESULT_BACKEND__URL"]},
        "database": {"url": env["GNN_DATABASE__URL"]},
        "worker": {"queue": env["GNN_WORKER__QUEUE"]},
    }
