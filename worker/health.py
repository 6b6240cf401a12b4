"""A small HTTP endpoint per worker node: /healthz, /readyz and /metrics.

- ``/healthz``: liveness: 200 while the process serves HTTP and its liveness check passes
  (the snapshot consumer has not stopped on an error), else 503 with the reason.
- ``/readyz``: 200 only when every registered check passes, else 503 with a JSON body listing
  the failing checks and why (readiness: the model is warm, the database answers, the
  breaker is closed, ...). Checks are registered by whoever owns the resource.
- ``/metrics``: Prometheus text from the registry passed in; when the environment variable
  ``PROMETHEUS_MULTIPROC_DIR`` is set (forking pools), the per-process files are aggregated.

The server runs in a daemon thread of the worker's main process; ``close()`` stops it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one readiness check."""

    ok: bool
    detail: str = ""


Check = Callable[[], CheckResult]


class HealthChecks:
    """Named readiness and liveness checks; thread-safe registration and evaluation."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}
        self._liveness: dict[str, Check] = {}
        self._lock = threading.Lock()

    def register(self, name: str, check: Check, *, liveness: bool = False) -> None:
        """Add or replace the check called ``name`` (a liveness check with ``liveness``:
        failing it says the process must be restarted, not merely waited for)."""
        with self._lock:
            (self._liveness if liveness else self._checks)[name] = check

    def unregister(self, name: str) -> None:
        """Remove the check called ``name`` if present."""
        with self._lock:
            self._checks.pop(name, None)
            self._liveness.pop(name, None)

    def evaluate(self, *, liveness: bool = False) -> dict[str, CheckResult]:
        """Run every readiness (or liveness) check; one that raises counts as failing."""
        with self._lock:
            checks = dict(self._liveness if liveness else self._checks)
        results: dict[str, CheckResult] = {}
        for name, check in checks.items():
            try:
                results[name] = check()
            except Exception as exc:  # a broken check must not break the endpoint
                results[name] = CheckResult(False, f"{type(exc).__name__}: {exc}")
        return results


class HealthServer:
    """HTTP server for liveness, readiness and metrics.

    Args:
        host: Interface to bind.
        port: Port to bind; 0 picks a free one (read ``port`` after ``start``).
        checks: The readiness checks.
        registry: Metrics to expose.
    """

    def __init__(
        self, *, host: str, port: int, checks: HealthChecks, registry: CollectorRegistry
    ) -> None:
        self.checks = checks
        self.registry = registry
        self._host = host
        self._requested_port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"HealthServer(host={self._host!r}, port={self.port})"

    @property
    def port(self) -> int:
        """The bound port (the requested one before ``start``)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("health server already started")
        handler = _make_handler(self.checks, self.registry)
        self._server = ThreadingHTTPServer((self._host, self._requested_port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gnn-health", daemon=True
        )
        self._thread.start()
        logger.info("health endpoint listening", host=self._host, port=self.port)

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


def _metrics_text(registry: CollectorRegistry) -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged) + generate_latest(registry)
    return generate_latest(registry)


def _make_handler(
    checks: HealthChecks, registry: CollectorRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                failing = {
                    n: r.detail for n, r in checks.evaluate(liveness=True).items() if not r.ok
                }
                state: dict[str, object] = {"status": "dead", "failing": failing}
                if not failing:
                    state = {"status": "alive"}
                code = HTTPStatus.SERVICE_UNAVAILABLE if failing else HTTPStatus.OK
                self._send(code, "application/json", json.dumps(state).encode())
            elif path == "/readyz":
                results = checks.evaluate()
                failing = {n: r.detail for n, r in results.items() if not r.ok}
                ready = bool(results) and not failing
                body = {
                    "status": "ready" if ready else "not ready",
                    "checks": {n: {"ok": r.ok, "detail": r.detail} for n, r in results.items()},
                    "failing": failing if results else {"checks": "none registered"},
                }
                status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
                self._send(status, "application/json", json.dumps(body).encode())
            elif path == "/metrics":
                self._send(HTTPStatus.OK, CONTENT_TYPE_LATEST, _metrics_text(registry))
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # Probes hit these endpoints every few seconds; keep them out of the logs.
            return

    return Handler
