"""A real ProducerClient publishing to Redis with tracing on: the publish is traced and the
message carries the trace context in its headers, where the worker's batch loop (a raw
kombu Consumer) finds it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, current_app
from kombu import Connection, Consumer, Queue
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, get_current_span

from machines.catalog import builtin_spec
from producer.client import ProducerClient
from service import tracing
from service.settings import Settings
from service.spans import SNAPSHOT_SPAN, end_snapshot_span, snapshot_context, start_snapshot_span
from worker.app import create_app

pytestmark = pytest.mark.integration


def make_snapshot(snapshot_id: str, steps: int = 30) -> dict[str, Any]:
    """A valid excavator snapshot with readings in the middle of each normal range."""
    spec = builtin_spec("excavator")
    readings = {
        sensor.id: [(sensor.normal[0] + sensor.normal[1]) / 2] * steps for sensor in spec.sensors
    }
    return {
        "snapshot_id": snapshot_id,
        "system_id": "excavator-7",
        "spec": "excavator",
        "window": {"start": "2026-11-29T12:00:00Z", "sample_rate_hz": 1.0, "readings": readings},
        "correlation_id": f"corr-{snapshot_id}",
    }


@pytest.fixture
def settings(
    redis_env: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("GNN_DATA_DIR", str(data_dir))
    for name, value in redis_env.items():
        monkeypatch.setenv(name, value)
    return Settings(observability={"tracing_exporter": "none"})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(settings: Settings, exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure_tracing(settings, provider)
    yield provider
    tracing.shutdown_tracing()
    provider.shutdown()


@pytest.fixture
def client(settings: Settings) -> Iterator[ProducerClient]:
    with ProducerClient(settings) as producer:
        yield producer
        with Connection(str(producer.app.conf.broker_url)) as connection:
            connection.default_channel.queue_purge(settings.worker.queue)


def receive(client: ProducerClient, count: int) -> list[Any]:
    """Read messages the way the worker's batch loop does: a raw kombu Consumer."""
    messages: list[Any] = []
    queue = Queue(client.queue, routing_key=client.queue)
    with (
        Connection(str(client.app.conf.broker_url)) as connection,
        Consumer(
            connection.default_channel,
            queues=[queue],
            on_message=messages.append,
            accept=["json"],
            prefetch_count=count,
        ),
    ):
        while len(messages) < count:
            connection.drain_events(timeout=5)
        for message in messages:
            message.ack()
    return messages


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def test_publish_is_traced_and_the_message_carries_the_context(
    traced: TracerProvider, exporter: InMemorySpanExporter, client: ProducerClient
) -> None:
    snapshot_id = f"trace-{uuid.uuid4().hex[:8]}"
    with traced.get_tracer("caller").start_as_current_span("caller") as caller:
        client.submit(make_snapshot(snapshot_id))
    assert get_current_span() is not caller  # nothing left attached after the publish

    spans = exporter.get_finished_spans()
    (publish,) = by_name(spans, f"publish {client.queue}")
    (apply_async,) = by_name(spans, "apply_async/gnn.diagnose")  # Celery's instrumentation
    trace_id = caller.get_span_context().trace_id
    assert publish.kind is SpanKind.PRODUCER
    assert publish.context.trace_id == trace_id
    assert publish.parent is not None
    assert publish.parent.span_id == caller.get_span_context().span_id
    assert publish.attributes is not None
    assert publish.attributes["snapshot.id"] == snapshot_id
    assert publish.attributes["system.id"] == "excavator-7"
    assert publish.attributes["correlation.id"] == f"corr-{snapshot_id}"
    assert publish.attributes["messaging.destination.name"] == client.queue
    assert apply_async.parent is not None
    assert apply_async.parent.span_id == publish.context.span_id

    (message,) = receive(client, 1)
    assert message.headers["id"] == snapshot_id
    traceparent = message.headers["traceparent"]  # among the headers, not the properties
    assert "traceparent" not in message.properties
    assert traceparent.split("-")[1] == f"{trace_id:032x}"

    context = snapshot_context(message.headers)
    parent = get_current_span(context).get_span_context()
    assert parent.is_remote
    assert parent.trace_id == trace_id
    assert parent.span_id == apply_async.context.span_id

    end_snapshot_span(start_snapshot_span(SNAPSHOT_SPAN, context, {"snapshot.id": snapshot_id}))
    (snapshot,) = by_name(exporter.get_finished_spans(), SNAPSHOT_SPAN)
    assert snapshot.context.trace_id == trace_id
    assert snapshot.parent is not None
    assert snapshot.parent.span_id == apply_async.context.span_id


def test_each_snapshot_of_a_batch_publish_gets_its_own_context(
    traced: TracerProvider, exporter: InMemorySpanExporter, client: ProducerClient
) -> None:
    ids = [f"many-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    client.submit_many([make_snapshot(snapshot_id) for snapshot_id in ids])

    publishes = by_name(exporter.get_finished_spans(), f"publish {client.queue}")
    assert [span.attributes["snapshot.id"] for span in publishes if span.attributes] == ids
    assert all(span.parent is None for span in publishes)  # no publish nests in another
    messages = receive(client, 3)
    recovered = {
        message.headers["id"]: get_current_span(snapshot_context(message.headers))
        .get_span_context()
        .trace_id
        for message in messages
    }
    assert recovered == {
        span.attributes["snapshot.id"]: span.context.trace_id
        for span in publishes
        if span.attributes
    }
    assert len(set(recovered.values())) == 3


def test_publish_is_traced_in_a_process_holding_several_apps(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    # Celery's instrumentation looks the task up in celery.current_app, which a producer
    # never finalized; finalizing it pulls in the shared tasks of every ServiceApp made so
    # far (duplicate gnn.ping). A fresh current app stands for that producer process.
    previous = current_app._get_current_object()
    fresh = Celery("producer-default", set_as_current=True)
    try:
        for app in [create_app(settings) for _ in range(2)]:
            app.close()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracing.configure_tracing(settings, provider)
        with ProducerClient(settings) as client:
            try:
                client.submit(make_snapshot(f"apps-{uuid.uuid4().hex[:8]}"))
                (message,) = receive(client, 1)
                parent = get_current_span(snapshot_context(message.headers))
            finally:
                with Connection(str(client.app.conf.broker_url)) as connection:
                    connection.default_channel.queue_purge(settings.worker.queue)
    finally:
        previous.set_current()
        fresh.close()
        tracing.shutdown_tracing()
    spans = exporter.get_finished_spans()
    (apply_async,) = by_name(spans, "apply_async/gnn.diagnose")
    assert parent.get_span_context().span_id == apply_async.context.span_id


def test_without_tracing_nothing_is_added_to_the_message(client: ProducerClient) -> None:
    assert not tracing.tracing_enabled()
    client.submit(make_snapshot(f"plain-{uuid.uuid4().hex[:8]}"))
    (message,) = receive(client, 1)
    assert not {"traceparent", "tracestate", "baggage"} & set(message.headers)
    assert not get_current_span(snapshot_context(message.headers)).get_span_context().is_valid
