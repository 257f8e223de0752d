"""HTTP routes as plain data, so the standalone server and the ASGI adapter share them."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hubbub.errors import BadRequest, HubbubError, NotFound
from hubbub.protocol.codes import HTTP_STATUS

_json = msgspec.json.Encoder()
log = logging.getLogger("hubbub")


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """An HTTP request: headers with lower-case names, the query as a flat dict."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    remote: str = ""

    def json(self) -> Any:
        """The body as JSON (an empty body is `{}`)."""
        if not self.body.strip():
            return {}
        try:
            return msgspec.json.decode(self.body)
        except msgspec.DecodeError:
            raise BadRequest("body is not valid JSON") from None

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(value: Any, status: int = 200) -> ApiResponse:
    return ApiResponse(status, _json.encode(value))


def error_response(error: HubbubError) -> ApiResponse:
    body = {"error": {"code": error.code.value, "message": error.message}}
    return ApiResponse(HTTP_STATUS[error.code], _json.encode(body))


Handler = Callable[[ApiRequest], Awaitable[ApiResponse]]


class Router:
    """Routes `METHOD /path/{param}` to handlers; errors become the JSON error body."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method.upper(), re.compile(f"^{regex}$"), handler))

    def matches(self, path: str) -> bool:
        return any(rx.match(path) for _, rx, _ in self._routes)

    async def dispatch(self, request: ApiRequest) -> ApiResponse:
        allowed = False
        for method, rx, handler in self._routes:
            m = rx.match(request.path)
            if m is None:
                continue
            allowed = True
            if method != request.method:
                continue
            req = ApiRequest(
                request.method,
                request.path,
                request.headers,
                request.query,
                request.body,
                m.groupdict(),
                request.remote,
            )
            try:
                return await handler(req)
            except HubbubError as exc:
                return error_response(exc)
            except Exception:
                log.exception("HTTP %s %s failed", request.method, request.path)
                return error_response(HubbubError("internal error"))
        if allowed:
            return ApiResponse(
                405,
                _json.encode({"error": {"code": "bad_request", "message": "method not allowed"}}),
            )
        return error_response(NotFound(f"no route {request.path}"))
