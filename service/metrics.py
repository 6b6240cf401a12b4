"""Prometheus metrics of a worker node and of a producer, on a registry passed in.

``ServiceMetrics(registry)`` defines every family; the consumer, the breaker, the model source
and the database report into it through the ``record_*`` methods. ``ProducerMetrics`` holds
what a producer counts. The broker-read queue gauges are in ``service.queue_collector``;
docs/metrics.md is generated from these registries by ``service.metrics_doc``.

Names follow the Prometheus conventions: ``gnn_`` prefix, base units in the name (seconds,
bytes), ``_total`` for counters. Latency histograms resolve 1 ms to 10 s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from schemas.outcomes import DeadLetterReason
from service.metrics_models import ModelFamilies

#: 1 ms to 10 s, about three buckets per decade.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
BYTE_BUCKETS = (1_000, 4_000, 16_000, 64_000, 256_000, 1_000_000, 4_000_000, 16_000_000)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 256, 512)
NODE_BUCKETS = (8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
UNIT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
SCORE_BUCKETS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0)
BREAKER_STATES = ("closed", "open", "half_open")


class ServiceMetrics:
    """Every metric family of a worker process.

    Args:
        registry: Where the families are registered (one per app; tests pass a fresh one).
        process_metrics: Also register the process and platform collectors.
    """

    def __init__(self, registry: CollectorRegistry, *, process_metrics: bool = True) -> None:
        self.registry = registry
        self._paused: dict[str, bool] = {}
        self._traffic(registry)
        self._latency(registry)
        self._batches(registry)
        self._outcomes(registry)
        self._control(registry)
        self._models(registry)
        self._database(registry)
        self._device(registry)
        if process_metrics:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        for state in BREAKER_STATES:
            self.breaker_state.labels(state=state).set(1.0 if state == "closed" else 0.0)
        for reason in ("breaker", "database", "result_backend"):
            self.paused.labels(reason=reason).set(0.0)
        for resampled in ("false", "true"):
            self.short_windows.labels(resampled=resampled)
        self.db_available.set(1.0)

    def __repr__(self) -> str:
        return f"ServiceMetrics(families={len(family_names(self.registry))})"

    def _traffic(self, r: CollectorRegistry) -> None:
        """Families: queue traffic seen by this worker."""
        self.consumed = Counter(
            "gnn_snapshots_consumed_total", "Messages received from the snapshot queue.", registry=r
        )
        self.message_bytes = Histogram(
            "gnn_message_size_bytes",
            "Size of received message bodies (see GNN_SECURITY__MAX_SNAPSHOT_BYTES).",
            buckets=BYTE_BUCKETS,
            registry=r,
        )
        self.acked = Counter(
            "gnn_snapshots_acked_total",
            "Messages acknowledged after their outcome was stored.",
            registry=r,
        )
        self.redelivered = Counter(
            "gnn_snapshots_redelivered_total",
            "Messages received again after a requeue or a lost worker.",
            registry=r,
        )
        self.restored = Counter(
            "gnn_messages_restored_total",
            "Messages of vanished workers (unacknowledged past the visibility timeout) this "
            "worker put back on the queue.",
            registry=r,
        )
        self.requeued = Counter(
            "gnn_snapshots_requeued_total",
            "Messages given back to the queue unacknowledged.",
            ["reason"],
            registry=r,
        )

    def _latency(self, r: CollectorRegistry) -> None:
        """Families: latency, per snapshot and per batch."""
        self.queue_wait = Histogram(
            "gnn_queue_wait_seconds",
            "Publish to receipt by a worker.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_wait = Histogram(
            "gnn_batch_wait_seconds",
            "Receipt to the close of the snapshot's batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.features = Histogram(
            "gnn_features_seconds",
            "Decode, admit and encode one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.forward = Histogram(
            "gnn_forward_seconds",
            "One model forward over a batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.postprocess = Histogram(
            "gnn_postprocess_seconds",
            "Model outputs to diagnoses, one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_write = Histogram(
            "gnn_db_write_seconds",
            "One batch's database transaction, retries included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.backend_write = Histogram(
            "gnn_result_backend_write_seconds",
            "One batch's result-backend write.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "gnn_batch_seconds",
            "A batch from close to acknowledged.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.end_to_end = Histogram(
            "gnn_end_to_end_seconds",
            "Publish to stored, per diagnosed snapshot.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def _batches(self, r: CollectorRegistry) -> None:
        """Families: batches."""
        self.batch_snapshots = Histogram(
            "gnn_batch_size_snapshots", "Snapshots per batch.", buckets=SIZE_BUCKETS, registry=r
        )
        self.batch_nodes = Histogram(
            "gnn_batch_size_nodes",
            "Graph nodes (sensors) per batch.",
            buckets=NODE_BUCKETS,
            registry=r,
        )
        self.batches = Counter(
            "gnn_batches_total", "Batches, by what closed them.", ["closed_by"], registry=r
        )

    def _outcomes(self, r: CollectorRegistry) -> None:
        """Families: outcomes."""
        self.diagnosed = Counter(
            "gnn_snapshots_diagnosed_total", "Snapshots diagnosed and stored.", registry=r
        )
        self.expired = Counter(
            "gnn_snapshots_expired_total",
            "Snapshots recorded expired instead of computed.",
            registry=r,
        )
        self.dead_letters = Counter(
            "gnn_dead_letters_total", "Messages dead-lettered, by reason.", ["reason"], registry=r
        )
        for reason in DeadLetterReason:  # a series per reason from the start, at 0
            self.dead_letters.labels(reason=reason.value)
        self.failed = Counter(
            "gnn_snapshots_failed_total",
            "Snapshots the model failed on, by error type.",
            ["error_type"],
            registry=r,
        )
        self.short_windows = Counter(
            "gnn_short_windows_total",
            "Diagnosed snapshots covering fewer steps than the model's window (left-padded), "
            "by whether the window was resampled to the model's rate.",
            ["resampled"],
            registry=r,
        )
        self.backend_retries = Counter(
            "gnn_result_backend_retries_total", "Result-backend writes retried.", registry=r
        )
        self.diagnoses = Counter(
            "gnn_diagnoses_total",
            "Diagnoses by machine and worst component status.",
            ["machine", "status"],
            registry=r,
        )
        self.faults = Counter(
            "gnn_predicted_faults_total",
            "Components whose most likely fault is not normal, by fault.",
            ["fault"],
            registry=r,
        )
        self.health = Histogram(
            "gnn_component_health_ratio",
            "Predicted component health (1 healthy).",
            buckets=UNIT_BUCKETS,
            registry=r,
        )
        self.anomaly = Histogram(
            "gnn_component_anomaly_score",
            "Component anomaly scores.",
            buckets=SCORE_BUCKETS,
            registry=r,
        )

    def _control(self, r: CollectorRegistry) -> None:
        """Families: breaker and consumption."""
        self.breaker_state = Gauge(
            "gnn_breaker_state",
            "Circuit breaker state (1 for the current one).",
            ["state"],
            registry=r,
        )
        self.breaker_transitions = Counter(
            "gnn_breaker_transitions_total",
            "Circuit breaker state changes.",
            ["from_state", "to_state"],
            registry=r,
        )
        self.paused = Gauge(
            "gnn_consumption_paused",
            "1 while the worker does not consume, by reason.",
            ["reason"],
            registry=r,
        )
        self.pauses = Counter(
            "gnn_consumption_pauses_total",
            "Times the worker stopped consuming, by reason.",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge(
            "gnn_worker_ready",
            "1 when the snapshot consumer is loaded, warm and consuming.",
            registry=r,
        )

    def _models(self, r: CollectorRegistry) -> None:
        """Families: models (defined in service.metrics_models)."""
        m = self.per_model = ModelFamilies(
            r, latency_buckets=LATENCY_BUCKETS, size_buckets=SIZE_BUCKETS
        )
        self.model_info, self.model_load, self.model_warmup = m.info, m.load, m.warmup
        self.model_swaps, self.model_swap_failures = m.swaps, m.swap_failures

    def _database(self, r: CollectorRegistry) -> None:
        """Families: database."""
        self.db_pool_size = Gauge(
            "gnn_db_pool_size_connections", "Connections the pool keeps.", registry=r
        )
        self.db_checked_out = Gauge(
            "gnn_db_pool_checked_out_connections", "Connections in use.", registry=r
        )
        self.db_overflow = Gauge(
            "gnn_db_pool_overflow_connections",
            "Connections beyond the pool size in use.",
            registry=r,
        )
        self.db_acquire = Histogram(
            "gnn_db_acquire_seconds",
            "Waiting for a pooled connection.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.db_retries = Counter(
            "gnn_db_retries_total", "Database operations retried, by cause.", ["cause"], registry=r
        )
        self.db_errors = Counter(
            "gnn_db_errors_total", "Database writes given up, by kind.", ["kind"], registry=r
        )
        self.db_rows = Counter(
            "gnn_db_rows_written_total",
            "Rows inserted (not counting re-saved ones), by table.",
            ["table"],
            registry=r,
        )
        self.db_available = Gauge(
            "gnn_db_available", "1 while database writes succeed.", registry=r
        )

    def _device(self, r: CollectorRegistry) -> None:
        """Families: device."""
        self.cuda_allocated = Gauge(
            "gnn_cuda_memory_allocated_bytes", "CUDA memory held by tensors (0 on CPU).", registry=r
        )
        self.cuda_reserved = Gauge(
            "gnn_cuda_memory_reserved_bytes",
            "CUDA memory reserved by the caching allocator (0 on CPU).",
            registry=r,
        )
        self.cuda_peak = Gauge(
            "gnn_cuda_memory_peak_bytes", "Peak CUDA memory held by tensors (0 on CPU).", registry=r
        )
        self.oom = Counter(
            "gnn_out_of_memory_total",
            "Out-of-memory errors caught while running batches.",
            registry=r,
        )
        self.batch_splits = Counter(
            "gnn_batch_splits_total",
            "Batches split in two after running out of memory.",
            registry=r,
        )
        self.torch_threads = Gauge(
            "gnn_torch_threads", "Intra-op CPU threads of torch in this process.", registry=r
        )

    # reporting ------------------------------------------------------------------------

    def record_received(
        self, *, published_at: float | None, received_at: float, redelivered: bool, size_bytes: int
    ) -> None:
        """One message received from the queue."""
        self.consumed.inc()
        self.message_bytes.observe(size_bytes)
        if redelivered:
            self.redelivered.inc()
        if published_at is not None:
            self.queue_wait.observe(max(0.0, received_at - published_at))

    def record_batch(
        self,
        *,
        snapshots: int,
        nodes: int,
        closed_by: str,
        waits_s: Iterable[float],
        timings: Mapping[str, float],
    ) -> None:
        """One batch processed: its size, why it closed and how long each stage took."""
        self.batches.labels(closed_by=closed_by).inc()
        self.batch_snapshots.observe(snapshots)
        self.batch_nodes.observe(nodes)
        for wait in waits_s:
            self.batch_wait.observe(wait)
        for stage, histogram in (
            ("features", self.features),
            ("forward", self.forward),
            ("postprocess", self.postprocess),
        ):
            if stage in timings:
                histogram.observe(timings[stage])

    def record_outcomes(self, outcomes: Iterable[Any], *, stored_at: float) -> None:
        """Outcomes stored: counts by kind, and per diagnosis its machine, status and faults.

        ``outcomes`` are ``(machine name, published_at, outcome)`` triples.
        """
        for machine, published_at, outcome in outcomes:
            kind = outcome.outcome
            if kind == "diagnosed":
                self._record_diagnosis(machine, published_at, outcome.diagnosis, stored_at)
            elif kind == "expired":
                self.expired.inc()
            else:
                self.dead_letters.labels(reason=str(outcome.dead_letter.reason)).inc()

    def _record_diagnosis(
        self, machine: str, published_at: float | None, diagnosis: Any, stored_at: float
    ) -> None:
        self.diagnosed.inc()
        if published_at is not None:
            self.end_to_end.observe(max(0.0, stored_at - published_at))
        worst = "ok"
        for component in diagnosis.components:
            self.health.observe(component.health)
            self.anomaly.observe(component.anomaly_score)
            if component.fault != "normal":
                self.faults.labels(fault=component.fault).inc()
            if component.status == "critical" or (component.status == "warning" and worst == "ok"):
                worst = component.status
        self.diagnoses.labels(machine=machine, status=worst).inc()

    def record_breaker(self, old: str, new: str) -> None:
        """A circuit breaker transition."""
        self.breaker_transitions.labels(from_state=old, to_state=new).inc()
        for state in BREAKER_STATES:
            self.breaker_state.labels(state=state).set(1.0 if state == new else 0.0)

    def record_pause(self, reason: str, paused: bool) -> None:
        """Consumption stopped (``paused``) or resumed for ``reason``."""
        gauge = self.paused.labels(reason=reason)
        if paused and not self._paused.get(reason, False):
            self.pauses.labels(reason=reason).inc()
        gauge.set(1.0 if paused else 0.0)
        self._paused[reason] = paused
        if reason == "database":
            self.db_available.set(0.0 if paused else 1.0)

    def record_model(
        self, *, version: str, device: str, load_s: float, warmup_s: float, swap: bool
    ) -> None:
        """A model version loaded, warmed and now served."""
        self.model_info.info({"version": version, "device": device})
        self.model_load.observe(load_s)
        self.model_warmup.set(warmup_s)
        if swap:
            self.model_swaps.inc()

    def record_device(self, memory: Mapping[str, int], *, threads: int) -> None:
        """CUDA memory gauges (zeros on CPU) and torch's thread count."""
        self.cuda_allocated.set(memory.get("allocated", 0))
        self.cuda_reserved.set(memory.get("reserved", 0))
        self.cuda_peak.set(memory.get("peak", 0))
        self.torch_threads.set(threads)

    def record_pool(self, *, size: int, checked_out: int, overflow: int) -> None:
        """Database pool gauges."""
        self.db_pool_size.set(size)
        self.db_checked_out.set(checked_out)
        self.db_overflow.set(overflow)


class ProducerMetrics:
    """What a producer process counts (``ProducerClient.metrics_registry``): an application
    that embeds the client exposes this registry on its own /metrics.

    Args:
        registry: Where the families are registered.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.published = Counter(
            "gnn_snapshots_published_total",
            "Snapshots published to the queue.",
            ["queue"],
            registry=registry,
        )
        self.refused = Counter(
            "gnn_snapshots_refused_total",
            "Snapshots refused before publishing, by reason (nothing was published).",
            ["reason"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "gnn_publish_seconds",
            "One publish, broker retries included.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.backpressure_seconds = Counter(
            "gnn_backpressure_wait_seconds_total",
            "Time spent waiting for room in the queue (GNN_PRODUCER__MAX_QUEUE_DEPTH).",
            registry=registry,
        )

    def __repr__(self) -> str:
        return f"ProducerMetrics(families={len(family_names(self.registry))})"


def family_names(registry: CollectorRegistry) -> list[str]:
    """Names of the metric families a registry exposes now."""
    return sorted({metric.name for metric in registry.collect()})
