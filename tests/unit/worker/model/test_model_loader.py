from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import torch

from schemas.spec import SystemSpec
from schemas.vocabulary import SENSOR_KINDS
from service.errors import ConfigurationError
from worker.model import (
    CheckpointError,
    CheckpointMetadata,
    FeatureContract,
    ModelConfig,
    SpecGraph,
    UniversalTemporalGNN,
    collate,
    encode_window,
    load_checkpoint,
    save_checkpoint,
)
from worker.model.loader import MAGIC, read_manifest

HEADER = struct.Struct("<8sQ32s")
CONTRACT = FeatureContract(residual_scale=tuple(0.1 + 0.05 * i for i in range(len(SENSOR_KINDS))))
METADATA = CheckpointMetadata(
    name="universal",
    version="1.2.3",
    systems={"press": ("normal", "pump_wear", "valve_stick", "cylinder_leak")},
    training={"source": "test", "hours": 1.0, "seeds": [0]},
    metrics={"validation": {"fault_macro_f1": 0.5, "anomaly_auroc": None}},
    description="a test model",
)


def _model(config: ModelConfig, contract: FeatureContract = CONTRACT) -> UniversalTemporalGNN:
    torch.manual_seed(0)
    return UniversalTemporalGNN(config, contract).eval()


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    data = path.read_bytes()
    _, length, _ = HEADER.unpack_from(data)
    manifest = json.loads(data[HEADER.size : HEADER.size + length])
    return manifest, data[HEADER.size + length :]


def _repack(path: Path, manifest: dict[str, Any], weights: bytes) -> None:
    """Write a file in the documented layout with a valid manifest checksum."""
    body = json.dumps(manifest).encode()
    path.write_bytes(HEADER.pack(MAGIC, len(body), hashlib.sha256(body).digest()) + body + weights)


@pytest.fixture
def saved(tmp_path: Path, tiny_config: ModelConfig) -> tuple[Path, UniversalTemporalGNN, str]:
    model = _model(tiny_config)
    path = tmp_path / "models" / "universal.gnnckpt"
    sha = save_checkpoint(path, model=model, contract=CONTRACT, metadata=METADATA)
    return path, model, sha


def test_a_loaded_checkpoint_gives_the_same_outputs_as_the_saved_model(
    saved: tuple[Path, UniversalTemporalGNN, str],
    press_spec: SystemSpec,
    make_readings: Callable[..., dict[str, list[float | None]]],
) -> None:
    path, model, _ = saved
    loaded = load_checkpoint(path)
    graph = SpecGraph.build(press_spec, loaded.contract)
    batch = collate(
        [encode_window(graph, make_readings(press_spec, seed=s), 1.0, CONTRACT) for s in range(3)]
    )
    with torch.inference_mode():
        before, after = model(batch), loaded.model(batch)
    for field in fields(before):
        assert torch.equal(getattr(before, field.name), getattr(after, field.name)), field.name


def test_a_loaded_checkpoint_carries_contract_config_and_metadata(
    saved: tuple[Path, UniversalTemporalGNN, str], tiny_config: ModelConfig
) -> None:
    path, _, sha = saved
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    assert loaded.contract == CONTRACT
    assert loaded.config == tiny_config
    assert loaded.sha256 == sha == hashlib.sha256(_split(path)[1]).hexdigest()
    assert (loaded.name, loaded.version) == ("universal", "1.2.3")
    assert loaded.metadata.systems == METADATA.systems
    assert loaded.metadata.metrics == METADATA.metrics
    assert loaded.metadata.training == METADATA.training
    assert dt.datetime.fromisoformat(loaded.metadata.created_at or "").tzinfo is not None
    assert set(loaded.metadata.libraries) == {"torch", "torch_geometric", "gnn-service"}
    assert torch.equal(loaded.model.residual_scale, torch.tensor(CONTRACT.residual_scale))


def test_the_manifest_is_readable_without_building_the_model(
    saved: tuple[Path, UniversalTemporalGNN, str],
) -> None:
    path, _, sha = saved
    manifest = read_manifest(path)
    assert manifest["format"] == "gnn-service-checkpoint"
    assert manifest["format_version"] == 1
    assert manifest["weights"]["sha256"] == sha


def test_a_checkpoint_of_the_default_model_is_small(tmp_path: Path) -> None:
    path = tmp_path / "default.gnnckpt"
    save_checkpoint(path, model=_model(ModelConfig()), contract=CONTRACT, metadata=METADATA)
    assert path.stat().st_size < 5 * 1024 * 1024


def _truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _truncate_header(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:20])


def _flip_weight_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-200] ^= 0x01
    path.write_bytes(bytes(data))


def _flip_manifest_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[HEADER.size + 40] ^= 0x01
    path.write_bytes(bytes(data))


def _not_a_checkpoint(path: Path) -> None:
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 200)


def _edit_manifest(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        manifest, weights = _split(path)
        edit(manifest)
        _repack(path, manifest, weights)

    return apply


def _newer_format(manifest: dict[str, Any]) -> None:
    manifest["format_version"] = 2


def _without_contract(manifest: dict[str, Any]) -> None:
    del manifest["contract"]


def _wider_model(manifest: dict[str, Any]) -> None:
    manifest["model_config"]["hidden"] = 32


def _newer_vocabulary(manifest: dict[str, Any]) -> None:
    manifest["contract"]["sensor_kinds"].append("acoustic")
    manifest["contract"]["residual_scale"].append(1.0)


def _unknown_config_key(manifest: dict[str, Any]) -> None:
    manifest["model_config"]["attention"] = "linear"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate_half, "truncated"),
        (_truncate_header, "truncated checkpoint: 20 bytes"),
        (_flip_weight_byte, "weights SHA-256 mismatch"),
        (_flip_manifest_byte, "manifest SHA-256 mismatch"),
        (_not_a_checkpoint, "not a gnn-service checkpoint"),
        (_edit_manifest(_newer_format), "format version 2 is newer than this gnn-service reads"),
        (_edit_manifest(_without_contract), "missing keys contract"),
        (_edit_manifest(_wider_model), r"weights do not fit .* has shape \[16\], the model expects \[32\]"),
        (_edit_manifest(_newer_vocabulary), r"sensor_kinds vocabulary is newer .*'acoustic'"),
        (_edit_manifest(_unknown_config_key), "unknown keys attention"),
    ],
)  # fmt: skip
def test_a_damaged_or_incompatible_checkpoint_is_refused_with_the_reason(
    saved: tuple[Path, UniversalTemporalGNN, str],
    damage: Callable[[Path], None],
    message: str,
) -> None:
    path, _, _ = saved
    damage(path)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ConfigurationError)


def test_weights_swapped_for_another_models_are_refused_by_their_checksum(
    saved: tuple[Path, UniversalTemporalGNN, str], tmp_path: Path, tiny_config: ModelConfig
) -> None:
    path, _, _ = saved
    torch.manual_seed(1)
    other = tmp_path / "other.gnnckpt"
    save_checkpoint(
        other,
        model=UniversalTemporalGNN(tiny_config, CONTRACT),
        contract=CONTRACT,
        metadata=METADATA,
    )
    manifest, _ = _split(path)
    _, foreign = _split(other)
    manifest["weights"]["bytes"] = len(foreign)
    _repack(path, manifest, foreign)
    with pytest.raises(CheckpointError, match="weights SHA-256 mismatch"):
        load_checkpoint(path)


def test_weights_are_never_unpickled_as_arbitrary_objects(
    saved: tuple[Path, UniversalTemporalGNN, str],
) -> None:
    path, _, _ = saved
    manifest, _ = _split(path)
    buffer = io.BytesIO()
    torch.save({"when": dt.datetime(2024, 1, 1)}, buffer)  # a global outside the allow-list
    payload = buffer.getvalue()
    manifest["weights"] = {
        "encoding": "torch.save",
        "bytes": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    _repack(path, manifest, payload)
    with pytest.raises(CheckpointError, match="weights unreadable"):
        load_checkpoint(path)


def test_a_missing_file_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.gnnckpt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "missing.gnnckpt")


def test_metadata_that_is_not_json_ready_is_refused_on_save(
    tmp_path: Path, tiny_config: ModelConfig
) -> None:
    metadata = CheckpointMetadata(name="m", version="1", metrics={"auroc": float("nan")})
    with pytest.raises(ValueError, match="not JSON-ready"):
        save_checkpoint(
            tmp_path / "m.gnnckpt", model=_model(tiny_config), contract=CONTRACT, metadata=metadata
        )
    assert list(tmp_path.iterdir()) == []


def test_a_contract_that_does_not_fit_the_model_is_refused_on_save(
    tmp_path: Path, tiny_config: ModelConfig
) -> None:
    with pytest.raises(ValueError, match="window_steps"):
        save_checkpoint(
            tmp_path / "m.gnnckpt",
            model=_model(tiny_config),
            contract=FeatureContract(window_steps=30),
            metadata=METADATA,
        )
