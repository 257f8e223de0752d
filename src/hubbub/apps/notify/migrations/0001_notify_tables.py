"""Notifications, push subscriptions and delivery attempts.

Revision ID: notify_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "notify_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "notify_notifications",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("seen_at", sa.BigInteger(), nullable=True),
        sa.Column("read_at", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", sa.BigInteger(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("fallback", sa.String(10), nullable=True),
        sa.Column("fallback_due", sa.BigInteger(), nullable=True),
        sa.Column("dedupe_key", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notify_notifications"),
        sa.UniqueConstraint(
            "user_id", "dedupe_key", name="uq_notify_notifications_user_id_dedupe_key"
        ),
    )
    op.create_index("ix_notify_notifications_user_id_id", "notify_notifications", ["user_id", "id"])
    op.create_index(
        "ix_notify_notifications_fallback", "notify_notifications", ["fallback", "fallback_due"]
    )
    op.create_table(
        "notify_push_subscriptions",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("endpoint_hash", sa.String(64), nullable=False),
        sa.Column("p256dh", sa.String(200), nullable=False),
        sa.Column("auth", sa.String(100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notify_push_subscriptions"),
        sa.UniqueConstraint("endpoint_hash", name="uq_notify_push_subscriptions_endpoint_hash"),
    )
    op.create_index(
        "ix_notify_push_subscriptions_user_id", "notify_push_subscriptions", ["user_id"]
    )
    op.create_table(
        "notify_attempts",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("target", sa.String(500), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_notify_attempts"),
    )
    op.create_index("ix_notify_attempts_notification_id", "notify_attempts", ["notification_id"])


def downgrade() -> None:
    op.drop_table("notify_attempts")
    op.drop_table("notify_push_subscriptions")
    op.drop_table("notify_notifications")
