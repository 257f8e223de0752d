from __future__ import annotations

import asyncio

from hubbub.client import Connected, Event, Message
from hubbub.client.dispatch import Dispatcher


def msg(channel: str, seq: int) -> Message:
    return Message(channel, seq, "message", {"data": seq})


async def finish(dispatcher: Dispatcher, timeout: float) -> None:
    dispatcher.end()
    await dispatcher.wait_closed(timeout)


async def test_every_stream_gets_every_event_in_order() -> None:
    dispatcher = Dispatcher(buffer=10)
    one, two = dispatcher.stream(), dispatcher.stream()
    dispatcher.start()
    for n in range(3):
        await dispatcher.put(msg("a", n))
    await finish(dispatcher, 1.0)
    assert [e async for e in one] == [msg("a", n) for n in range(3)]
    assert [e async for e in two] == [msg("a", n) for n in range(3)]


async def test_handlers_get_only_their_channel_and_may_be_async() -> None:
    dispatcher = Dispatcher(buffer=10)
    got_a: list[Event] = []
    got_all: list[Event] = []

    async def on_all(event: Event) -> None:
        got_all.append(event)

    dispatcher.on("a", got_a.append)
    dispatcher.on(None, on_all)
    dispatcher.start()
    connected = Connected("alice", "c1", False)
    for event in (connected, msg("a", 1), msg("b", 1)):
        await dispatcher.put(event)
    await finish(dispatcher, 1.0)
    assert got_a == [msg("a", 1)]
    assert got_all == [connected, msg("a", 1), msg("b", 1)]


async def test_a_failing_handler_does_not_stop_delivery() -> None:
    dispatcher = Dispatcher(buffer=10)
    stream = dispatcher.stream()

    def broken(event: Event) -> None:
        raise RuntimeError("app bug")

    dispatcher.on("a", broken)
    dispatcher.start()
    await dispatcher.put(msg("a", 1))
    assert await stream.get(timeout=1.0) == msg("a", 1)
    await finish(dispatcher, 1.0)


async def test_removed_handler_is_not_called() -> None:
    dispatcher = Dispatcher(buffer=10)
    got: list[Event] = []
    remove = dispatcher.on("a", got.append)
    remove()
    dispatcher.start()
    await dispatcher.put(msg("a", 1))
    await finish(dispatcher, 1.0)
    assert got == []


async def test_a_closed_stream_no_longer_holds_the_others_back() -> None:
    dispatcher = Dispatcher(buffer=1)
    idle, active = dispatcher.stream(), dispatcher.stream()
    dispatcher.start()
    await dispatcher.put(msg("a", 1))
    assert await active.get(timeout=1.0) == msg("a", 1)
    await idle.aclose()
    for n in (2, 3, 4):
        await dispatcher.put(msg("a", n))
        assert await active.get(timeout=1.0) == msg("a", n)
    await finish(dispatcher, 1.0)


async def test_a_stream_made_after_close_is_already_over() -> None:
    dispatcher = Dispatcher(buffer=1)
    dispatcher.start()
    await finish(dispatcher, 1.0)
    assert [e async for e in dispatcher.stream()] == []


async def test_close_gives_up_on_a_stream_nobody_reads() -> None:
    dispatcher = Dispatcher(buffer=1)
    stream = dispatcher.stream()
    dispatcher.start()
    for n in range(3):
        await dispatcher.put(msg("a", n))
    await asyncio.wait_for(finish(dispatcher, 0.05), 2.0)
    assert dispatcher.task is None or dispatcher.task.done()
    assert await stream.get(timeout=1.0) == msg("a", 0)


async def test_the_last_event_is_dropped_rather_than_waiting_forever() -> None:
    dispatcher = Dispatcher(buffer=1)
    await dispatcher.put(msg("a", 1))  # not started: the queue stays full
    await asyncio.wait_for(dispatcher.put_last(msg("a", 2), timeout=0.05), 2.0)


async def test_streams_end_once_the_queued_events_are_read() -> None:
    dispatcher = Dispatcher(buffer=5)
    stream = dispatcher.stream()
    dispatcher.start()
    await dispatcher.put(msg("a", 1))
    dispatcher.end()
    assert [e async for e in stream] == [msg("a", 1)]
