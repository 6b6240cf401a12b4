from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from worker.health import CheckResult, HealthChecks, HealthServer


@pytest.fixture
def server() -> Iterator[HealthServer]:
    registry = CollectorRegistry()
    Counter("gnn_test_events_total", "Events seen by the test.", registry=registry).inc(3)
    health = HealthServer(host="127.0.0.1", port=0, checks=HealthChecks(), registry=registry)
    health.start()
    yield health
    health.close()


def _get(server: HealthServer, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_healthz_answers_while_the_process_serves(server: HealthServer) -> None:
    assert _get(server, "/healthz") == (200, b'{"status": "alive"}')


def test_readyz_is_503_until_every_check_passes(server: HealthServer) -> None:
    status, body = _get(server, "/readyz")
    assert status == 503  # no check registered yet: not ready
    model_warm = False
    server.checks.register("model", lambda: CheckResult(model_warm, "warming up"))
    server.checks.register("database", lambda: CheckResult(True))
    status, body = _get(server, "/readyz")
    assert status == 503
    assert json.loads(body)["failing"] == {"model": "warming up"}
    model_warm = True
    status, body = _get(server, "/readyz")
    assert status == 200
    assert json.loads(body)["status"] == "ready"


def test_a_check_that_raises_counts_as_failing(server: HealthServer) -> None:
    def broken() -> CheckResult:
        raise RuntimeError("no connection")

    server.checks.register("broker", broken)
    status, body = _get(server, "/readyz")
    assert status == 503
    assert "RuntimeError: no connection" in json.loads(body)["failing"]["broker"]


def test_metrics_serves_the_registry_passed_in(server: HealthServer) -> None:
    status, body = _get(server, "/metrics")
    assert status == 200
    assert b"gnn_test_events_total 3.0" in body


def test_unknown_paths_are_404(server: HealthServer) -> None:
    assert _get(server, "/nope")[0] == 404


def test_healthz_is_503_while_a_liveness_check_fails(server: HealthServer) -> None:
    consumer_running = True
    server.checks.register(
        "consumer", lambda: CheckResult(consumer_running, "stopped: Boom"), liveness=True
    )
    assert _get(server, "/healthz")[0] == 200
    assert _get(server, "/readyz")[0] == 503  # a liveness check is no readiness check
    consumer_running = False
    status, body = _get(server, "/healthz")
    assert status == 503
    assert json.loads(body) == {"status": "dead", "failing": {"consumer": "stopped: Boom"}}
