"""Chat tables: conversations, members, messages (with full-text search), attachments.

Revision ID: chat_0001_tables
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "chat_0001_tables"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("title", sa.String(200), nullable=True),
        sa.Column("direct_key", sa.String(257), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_conversations"),
        sa.UniqueConstraint("direct_key", name="uq_chat_conversations_direct_key"),
    )
    op.create_table(
        "chat_members",
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("joined_at", sa.BigInteger(), nullable=False),
        sa.Column("last_read_id", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_read_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_chat_members"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name="fk_chat_members_conversation_id_chat_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_chat_members_user_id", "chat_members", ["user_id"])
    op.create_table(
        "chat_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("sender_id", sa.String(128), nullable=False),
        sa.Column("client_message_id", sa.String(100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column("attachments", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_messages"),
        sa.UniqueConstraint(
            "sender_id", "client_message_id", name="uq_chat_messages_sender_id_client_message_id"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name="fk_chat_messages_conversation_id_chat_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_chat_messages_conversation_id_id", "chat_messages", ["conversation_id", "id"]
    )
    op.create_table(
        "chat_attachments",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("conversation_id", sa.String(40), nullable=False),
        sa.Column("uploader_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_chat_attachments"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name="fk_chat_attachments_conversation_id_chat_conversations",
            ondelete="CASCADE",
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        # 'simple': no stemming, the same words SQLite's unicode61 tokenizer finds.
        op.execute(
            "ALTER TABLE chat_messages ADD COLUMN search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED"
        )
        op.execute("CREATE INDEX ix_chat_messages_search ON chat_messages USING GIN (search)")
    else:
        op.execute(
            "CREATE VIRTUAL TABLE chat_messages_fts USING fts5("
            "content, content='chat_messages', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER chat_messages_fts_insert AFTER INSERT ON chat_messages BEGIN "
            "INSERT INTO chat_messages_fts(rowid, content) VALUES (new.id, new.content); END"
        )
        op.execute(
            "CREATE TRIGGER chat_messages_fts_delete AFTER DELETE ON chat_messages BEGIN "
            "INSERT INTO chat_messages_fts(chat_messages_fts, rowid, content) "
            "VALUES ('delete', old.id, old.content); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE chat_messages_fts")
    op.drop_table("chat_attachments")
    op.drop_table("chat_messages")
    op.drop_table("chat_members")
    op.drop_table("chat_conversations")
