"""WebSocket connections after the handshake: RFC 6455 framing straight on the asyncio
transport (see docs/decisions/transport.md).

aiohttp answers HTTP and routes the upgrade request; once the request is a valid
WebSocket upgrade, `detach` takes the socket away from aiohttp: this module's protocol
object becomes the transport's protocol, writes the `101` answer, and from then on reads
frames and hands each message to its handler without a queue, a message object or a
task switch. aiohttp's request and connection objects are let go, so an idle connection
keeps only this one object, its session and what the kernel holds.

Messages of one connection are handled in order. A handler runs at once, inside the
read callback, with the connection's own task as the current task (so `asyncio.timeout`
and friends work); if it has to wait, that task takes it over and the messages behind
it queue until it is done, as Python 3.12's eager tasks do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections import deque
from collections.abc import Coroutine, Generator, Mapping
from typing import Any

from aiohttp import web

from hubbub.protocol.codec import close_frame, ws_control_frame
from hubbub.protocol.codes import CloseCode

log = logging.getLogger("hubbub")

CLOSE_TIMEOUT = 2.0
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_INBOX_PAUSE = 64  # messages queued behind a waiting handler before reading pauses
_PROTOCOL_ERROR = 1002
_INVALID_DATA = 1007
# Python's own eager tasks (3.12) make the new task current the same way.
_enter_task: Any = asyncio.tasks._enter_task
_leave_task: Any = asyncio.tasks._leave_task


class UpgradeError(Exception):
    """The request is not a WebSocket upgrade this server accepts."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def accept_value(key: str) -> str:
    """`Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 section 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def upgrade_answer(
    headers: Mapping[str, str], protocols: tuple[str, ...] = ()
) -> tuple[bytes, str]:
    """Check an upgrade request; returns the `101` answer and the chosen subprotocol
    ("" when none). Raises `UpgradeError` with the HTTP status to answer otherwise."""
    if "websocket" not in headers.get("Upgrade", "").lower():
        raise UpgradeError(400, "expected a WebSocket upgrade (Upgrade: websocket)")
    tokens = {t.strip() for t in headers.get("Connection", "").lower().split(",")}
    if "upgrade" not in tokens:
        raise UpgradeError(400, "expected Connection: Upgrade")
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        raise UpgradeError(426, "unsupported WebSocket version", {"Sec-WebSocket-Version": "13"})
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        valid = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise UpgradeError(400, "invalid Sec-WebSocket-Key")
    chosen = ""
    for offered in headers.get("Sec-WebSocket-Protocol", "").split(","):
        if offered.strip() in protocols:
            chosen = offered.strip()
            break
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Accept: {accept_value(key)}",
    ]
    if chosen:
        lines.append(f"Sec-WebSocket-Protocol: {chosen}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), chosen


def _unmask_int(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


try:  # aiohttp's compiled masking loop, where it was built (twice as fast on small frames)
    from aiohttp._websocket.mask import (  # type: ignore[import-not-found]
        _websocket_mask_cython as _mask_in_place,
    )
except ImportError:  # pragma: no cover - aiohttp without its extensions
    _mask_in_place = None


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte mask (RFC 6455 section 5.3)."""
    if _mask_in_place is None or not payload:
        return _unmask_int(payload, mask)
    data = bytearray(payload)
    _mask_in_place(mask, data)
    return bytes(data)


class WriteBatcher:
    """Ends the turn of the event loop for the connections written to during it: each
    sent its first frame of the turn at once and hands the rest to the socket in one
    write when the turn ends.

    A fan-out writes frames to thousands of connections; one system call per frame is
    most of its cost. At a high rate several publications fall in one turn and share
    each connection's second write; at a low rate every frame still leaves at once.
    Each connection's frames keep their order.
    """

    __slots__ = ("_dirty", "_scheduled", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._dirty: list[WebSocket] = []
        self._scheduled = False
        self._loop = loop

    def mark(self, conn: WebSocket) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        self._scheduled = False
        for conn in dirty:
            conn.flush()


class _Resume:
    """Awaiting this suspends the awaiting task on what a detached coroutine yielded,
    exactly as that coroutine would have suspended its own task."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, None]:
        yield self.value


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
    """Run `coro`, already started and suspended on `yielded`, to its end."""
    while True:
        try:
            await _Resume(yielded)
        except BaseException as exc:  # cancelled (or woken wrongly) while it waited
            try:
                yielded = coro.throw(exc)
            except StopIteration:
                return
            continue
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


def _cancelled(
    coro: Coroutine[Any, Any, Any], yielded: Any, exc: BaseException
) -> tuple[Coroutine[Any, Any, Any], Any] | None:
    """Cancel `coro`, suspended on `yielded`, as a task does: cancel the future it waits
    for, or raise `exc` where it waits. Returns what it waits on then (None: it ended)."""
    if isinstance(yielded, asyncio.Future) and yielded.cancel():
        return coro, yielded
    try:
        return coro, coro.throw(exc)
    except StopIteration:
        return None
    except Exception:
        log.exception("handling a message failed")
        return None


class WebSocket(asyncio.Protocol):
    """One WebSocket connection after the handshake, as the transport's protocol.

    It is the core's `Connection` (ready frames out, batched per turn of the loop) and
    the frame reader (messages in). Subclasses say what a message, a ping or pong, and
    the end of the connection mean: `_handle`, `_touch`, `_ended`.
    """

    __slots__ = (
        "_transport",
        "_batcher",
        "_pending",
        "_pending_bytes",
        "close_sent",
        "_limit",
        "_buf",
        "_frag",
        "_frag_op",
        "_reading",
        "_lost",
        "_paused",
        "_inbox",
        "_held",
        "_wake",
        "_task",
    )
    can_ping = True

    def __init__(self, transport: asyncio.Transport, batcher: WriteBatcher, limit: int) -> None:
        self._transport = transport
        self._batcher = batcher
        self._pending: list[bytes] | None = None  # a list while a turn's frames wait
        self._pending_bytes = 0
        self.close_sent = False
        self._limit = limit
        self._buf: bytearray | None = None
        self._frag: list[bytes] | None = None
        self._frag_op = 0
        self._reading = True  # False once the stream is over for us (close or error)
        self._lost = False
        self._paused = False
        # Messages waiting for the one being handled; not None means "queue, don't run".
        self._inbox: deque[bytes | str] | None = deque()
        self._held: tuple[Coroutine[Any, Any, Any], Any] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._task: asyncio.Future[None] | None = None

    # -- what a subclass defines --------------------------------------------------------

    def _handle(self, data: bytes | str) -> Coroutine[Any, Any, None]:
        raise NotImplementedError

    def _touch(self) -> None:
        """A ping or pong arrived."""

    async def _ended(self) -> None:
        """The connection is gone; called once, after its last message was handled."""

    # -- start and end ----------------------------------------------------------------------

    def start(self, task: asyncio.Future[None]) -> None:
        """Begin handling messages in `task`, a task of `serve()` made by the caller (so
        the caller can track it); the messages that came before this were queued."""
        self._task = task

    async def serve(self) -> None:
        """The connection's own task: continues the handlers that had to wait and the
        messages queued behind them; ends the connection once it is lost."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                held, self._held = self._held, None
                if held is not None:
                    try:
                        await _finish(*held)
                    except Exception:
                        log.exception("handling a message failed")
                inbox = self._inbox
                while inbox and not self._lost:
                    data = inbox.popleft()
                    try:
                        await self._handle(data)
                    except Exception:
                        log.exception("handling a message failed")
                if self._lost:
                    return
                self._inbox = None  # from now on a message is handled as it arrives
                if self._paused:
                    self._paused = False
                    if not self._transport.is_closing():
                        self._transport.resume_reading()
                wake = self._wake = loop.create_future()
                try:
                    await wake
                except asyncio.CancelledError as exc:
                    held, self._held = self._held, None
                    if held is None:
                        raise
                    # Cancelled between a handler's first wait and this task taking it
                    # over (an `asyncio.timeout` already run out): the cancel is the
                    # handler's, as in a task of its own.
                    self._held = _cancelled(*held, exc)
        finally:
            self._inbox = deque()
            await self._ended()

    def _kick(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._reading = False
        if self._inbox is None:
            self._inbox = deque()  # nothing more runs eagerly
            self._kick()

    # -- reading -------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        buf = self._buf
        view: bytes | bytearray = data
        if buf is not None:
            buf += data
            view = buf
        end = len(view)
        pos = 0
        limit = self._limit
        while self._reading:
            if end - pos < 2:
                break
            b0 = view[pos]
            b1 = view[pos + 1]
            n = b1 & 0x7F
            head = pos + 2
            if n == 126:
                if end - head < 2:
                    break
                n = (view[head] << 8) | view[head + 1]
                head += 2
            elif n == 127:
                if end - head < 8:
                    break
                n = int.from_bytes(view[head : head + 8], "big")
                head += 8
            if not b1 & 0x80:
                self._fail(_PROTOCOL_ERROR, "client frames must be masked", read_on=False)
                break
            if n > limit:
                self._fail(CloseCode.TOO_LARGE, "frame too large", read_on=False)
                break
            stop = head + 4 + n
            if stop > end:
                break
            payload = unmask(bytes(view[head + 4 : stop]), bytes(view[head : head + 4]))
            pos = stop
            self._frame(b0, payload)
        if not self._reading or pos == end:
            self._buf = None
        elif buf is None:
            self._buf = bytearray(view[pos:])
        elif pos:
            del buf[:pos]

    def _frame(self, b0: int, payload: bytes) -> None:
        opcode = b0 & 0x0F
        if b0 & 0x70:
            self._fail(_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
            return
        final = b0 & 0x80
        if opcode == 0x1 or opcode == 0x2:
            if self._frag is not None:
                self._fail(_PROTOCOL_ERROR, "new message inside a fragmented one")
            elif final:
                self._message(opcode, payload)
            else:
                self._frag = [payload]
                self._frag_op = opcode
        elif opcode == 0x0:
            frag = self._frag
            if frag is None:
                self._fail(_PROTOCOL_ERROR, "continuation frame with nothing to continue")
                return
            frag.append(payload)
            if sum(map(len, frag)) > self._limit:
                self._fail(CloseCode.TOO_LARGE, "message too large")
            elif final:
                self._frag = None
                self._message(self._frag_op, b"".join(frag))
        elif opcode >= 0x8:
            if not final or len(payload) > 125:
                self._fail(_PROTOCOL_ERROR, "bad control frame")
            elif opcode == 0x9:
                self.write(ws_control_frame(0xA, payload))
                self._touch()
            elif opcode == 0xA:
                self._touch()
            elif opcode == 0x8:
                self._close_received(payload)
            else:
                self._fail(_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        else:
            self._fail(_PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _close_received(self, payload: bytes) -> None:
        code = CloseCode.NORMAL.value
        if len(payload) == 1:
            self._fail(_PROTOCOL_ERROR, "bad close frame")
            return
        if len(payload) >= 2:
            code = int.from_bytes(payload[:2], "big")
            try:
                payload[2:].decode()
            except UnicodeDecodeError:
                self._fail(_INVALID_DATA, "close reason is not UTF-8")
                return
            if not (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) and not (
                3000 <= code <= 4999
            ):
                self._fail(_PROTOCOL_ERROR, "bad close code")
                return
        self.finish(code)
        # The conversation is over: end it now rather than when the socket is gone.
        self.connection_lost(None)

    def _message(self, opcode: int, payload: bytes) -> None:
        if self.close_sent:
            return  # closing: only the client's close frame matters now
        data: bytes | str = payload
        if opcode == 0x1:
            try:
                data = payload.decode()
            except UnicodeDecodeError:
                self._fail(_INVALID_DATA, "text frame is not UTF-8")
                return
        inbox = self._inbox
        if inbox is not None:
            inbox.append(data)
            if len(inbox) >= _INBOX_PAUSE and not self._paused and not self._lost:
                self._paused = True
                self._transport.pause_reading()
            return
        task = self._task
        loop = self._batcher._loop
        try:
            _enter_task(loop, task)
        except RuntimeError:  # called from inside some task: let the connection's task run it
            self._inbox = deque((data,))
            self._kick()
            return
        coro = self._handle(data)
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("handling a message failed")
            return
        finally:
            _leave_task(loop, task)
        # It waits: the connection's task takes it over; what comes next queues.
        self._held = (coro, yielded)
        self._inbox = deque()
        self._kick()

    def _fail(self, code: int, reason: str, *, read_on: bool = True) -> None:
        """The client broke the protocol: close with `code`. With `read_on`, frames are
        still parsed, so the client's answering close frame ends the stream at once;
        messages are not handled any more."""
        if not read_on:
            self._reading = False
        self._frag = None
        self.close(code, reason)

    # -- the core's Connection ---------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """The first frame of a turn of the loop goes to the socket at once (the first
        subscribers of a fan-out do not wait for the last); the ones after it wait for
        the end of the turn and go in one write."""
        if self.close_sent:
            return
        pending = self._pending
        if pending is None:
            self._pending = []
            self._batcher.mark(self)
            if not self._transport.is_closing():
                self._transport.write(frame)
            return
        pending.append(frame)
        self._pending_bytes += len(frame)

    def flush(self) -> None:
        """Hand what waits to the socket (one write); the next frame goes straight out."""
        pending = self._pending
        self._pending = None
        if not pending:
            return
        self._pending_bytes = 0
        if self._transport.is_closing():
            return
        if len(pending) == 1:
            self._transport.write(pending[0])
        else:
            self._transport.write(b"".join(pending))

    def buffered(self) -> int:
        return self._transport.get_write_buffer_size() + self._pending_bytes

    async def wait_writable(self, low_water: int) -> None:
        transport = self._transport
        delay = 0.002
        while self.buffered() > low_water:
            if transport.is_closing() or self.close_sent:
                raise ConnectionError("connection closed")
            await asyncio.sleep(delay)
            delay = min(0.05, delay * 2)

    def ping(self) -> None:
        self.write(ws_control_frame(0x9))

    def close(self, code: int, reason: str) -> None:
        if self.close_sent:
            return
        self.flush()
        if not self._transport.is_closing():
            self._transport.write(close_frame(code, reason))
        self.close_sent = True
        self._batcher._loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    def finish(self, code: int) -> None:
        """The client sent its close frame: answer it if we have not, then end the TCP stream."""
        self.flush()
        if not self.close_sent and not self._transport.is_closing():
            self._transport.write(close_frame(code))
            self.close_sent = True
        self._transport.close()


class _Detached(web.StreamResponse):
    """What an upgrade handler returns to aiohttp once the socket is no longer its own:
    nothing is written."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


def detach(request: web.Request, conn: WebSocket, answer: bytes) -> web.StreamResponse:
    """Make `conn` the protocol of the request's socket, send the `101` answer, and let
    aiohttp forget the connection. Returns the response for the handler to return. What
    the client sent after its request is read into `conn` at once (it queues until
    `conn.start`), ahead of what comes later."""
    http = request.protocol
    transport = request.transport
    assert transport is not None
    leftover = bytes(getattr(http, "_message_tail", b"") or b"")
    transport.set_protocol(conn)
    transport.write(answer)
    if not transport.is_reading():
        transport.resume_reading()
    # aiohttp's side: it must neither write to nor close this transport again.
    http.transport = None
    http.connection_lost(None)
    if leftover:
        conn.data_received(leftover)
    return _Detached()


def upgrade_refused(error: UpgradeError) -> web.StreamResponse:
    return web.json_response(
        {"error": {"code": "bad_request", "message": error.message}},
        status=error.status,
        headers=error.headers,
    )
