"""Service settings: one pydantic-settings class, read once at the edge and passed in.

Every limit of the service is a field here with a documented default. Values come from,
highest precedence first: keyword arguments, environment variables (prefix ``GNN_``,
``__`` between nested names, e.g. ``GNN_BATCHING__MAX_WAIT_MS``), a ``.env`` file,
secret files (``GNN_<NAME>_FILE=/run/secrets/...`` holds the path of a file whose content,
without its trailing newline, is the value of ``GNN_<NAME>``: for URLs with passwords and the
Flower password, as Docker and Kubernetes secrets mount them), then the defaults below.
Nothing is read until ``Settings()`` is called.

With no settings at all the service runs on the embedded default: everything lives under
``data_dir`` (SQLite database, an embedded redis-server on a unix socket for the broker and
the result backend). Setting ``GNN_BROKER__URL``, ``GNN_RESULT_BACKEND__URL`` and
``GNN_DATABASE__URL`` switches to Redis and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from service.settings_sources import (
    ENV_NESTED_DELIMITER,
    ENV_PREFIX,
    PlainEnvSource,
    SecretFileSource,
)

_MASK = "***"


class SettingsSection(BaseModel):
    """One nested group of settings (``GNN_<GROUP>__<NAME>``): unknown keys refused, frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BrokerSettings(SettingsSection):
    """Where snapshots are queued."""

    url: str | None = Field(
        default=None,
        repr=False,  # may hold a password; Settings.masked() shows it masked
        description="Broker URL, e.g. redis://host:6379/0. None: the embedded redis-server.",
    )
    visibility_timeout_s: int = Field(
        default=30,
        ge=2,
        le=86_400,
        description="Seconds before a delivered but unacknowledged message is redelivered "
        "after its worker vanished. A live worker marks what it holds as delivered again at "
        "every batch, so this must only exceed one batch's hard time limit, settle budget "
        "and longest wait (checked at start).",
    )
    restore_check_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Seconds between a worker's scans for messages whose worker vanished "
        "(delivered, unacknowledged, older than the visibility timeout) to put them back on "
        "the queue; every running worker scans, so a killed worker's messages come back "
        "within visibility_timeout_s plus this.",
    )
    restore_scan_limit: int = Field(
        default=1000,
        ge=1,
        le=1_000_000,
        description="Most messages one scan puts back; the next scan takes the rest.",
    )
    connect_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to wait for a broker connection."
    )
    publish_retries: int = Field(
        default=5, ge=0, le=100, description="Producer retries on broker connection errors."
    )


class ResultBackendSettings(SettingsSection):
    """Where pollers read each snapshot's outcome."""

    url: str | None = Field(
        default=None,
        repr=False,
        description="Result backend URL. None: the same server as the broker.",
    )
    expires_s: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="Seconds a result is kept."
    )


class DatabaseSettings(SettingsSection):
    """Where diagnoses are stored."""

    url: str | None = Field(
        default=None,
        repr=False,
        description="SQLAlchemy async URL (postgresql+asyncpg://... or sqlite+aiosqlite:///...)."
        " None: a SQLite file in the data directory.",
    )
    pool_size: int = Field(
        default=5, ge=1, le=100, description="Connections kept open per process."
    )
    max_overflow: int = Field(
        default=5, ge=0, le=100, description="Extra connections allowed beyond pool_size."
    )
    pool_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to wait for a free connection."
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply migrations when a worker starts."
    )
    pool_recycle_s: float = Field(
        default=1800.0, gt=0, le=86400, description="Seconds after which a connection is renewed."
    )
    statement_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Seconds one statement may run (PostgreSQL)."
    )
    retry_attempts: int = Field(
        default=6, ge=1, le=100, description="Attempts per write on transient database errors."
    )
    retry_base_delay_s: float = Field(
        default=0.1, gt=0, le=60, description="First retry delay; doubles per attempt, jittered."
    )
    retry_max_delay_s: float = Field(
        default=5.0, gt=0, le=300, description="Longest delay between two attempts."
    )
    retry_max_total_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Time bound on one database operation's retries outside the batch loop "
        "(CLI, registry); each attempt runs under the time left. A batch's write is bounded "
        "by GNN_WORKER__SETTLE_BUDGET_S instead.",
    )
    outage_probe_interval_s: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between probes while the database is down."
    )


class WorkerSettings(SettingsSection):
    """How a worker node consumes."""

    queue: str = Field(
        default="gnn.snapshots",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Queue the snapshots are published to and consumed from.",
    )
    control_queue: str = Field(
        default="gnn.control",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Queue for small service tasks (ping).",
    )
    pool: Literal["solo", "prefork", "threads"] = Field(
        default="solo",
        description="solo: the batch loop and the model share the node's one process; "
        "scale by running more worker processes.",
    )
    concurrency: int = Field(
        default=1, ge=1, le=64, description="Processes or threads of a prefork/threads pool."
    )
    prefetch_multiplier: int = Field(
        default=4,
        ge=1,
        le=1024,
        description="Unacknowledged messages a process may hold, per unit of concurrency.",
    )
    health_host: str = Field(
        default="127.0.0.1", description="Interface of the health endpoint (0.0.0.0 in pods)."
    )
    health_port: int = Field(
        default=9464,
        ge=0,
        le=65_535,
        description="Port of /healthz, /readyz and /metrics (0 picks a free port).",
    )
    process_init_timeout_s: float = Field(
        default=60.0,
        ge=4,
        le=600,
        description="Seconds a worker process may take to open its resources (model warm-up).",
    )
    batch_soft_time_limit_s: float = Field(
        default=5.0,
        gt=0,
        le=3_600,
        description="Seconds a batch's compute (decode, features, model, postprocess) may "
        "run before a warning is logged.",
    )
    batch_hard_time_limit_s: float = Field(
        default=15.0,
        gt=0,
        le=3_600,
        description="Seconds a batch's compute may run before the process is ended (its "
        "messages go to other workers); storing the outcomes has its own budget.",
    )
    settle_budget_s: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="Seconds to store one batch's outcomes in the database and the result "
        "backend, retries included; each database attempt runs under the time left. When it "
        "is spent the batch is requeued unacknowledged and the worker stops consuming until "
        "the store that failed answers again.",
    )
    max_consumer_restarts: int = Field(
        default=5,
        ge=0,
        le=1_000,
        description="Restarts of the snapshot consumer after an unexpected error within ten "
        "minutes; past it the process exits (status 71) so that its supervisor restarts it.",
    )
    send_task_events: bool = Field(default=True, description="Task events for Flower.")
    freeze_heap: bool = Field(
        default=True,
        description="After a model is loaded (at start and after each swap), move every "
        "live object out of the garbage collector's sight (gc.freeze), so that the batch "
        "loop's collections walk only new objects (1.07-1.3x the drain rate, docs/benchmarks.md).",
    )
    consume_snapshots: bool = Field(
        default=True,
        description="Run the micro-batching snapshot consumer (off: control tasks only).",
    )
    mode: Literal["batched", "naive"] = Field(
        default="batched",
        description="naive: one plain Celery task per snapshot, the design this service "
        "replaces, kept only as the pipeline benchmark's baseline.",
    )

    @model_validator(mode="after")
    def _limits_ordered(self) -> WorkerSettings:
        if self.batch_soft_time_limit_s >= self.batch_hard_time_limit_s:
            raise ValueError(
                f"batch_soft_time_limit_s ({self.batch_soft_time_limit_s}) must be below "
                f"batch_hard_time_limit_s ({self.batch_hard_time_limit_s})"
            )
        return self


class BatchingSettings(SettingsSection):
    """When a micro-batch closes."""

    max_wait_ms: int = Field(
        default=50, ge=1, le=10_000, description="Oldest message's longest wait in a batch."
    )
    max_batch_snapshots: int = Field(
        default=32, ge=1, le=4_096, description="Snapshots in one batch."
    )
    max_batch_nodes: int = Field(
        default=8_192, ge=1, le=1_000_000, description="Sensor nodes in one batch, all graphs."
    )
    poll_interval_ms: float = Field(
        default=5.0,
        gt=0,
        le=1_000,
        description="Milliseconds between fetches while the queue is empty (each fetch moves "
        "messages into the broker's delivered records atomically; there is no blocking pop).",
    )


class ProducerSettings(SettingsSection):
    """How producers publish: backpressure on queue depth."""

    max_queue_depth: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Queue depth above which submit waits or raises QueueFull.",
    )
    backpressure: Literal["wait", "raise"] = Field(
        default="wait", description="At max_queue_depth: wait for room, or raise QueueFull."
    )
    backpressure_timeout_s: float = Field(
        default=30.0, gt=0, le=3_600, description="Longest wait for room before QueueFull."
    )
    depth_check_interval_s: float = Field(
        default=0.1,
        ge=0,
        le=60,
        description="Seconds a measured queue depth is trusted before asking the broker again.",
    )


class BreakerSettings(SettingsSection):
    """When a worker stops consuming because its model keeps failing."""

    failure_threshold: int = Field(
        default=5, ge=1, le=1_000, description="Consecutive failed batches that open it."
    )
    failure_rate: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Failed share of the recent batches that opens it (1 disables).",
    )
    window: int = Field(default=20, ge=1, le=10_000, description="Recent batches counted.")
    min_calls: int = Field(
        default=10, ge=1, le=10_000, description="Batches needed before the rate counts."
    )
    reset_timeout_s: float = Field(
        default=10.0, gt=0, le=3_600, description="Seconds open before a trial batch."
    )


class DiagnosisSettings(SettingsSection):
    """How model outputs become statuses and explanations."""

    warning_health: float = Field(
        default=0.7, gt=0, le=1, description="Health below this is at least a warning."
    )
    critical_health: float = Field(
        default=0.3, ge=0, lt=1, description="Health below this is critical."
    )
    warning_anomaly: float = Field(
        default=3.0, gt=0, le=1_000, description="Anomaly score at or above this is a warning."
    )
    critical_anomaly: float = Field(
        default=6.0, gt=0, le=1_000, description="Anomaly score at or above this is critical."
    )
    fault_probability: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Probability of a fault (not 'normal') at or above which it is a warning.",
    )
    top_k: int = Field(
        default=3, ge=0, le=50, description="Sensors and connections listed as explanation."
    )

    @model_validator(mode="after")
    def _ordered(self) -> DiagnosisSettings:
        if self.critical_health >= self.warning_health:
            raise ValueError(
                f"critical_health ({self.critical_health}) must be below "
                f"warning_health ({self.warning_health})"
            )
        if self.critical_anomaly <= self.warning_anomaly:
            raise ValueError(
                f"critical_anomaly ({self.critical_anomaly}) must exceed "
                f"warning_anomaly ({self.warning_anomaly})"
            )
        return self


class ModelSettings(SettingsSection):
    """Which model runs where."""

    name: str = Field(
        default="universal",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Model name in the registry; its active version (else the bundled one) runs.",
    )
    registry_check_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3_600,
        description="Seconds between checks of the registry's active version (hot swap).",
    )
    max_failures_per_snapshot: int = Field(
        default=6,
        ge=1,
        le=100,
        description="Model failures of one snapshot alone on a worker (a failing batch is "
        "split to find them) before it is dead-lettered (model_failed). Must exceed "
        "GNN_BREAKER__FAILURE_THRESHOLD, so that a model failing on everything opens the "
        "breaker before any healthy snapshot is failed.",
    )

    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="auto, cpu, cuda or cuda:N.",
    )
    cuda_memory_fraction: float = Field(
        default=0.9, gt=0, le=1, description="Share of the GPU memory one process may take."
    )
    torch_threads: int = Field(
        default=1, ge=1, le=256, description="Intra-op CPU threads per process (add processes)."
    )
    warmup_batches: int = Field(
        default=3, ge=0, le=100, description="Representative batches run before consuming."
    )


class ObservabilitySettings(SettingsSection):
    """Traces and metrics."""

    tracing_exporter: Literal["none", "console", "otlp"] = Field(
        default="none", description="Where spans go."
    )
    otlp_endpoint: str | None = Field(
        default=None, repr=False, description="OTLP collector endpoint."
    )
    service_name: str = Field(default="gnn-service", description="service.name of spans.")
    exporter_host: str = Field(
        default="127.0.0.1", description="Address of `gnn-service exporter` (queue metrics)."
    )
    exporter_port: int = Field(
        default=9108, ge=1, le=65535, description="Port of `gnn-service exporter`."
    )


class SecuritySettings(SettingsSection):
    """Limits on what producers may send, and operator access."""

    max_snapshot_bytes: int = Field(
        default=1_000_000, ge=1_024, le=100_000_000, description="Largest message body accepted."
    )
    max_window_steps: int = Field(
        default=3_600, ge=2, le=1_000_000, description="Longest window, in time steps."
    )
    min_window_steps: int = Field(
        default=8, ge=2, le=1_000_000, description="Shortest window, in time steps."
    )
    max_sensors: int = Field(
        default=512, ge=1, le=100_000, description="Most sensors in one machine."
    )
    signing_key_path: Path | None = Field(
        default=None,
        description="Producers: PEM private key (RSA) that signs every published snapshot "
        "(Celery's auth serializer). Set with signing_certificate_path.",
    )
    signing_key_password: SecretStr | None = Field(
        default=None, description="Producers: password of signing_key_path, if it has one."
    )
    signing_certificate_path: Path | None = Field(
        default=None, description="Producers: PEM certificate of signing_key_path."
    )
    trusted_certificates: Path | None = Field(
        default=None,
        description="Workers: a directory of PEM certificates (or one PEM file) of trusted "
        "producers. When set, only signed snapshots whose signature checks out are "
        "diagnosed; others are dead-lettered (signature_invalid, unsupported_content_type).",
    )
    signing_digest: str = Field(
        default="sha256",
        pattern=r"^sha(256|384|512)$",
        description="Digest of message signatures (producers and workers must agree).",
    )
    flower_address: str = Field(
        default="127.0.0.1", description="Address Flower listens on (0.0.0.0 behind a proxy)."
    )
    flower_port: int = Field(default=5555, ge=1, le=65535, description="Flower's HTTP port.")
    flower_user: str = Field(default="admin", description="Flower basic-auth user.")
    flower_password: SecretStr | None = Field(
        default=None, description="Flower refuses to start without it."
    )

    @model_validator(mode="after")
    def _window_bounds(self) -> SecuritySettings:
        if self.min_window_steps > self.max_window_steps:
            raise ValueError(
                f"min_window_steps ({self.min_window_steps}) must not exceed "
                f"max_window_steps ({self.max_window_steps})"
            )
        return self


class Settings(BaseSettings):
    """Everything the service can be told. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    data_dir: Path = Field(
        default=Path(".gnn-data"), description="Home of the embedded default's files."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, environment, ``.env``, then ``GNN_*_FILE`` secret files."""
        return (
            init_settings,
            PlainEnvSource(settings_cls),
            dotenv_settings,
            SecretFileSource(settings_cls),
        )

    log_format: Literal["json", "console"] = Field(
        default="json", description="JSON lines, or a human format."
    )
    log_level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", description="Lowest level logged."
    )
    broker: BrokerSettings = BrokerSettings()
    result_backend: ResultBackendSettings = ResultBackendSettings()
    database: DatabaseSettings = DatabaseSettings()
    worker: WorkerSettings = WorkerSettings()
    batching: BatchingSettings = BatchingSettings()
    producer: ProducerSettings = ProducerSettings()
    breaker: BreakerSettings = BreakerSettings()
    diagnosis: DiagnosisSettings = DiagnosisSettings()
    model: ModelSettings = ModelSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    security: SecuritySettings = SecuritySettings()

    @model_validator(mode="after")
    def _redelivery_after_batches(self) -> Settings:
        worker = self.worker
        held = (
            worker.batch_hard_time_limit_s
            + worker.settle_budget_s
            + self.batching.max_wait_ms / 1000.0
        )
        if self.broker.visibility_timeout_s <= held:
            raise ValueError(
                f"broker.visibility_timeout_s ({self.broker.visibility_timeout_s}) must exceed "
                f"worker.batch_hard_time_limit_s + worker.settle_budget_s + "
                f"batching.max_wait_ms ({held:g} s), or messages a live worker holds are "
                "delivered twice"
            )
        return self

    @model_validator(mode="after")
    def _breaker_before_failed_for_good(self) -> Settings:
        if self.model.max_failures_per_snapshot <= self.breaker.failure_threshold:
            raise ValueError(
                f"model.max_failures_per_snapshot ({self.model.max_failures_per_snapshot}) "
                f"must exceed breaker.failure_threshold ({self.breaker.failure_threshold}), "
                "or a model failing on everything dead-letters healthy snapshots before the "
                "breaker opens"
            )
        return self

    @property
    def database_url(self) -> str:
        """The database URL in force."""
        if self.database.url is not None:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gnn.db').absolute()}"

    def masked(self) -> dict[str, Any]:
        """The effective settings as JSON-ready data, secrets and URL passwords masked."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = mask_url(self.database_url)
        for section in ("broker", "result_backend"):
            if data[section]["url"] is not None:
                data[section]["url"] = mask_url(data[section]["url"])
        data["observability"]["otlp_endpoint"] = (
            mask_url(data["observability"]["otlp_endpoint"])
            if data["observability"]["otlp_endpoint"]
            else None
        )
        for secret in ("flower_password", "signing_key_password"):
            if getattr(self.security, secret) is not None:
                data["security"][secret] = _MASK
        data["data_dir"] = str(self.data_dir.absolute())
        return data


def mask_url(url: str) -> str:
    """Replace the password of a URL with ``***``; other parts stay readable."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{_MASK}@{host}"))


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc``.

    >>> env_name(("batching", "max_wait_ms"))
    'GNN_BATCHING__MAX_WAIT_MS'
    """
    names = [str(part) for part in loc if not isinstance(part, int)]
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(names).upper()


def describe_error(error: ValidationError) -> str:
    """One line naming each invalid variable and the bound it broke."""
    problems = []
    for item in error.errors(include_url=False):
        name = env_name(item["loc"]) if item["loc"] else "GNN settings"
        message = item["msg"]
        value = item.get("input")
        shown = "" if isinstance(value, dict) or value is None else f" (got {value!r})"
        if name.endswith(("URL", "PASSWORD")):
            shown = ""
        problems.append(f"{name}: {message}{shown}")
    return "invalid setting " + "; ".join(problems)
