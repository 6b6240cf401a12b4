"""Model metric families: the fallback model served, loads and swaps, and per model the
batch sizes, forward latency and failures (a worker serves the fallback model and the models
routed to machines).

The ``model`` label is the model's name (not its version, which the diagnoses record): at
most ``MAX_MODEL_LABELS`` names, later ones are counted under ``other``, so that the label
set stays bounded whatever is registered.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

#: Distinct model names labelled before the rest are counted as ``other``.
MAX_MODEL_LABELS = 16


class ModelFamilies:
    """Loads and swaps; batch size, forward latency and failures per model.

    Args:
        registry: Where the families are registered.
        latency_buckets: Histogram buckets of the forward latency (seconds).
        size_buckets: Histogram buckets of the snapshots per forward.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        latency_buckets: tuple[float, ...],
        size_buckets: tuple[float, ...],
    ) -> None:
        r = registry
        self.info = Info(
            "gnn_model", "The fallback model version served and its device.", registry=r
        )
        self.load = Histogram(
            "gnn_model_load_seconds",
            "Loading a model version, warm-up included.",
            buckets=latency_buckets,
            registry=r,
        )
        self.warmup = Gauge(
            "gnn_model_warmup_seconds", "Warm-up time of the fallback model served.", registry=r
        )
        self.swaps = Counter(
            "gnn_model_swaps_total", "Model versions switched between batches.", registry=r
        )
        self.swap_failures = Counter(
            "gnn_model_swap_failures_total",
            "New versions that could not be loaded (the old one kept serving, or none).",
            registry=r,
        )
        self.snapshots = Counter(
            "gnn_model_snapshots_total",
            "Snapshots diagnosed, per model.",
            ["model"],
            registry=registry,
        )
        self.batch = Histogram(
            "gnn_model_batch_snapshots",
            "Snapshots per model forward (a micro-batch is cut per model).",
            ["model"],
            buckets=size_buckets,
            registry=registry,
        )
        self.forward = Histogram(
            "gnn_model_forward_seconds",
            "Forward time of one model's share of a micro-batch.",
            ["model"],
            buckets=latency_buckets,
            registry=registry,
        )
        self.failures = Counter(
            "gnn_model_failures_total",
            "Snapshots a model failed on alone (requeued), per model.",
            ["model"],
            registry=registry,
        )
        self.loaded = Gauge(
            "gnn_models_loaded",
            "Models routed to machines that this process holds loaded (the fallback excluded).",
            registry=registry,
        )
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def label(self, model_version: str) -> str:
        """The ``model`` label of ``name:version``: the name, or ``other`` past the bound."""
        name = model_version.split(":", 1)[0]
        with self._lock:
            if name in self._names:
                return name
            if len(self._names) < MAX_MODEL_LABELS:
                self._names.add(name)
                return name
        return "other"

    def record(self, model_version: str, *, snapshots: int, forward_s: float, failed: int) -> None:
        """One model's share of a micro-batch."""
        label = self.label(model_version)
        if snapshots:
            self.snapshots.labels(model=label).inc(snapshots)
            self.batch.labels(model=label).observe(snapshots)
            self.forward.labels(model=label).observe(forward_s)
        if failed:
            self.failures.labels(model=label).inc(failed)
