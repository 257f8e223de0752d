"""Getting events to the application: `Client.events()` streams and `Client.on` handlers.

Events leave the connection's reader through one bounded queue, so the reader
never runs application code. A dispatcher task takes them in order, calls the
handlers (awaiting the async ones) and puts each into every open stream. All
queues are bounded: an application that stops reading slows the reader, the
server's send queue fills, and the server closes the connection with 4008;
the client then reconnects and recovers with `since`. Nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable
from types import TracebackType

from hubbub.client.events import Event, event_channel

log = logging.getLogger("hubbub.client")

Handler = Callable[[Event], Awaitable[None] | None]


class EventStream:
    """An async iterator of the client's events, in order, from its creation on.

    Make it before `connect()` to see the first `Connected`. It ends after the
    final `Disconnected` (the client closed for good) or after `aclose()`.
    Close a stream you stop reading: an unread stream holds the others back
    once its buffer is full.
    """

    def __init__(self, maxsize: int, detach: Callable[[EventStream], None]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self._detach = detach
        self._finished = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._finished and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def get(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most `timeout` seconds (`TimeoutError` past it)."""
        async with asyncio.timeout(timeout):
            return await self.__anext__()

    async def aclose(self) -> None:
        """Stop receiving events; what was buffered is dropped."""
        self._detach(self)
        self._end()
        while not self._queue.empty():
            self._queue.get_nowait()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _put(self, event: Event) -> None:
        if not self._finished:
            await self._queue.put(event)

    def _end(self) -> None:
        if self._finished:
            return
        self._finished = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


class Dispatcher:
    """Hands events, in order, to handlers and streams (see the module docstring)."""

    def __init__(self, *, buffer: int = 1000) -> None:
        self._buffer = buffer
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(buffer)
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        self._handlers: dict[str | None, list[Handler]] = {}
        self._task: asyncio.Task[None] | None = None
        self._ended = False

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The dispatcher task while it runs."""
        return self._task

    def stream(self) -> EventStream:
        """A new stream of every event from now on."""
        stream = EventStream(self._buffer, self._streams.discard)
        if self._ended:
            stream._end()
        else:
            self._streams.add(stream)
        return stream

    def on(self, channel: str | None, handler: Handler) -> Callable[[], None]:
        """Call `handler` with each event of `channel` (every event when None).

        Returns a function that removes the handler again.
        """
        self._handlers.setdefault(channel, []).append(handler)

        def remove() -> None:
            handlers = self._handlers.get(channel, [])
            if handler in handlers:
                handlers.remove(handler)

        return remove

    def start(self) -> None:
        """Start the dispatcher task (again, after `pause`)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def put(self, event: Event) -> None:
        """Queue `event` for delivery; waits while the queue is full."""
        if not self._ended:
            await self._queue.put(event)

    async def put_last(self, event: Event, timeout: float) -> None:
        """Queue the final `event`, waiting at most `timeout` s for room (else it is lost)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.put(event), timeout)

    async def pause(self) -> None:
        """Stop the task, keeping streams and queued events (a first connect failed)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def end(self) -> None:
        """No more events will come: streams end once what is queued is delivered."""
        if self._ended:
            return
        self._ended = True
        task = self._task
        if task is None or task.done():
            self._end_streams()
            return
        # When the queue is full, the task notices the end once it has drained it.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def wait_closed(self, timeout: float) -> None:
        """Wait, at most `timeout` s, for the queued events to be delivered after `end()`."""
        task = self._task
        if task is None or task.done() or task is asyncio.current_task():
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            await self.pause()
            self._end_streams()

    def _end_streams(self) -> None:
        for stream in list(self._streams):
            stream._end()
        self._streams.clear()

    async def _run(self) -> None:
        while not (self._ended and self._queue.empty()):
            event = await self._queue.get()
            if event is None:
                break
            await self._call_handlers(event)
            for stream in list(self._streams):
                await stream._put(event)
        self._end_streams()

    async def _call_handlers(self, event: Event) -> None:
        channel = event_channel(event)
        handlers = [*self._handlers.get(None, ())]
        if channel is not None:
            handlers += self._handlers.get(channel, ())
        for handler in handlers:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("event handler %r failed", handler)
