"""`/ws` and an app's own endpoint on a real server, spoken to byte by byte from a bare
socket: the upgrade and its refusals, frames cut and packed any way, order behind
handlers that wait, and how connections end."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import msgspec
import pytest

from hubbub.core.hub import Request
from hubbub.core.sockets import RawSocket, SocketRequest
from hubbub.testing import RunningServer, running_server
from tests.rawws import RawWs
from tests.unit.test_websocket_frames import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    close_payload,
    frame,
)
from tests.wsclient import wait_until

TIMEOUT = 5.0


def http_request(port: int, path: str, fields: dict[str, str | None]) -> bytes:
    """A GET request with the upgrade headers changed by `fields` (`None` leaves one out)."""
    headers: dict[str, str | None] = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **fields,
    }
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(type: str, id: str, payload: Any = None) -> bytes:
    """One client request of the hub's JSON protocol, as a masked text frame."""
    body: dict[str, Any] = {"type": type, "id": id}
    if payload is not None:
        body["payload"] = payload
    return frame(json.dumps(body).encode())


class Client(RawWs):
    """A bare socket: it writes exactly the bytes a test gives it."""

    made: list[Client] = []  # closed after each test, whatever happened in it

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(reader, writer)
        Client.made.append(self)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[bytes, bytes]:
        """The next HTTP response: its head and its body."""
        async with asyncio.timeout(TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            return head, await self.reader.readexactly(length)

    async def frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(TIMEOUT):
            return await self.read_frame()

    async def answer(self) -> dict[str, Any]:
        """The next frame answering a request (`re`); pushed frames before it are skipped."""
        while True:
            opcode, payload = await self.frame()
            assert opcode != CLOSE, f"closed: {payload!r}"
            if opcode == TEXT:
                body: dict[str, Any] = json.loads(payload)
                if "re" in body:
                    return body

    async def text(self) -> dict[str, Any]:
        """The next text frame, whatever it is."""
        while True:
            opcode, payload = await self.frame()
            assert opcode != CLOSE, f"closed: {payload!r}"
            if opcode == TEXT:
                return json.loads(payload)  # type: ignore[no-any-return]

    async def close_code(self) -> int | None:
        """Read up to the server's close frame; its code."""
        while True:
            opcode, payload = await self.frame()
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big") if payload else None

    async def ended(self) -> bool:
        """True once the server ended the TCP stream (nothing more comes)."""
        async with asyncio.timeout(TIMEOUT):
            return await self.reader.read() == b""

    def shut(self) -> None:
        self.writer.close()


@pytest.fixture(autouse=True)
async def _close_every_client() -> AsyncIterator[None]:
    yield
    while Client.made:
        Client.made.pop().shut()


@asynccontextmanager
async def socket_to(srv: RunningServer) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    client = Client(reader, writer)
    try:
        yield client
    finally:
        client.shut()


async def upgraded(srv: RunningServer, path: str, first: bytes = b"") -> Client:
    """A connection after its `101`; `first` goes in the same write as the request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    client = Client(reader, writer)
    await client.send(http_request(srv.port, path, {}) + first)
    async with asyncio.timeout(TIMEOUT):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return client


async def hub_socket(srv: RunningServer, user: str, first: bytes = b"") -> Client:
    """A `/ws` connection of `user`, welcomed (with `first` sent behind the request)."""
    client = await upgraded(srv, f"/ws?token={srv.token(user)}", first)
    welcome = await client.text()
    assert welcome["type"] == "welcome", welcome
    return client


async def round_trip(srv: RunningServer) -> None:
    """An HTTP request on another connection, answered: the server reads its sockets in
    the order bytes reach them, so it has read what was sent before this by then."""
    async with socket_to(srv) as other:
        await other.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await other.response()
        assert head.startswith(b"HTTP/1.1 200 ")


async def settled(client: Client) -> Client:
    """The client once a request of its was answered: the connection's task has handled
    what came while it opened, so the next message is handled at once, as it is read."""
    await client.send(request("ping", "settle"))
    assert (await client.answer())["re"] == "settle"
    return client


def connection_of(srv: RunningServer, user: str) -> Any:
    """The server side of `user`'s one connection."""
    (session,) = srv.hub.users[user]
    return session.conn


# -- the upgrade --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"Upgrade": None, "Connection": None, "Sec-WebSocket-Key": None},
        {"Upgrade": None},
        {"Connection": "keep-alive"},
        {"Sec-WebSocket-Key": "not-a-key"},
    ],
    ids=["plain-get", "no-upgrade", "no-connection-upgrade", "bad-key"],
)
async def test_a_get_of_ws_that_is_no_websocket_upgrade_gets_400_and_the_server_serves_on(
    fields: dict[str, str | None],
) -> None:
    async with running_server() as srv, socket_to(srv) as client:
        await client.send(http_request(srv.port, "/ws", fields))
        head, body = await client.response()
        assert head.startswith(b"HTTP/1.1 400 "), head
        assert json.loads(body)["error"]["code"] == "bad_request"
        # The same connection goes on as plain HTTP, and WebSockets still open.
        await client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await client.response()
        assert head.startswith(b"HTTP/1.1 200 ")
        ws = await hub_socket(srv, "after")
        await ws.send(request("ping", "p"))
        assert (await ws.answer())["type"] == "pong"


@pytest.mark.parametrize("version", ["8", "14"])
async def test_another_websocket_version_gets_426_naming_version_13(version: str) -> None:
    async with running_server() as srv, socket_to(srv) as client:
        await client.send(
            http_request(srv.port, "/ws", {"Sec-WebSocket-Version": version})
            + request("ping", "not-a-frame-yet")  # stays HTTP: never read as a frame
        )
        head, _ = await client.response()
        assert head.startswith(b"HTTP/1.1 426 "), head
        assert b"\r\nsec-websocket-version: 13\r\n" in head.lower()
        assert not srv.hub.sessions


async def test_the_101_carries_the_accept_value_of_the_clients_key() -> None:
    async with running_server() as srv, socket_to(srv) as client:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        path = f"/ws?token={srv.token('rfc')}"
        await client.send(http_request(srv.port, path, {"Sec-WebSocket-Key": key}))
        async with asyncio.timeout(TIMEOUT):
            head = await client.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head
        assert (await client.text())["type"] == "welcome"


# -- reading ------------------------------------------------------------------------------


async def test_frames_in_the_same_write_as_the_upgrade_request_are_all_answered() -> None:
    async with running_server() as srv:
        first = request("ping", "p1") + frame(b"hello?", PING) + request("ping", "p2")
        client = await upgraded(srv, f"/ws?token={srv.token('eager')}", first)
        answers: list[str] = []
        pongs: list[bytes] = []
        while len(answers) < 2 or not pongs:
            opcode, payload = await client.frame()
            if opcode == PONG:
                pongs.append(payload)
            elif opcode == TEXT and "re" in (body := json.loads(payload)):
                answers.append(body["re"])
        assert (answers, pongs) == (["p1", "p2"], [b"hello?"])


async def test_a_frame_cut_between_the_upgrade_write_and_the_next_is_read_whole() -> None:
    """The rest of a frame can arrive while the connection is still being opened (its
    token checked, its user channel subscribed): it joins the start of that frame."""
    async with running_server() as srv:
        data = request("ping", "cut") + request("ping", "whole")
        client = await upgraded(srv, f"/ws?token={srv.token('cutter')}", data[:3])
        await client.send(data[3:])
        assert (await client.answer())["re"] == "cut"
        assert (await client.answer())["re"] == "whole"


async def test_a_ping_frame_gets_a_pong_with_the_same_payload() -> None:
    async with running_server() as srv:
        client = await hub_socket(srv, "pinger")
        for payload in (b"", b"are you there", os.urandom(125)):
            await client.send(frame(payload, PING))
            opcode, echoed = await client.frame()
            while opcode == TEXT:  # the welcome's companions
                opcode, echoed = await client.frame()
            assert (opcode, echoed) == (PONG, payload)


async def test_a_request_written_one_byte_at_a_time_is_answered() -> None:
    async with running_server() as srv:
        client = await hub_socket(srv, "slowpoke")
        conn = connection_of(srv, "slowpoke")
        data = request("ping", "slow")
        for i in range(len(data) - 1):
            await client.send(data[i : i + 1])
            # The server has read this byte on its own before the next one is sent.
            await wait_until(lambda i=i: len(conn._buf or b"") == i + 1, TIMEOUT)
        await client.send(data[-1:])
        assert (await client.answer())["re"] == "slow"


async def test_three_hundred_requests_in_one_write_are_answered_in_order() -> None:
    async with running_server() as srv:
        client = await hub_socket(srv, "burst")
        kinds = ["ping", "no.such.type", "ping"]
        await client.send(
            b"".join(request(kinds[i % 3], f"r{i}") for i in range(300)) + frame(b"x", PING)
        )
        answers = [await client.answer() for _ in range(300)]
        assert [a["re"] for a in answers] == [f"r{i}" for i in range(300)]
        assert [a["type"] for a in answers[:3]] == ["pong", "error", "pong"]


async def test_a_fragmented_request_with_a_ping_inside_is_answered() -> None:
    async with running_server() as srv:
        client = await hub_socket(srv, "fragments")
        body = json.dumps({"type": "ping", "id": "frag"}).encode()
        await client.send(
            frame(body[:5], TEXT, fin=False)
            + frame(b"between", PING)
            + frame(body[5:9], CONT, fin=False)
            + frame(body[9:], CONT)
        )
        seen: list[tuple[str, bytes]] = []
        while len(seen) < 2:
            opcode, payload = await client.frame()
            if opcode == PONG:
                seen.append(("pong", payload))
            elif opcode == TEXT and json.loads(payload).get("re") == "frag":
                seen.append(("answer", b""))
        assert seen == [("pong", b"between"), ("answer", b"")]


# -- order behind handlers that wait ------------------------------------------------------


class Hold(msgspec.Struct):
    name: str = ""


async def test_frames_behind_a_waiting_handler_wait_and_keep_their_order() -> None:
    async with running_server() as srv:
        started = asyncio.Event()
        gate = asyncio.Event()

        @srv.hub.on("test.hold", Hold)
        async def hold(req: Request, p: Hold) -> None:
            started.set()
            await gate.wait()
            req.reply("test.held", {})

        client = await settled(await hub_socket(srv, "holder"))
        other = await hub_socket(srv, "other")
        pings = [
            request("ping", f"p{i}") for i in range(100)
        ]  # past the 64 at which reading pauses
        await client.send(request("test.hold", "h") + b"".join(pings))
        async with asyncio.timeout(TIMEOUT):
            await started.wait()
        # Only its own connection waits.
        await other.send(request("ping", "free"))
        assert (await other.answer())["re"] == "free"
        gate.set()
        answers = [(await client.answer())["re"] for _ in range(101)]
        assert answers == ["h"] + [f"p{i}" for i in range(100)]
        await client.send(request("ping", "after"))
        assert (await client.answer())["re"] == "after"


async def test_handlers_that_sleep_answer_in_the_order_of_their_frames() -> None:
    async with running_server() as srv:

        class Nap(msgspec.Struct):
            ms: int

        @srv.hub.on("test.nap", Nap)
        async def nap(req: Request, p: Nap) -> None:
            await asyncio.sleep(p.ms / 1000)
            req.reply("test.napped", {"ms": p.ms})

        client = await settled(await hub_socket(srv, "napper"))
        await client.send(
            request("test.nap", "n1", {"ms": 30})
            + request("ping", "p1")
            + request("test.nap", "n2", {"ms": 1})
            + request("test.nap", "n3", {"ms": 0})
            + request("ping", "p2")
        )
        answers = [(await client.answer())["re"] for _ in range(5)]
        assert answers == ["n1", "p1", "n2", "n3", "p2"]


async def test_a_subscribe_that_replays_history_is_answered_before_the_frames_behind_it() -> None:
    async with running_server() as srv:
        publisher = await hub_socket(srv, "publisher")
        await publisher.send(request("subscribe", "s", {"channels": ["room:history"]}))
        epoch = (await publisher.answer())["payload"]["epoch"]
        for i in range(5):
            await publisher.send(
                request("publish", f"m{i}", {"channel": "room:history", "data": i})
            )
            assert (await publisher.answer())["type"] == "published"

        reader = await hub_socket(srv, "reader")
        since = {"room:history": {"seq": 0, "epoch": epoch}}
        await reader.send(
            request("subscribe", "s", {"channels": ["room:history"], "since": since})
            + request("ping", "after")
        )
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1].get("re") != "after":
            body = await reader.text()
            channel = body.get("channel") or body.get("payload", {}).get("channel")
            if body["type"] == "pong" or (
                body["type"] in ("subscribed", "message") and channel == "room:history"
            ):
                frames.append(body)
        assert [(f["type"], f.get("seq")) for f in frames] == [
            ("subscribed", None),
            *(("message", seq) for seq in range(1, 6)),
            ("pong", None),
        ]
        assert frames[0]["payload"]["recovered"] is True
        assert [f["payload"]["data"] for f in frames[1:6]] == [0, 1, 2, 3, 4]


class Timed(msgspec.Struct):
    ms: int


async def test_a_handler_can_use_asyncio_timeout_and_current_task_before_its_first_wait() -> None:
    async with running_server() as srv:

        @srv.hub.on("test.timed", Timed)
        async def timed(req: Request, p: Timed) -> None:
            task = asyncio.current_task()
            try:
                async with asyncio.timeout(p.ms / 1000):
                    await asyncio.Event().wait()  # only the timeout ends this
                outcome = "finished"
            except TimeoutError:
                outcome = "timed out"
            req.reply("test.timed", {"task": id(task) if task else None, "outcome": outcome})

        one = await settled(await hub_socket(srv, "timer-one"))
        two = await settled(await hub_socket(srv, "timer-two"))
        await one.send(
            request("test.timed", "t1", {"ms": 0})  # ran out before its first wait
            + request("test.timed", "t2", {"ms": 10})
            + request("ping", "after")
        )
        await two.send(request("test.timed", "t3", {"ms": 0}))
        first, second, after = await one.answer(), await one.answer(), await one.answer()
        third = await two.answer()
        assert [first["re"], second["re"], after["re"]] == ["t1", "t2", "after"]
        outcomes = [a["payload"]["outcome"] for a in (first, second, third)]
        assert outcomes == ["timed out"] * 3
        tasks = [a["payload"]["task"] for a in (first, second, third)]
        assert None not in tasks
        assert tasks[0] == tasks[1] != tasks[2]  # each connection's own task
        assert {s.user_id for s in srv.hub.sessions.values()} == {"timer-one", "timer-two"}


# -- ends of a connection -----------------------------------------------------------------


BROKEN = {
    "unmasked": (frame(b"{}", masked=False), 1002),
    "reserved-bit": (frame(b"{}", rsv=0x40), 1002),
    "reserved-opcode": (frame(b"{}", 0x3), 1002),
    "continuation-first": (frame(b"{}", CONT), 1002),
    "long-ping": (frame(b"x" * 126, PING), 1002),
    "close-of-one-byte": (frame(b"\x03", CLOSE), 1002),
    "close-code-1005": (frame(close_payload(1005), CLOSE), 1002),
    "text-not-utf8": (frame(b'{"type":"ping\xff"}'), 1007),
    "over-the-frame-limit": (frame(b"", BINARY, length=64 * 1024 + 1)[:14], 1009),
}


@pytest.mark.parametrize(("data", "code"), list(BROKEN.values()), ids=list(BROKEN))
async def test_a_protocol_error_closes_only_that_connection(data: bytes, code: int) -> None:
    async with running_server() as srv:
        bad = await hub_socket(srv, "bad")
        good = await hub_socket(srv, "good")
        await bad.send(data + request("ping", "dropped"))
        assert await bad.close_code() == code
        await good.send(request("ping", "still"))
        assert (await good.answer())["re"] == "still"
        await bad.send(frame(close_payload(code), CLOSE))
        bad.shut()
        await wait_until(lambda: "bad" not in srv.hub.users, TIMEOUT)
        assert [s.user_id for s in srv.hub.sessions.values()] == ["good"]


@pytest.mark.parametrize(
    ("payload", "echoed"),
    [(close_payload(1000), 1000), (b"", 1000), (close_payload(4000, b"done here"), 4000)],
    ids=["1000", "empty", "4000-reason"],
)
async def test_a_client_close_is_answered_with_its_code_and_the_session_forgotten(
    payload: bytes, echoed: int
) -> None:
    async with running_server() as srv:
        client = await hub_socket(srv, "leaver")
        await hub_socket(srv, "stays")
        (session,) = srv.hub.users["leaver"]
        await client.send(frame(payload, CLOSE) + request("ping", "too-late"))
        assert await client.close_code() == echoed
        assert await client.ended()  # the server ended the stream, nothing after the close
        await wait_until(lambda: session.id not in srv.hub.sessions, TIMEOUT)
        assert "leaver" not in srv.hub.users
        assert [s.user_id for s in srv.hub.sessions.values()] == ["stays"]


# -- an app's own endpoint ----------------------------------------------------------------


class Echo:
    """An app peer that sends every message back, and notes when its socket ends."""

    def __init__(self, socket: RawSocket) -> None:
        self.socket = socket
        self.ended = asyncio.Event()

    async def receive(self, data: bytes | str) -> None:
        self.socket.send(data.encode() if isinstance(data, str) else data)

    async def closed(self) -> None:
        self.ended.set()


Accept = Callable[[RawSocket, SocketRequest], Awaitable[Echo]]


def serving_echo(accept: Accept, limit: int) -> AbstractAsyncContextManager[RunningServer]:
    """A real node with an echo endpoint on `/echo/{name}` (endpoints are routed when the
    server starts)."""
    return running_server(
        setup=lambda hub: hub.socket_endpoint("/echo/{name}", accept, max_message_bytes=limit)
    )


async def test_an_app_endpoint_gets_messages_cut_and_fragmented_and_its_limit_holds() -> None:
    peers: list[Echo] = []

    async def accept(socket: RawSocket, request: SocketRequest) -> Echo:
        peers.append(Echo(socket))
        return peers[-1]

    async with serving_echo(accept, limit=1000) as srv:
        client = await upgraded(srv, "/echo/room")
        data = (
            frame(b"\x00\x01", BINARY)
            + frame("ünï".encode(), TEXT)
            + frame(b"ab", BINARY, fin=False)
            + frame(b"cd", CONT)
            + frame(b"y" * 1000, BINARY)
        )
        await client.send(data[:5])
        await client.send(data[5:])
        echoed = [await client.frame() for _ in range(4)]
        assert echoed == [
            (BINARY, b"\x00\x01"),
            (BINARY, "ünï".encode()),
            (BINARY, b"abcd"),
            (BINARY, b"y" * 1000),
        ]
        await client.send(frame(b"z" * 1001, BINARY))
        assert await client.close_code() == 1009
        await client.send(frame(close_payload(1009), CLOSE))
        client.shut()
        async with asyncio.timeout(TIMEOUT):
            await peers[0].ended.wait()


async def test_an_app_endpoint_reads_a_frame_cut_across_its_slow_accept() -> None:
    """Bytes sent behind the upgrade request come before what arrives while the app is
    still accepting the connection."""
    gate = asyncio.Event()

    async def accept(socket: RawSocket, request: SocketRequest) -> Echo:
        await gate.wait()
        return Echo(socket)

    async with serving_echo(accept, limit=1000) as srv:
        data = frame(b"first", BINARY) + frame(b"second", BINARY)
        client = await upgraded(srv, "/echo/slow", data[:4])
        await client.send(data[4:])
        await round_trip(srv)  # the server has read the rest while the app waits
        gate.set()
        assert await client.frame() == (BINARY, b"first")
        assert await client.frame() == (BINARY, b"second")


async def test_a_reset_connection_is_forgotten() -> None:
    async with running_server() as srv:
        client = await settled(await hub_socket(srv, "vanisher"))
        client.writer.transport.abort()
        await wait_until(lambda: "vanisher" not in srv.hub.users and not srv.hub.sessions)


async def test_open_connections_are_no_longer_aiohttps_to_keep() -> None:
    async with running_server() as srv:
        clients = [await settled(await hub_socket(srv, f"idle{i}")) for i in range(5)]
        # aiohttp's server tracks none of the detached sockets: their request, protocol
        # and WebSocket objects are let go (what keeps an idle connection at ~8 KB).
        assert srv.server._runner is not None
        assert srv.server._runner.server is not None
        assert len(srv.server._runner.server.connections) == 0
        assert len(srv.hub.sessions) == 5
        for client in clients:
            client.shut()
