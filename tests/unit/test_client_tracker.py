from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.client import ChannelTracker, Message, RecoveryFailed, ReplayRequest, SubscriptionReset
from hubbub.client.tracker import Step


def msg(seq: int | None, channel: str = "news") -> Message:
    return Message(channel=channel, seq=seq, type="message", payload={"data": seq})


def seqs(step: Step) -> list[int | None]:
    return [d.seq for d in step.deliver if isinstance(d, Message)]


def fresh(seq: int = 0, epoch: str = "e1") -> ChannelTracker:
    tracker = ChannelTracker("news")
    tracker.subscribed(seq, epoch, False, answers_since=False)
    return tracker


def test_events_in_order_are_delivered_at_once() -> None:
    tracker = fresh()
    assert [seqs(tracker.receive(msg(n))) for n in (1, 2, 3)] == [[1], [2], [3]]
    assert tracker.position() == (3, "e1")


def test_repeated_events_are_dropped() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(2))
    assert seqs(tracker.receive(msg(2))) == []
    assert seqs(tracker.receive(msg(1))) == []


def test_events_without_seq_pass_through() -> None:
    tracker = fresh(5)
    presence = Message("news", None, "presence.join", {"userId": "bob"})
    assert tracker.receive(presence).deliver == [presence]
    assert tracker.position() == (5, "e1")


def test_a_jump_asks_for_a_replay_and_holds_the_later_event() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    step = tracker.receive(msg(4))
    assert step.deliver == []
    assert step.replay == ReplayRequest("news", 2, 3)
    assert tracker.held == 1


def test_replayed_events_fill_the_gap_then_held_ones_follow_in_order() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    assert seqs(tracker.receive(msg(5))) == []
    assert seqs(tracker.receive(msg(2), replay=True)) == [2]
    assert seqs(tracker.receive(msg(3), replay=True)) == [3, 4, 5]
    assert tracker.replay_complete(2, 3, True).deliver == []
    assert tracker.position() == (5, "e1")
    assert seqs(tracker.receive(msg(6))) == [6]


def test_only_one_replay_is_outstanding_per_channel() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    assert tracker.receive(msg(4)).replay == ReplayRequest("news", 2, 3)
    assert tracker.receive(msg(7)).replay is None


def test_a_second_hole_is_asked_for_once_the_first_is_filled() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    tracker.receive(msg(7))
    assert seqs(tracker.receive(msg(2), replay=True)) == [2]
    step = tracker.receive(msg(3), replay=True)
    assert seqs(step) == [3, 4]
    assert step.replay is None  # the first replay has not completed yet
    step = tracker.replay_complete(2, 3, True)
    assert step.replay == ReplayRequest("news", 5, 6)


def test_incomplete_replay_reports_what_is_lost_and_goes_on() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(6))
    tracker.receive(msg(4), replay=True)
    tracker.receive(msg(5), replay=True)
    step = tracker.replay_complete(2, 5, False)
    assert step.deliver == [RecoveryFailed("news", 2, 3), msg(4), msg(5), msg(6)]
    assert tracker.position() == (6, "e1")


def test_replay_that_returns_nothing_skips_to_the_held_events() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(9))
    step = tracker.replay_complete(2, 8, False)
    assert step.deliver == [RecoveryFailed("news", 2, 8), msg(9)]


def test_complete_replay_that_still_misses_events_is_reported_too() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    step = tracker.replay_complete(2, 3, True)
    assert step.deliver == [RecoveryFailed("news", 2, 3), msg(4)]


def test_a_replay_complete_for_another_range_is_ignored() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    assert tracker.replay_complete(7, 9, False).deliver == []
    assert tracker.replaying == (2, 3)


def test_conflated_event_jumps_without_a_replay() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    step = tracker.receive(msg(10), conflated=True)
    assert seqs(step) == [10] and step.replay is None
    assert seqs(tracker.receive(msg(11))) == [11]


def test_conflated_event_behind_a_hole_waits_for_the_replay_first() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    assert seqs(tracker.receive(msg(9), conflated=True)) == []
    assert seqs(tracker.receive(msg(2), replay=True)) == [2]
    assert seqs(tracker.receive(msg(3), replay=True)) == [3, 4, 9]


def test_replay_events_without_a_known_position_are_ignored() -> None:
    tracker = ChannelTracker("news")
    assert tracker.receive(msg(3), replay=True).deliver == []


def test_first_live_event_without_a_position_sets_it() -> None:
    tracker = ChannelTracker("news")
    assert seqs(tracker.receive(msg(7))) == [7]
    assert tracker.seq == 7 and tracker.position() is None


def test_resume_that_recovers_keeps_the_position_for_the_events_that_follow() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    step = tracker.subscribed(5, "e1", True, answers_since=True)
    assert step.deliver == []
    assert [seqs(tracker.receive(msg(n))) for n in (2, 3, 4, 5)] == [[2], [3], [4], [5]]


def test_resume_that_cannot_recover_resets_to_the_server_position() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    step = tracker.subscribed(40, "e2", False, answers_since=True, last_value=msg(40))
    assert step.deliver == [SubscriptionReset("news", "e2", 40, msg(40))]
    assert tracker.position() == (40, "e2")
    assert seqs(tracker.receive(msg(40))) == []
    assert seqs(tracker.receive(msg(41))) == [41]


def test_recovered_true_with_another_epoch_is_a_reset() -> None:
    tracker = fresh()
    step = tracker.subscribed(3, "e9", True, answers_since=True)
    assert step.deliver == [SubscriptionReset("news", "e9", 3)]


def test_subscribed_that_resumes_nothing_keeps_a_known_position() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    assert tracker.subscribed(9, "e1", False, answers_since=False).deliver == []
    assert tracker.position() == (1, "e1")


def test_connection_lost_forgets_held_events_and_the_replay() -> None:
    tracker = fresh()
    tracker.receive(msg(1))
    tracker.receive(msg(4))
    tracker.connection_lost()
    assert tracker.held == 0 and tracker.replaying is None
    assert tracker.position() == (1, "e1")


def test_too_many_held_events_give_the_gap_up() -> None:
    tracker = ChannelTracker("news", max_held=3)
    tracker.subscribed(0, "e1", False, answers_since=False)
    tracker.receive(msg(1))
    for n in (5, 6, 7):
        tracker.receive(msg(n))
    step = tracker.receive(msg(8))
    assert step.deliver == [RecoveryFailed("news", 2, 4), msg(5), msg(6), msg(7), msg(8)]
    assert tracker.held == 0


# A property: whatever the network does to a stream (drops, repeats, reorders
# within what a server may send), the application sees each event once, in
# order, or hears exactly which ones were lost.


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[int], int]:
    total = draw(st.integers(min_value=1, max_value=60))
    live = [n for n in range(1, total + 1) if draw(st.integers(0, 3)) != 0]
    repeats = draw(st.lists(st.sampled_from(live), max_size=10)) if live else []
    for seq in repeats:
        live.insert(live.index(seq) + 1, seq)
    kept_from = draw(st.integers(min_value=1, max_value=total + 1))
    return total, live, kept_from


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_every_event_once_in_order_or_reported_lost(case: tuple[int, list[int], int]) -> None:
    total, live, kept_from = case
    tracker = fresh()
    out: list[Message | RecoveryFailed | SubscriptionReset] = []
    pending: list[ReplayRequest] = []

    def run(step: Step) -> None:
        out.extend(step.deliver)
        if step.replay is not None:
            pending.append(step.replay)

    def serve_replays() -> None:
        # The server's history holds only events from `kept_from` on.
        while pending:
            request = pending.pop(0)
            for seq in range(request.from_seq, request.to_seq + 1):
                if seq >= kept_from:
                    run(tracker.receive(msg(seq), replay=True))
            complete = request.from_seq >= kept_from
            run(tracker.replay_complete(request.from_seq, request.to_seq, complete))

    for seq in live:
        run(tracker.receive(msg(seq)))
        serve_replays()
    if not live or live[-1] != total:
        run(tracker.receive(msg(total)))
        serve_replays()

    seen: list[int] = []
    for item in out:
        if isinstance(item, Message):
            assert item.seq is not None
            seen.append(item.seq)
        elif isinstance(item, RecoveryFailed):
            assert item.from_seq <= item.to_seq
            seen.extend(range(item.from_seq, item.to_seq + 1))
    assert seen == list(range(1, total + 1))
    lost = {
        n for i in out if isinstance(i, RecoveryFailed) for n in range(i.from_seq, i.to_seq + 1)
    }
    assert all(n < kept_from for n in lost)
    assert tracker.held == 0 and tracker.replaying is None
