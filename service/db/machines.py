"""The machine registry: every machine's spec, with versions, in the service database.

``gnn-service machines register spec.yaml`` stores a spec as the machine's next version
(registering the same spec again changes nothing); snapshots then name the machine
(``"spec": "press_line_3"``) instead of carrying the spec, and workers resolve the name
from the registry. ``retire`` takes a machine out of service: snapshots naming it are
dead-lettered. The built-in demo machines are registered by ``gnn-service db upgrade``
(:func:`register_builtin_machines`), and registered again when their spec changes.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from machines.catalog import builtin_names, builtin_spec
from schemas import SystemSpec
from service.db.database import Database, connected
from service.db.schema import machines
from service.db.sync_store import Runner, SyncStore
from service.errors import ConfigurationError
from service.settings import Settings


class MachineRegistryError(ConfigurationError):
    """A machine registry operation cannot be done: unknown machine or version."""


class MachineStatus(enum.StrEnum):
    """Life cycle of a machine version."""

    ACTIVE = "active"  # the version snapshots naming the machine are diagnosed against
    SUPERSEDED = "superseded"  # an earlier version
    RETIRED = "retired"  # the machine is out of service


@dataclass(frozen=True)
class MachineVersion:
    """One registered version of a machine's spec.

    Attributes:
        name: The machine's name (the spec's ``name``), what snapshots give as ``spec``.
        version: 1 for the first registration, then counting up.
        status: ``active``, ``superseded`` or ``retired``.
        spec: The spec.
        sha256: SHA-256 of the spec's JSON (what tells a changed spec from the same one).
        registered_at: When it was registered.
    """

    name: str
    version: int
    status: MachineStatus
    spec: SystemSpec
    sha256: str
    registered_at: datetime


def spec_digest(spec: SystemSpec) -> str:
    """SHA-256 (hex) of ``spec``'s JSON: equal for equal specs."""
    return hashlib.sha256(spec.model_dump_json().encode("utf-8")).hexdigest()


class MachineRegistry(SyncStore):
    """The machine registry on the service database.

    Args:
        database: The process's database.
        run: Runs a coroutine to completion on the database's event loop.
    """

    def __init__(self, database: Database, *, run: Runner) -> None:
        super().__init__(database, run=run, what="machine registry")

    def register(self, spec: SystemSpec) -> tuple[MachineVersion, bool]:
        """Store ``spec`` as the active version of its machine, unless it already is.

        Returns:
            The active version, and whether this call registered it (False: the same spec
            was already the active version).
        """
        digest = spec_digest(spec)
        created: list[bool] = []

        async def write(connection: AsyncConnection) -> None:
            created.clear()
            rows = (
                await connection.execute(
                    select(machines.c.version, machines.c.status, machines.c.spec_sha256)
                    .where(machines.c.name == spec.name)
                    .order_by(machines.c.version.desc())
                    .with_for_update()
                )
            ).all()
            if rows and rows[0].status == MachineStatus.ACTIVE and rows[0].spec_sha256 == digest:
                created.append(False)
                return
            await connection.execute(
                update(machines)
                .where(machines.c.name == spec.name, machines.c.status == MachineStatus.ACTIVE)
                .values(status=MachineStatus.SUPERSEDED.value)
            )
            await connection.execute(
                insert(machines).values(
                    name=spec.name,
                    version=(rows[0].version + 1) if rows else 1,
                    status=MachineStatus.ACTIVE.value,
                    spec=spec.model_dump(mode="json"),
                    spec_sha256=digest,
                    registered_at=datetime.now(UTC),
                )
            )
            created.append(True)

        try:
            self._transaction(write, what="machine registration")
        except IntegrityError:  # another registration of the same machine won the race
            self._transaction(write, what="machine registration")
        current = self.current(spec.name)
        assert current is not None
        return current, created[0]

    def retire(self, name: str) -> MachineVersion:
        """Take ``name`` out of service; registering it again brings it back.

        Raises:
            MachineRegistryError: No such machine, or it is retired already.
        """
        current = self.current(name)
        if current is None:
            raise self._unknown(name)

        async def write(connection: AsyncConnection) -> None:
            await connection.execute(
                update(machines)
                .where(machines.c.name == name, machines.c.status == MachineStatus.ACTIVE)
                .values(status=MachineStatus.RETIRED.value)
            )

        self._transaction(write, what="machine retirement")
        return self.get(name, current.version)

    def current(self, name: str) -> MachineVersion | None:
        """The active version of ``name`` (None when unknown or retired)."""
        rows = self._query(
            select(machines).where(
                machines.c.name == name, machines.c.status == MachineStatus.ACTIVE.value
            )
        )
        return _version(rows[0]) if rows else None

    def get(self, name: str, version: int | None = None) -> MachineVersion:
        """One version of ``name`` (default: the newest, whatever its status).

        Raises:
            MachineRegistryError: Unknown machine or version.
        """
        history = self.history(name)
        if not history:
            raise self._unknown(name)
        if version is None:
            return history[-1]
        for item in history:
            if item.version == version:
                return item
        known = ", ".join(str(item.version) for item in history)
        raise MachineRegistryError(f"machine {name} has no version {version} (known: {known})")

    def history(self, name: str) -> list[MachineVersion]:
        """Every version of ``name``, oldest first."""
        rows = self._query(
            select(machines).where(machines.c.name == name).order_by(machines.c.version)
        )
        return [_version(row) for row in rows]

    def newest(self) -> list[MachineVersion]:
        """The newest version of every machine (active or retired), by name."""
        newest = (
            select(machines.c.name, func.max(machines.c.version).label("version"))
            .group_by(machines.c.name)
            .subquery()
        )
        rows = self._query(
            select(machines)
            .join(
                newest,
                (machines.c.name == newest.c.name) & (machines.c.version == newest.c.version),
            )
            .order_by(machines.c.name)
        )
        return [_version(row) for row in rows]

    def active(self) -> list[MachineVersion]:
        """The active version of every machine in service, by name."""
        return [item for item in self.newest() if item.status is MachineStatus.ACTIVE]

    def token(self) -> str:
        """A cheap value that changes with every registration and retirement."""
        row = self._query(
            select(
                func.max(machines.c.id),
                func.count().filter(machines.c.status == MachineStatus.RETIRED.value),
            )
        )[0]
        return f"{row[0]}:{row[1]}"

    def _unknown(self, name: str) -> MachineRegistryError:
        known = ", ".join(item.name for item in self.newest()) or "none"
        return MachineRegistryError(
            f"no machine named {name!r} in the registry (registered: {known}); register its "
            "spec first: gnn-service machines register SPEC.yaml"
        )


def _version(row: Any) -> MachineVersion:
    return MachineVersion(
        name=row.name,
        version=int(row.version),
        status=MachineStatus(row.status),
        spec=SystemSpec.model_validate(row.spec),
        sha256=row.spec_sha256,
        registered_at=row.registered_at,
    )


async def active_machine(database: Database, name: str) -> MachineVersion | None:
    """The active version of ``name`` read on the caller's event loop (None: unknown or
    retired)."""

    async def read() -> Any:
        async with database.engine.connect() as connection:
            query = select(machines).where(
                machines.c.name == name, machines.c.status == MachineStatus.ACTIVE.value
            )
            return (await connection.execute(query)).first()

    row = await database.retrying(read, what="machine registry read")
    return None if row is None else _version(row)


def register_builtin_machines(registry: MachineRegistry) -> list[MachineVersion]:
    """Register every built-in demo machine whose spec is not the active version yet
    (a retired one stays retired); returns those registered now."""
    registered = []
    for name in builtin_names():
        history = registry.history(name)
        if history and history[-1].status is MachineStatus.RETIRED:
            continue
        item, created = registry.register(builtin_spec(name))
        if created:
            registered.append(item)
    return registered


@contextlib.contextmanager
def open_machines(settings: Settings) -> Iterator[MachineRegistry]:
    """The machine registry of the configured database for a command (migrated first when
    the settings say so), closed at the end."""
    with connected(settings) as (database, run), MachineRegistry(database, run=run) as registry:
        yield registry
