"""The machine registry, the machines each model version serves, and the spec version of
each diagnosis.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    """Create ``machines``; add ``model_versions.serves`` and ``diagnoses.spec_version``."""
    op.create_table(
        "machines",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec", _DOCUMENT, nullable=False),
        sa.Column("spec_sha256", sa.String(64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_machines"),
        sa.UniqueConstraint("name", "version", name="uq_machines_name_version"),
        comment="The machine registry: every registered version of every machine's spec.",
    )
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("serves", _DOCUMENT, nullable=False, server_default="[]"))
    with op.batch_alter_table("diagnoses") as batch:
        batch.add_column(sa.Column("spec_version", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop what :func:`upgrade` added."""
    with op.batch_alter_table("diagnoses") as batch:
        batch.drop_column("spec_version")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("serves")
    op.drop_table("machines")
