"""Errors the client raises. All of them are `hubbub.errors.HubbubError`s.

HubbubError
└── ClientError                  anything the client SDK raises
    ├── RequestError             the server answered `error {code, message}`
    ├── RequestTimeout           no answer in time (also a `TimeoutError`)
    ├── OfflineQueueFull         too many publishes waiting for a connection
    ├── NotConnected             the request needs a live connection
    ├── ConnectionLost           the connection ended before the answer came
    ├── ConnectFailed            the first connection attempt failed
    └── ClientClosed             the client is closed for good
        ├── AuthenticationFailed closed with 4001 and no new token to try
        └── ForbiddenClose       closed with 4003
"""

from __future__ import annotations

from hubbub.errors import HubbubError
from hubbub.protocol.codes import CloseCode, ErrorCode


class ClientError(HubbubError):
    """Root of the errors of the client SDK."""


class RequestError(ClientError):
    """The server refused a request: `code` says why (PROTOCOL.md section 13).

    `code` is an `ErrorCode` when the server sent a known code; `raw_code` is
    always the string the server sent, so codes added later are not lost.
    """

    def __init__(self, code: str, message: str = "", *, channel: str | None = None) -> None:
        try:
            known = ErrorCode(code)
        except ValueError:
            known = ErrorCode.INTERNAL
        self.code = known
        self.raw_code = code
        super().__init__(message or code.replace("_", " "), channel=channel)

    def __repr__(self) -> str:
        return f"RequestError({self.raw_code!r}, {self.message!r}, channel={self.channel!r})"


class RequestTimeout(ClientError, TimeoutError):
    """No answer to a request within its timeout. Also an `asyncio.TimeoutError`."""

    code = ErrorCode.UNAVAILABLE


class OfflineQueueFull(ClientError):
    """A publish found the offline queue at its bound while disconnected."""

    code = ErrorCode.UNAVAILABLE


class NotConnected(ClientError):
    """The client has no live connection right now; try again after `Connected`."""

    code = ErrorCode.UNAVAILABLE


class ConnectionLost(ClientError):
    """The connection ended while a request waited for its answer.

    The server may or may not have acted on the request: a publish that failed
    this way may have been published.
    """

    code = ErrorCode.UNAVAILABLE


class ConnectFailed(ClientError):
    """`connect()` could not open the first connection (network, handshake, close)."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class ClientClosed(ClientError):
    """The client is closed for good and will not reconnect.

    `close_code` is the WebSocket close code that ended it (None after `close()`).
    """

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str = "client closed", *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class AuthenticationFailed(ClientClosed):
    """The server closed with 4001 and the token source had no new token."""

    code = ErrorCode.UNAUTHORIZED

    def __init__(self, message: str = "unauthorized") -> None:
        super().__init__(message, close_code=CloseCode.UNAUTHORIZED)


class ForbiddenClose(ClientClosed):
    """The server closed with 4003: this client may not connect."""

    code = ErrorCode.FORBIDDEN

    def __init__(self, message: str = "forbidden") -> None:
        super().__init__(message, close_code=CloseCode.FORBIDDEN)
