"""Storage: systems, diagnoses, expirations, dead letters and the model registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_MOMENT = sa.DateTime(timezone=True)


def _key() -> sa.Column[int]:
    return sa.Column("id", _KEY, primary_key=True, autoincrement=True)


def upgrade() -> None:
    """Create the storage tables."""
    op.create_table(
        "systems",
        sa.Column("system_id", sa.String(128), primary_key=True),
        sa.Column("spec_name", sa.String(128), nullable=False),
        sa.Column("spec", _DOCUMENT, nullable=False),
        sa.Column("registered_at", _MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("system_id", name="pk_systems"),
        comment="Machines that have sent snapshots, with the spec they were diagnosed against.",
    )
    op.create_table(
        "diagnoses",
        _key(),
        sa.Column("snapshot_id", sa.String(128), nullable=False),
        sa.Column("system_id", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("machine_health", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("top_fault", sa.String(64), nullable=False),
        sa.Column("correlation_id", sa.String(128)),
        sa.Column("components", _DOCUMENT, nullable=False),
        sa.Column("timings", _DOCUMENT, nullable=False),
        sa.Column("warnings", _DOCUMENT, nullable=False),
        sa.Column("created_at", _MOMENT, nullable=False),
        sa.Column("stored_at", _MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_diagnoses"),
        sa.UniqueConstraint("snapshot_id", name="uq_diagnoses_snapshot_id"),
        comment="One row per diagnosed snapshot; components, timings and warnings as JSON.",
    )
    op.create_index("ix_diagnoses_system_id_created_at", "diagnoses", ["system_id", "created_at"])
    op.create_table(
        "expirations",
        _key(),
        sa.Column("snapshot_id", sa.String(128), nullable=False),
        sa.Column("system_id", sa.String(128), nullable=False),
        sa.Column("deadline", _MOMENT, nullable=False),
        sa.Column("observed_at", _MOMENT, nullable=False),
        sa.Column("correlation_id", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_expirations"),
        sa.UniqueConstraint("snapshot_id", name="uq_expirations_snapshot_id"),
        comment="Snapshots whose deadline passed before they could be computed.",
    )
    op.create_table(
        "dead_letters",
        _key(),
        sa.Column("message_key", sa.String(256), nullable=False),
        sa.Column("snapshot_id", sa.String(256)),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(64)),
        sa.Column("received_at", _MOMENT, nullable=False),
        sa.Column("stored_at", _MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.UniqueConstraint("message_key", name="uq_dead_letters_message_key"),
        comment="Messages that can never be diagnosed as sent, with the reason.",
    )
    op.create_index("ix_dead_letters_reason_stored_at", "dead_letters", ["reason", "stored_at"])
    op.create_table(
        "model_versions",
        _key(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(64), nullable=False),
        sa.Column("registered_at", _MOMENT, nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("metrics", _DOCUMENT, nullable=False),
        sa.Column("checkpoint", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        comment="The model registry: every registered checkpoint, its bytes and its status.",
    )
    op.create_table(
        "model_activations",
        _key(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("activated_at", _MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_activations"),
        comment="Activation history per model name; the newest row is the active version.",
    )
    op.create_index("ix_model_activations_name_id", "model_activations", ["name", "id"])


def downgrade() -> None:
    """Drop the storage tables."""
    op.drop_index("ix_model_activations_name_id", table_name="model_activations")
    op.drop_table("model_activations")
    op.drop_table("model_versions")
    op.drop_index("ix_dead_letters_reason_stored_at", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("expirations")
    op.drop_index("ix_diagnoses_system_id_created_at", table_name="diagnoses")
    op.drop_table("diagnoses")
    op.drop_table("systems")
