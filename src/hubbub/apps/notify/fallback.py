"""The delayed fallback: push and email for what the user did not read in time.

When a notification that may need them is created, its `fallback` is `pending`
and due `notify_fallback_delay` seconds later (kept in the row, so a restarted
node plans it again). When it falls due, one node claims it and decides:

- read or archived meanwhile, or the user has a live connection now: cancelled;
- otherwise Web Push to each of the user's subscriptions (priority normal and
  above, push on) and email (critical, email on, an address set).

Every attempt and its outcome goes in `notify_attempts`. Delivery is at most once:
a node that dies while trying leaves the fallback `running`, not retried. A node
that dies before one falls due leaves it `pending`: every node sweeps the store
once per delay for such overdue fallbacks and takes them over. Timers run on the
hub's injected clock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy.engine import RowMapping

from hubbub.apps.notify.model import at_least
from hubbub.apps.notify.preferences import Preferences
from hubbub.apps.notify.providers import Delivery, OutgoingEmail, PushMessage
from hubbub.clock import TimerHandle

if TYPE_CHECKING:
    from hubbub.apps.notify.service import NotificationService
    from hubbub.core.hub import Hub

log = logging.getLogger("hubbub.notify")
MAX_PUSH_PAYLOAD = 3800  # what is left of the 4,096-byte push record after encryption
SWEEP_GRACE = 5.0  # seconds overdue before another node's pending fallback is taken over
STOP_GRACE = 5.0  # seconds a stopping hub waits for a fallback under way
URGENCY = {"low": "low", "normal": "normal", "high": "high", "critical": "high"}


class FallbackScheduler:
    """Plans, cancels and runs the fallback of each notification on the hub's clock."""

    def __init__(self, service: NotificationService) -> None:
        self.service = service
        self._timers: dict[int, TimerHandle] = {}
        self._sweeper: TimerHandle | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def hub(self) -> Hub:
        return self.service.hub

    # -- timers -----------------------------------------------------------------------

    def start(self) -> None:
        """On hub start: plan again every fallback still pending in the store."""
        self._launch(self._restore)
        self._schedule_sweep()

    def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    def _schedule_sweep(self) -> None:
        def sweep() -> None:
            if self.hub.started:
                self._launch(self._sweep)
                self._schedule_sweep()

        interval = max(self.hub.settings.notify_fallback_delay, 1.0)
        self._sweeper = self.hub.clock.call_later(interval, sweep)

    def schedule(self, notification_id: int, delay: float) -> None:
        """Decide `notification_id`'s fallback `delay` seconds from now."""
        old = self._timers.pop(notification_id, None)
        if old is not None:
            old.cancel()

        def due() -> None:
            self._timers.pop(notification_id, None)
            if self.hub.started:
                self._launch(self.run, notification_id)

        self._timers[notification_id] = self.hub.clock.call_later(max(0.0, delay), due)

    def cancel(self, notification_ids: list[int]) -> None:
        """Forget the local timers of these (the store already says `cancelled`)."""
        for notification_id in notification_ids:
            timer = self._timers.pop(notification_id, None)
            if timer is not None:
                timer.cancel()

    def _launch(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        self._busy += 1
        self._idle.clear()
        self.hub.spawn(self._tracked(fn, *args))

    async def _tracked(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        inner = asyncio.ensure_future(fn(*args))
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError:
            # The hub is stopping. Cut short, a store call can leave a database
            # connection half open, and a claimed fallback `running` for good: let it
            # end first, for a bounded time.
            try:
                async with asyncio.timeout(STOP_GRACE):
                    await inner
            except BaseException:
                inner.cancel()
            raise
        except Exception:  # the next notification's fallback must still run
            log.exception("notification fallback failed")
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def settle(self) -> None:
        """Wait until every fallback that has fallen due has been decided (for tests)."""
        await self._idle.wait()

    @property
    def planned(self) -> int:
        """How many fallbacks this node has timers for."""
        return len(self._timers)

    async def _restore(self) -> None:
        now = self.hub.clock.time_ms()
        for notification_id, due in await self.service.repo.pending_fallbacks():
            self.schedule(notification_id, (due - now) / 1000)

    async def _sweep(self) -> None:
        overdue = self.hub.clock.time_ms() - int(SWEEP_GRACE * 1000)
        for notification_id, due in await self.service.repo.pending_fallbacks():
            if due <= overdue and notification_id not in self._timers:
                await self.run(notification_id)

    # -- deciding ---------------------------------------------------------------------

    async def run(self, notification_id: int) -> None:
        """Claim and decide one fallback (a no-op when another node or a read took it)."""
        repo = self.service.repo
        row = await repo.claim_fallback(notification_id)
        if row is None:
            return
        user = row["user_id"]
        if row["read_at"] is not None or row["archived_at"] is not None:
            await repo.finish_fallback(notification_id, "cancelled")
            return
        if await self.hub.is_online(user):
            await repo.finish_fallback(notification_id, "cancelled")
            return
        prefs = await repo.preferences(user)
        if at_least(row["priority"], "normal") and prefs.push:
            await self._push(row)
        if row["priority"] == "critical" and prefs.email:
            await self._email(row, prefs)
        await repo.finish_fallback(notification_id, "done")

    async def _record(self, row: RowMapping, channel: str, target: str, result: Delivery) -> None:
        now = self.hub.clock.time_ms()
        await self.service.repo.record(row["id"], channel, target, result, now)

    async def _push(self, row: RowMapping) -> None:
        provider = self.service.push
        if provider is None:
            await self._record(row, "push", "", Delivery("skipped", detail="push is off"))
            return
        subscriptions = await self.service.repo.subscriptions(row["user_id"])
        if not subscriptions:
            skipped = Delivery("skipped", detail="no push subscription")
            await self._record(row, "push", "", skipped)
            return
        message = PushMessage(
            payload=push_payload(row),
            urgency=URGENCY.get(row["priority"], "normal"),  # type: ignore[arg-type]
            topic=f"n{row['id']}",
        )
        for subscription in subscriptions:
            result = await provider.send(subscription, message)
            await self._record(row, "push", subscription.endpoint, result)
            if result.outcome == "gone":
                await self.service.repo.remove_subscription(row["user_id"], subscription.endpoint)

    async def _email(self, row: RowMapping, prefs: Preferences) -> None:
        provider = self.service.email
        address = prefs.email_address
        if provider is None or address is None:
            why = "email is not configured" if provider is None else "no email address"
            await self._record(row, "email", address or "", Delivery("skipped", detail=why))
            return
        email = OutgoingEmail(
            to=address,
            subject=f"[{row['priority']}] {row['title']}",
            text=email_text(row, self.hub.settings.notify_base_url),
            notification_id=str(row["id"]),
        )
        await self._record(row, "email", address, await provider.send(email))


def push_payload(row: RowMapping) -> bytes:
    """The JSON a service worker receives; `data` and then `body` are cut to fit."""
    message: dict[str, Any] = {
        "id": str(row["id"]),
        "type": row["type"],
        "priority": row["priority"],
        "title": row["title"],
        "body": row["body"],
        "data": row["data"],
        "createdAt": row["created_at"],
    }
    encoded = msgspec.json.encode(message)
    if len(encoded) > MAX_PUSH_PAYLOAD:
        message["data"] = {}
        encoded = msgspec.json.encode(message)
    while len(encoded) > MAX_PUSH_PAYLOAD and message["body"]:
        message["body"] = message["body"][: len(message["body"]) // 2] + "…"
        if len(message["body"]) <= 2:
            message["body"] = ""
        encoded = msgspec.json.encode(message)
    return encoded


def email_text(row: RowMapping, base_url: str | None) -> str:
    """The plain-text body of a notification's email."""
    lines = [row["title"], "", row["body"]] if row["body"] else [row["title"]]
    if base_url:
        lines += ["", f"Open: {base_url.rstrip('/')}/demo/notifications"]
    return "\n".join(lines) + "\n"
