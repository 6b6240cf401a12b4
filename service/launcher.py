"""Start and stop worker processes from Python: used by ``gnn-service run``, the
benchmarks and the integration tests, which all want real worker processes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from service.errors import ConfigurationError


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What a worker process runs by default (``python -m`` and the rest): ``gnn-service worker``.
WORKER_COMMAND = ("cli", "worker")


class WorkerProcess:
    """One ``gnn-service worker`` subprocess (or another worker entry point).

    Args:
        env: Environment for the worker (GNN_* settings); merged over this process's.
        hostname: Celery node name.
        log_path: File receiving the worker's stdout and stderr (JSON log lines).
        extra_args: More options of the command.
        command: Module run with ``python -m``, and its arguments before ``--hostname``;
            the default is ``gnn-service worker``. The command must take ``--hostname``
            and serve the health endpoint at ``GNN_WORKER__HEALTH_PORT``.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        hostname: str,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        command: tuple[str, ...] = WORKER_COMMAND,
    ) -> None:
        self.hostname = hostname
        self.log_path = log_path
        self.health_port = int(env.get("GNN_WORKER__HEALTH_PORT") or free_port())
        self._env = {**os.environ, **env, "GNN_WORKER__HEALTH_PORT": str(self.health_port)}
        self._args = (sys.executable, "-m", *command, "--hostname", hostname, *extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def __repr__(self) -> str:
        pid = self._process.pid if self._process else None
        return f"WorkerProcess(hostname={self.hostname!r}, pid={pid}, port={self.health_port})"

    @property
    def pid(self) -> int:
        """Process id of the running worker."""
        if self._process is None:
            raise RuntimeError("worker not started")
        return self._process.pid

    @property
    def base_url(self) -> str:
        """URL of the worker's health endpoint."""
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        """Spawn the worker."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # closed in stop()
        self._process = subprocess.Popen(
            self._args, env=self._env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def poll(self) -> int | None:
        """The worker's exit status once it has ended, else None (also before ``start``)."""
        return None if self._process is None else self._process.poll()

    def readiness(self) -> tuple[int, dict[str, object]]:
        """Status code and body of /readyz; (0, {}) while nothing answers."""
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as response:
                return int(response.status), json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"{}")
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError):
            return 0, {}  # not listening, or the process ended mid-answer

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until /readyz answers 200.

        Raises:
            ConfigurationError: The worker exited or did not become ready in time; the
                message quotes the end of its log.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise ConfigurationError(
                    f"worker {self.hostname} exited with {self._process.returncode}:\n"
                    + self.log_tail()
                )
            status, _ = self.readiness()
            if status == 200:
                return
            time.sleep(0.1)
        raise ConfigurationError(
            f"worker {self.hostname} not ready after {timeout_s} s:\n" + self.log_tail()
        )

    def stop(self, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (warm shutdown by default) and wait; kill after ``timeout_s``."""
        if self._process is None:
            return 0
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return int(self._process.returncode)

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the worker's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
