"""The model registry in the database, so that every worker on every host sees one active version.

Checkpoints are stored as bytes in ``model_versions``; ``model_activations`` keeps the
activation history of each name (its newest row is the active version; a rollback deletes
the newest row). A worker reads :meth:`DatabaseRegistry.active_token` between batches (one
indexed row) and reloads when it changes. Checkpoints are written to a local cache directory,
named by their SHA-256, before they are loaded.

The registry is synchronous, as the :class:`~worker.model.registry.ModelRegistry` protocol
is: it runs its queries through ``run``, the process's way to wait for a coroutine.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from service.db.database import Database, connected
from service.db.schema import model_activations, model_versions
from service.db.sync_store import Runner, SyncStore
from service.settings import Settings
from worker.model.loader import CHECKPOINT_SUFFIX, load_checkpoint, read_manifest
from worker.model.registry import (
    ModelStatus,
    ModelVersion,
    RegistryError,
    check_name,
    check_serves,
    check_version,
)

_SUMMARY = [c for c in model_versions.c if c.name != "checkpoint"]


class DatabaseRegistry(SyncStore):
    """A :class:`~worker.model.registry.ModelRegistry` on the service database.

    Args:
        database: The process's database.
        run: Runs a coroutine to completion on the database's event loop.
        cache_dir: Where checkpoints are written before loading.
    """

    def __init__(self, database: Database, *, run: Runner, cache_dir: Path) -> None:
        super().__init__(database, run=run, what="model registry")
        self.cache_dir = Path(cache_dir)

    def _closed_error(self) -> RegistryError:
        return RegistryError("the model registry is closed")

    # protocol ---------------------------------------------------------------------

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of ``name``, or of all names), by name then registration order."""
        query = select(*_SUMMARY).order_by(model_versions.c.name, model_versions.c.id)
        if name is not None:
            query = query.where(model_versions.c.name == name)
        return [self._version(row) for row in self._query(query)]

    def get(self, name: str, version: str) -> ModelVersion:
        """One version, its checkpoint written to the cache.

        Raises:
            RegistryError: Unknown name or version.
        """
        row = self._one(name, version)
        return self._materialize(self._version(row))

    def register(
        self,
        checkpoint_path: str | Path,
        *,
        name: str | None = None,
        version: str | None = None,
        serves: Sequence[str] | None = None,
    ) -> ModelVersion:
        """Verify a checkpoint (it must load) and store it as ``staged``.

        ``serves`` defaults to the machines the checkpoint was trained on.

        Raises:
            CheckpointError: The file is not a loadable checkpoint.
            RegistryError: Invalid name or version, or the version already exists.
        """
        self._check_open()
        source = Path(checkpoint_path)
        loaded = load_checkpoint(source)  # full verification: header, SHA-256, shapes
        model = check_name(name or loaded.name)
        tag = check_version(version or loaded.version)
        machines = check_serves(list(loaded.metadata.systems) if serves is None else serves)
        manifest = read_manifest(source)
        payload = source.read_bytes()
        row = {
            "name": model,
            "version": tag,
            "status": ModelStatus.STAGED.value,
            "sha256": manifest["weights"]["sha256"],
            "created_at": str(manifest["created_at"]),
            "registered_at": datetime.now(UTC),
            "size_bytes": len(payload),
            "metrics": manifest.get("metrics", {}),
            "checkpoint": payload,
            "serves": list(machines),
        }

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(insert(model_versions).values(row))

        try:
            self._transaction(write, what="model registration")
        except IntegrityError:
            raise RegistryError(f"model {model} version {tag} is already registered") from None
        return self.get(model, tag)

    def activate(self, name: str, version: str) -> ModelVersion:
        """Make ``version`` the active version of ``name``; the previous active one retires.

        Raises:
            RegistryError: Unknown name or version.
        """
        self._one(name, version)

        async def write(connection: AsyncConnection) -> None:
            current = await _active_version(connection, name)
            if current == version:
                return
            await _set_status(connection, name, ModelStatus.ACTIVE, ModelStatus.RETIRED)
            await connection.execute(
                update(model_versions)
                .where(model_versions.c.name == name, model_versions.c.version == version)
                .values(status=ModelStatus.ACTIVE.value)
            )
            await connection.execute(
                insert(model_activations).values(
                    name=name, version=version, activated_at=datetime.now(UTC)
                )
            )

        self._transaction(write, what="model activation")
        return self.get(name, version)

    def rollback(self, name: str) -> ModelVersion:
        """Re-activate the version that was active before the current one.

        Raises:
            RegistryError: Unknown name, or no earlier active version.
        """
        if not self.list_versions(name):
            raise RegistryError(f"no model named {name!r} in the registry")
        previous: list[str] = []

        async def write(connection: AsyncConnection) -> None:
            await _active_version(connection, name)
            history = (
                await connection.execute(
                    select(model_activations.c.id, model_activations.c.version)
                    .where(model_activations.c.name == name)
                    .order_by(model_activations.c.id.desc())
                    .limit(2)
                )
            ).all()
            if len(history) < 2:
                raise RegistryError(f"model {name} has no earlier active version to roll back to")
            (newest_id, _), (_, earlier) = history
            await connection.execute(
                delete(model_activations).where(model_activations.c.id == newest_id)
            )
            await _set_status(connection, name, ModelStatus.ACTIVE, ModelStatus.RETIRED)
            await connection.execute(
                update(model_versions)
                .where(model_versions.c.name == name, model_versions.c.version == earlier)
                .values(status=ModelStatus.ACTIVE.value)
            )
            previous.append(earlier)

        self._transaction(write, what="model rollback")
        return self.get(name, previous[0])

    def active(self, name: str) -> ModelVersion | None:
        """The active version of ``name`` with its checkpoint in the cache, or ``None``."""
        rows = self._query(
            select(*_SUMMARY).where(
                model_versions.c.name == name, model_versions.c.status == ModelStatus.ACTIVE.value
            )
        )
        return self._materialize(self._version(rows[0])) if rows else None

    def active_token(self, name: str) -> str | None:
        """``<version>@<activation number>``: changes with every activation and rollback."""
        rows = self._query(
            select(model_activations.c.id, model_activations.c.version)
            .where(model_activations.c.name == name)
            .order_by(model_activations.c.id.desc())
            .limit(1)
        )
        return f"{rows[0].version}@{rows[0].id}" if rows else None

    def deactivate(self, name: str) -> ModelVersion:
        """Retire the active version of ``name``: its machines go back to the fallback model.

        Raises:
            RegistryError: ``name`` has no active version.
        """
        current = self.active(name)
        if current is None:
            raise RegistryError(f"model {name} has no active version to deactivate")

        async def write(connection: AsyncConnection) -> None:
            await _active_version(connection, name)
            await _set_status(connection, name, ModelStatus.ACTIVE, ModelStatus.RETIRED)
            await connection.execute(
                delete(model_activations).where(model_activations.c.name == name)
            )

        self._transaction(write, what="model deactivation")
        return self.get(name, current.version)

    def active_versions(self) -> list[ModelVersion]:
        """The active version of every model name (checkpoints not written to the cache)."""
        rows = self._query(
            select(*_SUMMARY)
            .where(model_versions.c.status == ModelStatus.ACTIVE.value)
            .order_by(model_versions.c.name)
        )
        return [self._version(row) for row in rows]

    def routing_token(self) -> str:
        """Changes with every activation, rollback and deactivation of any model name."""
        row = self._query(
            select(func.max(model_activations.c.id), func.count(model_activations.c.id))
        )[0]
        return f"{row[0]}:{row[1]}"

    # helpers ----------------------------------------------------------------------

    def _one(self, name: str, version: str) -> Any:
        rows = self._query(
            select(*_SUMMARY).where(
                model_versions.c.name == name, model_versions.c.version == version
            )
        )
        if rows:
            return rows[0]
        known = [item.version for item in self.list_versions(name)]
        if not known:
            raise RegistryError(
                f"no model named {name!r} in the registry (a bundled model is served without "
                f"being registered; register a checkpoint first: gnn-service models register "
                f"FILE --version {version})"
            )
        raise RegistryError(f"model {name} has no version {version!r} (known: {', '.join(known)})")

    def _materialize(self, version: ModelVersion) -> ModelVersion:
        """Write the checkpoint to the cache unless a file with its bytes is there."""
        if not version.path.exists():
            payload = self._query(
                select(model_versions.c.checkpoint).where(
                    model_versions.c.name == version.name,
                    model_versions.c.version == version.version,
                )
            )[0].checkpoint
            version.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = version.path.with_name(f".{version.path.name}.{os.getpid()}.tmp")
            try:
                temporary.write_bytes(payload)
                os.replace(temporary, version.path)
            finally:
                temporary.unlink(missing_ok=True)
        return version

    def _version(self, row: Any) -> ModelVersion:
        metrics: Mapping[str, Any] = row.metrics or {}
        return ModelVersion(
            name=row.name,
            version=row.version,
            status=ModelStatus(row.status),
            sha256=row.sha256,
            created_at=row.created_at,
            registered_at=row.registered_at.isoformat(timespec="seconds"),
            path=self.cache_dir / f"{row.name}-{row.version}-{row.sha256[:16]}{CHECKPOINT_SUFFIX}",
            size_bytes=int(row.size_bytes),
            metrics=metrics,
            serves=tuple(row.serves or ()),
        )


async def _active_version(connection: AsyncConnection, name: str) -> str | None:
    # Lock the name's rows first, so that concurrent activations of one name take turns
    # (PostgreSQL; SQLite serialises writers anyway and ignores FOR UPDATE).
    await connection.execute(
        select(model_versions.c.id).where(model_versions.c.name == name).with_for_update()
    )
    query = select(model_versions.c.version).where(
        model_versions.c.name == name, model_versions.c.status == ModelStatus.ACTIVE.value
    )
    return (await connection.execute(query)).scalar_one_or_none()


async def _set_status(
    connection: AsyncConnection, name: str, old: ModelStatus, new: ModelStatus
) -> None:
    await connection.execute(
        update(model_versions)
        .where(model_versions.c.name == name, model_versions.c.status == old.value)
        .values(status=new.value)
    )


@contextlib.contextmanager
def open_registry(settings: Settings) -> Iterator[DatabaseRegistry]:
    """The registry of the configured database for a command (migrated first when the
    settings say so), closed at the end."""
    with (
        connected(settings) as (database, run),
        DatabaseRegistry(
            database, run=run, cache_dir=settings.data_dir / "model-cache"
        ) as registry,
    ):
        yield registry
