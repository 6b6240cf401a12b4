"""A real worker process on the embedded default and on Redis + PostgreSQL."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.launcher import WorkerProcess
from service.results import release_result
from service.settings import Settings
from service.wire import CORRELATION_HEADER, TASK_PING
from worker.app import create_app

pytestmark = pytest.mark.integration


@pytest.fixture(params=["embedded", "redis+postgres"])
def service_env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    env = {"GNN_DATA_DIR": str(data_dir), "GNN_LOG_LEVEL": "INFO"}
    if request.param == "redis+postgres":
        env.update(request.getfixturevalue("redis_env"))
        env["GNN_DATABASE__URL"] = request.getfixturevalue("postgres_url")
    return env


@pytest.fixture
def worker_process(service_env: dict[str, str], data_dir: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env=service_env, hostname="itest@%h", log_path=data_dir / "worker.log")
    process.start()
    try:
        process.wait_ready(timeout_s=90)
        yield process
    finally:
        process.stop()


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def _log_lines(process: WorkerProcess) -> list[dict[str, object]]:
    lines = []
    for raw in process.log_path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def test_ping_round_trips_through_a_real_worker(
    worker_process: WorkerProcess,
    service_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = create_app(_settings(service_env, monkeypatch))
    result = app.send_task(TASK_PING, headers={CORRELATION_HEADER: "corr-itest-1"})
    try:
        answer = result.get(timeout=30)
    finally:
        release_result(result)
    assert answer["pong"] is True
    assert answer["resources"] == "open"
    assert answer["pid"] == worker_process.pid  # solo pool: resources live in the node

    worker_process.stop()
    lines = _log_lines(worker_process)
    ping_lines = [line for line in lines if line["message"] == "ping"]
    assert ping_lines, "the ping task logged nothing"
    assert ping_lines[0]["correlation_id"] == "corr-itest-1"
    assert ping_lines[0]["task_id"] == result.id
    opened = [line for line in lines if line["message"] == "process resources opened"]
    closed = [line for line in lines if line["message"] == "process resources closed"]
    assert [line["pid"] for line in opened] == [worker_process.pid]
    assert [line["pid"] for line in closed] == [worker_process.pid]


def test_pickle_is_refused_by_configuration(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(_settings(service_env, monkeypatch))
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.result_accept_content == ["json"]
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True


def test_health_endpoints_answer(worker_process: WorkerProcess) -> None:
    base = worker_process.base_url
    with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(base + "/readyz", timeout=5) as response:
        body = json.loads(response.read())
        assert response.status == 200
        assert body["checks"]["consumer"]["ok"] is True
    with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
