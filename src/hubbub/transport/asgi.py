"""Hubbub as an ASGI application, to mount inside FastAPI or Starlette.

    app.mount("/hub", hubbub.transport.asgi.HubbubASGI(hub))

It serves the same WebSocket protocol at `<mount>/ws`, the same HTTP API under
`<mount>/api/`, and `/metrics`, `/healthz`, `/readyz`. It is slower than the
standalone server (each frame goes through the ASGI server's own framing),
see docs/benchmarks.md. The ASGI server keeps connections alive with its own
pings, so the hub's heartbeat leaves them be.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from hubbub.core.hub import Hub
from hubbub.core.routes import ApiRequest
from hubbub.core.sockets import SocketEndpoint, SocketRequest
from hubbub.protocol.codec import CODECS, JSON

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _payload_of(frame: bytes) -> tuple[bool, bytes]:
    """Split a ready server frame into (is_text, payload): ASGI sends payloads, not frames."""
    n = frame[1] & 0x7F
    offset = 2 if n < 126 else 4 if n == 126 else 10
    return frame[0] & 0x0F == 0x1, frame[offset:]


class AsgiConnection:
    """`Connection` over ASGI: frames wait in a queue that one writer task drains."""

    can_ping = False

    def __init__(self, send: Send) -> None:
        self._send = send
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self.done = False
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    def write(self, frame: bytes) -> None:
        if self._close is None and not self.done:
            self._queue.append(frame)
            self._bytes += len(frame)
            self._wake.set()

    def buffered(self) -> int:
        return self._bytes

    async def wait_writable(self, low_water: int) -> None:
        while self._bytes > low_water:
            if self.done:
                raise ConnectionError("connection closed")
            self._drained.clear()
            await self._drained.wait()

    def ping(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    frame = self._queue.popleft()
                    self._bytes -= len(frame)
                    is_text, payload = _payload_of(frame)
                    if is_text:
                        await self._send({"type": "websocket.send", "text": payload.decode()})
                    else:
                        await self._send({"type": "websocket.send", "bytes": payload})
                self._drained.set()
                if self._close is not None:
                    code, reason = self._close
                    await self._send({"type": "websocket.close", "code": code, "reason": reason})
                    return
        except Exception:  # the client went away under us
            return
        finally:
            self.done = True
            self._drained.set()


class HubbubASGI:
    """The ASGI app; it starts the hub on its host's lifespan event or on the first request.

    A mounted app gets no lifespan events from Starlette or FastAPI: call
    `await hubbub_app.startup()` and `await hub.stop()` from the host's own lifespan,
    or let the first request start it. The adapter is never in development mode
    unless the settings say `dev=True`: where it listens is the host's business.
    """

    def __init__(self, hub: Hub) -> None:
        if hub.settings.dev is None:
            hub.settings = msgspec.structs.replace(hub.settings, dev=False)
        self.hub = hub
        self._starting: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._http(scope, receive, send)

    async def startup(self) -> None:
        """Start the hub once, however many requests arrive together."""
        if self.hub.started:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self.hub.started:
                await self.hub.start()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.hub.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _path(scope: Scope) -> str:
        path: str = scope.get("path", "/")
        root: str = scope.get("root_path", "")
        return path[len(root) :] if root and path.startswith(root) else path

    @staticmethod
    def _headers(scope: Scope) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.startup()
        headers = self._headers(scope)
        found = self.hub.sockets.match(self._path(scope))
        if found is not None and self.hub.origin_allowed(headers.get("origin")):
            await self._raw_socket(scope, receive, send, found, headers)
            return
        if self._path(scope) != "/ws" or not self.hub.origin_allowed(headers.get("origin")):
            await receive()
            await send({"type": "websocket.close", "code": 1008})
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        scheme, _, value = headers.get("authorization", "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        token = token or query.get("token") or None
        offered = [p for p in scope.get("subprotocols", []) if p in CODECS]
        codec = CODECS[offered[0]] if offered else JSON
        if (await receive())["type"] != "websocket.connect":
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if offered:
            accept["subprotocol"] = offered[0]
        await send(accept)
        conn = AsgiConnection(send)
        session = await self.hub.open(conn, codec, token)
        try:
            while True:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                text = message.get("text")
                data = text if text is not None else message.get("bytes") or b""
                await self.hub.receive(session, data)
                if conn.done:
                    break
        finally:
            await self.hub.disconnect(session)
            conn.writer.cancel()

    async def _raw_socket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        found: tuple[SocketEndpoint, dict[str, str]],
        headers: dict[str, str],
    ) -> None:
        """An app's own WebSocket protocol (`Hub.socket_endpoint`)."""
        endpoint, params = found
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        conn = AsgiConnection(send)
        request = SocketRequest(
            path=self._path(scope),
            params=params,
            query=dict(parse_qsl(scope.get("query_string", b"").decode())),
            headers=headers,
        )
        link = await self.hub.sockets.accept(endpoint, conn, request, self.hub.settings)
        try:
            while not conn.done:
                message = await receive()
                if message["type"] != "websocket.receive":
                    break
                text = message.get("text")
                data = text if text is not None else message.get("bytes") or b""
                if len(data) > endpoint.max_message_bytes:
                    conn.close(1009, "message too large")
                    continue
                await link.receive(data)
        finally:
            await link.ended()
            conn.writer.cancel()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.startup()
        path = self._path(scope)
        status, body, ctype = 404, b'{"error":{"code":"not_found","message":"no route"}}', "json"
        extra: tuple[tuple[str, str], ...] = ()
        if path.startswith("/api/"):
            chunks: list[bytes] = []
            size, limit = 0, max(1024 * 1024, self.hub.settings.max_upload_bytes + 4096)
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size <= limit:
                    chunks.append(chunk)
                if not message.get("more_body"):
                    break
            if size > limit:
                too_large = b'{"error":{"code":"too_large","message":"request body too large"}}'
                await self._respond(send, 413, too_large, "application/json", ())
                return
            request = ApiRequest(
                method=scope["method"],
                path=path,
                headers=self._headers(scope),
                query=dict(parse_qsl(scope.get("query_string", b"").decode())),
                body=b"".join(chunks),
            )
            response = await self.hub.router.dispatch(request)
            status, body, ctype = response.status, response.body, response.content_type
            extra = response.headers
        elif path == "/metrics":
            status, body, ctype = 200, self.hub.metrics.render(), "text/plain; version=0.0.4"
        elif path == "/healthz":
            status, body = 200, b'{"status":"ok"}'
        elif path == "/readyz":
            status, body = (200, b'{"ready":true}') if self.hub.started else (503, b"{}")
        if ctype == "json":
            ctype = "application/json"
        await self._respond(send, status, body, ctype, extra)

    @staticmethod
    async def _respond(
        send: Send, status: int, body: bytes, ctype: str, extra: tuple[tuple[str, str], ...]
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype.encode()),
                    (b"content-length", b"%d" % len(body)),
                    *((k.lower().encode(), v.encode()) for k, v in extra),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
