"""The errors of Hubbub. Each maps to one protocol error code (PROTOCOL.md section 13).

    HubbubError                  internal
    ├── BadRequest               bad_request
    ├── UnknownType              unknown_type
    ├── Unauthorized             unauthorized
    ├── Forbidden                forbidden
    ├── NotFound                 not_found
    ├── Conflict                 conflict
    ├── RateLimited              rate_limited
    ├── TooLarge                 too_large
    └── Unavailable              unavailable

The message of an error is shown to the client, so it never carries internal text.
"""

from __future__ import annotations

from hubbub.protocol.codes import ErrorCode


class HubbubError(Exception):
    """Root of every error Hubbub reports to a client."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self, message: str = "", *, channel: str | None = None, re: str | None = None
    ) -> None:
        super().__init__(message or self.code.value.replace("_", " "))
        self.message = message or self.code.value.replace("_", " ")
        self.channel = channel
        self.re = re  # the request id, when it is known before the request was decoded


class BadRequest(HubbubError):
    """The frame or request is malformed or misses a field."""

    code = ErrorCode.BAD_REQUEST


class UnknownType(HubbubError):
    """No handler is registered for this message type."""

    code = ErrorCode.UNKNOWN_TYPE


class Unauthorized(HubbubError):
    """No valid credentials."""

    code = ErrorCode.UNAUTHORIZED


class Forbidden(HubbubError):
    """Valid credentials, but not allowed to do this."""

    code = ErrorCode.FORBIDDEN


class NotFound(HubbubError):
    """The thing asked for does not exist."""

    code = ErrorCode.NOT_FOUND


class Conflict(HubbubError):
    """The request conflicts with the current state."""

    code = ErrorCode.CONFLICT


class RateLimited(HubbubError):
    """Too many requests; slow down."""

    code = ErrorCode.RATE_LIMITED


class TooLarge(HubbubError):
    """The request is larger than allowed."""

    code = ErrorCode.TOO_LARGE


class Unavailable(HubbubError):
    """A backing service is down; try again later."""

    code = ErrorCode.UNAVAILABLE
