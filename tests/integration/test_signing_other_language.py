"""A producer in another language signs snapshots: docs/examples/sign_snapshot.mjs (Node.js,
node:crypto only) writes a kombu envelope that the worker's own path (the atomic fetch from
Redis, then ``Incoming.prepare`` with a ``SignatureVerifier``) accepts as signed, and whose
tampered copy it refuses as ``signature_invalid``."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection
from pipeline_helpers import demo_snapshots
from signing_helpers import Identity, make_identity

from service.errors import InvalidInput
from service.settings import SecuritySettings
from service.signing import SIGNED_CONTENT_TYPE, SignatureVerifier
from worker.fetch import AtomicFetcher
from worker.messages import Incoming

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "sign_snapshot.mjs"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def node() -> str:
    """The node executable; without one the test skips, except under CI, where it fails."""
    found = shutil.which("node")
    if found is None:
        if IN_CI:
            pytest.fail("node is not on PATH; CI=true requires it", pytrace=False)
        pytest.skip("node is not on PATH")
    return found


@pytest.fixture
def queue(redis_server: str) -> Iterator[tuple[str, str]]:
    """A private queue on the test Redis: its URL and name, emptied afterwards."""
    url, name = f"{redis_server}/11", f"test.node-signed.{uuid.uuid4().hex[:8]}"
    yield url, name
    client = redis.Redis.from_url(url)
    client.delete(name)
    client.close()


def sign_with_node(node: str, identity: Identity, snapshot_file: Path, queue: str) -> str:
    done = subprocess.run(
        [node, str(SCRIPT), "--key", str(identity.key), "--cert", str(identity.certificate),
         "--queue", queue, str(snapshot_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def receive(url: str, queue: str, envelope: str) -> tuple[Incoming, Any]:
    """``envelope`` pushed onto ``queue`` and taken off it as the worker takes messages."""
    client = redis.Redis.from_url(url)
    client.lpush(queue, envelope)
    client.close()
    connection = Connection(url)
    (message,) = AtomicFetcher(queue).fetch(connection.default_channel, 1)
    return Incoming(message), connection


def tampered(envelope: str) -> str:
    """The envelope with one byte of the signed snapshot changed, signature left as it was."""
    data = json.loads(envelope)
    signed = base64.b64decode(base64.b64decode(data["body"]))
    head, inner = signed.rsplit(b"\x00\x01", 1)
    assert b'"system_id": "' in inner
    inner = inner.replace(b'"system_id": "', b'"system_id": "X', 1)
    signed = base64.b64encode(head + b"\x00\x01" + inner)
    data["body"] = base64.b64encode(signed).decode()
    return json.dumps(data)


def test_a_snapshot_signed_in_node_is_accepted_by_the_worker_and_a_tampered_one_refused(
    node: str, queue: tuple[str, str], tmp_path: Path
) -> None:
    url, name = queue
    identity = make_identity(tmp_path / "keys", "node-gateway")
    (snapshot,) = demo_snapshots(1, "node")
    deadline = (datetime.now(UTC) + timedelta(minutes=10)).replace(microsecond=0)
    snapshot = snapshot.model_copy(update={"deadline": deadline, "correlation_id": "req-node-1"})
    snapshot_file = tmp_path / "snapshot.json"
    snapshot_file.write_text(snapshot.model_dump_json(indent=1))
    sent = json.loads(snapshot_file.read_text())

    envelope = sign_with_node(node, identity, snapshot_file, name)
    data = json.loads(envelope)
    assert data["content-type"] == SIGNED_CONTENT_TYPE
    headers = data["headers"]
    assert headers["task"] == "gnn.diagnose"
    assert headers["id"] == snapshot.snapshot_id
    assert datetime.fromisoformat(headers["expires"]) == deadline
    assert headers["gnn_correlation_id"] == "req-node-1"
    assert data["properties"]["delivery_info"]["routing_key"] == name

    limits = SecuritySettings()
    verifier = SignatureVerifier(identity.certificate)
    incoming, connection = receive(url, name, envelope)
    try:
        incoming.prepare(limits, verifier)
        assert incoming.snapshot_data(limits) == sent
        assert incoming.task_id == snapshot.snapshot_id
        assert incoming.expires == deadline
        incoming.message.ack()
    finally:
        connection.release()

    forged, connection = receive(url, name, tampered(envelope))
    try:
        forged.prepare(limits, verifier)
        with pytest.raises(InvalidInput) as refused:
            forged.snapshot_data(limits)
        assert refused.value.reason == "signature_invalid"
        forged.message.ack()
    finally:
        connection.release()

    other_producer = make_identity(tmp_path / "other", "someone-else")
    stranger, connection = receive(url, name, envelope)
    try:
        stranger.prepare(limits, SignatureVerifier(other_producer.certificate))
        with pytest.raises(InvalidInput, match="unknown signer") as unknown:
            stranger.snapshot_data(limits)
        assert unknown.value.reason == "signature_invalid"
        stranger.message.ack()
    finally:
        connection.release()
