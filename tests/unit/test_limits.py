"""The per-connection rate and bad-frame limits, driven by a manual clock."""

from __future__ import annotations

from hubbub.clock import ManualClock
from hubbub.core.limits import TokenBucket, WindowCounter


def take_all(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


# -- TokenBucket ---------------------------------------------------------------------


def test_a_new_bucket_allows_a_full_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=10.0, burst=5, clock=ManualClock())
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]


def test_tokens_come_back_at_the_configured_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=4.0, burst=4, clock=clock)
    assert take_all(bucket, 10) == 4
    clock.advance(0.5)
    assert take_all(bucket, 10) == 2
    clock.advance(0.25)
    assert take_all(bucket, 10) == 1


def test_a_refused_take_does_not_spend_a_token() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    assert bucket.take()
    for _ in range(100):
        assert not bucket.take()
    clock.advance(1.0)
    assert bucket.take()


def test_a_partial_token_is_not_enough() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=1.0, burst=1, clock=clock)
    bucket.take()
    clock.advance(0.75)
    assert not bucket.take()
    clock.advance(0.25)
    assert bucket.take()


def test_an_idle_bucket_fills_up_to_the_burst_and_no_more() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=100.0, burst=3, clock=clock)
    take_all(bucket, 3)
    clock.advance(3600)
    assert take_all(bucket, 10) == 3


def test_a_steady_sender_at_the_rate_is_never_refused() -> None:
    clock = ManualClock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    for _ in range(1000):
        assert bucket.take()
        clock.advance(0.1)


# -- WindowCounter -------------------------------------------------------------------


def test_the_window_counter_trips_only_past_its_limit() -> None:
    counter = WindowCounter(limit=3, window=10.0, clock=ManualClock())
    assert [counter.hit() for _ in range(4)] == [False, False, False, True]


def test_hits_older_than_the_window_are_forgotten() -> None:
    clock = ManualClock()
    counter = WindowCounter(limit=2, window=10.0, clock=clock)
    counter.hit()
    counter.hit()
    clock.advance(10.0)
    assert not counter.hit()
    assert not counter.hit()
    assert counter.hit()


def test_the_window_slides_rather_than_resetting() -> None:
    clock = ManualClock()
    counter = WindowCounter(limit=2, window=10.0, clock=clock)
    counter.hit()  # t=0
    clock.advance(6)
    counter.hit()  # t=6
    clock.advance(5)  # t=11: the hit at 0 has left the window, the one at 6 has not
    assert not counter.hit()
    assert counter.hit()


def test_twenty_bad_frames_in_ten_seconds_are_allowed_and_the_21st_trips() -> None:
    clock = ManualClock()
    counter = WindowCounter(limit=20, window=10.0, clock=clock)
    for _ in range(20):
        assert not counter.hit()
        clock.advance(0.4)
    assert counter.hit()


def test_a_slow_trickle_never_trips() -> None:
    clock = ManualClock()
    counter = WindowCounter(limit=20, window=10.0, clock=clock)
    for _ in range(500):
        assert not counter.hit()
        clock.advance(0.5)
