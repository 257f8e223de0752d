"""Opening one connection: the token, the WebSocket handshake and the `welcome`
(PROTOCOL.md section 3), and what a close code means for the next attempt."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp
import msgspec
from yarl import URL

from hubbub.client.errors import AuthenticationFailed, ClientClosed, ForbiddenClose
from hubbub.protocol.codec import Envelope
from hubbub.protocol.codes import CloseCode

TokenSource = str | Callable[[], Awaitable[str] | str] | None
"""A token, or a function (plain or async) that returns a fresh one each time it is called."""

Socket = aiohttp.ClientWebSocketResponse[Literal[False]]

ENVELOPE = msgspec.json.Decoder(Envelope)


class Welcome(msgspec.Struct, frozen=True, rename="camel"):
    """The payload of `welcome`: who the server says we are on this connection."""

    connection_id: str
    user_id: str
    server_time: int = 0
    heartbeat_interval: int = 25_000
    node: str = ""
    protocol: int = 1


class AttemptFailed(Exception):
    """One connection attempt failed. `fatal` is set when the client must not retry."""

    def __init__(
        self,
        message: str,
        *,
        close_code: int | None = None,
        fatal: ClientClosed | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.close_code = close_code
        self.fatal = fatal


class Tokens:
    """The token of each connection attempt, from a `TokenSource`.

    After a close with 4001 the rejected token is remembered: the next attempt
    asks the source again and gives up (`AuthenticationFailed`) when the source
    is a fixed string, fails, or returns the same token.
    """

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self.current: str | None = None
        self._rejected: str | None = None

    @property
    def refreshable(self) -> bool:
        """Whether the source can produce a new token (it is a function)."""
        return callable(self._source)

    async def fresh(self) -> str | None:
        """A token from the source (a new one when it is a function)."""
        source = self._source
        if source is None or isinstance(source, str):
            return source
        value = source()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError("the token function must return a str")
        return value

    async def for_attempt(self) -> str | None:
        """The token of the next connection attempt; raises `AttemptFailed`."""
        try:
            token = await self.fresh()
        except Exception as exc:
            if self._rejected is not None:
                raise AttemptFailed(
                    "token function failed after 4001",
                    fatal=AuthenticationFailed("no new token after 4001"),
                ) from exc
            raise AttemptFailed(f"token function failed: {exc!r}") from exc
        if self._rejected is not None and (not self.refreshable or token == self._rejected):
            raise AttemptFailed(
                "no new token", fatal=AuthenticationFailed("no new token after 4001")
            )
        self.current = token
        return token

    def rejected(self) -> None:
        """The server closed with 4001: the current token is no good."""
        self._rejected = self.current or ""

    def accepted(self) -> None:
        """The server welcomed the current token."""
        self._rejected = None


def fatal_close(code: int | None, reason: str, tokens: Tokens) -> ClientClosed | None:
    """What a close `code` means: None to reconnect, or the error that ends the client."""
    if code == CloseCode.FORBIDDEN:
        return ForbiddenClose(reason or "forbidden")
    if code == CloseCode.UNAUTHORIZED:
        tokens.rejected()
        if not tokens.refreshable:
            return AuthenticationFailed(reason or "unauthorized")
    return None


def url_with_token(url: str, token: str | None) -> URL:
    """`url` with `?token=` set (PROTOCOL.md section 3)."""
    target = URL(url)
    return target if token is None else target.update_query(token=token)


async def open_socket(
    http: aiohttp.ClientSession,
    url: URL,
    *,
    tokens: Tokens,
    timeout: float,
    heartbeat: float | None,
    max_msg_size: int,
) -> tuple[Socket, Welcome]:
    """Open the WebSocket and wait for `welcome`; raises `AttemptFailed`."""
    try:
        async with asyncio.timeout(timeout):
            ws = await http.ws_connect(
                url, heartbeat=heartbeat, max_msg_size=max_msg_size, decode_text=False
            )
    except aiohttp.WSServerHandshakeError as exc:
        code = {401: 4001, 403: 4003}.get(exc.status)
        raise AttemptFailed(
            f"handshake refused: HTTP {exc.status}",
            close_code=code,
            fatal=fatal_close(code, exc.message, tokens),
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise AttemptFailed(f"cannot connect: {exc!r}") from None
    try:
        welcome = await receive_welcome(ws, timeout, tokens)
    except BaseException:
        await ws.close()
        raise
    return ws, welcome


async def receive_welcome(ws: Socket, timeout: float, tokens: Tokens) -> Welcome:
    """Read frames until `welcome`; a close before it fails the attempt."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    env = decode_envelope(msg.data)
                    if env is not None and env.type == "welcome":
                        return msgspec.convert(env.payload, Welcome)
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    code, reason = msg.data, msg.extra or ""
                    raise AttemptFailed(
                        f"closed before welcome: {code} {reason}",
                        close_code=code,
                        fatal=fatal_close(code, reason, tokens),
                    )
                elif msg.type in (
                    aiohttp.WSMsgType.CLOSING,
                    aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR,
                ):
                    raise AttemptFailed("connection lost before welcome", close_code=ws.close_code)
    except TimeoutError:
        raise AttemptFailed(f"no welcome within {timeout:g} s") from None
    except msgspec.ValidationError as exc:
        raise AttemptFailed(f"bad welcome: {exc}") from None


def decode_envelope(data: bytes | str) -> Envelope | None:
    """The envelope in a text frame, or None when it is not one."""
    try:
        return ENVELOPE.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
