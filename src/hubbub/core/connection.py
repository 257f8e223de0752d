"""The `Connection` contract that a transport gives the core for each WebSocket."""

from __future__ import annotations

from typing import Protocol


class Connection(Protocol):
    """One client socket, as the core sees it.

    - `write` never blocks and never awaits: it hands a ready WebSocket frame
      to the operating system's send buffer (or the transport's own).
    - `buffered` is how many bytes are written but not yet sent; the send queue
      uses it to decide when a client is slow.
    - `wait_writable` returns when `buffered` has fallen below `low_water`.
    - `close` sends a close frame with `code` and ends the connection soon,
      without waiting for the client.
    - `can_ping` is False where the server underneath keeps the connection
      alive itself (ASGI); the hub then does not close it for missing pongs.
    """

    can_ping: bool

    def write(self, frame: bytes) -> None: ...

    def buffered(self) -> int: ...

    async def wait_writable(self, low_water: int) -> None: ...

    def ping(self) -> None: ...

    def close(self, code: int, reason: str) -> None: ...
