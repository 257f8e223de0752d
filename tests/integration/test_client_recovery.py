"""The Python client against a real server, through a relay that loses or holds
chosen frames: gap replay, incomplete replay, repeats, request timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from hubbub import ManualClock, NamespaceOptions, Settings
from hubbub.client import (
    Backoff,
    Client,
    Connected,
    Disconnected,
    EventStream,
    Message,
    RecoveryFailed,
    RequestTimeout,
)
from hubbub.testing import RunningServer, running_server
from tests.wsclient import disconnect

E = TypeVar("E")
Frame = dict[str, Any]
TIMEOUT = 5.0
FAST = Backoff(base=0.01, cap=0.05)


class Relay:
    """A WebSocket relay in front of the server's `/ws`.

    `drop_down(frame)` loses server-to-client frames, `repeat_down(frame)` sends
    them twice (at-least-once delivery); `hold_up(frame)` keeps
    client-to-server frames back until `release()`. `sent_up` and `seen_down`
    record the frames of each direction; `held` is set once a frame is held.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.drop_down: Callable[[Frame], bool] = lambda frame: False
        self.hold_up: Callable[[Frame], bool] = lambda frame: False
        self.repeat_down: Callable[[Frame], bool] = lambda frame: False
        self.sent_up: list[Frame] = []
        self.seen_down: list[Frame] = []
        self.held = asyncio.Event()
        self._held: list[str] = []
        self._up: aiohttp.ClientWebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ws", self._relay)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}/ws"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def release(self) -> None:
        """Send the held frames on, in order, and stop holding."""
        self.hold_up = lambda frame: False
        held, self._held = self._held, []
        assert self._up is not None
        for data in held:
            await self._up.send_str(data)

    async def _relay(self, request: web.Request) -> web.WebSocketResponse:
        down = web.WebSocketResponse(autoping=True)
        await down.prepare(request)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.upstream, params=request.query) as up,
        ):
            self._up = up
            pumps = [
                asyncio.create_task(self._to_client(up, down)),
                asyncio.create_task(self._to_server(down, up)),
            ]
            _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if not down.closed:
                await down.close(code=up.close_code or 1011)
            await up.close()
        return down

    async def _to_client(
        self, up: aiohttp.ClientWebSocketResponse, down: web.WebSocketResponse
    ) -> None:
        async for msg in up:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.seen_down.append(frame)
            if not self.drop_down(frame):
                await down.send_str(msg.data)
                if self.repeat_down(frame):
                    await down.send_str(msg.data)

    async def _to_server(
        self, down: web.WebSocketResponse, up: aiohttp.ClientWebSocketResponse
    ) -> None:
        async for msg in down:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            self.sent_up.append(frame)
            if self.hold_up(frame):
                self._held.append(msg.data)
                self.held.set()
            else:
                await up.send_str(msg.data)


@pytest.fixture
async def relay(server: RunningServer) -> AsyncIterator[Relay]:
    proxy = Relay(server.url)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def next_of(stream: EventStream, kind: type[E], *, timeout: float = TIMEOUT) -> E:
    async with asyncio.timeout(timeout):
        async for event in stream:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the stream ended before a {kind.__name__}")


async def channel_events(
    stream: EventStream, channel: str, until_seq: int
) -> list[Message | RecoveryFailed]:
    """Messages and losses of `channel` until the message with `until_seq`."""
    got: list[Message | RecoveryFailed] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in stream:
            if isinstance(event, RecoveryFailed) and event.channel == channel:
                got.append(event)
            elif isinstance(event, Message) and event.channel == channel and event.seq:
                got.append(event)
                if event.seq >= until_seq:
                    return got
    raise AssertionError("the stream ended early")


def live_message(channel: str, seqs: set[int]) -> Callable[[Frame], bool]:
    """Lose the live (not replayed) frames of `channel` with one of `seqs`."""
    return lambda f: f.get("channel") == channel and f.get("seq") in seqs and not f.get("replay")


async def test_a_gap_in_the_live_stream_is_filled_by_replay_in_order(
    server: RunningServer, relay: Relay
) -> None:
    relay.drop_down = live_message("news", {2, 3})
    client = Client(relay.url, token=server.token("alice"))
    stream = client.events()
    async with client:
        await client.subscribe("news")
        for n in range(1, 6):
            await server.hub.publish("news", n)
        got = await channel_events(stream, "news", 5)
        assert [(m.seq, m.data) for m in got if isinstance(m, Message)] == [
            (n, n) for n in range(1, 6)
        ]
        asked = [f["payload"] for f in relay.sent_up if f["type"] == "replay_request"]
        assert asked == [{"channel": "news", "fromSequence": 2, "toSequence": 3}]


async def test_a_gap_the_history_no_longer_holds_is_reported_then_delivery_goes_on() -> None:
    settings = Settings(namespaces={"short": NamespaceOptions(history_size=3)})
    async with running_server(settings) as srv:
        proxy = Relay(srv.url)
        await proxy.start()
        try:
            proxy.drop_down = live_message("short:q", {2, 3, 4, 5, 6})
            client = Client(proxy.url, token=srv.token("alice"))
            stream = client.events()
            async with client:
                await client.subscribe("short:q")
                for n in range(1, 8):
                    await srv.hub.publish("short:q", n)
                got = await channel_events(stream, "short:q", 7)
                assert isinstance(got[0], Message) and (got[0].seq, got[0].data) == (1, 1)
                assert got[1] == RecoveryFailed("short:q", 2, 4)
                assert [m.seq for m in got[2:] if isinstance(m, Message)] == [5, 6, 7]
        finally:
            await proxy.stop()


async def test_events_the_network_repeats_reach_the_app_once(
    server: RunningServer, relay: Relay
) -> None:
    relay.repeat_down = lambda f: f.get("seq") is not None
    client = Client(relay.url, token=server.token("alice"))
    stream = client.events()
    async with client:
        await client.subscribe("news")
        for n in range(1, 6):
            await server.hub.publish("news", n)
        got = await channel_events(stream, "news", 5)
        await server.hub.publish("news", 6)
        got += await channel_events(stream, "news", 6)
        assert [m.seq for m in got if isinstance(m, Message)] == [1, 2, 3, 4, 5, 6]


async def test_events_sent_twice_around_a_resume_reach_the_app_once(
    server: RunningServer, relay: Relay
) -> None:
    # After a reconnect the server subscribes the user channel by itself, so live
    # events arrive before the resume with `since` is answered; the resume then
    # sends them again. The application must see each once, in order.
    gate = asyncio.Event()
    gate.set()
    waiting = asyncio.Event()

    async def token() -> str:
        if not gate.is_set():
            waiting.set()
            await gate.wait()
        return server.token("alice")

    client = Client(relay.url, token=token, backoff=FAST)
    stream = client.events()
    async with client:
        await server.hub.send_to_user("alice", "note", {"n": 1})
        await channel_events(stream, "user:alice", 1)

        gate.clear()
        await disconnect(server, "alice")
        await waiting.wait()
        for n in (2, 3):
            await server.hub.send_to_user("alice", "note", {"n": n})
        relay.held.clear()
        relay.hold_up = lambda f: f["type"] == "subscribe"
        gate.set()
        await next_of(stream, Connected)
        await asyncio.wait_for(relay.held.wait(), TIMEOUT)
        for n in (4, 5):
            await server.hub.send_to_user("alice", "note", {"n": n})
        # 4 and 5 reach the client live now, and again in the resume's replay.
        async with asyncio.timeout(TIMEOUT):
            while {4, 5} - {
                f.get("seq") for f in relay.seen_down if f.get("channel") == "user:alice"
            }:
                await client.request("ping")
        await relay.release()
        await client.wait_connected(TIMEOUT)
        await server.hub.send_to_user("alice", "note", {"n": 6})
        got = [m for m in await channel_events(stream, "user:alice", 6) if isinstance(m, Message)]
        assert [m.seq for m in got] == [2, 3, 4, 5, 6]
        assert [m.payload["n"] for m in got] == [2, 3, 4, 5, 6]
        resume = [f for f in relay.sent_up if f["type"] == "subscribe"][-1]
        assert resume["payload"]["since"]["user:alice"]["seq"] == 1


async def test_request_without_answer_times_out(server: RunningServer, relay: Relay) -> None:
    clock = ManualClock()
    relay.drop_down = lambda f: f.get("type") == "pong"
    client = Client(relay.url, token=server.token("alice"), clock=clock, request_timeout=10)
    async with client:
        ping = asyncio.create_task(client.ping())
        async with asyncio.timeout(TIMEOUT):
            while not any(f["type"] == "ping" for f in relay.sent_up):
                await client.presence("news")  # a round trip: the ping went up before it
        assert not ping.done()
        clock.advance(10.5)
        with pytest.raises(RequestTimeout) as caught:
            await ping
        assert isinstance(caught.value, asyncio.TimeoutError)
        relay.drop_down = lambda f: False
        assert await client.ping() > 0


async def test_a_replay_that_never_completes_is_recovered_by_reconnecting(
    server: RunningServer, relay: Relay
) -> None:
    clock = ManualClock()
    relay.drop_down = lambda f: (
        f.get("type") == "replay_complete" or bool(f.get("replay")) or live_message("news", {2})(f)
    )
    client = Client(
        relay.url,
        token=lambda: server.token("alice"),
        clock=clock,
        backoff=Backoff(base=0.0, cap=0.0),
    )
    stream = client.events()
    async with client:
        await client.subscribe("news")
        for n in (1, 2, 3):
            await server.hub.publish("news", n)
        first = await channel_events(stream, "news", 1)
        assert [m.seq for m in first if isinstance(m, Message)] == [1]
        async with asyncio.timeout(TIMEOUT):
            while not any(f["type"] == "replay_request" for f in relay.sent_up):
                await client.presence("news")
        relay.drop_down = lambda f: False
        clock.advance(11)
        gone = await next_of(stream, Disconnected)
        assert gone.reconnecting
        got = await channel_events(stream, "news", 3)
        assert [m.seq for m in got if isinstance(m, Message)] == [2, 3]
