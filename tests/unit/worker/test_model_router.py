"""Routing machines to models: the routes, a worker's cache of routed models (loaded on first
use, bounded, following activations) and a micro-batch cut into one forward per model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch
from pipeline_helpers import demo_snapshots, received
from prometheus_client import CollectorRegistry
from registry_helpers import open_stores

from schemas import SystemSpec
from schemas.result import Diagnosed
from service.db.machines import MachineRegistry
from service.errors import ModelError
from service.metrics_models import MAX_MODEL_LABELS, ModelFamilies
from service.settings import Settings
from worker.engine import ModelRunner
from worker.machine_book import MachineBook
from worker.model import CheckpointMetadata, FeatureContract, ModelConfig, UniversalTemporalGNN
from worker.model.loader import save_checkpoint
from worker.model.registry import ModelStatus, ModelVersion
from worker.model_router import ModelRouter, route, routes_of, weight_bytes
from worker.model_source import ModelSource
from worker.model_store import DatabaseRegistry
from worker.pipeline import BatchProcessor

Stores = tuple[DatabaseRegistry, MachineRegistry]


def _version(name: str, *serves: str) -> ModelVersion:
    return ModelVersion(
        name, "1", ModelStatus.ACTIVE, "0" * 64, "", "", Path("x"), 0, serves=serves
    )


def test_exact_names_win_over_patterns_and_longer_patterns_over_shorter() -> None:
    routes = routes_of(
        [
            _version("wide", "press_*"),
            _version("narrow", "press_line_*"),
            _version("one", "press_line_3"),
            _version("universal", "excavator"),  # the fallback's claims are not routes
        ],
        "universal",
    )
    assert route("press_line_3", routes, "universal") == "one"
    assert route("press_line_4", routes, "universal") == "narrow"
    assert route("press_9", routes, "universal") == "wide"
    assert route("excavator", routes, "universal") == "universal"


@pytest.fixture
def stores(migrated_database_url: str, tmp_path: Path) -> Iterator[Stores]:
    with open_stores(migrated_database_url, tmp_path / "cache") as pair:
        yield pair


def _register(
    models: DatabaseRegistry, folder: Path, name: str, version: str, *serves: str
) -> None:
    torch.manual_seed(len(name) + len(version))
    contract = FeatureContract()
    path = folder / f"{name}-{version}.gnnckpt"
    save_checkpoint(
        path,
        model=UniversalTemporalGNN(ModelConfig(hidden=16, heads=2), contract),
        contract=contract,
        metadata=CheckpointMetadata(name=name, version=version),
    )
    models.register(path, serves=serves)


def _router(stores: Stores, tmp_path: Path, *, cache_max_bytes: int = 1 << 30) -> ModelRouter:
    models, machines = stores
    settings = Settings(data_dir=tmp_path, model={"warmup_batches": 1})
    book = MachineBook(machines)
    book.start()
    router = ModelRouter(
        registry=models,
        fallback="universal",
        load=ModelSource(settings, models).load_model,
        machines=book,
        cache_max_bytes=cache_max_bytes,
    )
    router.refresh(force=True)
    return router


def test_routed_models_load_on_first_use_and_follow_activations(
    stores: Stores, tmp_path: Path
) -> None:
    models, _ = stores
    for version in ("1", "2"):
        _register(models, tmp_path, "digger", version, "excavator")
    models.activate("digger", "1")
    router = _router(stores, tmp_path)
    assert router.runner_for("cnc_machine") is None  # the fallback's
    assert router.loaded == {}
    first = router.runner_for("excavator")
    assert first is not None
    assert first.version == "digger:1"
    assert first.warm
    assert router.runner_for("excavator") is first
    assert not router.refresh()  # nothing changed
    models.activate("digger", "2")
    assert router.refresh()
    assert router.loaded["digger"].version == "digger:2"  # loaded before its next batch
    models.deactivate("digger")
    router.refresh()
    assert router.loaded == {}
    assert router.runner_for("excavator") is None


def test_the_least_recently_used_model_is_unloaded_beyond_the_cache_bound(
    stores: Stores, tmp_path: Path
) -> None:
    models, _ = stores
    _register(models, tmp_path, "digger", "1", "excavator")
    _register(models, tmp_path, "miller", "1", "cnc_machine")
    models.activate("digger", "1")
    models.activate("miller", "1")
    router = _router(stores, tmp_path, cache_max_bytes=1)
    digger = router.runner_for("excavator")
    assert digger is not None
    assert weight_bytes(digger) > 1
    assert list(router.loaded) == ["digger"]  # alone above the bound: kept
    router.runner_for("cnc_machine")
    assert list(router.loaded) == ["miller"]


def test_a_model_that_cannot_load_fails_its_snapshots_without_reloading_each_batch(
    stores: Stores, tmp_path: Path
) -> None:
    models, machines = stores
    _register(models, tmp_path, "digger", "1", "excavator")
    models.activate("digger", "1")
    calls: list[str] = []

    def failing(name: str, specs: Sequence[SystemSpec]) -> ModelRunner:
        calls.append(name)
        raise RuntimeError("no such device")

    book = MachineBook(machines)
    book.start()
    router = ModelRouter(
        registry=models, fallback="universal", load=failing, machines=book, cache_max_bytes=1
    )
    router.refresh(force=True)
    for _ in range(3):
        with pytest.raises(ModelError, match="digger:1"):
            router.runner_for("excavator")
    assert calls == ["digger"]


def test_a_mixed_micro_batch_is_one_forward_per_model(stores: Stores, tmp_path: Path) -> None:
    models, _ = stores
    _register(models, tmp_path, "digger", "1", "excavator")
    models.activate("digger", "1")
    router = _router(stores, tmp_path)
    settings = Settings(data_dir=tmp_path, model={"warmup_batches": 1})
    fallback = ModelSource(settings, models).load()
    processor = BatchProcessor(
        settings=settings,
        runner=fallback,
        resolve_spec=router.machines,
        router=router,
        spec_version=router.machines.version_of,
    )
    snapshots = demo_snapshots(4, "mixed") + demo_snapshots(4, "mixed-cnc", "cnc_machine")
    batch = [received(s) for s in snapshots]
    result = processor.process(batch)
    assert {k: v.snapshots for k, v in result.models.items()} == {
        "digger:1": 4,
        f"universal:{fallback.version.split(':')[1]}": 4,
    }
    diagnosed = [item.outcome for item in result.finished]
    assert all(isinstance(d, Diagnosed) for d in diagnosed)
    by_system = {
        (d.diagnosis.model_version.split(":")[0], d.diagnosis.spec_version)
        for d in diagnosed
        if isinstance(d, Diagnosed)
    }
    assert by_system == {("digger", "1"), ("universal", "1")}


def test_model_labels_are_bounded() -> None:
    families = ModelFamilies(CollectorRegistry(), latency_buckets=(1.0,), size_buckets=(1.0,))
    labels = [families.label(f"m{i}:1") for i in range(MAX_MODEL_LABELS + 3)]
    assert labels[:MAX_MODEL_LABELS] == [f"m{i}" for i in range(MAX_MODEL_LABELS)]
    assert set(labels[MAX_MODEL_LABELS:]) == {"other"}
    assert families.label("m0:2") == "m0"
