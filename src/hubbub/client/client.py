"""`Client`: the application's side of a Hubbub connection.

It connects, waits for `welcome`, resumes every channel with `since` after a
reconnect, drops repeats, fills gaps with `replay_request`, queues publishes
while offline, answers `auth.expiring` with a fresh token, and hands the
application typed events. The pure parts live beside it: `tracker.py`
(sequence rules), `channels.py` (which channels to resume), `requests.py`,
`offline.py`, `dispatch.py`; `wire.py` routes the frames of a connection and
`link.py` runs connection after connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiohttp
import msgspec

from hubbub.client.backoff import Backoff
from hubbub.client.connection import TokenSource
from hubbub.client.dispatch import EventStream, Handler
from hubbub.client.errors import ClientClosed, NotConnected, RequestError
from hubbub.client.events import History, PresenceMember, Subscription, message_from_dict
from hubbub.client.link import Link
from hubbub.client.wire import NotSent, seq_of
from hubbub.clock import Clock, SystemClock

_ENCODE = msgspec.json.Encoder()


class Client(Link):
    """An asyncio client of a Hubbub server's `/ws` endpoint (PROTOCOL.md sections 2-5).

    `url` is the WebSocket URL (`ws://host:port/ws`). `token` is a JWT, or a
    function (plain or async) called for a fresh token before every connection
    attempt and when the server says `auth.expiring`; it travels as `?token=`.

    Use it as `async with Client(url, token=...) as client:` or call
    `connect()` and `close()`. After the first connection succeeded the client
    reconnects by itself with exponential backoff and full jitter, except
    after `close()`, a close with 4003, or a close with 4001 when `token`
    cannot produce a new token.

    Every sequenced channel event reaches the application exactly once and in
    `seq` order, across reconnects, or the application is told what was lost
    (`SubscriptionReset`, `RecoveryFailed`).
    """

    def __init__(
        self,
        url: str,
        *,
        token: TokenSource = None,
        session: aiohttp.ClientSession | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        request_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        heartbeat: float | None = 20.0,
        offline_queue_size: int = 1000,
        event_buffer: int = 1000,
        max_held_events: int = 10_000,
        max_msg_size: int = 4 * 1024 * 1024,
        close_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            url,
            token=token,
            session=session,
            backoff=backoff or Backoff(),
            clock=clock or SystemClock(),
            request_timeout=request_timeout,
            connect_timeout=connect_timeout,
            heartbeat=heartbeat,
            offline_queue_size=offline_queue_size,
            event_buffer=event_buffer,
            max_held_events=max_held_events,
            max_msg_size=max_msg_size,
            close_timeout=close_timeout,
        )

    # -- state -------------------------------------------------------------------

    @property
    def user_id(self) -> str | None:
        """The user id the server welcomed this client as (None before `connect()`)."""
        return self._welcome.user_id if self._welcome else None

    @property
    def connection_id(self) -> str | None:
        """The server's id of the current (or last) connection."""
        return self._welcome.connection_id if self._welcome else None

    @property
    def connected(self) -> bool:
        """True while a connection is up and every channel has been resumed."""
        return self._ready.is_set()

    @property
    def closed(self) -> bool:
        """True once the client is closed for good."""
        return self._closed is not None

    @property
    def channels(self) -> list[str]:
        """The channels this client is subscribed to (its own and the server's)."""
        return self._book.to_resume()

    def position(self, channel: str) -> tuple[int, str] | None:
        """`(seq, epoch)` of the last event of `channel` delivered to the application."""
        tracker = self._book.trackers.get(channel)
        return tracker.position() if tracker is not None else None

    # -- life --------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection: returns once it is welcomed and resumed.

        Raises `ConnectFailed` (network, handshake, timeout), or
        `AuthenticationFailed` / `ForbiddenClose`; the client may then be
        connected again. Later losses are handled by reconnecting.
        """
        await self._start()

    async def close(self) -> None:
        """Close the connection (1000) and stop for good.

        Waiting requests and queued publishes fail with `ClientClosed`;
        streams of `events()` end after a final `Disconnected`.
        """
        await self._stop()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until a connection is up and resumed (`TimeoutError` past `timeout`)."""
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- events ------------------------------------------------------------------

    def events(self) -> EventStream:
        """A stream of every event from now on: `async for event in client.events()`.

        Events are `Message`, `Connected`, `Disconnected`, `SubscriptionReset`,
        `RecoveryFailed`, `SubscriptionError` and `ServerError`. Each stream
        gets every event; make it before `connect()` to see the first
        `Connected`. It ends after the client closes for good.
        """
        return self._dispatcher.stream()

    def on(self, channel: str | None, handler: Handler) -> Callable[[], None]:
        """Call `handler(event)` (plain or async) for each event of `channel`.

        With `channel=None` the handler gets every event. Handlers run in
        order, one at a time, outside the connection's reader, so they may
        await requests. Returns a function that removes the handler.
        """
        return self._dispatcher.on(channel, handler)

    # -- requests ----------------------------------------------------------------

    async def request(self, type: str, payload: Any = None, *, timeout: float | None = None) -> Any:
        """Send a frame of `type` and return the payload of its answer.

        Raises `RequestError` (with the server's `code`) when the answer is an
        `error`, `RequestTimeout` (a `TimeoutError`) after `timeout` seconds
        (default: the client's `request_timeout`), `NotConnected` while no
        connection is up, `ConnectionLost` if it ends before the answer.
        """
        self._check_open()
        ws = self._ws
        if ws is None:
            raise NotConnected(f"cannot send {type!r} while disconnected")
        answers = await self._ask(ws, type, payload, timeout=timeout)
        return answers[0].payload

    async def send(self, type: str, payload: Any = None) -> None:
        """Send a frame that has no answer (such as `chat.typing_start`).

        Raises `NotConnected` while no connection is up: such frames are about
        now, so they are not queued for later.
        """
        self._check_open()
        ws = self._ws
        if ws is None:
            raise NotConnected(f"cannot send {type!r} while disconnected")
        try:
            await self._send(ws, type, payload, None)
        except NotSent as exc:
            raise NotConnected(str(exc)) from None

    async def subscribe(
        self, *channels: str, timeout: float | None = None
    ) -> dict[str, Subscription]:
        """Subscribe `channels`; the client resumes them after every reconnect.

        Returns each channel's `Subscription` when connected; while
        disconnected the channels are remembered and subscribed on reconnect,
        and the result is empty. Raises `RequestError` (with `channel` set)
        when the server refuses one; the others stay subscribed.
        """
        names = list(dict.fromkeys(channels))
        self._check_open()
        if not names:
            return {}
        self._book.want(names)
        ws = self._ws
        if ws is None:
            return {}
        results = await self._subscribe_on(ws, names, timeout)
        failed = [r for r in results.values() if isinstance(r, RequestError)]
        for error in failed:
            if error.channel is not None:
                self._book.refused(error.channel)
        if failed:
            raise failed[0]
        return {c: r for c, r in results.items() if isinstance(r, Subscription)}

    async def unsubscribe(self, *channels: str, timeout: float | None = None) -> None:
        """Stop receiving `channels`; events of them still in flight are dropped."""
        names = list(dict.fromkeys(channels))
        self._check_open()
        if not names:
            return
        self._book.leave(names)
        if self._ws is not None:
            await self.request("unsubscribe", {"channels": names}, timeout=timeout)

    async def publish(self, channel: str, data: Any, *, timeout: float | None = None) -> int:
        """Publish `data` (anything JSON can carry) to `channel`; returns its `seq`.

        While disconnected the publish waits in the offline queue (bounded;
        `OfflineQueueFull` past it) and is sent, in order, once the client has
        reconnected and resumed its channels. `timeout` bounds the wait for
        the answer once sent. A publish sent on a connection that then dropped
        fails with `ConnectionLost`: it may or may not have been published.
        """
        self._check_open()
        raw = msgspec.Raw(_ENCODE.encode(data))
        ws = self._ws
        if ws is not None and self._ready.is_set():
            try:
                answers = await self._ask(
                    ws, "publish", {"channel": channel, "data": raw}, timeout=timeout
                )
            except NotSent:
                pass
            else:
                return seq_of(answers[0])
        return await self._offline.put(channel, raw).future

    async def history(
        self,
        channel: str,
        *,
        from_sequence: int | None = None,
        to_sequence: int | None = None,
        limit: int | None = None,
        timeout: float | None = None,
    ) -> History:
        """Events of `channel` from its history, oldest first (`history` request)."""
        payload: dict[str, Any] = {"channel": channel}
        if from_sequence is not None:
            payload["fromSequence"] = from_sequence
        if to_sequence is not None:
            payload["toSequence"] = to_sequence
        if limit is not None:
            payload["limit"] = limit
        body = await self.request("history", payload, timeout=timeout)
        events = [m for m in map(message_from_dict, body.get("events") or []) if m is not None]
        return History(
            channel=body.get("channel", channel),
            epoch=body.get("epoch", ""),
            seq=body.get("seq", 0),
            events=events,
        )

    async def presence(self, channel: str, *, timeout: float | None = None) -> list[PresenceMember]:
        """Who is present in `channel` (`presence.get`)."""
        body = await self.request("presence.get", {"channel": channel}, timeout=timeout)
        return [
            PresenceMember(
                user_id=str(m.get("userId", "")),
                status=str(m.get("status", "")),
                connections=int(m.get("connections", 0)),
            )
            for m in body.get("members") or []
            if isinstance(m, dict)
        ]

    async def set_status(self, status: str, *, timeout: float | None = None) -> None:
        """Set this user's presence status, e.g. `online`, `away`, `busy` (`presence.update`)."""
        await self.request("presence.update", {"status": status}, timeout=timeout)

    async def ping(self, *, timeout: float | None = None) -> int:
        """Round-trip a `ping`; returns the server time in milliseconds."""
        body = await self.request("ping", timeout=timeout)
        return int(body.get("serverTime", 0)) if isinstance(body, dict) else 0

    # -- helpers -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed is not None:
            raise ClientClosed("the client is closed", close_code=self._closed.close_code)
