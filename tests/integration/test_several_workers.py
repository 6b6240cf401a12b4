"""Three worker processes on one Redis queue and one PostgreSQL database: a version activated
with `gnn-service models activate` (of the fallback model, then of a model routed to one
machine) reaches all of them without a restart, they share a
burst, and killing one mid-batch loses nothing and stores nothing twice (its messages come
back through the survivors' restore scan after the visibility timeout)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_fixtures import MODEL_NAME, env_settings, write_checkpoint
from pipeline_helpers import (
    TableLock,
    demo_snapshots,
    log_events,
    outcomes,
    stored_rows,
    waiting_writers,
)

from producer.client import ProducerClient
from schemas import load_spec
from schemas.result import Diagnosed
from service.launcher import WorkerProcess

StartWorker = Callable[..., WorkerProcess]
_PRESS = Path(__file__).parents[2] / "docs" / "examples" / "hydraulic_press.yaml"
CliRunner = Callable[..., object]

pytestmark = pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True)

_SHORT = {
    "GNN_BROKER__VISIBILITY_TIMEOUT_S": "10",
    "GNN_BROKER__RESTORE_CHECK_INTERVAL_S": "1",
    "GNN_WORKER__BATCH_SOFT_TIME_LIMIT_S": "4",
    "GNN_WORKER__BATCH_HARD_TIME_LIMIT_S": "5",
    "GNN_WORKER__SETTLE_BUDGET_S": "4",  # with the short visibility timeout, checked at start
}


def test_three_workers_switch_models_together_share_a_burst_and_survive_a_kill(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    gnn_cli: CliRunner,
) -> None:
    workers = [start_worker(f"w{i}", **_SHORT) for i in range(3)]

    checkpoint = write_checkpoint(Path(pipeline_env["GNN_DATA_DIR"]) / "v2.gnnckpt", "v2")
    for args in (("models", "register", str(checkpoint)), ("models", "activate", MODEL_NAME, "v2")):
        done = gnn_cli(*args, env=pipeline_env)
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    activated = time.monotonic()
    while not all(log_events(w.log_path, "model swapped between batches") for w in workers):
        assert time.monotonic() - activated < 30, "not every worker switched to v2"
        time.sleep(0.1)
    interval = env_settings(pipeline_env).model.registry_check_interval_s
    assert time.monotonic() - activated < interval + 10  # bounded by the check interval

    snapshots = demo_snapshots(300, "fleet")
    ids = [s.snapshot_id for s in snapshots]
    url = pipeline_env["GNN_DATABASE__URL"]
    with TableLock(url):  # every worker computes a batch and blocks in its INSERT
        client.submit_many(snapshots)
        deadline = time.monotonic() + 30
        while waiting_writers(url) < 3:
            assert time.monotonic() < deadline, workers[0].log_tail(20)
            time.sleep(0.05)
        assert workers[0].stop(sig=signal.SIGKILL) == -signal.SIGKILL  # mid-batch
    results = outcomes(client, ids, timeout=120)
    assert all(isinstance(r, Diagnosed) for r in results.values())
    versions = {r.diagnosis.model_version for r in results.values() if isinstance(r, Diagnosed)}
    assert versions == {"universal:v2"}
    assert set(stored_rows(url, ids).values()) == {1}
    for survivor in workers[1:]:
        assert log_events(survivor.log_path, "batch settled")  # the burst was shared
    assert client.queue_depth() == 0

    # A model routed to one machine reaches every surviving worker too.
    press = load_spec(_PRESS)
    checkpoint = write_checkpoint(checkpoint.with_name("press.gnnckpt"), "1.0", name="press")
    for args in (
        ("machines", "register", str(_PRESS)),
        ("models", "register", str(checkpoint), "--serves", press.name),
        ("models", "activate", "press", "1.0"),
    ):
        done = gnn_cli(*args, env=pipeline_env)
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
    activated = time.monotonic()
    while not all(
        any(press.name in e["routes"] for e in log_events(w.log_path, "model routes read"))
        for w in workers[1:]
    ):
        assert time.monotonic() - activated < 30, "not every worker read the new route"
        time.sleep(0.1)
    pressed = [
        s.model_copy(update={"spec": press.name}) for s in demo_snapshots(60, "fleet-press", press)
    ]
    routed = outcomes(client, [h.snapshot_id for h in client.submit_many(pressed)], timeout=120)
    assert {r.diagnosis.model_version for r in routed.values()} == {"press:1.0"}
