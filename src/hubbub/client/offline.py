"""Publishes made while disconnected, waiting for the next connection."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import msgspec

from hubbub.client.errors import ClientError, OfflineQueueFull


class QueuedPublish:
    """One publish waiting to be sent; `future` resolves with its `seq`."""

    __slots__ = ("channel", "data", "future")

    def __init__(self, channel: str, data: msgspec.Raw, future: asyncio.Future[int]) -> None:
        self.channel = channel
        self.data = data
        self.future = future


class OfflineQueue:
    """A bounded FIFO of publishes, sent in order once the client is connected and
    has resubscribed. Past `limit` waiting publishes, `put` raises `OfflineQueueFull`:
    a queue with no bound is a bug (DESIGN.md principle 2)."""

    def __init__(self, limit: int = 1000) -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.limit = limit
        self._items: deque[QueuedPublish] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, channel: str, data: msgspec.Raw) -> QueuedPublish:
        """Queue a publish of already encoded `data`; raises `OfflineQueueFull` at the bound."""
        if len(self._items) >= self.limit:
            self._items = deque(i for i in self._items if not i.future.done())
        if len(self._items) >= self.limit:
            raise OfflineQueueFull(f"{self.limit} publishes already wait for a connection")
        item = QueuedPublish(channel, data, asyncio.get_running_loop().create_future())
        self._items.append(item)
        return item

    def pop(self) -> QueuedPublish | None:
        """The oldest publish whose caller still waits, or None."""
        self._drop_abandoned()
        return self._items.popleft() if self._items else None

    def push_back(self, item: QueuedPublish) -> None:
        """Return `item` to the front: it could not be sent."""
        self._items.appendleft(item)

    def fail_all(self, error: Callable[[], ClientError]) -> None:
        """Fail every waiting publish (the client closed for good)."""
        items = list(self._items)
        self._items.clear()
        for item in items:
            if not item.future.done():
                item.future.set_exception(error())

    def _drop_abandoned(self) -> None:
        # A caller that was cancelled no longer wants its publish sent.
        while self._items and self._items[0].future.done():
            self._items.popleft()
