from __future__ import annotations

from typing import Any

from hubbub.client import ChannelBook, Message, SubscriptionReset
from hubbub.protocol.codec import Envelope


def subscribed(channel: str, seq: int, *, re: str | None, recovered: bool = False) -> Envelope:
    payload: dict[str, Any] = {
        "channel": channel,
        "seq": seq,
        "epoch": "e1",
        "recovered": recovered,
    }
    return Envelope(type="subscribed", re=re, payload=payload)


def event(channel: str, seq: int | None, **fields: Any) -> Envelope:
    return Envelope(type="message", channel=channel, seq=seq, payload={"data": seq}, **fields)


def delivered(book: ChannelBook, env: Envelope) -> list[int | None]:
    return [m.seq for m in book.on_event(env).deliver if isinstance(m, Message)]


def test_wanted_channels_and_server_assigned_ones_are_resumed() -> None:
    book = ChannelBook()
    book.want(["news", "chat:1"])
    book.on_subscribed(subscribed("user:alice", 0, re=None))
    assert book.to_resume() == ["news", "chat:1", "user:alice"]


def test_since_names_only_channels_with_a_known_position() -> None:
    book = ChannelBook()
    book.want(["news", "other"])
    book.on_subscribed(subscribed("news", 4, re="1"))
    assert book.since(["news", "other"], "7") == {"news": {"seq": 4, "epoch": "e1"}}


def test_unrecovered_answer_to_a_resume_is_a_reset() -> None:
    book = ChannelBook()
    book.want(["news"])
    book.on_subscribed(subscribed("news", 4, re="1"))
    book.since(["news"], "9")
    step = book.on_subscribed(subscribed("news", 30, re="9", recovered=False))
    assert step.deliver == [SubscriptionReset("news", "e1", 30)]


def test_server_resubscription_before_the_resume_answer_keeps_the_position() -> None:
    # After a reconnect the server subscribes the user channel by itself (re = None)
    # before the client's resume with `since` is answered.
    book = ChannelBook()
    book.on_subscribed(subscribed("user:alice", 2, re=None))
    book.connection_lost()
    book.since(book.to_resume(), "5")
    assert book.on_subscribed(subscribed("user:alice", 6, re=None)).deliver == []
    assert book.trackers["user:alice"].position() == (2, "e1")
    assert book.on_subscribed(subscribed("user:alice", 6, re="5", recovered=True)).deliver == []
    assert [delivered(book, event("user:alice", n)) for n in (3, 4)] == [[3], [4]]


def test_events_of_a_channel_being_left_are_dropped() -> None:
    book = ChannelBook()
    book.want(["news"])
    book.on_subscribed(subscribed("news", 0, re="1"))
    book.leave(["news"])
    assert delivered(book, event("news", 1)) == []
    assert book.to_resume() == []
    book.left(["news"])
    assert delivered(book, event("news", 1)) == [1]


def test_late_subscribed_answer_for_a_channel_no_longer_wanted_is_ignored() -> None:
    book = ChannelBook()
    assert book.on_subscribed(subscribed("news", 3, re="4")).deliver == []
    assert "news" not in book.trackers


def test_refused_channel_is_forgotten() -> None:
    book = ChannelBook()
    book.want(["secret"])
    book.refused("secret")
    assert book.to_resume() == [] and "secret" not in book.trackers


def test_forgotten_request_no_longer_counts_as_a_resume() -> None:
    book = ChannelBook()
    book.want(["news"])
    book.on_subscribed(subscribed("news", 4, re="1"))
    book.since(["news"], "2")
    book.forget_request("2")
    assert book.on_subscribed(subscribed("news", 50, re="2")).deliver == []
    assert book.trackers["news"].position() == (4, "e1")


def test_replay_flag_and_conflation_reach_the_tracker() -> None:
    book = ChannelBook()
    book.want(["m"])
    book.on_subscribed(subscribed("m", 0, re="1"))
    assert delivered(book, event("m", 1)) == [1]
    assert delivered(book, event("m", 5, conflated=True)) == [5]
    step = book.on_event(event("m", 8))
    assert step.replay is not None and (step.replay.from_seq, step.replay.to_seq) == (6, 7)
    assert delivered(book, event("m", 6, replay=True)) == [6]


def test_malformed_subscribed_is_ignored() -> None:
    book = ChannelBook()
    assert book.on_subscribed(Envelope(type="subscribed", payload={"seq": "x"})).deliver == []


def test_live_events_of_a_channel_being_resumed_wait_for_the_resume_replay() -> None:
    book = ChannelBook()
    book.want(["news"])
    book.on_subscribed(subscribed("news", 1, re="1"))
    book.connection_lost()
    book.since(["news"], "2")
    assert delivered(book, event("news", 4)) == []  # no false gap, no replay request
    assert delivered(book, event("news", 2, replay=True)) == [2]  # answers an earlier replay
    book.on_subscribed(subscribed("news", 4, re="2", recovered=True))
    assert [delivered(book, event("news", n)) for n in (3, 4)] == [[3], [4]]
