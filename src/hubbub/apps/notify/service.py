"""The notifications service: the Python API of the app, and the hub's `Notifier`.

Every change follows one order: store, then tell every connection of the user on
`user:{id}` (sequenced, so a reconnecting client recovers what it missed). Changes
of one user are serialized on this node, so the `notifications.unread_count`
events it sends carry counts in the order they were made.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import msgspec
from sqlalchemy.engine import RowMapping

from hubbub.apps.notify.fallback import FallbackScheduler
from hubbub.apps.notify.model import MAX_IDS, ListQuery, NewNotification, at_least, to_wire
from hubbub.apps.notify.preferences import Preferences, merged
from hubbub.apps.notify.providers import EmailProvider, PushProvider, PushSubscription
from hubbub.apps.notify.repository import NotificationRepository
from hubbub.core.hub import Hub
from hubbub.core.notices import PRIORITIES, Notice
from hubbub.errors import BadRequest, Unavailable
from hubbub.protocol.channels import is_valid_channel, user_channel

MAX_DATA_BYTES = 16 * 1024
_json = msgspec.json.Encoder()


class Marked(msgspec.Struct, frozen=True, rename="camel"):
    """What a mark or archive call changed, and the user's unread count after it."""

    notification_ids: list[str]
    unread: int


class Page(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """One page of a listing: newest first; `next` is the `before` of the next page."""

    notifications: list[dict[str, Any]]
    unread: int
    next: str | None = None


def check_user_id(user_id: str) -> str:
    """`user_id` if it can own a `user:` channel (docs/protocol.md 16.9); BadRequest if not."""
    if not isinstance(user_id, str) or not is_valid_channel(user_channel(user_id)):
        raise BadRequest("userId may hold only letters, digits and _ . @ -")
    return user_id


class NotificationService:
    """Stores notifications, delivers them live and by fallback, and keeps their states."""

    def __init__(
        self, hub: Hub, *, push: PushProvider | None = None, email: EmailProvider | None = None
    ) -> None:
        self.hub = hub
        self.push = push
        self.email = email
        self.fallback = FallbackScheduler(self)
        self._repo: NotificationRepository | None = None
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @property
    def repo(self) -> NotificationRepository:
        """The queries, on the hub's store (open once the hub has started)."""
        store = self.hub.store
        if store is None:
            raise Unavailable("the store is not open")
        if self._repo is None or self._repo.store is not store:
            self._repo = NotificationRepository(store)
        return self._repo

    @asynccontextmanager
    async def _serialized(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id) or (asyncio.Lock(), 0)
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    # -- creating ---------------------------------------------------------------------

    async def notify(self, notice: Notice) -> None:
        """The `Notifier` hook (core/notices.py): store and deliver `notice`."""
        await self.create(notice)

    async def create(self, notice: Notice, *, dedupe_key: str | None = None) -> dict[str, Any]:
        """Store `notice`, send it live unless held back, plan its fallback; return it.

        With `dedupe_key`, a second call with the same key for the same user returns
        the first notification and sends nothing again.
        """
        self._check(notice)
        prefs = await self.repo.preferences(notice.user_id)
        now = self.hub.clock.time_ms()
        held = prefs.holds_back(notice.type, notice.priority, now)
        fallback = not held and _may_fall_back(notice.priority, prefs)
        delay = self.hub.settings.notify_fallback_delay
        values = {
            "user_id": notice.user_id,
            "type": notice.type,
            "priority": notice.priority,
            "title": notice.title,
            "body": notice.body,
            "data": notice.data,
            "created_at": now,
            "live": not held,
            "fallback": "pending" if fallback else None,
            "fallback_due": now + int(delay * 1000) if fallback else None,
            "dedupe_key": dedupe_key,
        }
        async with self._serialized(notice.user_id):
            row, created, unread = await self.repo.insert(values)
            if not created:
                return to_wire(row)
            if not held:
                await self.hub.send_to_user(notice.user_id, "notification", to_wire(row))
            await self._send_count(notice.user_id, unread)
        if fallback:
            self.fallback.schedule(row["id"], delay)
        return to_wire(row)

    def _check(self, notice: Notice) -> None:
        check_user_id(notice.user_id)
        if notice.priority not in PRIORITIES:
            raise BadRequest("priority must be low, normal, high or critical")
        try:
            msgspec.convert(
                {
                    "userId": notice.user_id,
                    "type": notice.type,
                    "title": notice.title,
                    "body": notice.body,
                    "priority": notice.priority,
                },
                NewNotification,
            )
            size = len(_json.encode(notice.data))
        except (msgspec.ValidationError, msgspec.EncodeError, TypeError) as exc:
            raise BadRequest(f"notification: {exc}") from None
        if size > MAX_DATA_BYTES:
            raise BadRequest(f"data is larger than {MAX_DATA_BYTES} bytes as JSON")

    async def _send_count(self, user_id: str, count: int | None = None) -> None:
        if count is None:
            count = await self.repo.unread_count(user_id)
        await self.hub.send_to_user(user_id, "notifications.unread_count", {"count": count})

    # -- reading ----------------------------------------------------------------------

    async def get(self, user_id: str | None, notification_id: str) -> dict[str, Any]:
        """One notification; of `user_id` only (NotFound for anyone else's), or any if None."""
        return to_wire(await self.repo.get(user_id, _id(notification_id)))

    async def page(self, user_id: str, query: ListQuery | None = None) -> Page:
        """A page of the user's notifications, newest first, with filters and a cursor.

        The cursor is an id: notifications arriving meanwhile are newer and never
        shift the pages that follow.
        """
        q = query or ListQuery()
        rows, more, unread = await self.repo.page(check_user_id(user_id), q)
        cursor = str(rows[-1]["id"]) if more and rows else None
        return Page([to_wire(r) for r in rows], unread, cursor)

    async def unread_count(self, user_id: str) -> int:
        return await self.repo.unread_count(user_id)

    # -- marking ----------------------------------------------------------------------

    async def mark_read(self, user_id: str, notification_ids: Sequence[str]) -> Marked:
        """Mark the user's notifications read; tell every connection of the user."""
        return await self._stamp(user_id, notification_ids, "read_at", "notifications_read")

    async def mark_all_read(self, user_id: str) -> Marked:
        """Mark every unread notification of the user read."""
        return await self._stamp(user_id, None, "read_at", "notifications_read")

    async def mark_seen(self, user_id: str, notification_ids: Sequence[str]) -> Marked:
        """Mark notifications seen (shown to the user, not yet opened)."""
        return await self._stamp(user_id, notification_ids, "seen_at", "notifications_seen")

    async def archive(self, user_id: str, notification_ids: Sequence[str]) -> Marked:
        """Archive notifications: out of the default listing and of the unread count."""
        return await self._stamp(user_id, notification_ids, "archived_at", "notifications_archived")

    async def _stamp(
        self,
        user_id: str,
        notification_ids: Sequence[str] | None,
        column: Literal["read_at", "seen_at", "archived_at"],
        event: str,
    ) -> Marked:
        ids = None if notification_ids is None else [_id(i) for i in notification_ids]
        if ids is not None and not 0 < len(ids) <= MAX_IDS:
            raise BadRequest(f"notificationIds holds 1 to {MAX_IDS} ids")
        async with self._serialized(user_id):
            now = self.hub.clock.time_ms()
            changed, unread = await self.repo.set_time(user_id, ids, column, now)
            shown = [str(i) for i in changed]
            if changed:
                payload: dict[str, Any] = {"notificationIds": shown}
                if ids is None:
                    payload["all"] = True
                await self.hub.send_to_user(user_id, event, payload)
                if column != "seen_at":
                    await self._send_count(user_id, unread)
        if column != "seen_at":
            self.fallback.cancel(changed)
        return Marked(shown, unread)

    # -- preferences and push subscriptions --------------------------------------------

    async def preferences(self, user_id: str) -> Preferences:
        return await self.repo.preferences(check_user_id(user_id))

    async def update_preferences(self, user_id: str, changes: dict[str, Any]) -> Preferences:
        """Change the fields present in `changes` (the JSON of `Preferences`)."""
        async with self._serialized(check_user_id(user_id)):
            prefs = merged(await self.repo.preferences(user_id), changes)
            await self.repo.save_preferences(user_id, prefs)
        return prefs

    async def add_push_subscription(self, user_id: str, subscription: PushSubscription) -> None:
        """Reach this browser by Web Push when the user is away."""
        await self.repo.add_subscription(
            check_user_id(user_id), subscription, self.hub.clock.time_ms()
        )

    async def remove_push_subscription(self, user_id: str, endpoint: str) -> bool:
        return await self.repo.remove_subscription(user_id, endpoint)

    async def attempts(self, notification_id: str) -> list[dict[str, Any]]:
        """Every push and email attempt of one notification, with its outcome, oldest first."""
        return await self.repo.attempts_of(_id(notification_id))

    async def fallback_state(self, row_id: str) -> str | None:
        row: RowMapping = await self.repo.get(None, _id(row_id))
        state: str | None = row["fallback"]
        return state


def _id(value: str) -> int:
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise BadRequest("a notification id is a string of digits")
    return int(value)


def _may_fall_back(priority: str, prefs: Preferences) -> bool:
    """Whether push or email could be wanted later (decided again when it is due)."""
    return (at_least(priority, "normal") and prefs.push) or (priority == "critical" and prefs.email)
