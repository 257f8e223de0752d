"""The notifications app's tables and the shapes it speaks on the wire.

A notification row keeps its state as timestamps (`seen_at`, `read_at`,
`archived_at`), so the state a client sees is derived, never stored twice:
archived, else read, else seen, else unseen. Its `fallback` column tracks the
delayed decision to reach the user by push or email (docs/notifications.md):

| fallback | meaning |
|---|---|
| NULL | none planned (low priority, muted, quiet hours, or nothing to try) |
| `pending` | due at `fallback_due` (ms); any node may claim it then |
| `running` | claimed by one node, which is trying the providers |
| `done` | the providers were tried; `notify_attempts` has each outcome |
| `cancelled` | read, archived or the user was online when it fell due |
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from hubbub.core.notices import PRIORITIES, Priority
from hubbub.engines.store import AUTO_ID, metadata

MAX_TITLE = 500
MAX_BODY = 10_000
MAX_TYPE = 100
MAX_USER_ID = 128
MAX_IDS = 1000  # notification ids per mark/archive call
MAX_PAGE = 100
DEFAULT_PAGE = 50
MAX_DEDUPE_KEY = 200
MAX_ENDPOINT = 2000

notifications = sa.Table(
    "notify_notifications",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(MAX_USER_ID), nullable=False),
    sa.Column("type", sa.String(MAX_TYPE), nullable=False),
    sa.Column("priority", sa.String(10), nullable=False),
    sa.Column("title", sa.String(MAX_TITLE), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("data", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),  # milliseconds
    sa.Column("seen_at", sa.BigInteger(), nullable=True),
    sa.Column("read_at", sa.BigInteger(), nullable=True),
    sa.Column("archived_at", sa.BigInteger(), nullable=True),
    sa.Column("live", sa.Boolean(), nullable=False),  # sent as `notification` (not muted)
    sa.Column("fallback", sa.String(10), nullable=True),
    sa.Column("fallback_due", sa.BigInteger(), nullable=True),
    sa.Column("dedupe_key", sa.String(MAX_DEDUPE_KEY), nullable=True),
    sa.UniqueConstraint("user_id", "dedupe_key"),
    sa.Index("ix_notify_notifications_user_id_id", "user_id", "id"),
    sa.Index("ix_notify_notifications_fallback", "fallback", "fallback_due"),
)

push_subscriptions = sa.Table(
    "notify_push_subscriptions",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(MAX_USER_ID), nullable=False),
    sa.Column("endpoint", sa.Text(), nullable=False),
    # The endpoint is long; its digest is the unique key (one browser, one owner).
    sa.Column("endpoint_hash", sa.String(64), nullable=False),
    sa.Column("p256dh", sa.String(200), nullable=False),
    sa.Column("auth", sa.String(100), nullable=False),
    sa.Column("created_at", sa.BigInteger(), nullable=False),
    sa.UniqueConstraint("endpoint_hash"),
    sa.Index("ix_notify_push_subscriptions_user_id", "user_id"),
)

attempts = sa.Table(
    "notify_attempts",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("notification_id", sa.BigInteger(), nullable=False),
    sa.Column("channel", sa.String(10), nullable=False),  # push | email
    sa.Column("target", sa.String(500), nullable=False),
    sa.Column("outcome", sa.String(10), nullable=False),  # sent | failed | gone | skipped
    sa.Column("status", sa.Integer(), nullable=True),
    sa.Column("detail", sa.String(500), nullable=False),
    sa.Column("at", sa.BigInteger(), nullable=False),
    sa.Index("ix_notify_attempts_notification_id", "notification_id"),
)

State = Literal["unseen", "seen", "read", "archived"]
RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}

NotificationId = Annotated[str, msgspec.Meta(min_length=1, max_length=20, pattern=r"^[0-9]+$")]
IdList = Annotated[list[NotificationId], msgspec.Meta(min_length=1, max_length=MAX_IDS)]


class NewNotification(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """The body of `POST /api/notifications`."""

    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_USER_ID)]
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TYPE)]
    title: Annotated[str, msgspec.Meta(max_length=MAX_TITLE)]
    body: Annotated[str, msgspec.Meta(max_length=MAX_BODY)] = ""
    priority: Priority = "normal"
    data: dict[str, Any] = {}
    dedupe_key: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DEDUPE_KEY)] | None = None


class IdsPayload(msgspec.Struct, frozen=True, rename="camel"):
    """`{notificationIds}`: the notifications a mark or archive call is about."""

    notification_ids: IdList


class OneId(msgspec.Struct, frozen=True, rename="camel"):
    notification_id: NotificationId


class ListQuery(msgspec.Struct, frozen=True, rename="camel"):
    """Filters of a listing: newest first, `before` an id (exclusive), `next` the cursor."""

    unread: bool = False
    archived: Literal["exclude", "only", "include"] = "exclude"
    type: str | None = None
    priority: Priority | None = None
    before: NotificationId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE


def state_of(row: RowMapping) -> State:
    """The state a client sees, derived from the row's timestamps."""
    if row["archived_at"] is not None:
        return "archived"
    if row["read_at"] is not None:
        return "read"
    if row["seen_at"] is not None:
        return "seen"
    return "unseen"


def to_wire(row: RowMapping) -> dict[str, Any]:
    """A notification as PROTOCOL.md section 11 shows it (plus `state` and its times)."""
    return {
        "id": str(row["id"]),
        "userId": row["user_id"],
        "type": row["type"],
        "priority": row["priority"],
        "title": row["title"],
        "body": row["body"],
        "data": row["data"],
        "read": row["read_at"] is not None,
        "state": state_of(row),
        "createdAt": row["created_at"],
        "seenAt": row["seen_at"],
        "readAt": row["read_at"],
        "archivedAt": row["archived_at"],
    }


def at_least(priority: str, floor: Priority) -> bool:
    """Whether `priority` ranks at or above `floor`."""
    return RANK.get(priority, 0) >= RANK[floor]
