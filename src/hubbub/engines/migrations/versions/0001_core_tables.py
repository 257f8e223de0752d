"""Core tables: `hubbub_kv`, the namespaced JSON key-value store.

Revision ID: 0001_core_tables
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core_tables"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hubbub_kv",
        sa.Column("namespace", sa.String(200), nullable=False),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),  # milliseconds
        sa.PrimaryKeyConstraint("namespace", "key", name="pk_hubbub_kv"),
    )


def downgrade() -> None:
    op.drop_table("hubbub_kv")
