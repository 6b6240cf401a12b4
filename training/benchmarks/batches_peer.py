"""The celery-batches peer of ``gnn-service benchmark pipeline``: what a user of Celery would
pick instead of our consumer, wired as its documentation shows.

A ``Batches`` task (celery-batches: flush every 64 requests or every 50 ms, acks late) on
the snapshot queue of the product's worker app (the micro-batching consumer off), prefork
pool of 2 processes with 64 messages prefetched per process. Each flush runs in a pool
process the same code our workers run per micro-batch: the batch processor (admission,
features, one forward), one database transaction for the batch's outcomes, one result
backend pipeline. Run it as ``python -m training.benchmarks.batches_peer --hostname NAME``
(:class:`~service.launcher.WorkerProcess` with ``command=BATCHES_COMMAND``).

celery-batches 0.11 declares ``celery<5.7`` while this project runs Celery 5.7: it is
installed without its dependencies (``make setup`` runs ``pip install --no-deps
celery-batches==0.11``), and runs on Celery 5.7 as far as this benchmark uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service.results import ResultWriter
from service.settings import Settings
from service.wire import TASK_DIAGNOSE
from training.benchmarks.decoded import decoded_incoming
from training.benchmarks.naive import process_resources, worker_main
from worker.app import WorkerApp, create_app

#: ``python -m`` arguments of a celery-batches worker, for :class:`~service.launcher.WorkerProcess`.
BATCHES_COMMAND = ("training.benchmarks.batches_peer",)
#: The Batches task's flush limits: our consumer's defaults (GNN_BATCHING__*).
FLUSH_EVERY = 64
FLUSH_INTERVAL_S = 0.05


def create_batches_app(settings: Settings) -> WorkerApp:
    """The worker app of ``settings`` without the snapshot consumer, with the Batches task."""
    worker = settings.worker.model_copy(update={"consume_snapshots": False})
    app = create_app(settings.model_copy(update={"worker": worker}))
    register_batches_task(app)
    return app


def register_batches_task(app: WorkerApp) -> None:
    """Register the Batches snapshot task; each pool process loads the model when it starts."""
    from celery import signals
    from celery_batches import Batches

    state: dict[str, Any] = {}

    def load(**_: Any) -> None:
        state["processor"], state["store"] = process_resources(app)
        state["results"] = ResultWriter(app.backend, task_name=TASK_DIAGNOSE)

    signals.worker_process_init.connect(load, weak=False)

    @app.task(  # type: ignore[untyped-decorator]
        name=TASK_DIAGNOSE,
        base=Batches,
        flush_every=FLUSH_EVERY,
        flush_interval=FLUSH_INTERVAL_S,
        acks_late=True,
        bind=True,
        shared=False,
    )
    def diagnose_batch(self: Any, requests: Sequence[Any]) -> None:
        if "processor" not in state:  # a solo pool: no process of its own was started
            load()
        batch = [
            decoded_incoming(
                request.args[0],
                {"id": request.id, "expires": (request.request_dict or {}).get("expires")},
            )
            for request in requests
        ]
        result = state["processor"].process(batch)
        if result.error is not None:
            raise result.error
        _, stored = state["store"].save(result.finished)  # one transaction for the batch
        state["results"].store(
            [(key, outcome.model_dump_json()) for key, outcome in stored.items()]
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Run a celery-batches worker node with the settings of the environment until it stops."""
    worker_main(
        create_batches_app,
        prog="python -m training.benchmarks.batches_peer",
        description="Run a celery-batches worker: a Batches task on the snapshot queue.",
        argv=argv,
    )


if __name__ == "__main__":
    main()
