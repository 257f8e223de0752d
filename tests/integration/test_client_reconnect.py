"""The Python client against a real server: reconnect, resume, offline queue, tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from hubbub import ManualClock, NamespaceOptions, Settings
from hubbub.client import (
    AuthenticationFailed,
    Backoff,
    Client,
    ClientClosed,
    Connected,
    ConnectFailed,
    Disconnected,
    Event,
    EventStream,
    Message,
    OfflineQueueFull,
    SubscriptionReset,
)
from hubbub.testing import RunningServer, running_server
from tests.wsclient import disconnect, wait_until

E = TypeVar("E")
TIMEOUT = 5.0
FAST = Backoff(base=0.01, cap=0.05)


async def next_of(stream: EventStream, kind: type[E], *, timeout: float = TIMEOUT) -> E:
    """The next event of `kind`, skipping others."""
    async with asyncio.timeout(timeout):
        async for event in stream:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the stream ended before a {kind.__name__}")


async def messages(stream: EventStream, channel: str, until_seq: int) -> list[Message]:
    """Every sequenced message of `channel` up to `until_seq`, in the order delivered."""
    got: list[Message] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in stream:
            if isinstance(event, Message) and event.channel == channel and event.seq is not None:
                got.append(event)
                if event.seq >= until_seq:
                    return got
    raise AssertionError("the stream ended early")


class GatedTokens:
    """A token function that, once `hold()` is called, waits for `release()`:
    the test decides when the client may reconnect, without sleeping."""

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make
        self._open = asyncio.Event()
        self._open.set()
        self.waiting = asyncio.Event()
        self.calls = 0

    def hold(self) -> None:
        self._open.clear()
        self.waiting.clear()

    def release(self) -> None:
        self._open.set()

    async def __call__(self) -> str:
        self.calls += 1
        if not self._open.is_set():
            self.waiting.set()
            await self._open.wait()
        return self._make()


async def test_reconnect_with_since_delivers_every_missed_event_once_in_order(
    server: RunningServer,
) -> None:
    tokens = GatedTokens(lambda: server.token("alice"))
    client = Client(server.url, token=tokens, backoff=FAST)
    stream = client.events()
    async with client:
        await client.subscribe("news")
        for n in range(1, 4):
            await client.publish("news", n)
        await messages(stream, "news", 3)

        tokens.hold()
        await disconnect(server, "alice")
        gone = await next_of(stream, Disconnected)
        assert gone.code == 1012 and gone.reconnecting
        await tokens.waiting.wait()
        for n in range(4, 24):
            await server.hub.publish("news", n)
        await server.hub.send_to_user("alice", "note", {"n": 1})
        tokens.release()

        back = await next_of(stream, Connected)
        assert back.reconnect and back.user_id == "alice"
        got = await messages(stream, "news", 23)
        assert [m.seq for m in got] == list(range(4, 24))
        assert [m.data for m in got] == list(range(4, 24))
        note = await next_of(stream, Message)
        assert (note.channel, note.type, note.seq) == ("user:alice", "note", 1)
        position = client.position("news")
        assert position is not None and position[0] == 23


async def test_concurrent_publishing_through_repeated_disconnects_is_seen_exactly_once(
    server: RunningServer,
) -> None:
    total = 300
    client = Client(server.url, token=lambda: server.token("alice"), backoff=FAST)
    stream = client.events()
    async with client:
        await client.subscribe("ticks")

        async def publish_all() -> None:
            for n in range(1, total + 1):
                await server.hub.publish("ticks", n)
                if n % 10 == 0:
                    await asyncio.sleep(0)  # a yield, so publishing interleaves with the drops

        async def drop_connections() -> None:
            for _ in range(3):
                await disconnect(server, "alice")
                assert (await next_of(stream_for_drops, Connected)).reconnect

        stream_for_drops = client.events()
        publisher = asyncio.create_task(publish_all())
        dropper = asyncio.create_task(drop_connections())
        got = await messages(stream, "ticks", total)
        await publisher
        await dropper
        await stream_for_drops.aclose()
        assert [m.seq for m in got] == list(range(1, total + 1))
        assert [m.data for m in got] == list(range(1, total + 1))


async def test_unrecoverable_resume_is_told_to_the_app_and_delivery_goes_on() -> None:
    settings = Settings(namespaces={"short": NamespaceOptions(history_size=2)})
    async with running_server(settings) as srv:
        tokens = GatedTokens(lambda: srv.token("alice"))
        client = Client(srv.url, token=tokens, backoff=FAST)
        stream = client.events()
        async with client:
            await client.subscribe("short:x")
            await client.publish("short:x", 1)
            await messages(stream, "short:x", 1)
            tokens.hold()
            await disconnect(srv, "alice")
            await tokens.waiting.wait()
            for n in range(2, 7):
                await srv.hub.publish("short:x", n)
            tokens.release()
            reset = await next_of(stream, SubscriptionReset)
            assert (reset.channel, reset.seq) == ("short:x", 6)
            await srv.hub.publish("short:x", 7)
            got = await messages(stream, "short:x", 7)
            assert [m.seq for m in got] == [7]


async def test_publishes_while_offline_are_sent_in_order_after_the_resume(
    server: RunningServer,
) -> None:
    tokens = GatedTokens(lambda: server.token("alice"))
    client = Client(server.url, token=tokens, backoff=FAST, offline_queue_size=3)
    watcher = Client(server.url, token=server.token("bob"))
    seen = watcher.events()
    async with client, watcher:
        await client.subscribe("room")
        await watcher.subscribe("room")
        tokens.hold()
        await disconnect(server, "alice")
        await tokens.waiting.wait()
        assert not client.connected
        pending = [asyncio.create_task(client.publish("room", f"m{n}")) for n in range(3)]
        # Tasks start in creation order, so this one finds the queue full.
        with pytest.raises(OfflineQueueFull):
            await asyncio.create_task(client.publish("room", "one too many"))
        tokens.release()
        seqs = await asyncio.wait_for(asyncio.gather(*pending), TIMEOUT)
        assert seqs == [1, 2, 3]
        got = await messages(seen, "room", 3)
        assert [m.data for m in got] == ["m0", "m1", "m2"]
        assert all(m.payload["publisher"] == "alice" for m in got)


async def test_close_4001_asks_the_token_function_again_and_reconnects(
    server: RunningServer,
) -> None:
    issued: list[str] = []

    def token() -> str:
        issued.append(server.token("alice", n=len(issued)))
        return issued[-1]

    client = Client(server.url, token=token, backoff=FAST)
    stream = client.events()
    async with client:
        await next_of(stream, Connected)
        await disconnect(server, "alice", code=4001)
        gone = await next_of(stream, Disconnected)
        assert gone.code == 4001 and gone.reconnecting
        back = await next_of(stream, Connected)
        assert back.reconnect
        assert len(issued) == 2 and issued[0] != issued[1]
        assert await client.ping() > 0


async def test_close_4001_with_a_fixed_token_ends_the_client(server: RunningServer) -> None:
    client = Client(server.url, token=server.token("alice"), backoff=FAST)
    stream = client.events()
    await client.connect()
    try:
        await disconnect(server, "alice", code=4001)
        gone = await next_of(stream, Disconnected)
        assert gone.code == 4001 and not gone.reconnecting
        assert [e async for e in stream] == []
        assert client.closed
        with pytest.raises(ClientClosed) as caught:
            await client.publish("news", 1)
        assert caught.value.close_code == 4001
    finally:
        await client.close()


async def test_close_4003_ends_the_client(server: RunningServer) -> None:
    client = Client(server.url, token=lambda: server.token("alice"), backoff=FAST)
    stream = client.events()
    await client.connect()
    try:
        await disconnect(server, "alice", code=4003)
        gone = await next_of(stream, Disconnected)
        assert gone.code == 4003 and not gone.reconnecting
        assert client.closed
    finally:
        await client.close()


async def test_close_by_the_user_does_not_reconnect(server: RunningServer) -> None:
    client = Client(server.url, token=lambda: server.token("alice"), backoff=FAST)
    stream = client.events()
    await client.connect()
    await client.close()
    events: list[Event] = [e async for e in stream]
    assert isinstance(events[0], Connected)
    assert events[-1] == Disconnected(1000, "closed by the client", reconnecting=False)
    # the server forgets the connection once it has seen the close (and finished the open)
    await wait_until(lambda: not server.hub.users.get("alice"))


async def test_expiring_token_is_refreshed_and_the_connection_outlives_the_old_one() -> None:
    clock = ManualClock(wall_ms=int(time.time() * 1000))
    settings = Settings(refresh_warning=30.0, heartbeat_interval=3600.0)
    async with running_server(settings, clock=clock) as srv:
        refreshed = asyncio.Event()
        calls = 0

        def token() -> str:
            nonlocal calls
            calls += 1
            if calls > 1:
                refreshed.set()
                return srv.token("alice", ttl=3600)
            return srv.token("alice", ttl=60)

        client = Client(srv.url, token=token, backoff=FAST)
        stream = client.events()
        async with client:
            first = await next_of(stream, Connected)
            clock.advance(31)
            await asyncio.wait_for(refreshed.wait(), TIMEOUT)
            await client.ping()  # the refresh was sent before this ping and is answered first
            clock.advance(40)  # past the first token's expiry
            await client.ping()
            assert client.connection_id == first.connection_id
            assert calls == 2


async def test_connect_with_a_bad_fixed_token_fails_at_once(server: RunningServer) -> None:
    client = Client(server.url, token="not-a-jwt")
    with pytest.raises(AuthenticationFailed):
        await client.connect()
    await client.close()


async def test_connect_to_nothing_fails_and_may_be_tried_again(server: RunningServer) -> None:
    client = Client("ws://127.0.0.1:9/ws", token="x", connect_timeout=2.0)
    with pytest.raises(ConnectFailed):
        await client.connect()
    assert not client.closed
    await client.close()
