"""The in-memory broker: one node, no dependencies, the default of `hubbub serve`."""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

from hubbub.clock import Clock, SystemClock
from hubbub.engines.broker import (
    HistoryOptions,
    HistoryResult,
    PresenceGoneHandler,
    PresenceInfo,
    Publication,
    PublicationSink,
    ResetHandler,
    StreamPosition,
)

IDLE_STREAM_SECONDS = 3600.0


def new_epoch() -> str:
    return secrets.token_hex(4)


class _Stream:
    __slots__ = ("seq", "epoch", "events", "last", "touched")

    def __init__(self, now: float) -> None:
        self.seq = 0
        self.epoch = new_epoch()
        # (when, event), oldest first; made on the first kept event (most `user:` channels
        # of idle connections never get one).
        self.events: deque[tuple[float, Publication]] | None = None
        self.last: Publication | None = None
        self.touched = now


class MemoryBroker:
    """A `Broker` held in this process's memory. Publish is synchronous inside the loop,
    so `seq` assignment, history append and delivery to the sink are atomic."""

    shared = False  # one process: nobody else sees its state

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._sink: PublicationSink = lambda pub: None
        self._streams: dict[str, _Stream] = {}
        self._ttls: dict[str, float] = {}
        self._presence: dict[str, dict[str, dict[str, PresenceInfo]]] = {}
        self._subscribed: set[str] = set()
        self._publishes = 0

    def set_sink(
        self,
        sink: PublicationSink,
        *,
        on_reset: ResetHandler | None = None,
        on_presence_gone: PresenceGoneHandler | None = None,
    ) -> None:
        self._sink = sink

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)  # a stream with subscribers is never forgotten

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    def _stream(self, channel: str) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(self._clock.monotonic())
        return stream

    def _expire(self, channel: str, stream: _Stream, now: float) -> None:
        ttl = self._ttls.get(channel)
        if ttl is None:
            return
        limit = now - ttl
        events = stream.events
        while events and events[0][0] < limit:
            events.popleft()

    async def publish(
        self,
        channel: str,
        type: str,
        payload: Any,
        *,
        history: HistoryOptions | None,
    ) -> Publication:
        ts = self._clock.time_ms()
        if history is None:
            pub = Publication(channel, None, "", ts, type, payload)
            self._sink(pub)
            return pub
        now = self._clock.monotonic()
        stream = self._stream(channel)
        self._publishes += 1
        if self._publishes % 4096 == 0:
            self._sweep(now)
        stream.seq += 1
        stream.touched = now
        pub = Publication(channel, stream.seq, stream.epoch, ts, type, payload)
        self._ttls[channel] = history.ttl
        if history.size > 0:
            if stream.events is None:
                stream.events = deque()
            stream.events.append((now, pub))
            while len(stream.events) > history.size:
                stream.events.popleft()
        if history.keep_last_value:
            stream.last = pub
        self._sink(pub)
        return pub

    def _sweep(self, now: float) -> None:
        """Drop expired events, and forget streams with no event and no subscriber left
        that have been idle for an hour (their epoch goes with them)."""
        for channel, stream in list(self._streams.items()):
            self._expire(channel, stream, now)
            if channel in self._subscribed:
                continue
            if not stream.events and now - stream.touched > IDLE_STREAM_SECONDS:
                del self._streams[channel]
                self._ttls.pop(channel, None)

    async def position(self, channel: str) -> StreamPosition:
        stream = self._stream(channel)
        return StreamPosition(seq=stream.seq, epoch=stream.epoch)

    async def history(
        self, channel: str, *, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> HistoryResult:
        stream = self._streams.get(channel)
        if stream is None:  # reading a name must not make state
            return HistoryResult(position=StreamPosition(seq=0, epoch=""), publications=[])
        self._expire(channel, stream, self._clock.monotonic())
        position = StreamPosition(seq=stream.seq, epoch=stream.epoch)
        events = stream.events
        if not events:
            return HistoryResult(position=position, publications=[])
        first = events[0][1].seq or 0
        start = max(0, after + 1 - first)
        stop = len(events) if until is None else max(0, min(len(events), until + 1 - first))
        if limit is not None:
            stop = min(stop, start + max(0, limit))
        picked = [events[i][1] for i in range(start, stop)] if start < stop else []
        return HistoryResult(position=position, publications=picked)

    async def last_value(self, channel: str) -> Publication | None:
        stream = self._streams.get(channel)
        return stream.last if stream else None

    async def presence_add(self, channel: str, info: PresenceInfo) -> bool:
        users = self._presence.setdefault(channel, {})
        conns = users.get(info.user_id)
        if conns is None:
            users[info.user_id] = {info.connection_id: info}
            return True
        conns[info.connection_id] = info
        return False

    async def presence_remove(self, channel: str, user_id: str, connection_id: str) -> bool:
        users = self._presence.get(channel)
        if users is None:
            return False
        conns = users.get(user_id)
        if conns is None or conns.pop(connection_id, None) is None:
            return False
        if conns:
            return False
        del users[user_id]
        if not users:
            del self._presence[channel]
        return True

    async def presence_has_user(self, channel: str, user_id: str) -> bool:
        return user_id in self._presence.get(channel, {})

    async def presence_members(self, channel: str) -> list[PresenceInfo]:
        users = self._presence.get(channel, {})
        return [info for conns in users.values() for info in conns.values()]
