"""Broker access is control: a Celery app that knows nothing but the broker URL (no key, no
certificate, none of our settings) stops a worker that diagnoses only signed snapshots with
one remote-control broadcast. Signing protects snapshots, not the control channel; only the
broker's credentials and network placement do (docs/security.md, "Broker access")."""

from __future__ import annotations

import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import Celery
from signing_helpers import make_identity

from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def test_anyone_who_can_write_to_the_broker_can_shut_down_a_signing_worker(
    start_worker: StartWorker, pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    producer = make_identity(tmp_path / "keys", "line-7-gateway")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(producer.certificate, trusted / "line-7-gateway.pem")
    name = f"target-{uuid.uuid4().hex[:8]}"  # only this worker is told: the Redis is shared
    worker = start_worker(name, GNN_SECURITY__TRUSTED_CERTIFICATES=str(trusted))

    intruder = Celery("intruder", broker=pipeline_env["GNN_BROKER__URL"], set_as_current=False)
    try:
        intruder.control.shutdown(destination=[f"{name}@{socket.gethostname()}"])
    finally:
        intruder.close()

    deadline = time.monotonic() + 30
    while worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert worker.poll() is not None, "the worker ignored the broadcast:\n" + worker.log_tail()
    assert "Got shutdown from remote" in worker.log_path.read_text()
