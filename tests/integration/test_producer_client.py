"""The producer client against the embedded broker and real Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection

from machines.catalog import builtin_spec
from producer.client import ProducerClient
from schemas import Expired, Snapshot
from schemas.result import ExpiredOutcome
from service.errors import BrokerUnavailable, InvalidInput, QueueFull
from service.settings import Settings
from service.wire import CORRELATION_HEADER, TASK_DIAGNOSE

pytestmark = pytest.mark.integration


def make_snapshot(
    snapshot_id: str, steps: int = 30, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A valid excavator snapshot with readings in the middle of each normal range."""
    spec = builtin_spec("excavator")
    readings = {
        sensor.id: [(sensor.normal[0] + sensor.normal[1]) / 2] * steps for sensor in spec.sensors
    }
    body: dict[str, Any] = {
        "snapshot_id": snapshot_id,
        "system_id": "excavator-7",
        "spec": "excavator",
        "window": {"start": "2026-11-29T12:00:00Z", "sample_rate_hz": 1.0, "readings": readings},
        "correlation_id": f"corr-{snapshot_id}",
    }
    return {**body, **(overrides or {})}


@pytest.fixture(params=["embedded", "redis"])
def settings(
    request: pytest.FixtureRequest, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("GNN_DATA_DIR", str(data_dir))
    if request.param == "redis":
        for name, value in request.getfixturevalue("redis_env").items():
            monkeypatch.setenv(name, value)
    return Settings()


@pytest.fixture
def client(settings: Settings) -> Iterator[ProducerClient]:
    with ProducerClient(settings) as producer:
        yield producer
        with Connection(str(producer.app.conf.broker_url)) as connection:
            connection.default_channel.queue_purge(settings.worker.queue)


def _drain(client: ProducerClient) -> list[Any]:
    messages = []
    with Connection(str(client.app.conf.broker_url)) as connection:
        queue = connection.SimpleQueue(client.queue)
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                break
            messages.append(message)
            message.ack()
        queue.close()
    return messages


def test_submit_publishes_a_json_celery_task_per_snapshot(client: ProducerClient) -> None:
    handles = client.submit_many([make_snapshot("s-1"), make_snapshot("s-2")])
    assert [h.snapshot_id for h in handles] == ["s-1", "s-2"]
    assert client.queue_depth() == 2
    published = client.metrics_registry.get_sample_value(
        "gnn_snapshots_published_total", {"queue": client.queue}
    )
    assert published == 2
    messages = _drain(client)
    assert len(messages) == 2
    first = messages[0]
    assert first.content_type == "application/json"
    assert first.headers["task"] == TASK_DIAGNOSE
    assert first.headers["id"] == "s-1"
    assert first.headers[CORRELATION_HEADER] == "corr-s-1"
    args, kwargs, _ = json.loads(first.body)
    assert kwargs == {}
    snapshot = Snapshot.model_validate(args[0])
    assert snapshot.snapshot_id == "s-1"
    assert snapshot.spec == "excavator"


@pytest.mark.parametrize(
    ("change", "reason", "field"),
    [
        ({"spec": "bulldozer"}, "unknown_spec", "spec"),
        ({"snapshot_id": "has space"}, "schema_invalid", "snapshot_id"),
        (
            {
                "window": {
                    "start": "2026-11-29T12:00:00Z",
                    "sample_rate_hz": 1.0,
                    "readings": {"engine_speed": [1.0] * 30, "pump_flow": [1.0] * 29},
                }
            },
            "ragged_window",
            "window.readings",
        ),
        (
            {
                "window": {
                    "start": "2026-11-29T12:00:00Z",
                    "sample_rate_hz": 1.0,
                    "readings": {"no_such_sensor": [1.0] * 30},
                }
            },
            "unknown_sensor",
            "window.readings.no_such_sensor",
        ),
        (
            {
                "window": {
                    "start": "2026-11-29T12:00:00Z",
                    "sample_rate_hz": 1.0,
                    "readings": {"engine_speed": [1.0] * 4},
                }
            },
            "window_too_short",
            "window.readings",
        ),
    ],
)
def test_an_invalid_snapshot_is_refused_before_publishing(
    client: ProducerClient, change: dict[str, Any], reason: str, field: str
) -> None:
    good = make_snapshot("ok-1")
    with pytest.raises(InvalidInput) as caught:
        client.submit_many([good, make_snapshot("bad-1", overrides=change)])
    assert caught.value.reason == reason
    assert caught.value.field is not None
    assert caught.value.field.startswith(field)
    assert client.queue_depth() == 0  # nothing published, not even the valid one
    refused = client.metrics_registry.get_sample_value(
        "gnn_snapshots_refused_total", {"reason": reason}
    )
    assert refused == 1


def test_backpressure_raises_queue_full_at_the_configured_depth(
    settings: Settings,
) -> None:
    tight = settings.model_copy(
        update={
            "producer": settings.producer.model_copy(
                update={"max_queue_depth": 3, "backpressure": "raise"}
            )
        }
    )
    with ProducerClient(tight) as client:
        client.submit_many([make_snapshot(f"q-{i}") for i in range(3)])
        with pytest.raises(QueueFull, match="GNN_PRODUCER__MAX_QUEUE_DEPTH"):
            client.submit(make_snapshot("q-3"))
        assert client.queue_depth() == 3
        _drain(client)
        client.submit(make_snapshot("q-4"))  # room again once the queue drained
        assert client.queue_depth() == 1
        _drain(client)


def test_backpressure_wait_gives_up_after_its_timeout(settings: Settings) -> None:
    tight = settings.model_copy(
        update={
            "producer": settings.producer.model_copy(
                update={"max_queue_depth": 1, "backpressure": "wait", "backpressure_timeout_s": 0.3}
            )
        }
    )
    with ProducerClient(tight) as client:
        client.submit(make_snapshot("w-0"))
        with pytest.raises(QueueFull):
            client.submit(make_snapshot("w-1"))
        _drain(client)


def test_result_reads_an_outcome_from_the_result_backend(client: ProducerClient) -> None:
    now = datetime.now(UTC)
    record = Expired(
        snapshot_id="r-1", system_id="excavator-7", deadline=now - timedelta(seconds=1),
        observed_at=now,
    )  # fmt: skip
    stored = ExpiredOutcome(expired=record).model_dump(mode="json")
    client.app.backend.store_result("r-1", stored, "SUCCESS")
    outcome = client.result("r-1", timeout=5)
    assert isinstance(outcome, ExpiredOutcome)
    assert outcome.expired.snapshot_id == "r-1"


def test_result_times_out_with_the_snapshot_id(client: ProducerClient) -> None:
    with pytest.raises(TimeoutError, match=r"snapshot never-sent: no outcome within 0\.3 s"):
        client.result("never-sent", timeout=0.3)


def test_publishing_to_an_unreachable_broker_raises_after_retries(data_dir: Path) -> None:
    settings = Settings(
        data_dir=data_dir,
        broker={"url": "redis://127.0.0.1:1/0", "publish_retries": 1, "connect_timeout_s": 0.5},  # type: ignore[arg-type]
        result_backend={"url": "redis://127.0.0.1:1/1"},  # type: ignore[arg-type]
        producer={"max_queue_depth": 10_000_000},  # type: ignore[arg-type]
    )
    with ProducerClient(settings) as client:
        client._depth_checked_at = float("inf")  # skip the depth probe: publish directly
        with pytest.raises(BrokerUnavailable, match="broker unreachable after 1 retries"):
            client.submit(make_snapshot("u-1"))
