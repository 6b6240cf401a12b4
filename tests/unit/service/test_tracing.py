"""Tracing: snapshot spans continue the producer's trace, one batch span links them, stages
nest under it, SQL nests under db_write, log lines carry the ids; configuration."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from celery import signals
from loguru import logger
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service import tracing
from service.errors import ConfigurationError
from service.logging import configure_logging
from service.settings import Settings
from service.spans import (
    BATCH_SPAN,
    SNAPSHOT_SPAN,
    STAGES,
    batch_span,
    end_snapshot_span,
    publish_span,
    snapshot_context,
    stage_span,
    start_snapshot_span,
)


def make_settings(**observability: Any) -> Settings:
    return Settings(observability={"tracing_exporter": "none", **observability})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A fresh provider, installed for the test and removed after it."""
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert tracing.configure_tracing(make_settings(), tracer_provider) is tracer_provider
    yield tracer_provider
    tracing.shutdown_tracing()
    tracer_provider.shutdown()


@pytest.fixture(autouse=True)
def _no_tracing_left_behind() -> Iterator[None]:
    yield
    tracing.shutdown_tracing()
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]


def publish(provider: TracerProvider, snapshot_id: str) -> tuple[ReadableSpan, dict[str, Any]]:
    """What a producer does: a publish span whose context is injected into the headers."""
    headers: dict[str, Any] = {"id": snapshot_id, "task": "gnn.diagnose", "retries": 0}
    tracer = provider.get_tracer("producer")
    with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER) as span:
        propagate.inject(headers)
    assert isinstance(span, ReadableSpan)
    return span, headers


def by_name(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    (found,) = [span for span in spans if span.name == name]
    return found


def test_snapshot_span_is_a_child_of_the_publish_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    published, headers = publish(provider, "s-1")
    assert "traceparent" in headers

    context = snapshot_context(headers)
    span = start_snapshot_span(
        SNAPSHOT_SPAN,
        context,
        {"snapshot.id": "s-1", "system.id": "excavator-7", "correlation.id": None},
    )
    assert not trace.get_current_span().get_span_context().is_valid  # not made current
    end_snapshot_span(span, outcome="diagnosed")

    snapshot = by_name(exporter.get_finished_spans(), SNAPSHOT_SPAN)
    assert snapshot.parent is not None
    assert snapshot.parent.span_id == published.context.span_id
    assert snapshot.parent.is_remote
    assert snapshot.context.trace_id == published.context.trace_id
    assert snapshot.kind is SpanKind.CONSUMER
    assert snapshot.attributes is not None
    assert snapshot.attributes["snapshot.id"] == "s-1"
    assert snapshot.attributes["system.id"] == "excavator-7"
    assert snapshot.attributes["snapshot.outcome"] == "diagnosed"
    assert "correlation.id" not in snapshot.attributes  # None values are dropped


def test_batch_span_links_every_snapshot_span_and_stages_are_its_children(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    publishes = [publish(provider, f"s-{i}") for i in range(3)]
    snapshot_spans = [
        start_snapshot_span(SNAPSHOT_SPAN, snapshot_context(headers), {"snapshot.id": f"s-{i}"})
        for i, (_, headers) in enumerate(publishes)
    ]
    with batch_span(snapshot_spans, {"model.version": "v7", "batch.nodes": 120}):
        for stage in STAGES:
            with stage_span(stage, **{"db.rows": 3} if stage == "db_write" else {}):
                pass
    for span in snapshot_spans:
        end_snapshot_span(span, outcome="diagnosed")

    spans = exporter.get_finished_spans()
    batch = by_name(spans, BATCH_SPAN)
    snapshots = [span for span in spans if span.name == SNAPSHOT_SPAN]
    assert len(snapshots) == 3
    # ONE batch span, linked to each snapshot span (each in its producer's trace).
    assert [link.context for link in batch.links] == [span.context for span in snapshots]
    assert [dict(link.attributes or {}) for link in batch.links] == [
        {"snapshot.id": f"s-{i}"} for i in range(3)
    ]
    assert len({span.context.trace_id for span in snapshots}) == 3
    assert batch.parent is None
    assert batch.attributes is not None
    assert batch.attributes["batch.size"] == 3
    assert batch.attributes["model.version"] == "v7"
    # Each snapshot span links back to the batch that served it.
    for snapshot in snapshots:
        assert [link.context for link in snapshot.links] == [batch.context]
    # The stages, in order, are children of the batch span.
    stages = [span for span in spans if span.name in STAGES]
    assert [span.name for span in stages] == list(STAGES)
    for stage in stages:
        assert stage.parent is not None
        assert stage.parent.span_id == batch.context.span_id
        assert stage.context.trace_id == batch.context.trace_id
    assert by_name(spans, "db_write").attributes == {"gnn.stage": "db_write", "db.rows": 3}


def test_batch_span_is_a_root_even_when_a_span_is_current(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    snapshot = start_snapshot_span(attributes={"snapshot.id": "s-1"})
    with trace.use_span(snapshot, end_on_exit=True), batch_span([snapshot]):
        pass
    batch = by_name(exporter.get_finished_spans(), BATCH_SPAN)
    assert batch.parent is None
    assert batch.context.trace_id != snapshot.get_span_context().trace_id


def test_publish_span_injects_its_own_context_into_the_headers(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    headers: dict[str, Any] = {"gnn_correlation_id": "c-1"}
    with publish_span("gnn.snapshots", headers, {"snapshot.id": "s-1"}):
        pass  # no broker here: Celery's before_task_publish never fires
    (published,) = exporter.get_finished_spans()
    assert published.name == "publish gnn.snapshots"
    assert published.kind is SpanKind.PRODUCER
    context = trace.get_current_span(snapshot_context(headers)).get_span_context()
    assert context.span_id == published.context.span_id
    assert context.trace_id == published.context.trace_id
    assert headers["gnn_correlation_id"] == "c-1"


def test_a_failing_stage_is_recorded_on_the_stage_and_the_batch(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    snapshot = start_snapshot_span(attributes={"snapshot.id": "s-1"})
    with (
        pytest.raises(RuntimeError, match="out of memory"),
        batch_span([snapshot]),
        stage_span("forward"),
    ):
        raise RuntimeError("out of memory")
    end_snapshot_span(snapshot, outcome="requeued", error=RuntimeError("out of memory"))

    spans = exporter.get_finished_spans()
    for name in ("forward", BATCH_SPAN, SNAPSHOT_SPAN):
        span = by_name(spans, name)
        assert span.status.status_code is StatusCode.ERROR, name
        assert [event.name for event in span.events] == ["exception"], name


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"id": "s-1"},
        {"traceparent": 12},
        {"traceparent": ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]},
        {"traceparent": "not a traceparent"},
        {"traceparent": "00-00000000000000000000000000000000-b7ad6b7169203331-01"},
    ],
)
def test_missing_or_malformed_headers_start_a_new_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter, headers: Any
) -> None:
    context = snapshot_context(headers)
    assert not trace.get_current_span(context).get_span_context().is_valid
    start_snapshot_span(parent_context=context).end()
    (span,) = exporter.get_finished_spans()
    assert span.parent is None


def test_log_lines_carry_trace_and_span_ids_inside_spans(provider: TracerProvider) -> None:
    buffer = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=buffer)
    try:
        logger.info("before")
        snapshot = start_snapshot_span(attributes={"snapshot.id": "s-1"})
        with batch_span([snapshot]) as batch:
            logger.info("in batch")
            with stage_span("forward") as stage:
                logger.info("in stage")
        end_snapshot_span(snapshot)
        logger.info("after")
    finally:
        logger.remove()
    before, in_batch, in_stage, after = [
        json.loads(line) for line in buffer.getvalue().splitlines()
    ]
    for line in (before, after):
        assert "trace_id" not in line
        assert "span_id" not in line
        assert set(line) == {"ts", "level", "message", "logger"}
    for line, span in ((in_batch, batch), (in_stage, stage)):
        context = span.get_span_context()
        assert line["trace_id"] == format_trace_id(context.trace_id)
        assert line["span_id"] == format_span_id(context.span_id)
        assert len(str(line["trace_id"])) == 32
        assert len(str(line["span_id"])) == 16
    assert in_batch["span_id"] != in_stage["span_id"]


def test_exporter_none_installs_nothing_and_helpers_do_nothing() -> None:
    global_provider = trace.get_tracer_provider()
    receivers = len(signals.before_task_publish.receivers)

    assert tracing.configure_tracing(make_settings()) is None

    assert not tracing.tracing_enabled()
    assert trace.get_tracer_provider() is global_provider
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    assert not SQLAlchemyInstrumentor().is_instrumented_by_opentelemetry
    assert len(signals.before_task_publish.receivers) == receivers
    headers: dict[str, Any] = {}
    with publish_span("q", headers) as published:
        assert not published.is_recording()
    assert headers == {}
    snapshot = start_snapshot_span()
    with batch_span([snapshot]) as batch, stage_span("forward") as stage:
        assert not batch.is_recording()
        assert not stage.is_recording()
    end_snapshot_span(snapshot, outcome="diagnosed")


def test_otlp_without_endpoint_raises_naming_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="GNN_OBSERVABILITY__OTLP_ENDPOINT"):
        tracing.configure_tracing(make_settings(tracing_exporter="otlp"))
    assert not tracing.tracing_enabled()
    assert not CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://collector:4318", "http://collector:4318/v1/traces"),
        ("http://collector:4318/", "http://collector:4318/v1/traces"),
        ("https://otel.example.com/v1/traces", "https://otel.example.com/v1/traces"),
        ("http://gateway/otlp", "http://gateway/otlp/v1/traces"),
    ],
)
def test_otlp_endpoint_is_the_collector_or_its_traces_url(endpoint: str, url: str) -> None:
    assert tracing.otlp_traces_url(endpoint) == url


@pytest.mark.parametrize("endpoint", ["", "collector:4318", "grpc://collector:4317"])
def test_otlp_endpoint_must_be_an_http_url(endpoint: str) -> None:
    with pytest.raises(ConfigurationError, match="GNN_OBSERVABILITY__OTLP_ENDPOINT"):
        tracing.otlp_traces_url(endpoint)


class RecordingExporter(SpanExporter):
    """Stands in for the OTLP exporter: records its endpoint and what it was given."""

    instances: list[RecordingExporter] = []  # noqa: RUF012

    def __init__(self, endpoint: str | None = None) -> None:
        self.endpoint = endpoint
        self.spans: list[ReadableSpan] = []
        RecordingExporter.instances.append(self)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_otlp_provider_exports_to_the_traces_url_as_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.exporter.otlp.proto.http import trace_exporter

    RecordingExporter.instances.clear()
    monkeypatch.setattr(trace_exporter, "OTLPSpanExporter", RecordingExporter)
    settings = make_settings(
        tracing_exporter="otlp", otlp_endpoint="http://collector:4318", service_name="gnn-test"
    )
    built = tracing.build_provider(settings.observability)
    assert built is not None
    try:
        built.get_tracer("t").start_span("one").end()
        built.force_flush()
    finally:
        built.shutdown()
    (recording,) = RecordingExporter.instances
    assert recording.endpoint == "http://collector:4318/v1/traces"
    (span,) = recording.spans
    assert span.resource.attributes["service.name"] == "gnn-test"


def test_console_exporter_writes_one_json_line_per_span_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = make_settings(tracing_exporter="console", service_name="gnn-console")
    built = tracing.build_provider(settings.observability)
    assert built is not None
    tracer = built.get_tracer("t")
    with tracer.start_as_current_span("outer"):
        tracer.start_span("inner").end()
    built.shutdown()
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert [line["name"] for line in lines] == ["inner", "outer"]
    assert lines[0]["resource"]["attributes"]["service.name"] == "gnn-console"


def test_configure_is_idempotent_and_shutdown_flushes() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    receivers = len(signals.before_task_publish.receivers)
    settings = make_settings()

    assert tracing.configure_tracing(settings, provider) is provider
    assert tracing.configure_tracing(settings, provider) is provider
    assert tracing.configure_tracing(settings) is provider  # already configured: kept
    assert tracing.tracing_enabled()
    assert len(signals.before_task_publish.receivers) == receivers + 1  # instrumented once

    start_snapshot_span().end()
    assert exporter.get_finished_spans() == ()  # still buffered
    tracing.shutdown_tracing()
    assert [span.name for span in exporter.get_finished_spans()] == [SNAPSHOT_SPAN]
    assert not tracing.tracing_enabled()
    assert len(signals.before_task_publish.receivers) == receivers
    tracing.shutdown_tracing()  # twice is fine
    provider.shutdown()


def test_another_provider_replaces_the_first(exporter: InMemorySpanExporter) -> None:
    first, second = TracerProvider(), TracerProvider()
    second.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure_tracing(make_settings(), first)
    assert tracing.configure_tracing(make_settings(), second) is second
    start_snapshot_span().end()
    assert len(exporter.get_finished_spans()) == 1
    tracing.shutdown_tracing()
    first.shutdown()
    second.shutdown()


def test_sql_statements_of_the_db_write_stage_are_its_children(
    provider: TracerProvider, exporter: InMemorySpanExporter, tmp_path: Path
) -> None:
    given = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    later = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    tracing.configure_tracing(make_settings(), provider, engines=[given])  # already: adds it
    tracing.instrument_engine(later)
    tracing.instrument_engine(later)  # idempotent: one span per statement
    loop = asyncio.new_event_loop()  # the worker's batch thread waits on its loop like this

    async def write(engine: Any) -> None:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))

    try:
        with batch_span([]), stage_span("db_write") as stage:
            loop.run_until_complete(write(given))
            loop.run_until_complete(write(later))
        loop.run_until_complete(given.dispose())
        loop.run_until_complete(later.dispose())
    finally:
        loop.close()

    spans = exporter.get_finished_spans()
    statements = [span for span in spans if span.attributes and "db.statement" in span.attributes]
    assert [span.attributes["db.statement"] for span in statements if span.attributes] == [
        "CREATE TABLE t (x INTEGER)",
        "INSERT INTO t VALUES (1)",
    ] * 2
    for span in statements:
        assert span.parent is not None
        assert span.parent.span_id == stage.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["db.system"] == "sqlite"


def test_console_from_settings_becomes_the_global_provider_and_shutdown_flushes_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    installed: list[Any] = []
    monkeypatch.setattr(trace, "set_tracer_provider", installed.append)  # keep the real one
    settings = make_settings(tracing_exporter="console", service_name="gnn-worker")

    built = tracing.configure_tracing(settings)

    assert built is not None
    assert installed == [built]
    assert CeleryInstrumentor().is_instrumented_by_opentelemetry  # type: ignore[no-untyped-call]
    end_snapshot_span(start_snapshot_span(attributes={"snapshot.id": "s-9"}))
    tracing.shutdown_tracing()  # flushes the batch processor and shuts the provider down
    err = capsys.readouterr().err.splitlines()
    (line,) = [json.loads(text) for text in err if text.startswith('{"name"')]  # not log lines
    assert line["name"] == SNAPSHOT_SPAN
    assert line["attributes"]["snapshot.id"] == "s-9"
    assert line["resource"]["attributes"]["service.name"] == "gnn-worker"
