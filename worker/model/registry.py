"""Model versions: register checkpoints, activate one per name, roll back; find bundled ones.

:class:`ModelRegistry` is the one interface; :class:`DirectoryRegistry` implements it on a
directory shared by the worker processes of one host (a database-backed registry will
implement the same protocol). A worker asks :meth:`ModelRegistry.active_token` between
batches, which is cheap, and reloads when the token changes; when no version is active it
serves the checkpoint shipped with the package (:func:`resolve_model`).

Layout of a :class:`DirectoryRegistry`::

    <root>/registry.json               state, replaced atomically (tmp file + os.replace)
    <root>/.lock                       fcntl lock taken by every change
    <root>/<name>/<version>.gnnckpt    registered checkpoints, copied in verbatim
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from worker.errors import ConfigurationError
from worker.model.loader import CHECKPOINT_SUFFIX, load_checkpoint, read_manifest

REGISTRY_FORMAT: Final = "gnn-service-model-registry"
REGISTRY_FORMAT_VERSION: Final = 1
BUNDLED_PACKAGE: Final = "worker.model"
BUNDLED_DIR: Final = "bundled"

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


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


class ModelRegistry(Protocol):
    """Where model versions live and which one of each name is active."""

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all names), sorted by name then registration."""
        ...

    def get(self, name: str, version: str) -> ModelVersion:
        """One version; raises :class:`RegistryError` when unknown."""
        ...

    def register(
        self, checkpoint_path: str | Path, *, name: str | None = None, version: str | None = None
    ) -> ModelVersion:
        """Verify a checkpoint and copy it in as ``staged`` (name and version default to
        the checkpoint's own)."""
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


class DirectoryRegistry:
    """A :class:`ModelRegistry` on a local directory, safe for several processes of a host.

    Args:
        root: The registry directory (created on the first change).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._state_file = self.root / "registry.json"
        self._closed = False
        self._cache_key: tuple[int, int, int] | None = None
        self._cache: dict[str, Any] = _empty_state()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}(root={str(self.root)!r}, {state})"

    def __enter__(self) -> DirectoryRegistry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Mark the registry closed (it holds no open files between calls)."""
        self._closed = True

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all names), by name then registration order."""
        models = self._read()["models"]
        names = sorted(models) if name is None else [name] if name in models else []
        return [
            self._version(model, version, entry)
            for model in names
            for version, entry in models[model]["versions"].items()
        ]

    def get(self, name: str, version: str) -> ModelVersion:
        """One version.

        Raises:
            RegistryError: Unknown name or version.
        """
        entry = self._entry(self._read(), name, version)
        return self._version(name, version, entry)

    def register(
        self, checkpoint_path: str | Path, *, name: str | None = None, version: str | None = None
    ) -> ModelVersion:
        """Verify a checkpoint (it must load) and copy it in as ``staged``.

        Raises:
            CheckpointError: The file is not a loadable checkpoint.
            RegistryError: Invalid name or version, or the version already exists.
        """
        self._check_open()
        source = Path(checkpoint_path)
        loaded = load_checkpoint(source)  # full verification: header, SHA-256, shapes
        model = check_name(name or loaded.name)
        tag = check_version(version or loaded.version)
        with self._locked():
            state = self._read(force=True)
            versions = state["models"].setdefault(model, {"versions": {}, "history": []})
            if tag in versions["versions"]:
                raise RegistryError(f"model {model} version {tag} is already registered")
            target = self.root / model / f"{tag}{CHECKPOINT_SUFFIX}"
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                shutil.copyfile(source, temporary)
                with temporary.open("rb") as handle:
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            finally:
                temporary.unlink(missing_ok=True)
            copied = read_manifest(target)
            versions["versions"][tag] = {
                "status": ModelStatus.STAGED.value,
                "sha256": copied["weights"]["sha256"],
                "created_at": copied["created_at"],
                "registered_at": _now(),
                "file": f"{model}/{tag}{CHECKPOINT_SUFFIX}",
                "size_bytes": target.stat().st_size,
                "metrics": copied["metrics"],
            }
            self._write(state)
        return self.get(model, tag)

    def activate(self, name: str, version: str) -> ModelVersion:
        """Make ``version`` the active version of ``name``; the previous active one retires.

        Raises:
            RegistryError: Unknown name or version.
        """
        self._check_open()
        with self._locked():
            state = self._read(force=True)
            entry = self._entry(state, name, version)
            model = state["models"][name]
            if entry["status"] != ModelStatus.ACTIVE.value:
                for other in model["versions"].values():
                    if other["status"] == ModelStatus.ACTIVE.value:
                        other["status"] = ModelStatus.RETIRED.value
                entry["status"] = ModelStatus.ACTIVE.value
                model["history"].append(version)
                self._write(state)
        return self.get(name, version)

    def rollback(self, name: str) -> ModelVersion:
        """Re-activate the version that was active before the current one.

        Raises:
            RegistryError: Unknown name, or no earlier active version.
        """
        self._check_open()
        with self._locked():
            state = self._read(force=True)
            model = state["models"].get(name)
            if model is None:
                raise RegistryError(f"no model named {name!r} in the registry")
            history: list[str] = model["history"]
            if len(history) < 2:
                raise RegistryError(f"model {name} has no earlier active version to roll back to")
            current = history.pop()
            model["versions"][current]["status"] = ModelStatus.RETIRED.value
            previous = history[-1]
            model["versions"][previous]["status"] = ModelStatus.ACTIVE.value
            self._write(state)
        return self.get(name, previous)

    def active(self, name: str) -> ModelVersion | None:
        """The active version of ``name``, or ``None``."""
        model = self._read()["models"].get(name)
        if model is None:
            return None
        for version, entry in model["versions"].items():
            if entry["status"] == ModelStatus.ACTIVE.value:
                return self._version(name, version, entry)
        return None

    def active_token(self, name: str) -> str | None:
        """``<version>@<sha256 prefix>`` of the active version, re-read only when the state
        file changed (one ``stat`` otherwise)."""
        version = self.active(name)
        return None if version is None else f"{version.version}@{version.sha256[:16]}"

    def _version(self, name: str, version: str, entry: Mapping[str, Any]) -> ModelVersion:
        return ModelVersion(
            name=name,
            version=version,
            status=ModelStatus(entry["status"]),
            sha256=str(entry["sha256"]),
            created_at=str(entry["created_at"]),
            registered_at=str(entry["registered_at"]),
            path=self.root / str(entry["file"]),
            size_bytes=int(entry["size_bytes"]),
            metrics=entry.get("metrics", {}),
        )

    def _entry(self, state: Mapping[str, Any], name: str, version: str) -> dict[str, Any]:
        model = state["models"].get(name)
        if model is None:
            raise RegistryError(f"no model named {name!r} in the registry")
        entry = model["versions"].get(version)
        if entry is None:
            known = ", ".join(model["versions"]) or "none"
            raise RegistryError(f"model {name} has no version {version!r} (known: {known})")
        assert isinstance(entry, dict)
        return entry

    def _check_open(self) -> None:
        if self._closed:
            raise RegistryError(f"registry at {self.root} is closed")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _read(self, *, force: bool = False) -> dict[str, Any]:
        self._check_open()
        try:
            stat = self._state_file.stat()
        except FileNotFoundError:
            self._cache_key, self._cache = None, _empty_state()
            return json.loads(json.dumps(self._cache)) if force else self._cache
        # os.replace gives every new state a new inode, so this key changes on every write.
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if force or key != self._cache_key:
            try:
                state = json.loads(self._state_file.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise RegistryError(
                    f"{self._state_file}: unreadable registry state: {exc}"
                ) from None
            if state.get("format") != REGISTRY_FORMAT or not isinstance(state.get("models"), dict):
                raise RegistryError(f"{self._state_file}: not a gnn-service model registry")
            if state.get("format_version") != REGISTRY_FORMAT_VERSION:
                raise RegistryError(
                    f"{self._state_file}: registry format version "
                    f"{state.get('format_version')} is not {REGISTRY_FORMAT_VERSION}"
                )
            self._cache_key, self._cache = key, state
            if force:  # the caller mutates its copy; the cache stays as read
                return json.loads(json.dumps(state))  # type: ignore[no-any-return]
        return self._cache

    def _write(self, state: Mapping[str, Any]) -> None:
        temporary = self._state_file.with_name(f".registry.json.{os.getpid()}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as handle:
                json.dump(state, handle, indent=2)  # insertion order = registration order
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self._state_file)
        finally:
            temporary.unlink(missing_ok=True)


def _empty_state() -> dict[str, Any]:
    return {"format": REGISTRY_FORMAT, "format_version": REGISTRY_FORMAT_VERSION, "models": {}}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
