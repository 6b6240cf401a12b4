"""A flood of poison messages mixed into valid traffic: each is dead-lettered once with its
reason (or, for a pickled body, refused unread), valid snapshots around them are diagnosed,
the worker keeps running, and nothing is retried."""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable

import pytest
from pipeline_helpers import demo_snapshots, log_events, publish_raw, task_body
from reliability_helpers import LONG, Reconciliation, copies, wait_for_outcomes
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from producer.client import ProducerClient
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)


def _poison(base: dict[str, object]) -> dict[str, tuple[bytes, str, str]]:
    """Poison bodies: name -> (body, content type, the dead-letter reason expected)."""
    readings = base["window"]["readings"]  # type: ignore[index]
    steps = len(next(iter(readings.values())))
    nan_flood = json.loads(json.dumps(base))
    nan_flood["window"]["readings"] = {k: [math.nan] * steps for k in readings}
    nan_flood["snapshot_id"] = "nan-flood"
    unknown_sensor = json.loads(json.dumps(base))
    unknown_sensor["window"]["readings"]["mystery"] = [1.0] * steps
    return {
        "malformed": (b'{"not": json', "application/json", "malformed_json"),
        "schema": (task_body({**base, "snapshot_id": "bad id!"}), "application/json", "schema_invalid"),
        "oversize": (b"[" + b" " * 1_100_000 + b"]", "application/json", "oversize"),
        "nan-flood": (task_body(nan_flood), "application/json", "empty_readings"),
        "spec": (task_body({**base, "spec": "bulldozer"}), "application/json", "unknown_spec"),
        "sensor": (task_body(unknown_sensor), "application/json", "unknown_sensor"),
        "pickle": (pickle.dumps([[base], {}, {}]), "application/x-python-serialize", "unsupported_content_type"),
    }  # fmt: skip


def _reasons(database_url: str, keys: list[str]) -> dict[str, str]:
    import asyncio

    from sqlalchemy import bindparam

    async def query() -> dict[str, str]:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                statement = text(
                    "SELECT message_key, reason FROM dead_letters WHERE message_key IN :keys"
                ).bindparams(bindparam("keys", expanding=True))
                return {
                    row[0]: row[1] for row in await connection.execute(statement, {"keys": keys})
                }
        finally:
            await engine.dispose()

    return asyncio.run(query())


def test_a_poison_flood_is_dead_lettered_once_each_and_the_worker_keeps_serving(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    report: list[Reconciliation],
) -> None:
    url = pipeline_env["GNN_DATABASE__URL"]
    worker = start_worker("w1")
    templates = demo_snapshots(10, "poison")
    rounds = 50 if LONG else 10
    valid = copies(templates, rounds * 10, "valid")
    base = templates[0].model_dump(mode="json")
    poison = _poison(base)
    expected: dict[str, str] = {}
    for round_ in range(rounds):
        client.submit_many(valid[round_ * 10 : (round_ + 1) * 10])
        for name, (raw, content_type, reason) in poison.items():
            key = f"poison-{name}-{round_:03d}"
            # The task id is the body's snapshot id, as docs/messages.md asks of producers.
            body = raw.replace(f'"{base["snapshot_id"]}"'.encode(), f'"{key}"'.encode())
            body = body.replace(b'"nan-flood"', f'"{key}"'.encode())
            publish_raw(client, body, content_type=content_type, task_id=key)
            expected[key] = reason
    ids = [s.snapshot_id for s in valid] + list(expected)
    result = wait_for_outcomes(url, ids, timeout_s=120, scenario="poison messages")
    result.assert_complete()
    assert result.stored == len(valid)
    assert result.dead_lettered == len(expected)
    assert _reasons(url, list(expected)) == expected
    assert worker.readiness()[0] == 200  # still serving
    worker.stop()
    settled = log_events(worker.log_path, "batch settled")
    assert sum(event["dead_lettered"] for event in settled) == len(expected)  # once each
    assert sum(event.get("requeued", 0) for event in settled) == 0  # no retry
    result.figures = {"poison_kinds": float(len(poison)), "rounds": float(rounds)}
    report.append(result)
