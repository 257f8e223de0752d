"""A raw protocol client for tests: JSON frames over aiohttp, waiting for events, never sleeping."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import aiohttp

from hubbub.testing import RunningServer

DEFAULT_TIMEOUT = 10.0


class Closed(Exception):
    """The server closed the connection; `code` is its close code."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class WsClient:
    """One WebSocket connection speaking PROTOCOL.md envelopes as plain dicts."""

    _ids = itertools.count(1)

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.http = session
        self.ws = ws
        self.welcome: dict[str, Any] | None = None
        self.backlog: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        token: str | None = None,
        *,
        wait_welcome: bool = True,
        headers: dict[str, str] | None = None,
        autoping: bool = True,
        protocols: tuple[str, ...] = (),
    ) -> WsClient:
        session = aiohttp.ClientSession()
        target = url if token is None else f"{url}?token={token}"
        try:
            ws = await session.ws_connect(
                target,
                headers=headers,
                autoping=autoping,
                protocols=protocols,
                max_msg_size=0,
                heartbeat=None,
            )
        except BaseException:
            await session.close()
            raise
        client = cls(session, ws)
        if wait_welcome:
            client.welcome = await client.expect("welcome")
        return client

    async def send(self, type: str, payload: Any = None, id: str | None = None) -> str:
        rid = id or str(next(self._ids))
        frame: dict[str, Any] = {"type": type, "id": rid}
        if payload is not None:
            frame["payload"] = payload
        await self.ws.send_str(json.dumps(frame))
        return rid

    async def send_raw(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def next(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next frame, from the backlog first."""
        if self.backlog:
            return self.backlog.pop(0)
        return await self.recv(timeout)

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.ERROR,
        ):
            raise Closed(self.ws.close_code)
        if msg.type is aiohttp.WSMsgType.BINARY:
            return {"_binary": msg.data}
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def expect(
        self, type: str, timeout: float = DEFAULT_TIMEOUT, **match: Any
    ) -> dict[str, Any]:
        """The next frame of `type` (and matching fields); others wait in `backlog`."""

        def wanted(frame: dict[str, Any]) -> bool:
            return frame.get("type") == type and all(frame.get(k) == v for k, v in match.items())

        for i, frame in enumerate(self.backlog):
            if wanted(frame):
                return self.backlog.pop(i)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if wanted(frame):
                    return frame
                self.backlog.append(frame)

    async def request(
        self, type: str, payload: Any = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send a request and return the frame answering it (`re` equal to its id)."""
        rid = await self.send(type, payload)
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame.get("re") == rid:
                    return frame
                self.backlog.append(frame)

    async def subscribe(
        self, *channels: str, since: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"channels": list(channels)}
        if since:
            payload["since"] = since
        return await self.request("subscribe", payload)

    async def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        """Read until the server closes; returns the close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (
                    aiohttp.WSMsgType.CLOSE,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.ERROR,
                ):
                    return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()


async def wait_until(predicate: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Poll a condition of the server's state until it holds (fails after `timeout`)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - server state has no event to await
            await asyncio.sleep(0.005)


async def disconnect(srv: RunningServer, user: str, code: int = 1012) -> None:
    """Close every connection of `user` from the server side (HTTP API)."""
    headers = {"Authorization": f"Bearer {srv.api_key}"}
    url = f"{srv.http_url}/api/users/{user}/disconnect"
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json={"code": code}, headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        assert (await response.json())["closed"] >= 1
