"""One trace from the producer's publish span to the worker's database write: the producer
exports in memory, the worker (a real process) exports to the console, and the spans are
joined by trace id, parent and links."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pipeline_helpers import demo_snapshots, outcomes

from producer.client import ProducerClient
from schemas.result import Diagnosed
from service.launcher import WorkerProcess
from service.settings import Settings
from service.tracing import configure_tracing, shutdown_tracing

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    configure_tracing(Settings(), provider)
    yield exporter
    shutdown_tracing()


def _console_spans(text: str) -> list[dict[str, Any]]:
    spans = []
    for line in text.splitlines():
        if line.startswith("{") and '"context"' in line:
            spans.append(json.loads(line))
    return spans


def test_one_trace_runs_from_publish_to_the_database_write(
    exported: InMemorySpanExporter, start_worker: StartWorker, client: ProducerClient
) -> None:
    worker = start_worker(GNN_OBSERVABILITY__TRACING_EXPORTER="console")
    snapshot = demo_snapshots(1, "trace")[0]
    client.submit(snapshot)
    assert isinstance(outcomes(client, [snapshot.snapshot_id])[snapshot.snapshot_id], Diagnosed)
    assert worker.stop() == 0  # a warm shutdown flushes the worker's spans
    publish = [s for s in exported.get_finished_spans() if s.kind is SpanKind.PRODUCER]
    ours = [
        s
        for s in publish
        if s.attributes and s.attributes.get("snapshot.id") == snapshot.snapshot_id
    ]
    assert ours, [s.name for s in exported.get_finished_spans()]
    trace_id = f"0x{ours[0].context.trace_id:032x}"

    spans = _console_spans(worker.log_path.read_text())
    by_id = {span["context"]["span_id"]: span for span in spans}
    snapshot_spans = [
        s for s in spans
        if s["name"] == "gnn.snapshot" and s["attributes"].get("snapshot.id") == snapshot.snapshot_id
    ]  # fmt: skip
    assert len(snapshot_spans) == 1
    snapshot_span = snapshot_spans[0]
    assert snapshot_span["context"]["trace_id"] == trace_id  # joined the producer's trace
    assert snapshot_span["attributes"]["snapshot.outcome"] == "diagnosed"
    assert snapshot_span["attributes"]["system.id"] == snapshot.system_id

    batches = [
        s for s in spans
        if s["name"] == "gnn.batch"
        and any(link["context"]["span_id"] == snapshot_span["context"]["span_id"] for link in s["links"])
    ]  # fmt: skip
    assert len(batches) == 1  # one batch span, linked to the snapshot it served
    batch_id = batches[0]["context"]["span_id"]
    stages = {s["name"] for s in spans if s.get("parent_id") == batch_id}
    assert {"db_write", "result_backend"} <= stages
    features = [s for s in spans if s["name"] in {"features", "forward", "postprocess"}]
    assert {
        s["name"]
        for s in features
        if by_id.get(s.get("parent_id") or "", {}).get("context", {}).get("span_id") == batch_id
    } >= {"features", "forward", "postprocess"}
    db_write = next(s for s in spans if s["name"] == "db_write" and s["parent_id"] == batch_id)
    sql = [s for s in spans if s.get("parent_id") == db_write["context"]["span_id"]]
    assert any("INSERT" in s["name"] or "diagnoses" in s["name"] for s in sql), [
        s["name"] for s in sql
    ]
