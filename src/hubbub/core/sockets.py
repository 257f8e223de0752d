"""Raw WebSocket endpoints: apps that speak a protocol of their own on a path of their own.

The `/ws` protocol (envelopes, channels) is the hub's. Some apps must speak someone
else's, byte for byte: the collaboration app speaks the Yjs y-websocket protocol on
`/collab/{name}`. Such an app registers an endpoint with `Hub.socket_endpoint`; the
transport routes the WebSocket upgrade of a matching path here, and the app gets a
`RawSocket` (send bytes, close) and hands back a `SocketPeer` (receive bytes, closed).

Apps never touch the transport: what they see is these two small protocols. Sending
never waits for the client: frames go through the connection's bounded `SendQueue`,
and a client that falls behind by more than its bound is closed with 4008.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from hubbub.config import Settings
from hubbub.core.connection import Connection
from hubbub.core.sendqueue import SendQueue
from hubbub.protocol.codec import JSON, ws_frame
from hubbub.protocol.codes import CloseCode


class RawSocket(Protocol):
    """A client's WebSocket as an app endpoint sees it.

    - `send` queues one binary message and returns at once; it never waits for the
      client. Past the connection's send-queue bound the socket is closed with 4008.
    - `send_frame` does the same with a ready frame from `binary_frame`, so that one
      message fanned out to many sockets is framed once.
    - `close` sends a close frame with `code` and `reason` and ends the connection soon.
    - `closed` is True once the socket was closed by either side.
    """

    @property
    def closed(self) -> bool: ...

    def send(self, data: bytes) -> None: ...

    def send_frame(self, frame: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class SocketPeer(Protocol):
    """What an app endpoint does with a socket it accepted.

    The transport awaits `receive` for each message in order (so a slow `receive`
    slows only this client) and awaits `closed` once, after the socket ended.
    """

    async def receive(self, data: bytes | str) -> None: ...

    async def closed(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SocketRequest:
    """The WebSocket upgrade request: path parameters, query and lower-case headers."""

    path: str
    params: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def token(self) -> str | None:
        """The bearer token of the request: `Authorization: Bearer`, else `?token=`."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.query.get("token") or None


SocketHandler = Callable[[RawSocket, SocketRequest], Awaitable[SocketPeer]]


def binary_frame(data: bytes) -> bytes:
    """The ready WebSocket frame of one binary message, for `RawSocket.send_frame`."""
    return ws_frame(data, binary=True)


class QueuedSocket:
    """The core's `RawSocket` over a transport `Connection`, with a bounded send queue."""

    __slots__ = ("_conn", "_queue", "_closed")

    def __init__(self, conn: Connection, settings: Settings) -> None:
        self._conn = conn
        self._closed = False
        self._queue = SendQueue(
            conn,
            JSON,  # only conflation reads the codec; raw sockets never conflate
            limit=settings.send_queue_bytes,
            high_water=settings.send_high_water,
            on_overflow=lambda: self.close(CloseCode.TOO_SLOW, "send queue full"),
        )

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes) -> None:
        self._queue.push(ws_frame(data, binary=True))

    def send_frame(self, frame: bytes) -> None:
        self._queue.push(frame)

    def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.close()
        self._conn.close(code, reason)

    def ended(self) -> None:
        """The transport saw the connection end."""
        self._closed = True
        self._queue.close()


@dataclass(frozen=True, slots=True)
class SocketEndpoint:
    """One registered endpoint: its path pattern, handler and message size limit."""

    pattern: str
    regex: re.Pattern[str]
    handler: SocketHandler
    max_message_bytes: int


class SocketLink:
    """An accepted raw socket and the app's peer; the transport drives it."""

    __slots__ = ("socket", "peer", "_endpoints")

    def __init__(self, socket: QueuedSocket, peer: SocketPeer, endpoints: SocketEndpoints) -> None:
        self.socket = socket
        self.peer = peer
        self._endpoints = endpoints

    async def receive(self, data: bytes | str) -> None:
        if not self.socket.closed:
            await self.peer.receive(data)

    async def ended(self) -> None:
        """The connection is over: tell the app once."""
        self.socket.ended()
        if self._endpoints.open.pop(self.socket, None) is not None:
            await self.peer.closed()


class SocketEndpoints:
    """The raw endpoints of a hub and the sockets open on them."""

    def __init__(self) -> None:
        self._endpoints: list[SocketEndpoint] = []
        self.open: dict[QueuedSocket, SocketLink] = {}

    def add(self, pattern: str, handler: SocketHandler, *, max_message_bytes: int) -> None:
        """Route WebSockets on `pattern` (`/collab/{name}`: `{x}` is one path segment)."""
        if not pattern.startswith("/") or pattern == "/ws":
            raise ValueError(f"a socket endpoint is an absolute path other than /ws: {pattern!r}")
        regex = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        )
        self._endpoints.append(SocketEndpoint(pattern, regex, handler, max_message_bytes))

    @property
    def endpoints(self) -> list[SocketEndpoint]:
        return list(self._endpoints)

    def match(self, path: str) -> tuple[SocketEndpoint, dict[str, str]] | None:
        """The endpoint serving `path` and its parameters, or None."""
        for endpoint in self._endpoints:
            m = endpoint.regex.match(path)
            if m is not None:
                return endpoint, m.groupdict()
        return None

    async def accept(
        self, endpoint: SocketEndpoint, conn: Connection, request: SocketRequest, settings: Settings
    ) -> SocketLink:
        """Hand a new connection to its endpoint's handler; the link drives the rest."""
        socket = QueuedSocket(conn, settings)
        peer = await endpoint.handler(socket, request)
        link = SocketLink(socket, peer, self)
        self.open[socket] = link
        return link

    def close_all(self, code: int, reason: str) -> None:
        """Close every open raw socket (the hub is stopping)."""
        for socket in list(self.open):
            socket.close(code, reason)
