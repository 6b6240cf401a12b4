"""Model swaps: the model version a consumer serves, loaded at start, swapped between batches.

:class:`ModelSwapper` holds the batch processor of the active version. At start it loads and
warms that version, waiting out a registry (database) outage. Between batches, at most
every ``registry_check_interval_s`` or at once after :meth:`ModelSwapper.request` (remote
control), it asks the registry for the active version's token; when the token changed it
loads the new version and replaces the processor. A version that cannot be loaded is
logged and the old one kept; a registry outage keeps the current model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from loguru import logger

from service.errors import TransientError
from service.metrics import ServiceMetrics
from worker.engine import ModelRunner
from worker.pipeline import BatchProcessor
from worker.resources import freeze_heap

RunnerLoader = Callable[[], ModelRunner]
"""Loads and warms the active model version."""
VersionProbe = Callable[[], str]
"""Cheap: the active model version's token (changes when another version is activated)."""


class ModelSwapper:
    """The served model version and its batch processor.

    Args:
        load_runner: Loads and warms the active model version.
        probe_version: Token of the active version, checked between batches.
        processor_factory: Builds the batch processor for a runner.
        check_interval_s: Seconds between version checks (``model.registry_check_interval_s``).
        freezes_heap: Whether to freeze the heap after each load (``worker.freeze_heap``).
        metrics: Where loads and failed swaps are reported (None: nowhere).
        prepare: Runs before the first load, inside its outage retries (reading the machine
            registry and the model routes).
        also_check: Run at every due check, before the fallback's token is compared
            (refreshing the machines and the routes of other models).
    """

    def __init__(
        self,
        *,
        load_runner: RunnerLoader,
        probe_version: VersionProbe,
        processor_factory: Callable[[ModelRunner], BatchProcessor],
        check_interval_s: float,
        freezes_heap: bool,
        metrics: ServiceMetrics | None = None,
        prepare: Callable[[], object] | None = None,
        also_check: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.processor: BatchProcessor | None = None
        self.check_interval_s = check_interval_s
        self.freezes_heap = freezes_heap
        self.metrics = metrics
        self._load_runner = load_runner
        self._probe_version = probe_version
        self._processor_factory = processor_factory
        self._prepare = prepare
        self._also_check = tuple(also_check)
        self._swap = threading.Event()
        self._next_check = 0.0
        self._token = ""

    def __repr__(self) -> str:
        version = self.processor.runner.version if self.processor is not None else None
        return f"ModelSwapper(version={version!r}, check_interval_s={self.check_interval_s})"

    def first_runner(self, stop: threading.Event, *, retry_s: float) -> ModelRunner | None:
        """Load the model to serve, waiting out a registry (database) outage.

        Returns:
            The loaded, warm runner; None when ``stop`` was set first.
        """
        while not stop.is_set():
            try:
                if self._prepare is not None:
                    self._prepare()
                return self._timed_load(swap=False)
            except TransientError as exc:
                logger.warning("model registry unavailable; retrying the load", error=str(exc))
                stop.wait(retry_s)
        return None

    def install(self, runner: ModelRunner) -> None:
        """Serve ``runner`` (the first one loaded) and note the active version's token."""
        self.processor = self._processor_factory(runner)
        self._token = self._probe_version()
        self._freeze_heap()

    def request(self) -> None:
        """Check the active model version before the next batch."""
        self._swap.set()

    def check(self) -> None:
        """Swap the model when the check is due (or requested) and the version changed."""
        now = time.monotonic()
        if now >= self._next_check or self._swap.is_set():
            self._maybe_swap()
            self._next_check = now + self.check_interval_s

    def _maybe_swap(self) -> None:
        self._swap.clear()
        for check in self._also_check:
            check()
        try:
            token = self._probe_version()
        except TransientError as exc:
            logger.warning("model registry unavailable; serving the current model", error=str(exc))
            return
        if token == self._token:
            return
        assert self.processor is not None
        old = self.processor.runner.version
        try:
            runner = self._timed_load(swap=True)
        except Exception as exc:
            logger.error("new model version could not be loaded; keeping the old", error=str(exc))
            self._token = token
            if self.metrics is not None:
                self.metrics.model_swap_failures.inc()
            return
        self.processor = self._processor_factory(runner)
        self._token = token
        self._freeze_heap()
        logger.info("model swapped between batches", old=old, new=runner.version)

    def _freeze_heap(self) -> None:
        if self.freezes_heap:
            freeze_heap()

    def _timed_load(self, *, swap: bool) -> ModelRunner:
        started = time.perf_counter()
        runner = self._load_runner()
        if self.metrics is not None:
            self.metrics.record_model(
                version=runner.version,
                device=str(runner.device),
                load_s=time.perf_counter() - started,
                warmup_s=runner.warmup_seconds or 0.0,
                swap=swap,
            )
        return runner
