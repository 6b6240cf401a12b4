"""The worker node's Celery app: the service's configuration (:mod:`service.celery_app`) plus
its tasks, remote-control commands, signal receivers and per-node state.

Per-process resources are opened by ``worker_process_init`` (prefork children and the solo
pool alike) and closed by ``worker_process_shutdown`` or, for the solo pool, by
``worker_shutdown``. The health endpoint lives in the node's main process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celery import signals
from loguru import logger
from prometheus_client import CollectorRegistry

from service.celery_app import ServiceApp, resolve_urls
from service.embedded import EmbeddedRedis
from service.errors import ConfigurationError
from service.logging import bind_context, configure_logging, unbind_context
from service.metrics import ServiceMetrics
from service.queue_collector import QueueCollector
from service.settings import Settings
from service.wire import CORRELATION_HEADER, PUBLISHED_AT_HEADER, TASK_PING
from worker.health import CheckResult, HealthChecks, HealthServer
from worker.resources import ProcessResources

if TYPE_CHECKING:  # the consumer brings torch; producers import this module without it
    from worker.consumer import SnapshotConsumer
    from worker.model_store import DatabaseRegistry

#: Celery's names of loguru's levels it lacks.
_CELERY_LEVELS = {"TRACE": "DEBUG", "SUCCESS": "INFO"}


class WorkerApp(ServiceApp):
    """The app of a worker node: the service's Celery configuration plus this node's state
    (health checks, metrics, the snapshot consumer of this process).

    Args:
        settings: The service settings.
        broker_url: Resolved broker URL.
        backend_url: Resolved result backend URL.
    """

    def __init__(self, settings: Settings, *, broker_url: str, backend_url: str) -> None:
        super().__init__(settings, broker_url=broker_url, backend_url=backend_url)
        self.process_resources: ProcessResources | None = None
        self.health_checks = HealthChecks()
        self.metrics_registry = CollectorRegistry()
        self.metrics = ServiceMetrics(self.metrics_registry)
        self.metrics_registry.register(queue_collector(settings))
        self.health_server: HealthServer | None = None
        self.consumer_ready = False
        self.snapshot_consumer: SnapshotConsumer | None = None
        self.node_name: str | None = None  # the Celery node's name, once the worker starts
        # Signal receivers are held here, weakly connected: they live as long as the app.
        self._receivers: list[Any] = []

    def open_process_resources(self) -> ProcessResources:
        """Create this process's resources (idempotent within one process): the event loop,
        then the snapshot consumer, which loads and warms the model on its own thread."""
        if self.process_resources is None:
            resources = ProcessResources(self.settings, metrics=self.metrics)
            resources.open()
            self.process_resources = resources
            from service.tracing import instrument_engine

            # Before the consumer's thread first connects: adding the tracing hooks to an
            # engine another thread is using races SQLAlchemy's event lists.
            instrument_engine(resources.database.engine)
            if self.settings.worker.consume_snapshots:
                consumer = build_snapshot_consumer(self, resources)
                resources.enter(consumer.stop)
                resources.enter(lambda: setattr(self, "snapshot_consumer", None))
                self.snapshot_consumer = consumer
                consumer.start()
        return self.process_resources

    def start_health_server(self) -> HealthServer:
        """Bind and serve this node's health endpoint (idempotent): the worker command calls
        it before Celery starts, so that a port that is taken ends the command instead of
        leaving a worker that no probe can reach.

        Raises:
            ConfigurationError: The port cannot be bound; the message names the address and
                GNN_WORKER__HEALTH_PORT.
        """
        if self.health_server is None:
            config = self.settings.worker
            server = HealthServer(
                host=config.health_host,
                port=config.health_port,
                checks=self.health_checks,
                registry=self.metrics_registry,
            )
            try:
                server.start()
            except OSError as exc:
                raise ConfigurationError(
                    f"health endpoint cannot listen on {config.health_host}:{config.health_port}"
                    f" ({exc.strerror or exc}): set GNN_WORKER__HEALTH_PORT to a free port "
                    "(0 picks one)",
                    host=config.health_host,
                    port=config.health_port,
                ) from exc
            self.health_server = server
        return self.health_server

    def close_health_server(self) -> None:
        """Stop the health endpoint if it runs."""
        server, self.health_server = self.health_server, None
        if server is not None:
            server.close()

    def close_process_resources(self) -> None:
        """Close this process's resources if it opened any."""
        resources, self.process_resources = self.process_resources, None
        if resources is not None:
            resources.close()


def build_snapshot_consumer(app: WorkerApp, resources: ProcessResources) -> SnapshotConsumer:
    """The snapshot consumer of this process: machines, model routes, model source, breaker
    and outcome store."""
    from service.db.machines import MachineRegistry
    from worker.breaker import CircuitBreaker
    from worker.consumer import SnapshotConsumer
    from worker.machine_book import MachineBook
    from worker.model_router import ModelRouter
    from worker.model_source import ModelSource
    from worker.pipeline import BatchProcessor
    from worker.storage import OutcomeStore

    settings = app.settings
    registry = model_registry(settings, resources)
    source = ModelSource(settings, registry)
    book = MachineBook(MachineRegistry(resources.database, run=resources.run))
    metrics = app.metrics
    router = ModelRouter(
        registry=registry,
        fallback=settings.model.name,
        load=source.load_model,
        machines=book,
        cache_max_bytes=settings.model.cache_max_mb * 1024 * 1024,
        metrics=metrics,
    )
    config = settings.breaker
    breaker = CircuitBreaker(
        failure_threshold=config.failure_threshold,
        failure_rate=config.failure_rate,
        window=config.window,
        min_calls=config.min_calls,
        reset_timeout_s=config.reset_timeout_s,
    )

    def on_breaker(old: Any, new: Any) -> None:
        logger.warning("circuit breaker", old=old.value, new=new.value)
        metrics.record_breaker(old.value, new.value)
        metrics.record_pause("breaker", new.value == "open")

    def prepare() -> None:
        book.start()
        router.refresh(force=True)

    breaker.on_change(on_breaker)
    return SnapshotConsumer(
        app=app,
        settings=settings,
        load_runner=source.load,
        probe_version=source.token,
        processor_factory=lambda runner: BatchProcessor(
            settings=settings,
            runner=runner,
            resolve_spec=book,
            metrics=metrics,
            router=router,
            spec_version=book.version_of,
        ),
        breaker=breaker,
        store=OutcomeStore(resources),
        metrics=metrics,
        prepare=prepare,
        also_check=(book.refresh, router.refresh),
    )


def model_registry(settings: Settings, resources: ProcessResources) -> DatabaseRegistry:
    """The model registry in the service database, on this process's event loop."""
    from worker.model_store import DatabaseRegistry

    return DatabaseRegistry(
        resources.database, run=resources.run, cache_dir=settings.data_dir / "model-cache"
    )


def queue_collector(settings: Settings) -> QueueCollector:
    """Queue gauges read from the broker at scrape time (Redis or the embedded server)."""
    import redis

    @functools.cache
    def connect() -> Any:  # one client (and connection pool) for every scrape
        if settings.broker.url is None:
            return EmbeddedRedis(settings.data_dir).client(db=0)
        return redis.Redis.from_url(settings.broker.url, socket_timeout=2)

    return QueueCollector(connect, [settings.worker.queue], published_header=PUBLISHED_AT_HEADER)


def create_app(settings: Settings) -> WorkerApp:
    """Build a worker node's Celery app for ``settings``."""
    broker_url, backend_url = resolve_urls(settings)
    app = WorkerApp(settings, broker_url=broker_url, backend_url=backend_url)
    _register_tasks(app)
    _register_control(app)
    _connect_signals(app)
    return app


def run_worker(app: WorkerApp, *, hostname: str, queues: Sequence[str] | None = None) -> None:
    """Run ``app``'s worker node in this process until it stops (``gnn-service worker``).

    The health endpoint is bound before anything slow, and before Celery: inside Celery's
    start a taken port would only be logged, and the worker would run with no endpoint to
    probe. Wrong broker credentials end the start (a broker that is down is waited for);
    then migrations run (GNN_DATABASE__MIGRATE_ON_START) and Celery's worker starts with
    the pool of the settings.

    Args:
        app: The worker app (:func:`create_app`).
        hostname: Celery node name.
        queues: Queues Celery's own consumer reads. Default: the control queue only, since
            the snapshot queue is read by the micro-batching consumer.

    Raises:
        ConfigurationError: The health port cannot be bound.
    """
    from service.db.migrate import upgrade

    settings = app.settings
    config = settings.worker
    app.start_health_server()
    try:
        app.check_broker_login()
        if settings.database.migrate_on_start:
            upgrade(settings.database_url)
        argv = [
            "worker",
            f"--pool={config.pool}",
            f"--concurrency={config.concurrency}",
            "--queues=" + ",".join(queues or (config.control_queue,)),
            f"--hostname={hostname}",
            f"--loglevel={_CELERY_LEVELS.get(settings.log_level, settings.log_level)}",
            "--without-mingle",
            "--without-gossip",
        ]
        if config.send_task_events:
            argv.append("--task-events")
        app.worker_main(argv)
    finally:
        app.close_health_server()


def _register_tasks(app: WorkerApp) -> None:
    @app.task(name=TASK_PING, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def ping(self: Any) -> dict[str, Any]:
        """Prove the wiring: broker, worker, per-process resources, result backend."""
        resources = app.process_resources
        logger.info("ping")
        return {
            "pong": True,
            "hostname": self.request.hostname,
            "pid": resources.pid if resources else None,
            "resources": resources.state.value if resources else "none",
        }


def _model_check(app: WorkerApp) -> CheckResult:
    consumer = app.snapshot_consumer
    if consumer is None:
        return CheckResult(False, "no snapshot consumer")
    if consumer.error is not None:
        return CheckResult(False, consumer.error)
    return CheckResult(consumer.ready, "" if consumer.ready else "loading and warming up")


def _consumer_alive(app: WorkerApp) -> CheckResult:
    consumer = app.snapshot_consumer
    if consumer is not None and consumer.failed:
        return CheckResult(False, f"snapshot consumer stopped: {consumer.error or 'ended'}")
    return CheckResult(True)


def _breaker_check(app: WorkerApp) -> CheckResult:
    consumer = app.snapshot_consumer
    if consumer is None:
        return CheckResult(False, "no snapshot consumer")
    state = consumer.breaker.state.value
    return CheckResult(state != "open", f"circuit breaker {state}")


def _store_check(app: WorkerApp, store: str) -> CheckResult:
    """Readiness of one outcome store (``database`` or ``result_backend``)."""
    consumer = app.snapshot_consumer
    if consumer is None:
        return CheckResult(False, "no snapshot consumer")
    down = consumer.database_down if store == "database" else consumer.backend_down
    name = store.replace("_", " ")
    if down:
        return CheckResult(False, f"{name} unavailable: consumption paused")
    return CheckResult(True, f"{name} writes succeeding")


def _register_control(app: WorkerApp) -> None:
    from celery.worker.control import control_command, inspect_command

    snapshot_queue = app.settings.worker.queue

    @inspect_command(name="active_queues")  # type: ignore[untyped-decorator]
    def active_queues(state: Any) -> list[dict[str, Any]]:
        """Remote inspect (replaces Celery's): the queues Celery's consumer reads, and the
        snapshot queue the micro-batching consumer reads, so that Flower lists its depth."""
        consumer = state.consumer.task_consumer
        queues = [dict(q.as_dict(recurse=True)) for q in consumer.queues] if consumer else []
        if app.settings.worker.consume_snapshots and snapshot_queue not in {
            q["name"] for q in queues
        }:
            queues.append(
                {"name": snapshot_queue, "routing_key": snapshot_queue, "durable": True,
                 "exchange": {"name": "", "type": "direct"}, "consumer": "micro-batching"}
            )  # fmt: skip
        return queues

    @control_command(name="gnn_check_model")  # type: ignore[untyped-decorator]
    def gnn_check_model(state: Any) -> dict[str, str]:
        """Remote control: check the registry's active model version before the next batch."""
        consumer = state.consumer.app.snapshot_consumer
        if consumer is None:
            return {"ok": "no snapshot consumer in this process"}
        consumer.request_swap()
        return {"ok": "model check requested"}


def _connect_signals(app: WorkerApp) -> None:
    settings = app.settings
    tokens: dict[str, Any] = {}

    def on_setup_logging(**_: Any) -> None:
        # Connecting this receiver stops Celery from configuring logging itself.
        configure_logging(level=settings.log_level, fmt=settings.log_format)

    def on_worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        app.node_name = sender.hostname  # the snapshot task events carry it (Flower's worker)
        app.health_checks.register(
            "consumer",
            lambda: CheckResult(app.consumer_ready, "" if app.consumer_ready else "starting"),
        )
        if settings.worker.consume_snapshots and settings.worker.pool == "solo":
            app.health_checks.register("model", lambda: _model_check(app))
            app.health_checks.register("breaker", lambda: _breaker_check(app))
            for store in ("database", "result_backend"):
                app.health_checks.register(store, functools.partial(_store_check, app, store))
            app.health_checks.register("consumer", lambda: _consumer_alive(app), liveness=True)
        # `gnn-service worker` started it already; a worker started otherwise (tests) gets it
        # here, where Celery would only log a failure (signal receivers cannot stop a start).
        app.start_health_server()

    def on_worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:
            app.consumer_ready = True
            logger.info("worker ready", queues=[q.name for q in sender.task_consumer.queues])

    def on_process_init(**_: Any) -> None:
        from service.tracing import configure_tracing

        configure_tracing(settings)  # per process: after a fork, spans need their own exporter
        app.open_process_resources()  # traces its engine before the consumer starts

    def on_process_shutdown(**_: Any) -> None:
        from service.tracing import shutdown_tracing

        app.close_process_resources()
        shutdown_tracing()

    def on_worker_shutdown(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        app.consumer_ready = False
        app.close_process_resources()  # the solo pool's resources live in this process
        from service.tracing import shutdown_tracing

        shutdown_tracing()  # flush the last batch's spans
        app.close_health_server()

    def on_task_prerun(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not app:
            return
        request = sender.request
        tokens[task_id or ""] = bind_context(
            task_id=task_id,
            task=sender.name,
            correlation_id=getattr(request, CORRELATION_HEADER, None),
        )

    def on_task_postrun(task_id: str | None = None, **_: Any) -> None:
        token = tokens.pop(task_id or "", None)
        if token is not None:
            unbind_context(token)

    receivers = [
        (signals.setup_logging, on_setup_logging),
        (signals.worker_init, on_worker_init),
        (signals.worker_ready, on_worker_ready),
        (signals.worker_process_init, on_process_init),
        (signals.worker_process_shutdown, on_process_shutdown),
        (signals.worker_shutdown, on_worker_shutdown),
        (signals.task_prerun, on_task_prerun),
        (signals.task_postrun, on_task_postrun),
    ]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=True)
        app._receivers.append(receiver)
