"""Raw queue items as a careless or hostile producer writes them, and the reconciliation of
what one live worker made of them (tests/integration/test_hostile_input.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from schemas.result import parse_outcome
from service.launcher import WorkerProcess

TASK = "gnn.diagnose"


def envelope(
    body: bytes | str,
    *,
    queue: str,
    headers: Any = None,
    content_type: str = "application/json",
    delivery_info: Any = None,
    tag: Any = None,
    base64_body: bool = True,
) -> bytes:
    """A kombu envelope as docs/messages.md shows it, with any part replaced."""
    raw = body.encode() if isinstance(body, str) else body
    return json.dumps(
        {
            "body": base64.b64encode(raw).decode() if base64_body else raw.decode("latin-1"),
            "content-encoding": "utf-8",
            "content-type": content_type,
            "headers": {"task": TASK, "lang": "py"} if headers is None else headers,
            "properties": {
                "delivery_mode": 2,
                "delivery_info": (
                    {"exchange": "", "routing_key": queue}
                    if delivery_info is None
                    else delivery_info
                ),
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()) if tag is None else tag,
            },
        }
    ).encode()


@dataclass
class LiveWorker:
    """One worker on Redis and PostgreSQL, and what a test needs to talk to it."""

    worker: WorkerProcess
    env: dict[str, str]
    queue: str
    database_url: str
    broker: redis.Redis = field(init=False)
    backend: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.broker = redis.Redis.from_url(self.env["GNN_BROKER__URL"])
        self.backend = redis.Redis.from_url(self.env["GNN_RESULT_BACKEND__URL"])

    def push(self, items: list[bytes]) -> None:
        """LPUSH raw items onto the snapshot queue, as a producer in any language would."""
        if items:
            self.broker.lpush(self.queue, *items)

    def settled(self) -> bool:
        """Nothing in the queue and nothing delivered but unacknowledged."""
        return self.broker.llen(self.queue) == 0 and self.broker.hlen("unacked") == 0

    def wait_settled(self, keys: set[str], timeout_s: float = 60.0) -> None:
        """Wait until the queue is drained, every key in ``keys`` has an outcome, and no new
        outcome has appeared for a second (an item that is no kombu envelope is in no
        Redis record while the worker holds it)."""
        deadline = time.monotonic() + timeout_s
        last: int | None = None
        while time.monotonic() < deadline:
            stored = self.outcomes()
            if self.settled() and keys <= set(stored):
                if last == len(stored):
                    return
                last = len(stored)
                time.sleep(1.0)
                continue
            last = None
            time.sleep(0.1)
        missing = keys - set(self.outcomes(keys))
        raise AssertionError(
            f"not settled: queue {self.broker.llen(self.queue)}, unacked "
            f"{self.broker.hlen('unacked')}, {len(missing)} keys without an outcome "
            f"({sorted(missing)[:5]})\n{self.worker.log_tail(40)}"
        )

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        """Rows of one SQL query on the service database."""

        async def run() -> list[tuple[Any, ...]]:
            engine = create_async_engine(self.database_url)
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(text(sql), params)
                    return [tuple(row) for row in result]
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def outcomes(self, keys: set[str] | None = None) -> dict[str, str]:
        """``outcome key -> outcome`` as the database holds them (all, or for ``keys``)."""
        rows = self.query("SELECT outcome_key, outcome FROM outcomes")
        return {key: kind for key, kind in rows if keys is None or key in keys}

    def backend_outcome(self, key: str) -> Any:
        """The outcome the result backend holds for ``key`` (None when it holds none)."""
        raw = self.backend.get(f"celery-task-meta-{key}")
        return None if raw is None else parse_outcome(json.loads(raw)["result"])

    def wait_alive(self, timeout_s: float = 30.0) -> tuple[int, int]:
        """HTTP status of /healthz and /readyz, waiting up to ``timeout_s`` for both to be
        200 (a circuit breaker opened by a poison snapshot closes again after its reset)."""
        deadline = time.monotonic() + timeout_s
        codes = self.alive()
        while codes != (200, 200) and time.monotonic() < deadline:
            time.sleep(0.5)
            codes = self.alive()
        return codes

    def alive(self) -> tuple[int, int]:
        """HTTP status of /healthz and /readyz."""
        codes = []
        for path in ("/healthz", "/readyz"):
            try:
                with urllib.request.urlopen(self.worker.base_url + path, timeout=5) as reply:
                    codes.append(reply.status)
            except urllib.error.HTTPError as exc:
                codes.append(exc.code)
        return codes[0], codes[1]


def reconcile(live: LiveWorker, timeout_s: float = 10.0) -> dict[str, int]:
    """Check the whole store against the result backend; returns the counts.

    Every outcome key has exactly one detail row (a diagnosis, an expiration or a dead
    letter) of its kind, and the result backend holds the same outcome under that key.
    A batch stored in the database a moment before its results reach the backend is
    waited for, up to ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _reconcile_once(live)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _reconcile_once(live: LiveWorker) -> dict[str, int]:
    kinds = live.outcomes()
    details: dict[str, list[str]] = {}
    for kind, sql in (
        ("diagnosed", "SELECT snapshot_id FROM diagnoses"),
        ("expired", "SELECT snapshot_id FROM expirations"),
        ("dead_lettered", "SELECT message_key FROM dead_letters"),
    ):
        for (key,) in live.query(sql):
            details.setdefault(key, []).append(kind)
    mismatches = []
    for key, kind in kinds.items():
        if details.get(key) != [kind]:
            mismatches.append(f"{key}: outcome {kind}, rows {details.get(key)}")
            continue
        stored = live.backend_outcome(key)
        if stored is None or stored.outcome != kind:
            mismatches.append(f"{key}: database {kind}, result backend {stored}")
            continue
        if kind == "diagnosed":
            (created,) = live.query(
                "SELECT model_version FROM diagnoses WHERE snapshot_id = :key", key=key
            )[0]
            if stored.diagnosis.model_version != created:
                mismatches.append(f"{key}: another diagnosis in the result backend")
        if kind == "dead_lettered":
            reason, digest = live.query(
                "SELECT reason, payload_sha256 FROM dead_letters WHERE message_key = :key",
                key=key,
            )[0]
            record = stored.dead_letter
            if (record.reason, record.payload_sha256) != (reason, digest):
                mismatches.append(f"{key}: another dead letter in the result backend")
    orphans = set(details) - set(kinds)
    mismatches.extend(f"{key}: rows {details[key]} without an outcome" for key in orphans)
    assert not mismatches, mismatches[:10]
    counts = {
        kind: sum(1 for value in kinds.values() if value == kind) for kind in set(kinds.values())
    }
    counts["outcomes"] = len(kinds)
    return counts
