"""The notifications app's queries, on the `Store` contract (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.apps.notify.model import ListQuery, attempts, notifications, push_subscriptions
from hubbub.apps.notify.preferences import Preferences, from_stored
from hubbub.apps.notify.providers import Delivery, PushSubscription
from hubbub.engines.store import Store
from hubbub.errors import NotFound

PREFERENCES = "notify.preferences"
N = notifications.c


def _unread(user_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(N.user_id == user_id, N.read_at.is_(None), N.archived_at.is_(None))


class NotificationRepository:
    """Reads and writes of notifications, preferences, push subscriptions and attempts."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- notifications ----------------------------------------------------------------

    async def insert(self, values: dict[str, Any]) -> tuple[RowMapping, bool, int]:
        """Store one notification; with a `dedupe_key`, a repeat returns the first one.
        Returns the stored row, whether this call made it, and the user's unread count."""
        async with self.store.begin() as conn:
            if values.get("dedupe_key") is not None:
                inserted = await self.store.insert_idempotent(
                    notifications, values, key=("user_id", "dedupe_key"), conn=conn
                )
                row, created = inserted.row, inserted.created
            else:
                query = sa.insert(notifications).values(values).returning(*N)
                row, created = (await conn.execute(query)).mappings().one(), True
            return row, created, await self._count(conn, values["user_id"])

    async def get(self, user_id: str | None, notification_id: int) -> RowMapping:
        """One notification; of `user_id` only, unless None. NotFound otherwise."""
        query = sa.select(notifications).where(N.id == notification_id)
        if user_id is not None:
            query = query.where(N.user_id == user_id)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise NotFound("no such notification")
        return row

    async def page(self, user_id: str, q: ListQuery) -> tuple[list[RowMapping], bool, int]:
        """A page newest first, whether more follow, and the user's unread count."""
        query = sa.select(notifications).where(N.user_id == user_id)
        if q.unread:
            query = query.where(N.read_at.is_(None))
        if q.archived == "exclude":
            query = query.where(N.archived_at.is_(None))
        elif q.archived == "only":
            query = query.where(N.archived_at.is_not(None))
        if q.type is not None:
            query = query.where(N.type == q.type)
        if q.priority is not None:
            query = query.where(N.priority == q.priority)
        if q.before is not None:
            query = query.where(N.id < int(q.before))
        query = query.order_by(N.id.desc()).limit(q.limit + 1)
        async with self.store.read() as conn:
            rows = list((await conn.execute(query)).mappings().all())
            unread = await self._count(conn, user_id)
        return rows[: q.limit], len(rows) > q.limit, unread

    async def unread_count(self, user_id: str) -> int:
        async with self.store.read() as conn:
            return await self._count(conn, user_id)

    async def _count(self, conn: AsyncConnection, user_id: str) -> int:
        query = sa.select(sa.func.count()).select_from(notifications).where(_unread(user_id))
        return int(await conn.scalar(query) or 0)

    async def set_time(
        self, user_id: str, ids: Sequence[int] | None, column: str, now: int
    ) -> tuple[list[int], int]:
        """Stamp `column` (seen_at, read_at, archived_at) on the user's notifications
        `ids` (all unread ones when None) that lack it. Every id must be the user's
        (NotFound otherwise, and nothing changes). Returns the ids changed and the new
        unread count. Reading also marks seen; reading or archiving cancels a pending
        fallback."""
        target = N[column]
        async with self.store.begin() as conn:
            if ids is None:
                scope = _unread(user_id)
            else:
                scope = sa.and_(N.user_id == user_id, N.id.in_(ids))
                found = await conn.scalar(
                    sa.select(sa.func.count()).select_from(notifications).where(scope)
                )
                if found != len(set(ids)):
                    raise NotFound("no such notification")
            changing = sa.and_(scope, target.is_(None))
            changed = sorted((await conn.scalars(sa.select(N.id).where(changing))).all())
            if changed:
                values: dict[str, Any] = {column: now}
                if column == "read_at":
                    values["seen_at"] = sa.func.coalesce(N.seen_at, now)
                await conn.execute(sa.update(notifications).where(N.id.in_(changed)).values(values))
                if column in ("read_at", "archived_at"):
                    await conn.execute(
                        sa.update(notifications)
                        .where(N.id.in_(changed), N.fallback == "pending")
                        .values(fallback="cancelled")
                    )
            return changed, await self._count(conn, user_id)

    # -- the fallback -----------------------------------------------------------------

    async def pending_fallbacks(self) -> list[tuple[int, int]]:
        """(id, due) of every notification whose fallback has not been claimed yet."""
        query = sa.select(N.id, N.fallback_due).where(N.fallback == "pending")
        async with self.store.read() as conn:
            return [(row.id, row.fallback_due or 0) for row in await conn.execute(query)]

    async def claim_fallback(self, notification_id: int) -> RowMapping | None:
        """Take the pending fallback of a notification (one node wins); its row, or None."""
        async with self.store.begin() as conn:
            claimed = await conn.execute(
                sa.update(notifications)
                .where(N.id == notification_id, N.fallback == "pending")
                .values(fallback="running")
            )
            if claimed.rowcount != 1:
                return None
            query = sa.select(notifications).where(N.id == notification_id)
            return (await conn.execute(query)).mappings().one()

    async def finish_fallback(self, notification_id: int, state: str) -> None:
        async with self.store.begin() as conn:
            await conn.execute(
                sa.update(notifications).where(N.id == notification_id).values(fallback=state)
            )

    async def record(
        self, notification_id: int, channel: str, target: str, result: Delivery, now: int
    ) -> None:
        """Keep one attempt and its outcome."""
        async with self.store.begin() as conn:
            await conn.execute(
                sa.insert(attempts).values(
                    notification_id=notification_id,
                    channel=channel,
                    target=target[:500],
                    outcome=result.outcome,
                    status=result.status,
                    detail=result.detail[:500],
                    at=now,
                )
            )

    async def attempts_of(self, notification_id: int) -> list[dict[str, Any]]:
        query = (
            sa.select(attempts)
            .where(attempts.c.notification_id == notification_id)
            .order_by(attempts.c.id)
        )
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {
                "channel": r["channel"],
                "target": r["target"],
                "outcome": r["outcome"],
                "status": r["status"],
                "detail": r["detail"],
                "at": r["at"],
            }
            for r in rows
        ]

    # -- preferences ------------------------------------------------------------------

    async def preferences(self, user_id: str) -> Preferences:
        return from_stored(await self.store.kv_get(PREFERENCES, user_id))

    async def save_preferences(self, user_id: str, prefs: Preferences) -> None:
        await self.store.kv_set(PREFERENCES, user_id, msgspec.to_builtins(prefs))

    # -- push subscriptions -----------------------------------------------------------

    async def add_subscription(self, user_id: str, sub: PushSubscription, now: int) -> None:
        """Keep `sub` for `user_id`; a browser subscribed before (by anyone) moves over."""
        digest = hashlib.sha256(sub.endpoint.encode()).hexdigest()
        table = push_subscriptions
        async with self.store.begin() as conn:
            await conn.execute(sa.delete(table).where(table.c.endpoint_hash == digest))
            await conn.execute(
                sa.insert(table).values(
                    user_id=user_id,
                    endpoint=sub.endpoint,
                    endpoint_hash=digest,
                    p256dh=sub.p256dh,
                    auth=sub.auth,
                    created_at=now,
                )
            )

    async def remove_subscription(self, user_id: str, endpoint: str) -> bool:
        digest = hashlib.sha256(endpoint.encode()).hexdigest()
        table = push_subscriptions
        async with self.store.begin() as conn:
            result = await conn.execute(
                sa.delete(table).where(table.c.endpoint_hash == digest, table.c.user_id == user_id)
            )
        return bool(result.rowcount)

    async def subscriptions(self, user_id: str) -> list[PushSubscription]:
        table = push_subscriptions
        query = sa.select(table).where(table.c.user_id == user_id).order_by(table.c.id)
        async with self.store.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [PushSubscription(r["endpoint"], r["p256dh"], r["auth"]) for r in rows]
