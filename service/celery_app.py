"""The Celery app producers and workers share, configured from Settings; nothing is done at
import time.

``ServiceApp(settings, ...)`` carries the configuration that encodes the service's delivery
guarantees (see docs/architecture.md, "Delivery"):

- JSON only, for tasks and results; pickle is refused.
- ``task_acks_late`` with ``task_reject_on_worker_lost``: a message is acknowledged after its
  work is done, and requeued if the process running it dies. With idempotent writes this
  gives each snapshot exactly one stored diagnosis.
- A bounded prefetch, so that backlog stays visible in the queue for autoscalers.
- A visibility timeout longer than any batch can run (enforced by Settings), so that a
  vanished worker's messages are redelivered, and running ones are not.

Producers use it as is (:func:`create_service_app`); a worker process adds its tasks, signals
and per-node state in :mod:`worker.app`.
"""

from __future__ import annotations

from celery import Celery

from service.embedded import EmbeddedRedis
from service.errors import BrokerUnavailable
from service.settings import Settings, mask_url
from service.signing import enable_signing
from service.wire import TASK_DIAGNOSE, TASK_PING

__all__ = ["TASK_DIAGNOSE", "TASK_PING", "ServiceApp", "create_service_app", "resolve_urls"]


class ServiceApp(Celery):  # type: ignore[misc]  # Celery is untyped
    """A Celery app configured from the service's settings.

    Args:
        settings: The service settings.
        broker_url: Resolved broker URL.
        backend_url: Resolved result backend URL.
    """

    def __init__(self, settings: Settings, *, broker_url: str, backend_url: str) -> None:
        super().__init__(
            "gnn_service", broker=broker_url, backend=backend_url, set_as_current=False
        )
        self.settings = settings
        _configure(self, settings)

    def __repr__(self) -> str:
        return f"ServiceApp(broker={mask_url(str(self.conf.broker_url))!r})"

    def check_broker_login(self) -> None:
        """Connect to the broker once, so that a broker refusing the credentials ends a
        worker's start with one line instead of Celery's retries. A broker that cannot be
        reached yet is left to Celery, which waits for it (``broker_connection_retry_on_
        startup``): it may be starting too, while wrong credentials do not heal by waiting.

        Raises:
            BrokerUnavailable: The broker refused the login or the commands (Redis ACL).
        """
        from kombu.exceptions import OperationalError
        from redis.exceptions import AuthenticationError, ResponseError

        connection = self.connection_for_write()
        try:
            connection.ensure_connection(max_retries=0)
        except OperationalError as exc:
            if isinstance(exc.__cause__, AuthenticationError | ResponseError):
                raise BrokerUnavailable(
                    f"broker {mask_url(str(self.conf.broker_url))} refused the login: {exc}"
                ) from exc
        finally:
            connection.release()


def resolve_urls(settings: Settings) -> tuple[str, str]:
    """Broker and result backend URLs; starts the embedded redis-server if one is needed."""
    broker, backend = settings.broker.url, settings.result_backend.url
    if broker is None or backend is None:
        embedded = EmbeddedRedis(settings.data_dir)
        embedded.ensure_running()
        broker = broker or embedded.broker_url
        backend = backend or embedded.backend_url
    return broker, backend


def create_service_app(settings: Settings) -> ServiceApp:
    """The app a producer publishes and polls with (no tasks registered)."""
    broker_url, backend_url = resolve_urls(settings)
    return ServiceApp(settings, broker_url=broker_url, backend_url=backend_url)


def _configure(app: ServiceApp, settings: Settings) -> None:
    worker = settings.worker
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=worker.prefetch_multiplier,
        broker_transport_options={"visibility_timeout": settings.broker.visibility_timeout_s},
        result_backend_transport_options={
            "visibility_timeout": settings.broker.visibility_timeout_s
        },
        # A result backend that hangs rather than refuses must not hold a batch past its
        # settle budget: each Redis call of the backend gives up after it.
        redis_socket_timeout=worker.settle_budget_s,
        redis_socket_connect_timeout=settings.broker.connect_timeout_s,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.broker.connect_timeout_s,
        result_expires=settings.result_backend.expires_s,
        result_extended=True,
        task_default_queue=worker.control_queue,
        task_routes={
            TASK_PING: {"queue": worker.control_queue},
            TASK_DIAGNOSE: {"queue": worker.queue},
        },
        task_time_limit=worker.batch_hard_time_limit_s,
        task_soft_time_limit=worker.batch_soft_time_limit_s,
        worker_proc_alive_timeout=worker.process_init_timeout_s,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=worker.send_task_events,
        task_send_sent_event=worker.send_task_events,
        enable_utc=True,
        timezone="UTC",
    )
    enable_signing(app, settings.security)  # producers sign when a key is configured
    enable_signing(app, settings.security)  # producers sign when a key is configured
