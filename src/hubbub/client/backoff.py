"""How long the client waits before its next reconnect attempt."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

# 2**64 times any sane base is far past any cap; stopping there keeps the float finite.
_MAX_EXPONENT = 64


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, like redis-py's `ExponentialWithJitterBackoff`.

    `compute(failures)` is a uniformly random delay in
    `[0, min(cap, base * 2**failures)]` seconds. Full jitter spreads the
    reconnects of many clients that lost the same server, so they do not
    return all at once. `random` is injectable so tests can fix the draw.
    """

    base: float = 0.2
    cap: float = 10.0
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0:
            raise ValueError("base and cap must not be negative")

    def ceiling(self, failures: int) -> float:
        """The largest delay `compute(failures)` may return."""
        exponent = min(max(failures, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def compute(self, failures: int) -> float:
        """Seconds to wait after `failures` failed attempts in a row (0 for the first retry)."""
        return self.random() * self.ceiling(failures)
