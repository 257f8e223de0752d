"""The `Broker` contract: sequenced publication, history and presence state for channels.

A node hands every publication to its broker and receives, through its sink,
every publication of the channels it subscribed to (its own included). The
memory broker serves one node; the Redis broker (issue 3) serves many.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec

from hubbub.protocol.codec import Codec, Envelope, ws_frame


class HistoryOptions(msgspec.Struct, frozen=True):
    """How a channel keeps history: the newest `size` events, none older than `ttl` seconds."""

    size: int = 1000
    ttl: float = 600.0
    keep_last_value: bool = False


class Publication:
    """One event of a channel. Its frames are encoded once per codec and reused.

    `seq` is None for ephemeral events (presence, typing) that are not kept in
    history and carry no sequence number.
    """

    __slots__ = ("channel", "seq", "epoch", "ts", "type", "payload", "_frames")

    def __init__(
        self,
        channel: str,
        seq: int | None,
        epoch: str,
        ts: int,
        type: str,
        payload: Any,
    ) -> None:
        self.channel = channel
        self.seq = seq
        self.epoch = epoch
        self.ts = ts
        self.type = type
        self.payload = payload
        self._frames: dict[tuple[str, int], bytes] = {}

    def envelope(self, *, replay: bool = False, conflated: bool = False) -> Envelope:
        return Envelope(
            type=self.type,
            channel=self.channel,
            seq=self.seq,
            ts=self.ts,
            replay=replay,
            conflated=conflated,
            payload=self.payload,
        )

    def frame(self, codec: Codec, variant: int = 0) -> bytes:
        """The WebSocket frame of this event in `codec`: 0 live, 1 replay, 2 conflated."""
        key = (codec.name, variant)
        data = self._frames.get(key)
        if data is None:
            env = self.envelope(replay=variant == 1, conflated=variant == 2)
            data = self._frames[key] = ws_frame(codec.encode(env), binary=codec.binary)
        return data

    def __repr__(self) -> str:
        return f"Publication({self.channel!r}, seq={self.seq}, type={self.type!r})"


class StreamPosition(msgspec.Struct, frozen=True):
    """Where a channel's stream stands: the newest `seq` and the `epoch` of its history."""

    seq: int
    epoch: str


class HistoryResult(msgspec.Struct, frozen=True):
    """Events of a channel in `seq` order, and the stream position when they were read."""

    position: StreamPosition
    publications: list[Publication]


class PresenceInfo(msgspec.Struct, frozen=True):
    """One connection's presence in a channel."""

    user_id: str
    connection_id: str
    status: str = "online"


PublicationSink = Callable[[Publication], None]
ResetHandler = Callable[[], None]
PresenceGoneHandler = Callable[[str, str], None]


class Broker(Protocol):
    """Sequenced fan-out, history and presence for channels.

    Contract, for every implementation (checked by tests/conformance):
    - `publish` assigns the channel's next `seq` (1, 2, 3, ... with no hole and no
      repeat) and appends to history atomically; it returns only once both are done.
    - The sink receives the publications of each subscribed channel in `seq` order.
    - A channel's `epoch` changes whenever its history was lost, so a client
      holding an old epoch is told it cannot recover.
    - History keeps at most `size` events and none older than `ttl` seconds.

    `shared` is True when other nodes may use the same broker (Redis): then what
    one node records, such as presence, is seen by all of them.
    """

    shared: bool

    def set_sink(
        self,
        sink: PublicationSink,
        *,
        on_reset: ResetHandler | None = None,
        on_presence_gone: PresenceGoneHandler | None = None,
    ) -> None:
        """Where this node's publications are delivered.

        `on_reset` is called when the broker may have missed publications (its
        connection to a shared broker came back): local clients must recover.
        `on_presence_gone(channel, user_id)` is called when a user's last
        presence in a channel was removed because its node died.
        """
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def subscribe(self, channel: str) -> None:
        """This node wants the publications of `channel`."""
        ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(
        self,
        channel: str,
        type: str,
        payload: Any,
        *,
        history: HistoryOptions | None,
    ) -> Publication:
        """Publish one event; `history=None` makes it ephemeral (no `seq`, not kept)."""
        ...

    async def position(self, channel: str) -> StreamPosition: ...

    async def history(
        self, channel: str, *, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> HistoryResult:
        """Events with `after < seq <= until`, oldest first, at most `limit` (the oldest ones)."""
        ...

    async def last_value(self, channel: str) -> Publication | None:
        """The newest sequenced event of a keep-last-value channel, if any."""
        ...

    async def presence_add(self, channel: str, info: PresenceInfo) -> bool:
        """Record a connection's presence (or its new status); True when its user was absent."""
        ...

    async def presence_remove(self, channel: str, user_id: str, connection_id: str) -> bool:
        """Forget a connection's presence; True when its user has no connection left there."""
        ...

    async def presence_has_user(self, channel: str, user_id: str) -> bool: ...

    async def presence_members(self, channel: str) -> list[PresenceInfo]: ...
