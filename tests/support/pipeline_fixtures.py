"""Fixtures for tests that run real worker processes with real (small, seeded) models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from machines.catalog import builtin_names, builtin_spec
from producer.client import ProducerClient
from service.launcher import WorkerProcess
from service.settings import Settings
from worker.model import FeatureContract, ModelConfig, UniversalTemporalGNN
from worker.model.loader import CheckpointMetadata, save_checkpoint
from worker.model_store import open_registry

MODEL_NAME = "universal"


def write_checkpoint(
    path: Path, version: str, *, broken: bool = False, name: str = MODEL_NAME, seed: int = 0
) -> Path:
    """A small seeded model called ``name``.

    ``broken`` gives it a real defect: finite but huge embeddings for every component type
    the demo machines do not use. It loads and warms up (warm-up uses the demo machines),
    then overflows to inf and NaN on any machine with other component types.
    """
    torch.manual_seed(seed)
    contract = FeatureContract()
    model = UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract)
    if broken:
        demo_buckets = {
            contract.component_type_bucket(component.type)
            for name in builtin_names()
            for component in builtin_spec(name).components
        }
        with torch.no_grad():
            for bucket in range(contract.component_type_buckets):
                if bucket not in demo_buckets:
                    model.type_embedding.weight[bucket].fill_(3e38)
    metadata = CheckpointMetadata(name=name, version=version, description="test model")
    save_checkpoint(path, model=model, contract=contract, metadata=metadata)
    return path


def env_settings(env: dict[str, str]) -> Settings:
    """The settings a worker started with ``env`` has (data directory and database)."""
    return Settings(
        data_dir=Path(env["GNN_DATA_DIR"]), database={"url": env.get("GNN_DATABASE__URL")}
    )


def register_and_activate(env: dict[str, str], version: str, *, broken: bool = False) -> None:
    """Register a fresh checkpoint as ``version`` in the database of ``env`` and activate it."""
    settings = env_settings(env)
    source = write_checkpoint(
        settings.data_dir / f"incoming-{version}.gnnckpt", version, broken=broken
    )
    with open_registry(settings) as registry:
        registry.register(source)
        registry.activate(MODEL_NAME, version)


@pytest.fixture(params=["embedded", "redis"])
def pipeline_env(request: pytest.FixtureRequest, data_dir: Path) -> dict[str, str]:
    """Settings for a worker and its producers: the embedded default (embedded broker and
    SQLite) or production (Redis and PostgreSQL)."""
    env = {
        "GNN_DATA_DIR": str(data_dir),
        "GNN_LOG_LEVEL": "DEBUG",
        "GNN_MODEL__WARMUP_BATCHES": "1",
        "GNN_MODEL__REGISTRY_CHECK_INTERVAL_S": "0.5",
        "GNN_BATCHING__MAX_BATCH_SNAPSHOTS": "16",
        "GNN_BREAKER__FAILURE_THRESHOLD": "2",
        "GNN_BREAKER__RESET_TIMEOUT_S": "2",
        "GNN_BROKER__VISIBILITY_TIMEOUT_S": "60",
    }
    if request.param == "redis":
        env.update(request.getfixturevalue("redis_env"))
        env["GNN_DATABASE__URL"] = request.getfixturevalue("postgres_url")
    register_and_activate(env, "v1")
    return env


@pytest.fixture
def activate_model() -> Callable[..., None]:
    """``activate_model(env, version, broken=False)``: register and activate a model."""
    return register_and_activate


StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(data_dir: Path, pipeline_env: dict[str, str]) -> Iterator[StartWorker]:
    """Start real worker processes; every one is stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(name: str = "w1", **extra_env: str) -> WorkerProcess:
        process = WorkerProcess(
            env={**pipeline_env, **extra_env},
            hostname=f"{name}@%h",
            log_path=data_dir / f"{name}.log",
        )
        process.start()
        started.append(process)
        process.wait_ready(timeout_s=90)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def client(
    pipeline_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ProducerClient]:
    """A producer client on the settings of ``pipeline_env``."""
    for name, value in pipeline_env.items():
        monkeypatch.setenv(name, value)
    with ProducerClient(Settings()) as producer:
        yield producer
