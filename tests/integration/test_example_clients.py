"""The upstream examples run against a real worker on real Redis: examples/python-redis
(redis-py alone, the wire format of docs/messages.md written by hand) publishes a snapshot of
each outcome kind and reads each outcome back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.launcher import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def worker(redis_server: str, postgres_server: str) -> Iterator[dict[str, str]]:
    """One worker on default settings with the bundled model, on a private queue."""
    from training.benchmarks.report import scratch_database

    data_dir = Path(tempfile.mkdtemp(prefix="gnn-"))
    suffix = uuid.uuid4().hex[:8]
    with scratch_database(postgres_server, f"gnn_test_{uuid.uuid4().hex[:10]}") as url:
        env = {
            "GNN_DATA_DIR": str(data_dir),
            "GNN_BROKER__URL": f"{redis_server}/9",
            "GNN_RESULT_BACKEND__URL": f"{redis_server}/10",
            "GNN_WORKER__QUEUE": f"test.examples.{suffix}",
            "GNN_WORKER__CONTROL_QUEUE": f"test.examples-control.{suffix}",
            "GNN_DATABASE__URL": url,
        }
        process = WorkerProcess(
            env=env, hostname=f"examples-{suffix}@%h", log_path=data_dir / "w.log"
        )
        process.start()
        try:
            process.wait_ready(timeout_s=90)
            yield env
        finally:
            process.stop()


def test_the_python_redis_example_gets_each_outcome_kind(worker: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python-redis" / "diagnose.py"),
         "--broker", worker["GNN_BROKER__URL"], "--backend", worker["GNN_RESULT_BACKEND__URL"],
         "--queue", worker["GNN_WORKER__QUEUE"], "--timeout", "60"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3, done.stdout
    assert "-ok: diagnosed: machine health" in lines[0]
    assert "model universal:" in lines[0]
    assert "-late: expired: deadline" in lines[1]
    assert "-short: dead letter window_too_short at window.readings" in lines[2]


NODE_DIR = ROOT / "examples" / "node-celery"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def node_example() -> str:
    """node, with the example's pinned packages installed (``npm ci``); without node the test
    skips, except under CI, where it fails."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if IN_CI:
            pytest.fail("node and npm must be on PATH when CI=true", pytrace=False)
        pytest.skip("node or npm is not on PATH")
    if not (NODE_DIR / "node_modules" / "celery-node").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
    return node


def test_the_node_celery_example_gets_each_outcome_kind(
    worker: dict[str, str], node_example: str
) -> None:
    done = subprocess.run(
        [node_example, str(NODE_DIR / "diagnose.mjs"),
         "--broker", worker["GNN_BROKER__URL"], "--backend", worker["GNN_RESULT_BACKEND__URL"],
         "--queue", worker["GNN_WORKER__QUEUE"], "--timeout", "60"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3, done.stdout
    assert "-ok: diagnosed: machine health" in lines[0]
    assert "-late: expired: deadline" in lines[1]
    assert "-short: dead letter window_too_short at window.readings" in lines[2]


def test_status_and_dead_letters_summarise_what_the_worker_did(worker: dict[str, str]) -> None:
    """An operator without Prometheus: `status`, `dead-letters` and `expirations` after the
    example ran."""
    example = [sys.executable, str(ROOT / "examples" / "python-redis" / "diagnose.py"),
               "--broker", worker["GNN_BROKER__URL"], "--backend", worker["GNN_RESULT_BACKEND__URL"],
               "--queue", worker["GNN_WORKER__QUEUE"]]  # fmt: skip
    assert subprocess.run(example, capture_output=True, timeout=240, check=False).returncode == 0
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("GNN_")}, **worker}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    done = cli("status", "--last", "10m", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["queue"] == worker["GNN_WORKER__QUEUE"]
    assert summary["queue_depth"] == 0
    assert len(summary["workers_answering"]) == 1
    assert summary["workers_answering"][0].startswith("examples-")
    for kind in ("diagnosed", "expired", "dead_lettered"):
        assert summary[kind] >= 1, summary
    assert 0 < summary["p50_ms"] <= summary["p95_ms"]

    done = cli("dead-letters", "--since", "10m", "--reason", "window_too_short", "--json")
    assert done.returncode == 0, done.stderr
    letters = [json.loads(line) for line in done.stdout.splitlines()]
    assert letters
    assert all(letter["field"] == "window.readings" for letter in letters)
    assert all(letter["message_key"].endswith("-short") for letter in letters)
    table = cli("dead-letters", "--limit", "5")
    assert "window_too_short" in table.stdout
    assert "window.readings" in table.stdout

    done = cli("expirations", "--since", "10m", "--json")
    assert done.returncode == 0, done.stderr
    expired = [json.loads(line) for line in done.stdout.splitlines()]
    assert expired
    assert all(item["snapshot_id"].endswith("-late") for item in expired)
    table = cli("expirations", "--limit", "5")
    assert "-late" in table.stdout
    assert "late by" in table.stdout
