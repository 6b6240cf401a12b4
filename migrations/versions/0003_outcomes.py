"""Outcomes: one row per outcome key, so that an id never has two different outcomes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``outcomes`` and claim the keys of every stored outcome (diagnoses first)."""
    op.create_table(
        "outcomes",
        sa.Column("outcome_key", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("outcome_key", name="pk_outcomes"),
        comment="One row per outcome key: the first outcome stored for it is its only one; a "
        "duplicate or redelivered message gets this one back.",
    )
    for kind, table, key, moment in (
        ("diagnosed", "diagnoses", "snapshot_id", "stored_at"),
        ("expired", "expirations", "snapshot_id", "observed_at"),
        ("dead_lettered", "dead_letters", "message_key", "stored_at"),
    ):
        op.execute(
            f"INSERT INTO outcomes (outcome_key, outcome, stored_at) "
            f"SELECT {key}, '{kind}', MIN({moment}) FROM {table} "
            f"WHERE {key} NOT IN (SELECT outcome_key FROM outcomes) GROUP BY {key}"
        )


def downgrade() -> None:
    """Drop ``outcomes``."""
    op.drop_table("outcomes")
