"""The nested groups of :class:`~service.settings.Settings`, one model per group
(``GNN_<GROUP>__<NAME>``): where snapshots are queued and stored, how workers consume and
batch, when the breaker opens, how outputs become statuses, what producers may send.

Each field has a documented default and its bounds; a group's validators check the bounds
that tie its fields together, and ``Settings`` checks those across groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

__all__ = [
    "BatchingSettings",
    "BreakerSettings",
    "BrokerSettings",
    "DatabaseSettings",
    "DiagnosisSettings",
    "ModelSettings",
    "ObservabilitySettings",
    "ProducerSettings",
    "ResultBackendSettings",
    "SecuritySettings",
    "SettingsSection",
    "WorkerSettings",
]


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
    retention_days: float = Field(
        default=30.0,
        gt=0,
        le=36_500,
        description="Age in days past which `gnn-service db prune` deletes stored outcomes "
        "(diagnoses, expirations, dead letters and their keys); nothing is deleted unless it "
        "runs.",
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
    send_task_events: bool = Field(
        default=True,
        description="Task events for Flower: Celery's own, and one per snapshot (received, "
        "started, succeeded or failed with its outcome), published once per micro-batch.",
    )
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
    calibrated: bool = Field(
        default=True,
        description="Use the status thresholds a model was calibrated with on healthy "
        "validation data (stored in its checkpoint) instead of the five thresholds above; "
        "a model without calibration uses the thresholds above.",
    )

    def for_model(self, calibration: Mapping[str, Any]) -> DiagnosisSettings:
        """These rules with a model's calibrated thresholds, when it has them and
        ``calibrated`` is on; else these rules unchanged."""
        if not self.calibrated or not calibration.get("calibrated"):
            return self
        keys = (
            "warning_health",
            "critical_health",
            "warning_anomaly",
            "critical_anomaly",
            "fault_probability",
        )
        return type(self).model_validate(
            {**self.model_dump(), **{key: calibration[key] for key in keys}}
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
        description="The fallback model: it diagnoses every machine no active model version "
        "serves; its active version in the registry runs, else the bundled one.",
    )
    registry_check_interval_s: float = Field(
        default=2.0,
        gt=0,
        le=3_600,
        description="Seconds between checks of the model and machine registries (hot swap, "
        "routes, machines).",
    )
    cache_max_mb: int = Field(
        default=512,
        ge=1,
        le=1_048_576,
        description="Most MiB of weights of routed models (other than GNN_MODEL__NAME) a "
        "worker keeps loaded; the least recently used is unloaded beyond it.",
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
