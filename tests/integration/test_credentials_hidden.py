"""Credentials stay out of everything the service prints: a worker and a producer on a
password-protected Redis and a PostgreSQL URL with a password diagnose a snapshot, and the
password appears in none of the worker's log, its /metrics, the CLI's output or the
producer's error messages."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pipeline_helpers import PersistentRedis, demo_snapshots
from sqlalchemy.engine import make_url

from producer.client import ProducerClient
from schemas.result import Diagnosed
from service.errors import BrokerUnavailable
from service.launcher import WorkerProcess
from service.settings import Settings

StartWorker = Callable[..., WorkerProcess]
CliRunner = Callable[..., object]

PASSWORD = "s3cr3t-Hx71"

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[PersistentRedis]:
    server = PersistentRedis(tmp_path / "redis", password=PASSWORD)
    server.start()
    yield server
    server.stop()


def test_no_password_reaches_logs_metrics_or_command_output(
    start_worker: StartWorker,
    pipeline_env: dict[str, str],
    locked_redis: PersistentRedis,
    gnn_cli: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = make_url(pipeline_env["GNN_DATABASE__URL"]).set(password=PASSWORD)  # trust auth
    env = {
        **pipeline_env,
        "GNN_BROKER__URL": f"{locked_redis.url}/0",
        "GNN_RESULT_BACKEND__URL": f"{locked_redis.url}/1",
        "GNN_DATABASE__URL": database.render_as_string(hide_password=False),
        "GNN_LOG_LEVEL": "DEBUG",
    }
    worker = start_worker("w1", **env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (snapshot,) = demo_snapshots(1, "secret")
    with ProducerClient(Settings()) as client:
        client.submit(snapshot)
        assert isinstance(client.result(snapshot.snapshot_id, timeout=60), Diagnosed)
    with urllib.request.urlopen(worker.base_url + "/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert "gnn_batch" in metrics
    worker.stop()
    log = worker.log_path.read_text()
    assert "snapshot stored" in log
    assert PASSWORD not in log
    assert PASSWORD not in metrics

    outputs = []
    for args in (("config", "show"), ("diagnoses", "--json"), ("models", "list")):
        done = gnn_cli(*args, env=env)
        outputs.append(done.stdout + done.stderr)  # type: ignore[attr-defined]
        assert done.returncode == 0, outputs[-1]  # type: ignore[attr-defined]
    assert all(PASSWORD not in output for output in outputs)

    locked_redis.stop()  # the broker is gone: the producer's error names it without the password
    monkeypatch.setenv("GNN_BROKER__PUBLISH_RETRIES", "0")
    with ProducerClient(Settings()) as client, pytest.raises(BrokerUnavailable) as caught:
        client.submit(demo_snapshots(1, "secret-down")[0])
    assert PASSWORD not in str(caught.value)
