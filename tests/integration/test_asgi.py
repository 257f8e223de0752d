"""Hubbub mounted inside a Starlette application, served by uvicorn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from hubbub import Settings
from hubbub.node import build_hub
from hubbub.transport.asgi import HubbubASGI
from tests.wsclient import WsClient


@asynccontextmanager
async def serve_starlette(tmp: str) -> AsyncIterator[tuple[int, HubbubASGI]]:
    hub = build_hub(Settings(data_dir=tmp))
    hubbub_app = HubbubASGI(hub)

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("my app")

    app = Starlette(routes=[Route("/", home), Mount("/hub", app=hubbub_app)])
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield port, hubbub_app
    finally:
        await hub.stop()
        server.should_exit = True
        await task


async def test_mounted_hub_serves_websocket_and_http_api_beside_the_app(tmp_path: object) -> None:
    async with serve_starlette(str(tmp_path)) as (port, hubbub_app):
        hub = hubbub_app.hub
        base = f"http://127.0.0.1:{port}"
        client = await WsClient.connect(f"ws://127.0.0.1:{port}/hub/ws", hub.verifier.issue("ann"))
        try:
            assert client.welcome and client.welcome["payload"]["userId"] == "ann"
            assert (await client.subscribe("news"))["payload"]["recovered"] is False
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/") as r:
                    assert await r.text() == "my app"
                headers = {"Authorization": f"Bearer {hub.settings.api_key}"}
                body = {"channel": "news", "data": "hello"}
                async with http.post(base + "/hub/api/publish", json=body, headers=headers) as r:
                    assert r.status == 200 and (await r.json())["seq"] == 1
                async with http.get(base + "/hub/healthz") as r:
                    assert r.status == 200
                # Mounted in someone's app, the hub never hands out development tokens.
                async with http.post(base + "/hub/api/dev/token", json={"user": "x"}) as r:
                    assert r.status == 404
            event = await client.expect("message", channel="news")
            assert event["seq"] == 1 and event["payload"]["data"] == "hello"
            bad = await client.request("subscribe", {"channels": "news"})
            assert bad["payload"]["code"] == "bad_request"
        finally:
            await client.close()


async def test_mounted_hub_refuses_a_bad_token_with_4001(tmp_path: object) -> None:
    async with serve_starlette(str(tmp_path)) as (port, _):
        client = await WsClient.connect(f"ws://127.0.0.1:{port}/hub/ws", "nope", wait_welcome=False)
        try:
            assert await client.wait_closed() == 4001
        finally:
            await client.close()
