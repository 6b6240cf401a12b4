from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch

from worker.model import (
    CheckpointError,
    CheckpointMetadata,
    DirectoryRegistry,
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

CONTRACT = FeatureContract()


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


@pytest.fixture
def made(tmp_path: Path, tiny_config: ModelConfig) -> dict[str, Path]:
    folder = tmp_path / "made"
    return {v: _checkpoint(folder, v, tiny_config, seed=i) for i, v in enumerate(("1", "2", "3"))}


def test_a_registered_checkpoint_is_copied_in_as_staged(
    tmp_path: Path, made: dict[str, Path]
) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    version = registry.register(made["1"])
    assert (version.name, version.version, version.status) == ("universal", "1", ModelStatus.STAGED)
    assert version.path == tmp_path / "models" / "universal" / "1.gnnckpt"
    assert version.path.read_bytes() == made["1"].read_bytes()
    assert version.sha256 == load_checkpoint(made["1"]).sha256
    assert version.metrics == {"validation": {"f1": 0.5}}
    assert registry.active("universal") is None
    assert registry.active_token("universal") is None


def test_name_and_version_given_at_registration_override_the_checkpoints(
    tmp_path: Path, made: dict[str, Path]
) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    version = registry.register(made["1"], name="press-line-4", version="2024.06")
    assert version.path == tmp_path / "models" / "press-line-4" / "2024.06.gnnckpt"
    assert [v.version for v in registry.list_versions("press-line-4")] == ["2024.06"]


def test_versions_are_listed_in_registration_order(tmp_path: Path, made: dict[str, Path]) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    for version in ("9", "10", "1.0"):
        registry.register(made["1"], version=version)
    assert [v.version for v in registry.list_versions()] == ["9", "10", "1.0"]


def test_activation_and_rollback_are_seen_by_another_registry_on_the_same_root(
    tmp_path: Path, made: dict[str, Path]
) -> None:
    admin = DirectoryRegistry(tmp_path / "models")
    worker = DirectoryRegistry(tmp_path / "models")
    for version in ("1", "2", "3"):
        admin.register(made[version])

    admin.activate("universal", "1")
    first = worker.active_token("universal")
    assert worker.active("universal") is not None
    assert worker.active("universal").version == "1"  # type: ignore[union-attr]

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


def test_concurrent_registrations_from_many_registries_all_survive(
    tmp_path: Path, tiny_config: ModelConfig
) -> None:
    paths = [_checkpoint(tmp_path / "made", str(i), tiny_config) for i in range(6)]
    errors: list[BaseException] = []

    def register(path: Path) -> None:
        try:
            DirectoryRegistry(tmp_path / "models").register(path)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    versions = DirectoryRegistry(tmp_path / "models").list_versions("universal")
    assert sorted(v.version for v in versions) == [str(i) for i in range(6)]


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda r, m: r.register(m["1"]), "universal version 1 is already registered"),
        (lambda r, m: r.activate("universal", "9"), r"no version '9' \(known: 1\)"),
        (lambda r, m: r.activate("other", "1"), "no model named 'other'"),
        (lambda r, m: r.rollback("universal"), "no earlier active version"),
        (lambda r, m: r.register(m["2"], name="../escape"), "invalid model name"),
        (lambda r, m: r.register(m["2"], version="../2"), "invalid model version"),
    ],
)  # fmt: skip
def test_impossible_registry_operations_are_refused_with_the_reason(
    tmp_path: Path, made: dict[str, Path], action: object, message: str
) -> None:
    registry = DirectoryRegistry(tmp_path / "models")
    registry.register(made["1"])
    with pytest.raises(RegistryError, match=message):
        action(registry, made)  # type: ignore[operator]


def test_a_corrupt_checkpoint_is_not_registered(tmp_path: Path, made: dict[str, Path]) -> None:
    data = bytearray(made["1"].read_bytes())
    data[-100] ^= 0xFF
    made["1"].write_bytes(bytes(data))
    registry = DirectoryRegistry(tmp_path / "models")
    with pytest.raises(CheckpointError, match="SHA-256 mismatch"):
        registry.register(made["1"])
    assert registry.list_versions() == []


def test_a_closed_registry_refuses_work(tmp_path: Path, made: dict[str, Path]) -> None:
    with DirectoryRegistry(tmp_path / "models") as registry:
        registry.register(made["1"])
    with pytest.raises(RegistryError, match="is closed"):
        registry.activate("universal", "1")


def test_the_bundled_checkpoint_serves_until_a_version_is_activated(
    tmp_path: Path, made: dict[str, Path]
) -> None:
    registry: ModelRegistry = DirectoryRegistry(tmp_path / "models")
    bundled = {"universal": made["3"]}
    shipped = resolve_model(registry, "universal", bundled=bundled)
    assert (shipped.origin, shipped.version, shipped.path) == ("bundled", "3", made["3"])

    registry.register(made["1"])
    assert resolve_model(registry, "universal", bundled=bundled).origin == "bundled"
    registry.activate("universal", "1")
    active = resolve_model(registry, "universal", bundled=bundled)
    assert (active.origin, active.version) == ("registry", "1")
    assert active.token == registry.active_token("universal")


def test_a_model_with_neither_active_version_nor_bundled_checkpoint_is_an_error(
    tmp_path: Path,
) -> None:
    with pytest.raises(RegistryError, match=r"no active version .* no bundled checkpoint"):
        resolve_model(DirectoryRegistry(tmp_path / "models"), "universal", bundled={})


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
