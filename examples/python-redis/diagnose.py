"""Publish snapshots to gnn-service and read their outcomes with redis-py alone.

Follows docs/messages.md by hand, importing nothing from gnn-service: one snapshot of each
outcome kind (diagnosed, expired, dead-lettered) is pushed onto the snapshot queue as a
Celery protocol-2 message, and its outcome is polled from the result backend. Exit status 0
when every outcome is the one expected.

    python diagnose.py --broker redis://127.0.0.1:6379/0 --backend redis://127.0.0.1:6379/1
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis

# A few sensors of the built-in excavator; sensors of the spec left out are read as missing.
SENSORS = {"engine_speed": (950.0, 2050.0), "engine_power": (5.0, 125.0), "fuel_rate": (2.0, 36.0)}


def snapshot(snapshot_id: str, *, steps: int, deadline: datetime) -> dict[str, object]:
    """A snapshot of ``steps`` one-second steps inside each sensor's normal range."""
    start = datetime.now(UTC) - timedelta(seconds=steps)
    readings = {
        sensor: [round(low + (high - low) * (0.5 + 0.1 * math.sin(t / 5)), 3) for t in range(steps)]
        for sensor, (low, high) in SENSORS.items()
    }
    return {
        "snapshot_id": snapshot_id,
        "system_id": "example-excavator-1",
        "spec": "excavator",
        "window": {"start": start.isoformat(), "sample_rate_hz": 1.0, "readings": readings},
        "deadline": deadline.isoformat(),
        "correlation_id": f"example-{snapshot_id}",
    }


def envelope(body: dict[str, object], queue: str) -> str:
    """The kombu envelope of docs/messages.md around the protocol-2 body."""
    task_id = str(body["snapshot_id"])
    payload = [[body], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    return json.dumps(
        {
            "body": base64.b64encode(json.dumps(payload).encode()).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {
                "lang": "py",
                "task": "gnn.diagnose",
                "id": task_id,
                "root_id": task_id,
                "expires": body["deadline"],
                "retries": 0,
                "gnn_correlation_id": body["correlation_id"],
                "gnn_published_at": time.time(),
            },
            "properties": {
                "correlation_id": task_id,
                "reply_to": str(uuid.uuid4()),
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
    )


def poll(backend: redis.Redis, task_id: str, timeout_s: float) -> dict[str, object] | None:
    """The stored result document of ``task_id``, or None after ``timeout_s``."""
    ends = time.monotonic() + timeout_s
    while time.monotonic() < ends:
        stored = backend.get(f"celery-task-meta-{task_id}")
        if stored is not None:
            document: dict[str, object] = json.loads(stored)
            return document
        time.sleep(0.1)
    return None


def describe(result: dict[str, object]) -> str:
    """One line per outcome kind."""
    kind = result["outcome"]
    if kind == "diagnosed":
        diagnosis = result["diagnosis"]
        assert isinstance(diagnosis, dict)
        worst = min(diagnosis["components"], key=lambda c: c["health"])
        return (
            f"diagnosed: machine health {diagnosis['machine_health']:.2f}, worst component "
            f"{worst['component_id']} ({worst['status']}), model {diagnosis['model_version']}"
        )
    if kind == "expired":
        expired = result["expired"]
        assert isinstance(expired, dict)
        return f"expired: deadline {expired['deadline']} passed before it was computed"
    letter = result["dead_letter"]
    assert isinstance(letter, dict)
    return f"dead letter {letter['reason']} at {letter['field']}: {letter['detail']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--backend", default="redis://127.0.0.1:6379/1")
    parser.add_argument("--queue", default="gnn.snapshots")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for each")
    args = parser.parse_args()
    broker, backend = redis.Redis.from_url(args.broker), redis.Redis.from_url(args.backend)
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    cases = {
        "diagnosed": snapshot(f"ex-{run}-ok", steps=60, deadline=now + timedelta(minutes=5)),
        "expired": snapshot(f"ex-{run}-late", steps=60, deadline=now - timedelta(minutes=1)),
        "dead_lettered": snapshot(f"ex-{run}-short", steps=4, deadline=now + timedelta(minutes=5)),
    }
    for body in cases.values():
        broker.lpush(args.queue, envelope(body, args.queue))
    failures = 0
    for expected, body in cases.items():
        task_id = str(body["snapshot_id"])
        document = poll(backend, task_id, args.timeout)
        if document is None:
            print(f"{task_id}: no outcome within {args.timeout:g} s (is a worker running?)")
            failures += 1
            continue
        result = document["result"]
        assert isinstance(result, dict)
        print(f"{task_id}: {describe(result)}")
        failures += result["outcome"] != expected
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
