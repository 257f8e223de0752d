"""`/ws` on a real server, byte by byte: the upgrade, framing, ordering and ends of a
connection now that Hubbub reads and writes the socket itself after the upgrade."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import msgspec

from hubbub.core.hub import Request
from hubbub.testing import RunningServer, running_server
from tests.rawws import RawWs
from tests.unit.test_frame_reader import client_frame
from tests.wsclient import WsClient, wait_until


def upgrade_request(port: int, path: str = "/ws", **headers: str) -> bytes:
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **{k.replace("_", "-"): v for k, v in headers.items()},
    }
    head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode()


class Raw(RawWs):
    """A bare client socket: what is written is exactly what the test says."""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)

    async def frame(self) -> tuple[int, bytes]:
        return await asyncio.wait_for(self.read_frame(), 5)

    async def json(self) -> dict[str, Any]:
        """The next answer to a request (frames that answer none are skipped)."""
        while True:
            opcode, payload = await self.frame()
            assert opcode != 0x8, f"closed: {payload!r}"
            if opcode == 0x1:
                body: dict[str, Any] = json.loads(payload)
                if "re" in body:
                    return body

    async def control(self) -> tuple[int, bytes]:
        """The next control frame (text frames are skipped)."""
        while True:
            opcode, payload = await self.frame()
            if opcode >= 0x8:
                return opcode, payload

    def shut(self) -> None:
        self.writer.close()

    async def close_code(self) -> int | None:
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") if payload else None


@asynccontextmanager
async def raw(srv: RunningServer) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()


def request(type: str, id: str, payload: Any = None) -> bytes:
    body: dict[str, Any] = {"type": type, "id": id}
    if payload is not None:
        body["payload"] = payload
    return client_frame(json.dumps(body).encode())


async def open_ws(srv: RunningServer, user: str, first: bytes = b"") -> Raw:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    client = Raw(reader, writer)
    await client.send(upgrade_request(srv.port, f"/ws?token={srv.token(user)}") + first)
    head = await client.head()
    assert head.startswith(b"HTTP/1.1 101"), head
    return client


async def test_a_plain_get_of_ws_gets_400_with_a_reason_and_the_server_keeps_serving() -> None:
    async with running_server() as srv, aiohttp.ClientSession() as http:
        async with http.get(f"{srv.http_url}/ws") as resp:
            assert resp.status == 400
            body = await resp.json()
            assert body["error"]["code"] == "bad_request"
            assert "upgrade" in body["error"]["message"].lower()
        client = await WsClient.connect(srv.url, srv.token("after"))
        assert (await client.request("ping"))["type"] == "pong"
        await client.close()


async def test_an_unsupported_websocket_version_gets_426_naming_version_13() -> None:
    async with running_server() as srv, raw(srv) as client:
        await client.send(upgrade_request(srv.port, Sec_WebSocket_Version="8"))
        head = await client.head()
        assert head.startswith(b"HTTP/1.1 426")
        assert b"sec-websocket-version: 13" in head.lower()


async def test_frames_sent_in_the_same_write_as_the_upgrade_request_are_not_lost() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "eager", first=request("ping", "p1") + request("ping", "p2"))
        assert [(await client.json())["re"], (await client.json())["re"]] == ["p1", "p2"]
        client.shut()


async def test_a_ping_frame_gets_a_pong_with_its_payload() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "pinger")
        await client.send(client_frame(b"are you there", 0x9))
        assert await client.control() == (0xA, b"are you there")
        client.shut()


async def test_a_request_written_one_byte_at_a_time_is_answered() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "slowpoke")
        frame = request("ping", "slow")
        for i in range(len(frame)):
            await client.send(frame[i : i + 1])
            await asyncio.sleep(0)
        assert (await client.json())["re"] == "slow"
        client.shut()


async def test_two_hundred_requests_in_one_write_are_answered_in_order() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "burst")
        await client.send(b"".join(request("ping", f"r{i}") for i in range(200)))
        answers = [(await client.json())["re"] for _ in range(200)]
        assert answers == [f"r{i}" for i in range(200)]
        client.shut()


class Nap(msgspec.Struct):
    ms: int = 50


async def test_a_handler_that_waits_keeps_the_connections_later_frames_behind_it() -> None:
    async with running_server() as srv:

        @srv.hub.on("test.nap", Nap)
        async def nap(req: Request, p: Nap) -> None:
            await asyncio.sleep(p.ms / 1000)
            req.reply("test.napped", {})

        client = await open_ws(srv, "napper")
        await client.send(
            request("test.nap", "n1", {"ms": 100})
            + request("ping", "p1")
            + request("test.nap", "n2", {"ms": 10})
            + request("ping", "p2")
        )
        answers = [(await client.json())["re"] for _ in range(4)]
        assert answers == ["n1", "p1", "n2", "p2"]
        client.shut()


async def test_a_handler_can_use_asyncio_timeout_and_current_task_before_it_first_waits() -> None:
    async with running_server() as srv:

        @srv.hub.on("test.timed", Nap)
        async def timed(req: Request, p: Nap) -> None:
            task = asyncio.current_task()
            try:
                async with asyncio.timeout(p.ms / 1000):
                    await asyncio.sleep(1)
                timed_out = False
            except TimeoutError:
                timed_out = True
            req.reply("test.timed", {"task": task is not None, "timedOut": timed_out})

        client = await open_ws(srv, "timer")
        await client.send(request("test.timed", "t1", {"ms": 20}) + request("ping", "after"))
        answer = await client.json()
        assert answer["payload"] == {"task": True, "timedOut": True}
        assert (await client.json())["re"] == "after"
        client.shut()


async def test_a_protocol_error_closes_only_that_connection() -> None:
    async with running_server() as srv:
        bad = await open_ws(srv, "bad")
        good = await open_ws(srv, "good")
        await bad.send(client_frame(b"x", 0x3))  # a reserved opcode
        assert await bad.close_code() == 1002
        await bad.send(client_frame((1002).to_bytes(2, "big"), 0x8))  # as a client answers
        await good.send(request("ping", "still"))
        assert (await good.json())["re"] == "still"
        await wait_until(lambda: "bad" not in srv.hub.users)
        assert "good" in srv.hub.users
        good.shut()
        bad.shut()


async def test_a_client_close_is_answered_and_the_session_forgotten() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "leaver")
        await wait_until(lambda: "leaver" in srv.hub.users)
        await client.send(client_frame((1000).to_bytes(2, "big"), 0x8))
        assert await client.close_code() == 1000
        assert await asyncio.wait_for(client.reader.read(), 5) == b""  # the server ended the stream
        await wait_until(lambda: "leaver" not in srv.hub.users and not srv.hub.sessions)
        client.shut()


async def test_a_reset_connection_is_forgotten() -> None:
    async with running_server() as srv:
        client = await open_ws(srv, "vanisher")
        await client.send(request("ping", "p"))
        await client.json()
        client.shut()
        await wait_until(lambda: "vanisher" not in srv.hub.users and not srv.hub.sessions)


async def test_idle_connections_keep_no_aiohttp_request_handler() -> None:
    async with running_server() as srv:
        clients = [await open_ws(srv, f"idle{i}") for i in range(5)]
        for client in clients:
            await client.send(request("ping", "p"))
            await client.json()
        # aiohttp's server no longer tracks the detached sockets (their memory is let go).
        assert srv.server._runner is not None
        server = srv.server._runner.server
        assert server is not None
        assert len(server.connections) == 0
        for client in clients:
            client.shut()
