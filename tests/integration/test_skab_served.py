"""A model trained on the SKAB pump rig (training/benchmarks/skab/run.py, a small seeded run) is
registered and served by a worker like any other version: a SKAB window, sent with the rig's
spec inline, comes back diagnosed through the queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pipeline_fixtures import env_settings

from producer.client import ProducerClient
from schemas import Snapshot
from schemas.result import Diagnosed
from service.launcher import WorkerProcess
from worker.model_store import open_registry

StartWorker = Callable[..., WorkerProcess]

SKAB = Path(__file__).resolve().parents[3] / "shared" / "data" / "skab"

pytestmark = [
    pytest.mark.parametrize("pipeline_env", ["embedded"], indirect=True),
    pytest.mark.skipif(not SKAB.is_dir(), reason=f"SKAB data not at {SKAB}"),
]


def test_a_skab_model_serves_a_skab_snapshot_through_the_queue(
    start_worker: StartWorker, client: ProducerClient, pipeline_env: dict[str, str]
) -> None:
    from training.benchmarks.skab.dataset import SENSOR_COLUMNS, read_recording
    from training.benchmarks.skab.report import save_model, serving_spec
    from training.benchmarks.skab.run import SkabBenchConfig, run_skab_benchmark

    config = SkabBenchConfig(experiments=("valve1/0", "valve2/0"), epochs=1)
    run = run_skab_benchmark(config, SKAB)
    spec = serving_spec(SKAB)
    checkpoint = Path(pipeline_env["GNN_DATA_DIR"]) / "skab.gnnckpt"
    save_model(run, checkpoint, spec)
    with open_registry(env_settings(pipeline_env)) as registry:
        version = registry.register(checkpoint)
        registry.activate(version.name, version.version)
    start_worker("w1", GNN_MODEL__NAME=version.name)

    recording = read_recording(SKAB / "valve1" / "1.csv")
    rows = recording.values[600 : 600 + config.window_steps]
    ids = [sensor.id for sensor in spec.sensors]
    assert len(ids) == len(SENSOR_COLUMNS)
    snapshot = Snapshot(
        snapshot_id="skab-valve1-1-row-630",
        system_id="skab-rig",
        spec=spec,
        window={
            "start": datetime(2020, 3, 9, 12, 0, tzinfo=UTC),
            "sample_rate_hz": 1.0,
            "readings": {sid: rows[:, i].tolist() for i, sid in enumerate(ids)},
        },
    )
    client.submit(snapshot)
    outcome = client.result(snapshot.snapshot_id, timeout=60)
    assert isinstance(outcome, Diagnosed), outcome
    assert outcome.diagnosis.model_version == f"{version.name}:{version.version}"
    assert {c.component_id for c in outcome.diagnosis.components} == {c.id for c in spec.components}
