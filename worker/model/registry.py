"""Model versions: register checkpoints, activate one per name, roll back; find bundled ones.

:class:`ModelRegistry` is the one interface; :class:`worker.model_store.DatabaseRegistry`
implements it in the service database, so that every worker on every host sees the same
active version. A worker asks :meth:`ModelRegistry.active_token` between batches, which is
cheap, and reloads when the token changes; when no version is active it serves the
checkpoint shipped with the package (:func:`resolve_model`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from service.errors import ConfigurationError
from worker.model.loader import CHECKPOINT_SUFFIX, read_manifest

REGISTRY_FORMAT: Final = "gnn-service-model-registry"
REGISTRY_FORMAT_VERSION: Final = 1
BUNDLED_PACKAGE: Final = "worker.model"
BUNDLED_DIR: Final = "bundled"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_SERVES = re.compile(r"^[A-Za-z0-9_*?.-][A-Za-z0-9_*?.\[\]-]{0,127}$")


class RegistryError(ConfigurationError):
    """A registry operation cannot be done: unknown name or version, duplicate, no history."""


class ModelStatus(enum.StrEnum):
    """Life cycle of a model version."""

    STAGED = "staged"
    ACTIVE = "active"
    RETIRED = "retired"


@dataclass(frozen=True)
class ModelVersion:
    """One registered checkpoint.

    Attributes:
        name: Model name (``universal``).
        version: Version within the name (``1.0.0``).
        status: ``staged`` when registered, ``active`` when served, ``retired`` after.
        sha256: SHA-256 of the checkpoint's weights payload.
        created_at: When the checkpoint was saved (its own metadata).
        registered_at: When it was registered.
        path: The registry's copy of the checkpoint.
        size_bytes: Size of the checkpoint file.
        metrics: Validation metrics from the checkpoint.
        serves: Machine names, or shell-style patterns (``press_line_*``), whose snapshots
            this version diagnoses while active; empty for a model that serves only as the
            fallback (``GNN_MODEL__NAME``).
    """

    name: str
    version: str
    status: ModelStatus
    sha256: str
    created_at: str
    registered_at: str
    path: Path
    size_bytes: int
    metrics: Mapping[str, Any] = field(default_factory=dict)
    serves: tuple[str, ...] = ()


class ModelRegistry(Protocol):
    """Where model versions live and which one of each name is active."""

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all names), sorted by name then registration."""
        ...

    def get(self, name: str, version: str) -> ModelVersion:
        """One version; raises :class:`RegistryError` when unknown."""
        ...

    def register(
        self,
        checkpoint_path: str | Path,
        *,
        name: str | None = None,
        version: str | None = None,
        serves: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Verify a checkpoint and copy it in as ``staged`` (name and version default to
        the checkpoint's own, the machines it serves to those it was trained on)."""
        ...

    def activate(self, name: str, version: str) -> ModelVersion:
        """Make ``version`` the active one of ``name``; the previous active one is retired."""
        ...

    def rollback(self, name: str) -> ModelVersion:
        """Re-activate the previously active version; the current one is retired."""
        ...

    def active(self, name: str) -> ModelVersion | None:
        """The active version of ``name``, if any."""
        ...

    def active_token(self, name: str) -> str | None:
        """A cheap value that changes whenever the active version of ``name`` changes."""
        ...

    def close(self) -> None:
        """Release the registry; later calls raise :class:`RegistryError`."""
        ...


@dataclass(frozen=True)
class ResolvedModel:
    """The checkpoint a worker should serve for a model name.

    Attributes:
        name: Model name.
        version: Version served.
        path: Checkpoint file.
        origin: ``registry`` (the active version) or ``bundled`` (shipped with the package).
        token: The registry's active token at resolution (``None`` for bundled).
    """

    name: str
    version: str
    path: Path
    origin: Literal["registry", "bundled"]
    token: str | None


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name (letters, digits, ``_``, ``-``)."""
    if not _NAME.match(name):
        raise RegistryError(f"invalid model name {name!r}: use 1-64 letters, digits, _ or -")
    return name


def check_version(version: str) -> str:
    """Return ``version`` if it is a valid version (letters, digits, ``.``, ``_``, ``+``, ``-``)."""
    if not _VERSION.match(version):
        raise RegistryError(
            f"invalid model version {version!r}: use 1-64 letters, digits, ., _, + or -, "
            "starting with a letter or digit"
        )
    return version


def check_serves(patterns: Sequence[str]) -> tuple[str, ...]:
    """Return ``patterns`` (machine names or shell-style patterns), without repeats, if valid."""
    kept: list[str] = []
    for pattern in patterns:
        if not _SERVES.match(pattern):
            raise RegistryError(
                f"invalid machine name or pattern {pattern!r}: use 1-128 letters, digits, "
                "_, -, . and the wildcards * ? [ ]"
            )
        if pattern not in kept:
            kept.append(pattern)
    return tuple(kept)


def bundled_checkpoints() -> dict[str, Path]:
    """Checkpoints shipped as package data under ``worker/model/bundled/``, by model name."""
    folder = resources.files(BUNDLED_PACKAGE).joinpath(BUNDLED_DIR)
    if not folder.is_dir():
        return {}
    return {
        item.name[: -len(CHECKPOINT_SUFFIX)]: Path(str(item))
        for item in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if item.name.endswith(CHECKPOINT_SUFFIX) and item.is_file()
    }


def resolve_model(
    registry: ModelRegistry | None, name: str, *, bundled: Mapping[str, Path] | None = None
) -> ResolvedModel:
    """The checkpoint to serve for ``name``: the registry's active version, else the bundled one.

    Args:
        registry: The registry to ask first (``None``: bundled only).
        name: Model name.
        bundled: Bundled checkpoints by name (default: :func:`bundled_checkpoints`).

    Returns:
        Where the checkpoint is and where it came from.

    Raises:
        RegistryError: Neither an active version nor a bundled checkpoint exists.
        CheckpointError: The bundled checkpoint is corrupt.
    """
    if registry is not None:
        current = registry.active(name)
        if current is not None:
            token = registry.active_token(name)
            return ResolvedModel(name, current.version, current.path, "registry", token)
    shipped = bundled_checkpoints() if bundled is None else bundled
    path = shipped.get(name)
    if path is None:
        known = ", ".join(sorted(shipped)) or "none"
        raise RegistryError(
            f"model {name!r} has no active version in the registry and no bundled checkpoint "
            f"(bundled: {known})"
        )
    return ResolvedModel(name, str(read_manifest(path)["version"]), path, "bundled", None)
