"""Group commit: writes that arrive while one transaction runs share the next one.

(The same batching serves reads asked many times at once, one query for a batch.)

A durable write costs a transaction, and on SQLite transactions run one at a time.
`GroupCommit` queues each write with a future, and a single writer drains the queue
in batches of up to `max_batch`: one transaction stores a whole batch, then every
future resolves. A lone write waits for nothing (the writer starts at once); under
load, batches grow by themselves, and throughput grows with them, while each caller
still hears back only after its write is durable (DESIGN.md principle 4).

The batch function decides each item's outcome with `Batch.done` or `Batch.fail`;
an item it leaves undecided, or a batch that raises, fails with that error.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Pending(Generic[T, R]):
    """One queued write and the future of its result."""

    __slots__ = ("item", "future")

    def __init__(self, item: T, future: asyncio.Future[R]) -> None:
        self.item = item
        self.future = future

    def done(self, result: R) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class GroupCommit(Generic[T, R]):
    """Runs `write(batch)` for queued items, one batch at a time."""

    def __init__(
        self,
        write: Callable[[list[Pending[T, R]]], Awaitable[None]],
        *,
        max_batch: int = 256,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Future[None]] = asyncio.ensure_future,
    ) -> None:
        """`spawn` starts the writer task (`Hub.spawn`, so the hub waits for it on stop)."""
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._write = write
        self._spawn = spawn
        self._max_batch = max_batch
        self._queue: deque[Pending[T, R]] = deque()
        self._writer: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once the batch holding it is committed."""
        pending: Pending[T, R] = Pending(item, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            self._writer = self._spawn(self._drain())
        return await pending.future

    async def _drain(self) -> None:
        while self._queue:
            count = min(len(self._queue), self._max_batch)
            batch = [self._queue.popleft() for _ in range(count)]
            try:
                await self._write(batch)
            except BaseException as exc:
                for pending in batch:
                    pending.fail(exc)
                if isinstance(exc, asyncio.CancelledError):
                    self._fail_queued(exc)
                    raise
            else:
                for pending in batch:
                    pending.fail(RuntimeError("the batch left this write undecided"))

    def _fail_queued(self, error: BaseException) -> None:
        while self._queue:
            self._queue.popleft().fail(error)
