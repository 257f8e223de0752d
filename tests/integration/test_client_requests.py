"""The Python client's requests against a real server: answers, errors, helpers."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.client import (
    Client,
    Event,
    Message,
    NotConnected,
    PresenceMember,
    RequestError,
)
from hubbub.protocol.codes import ErrorCode
from hubbub.testing import RunningServer

TIMEOUT = 5.0


async def test_publish_returns_the_seq_and_subscribers_get_the_message(
    server: RunningServer,
) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        stream = client.events()
        subscribed = await client.subscribe("news")
        assert subscribed["news"].seq == 0 and not subscribed["news"].recovered
        assert await client.publish("news", {"x": 1}) == 1
        assert await client.publish("news", {"x": 2}) == 2
        got: list[Message] = []
        async with asyncio.timeout(TIMEOUT):
            async for event in stream:
                if isinstance(event, Message) and event.type == "message":
                    got.append(event)
                    if len(got) == 2:
                        break
        assert [(m.seq, m.data, m.payload["publisher"]) for m in got] == [
            (1, {"x": 1}, "alice"),
            (2, {"x": 2}, "alice"),
        ]
        assert client.user_id == "alice" and client.connection_id


async def test_refused_publish_raises_the_error_code(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        with pytest.raises(RequestError) as caught:
            await client.publish("user:bob", "hi")
        assert caught.value.code is ErrorCode.FORBIDDEN
        assert caught.value.channel == "user:bob"


async def test_refused_subscribe_raises_and_keeps_the_allowed_channels(
    server: RunningServer,
) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        with pytest.raises(RequestError) as caught:
            await client.subscribe("news", "user:bob")
        assert caught.value.code is ErrorCode.FORBIDDEN and caught.value.channel == "user:bob"
        assert "news" in client.channels and "user:bob" not in client.channels


async def test_unknown_type_is_an_error_and_the_connection_stays(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        with pytest.raises(RequestError) as caught:
            await client.request("no.such_type", {})
        assert caught.value.code is ErrorCode.UNKNOWN_TYPE
        assert await client.ping() > 0


async def test_request_before_connect_is_not_connected(server: RunningServer) -> None:
    client = Client(server.url, token=server.token("alice"))
    with pytest.raises(NotConnected):
        await client.request("ping")
    await client.close()


async def test_history_pages_through_a_channel(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        for n in range(1, 6):
            await client.publish("log", n)
        page = await client.history("log", from_sequence=2, limit=2)
        assert page.seq == 5 and page.epoch
        assert [(m.seq, m.data) for m in page.events] == [(2, 2), (3, 3)]


async def test_presence_and_status(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        await client.subscribe("room")
        assert await client.presence("room") == [PresenceMember("alice", "online", 1)]
        await client.set_status("away")
        assert await client.presence("room") == [PresenceMember("alice", "away", 1)]


async def test_channel_handlers_get_their_channel_only(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        got: list[Event] = []
        done = asyncio.Event()

        async def on_news(event: Event) -> None:
            got.append(event)
            if isinstance(event, Message) and event.seq == 2:
                done.set()

        client.on("news", on_news)
        await client.subscribe("news", "other")
        await client.publish("other", "x")
        await client.publish("news", "a")
        await client.publish("news", "b")
        await asyncio.wait_for(done.wait(), TIMEOUT)
        assert all(isinstance(e, Message) and e.channel == "news" for e in got)
        assert [e.data for e in got if isinstance(e, Message) and e.seq] == ["a", "b"]


async def test_unsubscribed_channel_is_not_resumed_or_delivered(server: RunningServer) -> None:
    async with Client(server.url, token=server.token("alice")) as client:
        stream = client.events()
        await client.subscribe("a", "b")
        await client.unsubscribe("a")
        assert "a" not in client.channels
        await server.hub.publish("a", "lost")
        await server.hub.publish("b", "kept")
        async with asyncio.timeout(TIMEOUT):
            async for event in stream:
                if isinstance(event, Message) and event.seq is not None:
                    assert (event.channel, event.data) == ("b", "kept")
                    break


async def test_keep_last_value_namespace_paints_at_once(server: RunningServer) -> None:
    await server.hub.publish("metrics:cpu", 0.5)
    async with Client(server.url, token=server.token("alice")) as client:
        subscribed = await client.subscribe("metrics:cpu")
        last = subscribed["metrics:cpu"].last_value
        assert last is not None and (last.seq, last.data) == (1, 0.5)
