"""RFC 6455 on the transport, fed bytes directly: masking, the upgrade answer, every check
of the frame reader, and how it hands messages to handlers (at once, in the connection's
own task, in order behind one that waits)."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from hubbub.transport.websocket import (
    UpgradeError,
    WebSocket,
    WriteBatcher,
    accept_value,
    unmask,
    upgrade_answer,
)

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def xor_mask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 section 5.3 byte by byte: the reference the fast versions must agree with."""
    return bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(
    payload: bytes,
    opcode: int = TEXT,
    *,
    fin: bool = True,
    masked: bool = True,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """One frame as a client sends it: masked, with the shortest length encoding
    (`length` claims another payload length in the header)."""
    n = len(payload) if length is None else length
    head = bytes(((0x80 if fin else 0) | rsv | opcode,))
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes((bit | n,))
    elif n < 65536:
        head += bytes((bit | 126,)) + struct.pack(">H", n)
    else:
        head += bytes((bit | 127,)) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + xor_mask(payload, mask)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """What the server wrote, as (opcode, payload); server frames are final and unmasked."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80, "server frames are never fragmented"
        assert not b1 & 0x80, "server frames are never masked"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            (n,), pos = struct.unpack(">H", data[pos : pos + 2]), pos + 2
        elif n == 127:
            (n,), pos = struct.unpack(">Q", data[pos : pos + 8]), pos + 8
        assert pos + n <= len(data), "a server frame was cut"
        frames.append((b0 & 0x0F, data[pos : pos + n]))
        pos += n
    return frames


class FakeTransport:
    """The part of `asyncio.Transport` the connection uses; keeps what was written and,
    like a real one, tells its protocol the connection is lost soon after a close."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.reading = True
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        self.closing = True

    def abort(self) -> None:
        self.close()

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        assert self.reading, "paused twice"
        self.reading = False

    def resume_reading(self) -> None:
        assert not self.reading, "resumed while reading"
        self.reading = True

    def frames(self) -> list[tuple[int, bytes]]:
        return server_frames(bytes(self.out))

    def close_codes(self) -> list[int | None]:
        return [
            int.from_bytes(p[:2], "big") if p else None for op, p in self.frames() if op == CLOSE
        ]


Handler = Callable[["Conn", bytes | str], Awaitable[None]]


async def record(conn: Conn, data: bytes | str) -> None:
    conn.messages.append(data)


def slow_first(gate: asyncio.Event) -> Handler:
    """Keeps messages like `record`, the one reading "slow" only once `gate` is set."""

    async def handle(conn: Conn, data: bytes | str) -> None:
        if data == "slow":
            await gate.wait()
        conn.messages.append(data)

    return handle


class Conn(WebSocket):
    """A connection whose messages go to `handler` (by default: kept in `messages`)."""

    def __init__(self, transport: FakeTransport, limit: int, handler: Handler) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(transport, WriteBatcher(loop), limit)  # type: ignore[arg-type]
        self.transport = transport
        transport.protocol = self
        self.handler = handler
        self.messages: list[bytes | str] = []
        self.touches = 0
        self.ended = 0

    def _handle(self, data: bytes | str) -> Coroutine[Any, Any, None]:
        return self._run(data)

    async def _run(self, data: bytes | str) -> None:
        await self.handler(self, data)

    def _touch(self) -> None:
        self.touches += 1

    async def _ended(self) -> None:
        self.ended += 1

    @property
    def task(self) -> asyncio.Future[None]:
        assert self._task is not None
        return self._task


async def next_turn() -> None:
    """Let the loop run the callbacks already due (no time passes)."""
    await asyncio.sleep(0)


async def opened(limit: int = 1024, handler: Handler = record) -> Conn:
    """A connection whose own task is running and waiting for messages."""
    conn = Conn(FakeTransport(), limit, handler)
    conn.start(asyncio.ensure_future(conn.serve()))
    await next_turn()
    return conn


async def feed(conn: WebSocket, *chunks: bytes) -> None:
    """Deliver each chunk in a callback of its own, as the event loop delivers reads."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    for chunk in chunks:
        loop.call_soon(conn.data_received, chunk)
    loop.call_soon(done.set_result, None)
    await done


async def gone(conn: Conn) -> None:
    """Wait for the connection's task to end."""
    async with asyncio.timeout(5):
        await asyncio.shield(conn.task)


# -- masking ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 65537, 100_003])
def test_unmask_matches_the_rfc_and_undoes_itself(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    masked = unmask(payload, mask)
    assert masked == xor_mask(payload, mask)
    assert unmask(masked, mask) == payload


@given(st.binary(max_size=600), st.binary(min_size=4, max_size=4))
def test_unmask_matches_the_rfc_for_any_payload_and_mask(payload: bytes, mask: bytes) -> None:
    assert unmask(payload, mask) == xor_mask(payload, mask)


# -- the upgrade answer -------------------------------------------------------------------

SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3
SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def upgrade(**fields: str | None) -> CIMultiDict[str]:
    """Upgrade request headers as aiohttp hands them over; `None` leaves a header out."""
    headers = {
        "Host": "example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": SAMPLE_KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name, value in fields.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return CIMultiDict(headers)


def test_the_accept_value_of_the_rfc_sample_key() -> None:
    assert accept_value(SAMPLE_KEY) == SAMPLE_ACCEPT


def test_a_valid_upgrade_is_answered_with_101_and_the_accept_value() -> None:
    answer, chosen = upgrade_answer(upgrade())
    assert chosen == ""
    assert answer == (
        b"HTTP/1.1 101 Switching Protocols\r\n"
        b"Upgrade: websocket\r\n"
        b"Connection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + SAMPLE_ACCEPT.encode() + b"\r\n\r\n"
    )


def test_header_values_are_read_as_browsers_and_proxies_write_them() -> None:
    headers = CIMultiDict(
        {
            "upgrade": "WebSocket",
            "connection": "keep-alive, Upgrade",
            "sec-websocket-key": f" {SAMPLE_KEY} ",
            "sec-websocket-version": "13",
        }
    )
    answer, _ = upgrade_answer(headers)
    assert answer.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {SAMPLE_ACCEPT}\r\n".encode() in answer


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        ("hubbub.v1.msgpack, hubbub.v1.json", "hubbub.v1.msgpack"),
        ("hubbub.v1.json,hubbub.v1.msgpack", "hubbub.v1.json"),
        ("mqtt,  hubbub.v1.json , hubbub.v1.msgpack", "hubbub.v1.json"),
        ("mqtt, wamp", ""),
        ("", ""),
    ],
)
def test_the_subprotocol_is_the_first_the_client_offers_that_the_server_speaks(
    offered: str, chosen: str
) -> None:
    answer, got = upgrade_answer(
        upgrade(Sec_WebSocket_Protocol=offered), ("hubbub.v1.json", "hubbub.v1.msgpack")
    )
    assert got == chosen
    lines = answer.decode().split("\r\n")
    protocol_lines = [line for line in lines if line.lower().startswith("sec-websocket-protocol")]
    assert protocol_lines == ([f"Sec-WebSocket-Protocol: {chosen}"] if chosen else [])


def test_no_subprotocol_is_chosen_when_the_server_speaks_none() -> None:
    answer, chosen = upgrade_answer(upgrade(Sec_WebSocket_Protocol="hubbub.v1.json"))
    assert chosen == ""
    assert b"Sec-WebSocket-Protocol" not in answer


@pytest.mark.parametrize(
    "fields",
    [
        {"Upgrade": None},
        {"Upgrade": "h2c"},
        {"Connection": None},
        {"Connection": "keep-alive"},
        {"Sec-WebSocket-Key": None},
        {"Sec-WebSocket-Key": "not base64 at all!!!!!!!"},
        {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAA"},  # 15 bytes
        {"Sec-WebSocket-Key": "AAAAAAAAAAAAAAAAAAAAAAAA"},  # 17 bytes
    ],
    ids=["no-upgrade", "upgrade-h2c", "no-connection", "connection-keep-alive", "no-key",
         "key-not-base64", "key-15-bytes", "key-17-bytes"],
)  # fmt: skip
def test_a_request_that_is_no_websocket_upgrade_is_refused_with_400(
    fields: dict[str, str | None],
) -> None:
    with pytest.raises(UpgradeError) as refused:
        upgrade_answer(upgrade(**fields))
    assert refused.value.status == 400


@pytest.mark.parametrize("version", ["8", "12", "14", ""])
def test_another_websocket_version_is_refused_with_426_naming_version_13(version: str) -> None:
    with pytest.raises(UpgradeError) as refused:
        upgrade_answer(upgrade(Sec_WebSocket_Version=version))
    assert refused.value.status == 426
    assert refused.value.headers == {"Sec-WebSocket-Version": "13"}


# -- reading frames -----------------------------------------------------------------------


async def test_a_stream_cut_in_two_at_any_byte_is_read_whole() -> None:
    conn = await opened()
    blob = os.urandom(300)  # a 16-bit length
    stream = frame(b"short") + frame(blob, BINARY) + frame(b"hi", PING) + frame(b"end")
    rounds = len(stream) + 1
    for cut in range(rounds):
        before = len(conn.messages)
        await feed(conn, stream[:cut], stream[cut:])
        assert conn.messages[before:] == ["short", blob, "end"], f"cut at {cut}"
    assert conn.touches == rounds
    assert conn.transport.frames() == [(PONG, b"hi")] * rounds


async def test_a_frame_arriving_one_byte_at_a_time_is_read_once_whole() -> None:
    conn = await opened(limit=70_000)
    for payload in (b"", b"x" * 125, b"y" * 126, b"z" * 65536):
        data = frame(payload, BINARY)
        await feed(conn, *(data[i : i + 1] for i in range(min(len(data), 20))), data[20:])
        assert conn.messages.pop() == payload
    assert conn.messages == []


async def test_several_frames_in_one_read_are_handled_in_order() -> None:
    conn = await opened()
    await feed(
        conn,
        frame(b"one")
        + frame(b"\x00\x01", BINARY)
        + frame(b"are you there", PING)
        + frame(b"", PONG)
        + frame(b"")
        + frame("três".encode()),
    )
    assert conn.messages == ["one", b"\x00\x01", "", "três"]
    assert conn.touches == 2
    assert conn.transport.frames() == [(PONG, b"are you there")]


@pytest.mark.parametrize(
    ("size", "length_byte"),
    [(125, 125), (126, 126), (65535, 126), (65536, 127), (100_000, 127)],
)
async def test_7_16_and_64_bit_payload_lengths(size: int, length_byte: int) -> None:
    conn = await opened(limit=200_000)
    payload = os.urandom(size)
    data = frame(payload, BINARY)
    assert data[1] & 0x7F == length_byte  # the encoding under test
    await feed(conn, data + frame(b"after"))
    assert conn.messages == [payload, "after"]


async def test_a_fragmented_text_with_a_ping_between_its_fragments() -> None:
    conn = await opened()
    text = "héllo wörld".encode()
    await feed(
        conn,
        frame(text[:2], TEXT, fin=False)  # cuts "é" in two
        + frame(b"mid", PING)
        + frame(text[2:7], CONT, fin=False)
        + frame(b"", PONG)
        + frame(text[7:], CONT)
        + frame(b"next"),
    )
    assert conn.messages == ["héllo wörld", "next"]
    assert conn.touches == 2
    assert conn.transport.frames() == [(PONG, b"mid")]


async def test_a_fragmented_binary_message_ending_with_an_empty_fragment() -> None:
    conn = await opened()
    await feed(
        conn,
        frame(b"\x01", BINARY, fin=False) + frame(b"\x02\x03", CONT, fin=False),
        frame(b"", CONT),
    )
    assert conn.messages == [b"\x01\x02\x03"]


async def test_a_ping_of_125_bytes_is_answered_with_the_same_125_bytes() -> None:
    conn = await opened()
    payload = os.urandom(125)
    await feed(conn, frame(payload, PING))
    assert conn.transport.frames() == [(PONG, payload)]


# Codes a close frame may not carry: reserved, only for reports (1005, 1006, 1015), unassigned.
NEVER_SENT_CLOSE_CODES = (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535)

PROTOCOL_ERRORS = {
    "continuation-without-start": frame(b"x", CONT),
    "last-continuation-without-start": frame(b"x", CONT, fin=False),
    "text-inside-fragmented-text": frame(b"a", TEXT, fin=False) + frame(b"b", TEXT),
    "binary-inside-fragmented-text": frame(b"a", TEXT, fin=False) + frame(b"b", BINARY),
    "text-inside-fragmented-binary": frame(b"a", BINARY, fin=False) + frame(b"b", TEXT, fin=False),
    "unmasked": frame(b"x", masked=False),
    "unmasked-ping": frame(b"x", PING, masked=False),
    "rsv1": frame(b"x", rsv=0x40),
    "rsv2": frame(b"x", rsv=0x20),
    "rsv3": frame(b"x", rsv=0x10),
    "rsv-on-ping": frame(b"x", PING, rsv=0x40),
    "ping-over-125-bytes": frame(b"x" * 126, PING),
    "pong-over-125-bytes": frame(b"x" * 126, PONG),
    "close-over-125-bytes": frame(close_payload(1000, b"x" * 124), CLOSE),
    "fragmented-ping": frame(b"x", PING, fin=False),
    "fragmented-pong": frame(b"x", PONG, fin=False),
    "fragmented-close": frame(close_payload(1000), CLOSE, fin=False),
    **{f"opcode-{op:#x}": frame(b"x", op) for op in (0x3, 0x4, 0x5, 0x6, 0x7)},
    **{f"opcode-{op:#x}": frame(b"x", op) for op in (0xB, 0xC, 0xD, 0xE, 0xF)},
    "close-of-one-byte": frame(b"\x03", CLOSE),
    **{f"close-code-{c}": frame(close_payload(c), CLOSE) for c in NEVER_SENT_CLOSE_CODES},
}

INVALID_DATA = {
    "lone-continuation-byte": frame(b"\x80"),
    "invalid-start-byte": frame(b"ok \xff"),
    "cut-sequence": frame("é".encode()[:1]),
    "overlong-slash": frame(b"\xc0\xaf"),
    "surrogate": frame(b"\xed\xa0\x80"),
    "past-u10ffff": frame(b"\xf4\x90\x80\x80"),
    "fragments-ending-mid-character": frame(b"a", TEXT, fin=False) + frame(b"\xc3", CONT),
    "close-reason": frame(close_payload(1000, b"\xff"), CLOSE),
}


@pytest.mark.parametrize(
    ("data", "code"),
    [pytest.param(d, 1002, id=k) for k, d in PROTOCOL_ERRORS.items()]
    + [pytest.param(d, 1007, id=k) for k, d in INVALID_DATA.items()],
)
async def test_a_broken_frame_closes_with_its_code_and_nothing_after_it_is_handled(
    data: bytes, code: int
) -> None:
    conn = await opened()
    await feed(conn, data + frame(b"after") + frame(b"ping", PING), frame(b"later"))
    assert conn.transport.close_codes() == [code]
    assert conn.transport.frames()[-1][0] == CLOSE  # no pong after it
    assert conn.messages == []
    assert conn.close_sent


async def test_after_a_protocol_error_the_clients_close_frame_ends_the_stream() -> None:
    conn = await opened()
    await feed(conn, frame(b"x", 0x3))
    assert conn.transport.close_codes() == [1002]
    assert not conn.transport.closing  # the client's answer comes first
    await feed(conn, frame(b"dropped") + frame(close_payload(1002), CLOSE))
    assert conn.transport.closing
    assert conn.transport.close_codes() == [1002]  # answered once
    assert conn.messages == []
    await gone(conn)
    assert conn.ended == 1


async def test_a_frame_over_the_limit_is_refused_with_1009_from_its_header_alone() -> None:
    conn = await opened(limit=1000)
    data = frame(os.urandom(1001), BINARY)
    await feed(conn, data[:8])  # the 2-byte head, a 16-bit length and the mask
    assert conn.transport.close_codes() == [1009]
    await feed(conn, data[8:], os.urandom(100_000))
    assert conn._buf is None  # none of its payload was kept
    assert conn.messages == []


async def test_a_header_claiming_an_enormous_payload_is_refused_at_once() -> None:
    conn = await opened(limit=1000)
    await feed(conn, frame(b"", BINARY, length=2**62)[:14])
    assert conn.transport.close_codes() == [1009]
    assert conn._buf is None


async def test_a_frame_of_exactly_the_limit_is_handled() -> None:
    conn = await opened(limit=1000)
    await feed(conn, frame(b"x" * 1000, BINARY))
    assert conn.messages == [b"x" * 1000]
    assert conn.transport.out == b""


async def test_fragments_adding_up_past_the_limit_are_refused_with_1009() -> None:
    conn = await opened(limit=1000)
    fragments = [
        frame(b"a" * 400, TEXT, fin=False),
        frame(b"b" * 400, CONT, fin=False),
        frame(b"c" * 201, CONT, fin=True),
    ]
    await feed(conn, *fragments, frame(b"after"))
    assert conn.transport.close_codes() == [1009]
    assert conn.messages == []


async def test_fragments_adding_up_to_exactly_the_limit_are_one_message() -> None:
    conn = await opened(limit=1000)
    await feed(
        conn,
        frame(b"a" * 400, TEXT, fin=False),
        frame(b"b" * 400, CONT, fin=False),
        frame(b"c" * 200, CONT, fin=True),
    )
    assert conn.messages == ["a" * 400 + "b" * 400 + "c" * 200]


@pytest.mark.parametrize(
    ("payload", "echoed"),
    [
        (b"", 1000),
        (close_payload(1000), 1000),
        (close_payload(1001, b"tab closed"), 1001),
        (close_payload(1011, "déjà".encode()), 1011),
        (close_payload(1012), 1012),
        (close_payload(1014), 1014),
        (close_payload(3000), 3000),
        (close_payload(4999, b"app"), 4999),
    ],
    ids=["empty", "1000", "1001-reason", "1011-utf8-reason", "1012", "1014", "3000", "4999"],
)
async def test_a_close_frame_is_answered_with_its_code_and_the_stream_ends(
    payload: bytes, echoed: int
) -> None:
    conn = await opened()
    await feed(conn, frame(b"before") + frame(payload, CLOSE) + frame(b"after"))
    assert conn.messages == ["before"]
    assert conn.transport.frames() == [(CLOSE, echoed.to_bytes(2, "big"))]
    assert conn.transport.closing
    await gone(conn)
    assert conn.ended == 1


async def test_nothing_is_read_after_the_clients_close_frame() -> None:
    conn = await opened()
    await feed(conn, frame(close_payload(1000), CLOSE))
    await feed(conn, frame(b"late"), frame(b"are you there", PING), frame(b"x", 0x3))
    assert conn.messages == []
    assert conn.touches == 0
    assert conn.transport.close_codes() == [1000]
    assert len(conn.transport.frames()) == 1


@pytest.mark.parametrize("code", [1001, 1008, 1009, 1011, 1012, 4001, 4003, 4008, 4029])
async def test_the_clients_echo_of_the_servers_close_code_ends_the_stream(code: int) -> None:
    """RFC 6455 5.5.1: the answering endpoint typically echoes the code it received;
    these are the codes the hub closes with."""
    conn = await opened()
    conn.close(code, "bye")
    assert not conn.transport.closing
    await feed(conn, frame(close_payload(code), CLOSE))
    assert conn.transport.closing
    assert conn.transport.close_codes() == [code]


async def test_a_message_after_the_server_began_closing_is_not_handled() -> None:
    conn = await opened()
    conn.close(4008, "send queue full")
    await feed(conn, frame(b"late") + frame(b"ping", PING))
    assert conn.messages == []
    assert conn.transport.frames() == [(CLOSE, close_payload(4008, b"send queue full"))]


# -- any stream of frames -----------------------------------------------------------------


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[bytes | str], list[bytes], bytes, list[int]]:
    """Messages (text or binary, some fragmented, with pings between fragments) as one
    byte stream, and where the network cuts it."""
    messages: list[bytes | str] = []
    pings: list[bytes] = []
    stream = b""
    for _ in range(draw(st.integers(1, 8))):
        if draw(st.booleans()):
            text = draw(st.text(max_size=200))
            messages.append(text)
            data, opcode = text.encode(), TEXT
        else:
            data, opcode = draw(st.binary(max_size=300)), BINARY
            messages.append(data)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for i, part in enumerate(parts):
            stream += frame(part, opcode if i == 0 else CONT, fin=i == len(parts) - 1)
            if draw(st.integers(0, 4)) == 0:
                ping = draw(st.binary(max_size=125))
                pings.append(ping)
                stream += frame(ping, PING)
    reads = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    return messages, pings, stream, reads


@settings(deadline=None, max_examples=150)
@given(conversations())
def test_any_stream_cut_anywhere_gives_back_its_messages_and_pings(
    case: tuple[list[bytes | str], list[bytes], bytes, list[int]],
) -> None:
    messages, pings, stream, reads = case

    async def run() -> Conn:
        conn = await opened(limit=1000)
        bounds = [0, *reads, len(stream)]
        await feed(conn, *(stream[a:b] for a, b in zip(bounds, bounds[1:], strict=False)))
        return conn

    conn = asyncio.run(run())
    assert conn.messages == messages
    assert conn.transport.frames() == [(PONG, ping) for ping in pings]
    assert conn.transport.close_codes() == []


# -- handing messages to handlers ---------------------------------------------------------


async def test_a_handler_runs_at_once_inside_the_read_with_the_connections_task_current() -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def note_task(conn: Conn, data: bytes | str) -> None:
        seen.append(asyncio.current_task())
        conn.messages.append(data)

    conn = await opened(handler=note_task)
    handled_in_read: list[list[bytes | str]] = []

    def read() -> None:
        conn.data_received(frame(b"one") + frame(b"two"))
        handled_in_read.append(list(conn.messages))

    asyncio.get_running_loop().call_soon(read)
    await next_turn()
    assert handled_in_read == [["one", "two"]]
    assert seen == [conn.task, conn.task]
    assert asyncio.current_task() is not conn.task


async def test_a_handler_can_use_asyncio_timeout_before_its_first_wait() -> None:
    outcomes: list[str] = []
    done = asyncio.Event()

    async def timed(conn: Conn, data: bytes | str) -> None:
        assert isinstance(data, str)
        try:
            async with asyncio.timeout(float(data)):
                await asyncio.Event().wait()  # only the timeout ends this
        except TimeoutError:
            outcomes.append(f"timed out after {data}")
        done.set()

    conn = await opened(handler=timed)
    for delay in ("0.01", "0", "-1"):
        done.clear()
        await feed(conn, frame(delay.encode()))
        async with asyncio.timeout(5):
            await done.wait()
    assert outcomes == ["timed out after 0.01", "timed out after 0", "timed out after -1"]
    assert not conn.task.done()
    assert conn.ended == 0


async def test_a_cancel_just_as_a_handler_begins_to_wait_reaches_that_handler() -> None:
    """The hub stopping right after a handler began to wait: the handler still unwinds."""
    unwound = asyncio.Event()

    async def waits(conn: Conn, data: bytes | str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    conn = await opened(handler=waits)

    def read_then_stop() -> None:
        conn.data_received(frame(b"wait"))
        conn.task.cancel()

    asyncio.get_running_loop().call_soon(read_then_stop)
    async with asyncio.timeout(5):
        await unwound.wait()
    with pytest.raises(asyncio.CancelledError):
        await gone(conn)
    assert conn.ended == 1


async def test_messages_behind_a_waiting_handler_wait_for_it_then_keep_their_order() -> None:
    gate = asyncio.Event()
    tasks: set[asyncio.Task[Any] | None] = set()

    async def noting_tasks(conn: Conn, data: bytes | str) -> None:
        tasks.add(asyncio.current_task())
        if data == "slow":
            await gate.wait()
        conn.messages.append(data)

    conn = await opened(handler=noting_tasks)
    await feed(conn, frame(b"slow") + frame(b"1") + frame(b"2"), frame(b"3"))
    assert conn.messages == []
    gate.set()
    await feed(conn, frame(b"4"))
    async with asyncio.timeout(5):
        while len(conn.messages) < 5:
            await next_turn()
    assert conn.messages == ["slow", "1", "2", "3", "4"]
    assert tasks == {conn.task}
    # Drained: the next message is handled inside its read again.
    await feed(conn, frame(b"5"))
    assert conn.messages[-1] == "5"


async def test_reading_pauses_at_64_waiting_messages_and_resumes_once_they_are_done() -> None:
    gate = asyncio.Event()

    conn = await opened(handler=slow_first(gate))
    await feed(conn, frame(b"slow"), *(frame(str(i).encode()) for i in range(63)))
    assert conn.transport.reading
    await feed(conn, frame(b"63"))
    assert not conn.transport.reading
    gate.set()
    async with asyncio.timeout(5):
        while not conn.transport.reading:
            await next_turn()
    assert conn.messages == ["slow", *(str(i) for i in range(64))]


async def test_a_failing_handler_does_not_stop_the_messages_after_it() -> None:
    async def fussy(conn: Conn, data: bytes | str) -> None:
        if data == "boom":
            raise ValueError("boom")
        if data == "later-boom":
            await next_turn()
            raise ValueError("later boom")
        conn.messages.append(data)

    conn = await opened(handler=fussy)
    await feed(conn, frame(b"boom") + frame(b"a") + frame(b"later-boom") + frame(b"b"))
    async with asyncio.timeout(5):
        while conn.messages != ["a", "b"]:
            await next_turn()
    await feed(conn, frame(b"c"))
    assert conn.messages == ["a", "b", "c"]
    assert conn.transport.out == b""


async def test_a_lost_connection_finishes_its_waiting_handler_then_ends_once() -> None:
    gate = asyncio.Event()

    conn = await opened(handler=slow_first(gate))
    await feed(conn, frame(b"slow") + frame(b"queued"))
    conn.connection_lost(None)
    await next_turn()
    assert conn.ended == 0  # the waiting handler is not abandoned
    gate.set()
    await gone(conn)
    assert conn.messages == ["slow"]  # what queued behind it is dropped
    assert conn.ended == 1


async def test_messages_read_before_the_connections_task_starts_wait_for_it() -> None:
    conn = Conn(FakeTransport(), 1024, record)
    data = frame(b"early") + frame(b"second")
    conn.data_received(data[:10])
    conn.data_received(data[10:])
    assert conn.messages == []
    conn.start(asyncio.ensure_future(conn.serve()))
    async with asyncio.timeout(5):
        while len(conn.messages) < 2:
            await next_turn()
    await feed(conn, frame(b"third"))
    assert conn.messages == ["early", "second", "third"]


async def test_an_idle_lost_connection_ends_once() -> None:
    conn = await opened()
    conn.connection_lost(None)
    conn.connection_lost(None)  # the transport's own, after a close frame ended it
    await gone(conn)
    assert conn.ended == 1


# -- writing ------------------------------------------------------------------------------


async def test_the_first_frame_of_a_turn_is_written_at_once_the_rest_together_at_its_end() -> None:
    conn = await opened()
    out = conn.transport.out
    conn.write(b"\x81\x01a")
    assert out == b"\x81\x01a"
    conn.write(b"\x81\x01b")
    conn.write(b"\x81\x01c")
    assert out == b"\x81\x01a"
    assert conn.buffered() == 6
    await next_turn()
    assert out == b"\x81\x01a\x81\x01b\x81\x01c"
    conn.write(b"\x81\x01d")  # a new turn: at once again
    assert out.endswith(b"\x81\x01d")


async def test_close_sends_what_waits_then_the_close_frame_and_nothing_after() -> None:
    conn = await opened()
    conn.write(b"\x81\x01a")
    conn.write(b"\x81\x01b")
    conn.close(4008, "send queue full")
    conn.write(b"\x81\x01c")
    await next_turn()
    assert conn.transport.frames() == [
        (TEXT, b"a"),
        (TEXT, b"b"),
        (CLOSE, (4008).to_bytes(2, "big") + b"send queue full"),
    ]
