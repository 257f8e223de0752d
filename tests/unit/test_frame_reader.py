"""The WebSocket frame reader and writer of `hubbub.transport.websocket`, fed bytes directly."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import Coroutine
from typing import Any

import pytest

from hubbub.transport.websocket import (
    UpgradeError,
    WebSocket,
    WriteBatcher,
    _unmask_int,
    accept_value,
    unmask,
    upgrade_answer,
)


def client_frame(
    payload: bytes, opcode: int = 0x1, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A frame as a client sends it (masked unless told otherwise)."""
    head = bytes(((0x80 if fin else 0) | rsv | opcode,))
    n = len(payload)
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
    return head + mask + _unmask_int(payload, mask)


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what the server wrote into (opcode, payload) frames (server frames are unmasked)."""
    frames = []
    pos = 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert not b1 & 0x80, "server frames must not be masked"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            (n,), pos = struct.unpack(">H", data[pos : pos + 2]), pos + 2
        elif n == 127:
            (n,), pos = struct.unpack(">Q", data[pos : pos + 8]), pos + 8
        frames.append((b0 & 0x0F, data[pos : pos + n]))
        pos += n
    return frames


class FakeTransport:
    """Records what is written; enough of `asyncio.Transport` for the reader."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class Recorder(WebSocket):
    """Keeps every message and ping/pong; a message starting with `wait` waits for `gate`."""

    __slots__ = ("messages", "touches", "gate", "tasks_seen", "ended")

    def __init__(self, transport: FakeTransport, limit: int = 1024) -> None:
        super().__init__(transport, WriteBatcher(asyncio.get_running_loop()), limit)  # type: ignore[arg-type]
        self.messages: list[bytes | str] = []
        self.touches = 0
        self.gate = asyncio.Event()
        self.tasks_seen: list[asyncio.Task[Any] | None] = []
        self.ended = 0

    def _handle(self, data: bytes | str) -> Coroutine[Any, Any, None]:
        return self._record(data)

    async def _record(self, data: bytes | str) -> None:
        self.tasks_seen.append(asyncio.current_task())
        if isinstance(data, str) and data.startswith("wait"):
            async with asyncio.timeout(5):
                await self.gate.wait()
        self.messages.append(data)

    def _touch(self) -> None:
        self.touches += 1

    async def _ended(self) -> None:
        self.ended += 1


async def started(limit: int = 1024) -> tuple[Recorder, FakeTransport]:
    transport = FakeTransport()
    ws = Recorder(transport, limit)
    ws.start(asyncio.ensure_future(ws.serve()))
    await asyncio.sleep(0)  # the connection's task drains what came early, then waits
    return ws, transport


def close_code(transport: FakeTransport) -> int | None:
    for opcode, payload in server_frames(bytes(transport.out)):
        if opcode == 0x8:
            return int.from_bytes(payload[:2], "big") if payload else None
    return None


async def fed(ws: WebSocket, data: bytes, *, settle: bool = True) -> None:
    """Hand bytes to the reader from a plain callback, as the event loop does; with
    `settle`, then let the connection's task run once."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run() -> None:
        ws.data_received(data)
        done.set_result(None)

    loop.call_soon(run)
    await done
    if settle:
        await asyncio.sleep(0)


# -- masking and the upgrade answer -------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 125, 126, 65535, 65536, 70001])
def test_unmask_inverts_itself_and_agrees_with_the_plain_version(size: int) -> None:
    payload, mask = os.urandom(size), os.urandom(4)
    masked = unmask(payload, mask)
    assert masked == _unmask_int(payload, mask)
    assert unmask(masked, mask) == payload
    if size:
        assert masked[0] == payload[0] ^ mask[0]
        assert masked[-1] == payload[-1] ^ mask[(size - 1) % 4]


def test_accept_value_of_the_rfc_6455_sample_key() -> None:
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_the_upgrade_answer_is_a_101_with_the_accept_and_the_clients_first_known_protocol() -> None:
    answer, chosen = upgrade_answer(
        {**UPGRADE, "Sec-WebSocket-Protocol": "other, hubbub.v1.msgpack, hubbub.v1.json"},
        ("hubbub.v1.json", "hubbub.v1.msgpack"),
    )
    assert chosen == "hubbub.v1.msgpack"
    lines = answer.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 Switching Protocols"
    assert "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines
    assert "Sec-WebSocket-Protocol: hubbub.v1.msgpack" in lines
    assert answer.endswith(b"\r\n\r\n")


def test_no_protocol_header_when_none_offered_is_known() -> None:
    answer, chosen = upgrade_answer({**UPGRADE, "Sec-WebSocket-Protocol": "mqtt"}, ("a",))
    assert chosen == ""
    assert b"Sec-WebSocket-Protocol" not in answer


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Upgrade": ""}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Sec-WebSocket-Key": "not base64 at all!!!!!!"}, 400),
        ({"Sec-WebSocket-Version": "8"}, 426),
    ],
)
def test_a_bad_upgrade_request_is_refused_with_its_status(
    change: dict[str, str], status: int
) -> None:
    with pytest.raises(UpgradeError) as caught:
        upgrade_answer({**UPGRADE, **change})
    assert caught.value.status == status
    if status == 426:
        assert caught.value.headers == {"Sec-WebSocket-Version": "13"}


# -- reading ------------------------------------------------------------------------------


async def test_a_frame_split_at_every_byte_is_read_once_whole() -> None:
    ws, _ = await started()
    frame = client_frame(b'{"type":"ping"}')
    for i in range(len(frame)):
        await fed(ws, frame[i : i + 1])
    assert ws.messages == ['{"type":"ping"}']


async def test_several_frames_in_one_chunk_are_handled_in_order() -> None:
    ws, _ = await started()
    await fed(ws, b"".join(client_frame(f"m{i}".encode()) for i in range(20)))
    assert ws.messages == [f"m{i}" for i in range(20)]


@pytest.mark.parametrize("size", [125, 126, 1000, 65535, 65536, 100_000])
async def test_7_16_and_64_bit_lengths(size: int) -> None:
    ws, _ = await started(limit=200_000)
    payload = os.urandom(size)
    await fed(ws, client_frame(payload, 0x2) + client_frame(b"after"))
    assert ws.messages == [payload, "after"]
    assert isinstance(ws.messages[0], bytes)


async def test_a_fragmented_text_message_with_a_ping_between_its_fragments() -> None:
    ws, transport = await started()
    await fed(
        ws,
        client_frame("hé".encode()[:2], 0x1, fin=False)
        + client_frame(b"ping!", 0x9)
        + client_frame("hé".encode()[2:] + b"llo", 0x0),
    )
    assert ws.messages == ["héllo"]
    assert ws.touches == 1
    ws.flush()
    assert server_frames(bytes(transport.out)) == [(0xA, b"ping!")]


async def test_a_pong_touches_and_writes_nothing() -> None:
    ws, transport = await started()
    await fed(ws, client_frame(b"", 0xA))
    assert ws.touches == 1
    assert transport.out == b""


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (client_frame(b"x", 0x0), 1002),  # continuation with nothing to continue
        (client_frame(b"a", 0x1, fin=False) + client_frame(b"b", 0x1), 1002),  # new inside one
        (client_frame(b"x", masked=False), 1002),
        (client_frame(b"x", rsv=0x40), 1002),  # compression was never agreed
        (client_frame(b"x" * 126, 0x9), 1002),  # control frame over 125 bytes
        (client_frame(b"x", 0x9, fin=False), 1002),  # fragmented control frame
        (client_frame(b"x", 0x3), 1002),  # reserved data opcode
        (client_frame(b"x", 0xB), 1002),  # reserved control opcode
        (client_frame(b"\xff\xfe", 0x1), 1007),  # text that is not UTF-8
        (client_frame(b"\x03", 0x8), 1002),  # close payload of one byte
        (client_frame((1005).to_bytes(2, "big"), 0x8), 1002),  # a code never sent
        (client_frame((999).to_bytes(2, "big"), 0x8), 1002),
        (client_frame((1000).to_bytes(2, "big") + b"\xff", 0x8), 1007),  # reason not UTF-8
    ],
)
async def test_protocol_errors_close_with_their_code_and_nothing_after_is_read(
    frames: bytes, code: int
) -> None:
    ws, transport = await started()
    await fed(ws, frames + client_frame(b"after"))
    assert close_code(transport) == code
    assert "after" not in ws.messages
    assert ws.close_sent


async def test_after_a_protocol_error_the_clients_close_frame_ends_the_stream() -> None:
    ws, transport = await started()
    await fed(ws, client_frame(b"x", 0x3) + client_frame(b"dropped"))
    assert close_code(transport) == 1002
    assert not transport.closing  # waiting for the client's answer (or the timeout)
    await fed(ws, client_frame((1002).to_bytes(2, "big"), 0x8))
    assert transport.closing
    assert ws.messages == []
    assert [op for op, _ in server_frames(bytes(transport.out))] == [0x8]  # one close only


async def test_a_frame_over_the_limit_closes_with_1009_before_its_payload_arrives() -> None:
    ws, transport = await started(limit=1000)
    frame = client_frame(os.urandom(1001), 0x2)
    await fed(ws, frame[:14])  # just the header and mask
    assert close_code(transport) == 1009
    assert ws._buf is None  # nothing of it is kept
    await fed(ws, frame[14:])
    assert ws.messages == []


async def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    ws, transport = await started(limit=1000)
    await fed(ws, client_frame(b"x" * 1000, 0x2))
    assert ws.messages == [b"x" * 1000]
    assert close_code(transport) is None


async def test_fragments_that_add_up_past_the_limit_close_with_1009() -> None:
    ws, transport = await started(limit=1000)
    await fed(
        ws, client_frame(b"x" * 600, 0x2, fin=False) + client_frame(b"x" * 600, 0x0, fin=False)
    )
    assert close_code(transport) == 1009
    assert ws.messages == []


async def test_a_close_frame_is_answered_with_its_code_and_the_stream_ends() -> None:
    ws, transport = await started()
    await fed(ws, client_frame((4000).to_bytes(2, "big") + b"bye", 0x8) + client_frame(b"late"))
    assert close_code(transport) == 4000
    assert transport.closing
    assert ws.messages == []


async def test_an_empty_close_frame_is_answered_with_1000() -> None:
    ws, transport = await started()
    await fed(ws, client_frame(b"", 0x8))
    assert close_code(transport) == 1000


# -- handlers: eager, in the connection's task, in order ------------------------------------


async def test_a_handler_runs_at_once_with_the_connections_task_as_current_task() -> None:
    ws, _ = await started()
    await fed(ws, client_frame(b"now"), settle=False)
    # Handled inside the read callback itself, not on a later turn of the loop.
    assert ws.messages == ["now"]
    assert ws.tasks_seen == [ws._task]


async def test_messages_behind_a_waiting_handler_queue_and_keep_their_order() -> None:
    ws, transport = await started()
    await fed(ws, client_frame(b"wait-1") + client_frame(b"2") + client_frame(b"3"))
    assert ws.messages == []
    await fed(ws, client_frame(b"4"))
    assert ws.messages == []
    ws.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert ws.messages == ["wait-1", "2", "3", "4"]
    assert set(ws.tasks_seen) == {ws._task}
    # Once the queue is drained, the next message is handled at once again.
    ws.gate.clear()
    await fed(ws, client_frame(b"5"))
    assert ws.messages[-1] == "5"


async def test_reading_pauses_when_many_messages_wait_and_resumes_when_they_are_done() -> None:
    ws, transport = await started()
    await fed(ws, client_frame(b"wait") + b"".join(client_frame(b"m") for _ in range(80)))
    assert not transport.reading
    ws.gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(ws.messages) == 81
    assert transport.reading


async def test_a_lost_connection_ends_once_after_the_waiting_handler_is_done() -> None:
    ws, _ = await started()
    await fed(ws, client_frame(b"wait"))
    ws.connection_lost(None)
    await asyncio.sleep(0)
    assert ws.ended == 0  # the handler still runs to its end
    ws.gate.set()
    assert ws._task is not None
    await asyncio.wait_for(ws._task, 5)
    assert ws.messages == ["wait"]
    assert ws.ended == 1


async def test_an_idle_lost_connection_ends_once() -> None:
    ws, _ = await started()
    ws.connection_lost(None)
    assert ws._task is not None
    await asyncio.wait_for(ws._task, 5)
    assert ws.ended == 1


async def test_messages_before_start_wait_for_it() -> None:
    transport = FakeTransport()
    ws = Recorder(transport)
    ws.data_received(client_frame(b"early"))
    assert ws.messages == []
    ws.start(asyncio.ensure_future(ws.serve()), leftover=client_frame(b"leftover"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ws.messages == ["early", "leftover"]


# -- writing ------------------------------------------------------------------------------


async def test_the_first_frame_of_a_turn_is_written_at_once_the_rest_together_at_its_end() -> None:
    ws, transport = await started()
    ws.write(b"\x81\x01a")
    assert transport.out == b"\x81\x01a"
    ws.write(b"\x81\x01b")
    ws.write(b"\x81\x01c")
    assert transport.out == b"\x81\x01a"
    assert ws.buffered() == 6
    await asyncio.sleep(0)
    assert transport.out == b"\x81\x01a\x81\x01b\x81\x01c"
    ws.write(b"\x81\x01d")  # a new turn: at once again
    assert transport.out.endswith(b"\x81\x01d")


async def test_close_sends_what_waits_then_the_close_frame_and_nothing_after() -> None:
    ws, transport = await started()
    ws.write(b"\x81\x01a")
    ws.write(b"\x81\x01b")
    ws.close(4008, "send queue full")
    ws.write(b"\x81\x01c")
    await asyncio.sleep(0)
    frames = server_frames(bytes(transport.out))
    assert frames[:2] == [(0x1, b"a"), (0x1, b"b")]
    assert frames[2] == (0x8, (4008).to_bytes(2, "big") + b"send queue full")
    assert len(frames) == 3
