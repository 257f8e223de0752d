"""Users as a whole, across their connections and the nodes of a cluster.

Whether a user is connected anywhere (`is_online`), and the people who watch a user
(those who share a chat conversation, say) hearing `presence.user_online` when the
user's first connection comes and `presence.user_offline` when the last one has been
gone for the grace period (PROTOCOL.md section 5). Apps say who watches whom by
registering sources with `Hub.presence_watchers`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from hubbub.clock import TimerHandle
from hubbub.engines.broker import PresenceInfo
from hubbub.protocol.channels import user_channel

if TYPE_CHECKING:
    from hubbub.core.hub import Hub
    from hubbub.core.session import Session

log = logging.getLogger("hubbub")

Watchers = Callable[[str], Awaitable[Iterable[str]]]
"""A source of the users who hear when a given user comes and goes."""


class UserPresence:
    """Online state and watcher announcements of a hub's users."""

    def __init__(self, hub: Hub) -> None:
        self._hub = hub
        self._sources: list[Watchers] = []
        self._offline: dict[str, TimerHandle] = {}

    def add_source(self, fn: Watchers) -> None:
        self._sources.append(fn)

    async def is_online(self, user_id: str) -> bool:
        """Whether `user_id` has a live connection on any node of the cluster."""
        hub = self._hub
        if hub.users.get(user_id):
            return True
        if not hub.broker.shared:
            return False
        return await hub.broker.presence_has_user(user_channel(user_id), user_id)

    async def record(self, session: Session) -> None:
        """A connection authenticated. Kept in a shared broker so that `is_online` sees
        connections on every node; alone, `hub.users` already knows."""
        broker = self._hub.broker
        if not broker.shared:
            return
        info = PresenceInfo(user_id=session.user_id, connection_id=session.id, status="online")
        try:
            await broker.presence_add(user_channel(session.user_id), info)
        except Exception:
            log.warning("could not record %s's connection in the broker", session.user_id)

    async def forget(self, user_id: str, connection_id: str) -> None:
        broker = self._hub.broker
        if not broker.shared:
            return
        try:
            await broker.presence_remove(user_channel(user_id), user_id, connection_id)
        except Exception:  # the broker is gone: its own expiry forgets the connection
            log.warning("could not remove %s's connection from the user channel", user_id)

    async def watchers_of(self, user_id: str) -> set[str]:
        found: set[str] = set()
        for source in self._sources:
            found.update(await source(user_id))
        found.discard(user_id)
        return found

    async def came_back(self, user_id: str, status: str) -> None:
        """The user's first connection: announce it, unless it ends a grace period."""
        pending = self._offline.pop(user_id, None)
        if pending is not None:
            pending.cancel()
            return
        await self.announce(user_id, status)

    async def announce(self, user_id: str, status: str) -> None:
        """Tell the user's watchers that the user is online with `status`."""
        for watcher in await self.watchers_of(user_id):
            await self._hub.emit(
                user_channel(watcher), "presence.user_online", {"userId": user_id, "status": status}
            )

    def went_away(self, user_id: str) -> None:
        """The user's last connection closed: announce it after the grace period."""
        hub = self._hub
        last_seen = hub.clock.time_ms()

        async def offline() -> None:
            self._offline.pop(user_id, None)
            if user_id in hub.users:
                return
            event = {"userId": user_id, "lastSeen": last_seen}
            for watcher in await self.watchers_of(user_id):
                await hub.emit(user_channel(watcher), "presence.user_offline", event)

        self._offline[user_id] = hub.clock.call_later(
            hub.settings.presence_grace, lambda: hub.spawn(offline())
        )

    def cancel(self) -> None:
        """The hub is stopping: no announcement is due any more."""
        for handle in self._offline.values():
            handle.cancel()
        self._offline.clear()
