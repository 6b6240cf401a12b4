"""The micro-batching pipeline end to end: producer client -> real worker -> result backend.

Every test runs on the embedded broker and on Redis, with a small seeded model registered in
the data directory's model registry.
"""

from __future__ import annotations

import json
import pickle
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pipeline_helpers import demo_snapshots, log_events, outcomes, publish_raw, task_body

from producer.client import ProducerClient
from schemas import load_spec
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from service.launcher import WorkerProcess

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]
Activate = Callable[..., None]


def test_each_snapshot_is_answered_exactly_once(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    worker = start_worker()
    snapshots = demo_snapshots(40, "once")
    client.submit_many(snapshots)
    results = outcomes(client, [s.snapshot_id for s in snapshots])
    assert all(isinstance(r, Diagnosed) for r in results.values())
    for snapshot_id, result in results.items():
        assert isinstance(result, Diagnosed)
        diagnosis = result.diagnosis
        assert diagnosis.snapshot_id == snapshot_id
        assert diagnosis.model_version == "universal:v1"
        assert {c.component_id for c in diagnosis.components} == _components("excavator")
    stored = {d.snapshot_id: d for d in client.history(snapshots[0].system_id, limit=10_000)}
    assert stored.keys() >= results.keys()  # in the database too, the same as polled
    assert all(stored[i] == r.diagnosis for i, r in results.items() if isinstance(r, Diagnosed))
    worker.stop()
    settled = log_events(worker.log_path, "batch settled")
    assert sum(event["diagnosed"] for event in settled) == 40  # no snapshot computed twice
    assert all(event["snapshots"] <= 16 for event in settled)
    assert client.queue_depth() == 0


def _components(system: str) -> set[str]:
    from machines.catalog import builtin_spec

    return set(builtin_spec(system).component_ids)


def test_max_wait_is_honoured_for_a_lone_snapshot(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    start_worker()
    (snapshot,) = demo_snapshots(1, "lone")
    client.submit(snapshot)
    result = client.result(snapshot.snapshot_id, timeout=30)
    assert isinstance(result, Diagnosed)
    # The batch closed on the 50 ms max wait, not on size: generous bound for a busy machine.
    assert result.diagnosis.timings.batch_wait_ms is not None
    assert result.diagnosis.timings.batch_wait_ms < 50 + 250


def test_the_node_bound_caps_each_batch(start_worker: StartWorker, client: ProducerClient) -> None:
    worker = start_worker(GNN_BATCHING__MAX_BATCH_NODES="60")  # excavator: 29 sensors
    snapshots = demo_snapshots(12, "nodes")
    client.submit_many(snapshots)
    results = outcomes(client, [s.snapshot_id for s in snapshots])
    assert all(isinstance(r, Diagnosed) for r in results.values())
    worker.stop()
    settled = log_events(worker.log_path, "batch settled")
    assert settled
    assert all(event["nodes"] <= 60 for event in settled)
    assert max(event["snapshots"] for event in settled) == 2


def test_expired_snapshots_are_recorded_not_computed(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    start_worker()
    (snapshot,) = demo_snapshots(1, "late")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    data = snapshot.model_dump(mode="json")
    publish_raw(
        client,
        task_body(data),
        content_type="application/json",
        task_id=snapshot.snapshot_id,
        expires=past,
    )
    (fresh,) = demo_snapshots(1, "fresh")
    soon = fresh.model_copy(update={"deadline": datetime.now(UTC) + timedelta(seconds=60)})
    client.submit(soon)
    late = client.result(snapshot.snapshot_id, timeout=30)
    assert isinstance(late, ExpiredOutcome)
    assert late.expired.snapshot_id == snapshot.snapshot_id
    assert isinstance(client.result(fresh.snapshot_id, timeout=30), Diagnosed)


def test_invalid_snapshots_are_dead_lettered_while_the_batch_proceeds(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    worker = start_worker()
    (good,) = demo_snapshots(1, "good")
    base = good.model_dump(mode="json")
    steps = len(next(iter(base["window"]["readings"].values())))
    ragged = json.loads(json.dumps(base))
    first = next(iter(ragged["window"]["readings"]))
    ragged["window"]["readings"][first] = ragged["window"]["readings"][first][:-3]
    unknown_sensor = json.loads(json.dumps(base))
    unknown_sensor["window"]["readings"]["mystery"] = [1.0] * steps
    short = json.loads(json.dumps(base))
    short["window"]["readings"] = {k: v[:3] for k, v in short["window"]["readings"].items()}
    cases = {
        "malformed_json": (b"{not json", "application/json"),
        "schema_invalid": (task_body({**base, "snapshot_id": "bad id!"}), "application/json"),
        "unknown_spec": (task_body({**base, "spec": "bulldozer"}), "application/json"),
        "unknown_sensor": (task_body(unknown_sensor), "application/json"),
        "ragged_window": (task_body(ragged), "application/json"),
        "window_too_short": (task_body(short), "application/json"),
        "oversize": (b" " * 1_100_000, "application/json"),
        "unsupported_content_type": (
            pickle.dumps([[base], {}, {}]),
            "application/x-python-serialize",
        ),
    }
    for reason, (raw, content_type) in cases.items():
        # The task id is the body's snapshot id, as docs/messages.md asks of producers.
        task_id = f"dl-{reason}-{good.snapshot_id}"
        body = raw
        if content_type == "application/json" and reason != "schema_invalid":
            body = raw.replace(base["snapshot_id"].encode(), task_id.encode())
        publish_raw(client, body, content_type=content_type, task_id=task_id)
    client.submit(good)
    assert isinstance(client.result(good.snapshot_id, timeout=30), Diagnosed)
    for reason in cases:
        outcome = client.result(f"dl-{reason}-{good.snapshot_id}", timeout=30)
        assert isinstance(outcome, DeadLettered), reason
        assert outcome.dead_letter.reason == reason
        assert len(outcome.dead_letter.payload_sha256) == 64
    deadline = time.monotonic() + 5
    while client.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.queue_depth() == 0
    worker.stop()
    settled = log_events(worker.log_path, "batch settled")
    assert sum(event["dead_lettered"] for event in settled) == len(
        cases
    )  # each once: no retry loop


def test_breaker_opens_stops_consuming_and_closes_after_a_good_version(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    activate_model: Activate,
) -> None:
    worker = start_worker()
    activate_model(pipeline_env, "broken", broken=True)  # fails on machines other than the demos
    deadline = time.monotonic() + 30
    while not log_events(worker.log_path, "model swapped between batches"):
        assert time.monotonic() < deadline, "the worker never took the broken version"
        time.sleep(0.1)
    press = load_spec(Path(__file__).parents[2] / "docs" / "examples" / "hydraulic_press.yaml")
    first = demo_snapshots(8, "brk", press)
    client.submit_many(first)
    deadline = time.monotonic() + 30
    state = ""
    while time.monotonic() < deadline:
        _, body = worker.readiness()
        checks = body.get("checks", {})
        state = str(checks.get("breaker", {}).get("detail", "")) if isinstance(checks, dict) else ""
        if "open" in state and "half" not in state:
            break
        time.sleep(0.1)
    assert state == "circuit breaker open"
    deadline = time.monotonic() + 10
    while client.queue_depth() != 8 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.queue_depth() == 8  # stopped consuming: the messages wait for healthy workers
    activate_model(pipeline_env, "v2")
    results = outcomes(client, [s.snapshot_id for s in first], timeout=60)
    assert all(isinstance(r, Diagnosed) for r in results.values())
    assert {r.diagnosis.model_version for r in results.values() if isinstance(r, Diagnosed)} == {
        "universal:v2"
    }
    status, body = worker.readiness()
    assert status == 200, body
    worker.stop()
    assert log_events(worker.log_path, "circuit breaker")


def test_hot_swap_while_snapshots_flow_fails_none(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    activate_model: Activate,
) -> None:
    worker = start_worker()
    snapshots = demo_snapshots(400, "swap")
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        for snapshot in snapshots:
            if stop.is_set():
                return
            client.submit(snapshot)
            sent.append(snapshot.snapshot_id)
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.4)
    activate_model(pipeline_env, "v2")
    deadline = time.monotonic() + 60
    while not log_events(worker.log_path, "model swapped between batches"):
        assert time.monotonic() < deadline, "the worker never swapped"
        time.sleep(0.1)
    swapped_after = len(sent)
    time.sleep(0.5)  # keep producing across and after the switch
    stop.set()
    producer.join()
    assert len(sent) > swapped_after  # snapshots flowed while the worker switched
    results = outcomes(client, sent)
    assert all(isinstance(r, Diagnosed) for r in results.values())  # none failed
    versions = [r.diagnosis.model_version for r in results.values() if isinstance(r, Diagnosed)]
    assert versions[0] == "universal:v1"
    assert versions[-1] == "universal:v2"


def test_warm_shutdown_finishes_the_batch_in_hand_and_loses_nothing(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    worker = start_worker()
    snapshots = demo_snapshots(150, "term")
    client.submit_many(snapshots)
    time.sleep(0.3)
    assert worker.stop(sig=signal.SIGTERM) == 0
    settled = log_events(worker.log_path, "batch settled")
    done_first = sum(event["diagnosed"] for event in settled)
    second = start_worker("w2")
    results = outcomes(client, [s.snapshot_id for s in snapshots])
    assert all(isinstance(r, Diagnosed) for r in results.values())
    second.stop()
    done_second = sum(event["diagnosed"] for event in log_events(second.log_path, "batch settled"))
    assert done_first + done_second == 150  # each computed once: nothing lost, nothing twice


def test_a_batch_past_its_hard_time_limit_ends_the_worker_and_is_redelivered(
    start_worker: StartWorker, client: ProducerClient
) -> None:
    impatient = start_worker(
        "impatient",
        GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S="0.001",
        GNN_WORKER__BATCH_HARD_TIME_LIMIT_S="0.002",
        GNN_BROKER__VISIBILITY_TIMEOUT_S="10",
        GNN_WORKER__SETTLE_BUDGET_S="5",  # with the short visibility timeout, checked at start
    )
    snapshots = demo_snapshots(16, "hard")
    client.submit_many(snapshots)
    deadline = time.monotonic() + 30
    while impatient.readiness()[0] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert impatient.stop() == 70  # ended itself at the hard limit
    assert log_events(impatient.log_path, "batch passed its hard time limit; ending the process")
    assert not log_events(impatient.log_path, "batch settled")  # nothing of it was acked
    start_worker(
        "patient",
        GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S="4",
        GNN_WORKER__BATCH_HARD_TIME_LIMIT_S="5",
        GNN_BROKER__VISIBILITY_TIMEOUT_S="10",
        GNN_WORKER__SETTLE_BUDGET_S="4",  # with the short visibility timeout, checked at start
    )
    results = outcomes(client, [s.snapshot_id for s in snapshots], timeout=90)
    assert all(isinstance(r, Diagnosed) for r in results.values())
