"""The Redis broker: many nodes share channels, sequences, history and presence.

Layout (docs/decisions/redis-layout.md): per channel, with the hash tag `{c}`,
`<p>:{c}:m` a hash (seq, epoch, last value), `<p>:{c}:h` a stream of events
whose ids are `<seq>-0`, `<p>:{c}:s` the sharded pub/sub channel, `<p>:{c}:p`
and `<p>:{c}:u` presence (connections, and connection counts per user). Per
node, `<p>:node:<id>` a heartbeat key with a TTL and `<p>:node:<id>:p` the
presence entries it owns, so another node can remove them when it dies.

Publish is one Lua script: it assigns the next `seq`, appends to history and
publishes on the channel's shard, atomically. Each node holds one pub/sub
connection with one subscription per channel it has local subscribers for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubbub.clock import Clock, SystemClock
from hubbub.engines import redis_scripts
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
from hubbub.errors import Unavailable

log = logging.getLogger("hubbub.redis")
META_TTL = 24 * 3600
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
# Any other refusal by Redis (OOM at maxmemory, a script error) is not the client's fault
# either: the call fails as `unavailable`, and the hub undoes what it had begun.
_FAILED = (*_DOWN, RedisError)


def _epoch() -> str:
    return secrets.token_hex(4)


class RedisBroker:
    """A `Broker` over a real Redis (7 or newer, for sharded pub/sub)."""

    shared = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        node_id: str | None = None,
        prefix: str = "hb",
        node_ttl: float = 15.0,
        clock: Clock | None = None,
    ) -> None:
        self._url = url
        self._prefix = prefix
        self._node = node_id or secrets.token_hex(4)
        self._node_ttl = node_ttl
        self._clock = clock or SystemClock()
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._pubsub = self._redis.pubsub()
        self._sink: PublicationSink = lambda pub: None
        self._on_reset: ResetHandler | None = None
        self._on_gone: PresenceGoneHandler | None = None
        self._channels: dict[bytes, str] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._publish = self._redis.register_script(redis_scripts.PUBLISH)
        self._read = self._redis.register_script(redis_scripts.READ)
        self._p_add = self._redis.register_script(redis_scripts.PRESENCE_ADD)
        self._p_remove = self._redis.register_script(redis_scripts.PRESENCE_REMOVE)
        self.round_trips = 0
        self._closed = False

    @classmethod
    def from_url(cls, url: str, *, node_id: str, clock: Clock | None = None) -> RedisBroker:
        """`redis://host:port/db?prefix=hb&node_ttl=15`: the query sets broker options."""
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        return cls(
            plain,
            node_id=node_id,
            prefix=query.get("prefix", "hb"),
            node_ttl=float(query.get("node_ttl", 15)),
            clock=clock,
        )

    # -- keys --------------------------------------------------------------------

    def _key(self, channel: str, kind: str) -> str:
        return f"{self._prefix}:{{{channel}}}:{kind}"

    def _node_key(self, node: str, kind: str = "") -> str:
        return f"{self._prefix}:node:{node}{kind}"

    # -- lifecycle ---------------------------------------------------------------

    def set_sink(
        self,
        sink: PublicationSink,
        *,
        on_reset: ResetHandler | None = None,
        on_presence_gone: PresenceGoneHandler | None = None,
    ) -> None:
        self._sink = sink
        self._on_reset = on_reset
        self._on_gone = on_presence_gone

    async def start(self) -> None:
        try:
            # A previous run under this node id may have died without cleaning up: its
            # presence entries would otherwise live on under our fresh heartbeat.
            await self._remove_presence_of(self._node)
            await self._beat()
            await self._pubsub.ssubscribe(self._node_key(self._node, ":ctl"))
        except _DOWN as exc:
            raise Unavailable("Redis is not reachable") from exc
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._keep_alive())]

    def _check_open(self) -> None:
        # After close, nothing may open a new connection (a late caller would leak it).
        if self._closed:
            raise Unavailable("broker closed")

    async def close(self) -> None:
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        with contextlib.suppress(Exception):
            # Connections still held by calls that were cancelled are closed too.
            await self._redis.connection_pool.disconnect(inuse_connections=True)
        with contextlib.suppress(Exception):
            await self._redis.aclose()

    # -- publications ------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._check_open()
        key = self._key(channel, "s")
        self._channels[key.encode()] = channel
        try:
            await self._pubsub.ssubscribe(key)
        except _FAILED as exc:
            self._channels.pop(key.encode(), None)
            raise Unavailable("broker unavailable") from exc

    async def unsubscribe(self, channel: str) -> None:
        if self._closed:
            return
        key = self._key(channel, "s")
        self._channels.pop(key.encode(), None)
        with contextlib.suppress(*_DOWN):
            await self._pubsub.sunsubscribe(key)

    async def publish(
        self,
        channel: str,
        type: str,
        payload: Any,
        *,
        history: HistoryOptions | None,
    ) -> Publication:
        self._check_open()
        ts = self._clock.time_ms()
        body = _encode((type, ts, payload))
        self.round_trips += 1
        try:
            if history is None:
                await self._redis.execute_command(  # type: ignore[no-untyped-call]
                    "SPUBLISH", self._key(channel, "s"), b"0::" + body
                )
                return Publication(channel, None, "", ts, type, payload)
            keys = [self._key(channel, "m"), self._key(channel, "h"), self._key(channel, "s")]
            args: list[bytes | str | int] = [
                body,
                history.size,
                max(1, int(history.ttl * 1000)),
                max(META_TTL, int(history.ttl)),
                _epoch(),
                ts,
                1 if history.keep_last_value else 0,
            ]
            seq, epoch = await self._publish(keys=keys, args=args)
        except _FAILED as exc:
            raise Unavailable("broker unavailable; the publication was not accepted") from exc
        return Publication(channel, int(seq), _text(epoch), ts, type, payload)

    def _parse(self, channel: str, message: bytes) -> Publication:
        seq_raw, epoch, body = message.split(b":", 2)
        type, ts, payload = _decode(body)
        seq = int(seq_raw)
        return Publication(channel, seq or None, epoch.decode(), ts, type, payload)

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
                if failures:
                    failures = 0
                    log.warning("Redis pub/sub is back; local clients must recover")
                    if self._on_reset is not None:
                        self._on_reset()
            except asyncio.CancelledError:
                raise
            except _DOWN:
                failures += 1
                await asyncio.sleep(min(0.5, 0.02 * 2**failures))
                continue
            except RedisError:
                log.exception("Redis pub/sub failed")
                failures += 1
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "smessage":
                continue
            channel = self._channels.get(message["channel"])
            if channel is None:
                continue
            try:
                pub = self._parse(channel, message["data"])
            except (ValueError, msgspec.DecodeError):
                log.error("dropped a malformed publication on %s", channel)
                continue
            self._sink(pub)

    # -- history -----------------------------------------------------------------

    async def _read_range(
        self, channel: str, first: str, last: str, count: int
    ) -> tuple[StreamPosition, list[Any], int]:
        self._check_open()
        keys = [self._key(channel, "m"), self._key(channel, "h")]
        self.round_trips += 1
        try:
            seq, epoch, entries, ttl = await self._read(
                keys=keys, args=[_epoch(), META_TTL, first, last, count]
            )
        except _FAILED as exc:
            raise Unavailable("broker unavailable") from exc
        return StreamPosition(seq=int(seq), epoch=_text(epoch)), entries, int(ttl)

    async def position(self, channel: str) -> StreamPosition:
        position, _, _ = await self._read_range(channel, "", "+", 0)
        return position

    async def history(
        self, channel: str, *, after: int = 0, until: int | None = None, limit: int | None = None
    ) -> HistoryResult:
        last = "+" if until is None else f"{until}-0"
        if limit is not None and limit <= 0:
            position, _, _ = await self._read_range(channel, "", "+", 0)
            return HistoryResult(position=position, publications=[])
        position, entries, ttl = await self._read_range(channel, f"{after + 1}-0", last, limit or 0)
        oldest = self._clock.time_ms() - ttl if ttl else 0
        pubs: list[Publication] = []
        for entry_id, fields in entries:
            data = dict(zip(fields[::2], fields[1::2], strict=True))
            if int(data[b"t"]) < oldest:
                continue  # older than the history's time to live
            type, ts, payload = _decode(data[b"b"])
            seq = int(_text(entry_id).split("-", 1)[0])
            pubs.append(Publication(channel, seq, position.epoch, ts, type, payload))
        return HistoryResult(position=position, publications=pubs)

    async def last_value(self, channel: str) -> Publication | None:
        self._check_open()
        try:
            raw = await self._redis.hget(self._key(channel, "m"), "last")
        except _DOWN as exc:
            raise Unavailable("broker unavailable") from exc
        return None if raw is None else self._parse(channel, _bytes(raw))

    # -- presence ----------------------------------------------------------------

    def _member(self, channel: str, info: PresenceInfo) -> str:
        return f"{channel}\x00{info.connection_id}\x00{info.user_id}"

    async def presence_add(self, channel: str, info: PresenceInfo) -> bool:
        self._check_open()
        keys = [self._key(channel, "p"), self._key(channel, "u"), self._node_key(self._node, ":p")]
        value = _encode((info.user_id, info.status, self._node))
        member = self._member(channel, info)
        try:
            newly = await self._p_add(
                keys=keys, args=[info.connection_id, value, info.user_id, member]
            )
        except _DOWN as exc:
            raise Unavailable("broker unavailable") from exc
        return bool(newly)

    async def presence_remove(self, channel: str, user_id: str, connection_id: str) -> bool:
        return await self._remove(channel, user_id, connection_id, self._node)

    async def _remove(self, channel: str, user: str, conn: str, node: str) -> bool:
        if self._closed:
            return False
        keys = [self._key(channel, "p"), self._key(channel, "u"), self._node_key(node, ":p")]
        member = f"{channel}\x00{conn}\x00{user}"
        try:
            gone = await self._p_remove(keys=keys, args=[conn, user, member])
        except _DOWN:
            return False
        return bool(gone)

    async def presence_has_user(self, channel: str, user_id: str) -> bool:
        self._check_open()
        try:
            return bool(await self._redis.hexists(self._key(channel, "u"), user_id))
        except _DOWN as exc:
            raise Unavailable("broker unavailable") from exc

    async def presence_members(self, channel: str) -> list[PresenceInfo]:
        self._check_open()
        try:
            entries = await self._redis.hgetall(self._key(channel, "p"))
        except _DOWN as exc:
            raise Unavailable("broker unavailable") from exc
        members = []
        for conn, value in entries.items():
            user, status, _node = _decode(_bytes(value))
            members.append(PresenceInfo(user_id=user, connection_id=_text(conn), status=status))
        return members

    # -- node liveness -----------------------------------------------------------

    async def _beat(self) -> None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self._node_key(self._node), "1", px=int(self._node_ttl * 1000))
        pipe.sadd(f"{self._prefix}:nodes", self._node)
        await pipe.execute()

    async def _keep_alive(self) -> None:
        """Refresh this node's heartbeat; remove the presence of nodes whose heartbeat expired;
        keep the stream state of channels with local subscribers from expiring."""
        last_touch = 0.0
        while True:
            await asyncio.sleep(self._node_ttl / 3)
            try:
                await self._beat()
                await self._reap_dead_nodes()
                if self._clock.monotonic() - last_touch > 3600:
                    last_touch = self._clock.monotonic()
                    await self._touch_subscribed()
            except asyncio.CancelledError:
                raise
            except _DOWN:
                continue
            except RedisError:
                log.exception("node heartbeat failed")

    async def _touch_subscribed(self) -> None:
        """A quiet channel keeps its epoch while anyone here listens to it."""
        pipe = self._redis.pipeline(transaction=False)
        for channel in list(self._channels.values()):
            pipe.expire(self._key(channel, "m"), META_TTL)
        await pipe.execute()

    async def _reap_dead_nodes(self) -> None:
        nodes = await self._redis.smembers(f"{self._prefix}:nodes")
        for raw in nodes:
            node = _text(raw)
            if node == self._node or await self._redis.exists(self._node_key(node)):
                continue
            lock = self._node_key(node, ":reaping")
            if not await self._redis.set(lock, self._node, nx=True, ex=30):
                continue
            await self._remove_presence_of(node)
            await self._redis.srem(f"{self._prefix}:nodes", node)

    async def _remove_presence_of(self, node: str) -> None:
        """Remove every presence entry `node` recorded; users who are gone for good leave."""
        members = await self._redis.smembers(self._node_key(node, ":p"))
        for member in members:
            channel, conn, user = _text(member).split("\x00", 2)
            if await self._remove(channel, user, conn, node) and self._on_gone is not None:
                self._on_gone(channel, user)
        await self._redis.delete(self._node_key(node, ":p"))


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["RedisBroker"]
