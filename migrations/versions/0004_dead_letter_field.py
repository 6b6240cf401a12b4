"""Dead letters name the field at fault in a column of its own.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``dead_letters.field`` (null for rows stored before it, and for model failures)."""
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("field", sa.String(256), nullable=True))


def downgrade() -> None:
    """Drop ``dead_letters.field``."""
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_column("field")
