"""The Python client's life: before connect, during connect, closing from anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hubbub.client import (
    Client,
    ClientClosed,
    Connected,
    Disconnected,
    Event,
    Message,
)
from hubbub.testing import RunningServer

TIMEOUT = 5.0


class Silent:
    """A TCP server that accepts connections and never answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted = asyncio.Event()


@pytest.fixture
async def silent_server() -> AsyncIterator[Silent]:
    held: list[asyncio.StreamWriter] = []
    silent = Silent("")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        silent.accepted.set()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    silent.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
    yield silent
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_subscribe_and_publish_before_connect_happen_on_connect(
    server: RunningServer,
) -> None:
    client = Client(server.url, token=server.token("alice"))
    stream = client.events()
    assert await client.subscribe("early") == {}
    published = asyncio.create_task(client.publish("early", "queued"))
    await client.connect()
    try:
        assert await asyncio.wait_for(published, TIMEOUT) == 1
        async with asyncio.timeout(TIMEOUT):
            async for event in stream:
                if isinstance(event, Message) and event.seq == 1:
                    assert (event.channel, event.data) == ("early", "queued")
                    break
    finally:
        await client.close()


async def test_close_during_connect_ends_connect_with_client_closed(
    silent_server: Silent,
) -> None:
    client = Client(silent_server.url, token="t", connect_timeout=30)
    connecting = asyncio.create_task(client.connect())
    await asyncio.wait_for(silent_server.accepted.wait(), TIMEOUT)
    await client.close()
    with pytest.raises(ClientClosed):
        await asyncio.wait_for(connecting, TIMEOUT)


async def test_cancelled_connect_leaves_the_client_usable(silent_server: Silent) -> None:
    client = Client(silent_server.url, token="t", connect_timeout=30)
    connecting = asyncio.create_task(client.connect())
    await asyncio.wait_for(silent_server.accepted.wait(), TIMEOUT)
    connecting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await connecting
    assert not client.closed and not client.connected
    await client.close()
    assert client.closed


async def test_a_handler_may_close_the_client(server: RunningServer) -> None:
    client = Client(server.url, token=server.token("alice"))
    stream = client.events()

    async def stop(event: Event) -> None:
        if isinstance(event, Message) and event.type == "message":
            await client.close()

    client.on("stop", stop)
    await client.connect()
    await client.subscribe("stop")
    await client.publish("stop", "now")
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        events = [e async for e in stream]
    assert isinstance(events[0], Connected)
    assert isinstance(events[-1], Disconnected) and not events[-1].reconnecting
    assert client.closed


async def test_two_connects_share_one_connection(server: RunningServer) -> None:
    client = Client(server.url, token=server.token("alice"))
    try:
        await asyncio.gather(client.connect(), client.connect())
        assert client.connected
        assert len(server.hub.users["alice"]) == 1
    finally:
        await client.close()


async def test_connect_after_close_is_refused(server: RunningServer) -> None:
    client = Client(server.url, token=server.token("alice"))
    await client.connect()
    await client.close()
    with pytest.raises(ClientClosed):
        await client.connect()
