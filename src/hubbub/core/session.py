"""One client connection's state inside the hub: who it is, what it is subscribed to."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from hubbub.clock import Clock, TimerHandle
from hubbub.config import Settings
from hubbub.core.auth import Identity
from hubbub.core.connection import Connection
from hubbub.core.limits import TokenBucket, WindowCounter
from hubbub.core.sendqueue import SendQueue
from hubbub.engines.broker import Publication
from hubbub.errors import HubbubError
from hubbub.protocol.codec import Codec, Envelope, ws_frame


class ChannelSubscription:
    """A session's subscription to one channel.

    While `buffer` is a list the subscription is catching up (recovery or first
    position) and live events wait there. After that, `floor` is the `seq` the
    client already has: a broker whose fan-out lags behind its history (Redis
    pub/sub) may still bring older events, and they are dropped until the first
    newer one arrives.
    """

    __slots__ = ("buffer", "conflate", "floor")

    def __init__(self, conflate: bool) -> None:
        self.buffer: list[Publication] | None = []
        self.conflate = conflate
        self.floor = 0


class Session:
    """A connection as the hub sees it, from open to close."""

    __slots__ = (
        "id", "conn", "codec", "identity", "subscriptions", "status", "closed", "close_code",
        "queue", "rate", "rate_strikes", "bad_frames", "last_seen", "timers",
    )  # fmt: skip

    def __init__(
        self,
        conn: Connection,
        codec: Codec,
        settings: Settings,
        clock: Clock,
        *,
        on_overflow: Callable[[Session], None],
    ) -> None:
        self.id = secrets.token_hex(8)
        self.conn = conn
        self.codec = codec
        self.identity: Identity | None = None
        self.subscriptions: dict[str, ChannelSubscription] = {}
        self.status = "online"
        self.closed = False
        self.close_code: int | None = None
        self.queue = SendQueue(
            conn,
            codec,
            limit=settings.send_queue_bytes,
            high_water=settings.send_high_water,
            on_overflow=lambda: on_overflow(self),
        )
        self.rate = TokenBucket(settings.rate_per_second, settings.rate_burst, clock)
        self.rate_strikes = WindowCounter(settings.rate_strikes, 10.0, clock)
        self.bad_frames = WindowCounter(settings.bad_frame_limit, settings.bad_frame_window, clock)
        self.last_seen = clock.monotonic()
        self.timers: dict[str, TimerHandle] = {}

    @property
    def user_id(self) -> str:
        return self.identity.user_id if self.identity else ""

    def send(self, envelope: Envelope) -> None:
        """Encode `envelope` for this connection and queue it."""
        self.queue.push(ws_frame(self.codec.encode(envelope), binary=self.codec.binary))

    def reply(self, type: str, payload: Any, re: str | None, **fields: Any) -> None:
        self.send(Envelope(type=type, re=re, payload=payload, **fields))

    def send_error(self, error: HubbubError, re: str | None = None) -> None:
        body: dict[str, Any] = {"code": error.code.value, "message": error.message}
        if error.channel is not None:
            body["channel"] = error.channel
        self.send(Envelope(type="error", re=re, payload=body))

    def set_timer(self, name: str, handle: TimerHandle) -> None:
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()
        self.timers[name] = handle

    def cancel_timer(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_timers(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()

    def __repr__(self) -> str:
        return f"Session({self.id}, user={self.user_id!r})"
