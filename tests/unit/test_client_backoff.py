from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.client import Backoff


def test_first_retry_waits_at_most_base() -> None:
    assert Backoff(base=0.2, cap=10.0, random=lambda: 1.0).compute(0) == pytest.approx(0.2)


def test_delay_doubles_per_failure_until_the_cap() -> None:
    backoff = Backoff(base=0.2, cap=10.0, random=lambda: 1.0)
    ceilings = [backoff.compute(n) for n in range(8)]
    assert ceilings == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0])


def test_full_jitter_scales_the_ceiling_by_the_random_draw() -> None:
    assert Backoff(base=1.0, cap=100.0, random=lambda: 0.25).compute(3) == pytest.approx(2.0)
    assert Backoff(base=1.0, cap=100.0, random=lambda: 0.0).compute(3) == 0.0


def test_huge_failure_counts_stay_at_the_cap_without_overflow() -> None:
    assert Backoff(base=0.2, cap=10.0, random=lambda: 1.0).compute(10_000) == 10.0


def test_negative_base_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=-1.0)


@given(
    base=st.floats(min_value=0.0, max_value=5.0),
    cap=st.floats(min_value=0.0, max_value=60.0),
    failures=st.integers(min_value=0, max_value=200),
    draw=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_is_always_within_zero_and_min_of_cap_and_exponential(
    base: float, cap: float, failures: int, draw: float
) -> None:
    delay = Backoff(base=base, cap=cap, random=lambda: draw).compute(failures)
    assert 0.0 <= delay <= min(cap, base * 2.0 ** min(failures, 64)) + 1e-12


def test_default_random_draws_differ_between_calls() -> None:
    backoff = Backoff(base=1.0, cap=1.0)
    assert len({backoff.compute(0) for _ in range(20)}) > 1
