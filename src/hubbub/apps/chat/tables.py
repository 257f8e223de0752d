"""The chat app's tables (SQLAlchemy Core on the shared `metadata`).

Message ids are the database's auto-increment keys: they grow with time, so they are
both the `serverMessageId` (as a string) and the cursor of history pages. Full-text
search lives beside these tables and differs per database (the migration makes an
FTS5 table on SQLite and a generated `tsvector` column on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa

from hubbub.engines.store import AUTO_ID, metadata

USER_ID = 128
CONVERSATION_ID = 40
CLIENT_MESSAGE_ID = 100

conversations = sa.Table(
    "chat_conversations",
    metadata,
    sa.Column("id", sa.String(CONVERSATION_ID), primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),  # "direct" or "group"
    sa.Column("title", sa.String(200), nullable=True),
    # The two members of a direct conversation, sorted: one direct conversation per pair.
    sa.Column("direct_key", sa.String(2 * USER_ID + 1), nullable=True, unique=True),
    sa.Column("created_by", sa.String(USER_ID), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # milliseconds
)

members = sa.Table(
    "chat_members",
    metadata,
    sa.Column(
        "conversation_id",
        sa.String(CONVERSATION_ID),
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.String(USER_ID), primary_key=True),
    sa.Column("joined_at", sa.BigInteger, nullable=False),
    sa.Column("last_read_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_read_at", sa.BigInteger, nullable=True),
    sa.Index("ix_chat_members_user_id", "user_id"),
)

messages = sa.Table(
    "chat_messages",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column(
        "conversation_id",
        sa.String(CONVERSATION_ID),
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("sender_id", sa.String(USER_ID), nullable=False),
    sa.Column("client_message_id", sa.String(CLIENT_MESSAGE_ID), nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("reply_to", sa.BigInteger, nullable=True),
    sa.Column("attachments", sa.JSON, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("sender_id", "client_message_id"),
    sa.Index("ix_chat_messages_conversation_id_id", "conversation_id", "id"),
)

attachments = sa.Table(
    "chat_attachments",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column(
        "conversation_id",
        sa.String(CONVERSATION_ID),
        sa.ForeignKey("chat_conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("uploader_id", sa.String(USER_ID), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
