"""Presence (PROTOCOL.md section 5): who is in a channel, with a grace period on leave.

A user is present in a channel while any of their connections is subscribed
to it. `presence.leave` goes out only after the grace period, and only if no
connection of the user came back meanwhile, so a quick reconnect never flaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.clock import Clock, TimerHandle
from hubbub.engines.broker import Broker, PresenceInfo

EmitEvent = Callable[[str, str, dict[str, Any]], Awaitable[object]]


class PresenceTracker:
    """Joins and leaves of channel members, kept in the broker so every node agrees."""

    def __init__(self, broker: Broker, clock: Clock, grace: float, emit: EmitEvent) -> None:
        self._broker = broker
        self._clock = clock
        self._grace = grace
        self._emit = emit
        self._leaving: dict[tuple[str, str], TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def join(self, channel: str, user_id: str, connection_id: str, status: str) -> None:
        info = PresenceInfo(user_id=user_id, connection_id=connection_id, status=status)
        newly = await self._broker.presence_add(channel, info)
        pending = self._leaving.pop((channel, user_id), None)
        if pending is not None:
            pending.cancel()
            return
        if newly:
            await self._emit(channel, "presence.join", {"channel": channel, "userId": user_id})

    async def update(self, channel: str, user_id: str, connection_id: str, status: str) -> None:
        info = PresenceInfo(user_id=user_id, connection_id=connection_id, status=status)
        await self._broker.presence_add(channel, info)

    async def leave(self, channel: str, user_id: str, connection_id: str) -> None:
        gone = await self._broker.presence_remove(channel, user_id, connection_id)
        if not gone:
            return
        key = (channel, user_id)
        old = self._leaving.pop(key, None)
        if old is not None:
            old.cancel()
        self._leaving[key] = self._clock.call_later(
            self._grace, lambda: self._spawn(self._finish_leave(channel, user_id))
        )

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish_leave(self, channel: str, user_id: str) -> None:
        self._leaving.pop((channel, user_id), None)
        if not await self._broker.presence_has_user(channel, user_id):
            await self._emit(channel, "presence.leave", {"channel": channel, "userId": user_id})

    async def members(self, channel: str) -> list[dict[str, Any]]:
        """`[{userId, status, connections}]`, one entry per present user."""
        by_user: dict[str, dict[str, Any]] = {}
        for info in await self._broker.presence_members(channel):
            entry = by_user.get(info.user_id)
            if entry is None:
                by_user[info.user_id] = {
                    "userId": info.user_id,
                    "status": info.status,
                    "connections": 1,
                }
            else:
                entry["connections"] += 1
        return sorted(by_user.values(), key=lambda m: str(m["userId"]))

    async def settle(self) -> None:
        """Wait for the leaves whose grace period has ended to be announced."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))

    async def close(self) -> None:
        """Stopping: announce now the leaves still in their grace period (the users of a
        stopping node are gone; other nodes' subscribers must hear it), then wait."""
        pending = list(self._leaving)
        for handle in self._leaving.values():
            handle.cancel()
        self._leaving.clear()
        for channel, user_id in pending:
            try:
                await self._finish_leave(channel, user_id)
            except Exception:  # the broker may be gone already; nothing more to tell
                break
        await self.settle()
