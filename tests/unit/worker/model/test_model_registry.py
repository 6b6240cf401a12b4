"""The model registry in the service database (SQLite and PostgreSQL), bundled checkpoints
and the choice between them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from registry_helpers import open_stores

from worker.model import (
    CheckpointError,
    CheckpointMetadata,
    FeatureContract,
    ModelConfig,
    ModelRegistry,
    ModelStatus,
    RegistryError,
    UniversalTemporalGNN,
    bundled_checkpoints,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
)
from worker.model_store import DatabaseRegistry

CONTRACT = FeatureContract()

NewRegistry = Callable[..., DatabaseRegistry]


def _checkpoint(folder: Path, version: str, config: ModelConfig, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path = folder / f"made-{version}.gnnckpt"
    save_checkpoint(
        path,
        model=UniversalTemporalGNN(config, CONTRACT),
        contract=CONTRACT,
        metadata=CheckpointMetadata(
            name="universal", version=version, metrics={"validation": {"f1": 0.5}}
        ),
    )
    return path


@contextlib.contextmanager
def _registry(url: str, cache_dir: Path) -> Iterator[DatabaseRegistry]:
    """A registry with its own engine and event loop, disposed at the end (no Settings)."""
    with open_stores(url, cache_dir) as (registry, _):
        yield registry


@pytest.fixture
def new_registry(migrated_database_url: str, tmp_path: Path) -> Iterator[NewRegistry]:
    """``new_registry(cache="cache")``: another registry on the same database; every one
    is disposed at the end of the test."""
    with contextlib.ExitStack() as stack:

        def make(cache: str = "cache") -> DatabaseRegistry:
            return stack.enter_context(_registry(migrated_database_url, tmp_path / cache))

        yield make


@pytest.fixture
def made(tmp_path: Path, tiny_config: ModelConfig) -> dict[str, Path]:
    folder = tmp_path / "made"
    return {v: _checkpoint(folder, v, tiny_config, seed=i) for i, v in enumerate(("1", "2", "3"))}


def test_a_registered_checkpoint_is_stored_as_staged_and_served_from_the_cache(
    tmp_path: Path, new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    registry = new_registry()
    version = registry.register(made["1"])
    assert (version.name, version.version, version.status) == ("universal", "1", ModelStatus.STAGED)
    assert version.path.parent == tmp_path / "cache"
    assert version.path.read_bytes() == made["1"].read_bytes()
    assert version.sha256 == load_checkpoint(made["1"]).sha256
    assert version.size_bytes == made["1"].stat().st_size
    assert version.metrics == {"validation": {"f1": 0.5}}
    assert registry.active("universal") is None
    assert registry.active_token("universal") is None


def test_a_registry_with_an_empty_cache_writes_the_checkpoint_from_the_database(
    tmp_path: Path, new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    new_registry().register(made["1"])
    made["1"].unlink()  # the database holds the only copy now
    other = new_registry(cache="other-host")
    version = other.get("universal", "1")
    assert version.path.parent == tmp_path / "other-host"
    assert load_checkpoint(version.path).sha256 == version.sha256


def test_name_and_version_given_at_registration_override_the_checkpoints(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    registry = new_registry()
    version = registry.register(made["1"], name="press-line-4", version="2024.06")
    assert (version.name, version.version) == ("press-line-4", "2024.06")
    assert version.path.name.startswith("press-line-4-2024.06-")
    assert [v.version for v in registry.list_versions("press-line-4")] == ["2024.06"]
    assert registry.list_versions("universal") == []


def test_versions_are_listed_in_registration_order(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    registry = new_registry()
    for version in ("9", "10", "1.0"):
        registry.register(made["1"], version=version)
    registry.register(made["2"], name="another", version="1")
    assert [(v.name, v.version) for v in registry.list_versions()] == [
        ("another", "1"),
        ("universal", "9"),
        ("universal", "10"),
        ("universal", "1.0"),
    ]


def test_activation_and_rollback_are_seen_by_another_registry_on_the_same_database(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    admin = new_registry("admin-cache")
    worker = new_registry("worker-cache")
    for version in ("1", "2", "3"):
        admin.register(made[version])

    admin.activate("universal", "1")
    first = worker.active_token("universal")
    assert first is not None
    active = worker.active("universal")
    assert active is not None
    assert active.version == "1"
    assert active.path.read_bytes() == made["1"].read_bytes()

    admin.activate("universal", "2")
    admin.activate("universal", "3")
    assert worker.active_token("universal") not in (None, first)
    statuses = {v.version: v.status for v in worker.list_versions("universal")}
    assert statuses == {"1": "retired", "2": "retired", "3": "active"}

    assert worker.rollback("universal").version == "2"
    assert admin.active("universal").version == "2"  # type: ignore[union-attr]
    assert admin.get("universal", "3").status is ModelStatus.RETIRED
    assert admin.rollback("universal").version == "1"
    assert worker.active_token("universal") == first
    with pytest.raises(RegistryError, match="no earlier active version"):
        worker.rollback("universal")


def test_activating_the_active_version_again_changes_nothing(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    registry = new_registry()
    registry.register(made["1"])
    registry.activate("universal", "1")
    token = registry.active_token("universal")
    assert registry.activate("universal", "1").status is ModelStatus.ACTIVE
    assert registry.active_token("universal") == token


def test_concurrent_registrations_from_many_registries_all_survive(
    tmp_path: Path, migrated_database_url: str, new_registry: NewRegistry, tiny_config: ModelConfig
) -> None:
    paths = [_checkpoint(tmp_path / "made", str(i), tiny_config) for i in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(paths))

    def register(index: int, path: Path) -> None:
        try:
            with _registry(migrated_database_url, tmp_path / f"cache-{index}") as registry:
                start.wait(timeout=30)  # every registry is open before any registers
                registry.register(path)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [
        threading.Thread(target=register, args=(index, path)) for index, path in enumerate(paths)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    versions = new_registry().list_versions("universal")
    assert sorted(v.version for v in versions) == [str(i) for i in range(6)]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        pytest.param(lambda r, m: r.register(m["1"]), "universal version 1 is already registered", id="duplicate"),
        pytest.param(lambda r, m: r.activate("universal", "9"), r"no version '9' \(known: 1\)", id="unknown-version"),
        pytest.param(lambda r, m: r.activate("other", "1"), "no model named 'other'", id="activate-unknown-name"),
        pytest.param(lambda r, m: r.get("other", "1"), "no model named 'other'", id="get-unknown-name"),
        pytest.param(lambda r, m: r.rollback("universal"), "no earlier active version", id="rollback-without-history"),
        pytest.param(lambda r, m: r.rollback("other"), "no model named 'other'", id="rollback-unknown-name"),
        pytest.param(lambda r, m: r.register(m["2"], name="../escape"), "invalid model name", id="invalid-name"),
        pytest.param(lambda r, m: r.register(m["2"], version="../2"), "invalid model version", id="invalid-version"),
    ],
)  # fmt: skip
def test_impossible_registry_operations_are_refused_with_the_reason(
    new_registry: NewRegistry, made: dict[str, Path], action: object, message: str
) -> None:
    registry = new_registry()
    registry.register(made["1"])
    with pytest.raises(RegistryError, match=message):
        action(registry, made)  # type: ignore[operator]
    assert [(v.version, v.status) for v in registry.list_versions()] == [("1", "staged")]


def test_a_corrupt_checkpoint_is_not_registered(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    data = bytearray(made["1"].read_bytes())
    data[-100] ^= 0xFF
    made["1"].write_bytes(bytes(data))
    registry = new_registry()
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        registry.register(made["1"])
    assert registry.list_versions() == []


def test_a_closed_registry_refuses_work(new_registry: NewRegistry, made: dict[str, Path]) -> None:
    with new_registry() as registry:
        registry.register(made["1"])
    with pytest.raises(RegistryError, match="is closed"):
        registry.activate("universal", "1")
    with pytest.raises(RegistryError, match="is closed"):
        registry.active_token("universal")


def test_the_bundled_checkpoint_serves_until_a_version_is_activated(
    new_registry: NewRegistry, made: dict[str, Path]
) -> None:
    database_registry = new_registry()
    registry: ModelRegistry = database_registry
    bundled = {"universal": made["3"]}
    shipped = resolve_model(registry, "universal", bundled=bundled)
    assert (shipped.origin, shipped.version, shipped.path) == ("bundled", "3", made["3"])

    registry.register(made["1"])
    assert resolve_model(registry, "universal", bundled=bundled).origin == "bundled"
    registry.activate("universal", "1")
    active = resolve_model(registry, "universal", bundled=bundled)
    assert (active.origin, active.version) == ("registry", "1")
    assert active.path.read_bytes() == made["1"].read_bytes()
    assert active.token == registry.active_token("universal")


def test_a_model_with_neither_active_version_nor_bundled_checkpoint_is_an_error(
    new_registry: NewRegistry,
) -> None:
    with pytest.raises(RegistryError, match=r"no active version .* no bundled checkpoint"):
        resolve_model(new_registry(), "universal", bundled={})


def test_the_shipped_universal_model_is_found_and_loads() -> None:
    shipped = bundled_checkpoints()
    assert "universal" in shipped
    loaded = load_checkpoint(shipped["universal"])
    assert loaded.name == "universal"
    assert set(loaded.metadata.systems) == {
        "cnc_machine",
        "excavator",
        "industrial_robot",
        "injection_molding_machine",
    }
    assert loaded.contract.residual_scale is not None
    assert shipped["universal"].stat().st_size < 5 * 1024 * 1024
