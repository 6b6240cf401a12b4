"""The naive baseline of ``gnn-service benchmark pipeline``: one plain Celery task per
snapshot, one model forward and one INSERT each, the outcome stored by Celery: the design
this service replaces.

A naive worker is the product's worker app (:func:`worker.app.create_app`) with the
micro-batching snapshot consumer off and the naive task registered on the snapshot queue; it
starts and stops as ``gnn-service worker`` does (:func:`worker.app.run_worker`). Run it as
``python -m training.benchmarks.naive --hostname NAME`` (what
:class:`~service.launcher.WorkerProcess` passes with ``command=NAIVE_COMMAND``), with the
worker's GNN_* settings in the environment; the pipeline benchmark runs it with the prefork
pool.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from service.logging import configure_logging
from service.settings import Settings
from service.wire import TASK_DIAGNOSE
from training.benchmarks.decoded import decoded_incoming
from worker.app import WorkerApp, create_app, model_registry, run_worker

if TYPE_CHECKING:
    from worker.pipeline import BatchProcessor
    from worker.storage import OutcomeStore

#: ``python -m`` arguments of a naive worker, for :class:`~service.launcher.WorkerProcess`.
NAIVE_COMMAND = ("training.benchmarks.naive",)


def create_naive_app(settings: Settings) -> WorkerApp:
    """The worker app of ``settings`` without the snapshot consumer, with the naive task."""
    worker = settings.worker.model_copy(update={"consume_snapshots": False})
    app = create_app(settings.model_copy(update={"worker": worker}))
    register_naive_task(app)
    return app


def register_naive_task(app: WorkerApp) -> None:
    """Register the snapshot task. Each pool process loads the model when it starts (as the
    batched workers do, within ``GNN_WORKER__PROCESS_INIT_TIMEOUT_S``, so that no task's time
    limit includes the load); each call diagnoses its one snapshot with the worker's batch
    processor, inserts the row and returns the outcome for Celery to store."""
    from celery import signals

    state: dict[str, Any] = {}

    def load(**_: Any) -> None:
        state["processor"], state["store"] = process_resources(app)

    signals.worker_process_init.connect(load, weak=False)

    @app.task(name=TASK_DIAGNOSE, bind=True, shared=False)  # type: ignore[untyped-decorator]
    def diagnose_one(self: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
        if "processor" not in state:  # a solo pool: no process of its own was started
            load()
        headers = {"id": self.request.id, "expires": self.request.expires}
        result = state["processor"].process([decoded_incoming(snapshot, headers)])
        if result.error is not None:
            raise result.error
        state["store"].save(result.finished)  # one INSERT for this one snapshot
        outcome: dict[str, Any] = result.finished[0].outcome.model_dump(mode="json")
        return outcome


def process_resources(app: WorkerApp) -> tuple[BatchProcessor, OutcomeStore]:
    """A pool process's batch processor and outcome store, as a batched worker's: its
    resources opened, the model loaded and warmed, the heap frozen (when the settings say)."""
    from machines.catalog import builtin_spec
    from worker.model_source import ModelSource
    from worker.pipeline import BatchProcessor
    from worker.resources import freeze_heap
    from worker.storage import OutcomeStore

    resources = app.open_process_resources()
    runner = ModelSource(app.settings, model_registry(app.settings, resources)).load()
    processor = BatchProcessor(settings=app.settings, runner=runner, resolve_spec=builtin_spec)
    store = OutcomeStore(resources)
    if app.settings.worker.freeze_heap:
        freeze_heap()
    return processor, store


def worker_main(
    create: Callable[[Settings], WorkerApp], *, prog: str, description: str,
    argv: Sequence[str] | None,
) -> None:  # fmt: skip
    """Run the worker node ``create`` makes, with the settings of the environment, reading
    the snapshot and control queues until it stops (``--hostname`` names it)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--hostname", default="gnn@%h", help="Celery node name.")
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    config = settings.worker
    run_worker(
        create(settings), hostname=args.hostname, queues=(config.queue, config.control_queue)
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run a naive worker node with the settings of the environment until it stops."""
    worker_main(
        create_naive_app,
        prog="python -m training.benchmarks.naive",
        description="Run a naive worker: one plain Celery task per snapshot.",
        argv=argv,
    )


if __name__ == "__main__":
    main()
