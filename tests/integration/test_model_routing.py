"""Two models and three machines on one worker: each machine's snapshots are diagnosed by its
model (the diagnoses record model and spec versions), a mixed burst is cut into one forward
per model, activating a new version switches only its machines and a rollback restores
them; an unknown or retired machine name is a dead letter naming it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_fixtures import write_checkpoint
from pipeline_helpers import (
    demo_snapshots,
    log_events,
    outcomes,
    publish_raw,
    scrape,
    task_body,
    value,
)

from producer.client import ProducerClient
from schemas import Snapshot, load_spec
from schemas.result import DeadLettered, Diagnosed
from service.launcher import WorkerProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("pipeline_env", ["redis"], indirect=True),
]

StartWorker = Callable[..., WorkerProcess]
CliRunner = Callable[..., object]
_PRESS = Path(__file__).parents[2] / "docs" / "examples" / "hydraulic_press.yaml"


def _named(snapshots: list[Snapshot], machine: str) -> list[Snapshot]:
    return [s.model_copy(update={"spec": machine}) for s in snapshots]


def _burst(tag: str) -> dict[str, list[Snapshot]]:
    press = load_spec(_PRESS)
    line_2 = press.model_copy(update={"name": "press_line_2"})
    return {
        "excavator": demo_snapshots(12, f"{tag}-exc"),
        "hydraulic_press": _named(demo_snapshots(12, f"{tag}-hp", press), "hydraulic_press"),
        "press_line_2": _named(demo_snapshots(12, f"{tag}-pl2", line_2), "press_line_2"),
    }


def _versions(client: ProducerClient, burst: dict[str, list[Snapshot]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    ids = [s.snapshot_id for group in burst.values() for s in group]
    results = outcomes(client, ids, timeout=120)
    for machine, group in burst.items():
        for snapshot in group:
            result = results[snapshot.snapshot_id]
            assert isinstance(result, Diagnosed), result
            found.setdefault(machine, set()).add(
                f"{result.diagnosis.model_version} spec {result.diagnosis.spec_version}"
            )
    return found


def test_two_models_three_machines_one_worker(
    start_worker: StartWorker,
    client: ProducerClient,
    pipeline_env: dict[str, str],
    gnn_cli: CliRunner,
    tmp_path: Path,
) -> None:
    def cli(*args: str) -> str:
        done = gnn_cli(*args, env=pipeline_env)
        assert done.returncode == 0, done.stderr  # type: ignore[attr-defined]
        return str(done.stdout)  # type: ignore[attr-defined]

    line_2 = tmp_path / "press_line_2.yaml"
    line_2.write_text(_PRESS.read_text().replace("name: hydraulic_press", "name: press_line_2"))
    cli("machines", "register", str(_PRESS))
    cli("machines", "register", str(line_2))
    for version, seed in (("1.0", 1), ("2.0", 2)):
        checkpoint = write_checkpoint(
            tmp_path / f"press-{version}.gnnckpt", version, name="press", seed=seed
        )
        cli(
            "models",
            "register",
            str(checkpoint),
            "--serves",
            "hydraulic_press",
            "--serves",
            "press_line_*",
        )
    assert "serves hydraulic_press, press_line_2" in cli("models", "activate", "press", "1.0")

    worker = start_worker(
        "w1", GNN_BATCHING__MAX_WAIT_MS="200", GNN_BATCHING__MAX_BATCH_SNAPSHOTS="64"
    )
    before = scrape(f"{worker.base_url}/metrics")
    burst = _burst("first")
    client.submit_many([s for group in zip(*burst.values(), strict=True) for s in group])
    assert _versions(client, burst) == {
        "excavator": {"universal:v1 spec 1"},
        "hydraulic_press": {"press:1.0 spec 1"},
        "press_line_2": {"press:1.0 spec 1"},
    }
    after = scrape(f"{worker.base_url}/metrics")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("gnn_model_snapshots_total", model="universal") == 12
    assert delta("gnn_model_snapshots_total", model="press") == 24
    forwards = sum(
        delta("gnn_model_batch_snapshots_count", model=m) for m in ("universal", "press")
    )
    assert forwards > delta("gnn_batches_total", closed_by="size") + delta(
        "gnn_batches_total", closed_by="wait"
    )  # a mixed micro-batch was cut into one forward per model

    # A new version of press switches its two machines only; a rollback restores them.
    assert "serves" in cli("models", "activate", "press", "2.0")
    _wait_for(worker, "routed model loaded", swap=True)
    second = _burst("second")
    client.submit_many([s for group in second.values() for s in group])
    assert _versions(client, second) == {
        "excavator": {"universal:v1 spec 1"},
        "hydraulic_press": {"press:2.0 spec 1"},
        "press_line_2": {"press:2.0 spec 1"},
    }
    cli("models", "rollback", "press")
    _wait_for(worker, "routed model loaded", swap=True, count=2)
    third = _burst("third")
    client.submit_many([s for group in third.values() for s in group])
    assert _versions(client, third)["press_line_2"] == {"press:1.0 spec 1"}

    # A machine nobody registered, and one retired, are dead letters that name them.
    reads = len(log_events(worker.log_path, "machines read from the registry"))
    cli("machines", "retire", "press_line_2")
    deadline = time.monotonic() + 30  # the worker reads the registry within its check interval
    while len(log_events(worker.log_path, "machines read from the registry")) == reads:
        assert time.monotonic() < deadline, worker.log_tail(30)
        time.sleep(0.1)
    unknown = burst["excavator"][0].model_dump(mode="json") | {
        "snapshot_id": "routing-unknown",
        "spec": "press_line_9",
    }
    retired = third["press_line_2"][0].model_dump(mode="json") | {"snapshot_id": "routing-retired"}
    for body in (unknown, retired):
        publish_raw(
            client, task_body(body), content_type="application/json", task_id=body["snapshot_id"]
        )
    letters = outcomes(client, ["routing-unknown", "routing-retired"])
    for key, words in (("routing-unknown", "press_line_9"), ("routing-retired", "retired")):
        letter = letters[key]
        assert isinstance(letter, DeadLettered), letter
        assert letter.dead_letter.reason == "unknown_spec"
        assert letter.dead_letter.field == "spec"
        assert words in letter.dead_letter.detail


def test_activation_is_refused_with_a_reason(
    pipeline_env: dict[str, str], gnn_cli: CliRunner, tmp_path: Path
) -> None:
    def run(*args: str) -> tuple[int, str]:
        done = gnn_cli(*args, env=pipeline_env)
        return done.returncode, str(done.stdout) + str(done.stderr)  # type: ignore[attr-defined]

    press = write_checkpoint(tmp_path / "press.gnnckpt", "1.0", name="press", seed=1)
    other = write_checkpoint(tmp_path / "other.gnnckpt", "1.0", name="other", seed=2)
    broken = write_checkpoint(tmp_path / "broken.gnnckpt", "1.0", name="broken", broken=True)
    assert run("models", "register", str(press), "--serves", "hydraulic_press")[0] == 0
    assert run("models", "register", str(other), "--serves", "hydraulic_*")[0] == 0
    assert run("models", "register", str(broken), "--serves", "hydraulic_press")[0] == 0

    code, text = run("models", "activate", "press", "1.0")
    assert code == 1
    assert "hydraulic_press (not registered)" in text
    assert run("machines", "register", str(_PRESS))[0] == 0
    code, text = run("models", "activate", "broken", "1.0")  # overflows on the press's parts
    assert code == 1
    assert "cannot serve as a worker would run it" in text
    assert run("models", "activate", "press", "1.0")[0] == 0
    code, text = run("models", "activate", "other", "1.0")
    assert code == 1
    assert "served by model press already" in text
    assert run("models", "deactivate", "press")[0] == 0
    assert run("models", "activate", "other", "1.0")[0] == 0
    assert run("machines", "retire", "hydraulic_press")[0] == 0
    code, text = run("models", "activate", "press", "1.0")
    assert code == 1
    assert "hydraulic_press (retired)" in text
    assert len(text.strip().splitlines()) == 1


def _wait_for(worker: WorkerProcess, message: str, *, swap: bool, count: int = 1) -> None:
    deadline = time.monotonic() + 60
    while len([e for e in log_events(worker.log_path, message) if e.get("swap") == swap]) < count:
        assert time.monotonic() < deadline, worker.log_tail(30)
        time.sleep(0.2)
