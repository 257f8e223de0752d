"""The bounded send queue of one connection, against a `Connection` whose buffer the test drives."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hubbub.core.sendqueue import SendQueue
from hubbub.engines.broker import Publication
from hubbub.protocol.codec import JSON

HIGH = 64
LIMIT = 200


class FakeConnection:
    """A `Connection` (core/connection.py) with a send buffer the test fills and drains.

    `backlog` is what `buffered()` reports. With `grows`, each write adds its length
    to the backlog, like a socket whose peer reads nothing.
    """

    def __init__(self, backlog: int = 0, *, grows: bool = False) -> None:
        self.backlog = backlog
        self.grows = grows
        self.frames: list[bytes] = []
        self.closed: tuple[int, str] | None = None
        self._wrote = asyncio.Event()
        self._drained = asyncio.Event()

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)
        if self.grows:
            self.backlog += len(frame)
        self._wrote.set()

    def buffered(self) -> int:
        return self.backlog

    async def wait_writable(self, low_water: int) -> None:
        while self.backlog > low_water:
            self._drained.clear()
            await self._drained.wait()

    def ping(self) -> None:
        pass

    def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    def drain(self, to: int = 0) -> None:
        """The peer read everything but `to` bytes."""
        self.backlog = to
        self._drained.set()

    async def wait_frames(self, n: int, timeout: float = 2.0) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.frames) < n:
                self._wrote.clear()
                await self._wrote.wait()
        return self.frames


class Overflows:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def make_queue(
    conn: FakeConnection, *, limit: int = LIMIT, high: int = HIGH
) -> tuple[SendQueue, Overflows]:
    overflow = Overflows()
    queue = SendQueue(conn, JSON, limit=limit, high_water=high, on_overflow=overflow)
    return queue, overflow


def frame(n: int, size: int = 20) -> bytes:
    return bytes([n]) * size


def event(channel: str, seq: int, data: Any = None) -> Publication:
    return Publication(channel, seq, "ep1", 1_000 + seq, "message", {"data": data})


def body(ws_bytes: bytes) -> dict[str, Any]:
    """The JSON of a small server frame (2-byte header)."""
    assert ws_bytes[1] < 126
    return json.loads(ws_bytes[2:])  # type: ignore[no-any-return]


def test_a_frame_goes_straight_out_while_the_connection_keeps_up() -> None:
    conn = FakeConnection(backlog=HIGH - 1)
    queue, overflow = make_queue(conn)
    queue.push(frame(1))
    assert conn.frames == [frame(1)]
    assert queue.pending_bytes == 0 and overflow.count == 0


async def test_a_frame_waits_when_the_connection_is_past_high_water() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn)
    queue.push(frame(1))
    assert conn.frames == []
    assert queue.pending_bytes == len(frame(1))
    queue.close()


async def test_waiting_frames_go_out_in_order_once_the_connection_drains() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn)
    for n in range(5):
        queue.push(frame(n))
    conn.drain()
    assert await conn.wait_frames(5) == [frame(n) for n in range(5)]
    assert queue.pending_bytes == 0


async def test_a_new_frame_waits_behind_older_ones_even_when_the_buffer_has_room() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn)
    queue.push(frame(1))
    conn.backlog = 0  # room again, but the flusher has not run yet
    queue.push(frame(2))
    assert conn.frames == []
    conn.drain()
    assert await conn.wait_frames(2) == [frame(1), frame(2)]


async def test_the_flusher_pauses_again_when_the_connection_falls_behind() -> None:
    conn = FakeConnection(backlog=HIGH, grows=True)
    queue, _ = make_queue(conn)
    for n in range(3):
        queue.push(frame(n, size=40))
    conn.drain()
    await conn.wait_frames(2)
    assert conn.frames == [frame(0, 40), frame(1, 40)]
    assert queue.pending_bytes == 40
    conn.drain()
    assert await conn.wait_frames(3) == [frame(n, 40) for n in range(3)]


async def test_after_catching_up_frames_go_straight_out_again() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn)
    queue.push(frame(1))
    conn.drain()
    await conn.wait_frames(1)
    queue.push(frame(2))
    assert conn.frames == [frame(1), frame(2)]


async def test_a_queue_filled_exactly_to_its_limit_does_not_overflow() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, overflow = make_queue(conn, limit=100)
    queue.push(frame(1, 50))
    queue.push(frame(2, 50))
    assert overflow.count == 0 and queue.pending_bytes == 100
    queue.close()


async def test_a_frame_past_the_limit_calls_overflow_once_and_drops_the_queue() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, overflow = make_queue(conn, limit=100)
    queue.push(frame(1, 60))
    queue.push(frame(2, 60))
    assert overflow.count == 1
    assert queue.closed and queue.pending_bytes == 0
    queue.push(frame(3, 10))
    queue.push_conflatable(event("dash:cpu", 1))
    conn.drain()
    assert overflow.count == 1
    assert conn.frames == []


def test_a_closed_queue_sends_nothing_more() -> None:
    conn = FakeConnection()
    queue, overflow = make_queue(conn)
    queue.close()
    queue.push(frame(1))
    queue.push_conflatable(event("dash:cpu", 1))
    assert conn.frames == [] and overflow.count == 0


async def test_closing_drops_waiting_frames() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn)
    queue.push(frame(1))
    queue.push(frame(2))
    queue.close()
    assert queue.pending_bytes == 0
    # A second queue on the same connection waits behind the first one's flusher, so
    # when its frame is out, the first queue has had every chance to write.
    later, _ = make_queue(conn)
    later.push(frame(9))
    conn.drain()
    await conn.wait_frames(1)
    assert conn.frames == [frame(9)]


# -- conflation --------------------------------------------------------------------------


def test_a_conflatable_event_goes_straight_out_unmarked_while_the_connection_keeps_up() -> None:
    conn = FakeConnection()
    queue, _ = make_queue(conn)
    queue.push_conflatable(event("dash:cpu", 1))
    assert len(conn.frames) == 1
    assert "conflated" not in body(conn.frames[0])


async def test_a_newer_event_of_a_channel_replaces_the_waiting_one_and_is_marked() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn, limit=10_000)
    pubs = [event("dash:cpu", seq, data=seq * 10) for seq in (1, 2, 3)]
    for pub in pubs:
        queue.push_conflatable(pub)
    assert queue.pending_bytes == len(pubs[-1].frame(JSON))
    conn.drain()
    [sent] = await conn.wait_frames(1)
    got = body(sent)
    assert (got["seq"], got["payload"]["data"], got["conflated"]) == (3, 30, True)
    assert queue.pending_bytes == 0


async def test_a_waiting_event_that_was_never_replaced_is_not_marked_conflated() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn, limit=10_000)
    queue.push_conflatable(event("dash:cpu", 1))
    conn.drain()
    [sent] = await conn.wait_frames(1)
    assert body(sent)["seq"] == 1 and "conflated" not in body(sent)


async def test_conflation_replaces_only_events_of_the_same_channel() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn, limit=10_000)
    queue.push_conflatable(event("dash:cpu", 1))
    queue.push_conflatable(event("dash:mem", 1))
    queue.push_conflatable(event("dash:cpu", 2))
    conn.drain()
    sent = [body(f) for f in await conn.wait_frames(2)]
    assert [(b["channel"], b["seq"], b.get("conflated", False)) for b in sent] == [
        ("dash:cpu", 2, True),
        ("dash:mem", 1, False),
    ]


async def test_a_conflated_event_keeps_its_place_among_other_frames() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn, limit=10_000)
    queue.push(frame(1))
    queue.push_conflatable(event("dash:cpu", 1))
    queue.push(frame(2))
    queue.push_conflatable(event("dash:cpu", 2))
    conn.drain()
    sent = await conn.wait_frames(3)
    assert sent[0] == frame(1) and sent[2] == frame(2)
    assert body(sent[1])["seq"] == 2 and body(sent[1])["conflated"] is True


async def test_after_a_conflated_flush_the_next_waiting_event_starts_unmarked() -> None:
    conn = FakeConnection(backlog=HIGH)
    queue, _ = make_queue(conn, limit=10_000)
    queue.push_conflatable(event("dash:cpu", 1))
    queue.push_conflatable(event("dash:cpu", 2))
    conn.drain()
    await conn.wait_frames(1)
    conn.backlog = HIGH
    queue.push_conflatable(event("dash:cpu", 3))
    conn.drain()
    sent = await conn.wait_frames(2)
    assert body(sent[1])["seq"] == 3 and "conflated" not in body(sent[1])


async def test_conflation_bounds_a_slow_connection_to_one_event_per_channel() -> None:
    conn = FakeConnection(backlog=HIGH)
    one = len(event("dash:cpu", 1).frame(JSON))
    queue, overflow = make_queue(conn, limit=one * 3)
    for seq in range(1, 1001):
        queue.push_conflatable(event("dash:cpu", seq))
    assert overflow.count == 0
    assert queue.pending_bytes <= one + 10
    queue.close()


async def test_many_conflatable_channels_past_the_limit_overflow() -> None:
    conn = FakeConnection(backlog=HIGH)
    one = len(event("dash:c0", 1).frame(JSON))
    queue, overflow = make_queue(conn, limit=one * 3)
    for n in range(4):
        queue.push_conflatable(event(f"dash:c{n}", 1))
    assert overflow.count == 1 and queue.closed


@pytest.mark.parametrize("slow_first", [True, False])
async def test_plain_frames_and_conflatable_events_share_one_byte_bound(slow_first: bool) -> None:
    conn = FakeConnection(backlog=HIGH)
    pub = event("dash:cpu", 1)
    size = len(pub.frame(JSON))
    queue, overflow = make_queue(conn, limit=size + 30)
    if slow_first:
        queue.push(frame(1, 30))
        queue.push_conflatable(pub)
    else:
        queue.push_conflatable(pub)
        queue.push(frame(1, 30))
    assert overflow.count == 0
    queue.push(frame(2, 1))
    assert overflow.count == 1
