"""Per-connection limits: a token bucket for frame rate, a window counter for bad frames."""

from __future__ import annotations

from collections import deque

from hubbub.clock import Clock


class TokenBucket:
    """Allows `rate` events per second with bursts up to `burst`."""

    __slots__ = ("_rate", "_burst", "_tokens", "_at", "_clock")

    def __init__(self, rate: float, burst: int, clock: Clock) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock.monotonic()

    def take(self, now: float | None = None) -> bool:
        """Spend one token; False when none is left. `now`: the clock's monotonic time,
        if the caller has just read it."""
        if now is None:
            now = self._clock.monotonic()
        tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True


class WindowCounter:
    """Counts events in a sliding window; `hit` says whether the count went past `limit`."""

    __slots__ = ("_limit", "_window", "_stamps", "_clock")

    def __init__(self, limit: int, window: float, clock: Clock) -> None:
        self._limit = limit
        self._window = window
        self._stamps: deque[float] | None = None  # made on the first hit: most never get one
        self._clock = clock

    def hit(self) -> bool:
        now = self._clock.monotonic()
        stamps = self._stamps
        if stamps is None:
            stamps = self._stamps = deque()
        stamps.append(now)
        while stamps and stamps[0] <= now - self._window:
            stamps.popleft()
        return len(stamps) > self._limit
