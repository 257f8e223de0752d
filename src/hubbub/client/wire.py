"""What one Hubbub connection says and hears: frames out (requests, replays) and
frames in (answers, channel events), routed to the requests, the channel book
and the dispatcher. `Link` builds on it to run connection after connection.

Only the connection's reader task calls `_on_frame`, so the trackers and the
dispatcher see the frames in the order the server sent them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec

from hubbub.client.backoff import Backoff
from hubbub.client.channels import ChannelBook, parse_replay_complete, parse_subscribed
from hubbub.client.connection import Socket, Tokens, TokenSource, Welcome, decode_envelope
from hubbub.client.dispatch import Dispatcher
from hubbub.client.errors import ClientClosed, ConnectionLost, RequestError
from hubbub.client.events import Message, ServerError, Subscription, message_from_dict
from hubbub.client.offline import OfflineQueue
from hubbub.client.requests import PendingRequests, error_of
from hubbub.client.tracker import ReplayRequest, Step
from hubbub.clock import Clock, TimerHandle
from hubbub.protocol.codec import Envelope
from hubbub.protocol.codes import ErrorCode

log = logging.getLogger("hubbub.client")

# A close code of the private range: the client gives up this connection to recover on a new one.
RECOVER_CLOSE = 4000


class _Outbound(msgspec.Struct, omit_defaults=True):
    type: str
    id: str | None = None
    payload: Any = None


_ENCODER = msgspec.json.Encoder()


class NotSent(ConnectionLost):
    """The frame never left: the request may safely go another way (the offline queue)."""


class Wire:
    """The state of a client and the frames of its current connection."""

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource,
        session: aiohttp.ClientSession | None,
        backoff: Backoff,
        clock: Clock,
        request_timeout: float,
        connect_timeout: float,
        heartbeat: float | None,
        offline_queue_size: int,
        event_buffer: int,
        max_held_events: int,
        max_msg_size: int,
        close_timeout: float,
    ) -> None:
        self._url = url
        self._tokens = Tokens(token)
        self._http = session
        self._owns_http = session is None
        self._backoff = backoff
        self._clock = clock
        self._request_timeout = request_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat = heartbeat
        self._max_msg_size = max_msg_size
        self._close_timeout = close_timeout
        self._book = ChannelBook(max_held=max_held_events)
        self._requests = PendingRequests(clock)
        self._offline = OfflineQueue(offline_queue_size)
        self._dispatcher = Dispatcher(buffer=event_buffer)
        self._ws: Socket | None = None
        self._welcome: Welcome | None = None
        self._ready = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._closed: ClientClosed | None = None
        self._connected_once = False
        self._replays: dict[str, tuple[ReplayRequest, TimerHandle]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _on_frame(self, data: bytes) -> None:
        env = decode_envelope(data)
        if env is None:
            log.warning("ignoring a frame that is not an envelope")
            return
        kind = env.type
        if kind == "subscribed":
            await self._deliver(self._book.on_subscribed(env))
        elif kind == "unsubscribed" and isinstance(env.payload, dict):
            self._book.left([c for c in env.payload.get("channels") or [] if isinstance(c, str)])
        elif kind == "auth.expiring":
            self._spawn(self._refresh_token())
            return
        if env.re is not None and env.re in self._replays:
            await self._replay_answered(env)
            return
        if self._requests.answer(env) or env.re is not None or kind == "subscribed":
            return
        if kind == "error":
            error = error_of(env)
            await self._dispatcher.put(ServerError(error.raw_code, error.message, error.channel))
        elif env.channel is not None:
            await self._deliver(self._book.on_event(env))
        elif kind != "welcome":
            await self._dispatcher.put(Message(None, env.seq, kind, env.payload, env.ts))

    async def _deliver(self, step: Step) -> None:
        for event in step.deliver:
            await self._dispatcher.put(event)
        if step.replay is not None:
            try:
                await self._ask_replay(step.replay)
            except NotSent:
                pass  # the connection is ending; the resume with `since` recovers the gap

    # -- replays ------------------------------------------------------------------

    async def _ask_replay(self, replay: ReplayRequest) -> None:
        ws = self._ws
        if ws is None:
            return
        request_id = self._requests.new_id()
        timer = self._clock.call_later(
            self._request_timeout, lambda: self._replay_timed_out(request_id)
        )
        self._replays[request_id] = (replay, timer)
        payload = {
            "channel": replay.channel,
            "fromSequence": replay.from_seq,
            "toSequence": replay.to_seq,
        }
        await self._send(ws, "replay_request", payload, request_id)

    async def _replay_answered(self, env: Envelope) -> None:
        assert env.re is not None
        replay, timer = self._replays.pop(env.re)
        timer.cancel()
        complete = False
        if env.type == "replay_complete":
            body = parse_replay_complete(env.payload)
            complete = body is not None and body.complete
        else:
            log.warning("replay of %s refused: %s", replay.channel, error_of(env))
        step = self._book.on_replay_complete(
            replay.channel, replay.from_seq, replay.to_seq, complete
        )
        await self._deliver(step)

    def _replay_timed_out(self, request_id: str) -> None:
        # A replay that never ends would hold the channel back for good; a new
        # connection resumes it with `since` instead.
        ws = self._ws
        if request_id in self._replays and ws is not None:
            log.warning("no replay_complete in time; reconnecting to recover")
            self._spawn(ws.close(code=RECOVER_CLOSE, message=b"replay timeout"))

    # -- sending ------------------------------------------------------------------

    async def _send(self, ws: Socket, type: str, payload: Any, request_id: str | None) -> None:
        frame = _ENCODER.encode(_Outbound(type, request_id, payload))
        try:
            await ws.send_str(frame.decode())
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise NotSent(f"cannot send {type!r}: the connection is closed") from exc

    async def _ask(
        self, ws: Socket, type: str, payload: Any, *, timeout: float | None, expected: int = 1
    ) -> list[Envelope]:
        """Send a request and wait for its `expected` answers."""
        limit = self._request_timeout if timeout is None else timeout
        request_id, future = self._requests.open(type, expected=expected, timeout=limit)
        try:
            await self._send(ws, type, payload, request_id)
        except NotSent:
            self._requests.discard(request_id)
            raise
        return await future

    async def _subscribe_on(
        self, ws: Socket, channels: list[str], timeout: float | None
    ) -> dict[str, Subscription | RequestError]:
        limit = self._request_timeout if timeout is None else timeout
        request_id, future = self._requests.open("subscribe", expected=len(channels), timeout=limit)
        since = self._book.since(channels, request_id)
        payload: dict[str, Any] = {"channels": channels}
        if since:
            payload["since"] = since
        try:
            await self._send(ws, "subscribe", payload, request_id)
            answers = await future
        finally:
            self._requests.discard(request_id)
            self._book.forget_request(request_id)
        return subscribe_results(answers)

    async def _refresh_token(self) -> None:
        if not self._tokens.refreshable or self._ws is None:
            return
        try:
            token = await self._tokens.fresh()
            ws = self._ws
            if token is None or ws is None:
                return
            await self._ask(ws, "auth.refresh", {"token": token}, timeout=None)
        except Exception as exc:
            log.warning("token refresh failed: %r", exc)
            return
        self._tokens.current = token

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def subscribe_results(answers: list[Envelope]) -> dict[str, Subscription | RequestError]:
    """The answers to one `subscribe`, by channel."""
    results: dict[str, Subscription | RequestError] = {}
    for env in answers:
        if env.type == "error":
            error = error_of(env)
            if error.channel is not None:
                results[error.channel] = error
            continue
        body = parse_subscribed(env.payload)
        if body is not None:
            results[body.channel] = Subscription(
                channel=body.channel,
                seq=body.seq,
                epoch=body.epoch,
                recovered=body.recovered,
                last_value=message_from_dict(body.last_value),
            )
    return results


def seq_of(answer: Envelope) -> int:
    """The `seq` of a `published` answer."""
    seq = answer.payload.get("seq") if isinstance(answer.payload, dict) else None
    if not isinstance(seq, int):
        raise RequestError(ErrorCode.INTERNAL, "published without a seq")
    return seq


def settle_publish(target: asyncio.Future[int], answer: asyncio.Future[list[Envelope]]) -> None:
    """Hand the outcome of a flushed publish to the caller still waiting for it."""
    error = None if answer.cancelled() else answer.exception()
    if target.done():
        return
    if answer.cancelled():
        target.cancel()
    elif error is not None:
        target.set_exception(error)
    else:
        try:
            target.set_result(seq_of(answer.result()[0]))
        except RequestError as exc:
            target.set_exception(exc)
