"""The standalone server: aiohttp for HTTP and the WebSocket handshake, ready frames
written straight to the socket for everything the hub sends (see docs/decisions/)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import Any

from aiohttp import WSMsgType, web

from hubbub.core.hub import Hub
from hubbub.core.routes import ApiRequest
from hubbub.core.sockets import SocketRequest
from hubbub.protocol.codec import CODECS, JSON, close_frame, ws_control_frame
from hubbub.protocol.codes import CloseCode
from hubbub.transport import static

log = logging.getLogger("hubbub")
HUB_KEY = web.AppKey("hub", Hub)
CLOSE_TIMEOUT = 2.0


class WriteBatcher:
    """Gathers the frames written to each connection during one turn of the event loop
    and hands them to the socket in one write per connection at the end of it.

    A fan-out writes one frame to each of thousands of connections; one system call
    per frame is most of its cost. Batching keeps the order of each connection's
    frames and adds no wait beyond the current turn of the loop.
    """

    __slots__ = ("_dirty", "_scheduled", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dirty: list[SocketConnection] = []
        self._scheduled = False
        self._loop = loop

    def mark(self, conn: SocketConnection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for conn in dirty:
            conn.flush()


BATCHER_KEY = web.AppKey("batcher", WriteBatcher)


class SocketConnection:
    """`Connection` over an aiohttp WebSocket: ready frames go to the asyncio transport,
    batched per turn of the event loop by the server's `WriteBatcher`."""

    __slots__ = ("_ws", "_transport", "_batcher", "_pending", "_pending_bytes", "close_sent")
    can_ping = True

    def __init__(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport, batcher: WriteBatcher
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._batcher = batcher
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.close_sent = False

    def write(self, frame: bytes) -> None:
        if self.close_sent:
            return
        if not self._pending:
            self._batcher.mark(self)
        self._pending.append(frame)
        self._pending_bytes += len(frame)

    def flush(self) -> None:
        """Hand what waits to the socket (one write)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.write(b"".join(pending))

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    async def wait_writable(self, low_water: int) -> None:
        transport = self._transport
        delay = 0.002
        while self.buffered() > low_water:
            if transport.is_closing() or self.close_sent:
                raise ConnectionError("connection closed")
            await asyncio.sleep(delay)
            delay = min(0.05, delay * 2)

    def ping(self) -> None:
        self.write(ws_control_frame(0x9))

    def close(self, code: int, reason: str) -> None:
        if self.close_sent:
            return
        self.flush()
        if not self._transport.is_closing():
            self._transport.write(close_frame(code, reason))
        self.close_sent = True
        asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self._transport.abort)

    def finish(self, code: int) -> None:
        """The client sent its close frame: answer it if we have not, then end the TCP stream."""
        self.flush()
        if not self.close_sent and not self._transport.is_closing():
            self._transport.write(close_frame(code))
            self.close_sent = True
        self._transport.close()


def _token_of(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token") or None


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB_KEY]
    if not hub.origin_allowed(request.headers.get("Origin")):
        return web.json_response(
            {"error": {"code": "forbidden", "message": "origin not allowed"}}, status=403
        )
    ws = web.WebSocketResponse(
        protocols=tuple(CODECS),
        autoping=False,
        autoclose=False,
        compress=False,
        max_msg_size=hub.settings.max_frame_bytes + 1,  # aiohttp refuses sizes >= this
        timeout=CLOSE_TIMEOUT,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    codec = CODECS.get(ws.ws_protocol or "", JSON)
    conn = SocketConnection(ws, transport, request.app[BATCHER_KEY])
    session = await hub.open(conn, codec, _token_of(request))
    try:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                await hub.receive(session, msg.data)
            elif kind is WSMsgType.PING:
                conn.write(ws_control_frame(0xA, msg.data or b""))
                hub.touch(session)
            elif kind is WSMsgType.PONG:
                hub.touch(session)
            elif kind is WSMsgType.CLOSE:
                conn.finish(msg.data if isinstance(msg.data, int) else CloseCode.NORMAL)
                break
            else:
                break
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        await hub.disconnect(session)
    return ws


async def raw_socket_handler(request: web.Request) -> web.StreamResponse:
    """An app's own WebSocket protocol (`Hub.socket_endpoint`): bytes in, bytes out."""
    hub: Hub = request.app[HUB_KEY]
    found = hub.sockets.match(request.path)
    if found is None:
        raise web.HTTPNotFound()
    if not hub.origin_allowed(request.headers.get("Origin")):
        return web.json_response(
            {"error": {"code": "forbidden", "message": "origin not allowed"}}, status=403
        )
    endpoint, params = found
    ws = web.WebSocketResponse(
        autoping=False,
        autoclose=False,
        compress=False,
        max_msg_size=endpoint.max_message_bytes + 1,
        timeout=CLOSE_TIMEOUT,
    )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return ws
    conn = SocketConnection(ws, transport, request.app[BATCHER_KEY])
    info = SocketRequest(
        path=request.path,
        params=params,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
    )
    link = await hub.sockets.accept(endpoint, conn, info, hub.settings)
    try:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
                await link.receive(msg.data)
            elif kind is WSMsgType.PING:
                conn.write(ws_control_frame(0xA, msg.data or b""))
            elif kind is WSMsgType.CLOSE:
                conn.finish(msg.data if isinstance(msg.data, int) else CloseCode.NORMAL)
                break
            elif kind is not WSMsgType.PONG:
                break
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        await link.ended()
    return ws


async def api_handler(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB_KEY]
    api_request = ApiRequest(
        method=request.method,
        path=request.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query),
        body=await request.read(),
        remote=request.remote or "",
    )
    response = await hub.router.dispatch(api_request)
    return web.Response(
        body=response.body,
        status=response.status,
        content_type=response.content_type,
        headers=dict(response.headers),
    )


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB_KEY]
    return web.Response(
        body=hub.metrics.render(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    hub: Hub = request.app[HUB_KEY]
    ready = hub.started
    return web.json_response(
        {"ready": ready, "node": hub.settings.node_name}, status=200 if ready else 503
    )


def build_app(hub: Hub) -> web.Application:
    """The aiohttp application serving `/ws`, `/api/...`, metrics, health and the pages.

    Call it inside the running event loop (its write batcher belongs to that loop).
    """
    app = web.Application(client_max_size=max(1024 * 1024, hub.settings.max_upload_bytes + 4096))
    app[HUB_KEY] = hub
    app[BATCHER_KEY] = WriteBatcher(asyncio.get_running_loop())
    app.router.add_get("/ws", websocket_handler)
    for endpoint in hub.sockets.endpoints:
        app.router.add_get(endpoint.pattern, raw_socket_handler)
    app.router.add_route("*", "/api/{tail:.*}", api_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    static.add_routes(app)
    return app


class HubServer:
    """A hub listening on a host and port; `start` then `stop`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str | None = None, port: int | None = None) -> int:
        """Listen; returns the port (pass 0 for a free one)."""
        await self.hub.start()
        self._runner = web.AppRunner(
            build_app(self.hub),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=CLOSE_TIMEOUT,
        )
        await self._runner.setup()
        host = host if host is not None else self.hub.settings.host
        port = port if port is not None else self.hub.settings.port
        site = web.TCPSite(self._runner, host, port, backlog=4096, reuse_address=True)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port
        return self.port

    async def stop(self, code: int = CloseCode.GOING_AWAY) -> None:
        """Close every client with `code`, then stop listening."""
        await self.hub.stop(code)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_forever(hub: Hub) -> None:
    """Run until SIGINT or SIGTERM, then close clients with 1001 so they reconnect elsewhere."""
    server = HubServer(hub)
    port = await server.start()
    # What was allocated to start up lives as long as the process: keep the collector
    # off it, and collect the young generation less often (connections make many objects).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    log.info("hubbub listening on http://%s:%d (ws path /ws)", hub.settings.host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await server.stop(CloseCode.GOING_AWAY)
