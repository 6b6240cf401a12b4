"""Repositories: every read and write of diagnoses, outcomes and systems.

All methods are async and keyword-only. Writes are idempotent on the snapshot id (the dead
letters on the message key): inserting a row that exists already does nothing, so that a
redelivered message never creates a second row. ``OutcomeRepository.save_batch`` writes one
micro-batch in one transaction, with one INSERT statement per table it touches.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import Table, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import ComponentDiagnosis, DeadLetter, Diagnosis, Expired, SystemSpec
from schemas.result import DeadLettered, Diagnosed, ExpiredOutcome
from service.db import schema as tables
from service.db.database import Database, Encoded

#: Rows per INSERT statement; keeps a statement under both databases' parameter limits.
MAX_ROWS_PER_STATEMENT = 1000

_STATUS_RANK = {"ok": 0, "warning": 1, "critical": 2}
_COMPONENTS = TypeAdapter(list[ComponentDiagnosis])


@dataclass(frozen=True)
class SavedCounts:
    """Rows a batch write inserted (re-saved rows that existed already are not counted)."""

    diagnoses: int = 0
    expired: int = 0
    dead_letters: int = 0
    systems: int = 0
    taken: frozenset[str] = frozenset()
    """Outcome keys of the batch that already had an outcome (nothing written for them)."""

    def as_tables(self) -> dict[str, int]:
        """Rows inserted per table name."""
        return {
            "diagnoses": self.diagnoses,
            "expirations": self.expired,
            "dead_letters": self.dead_letters,
            "systems": self.systems,
        }


@dataclass(frozen=True)
class DeadLetterEntry:
    """A stored dead letter with the key its message was stored under."""

    message_key: str
    record: DeadLetter
    stored_at: datetime


@dataclass(frozen=True)
class Activity:
    """What was stored over a stretch of time: outcomes per kind, and the end-to-end times
    of the diagnoses (milliseconds)."""

    counts: dict[str, int]
    total_ms: list[float]


class OutcomeRepository:
    """Diagnoses, expirations, dead letters and the systems they came from.

    Args:
        database: The process's database.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known_systems: set[str] = set()
        self._statements: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"OutcomeRepository({self.database!r})"

    # writes ------------------------------------------------------------------------

    async def save_batch(
        self,
        *,
        diagnoses: Sequence[Diagnosis] = (),
        expired: Sequence[Expired] = (),
        dead_letters: Sequence[tuple[str, DeadLetter]] = (),
        specs: Mapping[str, SystemSpec] | None = None,
        budget_s: float | None = None,
    ) -> SavedCounts:
        """Store one micro-batch's outcomes in one transaction, retrying transient errors.

        One outcome per key: the batch first claims its keys in ``outcomes`` (diagnoses,
        then expirations, then dead letters; the first of a key wins) and writes rows only
        for the keys it claimed. Keys stored before are returned in ``taken``; read their
        outcome with :meth:`stored_outcomes`.

        Args:
            diagnoses: Diagnoses to store (one row each, keyed by snapshot id).
            expired: Expired snapshots (keyed by snapshot id).
            dead_letters: ``(outcome key, record)`` pairs; the key is the task id, or the
                payload hash of a message without a usable one.
            specs: Spec of each system id, registering systems seen for the first time.
            budget_s: Seconds for every attempt together (default: the database's
                ``retry_max_total_s``).

        Raises:
            DatabaseUnavailable: Transient errors outlasted the retry policy.
        """
        now = datetime.now(UTC)
        claims: dict[str, dict[str, Any]] = {}
        for kind, keys in (
            ("diagnosed", (item.snapshot_id for item in diagnoses)),
            ("expired", (item.snapshot_id for item in expired)),
            ("dead_lettered", (key for key, _ in dead_letters)),
        ):
            for key in keys:
                claims.setdefault(key, {"outcome_key": key, "outcome": kind, "stored_at": now})

        async def write() -> tuple[SavedCounts, list[str]]:
            async with self.database.engine.begin() as connection:
                claimed = await self._insert(
                    connection, tables.outcomes, list(claims.values()), "outcome_key"
                )
                taken = frozenset(claims) - claimed
                open_keys = set(claimed)

                def mine(key: str, kind: str) -> bool:
                    if key in open_keys and claims[key]["outcome"] == kind:
                        open_keys.discard(key)  # a second row of the key in the batch loses
                        return True
                    return False

                diagnosis_rows = [
                    diagnosis_row(item, now)
                    for item in diagnoses
                    if mine(item.snapshot_id, "diagnosed")
                ]
                expired_rows = [
                    _expired_row(item) for item in expired if mine(item.snapshot_id, "expired")
                ]
                letter_rows = [
                    _dead_letter_row(key, item, now)
                    for key, item in dead_letters
                    if mine(key, "dead_lettered")
                ]
                system_rows = [
                    {
                        "system_id": system_id,
                        "spec_name": spec.name,
                        "spec": spec.model_dump(mode="json"),
                        "registered_at": now,
                    }
                    for system_id, spec in (specs or {}).items()
                    if system_id not in self._known_systems
                ]
                inserted = [
                    len(await self._insert(connection, table, rows, key))
                    for table, rows, key in (
                        (tables.systems, system_rows, "system_id"),
                        (tables.diagnoses, diagnosis_rows, "snapshot_id"),
                        (tables.expirations, expired_rows, "snapshot_id"),
                        (tables.dead_letters, letter_rows, "message_key"),
                    )
                ]
            counts = SavedCounts(
                systems=inserted[0],
                diagnoses=inserted[1],
                expired=inserted[2],
                dead_letters=inserted[3],
                taken=taken,
            )
            return counts, [str(row["system_id"]) for row in system_rows]

        counts, registered = await self.database.retrying(
            write, what="batch write", budget_s=budget_s
        )
        self._known_systems.update(registered)
        return counts

    async def stored_outcomes(
        self, *, keys: Collection[str]
    ) -> dict[str, Diagnosed | ExpiredOutcome | DeadLettered]:
        """The stored outcome of each of ``keys`` that has one."""
        if not keys:
            return {}
        wanted = list(keys)
        found: dict[str, Diagnosed | ExpiredOutcome | DeadLettered] = {}
        for row in await self._rows(
            select(tables.diagnoses).where(tables.diagnoses.c.snapshot_id.in_(wanted))
        ):
            found[row["snapshot_id"]] = Diagnosed(diagnosis=_diagnosis(row))
        for row in await self._rows(
            select(tables.expirations).where(tables.expirations.c.snapshot_id.in_(wanted))
        ):
            found.setdefault(row["snapshot_id"], ExpiredOutcome(expired=_expired(row)))
        for row in await self._rows(
            select(tables.dead_letters).where(tables.dead_letters.c.message_key.in_(wanted))
        ):
            found.setdefault(row["message_key"], DeadLettered(dead_letter=_dead_letter(row)))
        return found

    async def save_many(self, *, diagnoses: Sequence[Diagnosis]) -> int:
        """Store diagnoses with one statement; returns how many rows were new."""
        return (await self.save_batch(diagnoses=diagnoses)).diagnoses

    async def _insert(
        self, connection: AsyncConnection, table: Table, rows: list[dict[str, Any]], key: str
    ) -> set[str]:
        """Insert ``rows``, skipping keys that exist; returns the keys that were new.

        The statement is built once per table and the rows go as parameters: SQLAlchemy's
        "insertmanyvalues" sends them as ONE multi-row INSERT per chunk (RETURNING the keys
        actually inserted), and the compiled statement is cached across batches.
        """
        if not rows:
            return set()
        statement = self._statements.get(table.name)
        if statement is None:
            dialect = postgresql if self.database.dialect == "postgresql" else sqlite
            statement = (
                dialect.insert(table)
                .on_conflict_do_nothing(index_elements=[key])
                .returning(table.c[key])
            )
            self._statements[table.name] = statement
        inserted: set[str] = set()
        for start in range(0, len(rows), MAX_ROWS_PER_STATEMENT):
            chunk = rows[start : start + MAX_ROWS_PER_STATEMENT]
            inserted.update((await connection.execute(statement, chunk)).scalars().all())
        return inserted

    # reads -------------------------------------------------------------------------

    async def get_by_snapshot(self, *, snapshot_id: str) -> Diagnosis | None:
        """The diagnosis of one snapshot, if stored."""
        rows = await self._rows(
            select(tables.diagnoses).where(tables.diagnoses.c.snapshot_id == snapshot_id)
        )
        return _diagnosis(rows[0]) if rows else None

    async def history(
        self, *, system_id: str, since: datetime | None = None, limit: int = 100
    ) -> list[Diagnosis]:
        """A system's diagnoses, newest first, created at or after ``since``."""
        query = select(tables.diagnoses).where(tables.diagnoses.c.system_id == system_id)
        if since is not None:
            query = query.where(tables.diagnoses.c.created_at >= since)
        query = query.order_by(
            tables.diagnoses.c.created_at.desc(), tables.diagnoses.c.id.desc()
        ).limit(max(1, limit))
        return [_diagnosis(row) for row in await self._rows(query)]

    async def latest(self, *, system_id: str) -> Diagnosis | None:
        """A system's newest diagnosis."""
        found = await self.history(system_id=system_id, limit=1)
        return found[0] if found else None

    async def latest_per_system(self, *, limit: int = 1000) -> list[Diagnosis]:
        """The newest diagnosis of every system (as ``latest`` orders: by ``created_at``,
        not by when it was stored), by system id."""
        table = tables.diagnoses
        ranked = select(
            table,
            func.row_number()
            .over(
                partition_by=table.c.system_id,
                order_by=(table.c.created_at.desc(), table.c.id.desc()),
            )
            .label("newness"),
        ).subquery()
        query = (
            select(*(ranked.c[column.name] for column in table.c))
            .where(ranked.c.newness == 1)
            .order_by(ranked.c.system_id)
            .limit(max(1, limit))
        )
        return [_diagnosis(row) for row in await self._rows(query)]

    async def get_expired(self, *, snapshot_id: str) -> Expired | None:
        """The expiry record of one snapshot, if any."""
        rows = await self._rows(
            select(tables.expirations).where(tables.expirations.c.snapshot_id == snapshot_id)
        )
        if not rows:
            return None
        return _expired(rows[0])

    async def dead_letters(
        self, *, since: datetime | None = None, reason: str | None = None, limit: int = 100
    ) -> list[DeadLetterEntry]:
        """Stored dead letters, newest first."""
        table = tables.dead_letters
        query = select(table)
        if since is not None:
            query = query.where(table.c.stored_at >= since)
        if reason is not None:
            query = query.where(table.c.reason == reason)
        query = query.order_by(table.c.id.desc()).limit(max(1, limit))
        return [
            DeadLetterEntry(
                message_key=row["message_key"], record=_dead_letter(row), stored_at=row["stored_at"]
            )
            for row in await self._rows(query)
        ]

    async def expirations(
        self, *, since: datetime | None = None, system_id: str | None = None, limit: int = 100
    ) -> list[Expired]:
        """Stored expirations, newest first (by when the worker found them expired)."""
        table = tables.expirations
        query = select(table)
        if since is not None:
            query = query.where(table.c.observed_at >= since)
        if system_id is not None:
            query = query.where(table.c.system_id == system_id)
        query = query.order_by(table.c.id.desc()).limit(max(1, limit))
        return [_expired(row) for row in await self._rows(query)]

    async def activity(self, *, since: datetime, limit: int = 100_000) -> Activity:
        """Outcomes stored at or after ``since``: counts per kind, and the end-to-end times
        (``timings.total_ms``, receipt to diagnosis) of up to ``limit`` newest diagnoses."""
        counts = {}
        for kind, table in (
            ("diagnosed", tables.diagnoses),
            ("expired", tables.expirations),
            ("dead_lettered", tables.dead_letters),
        ):
            moment = table.c.observed_at if table is tables.expirations else table.c.stored_at
            query = select(func.count()).select_from(table).where(moment >= since)
            async with self.database.engine.connect() as connection:
                counts[kind] = int((await connection.execute(query)).scalar_one())
        diagnoses = tables.diagnoses
        rows = await self._rows(
            select(diagnoses.c.timings)
            .where(diagnoses.c.stored_at >= since)
            .order_by(diagnoses.c.id.desc())
            .limit(max(1, limit))
        )
        totals = [
            float(row["timings"]["total_ms"])
            for row in rows
            if isinstance(row["timings"], dict) and row["timings"].get("total_ms") is not None
        ]
        return Activity(counts=counts, total_ms=totals)

    async def prune(self, *, before: datetime) -> dict[str, int]:
        """Delete the outcomes whose key was stored before ``before``: their rows and their
        keys (a later message with such a key is diagnosed afresh), in one transaction.

        Returns:
            Rows deleted per table.
        """
        outcomes = tables.outcomes
        old_keys = select(outcomes.c.outcome_key).where(outcomes.c.stored_at < before)
        targets = (
            (tables.diagnoses, tables.diagnoses.c.snapshot_id),
            (tables.expirations, tables.expirations.c.snapshot_id),
            (tables.dead_letters, tables.dead_letters.c.message_key),
        )
        deleted: dict[str, int] = {}
        async with self.database.engine.begin() as connection:
            for table, key in targets:
                result = await connection.execute(delete(table).where(key.in_(old_keys)))
                deleted[table.name] = int(result.rowcount or 0)
            result = await connection.execute(delete(outcomes).where(outcomes.c.stored_at < before))
            deleted[outcomes.name] = int(result.rowcount or 0)
        return deleted

    async def systems(self) -> list[tuple[str, str]]:
        """Registered systems: ``(system id, spec name)`` pairs by system id."""
        rows = await self._rows(select(tables.systems).order_by(tables.systems.c.system_id))
        return [(row["system_id"], row["spec_name"]) for row in rows]

    async def count(self, *, table: str) -> int:
        """Rows in one of the outcome tables (``diagnoses``, ``expirations``, ...)."""
        target = {
            t.name: t
            for t in (
                tables.diagnoses,
                tables.expirations,
                tables.dead_letters,
                tables.systems,
                tables.outcomes,
            )
        }
        query = select(func.count()).select_from(target[table])
        async with self.database.engine.connect() as connection:
            return int((await connection.execute(query)).scalar_one())

    async def _rows(self, query: Any) -> list[Any]:
        async def read() -> list[Any]:
            async with self.database.engine.connect() as connection:
                return list((await connection.execute(query)).mappings().all())

        return await self.database.retrying(read, what="read")


def diagnosis_row(item: Diagnosis, stored_at: datetime) -> dict[str, Any]:
    """The ``diagnoses`` row of ``item``, with its summary columns (the worst component's
    status and fault), stored at ``stored_at``."""
    worst = max(item.components, key=lambda c: (_STATUS_RANK[c.status], -c.health), default=None)
    return {
        "snapshot_id": item.snapshot_id,
        "system_id": item.system_id,
        "model_version": item.model_version,
        "spec_version": item.spec_version,
        "machine_health": item.machine_health,
        "status": worst.status if worst is not None else "ok",
        "top_fault": worst.fault if worst is not None else "normal",
        "correlation_id": item.correlation_id,
        "components": Encoded(_COMPONENTS.dump_json(item.components).decode()),
        "timings": Encoded(item.timings.model_dump_json(exclude_none=True)),
        "warnings": list(item.warnings),
        "created_at": item.created_at,
        "stored_at": stored_at,
    }


def _diagnosis(row: Mapping[str, Any]) -> Diagnosis:
    return Diagnosis.model_validate(
        {
            "snapshot_id": row["snapshot_id"],
            "system_id": row["system_id"],
            "model_version": row["model_version"],
            "spec_version": row.get("spec_version"),
            "created_at": row["created_at"],
            "correlation_id": row["correlation_id"],
            "machine_health": row["machine_health"],
            "components": row["components"],
            "timings": row["timings"],
            "warnings": row["warnings"],
        }
    )


def _expired_row(item: Expired) -> dict[str, Any]:
    return {
        "snapshot_id": item.snapshot_id,
        "system_id": item.system_id,
        "deadline": item.deadline,
        "observed_at": item.observed_at,
        "correlation_id": item.correlation_id,
    }


def _expired(row: Mapping[str, Any]) -> Expired:
    return Expired(
        snapshot_id=row["snapshot_id"],
        system_id=row["system_id"],
        deadline=row["deadline"],
        observed_at=row["observed_at"],
        correlation_id=row["correlation_id"],
    )


def _dead_letter(row: Mapping[str, Any]) -> DeadLetter:
    return DeadLetter(
        snapshot_id=row["snapshot_id"],
        reason=row["reason"],
        detail=row["detail"],
        field=row["field"],
        payload_sha256=row["payload_sha256"],
        received_at=row["received_at"],
    )


def _dead_letter_row(key: str, item: DeadLetter, stored_at: datetime) -> dict[str, Any]:
    return {
        "message_key": key,
        "snapshot_id": item.snapshot_id,
        "reason": str(item.reason),
        "detail": item.detail,
        "field": item.field,
        "payload_sha256": item.payload_sha256,
        "received_at": item.received_at,
        "stored_at": stored_at,
    }
