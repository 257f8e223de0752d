"""The bounded send queue of one connection (DESIGN.md principle 2).

Frames go straight to the connection while its buffer is below the high-water
mark. Past it they wait here, up to `limit` bytes. Conflatable events of one
channel replace each other while they wait, so a slow dashboard gets the
newest value, marked `conflated`. Anything else over the bound is an overflow:
the queue calls `on_overflow` (the hub closes the connection with 4008).
Nothing here ever makes a publisher wait.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from hubbub.protocol.codec import Codec

if TYPE_CHECKING:
    from hubbub.core.connection import Connection
    from hubbub.engines.broker import Publication


class SendQueue:
    """Frames waiting for one slow connection; see the module docstring."""

    __slots__ = (
        "_conn",
        "_codec",
        "_limit",
        "_high",
        "_pending",
        "_pending_bytes",
        "_conflated",
        "_flusher",
        "_on_overflow",
        "closed",
    )

    def __init__(
        self,
        conn: Connection,
        codec: Codec,
        *,
        limit: int,
        high_water: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self._conn = conn
        self._codec = codec
        self._limit = limit
        self._high = high_water
        # Each item is a ready frame, or a channel name whose newest event sits in _conflated.
        # Both are made when first needed: most connections never fall behind.
        self._pending: deque[bytes | str] | None = None
        self._pending_bytes = 0
        self._conflated: dict[str, tuple[Publication, bool]] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._on_overflow = on_overflow
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    def push(self, frame: bytes) -> None:
        """Send `frame` now if the connection keeps up, else queue it within the bound."""
        if self.closed:
            return
        if not self._pending and self._conn.buffered() < self._high:
            self._conn.write(frame)
            return
        if self._pending is None:
            self._pending = deque()
        self._pending.append(frame)
        self._pending_bytes += len(frame)
        if self._pending_bytes > self._limit:
            self._overflow()
            return
        self._start_flusher()

    def push_conflatable(self, pub: Publication) -> None:
        """Like `push`, but a newer event of the same channel replaces a waiting one."""
        if self.closed:
            return
        if not self._pending and self._conn.buffered() < self._high:
            self._conn.write(pub.frame(self._codec))
            return
        if self._pending is None:
            self._pending = deque()
        if self._conflated is None:
            self._conflated = {}
        previous = self._conflated.get(pub.channel)
        if previous is not None:
            self._pending_bytes -= len(previous[0].frame(self._codec))
            self._conflated[pub.channel] = (pub, True)
        else:
            self._conflated[pub.channel] = (pub, False)
            self._pending.append(pub.channel)
        self._pending_bytes += len(pub.frame(self._codec))
        if self._pending_bytes > self._limit:
            self._overflow()
            return
        self._start_flusher()

    def _overflow(self) -> None:
        self.close()
        self._on_overflow()

    def close(self) -> None:
        """Drop what waits and refuse more; the connection is going away."""
        self.closed = True
        self._pending = None
        self._conflated = None
        self._pending_bytes = 0
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
        self._flusher = None

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    def _next_frame(self) -> bytes:
        assert self._pending is not None
        item = self._pending.popleft()
        if isinstance(item, bytes):
            self._pending_bytes -= len(item)
            return item
        assert self._conflated is not None
        pub, replaced = self._conflated.pop(item)
        self._pending_bytes -= len(pub.frame(self._codec))
        return pub.frame(self._codec, 2 if replaced else 0)

    async def _flush(self) -> None:
        conn = self._conn
        low = self._high // 2
        try:
            while self._pending and not self.closed:
                if conn.buffered() >= self._high:
                    await conn.wait_writable(low)
                    continue
                while self._pending and conn.buffered() < self._high:
                    conn.write(self._next_frame())
        except (ConnectionError, asyncio.CancelledError):
            self.closed = True
        finally:
            self._flusher = None
