"""Which model diagnoses which machine, and the models a worker keeps loaded for them.

Each active model version declares the machines it serves (names, or shell-style patterns
such as ``press_line_*``); every other machine goes to the fallback model
(``GNN_MODEL__NAME``, the universal model by default), which the consumer loads before it
consumes. A routed model is loaded and warmed (on the machines it serves) the first time a
batch holds one of its machines, then kept in a least-recently-used cache bounded by
``GNN_MODEL__CACHE_MAX_MB`` of weights. Between batches the router reads the registry's
routing token; when a model was activated, rolled back or deactivated it re-reads the
routes and loads the new version of each model it holds before that model takes its next
batch (a version that cannot be loaded is logged and the old one kept).
"""

from __future__ import annotations

import fnmatch
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from loguru import logger

from schemas import SystemSpec
from service.errors import ModelError, TransientError
from service.metrics import ServiceMetrics
from worker.engine import ModelRunner
from worker.machine_book import MachineBook
from worker.model.registry import ModelVersion
from worker.model_store import DatabaseRegistry

#: Seconds before a model version that failed to load is tried again.
RETRY_LOAD_S = 10.0

ModelLoader = Callable[[str, Sequence[SystemSpec]], ModelRunner]
"""Loads and warms the active version of a model name on the given machines."""


def weight_bytes(runner: ModelRunner) -> int:
    """Bytes of a runner's parameters and buffers (what the model cache counts)."""
    tensors = [*runner.model.parameters(), *runner.model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


class ModelRouter:
    """Routes machines to models and holds the routed models a worker has loaded.

    Args:
        registry: The model registry (``None``: every machine goes to the fallback).
        fallback: The fallback model's name (``GNN_MODEL__NAME``).
        load: Loads and warms a model by name.
        machines: Resolves the served machines' specs for warm-ups.
        cache_max_bytes: Most weight bytes of routed models kept loaded (the model just
            loaded is kept even when alone above it).
        metrics: Where loads, swaps and failed swaps are reported (None: nowhere).
    """

    def __init__(
        self,
        *,
        registry: DatabaseRegistry | None,
        fallback: str,
        load: ModelLoader,
        machines: MachineBook,
        cache_max_bytes: int,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.fallback = fallback
        self.machines = machines
        self.cache_max_bytes = cache_max_bytes
        self.metrics = metrics
        self._load = load
        self._active: dict[str, ModelVersion] = {}
        self._routes: list[tuple[str, str]] = []  # (pattern, model name), most specific first
        self._by_machine: dict[str, str] = {}
        self._loaded: OrderedDict[str, ModelRunner] = OrderedDict()
        self._token: str | None = None
        # model name -> (version, when) of a failed load: not tried again for RETRY_LOAD_S
        self._failed: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"ModelRouter(fallback={self.fallback!r}, routed={sorted(self._active)}, "
            f"loaded={list(self._loaded)})"
        )

    @property
    def loaded(self) -> dict[str, ModelRunner]:
        """The routed models loaded now, least recently used first."""
        return dict(self._loaded)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read the routes when the registry's routing token changed; True when re-read.

        Models held whose active version changed are loaded again (warm) before they take
        their next batch; models no longer active are dropped. A registry outage keeps the
        current routes.

        Raises:
            TransientError: Only with ``force`` (the first read, which the caller retries).
        """
        if self.registry is None:
            return False
        try:
            token = self.registry.routing_token()
            if token == self._token and not force:
                return False
            active = {item.name: item for item in self.registry.active_versions()}
        except TransientError as exc:
            if force:
                raise
            logger.warning("model registry unavailable; keeping the current routes", error=str(exc))
            return False
        routed = {name: item for name, item in active.items() if name != self.fallback}
        routes = routes_of(routed.values(), self.fallback)
        with self._lock:
            self._active, self._routes, self._by_machine = routed, routes, {}
            self._token, self._failed = token, {}
        self._follow_versions()
        logger.info("model routes read", routes=dict(routes))
        return True

    def model_for(self, machine: str) -> str:
        """The name of the model that diagnoses ``machine``."""
        with self._lock:
            found = self._by_machine.get(machine)
            if found is None:
                found = self._by_machine[machine] = route(machine, self._routes, self.fallback)
            return found

    def runner_for(self, machine: str) -> ModelRunner | None:
        """The loaded, warm model for ``machine``; None when the fallback model serves it.

        Raises:
            ModelError: The routed model cannot be loaded (its snapshots are requeued).
        """
        name = self.model_for(machine)
        if name == self.fallback:
            return None
        with self._lock:
            runner = self._loaded.get(name)
            if runner is not None:
                self._loaded.move_to_end(name)
                return runner
        return self._load_routed(name, swap=False)

    def _load_routed(self, name: str, *, swap: bool) -> ModelRunner:
        item = self._active.get(name)
        version = item.version if item is not None else "?"
        failed = self._failed.get(name)
        if (
            failed is not None
            and failed[0] == version
            and time.monotonic() - failed[1] < RETRY_LOAD_S
        ):
            raise ModelError(f"model {name}:{version} could not be loaded on this worker")
        served = [pattern for pattern in item.serves if not _is_pattern(pattern)] if item else []
        started = time.perf_counter()
        try:
            runner = self._load(name, self.machines.specs(served))
        except Exception as exc:
            self._failed[name] = (version, time.monotonic())
            if self.metrics is not None:
                self.metrics.model_swap_failures.inc()
            raise ModelError(f"model {name}:{version} cannot be loaded: {exc}") from exc
        with self._lock:
            self._loaded[name] = runner
            self._loaded.move_to_end(name)
            self._evict()
        logger.info("routed model loaded", model=name, version=runner.version, swap=swap)
        if self.metrics is not None:
            self.metrics.model_load.observe(time.perf_counter() - started)
            if swap:
                self.metrics.model_swaps.inc()
        self._count_loaded()
        return runner

    def _count_loaded(self) -> None:
        if self.metrics is not None:
            self.metrics.per_model.loaded.set(len(self._loaded))

    def _evict(self) -> None:
        total = sum(weight_bytes(runner) for runner in self._loaded.values())
        while len(self._loaded) > 1 and total > self.cache_max_bytes:
            name, runner = self._loaded.popitem(last=False)
            total -= weight_bytes(runner)
            logger.info("routed model evicted (model cache full)", model=name)

    def _follow_versions(self) -> None:
        for name, runner in list(self._loaded.items()):
            item = self._active.get(name)
            if item is None:
                with self._lock:
                    self._loaded.pop(name, None)
                logger.info("routed model dropped (no longer active)", model=name)
                self._count_loaded()
            elif runner.version != f"{name}:{item.version}":
                try:
                    self._load_routed(name, swap=True)
                except ModelError as exc:
                    logger.error(
                        "new model version could not be loaded; keeping the old", error=str(exc)
                    )


def routes_of(active: Iterable[ModelVersion], fallback: str) -> list[tuple[str, str]]:
    """``(pattern, model name)`` of the active versions other than the fallback, in the
    order they are tried: exact names first, then longer (more specific) patterns."""
    routes = [
        (pattern, item.name) for item in active if item.name != fallback for pattern in item.serves
    ]
    routes.sort(key=lambda pair: (_is_pattern(pair[0]), -len(pair[0]), pair[0], pair[1]))
    return routes


def route(machine: str, routes: Sequence[tuple[str, str]], fallback: str) -> str:
    """The model name that diagnoses ``machine`` under ``routes`` (:func:`routes_of`)."""
    return next(
        (name for pattern, name in routes if fnmatch.fnmatchcase(machine, pattern)), fallback
    )


def _is_pattern(text: str) -> bool:
    return any(char in text for char in "*?[")
