"""The worker's write path against real PostgreSQL faults: acks only after commit, and a
database outage that pauses consumption and heals by itself. Redis broker, real workers."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable

import pytest
from pipeline_helpers import (
    TableLock,
    demo_snapshots,
    log_events,
    outcomes,
    stored_rows,
    waiting_writers,
)
from sqlalchemy.engine import make_url

from producer.client import ProducerClient
from schemas.result import Diagnosed
from worker.launcher import WorkerProcess, free_port

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_a_worker_killed_between_compute_and_commit_leaves_the_batch_to_be_stored_once(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    short = {
        "GNN_BROKER__VISIBILITY_TIMEOUT_S": "10",
        "GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S": "4",
        "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": "5",
    }
    first = start_worker("doomed", **short)
    snapshots = demo_snapshots(6, "commit")
    ids = [s.snapshot_id for s in snapshots]
    with TableLock(url):
        client.submit_many(snapshots)
        deadline = time.monotonic() + 30
        while waiting_writers(url) == 0:  # computed; its INSERT waits on the lock
            assert time.monotonic() < deadline, "the worker never reached its write"
            time.sleep(0.05)
        assert first.stop(sig=signal.SIGKILL) == -signal.SIGKILL
    assert set(stored_rows(url, ids).values()) == {0}  # nothing committed, nothing acked
    start_worker("heir", **short)
    results = outcomes(client, ids, timeout=60)  # redelivered after the visibility timeout
    assert all(isinstance(r, Diagnosed) for r in results.values())
    assert set(stored_rows(url, ids).values()) == {1}  # stored exactly once each


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


def test_a_database_outage_pauses_consumption_loses_nothing_and_heals(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    url = make_url(pipeline_env["GNN_DATABASE__URL"])
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.up()
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    try:
        worker = start_worker(
            "w1",
            GNN_DATABASE__URL=through_proxy,
            GNN_DATABASE__RETRY_MAX_TOTAL_S="1.5",
            GNN_DATABASE__RETRY_BASE_DELAY_S="0.05",
            GNN_DATABASE__POOL_TIMEOUT_S="2",
            GNN_DATABASE__OUTAGE_PROBE_INTERVAL_S="0.3",
        )
        before = demo_snapshots(8, "before")
        client.submit_many(before)
        assert all(
            isinstance(r, Diagnosed)
            for r in outcomes(client, [s.snapshot_id for s in before]).values()
        )
        proxy.down()
        during = demo_snapshots(12, "during")
        client.submit_many(during)
        deadline = time.monotonic() + 30
        while worker.readiness()[0] == 200:  # the database check turns the worker not-ready
            assert time.monotonic() < deadline, worker.log_tail(40)
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while client.queue_depth() != 12:  # every snapshot back in the queue, none acked
            assert time.monotonic() < deadline, f"queue depth {client.queue_depth()}"
            time.sleep(0.1)
        time.sleep(1.0)
        assert client.queue_depth() == 12  # paused: it takes nothing while the database is down
        assert log_events(worker.log_path, "database unavailable; batch requeued")
        proxy.up()
        ids = [s.snapshot_id for s in during]
        results = outcomes(client, ids, timeout=60)
        assert all(isinstance(r, Diagnosed) for r in results.values())
        assert set(stored_rows(str(pipeline_env["GNN_DATABASE__URL"]), ids).values()) == {1}
        assert log_events(worker.log_path, "database available again: resuming consumption")
        assert worker.readiness()[0] == 200
        retries = log_events(worker.log_path, "database retry")
        assert retries
        assert all(event["cause"] for event in retries)
    finally:
        proxy.down()
