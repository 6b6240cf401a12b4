"""Span helpers on the hot path: one trace per snapshot, from the producer's publish to the
database.

Every helper here is a cheap no-op until ``service.tracing.configure_tracing`` has installed a
provider (or an application installed a global one): then they open spans on it.

How the context travels:

- Producer: ``publish_span`` opens a PRODUCER span around the publish and injects its context
  into the message headers. Celery's instrumentation then opens its own
  ``apply_async/<task>`` span (a child) on ``before_task_publish`` and overwrites the header
  with its context. The header is W3C ``traceparent`` (plus ``tracestate`` and ``baggage``
  when set) among the task message's *headers* (``message.headers`` on a raw kombu
  message, next to ``id`` and ``task``; never in ``message.properties``).
- Worker (the batch loop, not Celery's task execution): ``snapshot_context(message.headers)``
  recovers that context, ``start_snapshot_span`` opens one span per snapshot as its child,
  ``batch_span`` opens ONE span per micro-batch with a link to every snapshot span it serves
  (and links each snapshot span back to it), and ``stage_span`` times each stage (features,
  forward, postprocess, db_write, result_backend) under the batch span. SQL statements run
  inside ``stage_span("db_write")`` become its children.

Spans are ended by the caller (``end_snapshot_span``) once the snapshot's outcome is stored,
so a snapshot's span covers its time from receipt to the database write and the ack.

The span, stage and attribute names are the constants below; ``service.tracing`` owns the
provider and the instrumentation and imports nothing from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from service import tracing

# Span names.
SNAPSHOT_SPAN: Final = "gnn.snapshot"
BATCH_SPAN: Final = "gnn.batch"
# Stage span names, in the order a batch runs them.
STAGE_FEATURES: Final = "features"
STAGE_FORWARD: Final = "forward"
STAGE_POSTPROCESS: Final = "postprocess"
STAGE_DB_WRITE: Final = "db_write"
STAGE_RESULT_BACKEND: Final = "result_backend"
STAGES: Final = (
    STAGE_FEATURES,
    STAGE_FORWARD,
    STAGE_POSTPROCESS,
    STAGE_DB_WRITE,
    STAGE_RESULT_BACKEND,
)

# Attribute names.
ATTR_SNAPSHOT_ID: Final = "snapshot.id"
ATTR_SYSTEM_ID: Final = "system.id"
ATTR_CORRELATION_ID: Final = "correlation.id"
ATTR_SNAPSHOT_OUTCOME: Final = "snapshot.outcome"
ATTR_BATCH_SIZE: Final = "batch.size"
ATTR_BATCH_NODES: Final = "batch.nodes"
ATTR_MODEL_VERSION: Final = "model.version"
ATTR_STAGE: Final = "gnn.stage"
ATTR_MESSAGE_ID: Final = "messaging.message.id"
ATTR_DESTINATION: Final = "messaging.destination.name"
ATTR_MESSAGING_SYSTEM: Final = "messaging.system"
ATTR_OPERATION: Final = "messaging.operation.type"


# producer side ---------------------------------------------------------------------------


@contextlib.contextmanager
def publish_span(
    queue: str,
    headers: MutableMapping[str, Any],
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Iterator[Span]:
    """A PRODUCER span around one publish; injects its context into ``headers``.

    Pass the dict of headers the message is sent with. When Celery is instrumented its
    ``apply_async`` span, a child of this one, replaces the injected header on the way out;
    either way the worker's snapshot span joins this trace. An exception raised inside is
    recorded on the span.
    """
    tracer = tracing.active_tracer()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    from opentelemetry.propagate import inject

    span_attributes = {
        ATTR_MESSAGING_SYSTEM: "redis",
        ATTR_OPERATION: "send",
        ATTR_DESTINATION: queue,
        **(attributes or {}),
    }
    with tracer.start_as_current_span(
        f"publish {queue}", kind=SpanKind.PRODUCER, attributes=_clean(span_attributes)
    ) as span:
        inject(headers)
        yield span


# worker side -----------------------------------------------------------------------------


class _HeaderGetter(Getter[Mapping[str, Any]]):
    """Reads propagation headers from an untrusted message: strings only."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key in carrier if isinstance(key, str)]


_HEADER_GETTER: Final = _HeaderGetter()


def snapshot_context(headers: Mapping[str, Any] | None) -> Context:
    """The producer's trace context from a message's headers (``message.headers`` of a kombu
    message: W3C ``traceparent``, ``tracestate``, ``baggage``).

    Never raises: missing, malformed or non-string headers give an empty context, so the
    snapshot span starts a trace of its own. With tracing off it is always empty (no work).
    """
    if not headers or not isinstance(headers, Mapping) or tracing.active_tracer() is None:
        return Context()
    from opentelemetry.propagate import extract

    try:
        return extract(headers, context=Context(), getter=_HEADER_GETTER)
    except Exception:  # an untrusted header must never take the batch loop down
        return Context()


def start_snapshot_span(
    name: str = SNAPSHOT_SPAN,
    parent_context: Context | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> Span:
    """Start one snapshot's span, a child of the producer's publish span.

    Args:
        name: Span name (``gnn.snapshot``).
        parent_context: ``snapshot_context(message.headers)``; an empty ``Context()`` starts
            a new trace; None uses the current context.
        attributes: ``snapshot.id``, ``system.id``, ``correlation.id``, ... (None values are
            dropped).

    The span is not made current; end it with ``end_snapshot_span`` once its outcome is
    stored and acknowledged (or requeued).
    """
    tracer = tracing.active_tracer()
    if tracer is None:
        return trace.INVALID_SPAN
    return tracer.start_span(
        name,
        context=parent_context,
        kind=SpanKind.CONSUMER,
        attributes=_clean({ATTR_OPERATION: "process", **(attributes or {})}),
    )


def end_snapshot_span(
    span: Span,
    *,
    outcome: str | None = None,
    error: BaseException | str | None = None,
    attributes: Mapping[str, AttributeValue | None] | None = None,
) -> None:
    """Record a snapshot's outcome (``diagnosed``, ``expired``, ``dead_lettered``,
    ``requeued``, ...) and an error if any, then end its span."""
    if span.is_recording():
        extra = dict(attributes or {})
        if outcome is not None:
            extra[ATTR_SNAPSHOT_OUTCOME] = outcome
        if extra:
            span.set_attributes(_clean(extra))
        if isinstance(error, BaseException):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        elif error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
    span.end()


@contextlib.contextmanager
def batch_span(
    snapshot_spans: Iterable[Span],
    attributes: Mapping[str, AttributeValue | None] | None = None,
    *,
    name: str = BATCH_SPAN,
) -> Iterator[Span]:
    """ONE span for a micro-batch, current inside the block, linked to every snapshot span.

    The batch span starts a trace of its own (one forward serves snapshots of many traces):
    it carries a link to each snapshot span, and each snapshot span gets a link back to it,
    so a trace viewer leads from a snapshot to the batch's stages and back. ``batch.size``
    is set to the number of snapshot spans unless ``attributes`` gives it. An exception
    raised inside is recorded on the span.
    """
    tracer = tracing.active_tracer()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    spans = list(snapshot_spans)
    links = [
        Link(span.get_span_context(), _link_attributes(span))
        for span in spans
        if span.get_span_context().is_valid
    ]
    span_attributes: dict[str, AttributeValue | None] = {ATTR_BATCH_SIZE: len(spans)}
    span_attributes.update(attributes or {})
    with tracer.start_as_current_span(
        name,
        context=Context(),  # a root: never a child of whatever happens to be current
        kind=SpanKind.INTERNAL,
        links=links,
        attributes=_clean(span_attributes),
    ) as span:
        batch_context = span.get_span_context()
        if batch_context.is_valid:
            for snapshot in spans:
                if snapshot.is_recording():
                    snapshot.add_link(batch_context, {"gnn.link": "batch"})
        yield span


@contextlib.contextmanager
def stage_span(name: str, /, **attributes: AttributeValue | None) -> Iterator[Span]:
    """A span for one stage of the current batch (``features``, ``forward``,
    ``postprocess``, ``db_write``, ``result_backend``), current inside the block.

    Dotted attribute names pass as ``**{"db.rows": 3}``. An exception raised inside is
    recorded on the span.
    """
    tracer = tracing.active_tracer()
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    with tracer.start_as_current_span(
        name, attributes=_clean({ATTR_STAGE: name, **attributes})
    ) as span:
        yield span


def _link_attributes(span: Span) -> dict[str, AttributeValue]:
    attributes = getattr(span, "attributes", None)
    if isinstance(attributes, Mapping):
        snapshot_id = attributes.get(ATTR_SNAPSHOT_ID)
        if isinstance(snapshot_id, str):
            return {ATTR_SNAPSHOT_ID: snapshot_id}
    return {}


def _clean(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {key: value for key, value in attributes.items() if value is not None}
