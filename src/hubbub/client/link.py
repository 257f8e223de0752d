"""Running a client's connections: open one, resume the channels, flush the offline
queue, serve it until it ends, then reconnect with backoff, until told to stop.

One supervisor task owns this life. While a connection is up, its reader task
turns frames into deliveries (`wire.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

import aiohttp

from hubbub.client.connection import (
    AttemptFailed,
    Socket,
    Welcome,
    fatal_close,
    open_socket,
    url_with_token,
)
from hubbub.client.errors import (
    ClientClosed,
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestError,
)
from hubbub.client.events import Connected, Disconnected, SubscriptionError
from hubbub.client.wire import RECOVER_CLOSE, Wire, settle_publish
from hubbub.protocol.codes import CloseCode, ErrorCode

log = logging.getLogger("hubbub.client")

# Seconds a connection must last before the next reconnect starts from the shortest delay.
STABLE_AFTER = 5.0
# Refusals that will not change by asking again; others are retried on the next reconnect.
_FINAL_REFUSALS = {ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.BAD_REQUEST}


class Link(Wire):
    """Connections of one client, one after another; see the module docstring."""

    # -- start and stop -----------------------------------------------------------

    async def _start(self) -> None:
        if self._closed is not None:
            raise ClientClosed("the client is closed", close_code=self._closed.close_code)
        if self._supervisor is not None:
            await self._join()
            return
        if self._http is None:
            self._http = aiohttp.ClientSession()
        self._dispatcher.start()
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(first))
        try:
            await asyncio.shield(first)
        except asyncio.CancelledError:
            supervisor = self._supervisor
            if supervisor is not None:
                supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await supervisor
            raise

    async def _join(self) -> None:
        """A second `connect()`: wait for the one under way."""
        supervisor = self._supervisor
        ready = asyncio.ensure_future(self._ready.wait())
        try:
            await asyncio.wait(
                {ready, *([supervisor] if supervisor else [])},
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            ready.cancel()
        if not self._ready.is_set():
            raise self._closed or ConnectFailed("the connection under way failed")

    async def _stop(self) -> None:
        self._closing = True
        supervisor = self._supervisor
        in_handler = self._dispatcher.task is asyncio.current_task()
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
            if in_handler:
                # The supervisor's last event waits for this handler to return.
                return
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        await self._shut_down(ClientClosed("closed by the client"))
        if not in_handler:
            await self._dispatcher.wait_closed(self._close_timeout)

    async def _shut_down(self, final: ClientClosed) -> None:
        if self._closed is not None:
            return
        self._closed = final
        self._ready.clear()
        self._requests.fail_all(partial(ClientClosed, final.message, close_code=final.close_code))
        self._offline.fail_all(partial(ClientClosed, final.message, close_code=final.close_code))
        for task in list(self._tasks):
            task.cancel()
        self._dispatcher.end()
        await self._release_http()

    def _connection_ended(self) -> ClientError:
        """The error of requests cut off by the end of a connection."""
        if self._closing:
            return ClientClosed("closed by the client")
        return ConnectionLost("the connection was lost")

    async def _release_http(self) -> None:
        if self._owns_http and self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def _first_failed(self, first: asyncio.Future[None], error: ClientError | None) -> None:
        """The first connection failed: undo `_start` so that `connect()` may be tried again."""
        self._supervisor = None
        await self._dispatcher.pause()
        await self._release_http()
        if first.done():
            return
        if error is None:
            first.cancel()
        else:
            first.set_exception(error)

    # -- the supervisor -----------------------------------------------------------

    async def _supervise(self, first: asyncio.Future[None]) -> None:
        final: ClientClosed | None = None
        try:
            final = await self._connections(first)
        except asyncio.CancelledError:
            if not first.done() and not self._closing:
                await self._first_failed(first, None)
                raise
            if not first.done():
                first.set_exception(ClientClosed("closed by the client"))
            if self._connected_once:
                last = Disconnected(int(CloseCode.NORMAL), "closed by the client", False)
                await self._dispatcher.put_last(last, self._close_timeout)
            final = ClientClosed("closed by the client")
            raise
        except Exception:
            log.exception("the client's supervisor failed")
            final = ClientClosed("internal error of the client")
            if not first.done():
                first.set_exception(final)
        finally:
            if final is not None:
                await self._shut_down(final)

    async def _connections(self, first: asyncio.Future[None]) -> ClientClosed | None:
        """Connect, serve, reconnect; returns the reason to stop (None: `connect()` failed)."""
        assert self._http is not None
        failures = 0
        while True:
            try:
                token = await self._tokens.for_attempt()
                ws, welcome = await open_socket(
                    self._http,
                    url_with_token(self._url, token),
                    tokens=self._tokens,
                    timeout=self._connect_timeout,
                    heartbeat=self._heartbeat,
                    max_msg_size=self._max_msg_size,
                )
            except AttemptFailed as exc:
                if not first.done():
                    error = exc.fatal or ConnectFailed(exc.message, close_code=exc.close_code)
                    await self._first_failed(first, error)
                    return None
                if exc.fatal is not None:
                    last = Disconnected(exc.close_code, exc.message, False)
                    await self._dispatcher.put_last(last, self._close_timeout)
                    return exc.fatal
                log.info("reconnect attempt failed: %s", exc.message)
                await self._sleep(self._backoff.compute(failures))
                failures += 1
                continue
            self._tokens.accepted()
            opened = self._clock.monotonic()
            code, reason, was_ready = await self._serve(ws, welcome, first)
            fatal = fatal_close(code, reason, self._tokens)
            if not first.done():
                lost = ConnectFailed(f"connection lost: {code} {reason}", close_code=code)
                await self._first_failed(first, fatal or lost)
                return None
            if was_ready and self._clock.monotonic() - opened >= STABLE_AFTER:
                # Only a connection that lasted resets the backoff, so a server that
                # drops every new connection is not hammered.
                failures = 0
            gone = Disconnected(code, reason, reconnecting=fatal is None)
            if fatal is None:
                await self._dispatcher.put(gone)
            else:
                await self._dispatcher.put_last(gone, self._close_timeout)
            if fatal is not None:
                return fatal
            await self._sleep(self._backoff.compute(failures))
            failures += 1

    async def _sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not done.done():
                done.set_result(None)

        handle = self._clock.call_later(delay, wake)
        try:
            await done
        finally:
            handle.cancel()

    # -- one connection -----------------------------------------------------------

    async def _serve(
        self, ws: Socket, welcome: Welcome, first: asyncio.Future[None]
    ) -> tuple[int | None, str, bool]:
        """Run one welcomed connection until it ends: (close code, reason, was it ready)."""
        self._ws = ws
        self._welcome = welcome
        await self._dispatcher.put(
            Connected(welcome.user_id, welcome.connection_id, reconnect=self._connected_once)
        )
        reader = asyncio.get_running_loop().create_task(self._read(ws))
        ready = False
        try:
            try:
                await self._resume(ws)
            except ClientError as exc:
                log.warning("resuming the channels failed (%s); reconnecting", exc)
                await ws.close(code=RECOVER_CLOSE, message=b"resume failed")
            else:
                ready = True
                self._connected_once = True
                self._ready.set()
                if not first.done():
                    first.set_result(None)
            code, reason = await reader
        finally:
            self._ready.clear()
            self._ws = None
            if not reader.done():
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
            await ws.close()
            self._requests.fail_all(self._connection_ended)
            for _, timer in self._replays.values():
                timer.cancel()
            self._replays.clear()
            self._book.connection_lost()
        return code, reason, ready

    async def _resume(self, ws: Socket) -> None:
        """Subscribe every channel again, with `since`, then send the offline queue."""
        channels = self._book.to_resume()
        if channels:
            results = await self._subscribe_on(ws, channels, None)
            for channel, result in results.items():
                if isinstance(result, RequestError):
                    if result.code in _FINAL_REFUSALS:
                        self._book.refused(channel)
                    await self._dispatcher.put(
                        SubscriptionError(channel, result.raw_code, result.message)
                    )
        while (item := self._offline.pop()) is not None:
            request_id, future = self._requests.open("publish", timeout=self._request_timeout)
            payload = {"channel": item.channel, "data": item.data}
            try:
                await self._send(ws, "publish", payload, request_id)
            except ConnectionLost:
                self._requests.discard(request_id)
                self._offline.push_back(item)
                raise
            future.add_done_callback(partial(settle_publish, item.future))

    async def _read(self, ws: Socket) -> tuple[int | None, str]:
        reason = ""
        try:
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    try:
                        await self._on_frame(msg.data)
                    except ClientError as exc:
                        log.debug("while handling a frame: %s", exc)
                    except Exception:
                        log.exception("the client failed to handle a frame")
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    reason = msg.extra or ""
                elif msg.type is not aiohttp.WSMsgType.BINARY:
                    break
        finally:
            self._ready.clear()
            self._requests.fail_all(self._connection_ended)
        return ws.close_code, reason
