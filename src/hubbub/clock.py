"""Time as a parameter: every timer in Hubbub reads a `Clock`, so tests drive time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    """What `Clock.call_later` returns."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic time, wall time and timers."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary start; never goes back."""
        ...

    def time_ms(self) -> int:
        """Wall-clock milliseconds since the epoch (the `ts` of envelopes)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        """Run `callback` once, `delay` seconds from now."""
        ...


class SystemClock:
    """The real clock, with timers on the running asyncio loop."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay), callback)


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when a test calls `advance`; timers fire in order."""

    def __init__(self, start: float = 1000.0, wall_ms: int = 1_764_070_000_000) -> None:
        self._now = start
        self._wall_offset_ms = wall_ms - int(start * 1000)
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], object]]] = []
        self._counter = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time_ms(self) -> int:
        return int(self._now * 1000) + self._wall_offset_ms

    def call_later(self, delay: float, callback: Callable[[], object]) -> TimerHandle:
        timer = _ManualTimer()
        heapq.heappush(
            self._timers, (self._now + max(0.0, delay), next(self._counter), timer, callback)
        )
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, firing every timer that falls due, in order."""
        end = self._now + seconds
        while self._timers and self._timers[0][0] <= end:
            due, _, timer, callback = heapq.heappop(self._timers)
            self._now = max(self._now, due)
            if not timer.cancelled:
                callback()
        self._now = end
