"""OpenTelemetry set-up: the tracer provider and the Celery and SQLAlchemy instrumentation.

``configure_tracing(settings)`` is called once per process at the edge (the worker process's
init hook, the producer's command). With ``GNN_OBSERVABILITY__TRACING_EXPORTER=none`` (the
default) it installs nothing and every span helper in ``service.spans`` stays a cheap no-op;
``console`` writes one JSON object per finished span to stderr; ``otlp`` sends spans over
OTLP/HTTP to ``GNN_OBSERVABILITY__OTLP_ENDPOINT``. It instruments Celery and SQLAlchemy, and
``shutdown_tracing()`` flushes what is buffered.

The spans themselves (publish, snapshot, batch, stage) and how their context travels from
the producer to the worker are in ``service.spans``, which reads the tracer installed here.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from loguru import logger
from opentelemetry import trace

from service.errors import ConfigurationError
from service.settings import mask_url

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

    from service.settings import ObservabilitySettings, Settings

#: Name (instrumentation scope) of the service's own tracer.
TRACER_NAME: Final = "gnn-service"

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


def active_tracer() -> trace.Tracer | None:
    """Our tracer; else the global provider's when an application installed one; else None:
    tracing is off and the span helpers (:mod:`service.spans`) skip all work."""
    state = _state  # read once: shutdown_tracing may clear it from another thread
    if state is not None:
        return state.tracer
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        return None
    return trace.get_tracer(TRACER_NAME)


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
