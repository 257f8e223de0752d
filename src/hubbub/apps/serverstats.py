"""The server's own figures, published every second to `metrics:*` channels.

The `metrics` namespace keeps the last value and conflates (docs/protocol.md 16.7), so a
dashboard that subscribes paints at once and a slow one stays current. Channels:

| channel | data |
|---|---|
| `metrics:connections` | `{value}` open WebSocket connections on this node |
| `metrics:messages_in` | `{value}` frames per second received from clients |
| `metrics:messages_out` | `{value}` frames per second queued to clients |
| `metrics:cpu` | `{value}` CPU used by this process, in percent of one core |
| `metrics:memory` | `{value}` resident memory of this process, in MiB |
| `metrics:loop_lag` | `{value}` how late the event loop ran the last tick, in ms |

Every value also carries `node` and `t` (server time in ms).
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from hubbub.clock import TimerHandle
from hubbub.core.hub import Hub

log = logging.getLogger("hubbub.serverstats")
INTERVAL = 1.0
CHANNELS = ("connections", "messages_in", "messages_out", "cpu", "memory", "loop_lag")


def resident_mib() -> float:
    """Resident memory of this process in MiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class ServerStats:
    """Samples a hub once per `interval` and publishes what changed since the last sample."""

    hub: Hub
    interval: float = INTERVAL
    _timer: TimerHandle | None = None
    _due: float = 0.0
    _last: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        """Begin ticking; called when the hub starts."""
        self._last = self._counters()
        self._due = self.hub.clock.monotonic() + self.interval
        self._timer = self.hub.clock.call_later(self.interval, self._tick)

    def stop(self) -> None:
        """Stop ticking; also happens by itself once the hub has stopped."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _counters(self) -> dict[str, float]:
        registry = self.hub.metrics.registry
        return {
            "in": registry.get_sample_value("hubbub_frames_in_total") or 0.0,
            "out": registry.get_sample_value("hubbub_frames_out_total") or 0.0,
            "cpu": time.process_time(),
            "at": self.hub.clock.monotonic(),
        }

    def sample(self) -> dict[str, float]:
        """One reading of every figure, as rates over the time since the previous one."""
        now = self._counters()
        last, self._last = self._last, now
        elapsed = max(now["at"] - last["at"], 1e-6)
        lag = max(0.0, now["at"] - self._due) * 1000
        return {
            "connections": float(len(self.hub.sessions)),
            "messages_in": round((now["in"] - last["in"]) / elapsed, 1),
            "messages_out": round((now["out"] - last["out"]) / elapsed, 1),
            "cpu": round(100 * (now["cpu"] - last["cpu"]) / elapsed, 1),
            "memory": round(resident_mib(), 1),
            "loop_lag": round(lag, 2),
        }

    def _tick(self) -> None:
        if not self.hub.started:
            self._timer = None
            return
        figures = self.sample()
        self._due = self.hub.clock.monotonic() + self.interval
        self._timer = self.hub.clock.call_later(self.interval, self._tick)
        self.hub.spawn(self._publish(figures))

    async def _publish(self, figures: dict[str, float]) -> None:
        stamp: dict[str, Any] = {"node": self.hub.settings.node_name, "t": self.hub.clock.time_ms()}
        try:
            for name, value in figures.items():
                await self.hub.publish(f"metrics:{name}", {"value": value, **stamp})
        except Exception:  # a broker hiccup must not end the figures for good
            log.exception("could not publish server figures")


def install(hub: Hub, *, interval: float = INTERVAL) -> ServerStats:
    """Publish `hub`'s figures every `interval` seconds while it runs."""
    stats = ServerStats(hub, interval)
    hub.on_start(stats.start)
    hub.on_stop(stats.stop)
    return stats
