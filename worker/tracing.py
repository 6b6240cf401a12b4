"""OpenTelemetry tracing: one trace per snapshot, from the producer's publish to the database.

``configure_tracing(settings)`` is called once per process at the edge (the worker process's
init hook, the producer's command). With ``GNN_OBSERVABILITY__TRACING_EXPORTER=none`` (the
default) it installs nothing and every helper here stays a cheap no-op; ``console`` writes
one JSON object per finished span to stderr; ``otlp`` sends spans over OTLP/HTTP to
``GNN_OBSERVABILITY__OTLP_ENDPOINT``. It instruments Celery and SQLAlchemy, and
``shutdown_tracing()`` flushes what is buffered.

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
"""

from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from loguru import logger
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from worker.errors import ConfigurationError
from worker.settings import mask_url

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from worker.settings import ObservabilitySettings, Settings

#: Name (instrumentation scope) of the service's own tracer.
TRACER_NAME: Final = "gnn-service"

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

#: The environment variables named in configuration errors.
ENV_EXPORTER: Final = "GNN_OBSERVABILITY__TRACING_EXPORTER"
ENV_OTLP_ENDPOINT: Final = "GNN_OBSERVABILITY__OTLP_ENDPOINT"

_OTLP_TRACES_PATH: Final = "/v1/traces"


@dataclass
class _State:
    provider: TracerProvider
    tracer: trace.Tracer
    owns_provider: bool
    instrumentors: list[Any] = field(default_factory=list)
    sqlalchemy_tracer: trace.Tracer | None = None
    sqlalchemy_counter: Any = None


_lock = threading.RLock()
_state: _State | None = None


# configuration ---------------------------------------------------------------------------


def configure_tracing(
    settings: Settings,
    provider: TracerProvider | None = None,
    *,
    engines: Iterable[AsyncEngine | Engine] = (),
) -> TracerProvider | None:
    """Install tracing for this process; idempotent.

    Args:
        settings: ``settings.observability`` picks the exporter and the service name.
        provider: A tracer provider to use as is (tests, or an application that owns its
            OpenTelemetry set-up); the exporter setting is then not consulted and the global
            provider is left alone. Without it one is built from the settings and made the
            process's global provider.
        engines: SQLAlchemy engines (async or sync) to trace now; engines created later go
            through ``instrument_engine``. Engines created after this call by module-level
            ``sqlalchemy.create_engine`` / ``sqlalchemy.ext.asyncio.create_async_engine``
            are traced too (the instrumentation wraps those functions).

    Returns:
        The provider in use, or None when the exporter is ``none`` and no provider was
        given: then nothing is installed and tracing stays a no-op.

    Raises:
        ConfigurationError: ``otlp`` without ``GNN_OBSERVABILITY__OTLP_ENDPOINT``, or an
            endpoint that is not an http(s) URL.
    """
    global _state  # noqa: PLW0603  # one tracing set-up per process
    with _lock:
        if _state is not None:
            if provider is None or provider is _state.provider:
                for engine in engines:
                    instrument_engine(engine)
                return _state.provider
            _teardown(_state)  # another provider: start over with it
            _state = None
        owns = provider is None
        if provider is None:
            provider = build_provider(settings.observability)
            if provider is None:
                return None
            if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
                trace.set_tracer_provider(provider)
            observability = settings.observability
            endpoint = observability.otlp_endpoint
            logger.info(
                "tracing on",
                exporter=observability.tracing_exporter,
                service_name=observability.service_name,
                endpoint=mask_url(endpoint)
                if endpoint and observability.tracing_exporter == "otlp"
                else None,
            )
        state = _State(
            provider=provider,
            tracer=provider.get_tracer(TRACER_NAME),
            owns_provider=owns,
        )
        _instrument_celery(state)
        _instrument_sqlalchemy(state, list(engines))
        _state = state
        return provider


def build_provider(observability: ObservabilitySettings) -> TracerProvider | None:
    """A tracer provider exporting as ``observability`` says (None for ``none``); installs
    nothing.

    Raises:
        ConfigurationError: ``otlp`` without a usable endpoint.
    """
    exporter_name = observability.tracing_exporter
    if exporter_name == "none":
        return None
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if exporter_name == "otlp":
        endpoint = otlp_traces_url(observability.otlp_endpoint)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=endpoint)
    else:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter(out=sys.stderr, formatter=_one_json_line)
    resource = Resource.create({SERVICE_NAME: observability.service_name})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def otlp_traces_url(endpoint: str | None) -> str:
    """The OTLP/HTTP traces URL for ``endpoint``: a collector's base URL
    (``http://collector:4318``) gets ``/v1/traces`` appended; a full URL is kept.

    Raises:
        ConfigurationError: No endpoint, or not an http(s) URL.
    """
    if endpoint is None or not endpoint.strip():
        raise ConfigurationError(
            f"{ENV_EXPORTER}=otlp needs {ENV_OTLP_ENDPOINT}, the OTLP/HTTP collector URL "
            "(e.g. http://otel-collector:4318)"
        )
    endpoint = endpoint.strip()
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"{ENV_OTLP_ENDPOINT} must be an http(s) URL of an OTLP/HTTP collector "
            "(e.g. http://otel-collector:4318)"
        )
    if parts.path.rstrip("/").endswith(_OTLP_TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + _OTLP_TRACES_PATH


def instrument_engine(engine: AsyncEngine | Engine) -> None:
    """Trace the statements of ``engine`` (async or sync); a no-op without tracing or for an
    engine already traced."""
    with _lock:
        state = _state
        if state is None or state.sqlalchemy_tracer is None:
            return
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

        sync_engine = _sync_engine(engine)
        if _engine_traced(sync_engine):
            return
        EngineTracer(  # type: ignore[no-untyped-call]
            state.sqlalchemy_tracer, sync_engine, state.sqlalchemy_counter
        )


def shutdown_tracing() -> None:
    """Flush buffered spans, remove the instrumentation; safe to call twice.

    A provider built by ``configure_tracing`` is shut down; one passed in is only flushed.
    """
    global _state
    with _lock:
        state, _state = _state, None
        if state is not None:
            _teardown(state)


def tracing_enabled() -> bool:
    """Whether ``configure_tracing`` installed a provider in this process."""
    return _state is not None


def _teardown(state: _State) -> None:
    for instrumentor in reversed(state.instrumentors):
        instrumentor.uninstrument()
    state.instrumentors.clear()
    state.provider.force_flush()
    if state.owns_provider:
        state.provider.shutdown()


def _instrument_celery(state: _State) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    _finalize_current_celery_app()
    instrumentor = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()  # someone else's set-up: ours replaces it
    instrumentor.instrument(tracer_provider=state.provider)
    state.instrumentors.append(instrumentor)


def _finalize_current_celery_app() -> None:
    """Finalize Celery's current app now, once, quietly.

    On every publish the Celery instrumentation looks the task up by name in
    ``celery.current_app.tasks``: in a producer that is Celery's default app (``ServiceApp``
    is never made current), and that first look finalizes it, which registers there the
    shared tasks of every ``ServiceApp`` created so far in the process, warning
    ``DuplicateTaskNameWarning`` for each ``gnn.ping`` after the first. The default app
    never runs a task, so those duplicates are harmless; finalizing it here keeps the
    warning out of the publish path (where a warnings-as-errors filter would make the
    instrumentation's receiver fail and lose its span).
    """
    from celery import current_app
    from celery.exceptions import CeleryWarning

    app = current_app._get_current_object()
    if app.finalized or not app.autofinalize:
        return
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Task name .* is already registered", category=CeleryWarning
        )
        app.finalize(auto=True)


def _instrument_sqlalchemy(state: _State, engines: Sequence[AsyncEngine | Engine]) -> None:
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.instrumentation.sqlalchemy.version import __version__

    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    sync_engines = [_sync_engine(engine) for engine in engines]
    # skip_dep_check: the instrumentation declares "sqlalchemy < 2.1" while we run 2.1;
    # without it instrument() logs the conflict and silently instruments nothing.
    instrumentor.instrument(
        tracer_provider=state.provider, engines=sync_engines or None, skip_dep_check=True
    )
    state.instrumentors.append(instrumentor)
    # The same tracer and (no-op) connection gauge serve engines instrumented later.
    from opentelemetry.metrics import NoOpMeterProvider

    state.sqlalchemy_tracer = state.provider.get_tracer(
        "opentelemetry.instrumentation.sqlalchemy", __version__
    )
    state.sqlalchemy_counter = (
        NoOpMeterProvider()
        .get_meter("opentelemetry.instrumentation.sqlalchemy")
        .create_up_down_counter("db.client.connections.usage")
    )


def _sync_engine(engine: AsyncEngine | Engine) -> Engine:
    return cast("Engine", getattr(engine, "sync_engine", engine))


def _engine_traced(engine: Engine) -> bool:
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    registered = getattr(EngineTracer, "_remove_event_listener_params", [])
    return any(ref() is engine for ref, _identifier, _func in registered)


def _one_json_line(span: ReadableSpan) -> str:
    return str(span.to_json(indent=None)) + "\n"


def _tracer() -> trace.Tracer | None:
    """Our tracer; else the global provider's when an application installed one; else None:
    tracing is off and the helpers skip all work."""
    state = _state
    if state is not None:
        return state.tracer
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    return trace.get_tracer(TRACER_NAME)


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
    tracer = _tracer()
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
    if not headers or not isinstance(headers, Mapping) or _tracer() is None:
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
    tracer = _tracer()
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
    tracer = _tracer()
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
    tracer = _tracer()
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
