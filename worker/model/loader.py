"""The one checkpoint format: save a trained model with everything needed to serve it.

A checkpoint (``.gnnckpt``) is one file::

    bytes 0-7      magic  b"GNNCKPT\\x00"
    bytes 8-15     manifest length L, unsigned 64-bit little-endian
    bytes 16-47    SHA-256 of the manifest bytes
    bytes 48-48+L  manifest: UTF-8 JSON (format, version, model config, feature contract,
                   systems and their fault vocabularies, training data, metrics, created_at,
                   library versions, and the weights' size and SHA-256)
    rest           weights: ``torch.save`` of the state dict, tensors only

Weights are read with ``torch.load(weights_only=True)``, never as arbitrary pickle. Every
byte is covered by a check: the magic, the manifest's SHA-256, the weights' size and SHA-256;
then the manifest's keys, the format version, the contract's vocabularies (never newer than
this code's) and every weight's shape against the model the config builds. A file failing
any of them is refused with :class:`CheckpointError` naming what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Final

import torch
from torch import Tensor

from schemas.vocabulary import CONNECTION_TYPES, SENSOR_KINDS
from service.errors import ConfigurationError
from worker.model.contract import FeatureContract
from worker.model.gnn import ModelConfig, UniversalTemporalGNN

CHECKPOINT_FORMAT: Final = "gnn-service-checkpoint"
"""Value of the manifest's ``format`` field."""

CHECKPOINT_FORMAT_VERSION: Final = 1
"""Newest checkpoint format version this code reads and the one it writes."""

CHECKPOINT_SUFFIX: Final = ".gnnckpt"
"""File name suffix of checkpoints."""

MAGIC: Final = b"GNNCKPT\x00"
_HEADER: Final = struct.Struct("<8sQ32s")
_MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
_REQUIRED_KEYS: Final = (
    "format",
    "format_version",
    "name",
    "version",
    "created_at",
    "libraries",
    "model_config",
    "contract",
    "systems",
    "training",
    "metrics",
    "weights",
)


class CheckpointError(ConfigurationError):
    """A checkpoint file is missing, corrupt, tampered with or incompatible with this code."""


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint says about itself, besides weights, config and contract.

    Attributes:
        name: Model name (``universal``).
        version: Model version (``1.0.0``).
        systems: The machines trained on, each with its fault vocabulary
            (``("normal", *spec.fault_ids)``).
        training: Description of the training data and run (systems, hours, seeds,
            faults, epochs); JSON-ready.
        metrics: Validation metrics; JSON-ready (no NaN: use ``None``).
        description: One line for people.
        created_at: ISO 8601 time of saving; filled by :func:`save_checkpoint` when ``None``.
        libraries: Versions of torch, torch_geometric and gnn-service; filled on save.
        calibration: Status thresholds calibrated on healthy validation windows
            (``training.calibration``), which workers use instead of the fixed
            ``GNN_DIAGNOSIS__*`` thresholds; empty for a model saved without.
    """

    name: str
    version: str
    systems: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    created_at: str | None = None
    libraries: Mapping[str, str] = field(default_factory=dict)
    calibration: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False, repr=False)
class LoadedModel:
    """A model read from a checkpoint, in eval mode, with its contract and metadata.

    Attributes:
        model: The network, on the requested device, in eval mode.
        contract: The feature contract to encode inputs with (residual scales included).
        config: The model's hyper-parameters.
        metadata: Name, version, systems, training data and metrics.
        sha256: SHA-256 of the weights payload (hex).
        path: The file it was read from.
    """

    model: UniversalTemporalGNN
    contract: FeatureContract
    config: ModelConfig
    metadata: CheckpointMetadata
    sha256: str
    path: Path

    @property
    def name(self) -> str:
        """Model name."""
        return self.metadata.name

    @property
    def version(self) -> str:
        """Model version."""
        return self.metadata.version

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, "
            f"sha256={self.sha256[:12]}, systems={sorted(self.metadata.systems)}, "
            f"path={str(self.path)!r})"
        )


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on."""
    versions: dict[str, str] = {}
    for name in ("torch", "torch_geometric", "gnn-service"):
        try:
            versions[name] = package_version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def save_checkpoint(
    path: str | Path,
    *,
    model: UniversalTemporalGNN,
    contract: FeatureContract,
    metadata: CheckpointMetadata,
) -> str:
    """Write ``model`` with ``contract`` and ``metadata`` to one checkpoint file, atomically.

    Args:
        path: Target file (conventionally ``<name>.gnnckpt``); parents are created.
        model: The trained network (its own contract must agree with ``contract`` on
            everything but the residual scales).
        contract: The feature contract to serve with, including fitted residual scales.
        metadata: Name, version, systems, training data and metrics.

    Returns:
        SHA-256 (hex) of the weights payload.

    Raises:
        ValueError: ``contract`` does not fit ``model``, or the metadata is not JSON-ready.
    """
    _check_same_architecture(model.contract, contract)
    buffer = io.BytesIO()
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    torch.save(state, buffer)
    weights = buffer.getvalue()
    digest = hashlib.sha256(weights).hexdigest()
    manifest = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "name": metadata.name,
        "version": metadata.version,
        "description": metadata.description,
        "created_at": metadata.created_at or datetime.now(UTC).isoformat(timespec="seconds"),
        "libraries": dict(metadata.libraries) or library_versions(),
        "model_config": model.config.to_dict(),
        "contract": contract.to_dict(),
        "systems": {name: list(vocab) for name, vocab in metadata.systems.items()},
        "training": dict(metadata.training),
        "metrics": dict(metadata.metrics),
        "calibration": dict(metadata.calibration),
        "weights": {"encoding": "torch.save", "bytes": len(weights), "sha256": digest},
    }
    try:
        text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"checkpoint metadata is not JSON-ready: {exc}") from None
    body = text.encode("utf-8")
    header = _HEADER.pack(MAGIC, len(body), hashlib.sha256(body).digest())

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(header + body + weights)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return digest


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and verify a checkpoint's manifest without building the model.

    Checks the header, the manifest's SHA-256, the required keys, the format version, the
    weights' size and SHA-256, and the contract's vocabularies.

    Args:
        path: The checkpoint file.

    Returns:
        The manifest as parsed JSON.

    Raises:
        CheckpointError: The file cannot be read or fails a check.
    """
    manifest, _ = _read(Path(path))
    return manifest


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> LoadedModel:
    """Read a checkpoint and build its model, in eval mode, on ``device``.

    Args:
        path: The checkpoint file.
        device: Where the model's tensors go.

    Returns:
        The model with its contract, config and metadata.

    Raises:
        CheckpointError: The file is missing, truncated, corrupt, tampered with (SHA-256
            mismatch), of an unknown format version, lacks keys, or its weights do not fit
            the model its config describes.
    """
    source = Path(path)
    manifest, weights = _read(source)
    try:
        config = ModelConfig.from_dict(manifest["model_config"])
        contract = FeatureContract.from_dict(manifest["contract"])
    except (ConfigurationError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: incompatible checkpoint: {exc}") from None
    try:
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad payload; all mean "corrupt"
        raise CheckpointError(f"{source}: corrupt checkpoint: weights unreadable: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{source}: corrupt checkpoint: weights are not a state dict")

    model = UniversalTemporalGNN(config, contract)
    _check_state_fits(source, model, state)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return LoadedModel(
        model=model,
        contract=contract,
        config=config,
        metadata=metadata_from_manifest(manifest),
        sha256=str(manifest["weights"]["sha256"]),
        path=source,
    )


def metadata_from_manifest(manifest: Mapping[str, Any]) -> CheckpointMetadata:
    """The :class:`CheckpointMetadata` stored in a verified manifest."""
    return CheckpointMetadata(
        name=str(manifest["name"]),
        version=str(manifest["version"]),
        systems={str(k): tuple(v) for k, v in manifest["systems"].items()},
        training=manifest["training"],
        metrics=manifest["metrics"],
        description=str(manifest.get("description", "")),
        created_at=str(manifest["created_at"]),
        libraries={str(k): str(v) for k, v in manifest["libraries"].items()},
        calibration=dict(manifest.get("calibration") or {}),
    )


def _read(source: Path) -> tuple[dict[str, Any], bytes]:
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{source}: cannot read checkpoint: {exc.strerror or exc}") from None
    if len(data) < _HEADER.size:
        if data and not MAGIC.startswith(data[: len(MAGIC)]):
            raise CheckpointError(f"{source}: not a gnn-service checkpoint (bad magic bytes)")
        raise CheckpointError(
            f"{source}: truncated checkpoint: {len(data)} bytes, shorter than the header"
        )
    magic, length, manifest_digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CheckpointError(f"{source}: not a gnn-service checkpoint (bad magic bytes)")
    end = _HEADER.size + length
    if length > _MAX_MANIFEST_BYTES or end > len(data):
        raise CheckpointError(
            f"{source}: truncated or corrupt checkpoint: header announces a {length}-byte "
            f"manifest but {len(data) - _HEADER.size} bytes follow"
        )
    body = data[_HEADER.size : end]
    if hashlib.sha256(body).digest() != manifest_digest:
        raise CheckpointError(f"{source}: corrupt checkpoint: manifest SHA-256 mismatch")
    try:
        manifest = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"{source}: corrupt checkpoint: manifest is not JSON: {exc}"
        ) from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{source}: corrupt checkpoint: manifest is not a JSON object")
    _check_manifest(source, manifest)

    weights = data[end:]
    expected = manifest["weights"]
    if len(weights) != expected["bytes"]:
        raise CheckpointError(
            f"{source}: truncated checkpoint: weights payload has {len(weights)} bytes, "
            f"manifest says {expected['bytes']}"
        )
    digest = hashlib.sha256(weights).hexdigest()
    if digest != expected["sha256"]:
        raise CheckpointError(
            f"{source}: weights SHA-256 mismatch (tampered or corrupt): file has "
            f"{digest[:12]}..., manifest says {str(expected['sha256'])[:12]}..."
        )
    return manifest, weights


def _check_manifest(source: Path, manifest: dict[str, Any]) -> None:
    if manifest.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{source}: not a gnn-service checkpoint (format {manifest.get('format')!r})"
        )
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{source}: invalid checkpoint format version {version!r}")
    if version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format version {version} is newer than this gnn-service "
            f"reads ({CHECKPOINT_FORMAT_VERSION}); upgrade gnn-service"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in manifest]
    if missing:
        raise CheckpointError(
            f"{source}: incompatible checkpoint: missing keys {', '.join(missing)}"
        )
    weights = manifest["weights"]
    if not (
        isinstance(weights, dict)
        and isinstance(weights.get("bytes"), int)
        and isinstance(weights.get("sha256"), str)
    ):
        raise CheckpointError(
            f"{source}: incompatible checkpoint: 'weights' needs bytes and sha256"
        )
    for key in ("model_config", "contract", "systems", "training", "metrics", "libraries"):
        if not isinstance(manifest[key], dict):
            raise CheckpointError(f"{source}: incompatible checkpoint: {key!r} is not an object")
    if not isinstance(manifest.get("calibration", {}), dict):
        raise CheckpointError(f"{source}: incompatible checkpoint: 'calibration' is not an object")
    contract = manifest["contract"]
    for key, ours in (("sensor_kinds", SENSOR_KINDS), ("connection_types", CONNECTION_TYPES)):
        theirs = contract.get(key)
        if isinstance(theirs, list) and tuple(theirs) != ours[: len(theirs)]:
            unknown = [item for item in theirs if item not in ours]
            detail = f"unknown {unknown}" if unknown else "a different order"
            raise CheckpointError(
                f"{source}: incompatible checkpoint: its contract's {key} vocabulary is newer "
                f"than this gnn-service's ({detail}); upgrade gnn-service"
            )


def _check_state_fits(source: Path, model: UniversalTemporalGNN, state: dict[str, Tensor]) -> None:
    expected = model.state_dict()
    problems: list[str] = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected {_few(unexpected)}")
    for key in sorted(set(expected) & set(state)):
        have, want = tuple(state[key].shape), tuple(expected[key].shape)
        if have != want:
            problems.append(f"{key} has shape {list(have)}, the model expects {list(want)}")
        elif state[key].dtype != expected[key].dtype:
            problems.append(f"{key} has dtype {state[key].dtype}, expected {expected[key].dtype}")
        elif state[key].is_floating_point() and not bool(torch.isfinite(state[key]).all()):
            problems.append(f"{key} holds non-finite values")
    if problems:
        raise CheckpointError(
            f"{source}: incompatible checkpoint: weights do not fit the model its config "
            f"describes: {'; '.join(problems[:5])}"
        )


def _few(names: list[str]) -> str:
    shown = ", ".join(names[:3])
    return shown if len(names) <= 3 else f"{shown} and {len(names) - 3} more"


def _check_same_architecture(model_contract: FeatureContract, contract: FeatureContract) -> None:
    keys = (
        "window_steps",
        "forecast_horizon",
        "sensor_kinds",
        "connection_types",
        "edge_attributes",
        "component_type_buckets",
    )
    differ = [key for key in keys if getattr(model_contract, key) != getattr(contract, key)]
    if differ:
        raise ValueError(f"contract differs from the model's on {', '.join(differ)}")
