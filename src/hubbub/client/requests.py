"""Requests waiting for their answers, matched by `id` / `re` (PROTOCOL.md section 2)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from hubbub.client.errors import ClientError, RequestError, RequestTimeout
from hubbub.clock import Clock, TimerHandle
from hubbub.protocol.codec import Envelope


def error_of(env: Envelope) -> RequestError:
    """The `RequestError` an `error` frame stands for."""
    payload: Any = env.payload if isinstance(env.payload, dict) else {}
    code = payload.get("code")
    message = payload.get("message")
    channel = payload.get("channel")
    return RequestError(
        code if isinstance(code, str) else "internal",
        message if isinstance(message, str) else "",
        channel=channel if isinstance(channel, str) else None,
    )


class _Pending:
    __slots__ = ("future", "expected", "answers", "timer", "type")

    def __init__(self, future: asyncio.Future[list[Envelope]], expected: int, type: str) -> None:
        self.future = future
        self.expected = expected
        self.answers: list[Envelope] = []
        self.timer: TimerHandle | None = None
        self.type = type


class PendingRequests:
    """Requests sent and not yet answered.

    A request expects `expected` answers (a `subscribe` of three channels gets
    three: `subscribed` or `error {channel}` each). Its future resolves with the
    answers, in the order they came. With one answer expected, an `error`
    answer fails the future with `RequestError`; with several, only an `error`
    without a `channel` does (it answers the whole request), and per-channel
    errors are among the answers. A request that gets no answer in time fails
    with `RequestTimeout`.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self._waiting: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._waiting

    def new_id(self) -> str:
        """A fresh request id, unique for the life of the client."""
        return str(next(self._ids))

    def open(
        self, type: str, *, expected: int = 1, timeout: float | None = None
    ) -> tuple[str, asyncio.Future[list[Envelope]]]:
        """Register a request of `type`; returns its id and the future of its answers."""
        request_id = self.new_id()
        future: asyncio.Future[list[Envelope]] = asyncio.get_running_loop().create_future()
        pending = _Pending(future, max(1, expected), type)
        self._waiting[request_id] = pending
        if timeout is not None:
            pending.timer = self._clock.call_later(
                timeout, lambda: self._time_out(request_id, timeout)
            )
        future.add_done_callback(lambda _: self.discard(request_id))
        return request_id, future

    def answer(self, env: Envelope) -> bool:
        """Give an answer (a frame with `re`) to its request; False when none waits for it."""
        if env.re is None:
            return False
        pending = self._waiting.get(env.re)
        if pending is None:
            return False
        if pending.future.done():
            self.discard(env.re)
            return True
        if env.type == "error":
            channel = env.payload.get("channel") if isinstance(env.payload, dict) else None
            if pending.expected == 1 or channel is None:
                self.discard(env.re)
                pending.future.set_exception(error_of(env))
                return True
        pending.answers.append(env)
        if len(pending.answers) >= pending.expected:
            self.discard(env.re)
            pending.future.set_result(pending.answers)
        return True

    def discard(self, request_id: str) -> None:
        """Stop waiting for `request_id` (its answer, if it comes, is ignored)."""
        pending = self._waiting.pop(request_id, None)
        if pending is not None and pending.timer is not None:
            pending.timer.cancel()

    def fail_all(self, error: Callable[[], ClientError]) -> None:
        """Fail every waiting request with a fresh `error()` (the connection ended)."""
        waiting = list(self._waiting.values())
        self._waiting.clear()
        for pending in waiting:
            if pending.timer is not None:
                pending.timer.cancel()
            if not pending.future.done():
                pending.future.set_exception(error())

    def _time_out(self, request_id: str, timeout: float) -> None:
        pending = self._waiting.pop(request_id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                RequestTimeout(f"no answer to {pending.type!r} within {timeout:g} s")
            )
