"""The in-memory broker against the `Broker` contract: sequences, history, presence."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from hubbub.clock import ManualClock
from hubbub.engines.broker import HistoryOptions, PresenceInfo, Publication
from hubbub.engines.memory import MemoryBroker
from hubbub.protocol.codec import JSON

KEEP = HistoryOptions(size=1000, ttl=600.0)


def broker_with_sink() -> tuple[MemoryBroker, list[Publication], ManualClock]:
    clock = ManualClock()
    broker = MemoryBroker(clock)
    delivered: list[Publication] = []
    broker.set_sink(delivered.append)
    return broker, delivered, clock


async def publish_n(
    broker: MemoryBroker, channel: str, n: int, history: HistoryOptions = KEEP
) -> list[Publication]:
    return [await broker.publish(channel, "message", {"n": i}, history=history) for i in range(n)]


async def seqs(broker: MemoryBroker, channel: str, **kw: int) -> list[int | None]:
    result = await broker.history(channel, **kw)
    return [p.seq for p in result.publications]


# -- sequences ----------------------------------------------------------------------


async def test_seq_runs_1_to_n_with_no_holes_and_no_repeats() -> None:
    broker, delivered, _ = broker_with_sink()
    pubs = await publish_n(broker, "news", 50)
    assert [p.seq for p in pubs] == list(range(1, 51))
    assert [p.seq for p in delivered] == list(range(1, 51))


async def test_each_channel_has_its_own_sequence() -> None:
    broker, _, _ = broker_with_sink()
    await publish_n(broker, "a", 3)
    b = await publish_n(broker, "b", 2)
    assert [p.seq for p in b] == [1, 2]
    assert (await broker.position("a")).seq == 3


@given(st.lists(st.sampled_from(["a", "b", "c"]), max_size=60))
async def test_interleaved_publishes_keep_every_channel_gapless(order: list[str]) -> None:
    broker, delivered, _ = broker_with_sink()
    for channel in order:
        await broker.publish(channel, "message", None, history=KEEP)
    for channel in "abc":
        mine = [p.seq for p in delivered if p.channel == channel]
        assert mine == list(range(1, order.count(channel) + 1))


async def test_a_new_channel_is_at_seq_0() -> None:
    broker, _, _ = broker_with_sink()
    position = await broker.position("fresh")
    assert position.seq == 0 and position.epoch


async def test_the_publication_carries_channel_type_payload_and_clock_time() -> None:
    broker, _, clock = broker_with_sink()
    pub = await broker.publish("news", "message", {"data": 1}, history=KEEP)
    assert (pub.channel, pub.type, pub.payload) == ("news", "message", {"data": 1})
    assert pub.ts == clock.time_ms()


# -- epoch ----------------------------------------------------------------------------


async def test_the_epoch_stays_the_same_while_history_is_kept() -> None:
    broker, _, clock = broker_with_sink()
    epoch = (await broker.position("news")).epoch
    pubs = await publish_n(broker, "news", 5)
    clock.advance(60)
    assert {p.epoch for p in pubs} == {epoch}
    assert (await broker.position("news")).epoch == epoch
    assert (await broker.history("news")).position.epoch == epoch


async def test_different_channels_have_different_epochs() -> None:
    broker, _, _ = broker_with_sink()
    epochs = {(await broker.position(f"c{i}")).epoch for i in range(20)}
    assert len(epochs) == 20


async def test_two_brokers_give_the_same_channel_different_epochs() -> None:
    # A restarted memory node has lost its history: clients must not recover against it.
    a, _, _ = broker_with_sink()
    b, _, _ = broker_with_sink()
    assert (await a.position("news")).epoch != (await b.position("news")).epoch


# -- history -----------------------------------------------------------------------------


async def test_history_returns_every_event_oldest_first() -> None:
    broker, _, _ = broker_with_sink()
    pubs = await publish_n(broker, "news", 5)
    result = await broker.history("news")
    assert result.publications == pubs
    assert result.position.seq == 5


async def test_history_after_and_until_bound_the_seq_range() -> None:
    broker, _, _ = broker_with_sink()
    await publish_n(broker, "news", 10)
    assert await seqs(broker, "news", after=3) == [4, 5, 6, 7, 8, 9, 10]
    assert await seqs(broker, "news", after=3, until=7) == [4, 5, 6, 7]
    assert await seqs(broker, "news", until=2) == [1, 2]
    assert await seqs(broker, "news", after=10) == []
    assert await seqs(broker, "news", after=50) == []
    assert await seqs(broker, "news", after=5, until=5) == []
    assert await seqs(broker, "news", after=7, until=3) == []


async def test_history_limit_keeps_the_oldest_events_of_the_range() -> None:
    broker, _, _ = broker_with_sink()
    await publish_n(broker, "news", 10)
    assert await seqs(broker, "news", after=3, limit=2) == [4, 5]
    assert await seqs(broker, "news", limit=0) == []
    assert await seqs(broker, "news", after=8, limit=5) == [9, 10]


async def test_history_of_an_empty_channel_is_empty_at_seq_0() -> None:
    broker, _, _ = broker_with_sink()
    result = await broker.history("nothing")
    assert result.publications == [] and result.position.seq == 0


async def test_history_keeps_only_the_newest_size_events() -> None:
    broker, _, _ = broker_with_sink()
    await publish_n(broker, "news", 8, HistoryOptions(size=5, ttl=600))
    assert await seqs(broker, "news") == [4, 5, 6, 7, 8]
    assert await seqs(broker, "news", after=1) == [4, 5, 6, 7, 8]
    assert await seqs(broker, "news", after=5, limit=2) == [6, 7]
    assert (await broker.position("news")).seq == 8


async def test_a_channel_without_history_still_counts_seq() -> None:
    broker, delivered, _ = broker_with_sink()
    pubs = await publish_n(broker, "news", 3, HistoryOptions(size=0, ttl=600))
    assert [p.seq for p in pubs] == [1, 2, 3]
    assert len(delivered) == 3
    assert await seqs(broker, "news") == []


async def test_events_older_than_the_ttl_leave_history() -> None:
    broker, _, clock = broker_with_sink()
    short = HistoryOptions(size=100, ttl=10.0)
    await broker.publish("news", "message", 1, history=short)
    clock.advance(6)
    await broker.publish("news", "message", 2, history=short)
    clock.advance(5)
    assert await seqs(broker, "news") == [2]
    clock.advance(6)
    assert await seqs(broker, "news") == []
    position = (await broker.history("news")).position
    assert position.seq == 2


async def test_events_within_the_ttl_stay_in_history() -> None:
    broker, _, clock = broker_with_sink()
    opts = HistoryOptions(size=100, ttl=10.0)
    await publish_n(broker, "news", 3, opts)
    clock.advance(9.5)
    assert await seqs(broker, "news") == [1, 2, 3]


async def test_publishing_after_expiry_continues_the_sequence_in_the_same_epoch() -> None:
    broker, _, clock = broker_with_sink()
    opts = HistoryOptions(size=100, ttl=1.0)
    first = await broker.publish("news", "message", 1, history=opts)
    clock.advance(5)
    second = await broker.publish("news", "message", 2, history=opts)
    assert second.seq == 2 and second.epoch == first.epoch
    assert await seqs(broker, "news") == [2]


# -- ephemeral events -----------------------------------------------------------------


async def test_an_ephemeral_event_has_no_seq_and_is_not_kept() -> None:
    broker, delivered, _ = broker_with_sink()
    await publish_n(broker, "room", 2)
    pub = await broker.publish("room", "presence.join", {"userId": "a"}, history=None)
    assert pub.seq is None
    assert delivered[-1] is pub
    assert await seqs(broker, "room") == [1, 2]
    assert (await broker.position("room")).seq == 2
    after = await broker.publish("room", "message", {}, history=KEEP)
    assert after.seq == 3


async def test_an_ephemeral_event_frame_carries_no_seq() -> None:
    broker, _, _ = broker_with_sink()
    pub = await broker.publish("room", "chat.user_typing", {"isTyping": True}, history=None)
    body = json.loads(pub.frame(JSON)[2:])
    assert "seq" not in body and body["channel"] == "room"


# -- last value ------------------------------------------------------------------------


async def test_last_value_is_the_newest_event_of_a_keep_last_value_channel() -> None:
    broker, _, _ = broker_with_sink()
    opts = HistoryOptions(size=10, ttl=600, keep_last_value=True)
    pubs = await publish_n(broker, "metrics:cpu", 3, opts)
    assert await broker.last_value("metrics:cpu") is pubs[-1]


async def test_last_value_outlives_history_trimming() -> None:
    broker, _, clock = broker_with_sink()
    opts = HistoryOptions(size=0, ttl=1.0, keep_last_value=True)
    pubs = await publish_n(broker, "metrics:cpu", 2, opts)
    clock.advance(100)
    assert await broker.last_value("metrics:cpu") is pubs[-1]


async def test_there_is_no_last_value_without_keep_last_value_or_events() -> None:
    broker, _, _ = broker_with_sink()
    await publish_n(broker, "news", 2)
    assert await broker.last_value("news") is None
    assert await broker.last_value("never") is None


async def test_an_ephemeral_event_is_never_the_last_value() -> None:
    broker, _, _ = broker_with_sink()
    opts = HistoryOptions(size=10, ttl=600, keep_last_value=True)
    kept = await broker.publish("metrics:cpu", "message", 1, history=opts)
    await broker.publish("metrics:cpu", "presence.join", {}, history=None)
    assert await broker.last_value("metrics:cpu") is kept


# -- presence ---------------------------------------------------------------------------


def info(user: str, conn: str, status: str = "online") -> PresenceInfo:
    return PresenceInfo(user_id=user, connection_id=conn, status=status)


async def test_presence_add_is_true_only_for_a_users_first_connection() -> None:
    broker, _, _ = broker_with_sink()
    assert await broker.presence_add("room", info("alice", "c1")) is True
    assert await broker.presence_add("room", info("alice", "c2")) is False
    assert await broker.presence_add("room", info("alice", "c1", "away")) is False
    assert await broker.presence_add("room", info("bob", "c3")) is True
    assert await broker.presence_add("other", info("alice", "c1")) is True


async def test_presence_remove_is_true_only_for_a_users_last_connection() -> None:
    broker, _, _ = broker_with_sink()
    await broker.presence_add("room", info("alice", "c1"))
    await broker.presence_add("room", info("alice", "c2"))
    assert await broker.presence_remove("room", "alice", "c1") is False
    assert await broker.presence_has_user("room", "alice")
    assert await broker.presence_remove("room", "alice", "c2") is True
    assert not await broker.presence_has_user("room", "alice")


async def test_removing_unknown_presence_is_false() -> None:
    broker, _, _ = broker_with_sink()
    assert await broker.presence_remove("room", "alice", "c1") is False
    await broker.presence_add("room", info("alice", "c1"))
    assert await broker.presence_remove("room", "alice", "nope") is False
    assert await broker.presence_remove("room", "bob", "c1") is False
    assert await broker.presence_remove("room", "alice", "c1") is True
    assert await broker.presence_remove("room", "alice", "c1") is False


async def test_presence_members_list_every_connection_with_its_latest_status() -> None:
    broker, _, _ = broker_with_sink()
    await broker.presence_add("room", info("alice", "c1"))
    await broker.presence_add("room", info("alice", "c2"))
    await broker.presence_add("room", info("bob", "c3"))
    await broker.presence_add("room", info("alice", "c1", "away"))
    members = await broker.presence_members("room")
    assert sorted(members, key=lambda m: m.connection_id) == [
        info("alice", "c1", "away"),
        info("alice", "c2"),
        info("bob", "c3"),
    ]
    assert await broker.presence_members("empty") == []


# -- publications and their frames ------------------------------------------------------


async def test_a_publication_is_encoded_once_per_codec_and_variant() -> None:
    broker, _, _ = broker_with_sink()
    pub = await broker.publish("news", "message", {"data": 1}, history=KEEP)
    assert pub.frame(JSON) is pub.frame(JSON)
    live, replay, conflated = (json.loads(pub.frame(JSON, v)[2:]) for v in (0, 1, 2))
    assert live == {
        "type": "message",
        "channel": "news",
        "seq": 1,
        "ts": pub.ts,
        "payload": {"data": 1},
    }
    assert replay == {**live, "replay": True}
    assert conflated == {**live, "conflated": True}
