"""Message signing end to end: a worker that trusts one producer's certificate diagnoses that
producer's signed snapshots and dead-letters unsigned ones and those of an untrusted key."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_helpers import demo_snapshots, outcomes
from signing_helpers import make_identity

from producer.client import ProducerClient
from schemas.result import DeadLettered, Diagnosed
from service.launcher import WorkerProcess
from service.settings import Settings

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def _client(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ProducerClient:
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return ProducerClient(Settings())


def test_only_snapshots_signed_by_a_trusted_producer_are_diagnosed(
    start_worker: StartWorker,
    pipeline_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trusted_producer = make_identity(tmp_path / "keys", "line-7-gateway")
    intruder = make_identity(tmp_path / "elsewhere", "intruder")
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    shutil.copy(trusted_producer.certificate, trusted / "line-7-gateway.pem")
    start_worker("w1", GNN_SECURITY__TRUSTED_CERTIFICATES=str(trusted))

    signed, unsigned, forged = (demo_snapshots(3, name) for name in ("signed", "plain", "forged"))
    with _client({**pipeline_env, **trusted_producer.env()}, monkeypatch) as client:
        assert client.app.conf.task_serializer == "auth"
        client.submit_many(signed)
    with _client({**pipeline_env, **intruder.env()}, monkeypatch) as client:
        client.submit_many(forged)
    with _client(pipeline_env, monkeypatch) as client:
        client.submit_many(unsigned)
        results = outcomes(client, [s.snapshot_id for s in signed + unsigned + forged])

    for snapshot in signed:
        assert isinstance(results[snapshot.snapshot_id], Diagnosed)
    for group, reason in ((unsigned, "unsupported_content_type"), (forged, "signature_invalid")):
        for snapshot in group:
            outcome = results[snapshot.snapshot_id]
            assert isinstance(outcome, DeadLettered), outcome
            assert outcome.dead_letter.reason == reason
