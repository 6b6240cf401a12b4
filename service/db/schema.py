"""Table definitions shared by the repositories and the Alembic migrations.

Every table that the worker writes per batch is keyed by the snapshot id with a unique
constraint, so that a redelivered snapshot can never produce a second row: the repositories
insert with ``ON CONFLICT DO NOTHING`` (PostgreSQL and SQLite alike). ``outcomes`` holds one
row per outcome key across the diagnoses, expirations and dead letters, so that one id can
never have two different outcomes: a batch claims its keys there first and writes rows only
for the keys it claimed.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

# Stable constraint names, so that migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: JSON documents: JSONB on PostgreSQL, JSON text on SQLite.
Document = JSON().with_variant(JSONB(), "postgresql")
#: Autoincrementing keys: BIGINT on PostgreSQL; SQLite's INTEGER PRIMARY KEY is the rowid.
Key = BigInteger().with_variant(Integer(), "sqlite")


class UtcMoment(TypeDecorator[datetime]):
    """A timezone-aware moment, stored and returned in UTC on both databases.

    PostgreSQL keeps the instant; SQLite keeps the wall-clock text and drops the offset, so
    12:00+02:00 would read back as 12:00. Converting every bound value (rows and query
    parameters alike) to UTC, and marking what SQLite returns as UTC, makes both agree.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Moment = UtcMoment()

outcomes = Table(
    "outcomes",
    metadata,
    # The message's outcome key: the snapshot id for our producers (the task id header),
    # else the payload hash; the same key the result backend stores the outcome under.
    Column("outcome_key", String(256), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("stored_at", Moment, nullable=False),
    comment="One row per outcome key: the first outcome stored for it is its only one; a "
    "duplicate or redelivered message gets this one back.",
)

systems = Table(
    "systems",
    metadata,
    Column("system_id", String(128), primary_key=True),
    Column("spec_name", String(128), nullable=False),
    Column("spec", Document, nullable=False),
    Column("registered_at", Moment, nullable=False),
    comment="Machines that have sent snapshots, with the spec they were diagnosed against.",
)

diagnoses = Table(
    "diagnoses",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("snapshot_id", String(128), nullable=False),
    Column("system_id", String(128), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("spec_version", String(64)),
    Column("machine_health", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("top_fault", String(64), nullable=False),
    Column("correlation_id", String(128)),
    Column("components", Document, nullable=False),
    Column("timings", Document, nullable=False),
    Column("warnings", Document, nullable=False),
    Column("created_at", Moment, nullable=False),
    Column("stored_at", Moment, nullable=False),
    UniqueConstraint("snapshot_id"),
    Index("ix_diagnoses_system_id_created_at", "system_id", "created_at"),
    comment="One row per diagnosed snapshot; components, timings and warnings as JSON.",
)

expirations = Table(
    "expirations",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("snapshot_id", String(128), nullable=False),
    Column("system_id", String(128), nullable=False),
    Column("deadline", Moment, nullable=False),
    Column("observed_at", Moment, nullable=False),
    Column("correlation_id", String(128)),
    UniqueConstraint("snapshot_id"),
    comment="Snapshots whose deadline passed before they could be computed.",
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    # The task id (or the payload hash when a message carries no id): redeliveries of the
    # same message collapse into one row.
    Column("message_key", String(256), nullable=False),
    Column("snapshot_id", String(256)),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("field", String(256)),
    Column("payload_sha256", String(64)),
    Column("received_at", Moment, nullable=False),
    Column("stored_at", Moment, nullable=False),
    UniqueConstraint("message_key"),
    Index("ix_dead_letters_reason_stored_at", "reason", "stored_at"),
    comment="Messages that can never be diagnosed as sent, with the reason.",
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", String(64), nullable=False),
    Column("registered_at", Moment, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("metrics", Document, nullable=False),
    Column("checkpoint", LargeBinary, nullable=False),
    # Machine names or shell-style patterns (press_line_*) this version serves when active.
    Column("serves", Document, nullable=False, server_default="[]"),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
    comment="The model registry: every registered checkpoint, its bytes and its status.",
)

model_activations = Table(
    "model_activations",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("activated_at", Moment, nullable=False),
    Index("ix_model_activations_name_id", "name", "id"),
    comment="Activation history per model name; the newest row is the active version.",
)

machines = Table(
    "machines",
    metadata,
    Column("id", Key, primary_key=True, autoincrement=True),
    Column("name", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", Document, nullable=False),
    Column("spec_sha256", String(64), nullable=False),
    Column("registered_at", Moment, nullable=False),
    UniqueConstraint("name", "version", name="uq_machines_name_version"),
    comment="The machine registry: every registered version of every machine's spec.",
)
