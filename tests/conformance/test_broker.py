"""One contract, every broker: the memory broker and the Redis broker pass the same tests.

The Redis broker runs against the real Redis of HUBBUB_TEST_REDIS_URL; a missing
Redis fails these tests.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from hubbub import ManualClock
from hubbub.engines.broker import Broker, HistoryOptions, PresenceInfo, Publication
from hubbub.engines.memory import MemoryBroker
from hubbub.engines.redis import RedisBroker
from tests.services import REDIS_URL

KEEP = HistoryOptions(size=100, ttl=600.0)
MakeBroker = Callable[[ManualClock], Awaitable[Broker]]


class Received:
    """What a broker delivered to its sink, with a way to wait for it."""

    def __init__(self) -> None:
        self.pubs: list[Publication] = []
        self._changed = asyncio.Event()

    def __call__(self, pub: Publication) -> None:
        self.pubs.append(pub)
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[Publication]:
        async with asyncio.timeout(timeout):
            while len(self.pubs) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.pubs


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    started: list[Broker] = []
    prefix = f"t{secrets.token_hex(4)}"

    async def make(clock: ManualClock) -> Broker:
        broker: Broker
        if request.param == "memory":
            broker = MemoryBroker(clock)
        else:
            broker = RedisBroker(
                REDIS_URL, prefix=prefix, clock=clock, node_id=secrets.token_hex(3)
            )
        await broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        await broker.close()
    if request.param == "redis":
        client = aioredis.Redis.from_url(REDIS_URL)
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def _started(make: MakeBroker, clock: ManualClock | None = None) -> tuple[Broker, Received]:
    broker = await make(clock or ManualClock(wall_ms=1_800_000_000_000))
    received = Received()
    broker.set_sink(received)
    return broker, received


async def test_seq_counts_from_one_without_holes_and_epoch_is_stable(
    make_broker: MakeBroker,
) -> None:
    broker, _ = await _started(make_broker)
    before = await broker.position("c")
    assert before.seq == 0
    pubs = [await broker.publish("c", "message", {"n": n}, history=KEEP) for n in range(5)]
    assert [p.seq for p in pubs] == [1, 2, 3, 4, 5]
    assert {p.epoch for p in pubs} == {before.epoch}
    after = await broker.position("c")
    assert (after.seq, after.epoch) == (5, before.epoch)


async def test_concurrent_publishes_get_distinct_consecutive_seqs(make_broker: MakeBroker) -> None:
    broker, _ = await _started(make_broker)

    async def publisher(k: int) -> list[int]:
        return [(await broker.publish("c", "m", [k, i], history=KEEP)).seq or 0 for i in range(20)]

    seqs = [s for batch in await asyncio.gather(*(publisher(k) for k in range(10))) for s in batch]
    assert sorted(seqs) == list(range(1, 201))


async def test_subscribed_channels_reach_the_sink_in_seq_order(make_broker: MakeBroker) -> None:
    broker, received = await _started(make_broker)
    await broker.subscribe("a")
    await broker.subscribe("b")
    for n in range(30):
        await broker.publish("a" if n % 2 else "b", "m", n, history=KEEP)
    pubs = await received.wait_for(30)
    for channel in ("a", "b"):
        seqs = [p.seq for p in pubs if p.channel == channel]
        assert seqs == list(range(1, 16))
    assert {p.payload for p in pubs} == set(range(30))


async def test_unsubscribed_channel_is_not_delivered(make_broker: MakeBroker) -> None:
    broker, received = await _started(make_broker)
    await broker.subscribe("keep")
    await broker.subscribe("drop")
    await broker.unsubscribe("drop")
    await broker.publish("drop", "m", 1, history=KEEP)
    await broker.publish("keep", "m", 2, history=KEEP)
    pubs = await received.wait_for(1)
    if isinstance(broker, MemoryBroker):
        pubs = [p for p in pubs if p.channel == "keep"]  # one node: it hands everything over
    assert [(p.channel, p.payload) for p in pubs] == [("keep", 2)]


async def test_history_pages_by_after_until_and_limit(make_broker: MakeBroker) -> None:
    broker, _ = await _started(make_broker)
    for n in range(1, 11):
        await broker.publish("h", "message", {"n": n}, history=KEEP)
    everything = await broker.history("h")
    assert [p.seq for p in everything.publications] == list(range(1, 11))
    assert everything.publications[0].payload == {"n": 1}
    assert everything.publications[0].type == "message"
    assert [p.seq for p in (await broker.history("h", after=4)).publications] == list(range(5, 11))
    page = await broker.history("h", after=2, until=6)
    assert [p.seq for p in page.publications] == [3, 4, 5, 6]
    assert [p.seq for p in (await broker.history("h", after=2, limit=3)).publications] == [3, 4, 5]
    assert (await broker.history("h", after=10)).publications == []
    assert everything.position.seq == 10


async def test_history_keeps_only_the_newest_size_events(make_broker: MakeBroker) -> None:
    broker, _ = await _started(make_broker)
    for n in range(10):
        await broker.publish("s", "m", n, history=HistoryOptions(size=3, ttl=600))
    result = await broker.history("s")
    assert [p.seq for p in result.publications] == [8, 9, 10]
    assert result.position.seq == 10


async def test_history_drops_events_older_than_the_ttl(make_broker: MakeBroker) -> None:
    clock = ManualClock(wall_ms=1_800_000_000_000)
    broker, _ = await _started(make_broker, clock)
    ttl = HistoryOptions(size=100, ttl=60)
    await broker.publish("t", "m", "old", history=ttl)
    clock.advance(45)
    await broker.publish("t", "m", "new", history=ttl)
    clock.advance(30)  # the first is 75 s old, the second 30 s
    result = await broker.history("t")
    assert [p.payload for p in result.publications] == ["new"]
    assert result.position.seq == 2


async def test_ephemeral_events_carry_no_seq_and_stay_out_of_history(
    make_broker: MakeBroker,
) -> None:
    broker, received = await _started(make_broker)
    await broker.subscribe("e")
    pub = await broker.publish("e", "presence.join", {"userId": "a"}, history=None)
    assert pub.seq is None
    (got,) = await received.wait_for(1)
    assert got.seq is None and got.type == "presence.join" and got.payload == {"userId": "a"}
    assert (await broker.history("e")).publications == []
    assert (await broker.position("e")).seq == 0


async def test_last_value_is_the_newest_event_of_a_keep_last_value_channel(
    make_broker: MakeBroker,
) -> None:
    broker, _ = await _started(make_broker)
    assert await broker.last_value("lv") is None
    keep = HistoryOptions(size=0, ttl=60, keep_last_value=True)
    await broker.publish("lv", "message", {"v": 1}, history=keep)
    await broker.publish("lv", "message", {"v": 2}, history=keep)
    last = await broker.last_value("lv")
    assert last is not None and last.seq == 2 and last.payload == {"v": 2}
    assert (await broker.history("lv")).publications == []


async def test_presence_reports_first_and_last_connection_of_a_user(
    make_broker: MakeBroker,
) -> None:
    broker, _ = await _started(make_broker)
    one = PresenceInfo(user_id="ann", connection_id="c1")
    two = PresenceInfo(user_id="ann", connection_id="c2", status="away")
    assert await broker.presence_add("room", one) is True
    assert await broker.presence_add("room", two) is False
    assert await broker.presence_add("room", one) is False  # a status update, not a join
    members: list[Any] = sorted(
        await broker.presence_members("room"), key=lambda m: m.connection_id
    )
    assert members == [one, two]
    assert await broker.presence_has_user("room", "ann")
    assert await broker.presence_remove("room", "ann", "c1") is False
    assert await broker.presence_remove("room", "ann", "c1") is False  # twice is harmless
    assert await broker.presence_remove("room", "ann", "c2") is True
    assert not await broker.presence_has_user("room", "ann")
    assert await broker.presence_members("room") == []
