"""The standalone server: aiohttp for HTTP and the upgrade request; after the upgrade the
socket is read and written by `transport.websocket` (see docs/decisions/transport.md)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from hubbub.core.hub import Hub
from hubbub.core.routes import ApiRequest
from hubbub.core.session import Session
from hubbub.core.sockets import SocketLink, SocketRequest
from hubbub.protocol.codec import CODECS, JSON
from hubbub.protocol.codes import CloseCode
from hubbub.transport import static
from hubbub.transport.websocket import (
    CLOSE_TIMEOUT,
    UpgradeError,
    WebSocket,
    WriteBatcher,
    detach,
    upgrade_answer,
    upgrade_refused,
)

log = logging.getLogger("hubbub")
HUB_KEY = web.AppKey("hub", Hub)


BATCHER_KEY = web.AppKey("batcher", WriteBatcher)


class HubSocket(WebSocket):
    """A `/ws` connection: its messages go to the hub as frames of its session."""

    __slots__ = ("_hub", "session")

    def __init__(self, transport: asyncio.Transport, batcher: WriteBatcher, hub: Hub) -> None:
        super().__init__(transport, batcher, hub.settings.max_frame_bytes)
        self._hub = hub
        self.session: Session | None = None

    def attach(self, session: Session) -> None:
        self.session = session

    def _handle(self, data: bytes | str) -> Coroutine[Any, Any, None]:
        assert self.session is not None
        return self._hub.receive(self.session, data)

    def _touch(self) -> None:
        if self.session is not None:
            self._hub.touch(self.session)

    async def _ended(self) -> None:
        if self.session is not None:
            await self._hub.disconnect(self.session)


class AppSocket(WebSocket):
    """A connection to an app's own endpoint (`Hub.socket_endpoint`): bytes in, bytes out."""

    __slots__ = ("link",)

    def __init__(self, transport: asyncio.Transport, batcher: WriteBatcher, limit: int) -> None:
        super().__init__(transport, batcher, limit)
        self.link: SocketLink | None = None

    def _handle(self, data: bytes | str) -> Coroutine[Any, Any, None]:
        assert self.link is not None
        return self.link.receive(data)

    async def _ended(self) -> None:
        if self.link is not None:
            await self.link.ended()


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
    try:
        answer, chosen = upgrade_answer(request.headers, tuple(CODECS))
    except UpgradeError as exc:
        return upgrade_refused(exc)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    conn = HubSocket(transport, request.app[BATCHER_KEY], hub)
    response = detach(request, conn, answer)
    try:
        await hub.open(conn, CODECS.get(chosen, JSON), _token_of(request), conn.attach)
    finally:
        conn.start(hub.spawn(conn.serve()))
    return response


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
    try:
        answer, _ = upgrade_answer(request.headers)
    except UpgradeError as exc:
        return upgrade_refused(exc)
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("client went away")
    info = SocketRequest(
        path=request.path,
        params=params,
        query=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()},
    )
    conn = AppSocket(transport, request.app[BATCHER_KEY], endpoint.max_message_bytes)
    response = detach(request, conn, answer)
    try:
        conn.link = await hub.sockets.accept(endpoint, conn, info, hub.settings)
    except Exception:
        log.exception("the handler of %s failed", endpoint.pattern)
        conn.close(CloseCode.INTERNAL_ERROR, "internal error")
    finally:
        conn.start(hub.spawn(conn.serve()))
    return response


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
