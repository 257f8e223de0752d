"""Collab tables: `collab_updates` (appended Yjs updates) and `collab_snapshots`.

Revision ID: collab_0001_tables
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hubbub.engines.store import AUTO_ID

revision: str = "collab_0001_tables"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collab_updates",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("doc", sa.String(200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collab_updates"),
    )
    op.create_index("ix_collab_updates_doc_id", "collab_updates", ["doc", "id"])
    op.create_table(
        "collab_snapshots",
        sa.Column("doc", sa.String(200), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("doc", name="pk_collab_snapshots"),
    )


def downgrade() -> None:
    op.drop_table("collab_snapshots")
    op.drop_index("ix_collab_updates_doc_id", table_name="collab_updates")
    op.drop_table("collab_updates")
