"""The outcome stores' outage state: which store is down, and the probe that ends the pause.

When the database or the result backend still fails once a batch's settle budget is spent,
the batch is requeued and :class:`StoreOutage` marks that store down. While a store is down
the consumer holds no messages: it probes the store that failed every
``outage_probe_interval_s`` until it answers, then resumes by itself.
"""

from __future__ import annotations

import threading
from typing import Literal

from loguru import logger

from service.metrics import ServiceMetrics
from service.results import ResultWriter
from worker.storage import OutcomeStore

Store = Literal["database", "result_backend"]
"""An outcome store, named as in logs and metrics labels."""


class StoreOutage:
    """Whether the database or the result backend is down, and their probes.

    Args:
        store: The database's outcome store (probed while the database is down).
        results: The result backend's writer (probed while the backend is down).
        probe_interval_s: Seconds between probes (``database.outage_probe_interval_s``).
        metrics: Where pauses are reported (None: nowhere).
    """

    def __init__(
        self,
        *,
        store: OutcomeStore,
        results: ResultWriter,
        probe_interval_s: float,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.store = store
        self.results = results
        self.probe_interval_s = probe_interval_s
        self.metrics = metrics
        self.database_down = False
        self.backend_down = False

    def __repr__(self) -> str:
        return f"StoreOutage(database_down={self.database_down}, backend_down={self.backend_down})"

    @property
    def paused(self) -> bool:
        """Whether a store is down (the consumer holds no messages then)."""
        return self.database_down or self.backend_down

    @property
    def down_store(self) -> Store:
        """The store that is down (the database when both are)."""
        return "database" if self.database_down else "result_backend"

    def mark_down(self, store: Store) -> None:
        """``store`` stayed down through a settle budget: pause until it answers."""
        if store == "database":
            self._set_database_down(True)
        else:
            self.backend_down = True
            if self.metrics is not None:
                self.metrics.record_pause("result_backend", True)

    def wait(self, stop: threading.Event) -> None:
        """Probe the store that failed once, after one interval (unless ``stop`` is set
        first); resume what answers."""
        interval = self.probe_interval_s
        if stop.wait(interval):
            return
        if self.database_down and self.store.available(timeout_s=max(1.0, interval)):
            self._set_database_down(False)
            logger.info("database available again: resuming consumption")
        if self.backend_down and self.results.available():
            self.backend_down = False
            if self.metrics is not None:
                self.metrics.record_pause("result_backend", False)
            logger.info("result backend available again: resuming consumption")

    def _set_database_down(self, down: bool) -> None:
        self.database_down = down
        if self.metrics is not None:
            self.metrics.record_pause("database", down)
