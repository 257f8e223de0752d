"""The core HTTP API (PROTOCOL.md section 14): publish, channels, history, presence,
disconnect and development tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbub.core.auth import Identity
from hubbub.core.routes import ApiRequest, ApiResponse, json_response
from hubbub.errors import BadRequest, Forbidden, NotFound, Unauthorized
from hubbub.protocol.channels import is_valid_channel
from hubbub.protocol.codes import CloseCode

if TYPE_CHECKING:
    from hubbub.core.hub import Hub


def caller(hub: Hub, request: ApiRequest) -> Identity:
    """Who makes an HTTP call: the server (API key) or a user (JWT)."""
    token = request.bearer()
    if token is None:
        raise Unauthorized("missing Authorization: Bearer <token>")
    return hub.verifier.verify_bearer(token)


def _server_only(hub: Hub, request: ApiRequest) -> None:
    if not caller(hub, request).is_server:
        raise Forbidden("needs the API key")


def _channel(name: str) -> str:
    if not is_valid_channel(name):
        raise BadRequest("invalid channel name")
    return name


def _int(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"`{name}` must be an integer") from None
    if not 0 <= value <= 2**53:
        raise BadRequest(f"`{name}` must be between 0 and 2**53")
    return value


def register(hub: Hub) -> None:
    """Install the core routes on `hub.router`."""
    from hubbub.core.subscriptions import history_body

    async def publish(request: ApiRequest) -> ApiResponse:
        who = caller(hub, request)
        body = request.json()
        if not isinstance(body, dict) or "channel" not in body or "data" not in body:
            raise BadRequest("body must be {channel, data}")
        channel = body["channel"]
        if not isinstance(channel, str) or not is_valid_channel(channel):
            raise BadRequest("invalid channel name")
        if not hub.can_publish(who, channel):
            raise Forbidden("not allowed to publish")
        pub = await hub.publish(
            channel, body["data"], publisher=None if who.is_server else who.user_id
        )
        return json_response({"channel": channel, "seq": pub.seq})

    async def channels(request: ApiRequest) -> ApiResponse:
        _server_only(hub, request)
        listed = [{"name": name, "subscribers": len(subs)} for name, subs in hub.channels.items()]
        return json_response({"channels": sorted(listed, key=lambda c: str(c["name"]))})

    async def history(request: ApiRequest) -> ApiResponse:
        channel = _channel(request.params["name"])
        if not await hub.can_subscribe(caller(hub, request), channel):
            raise Forbidden("not allowed to read this channel")
        q = request.query
        body = await history_body(
            hub, channel, _int(q, "fromSequence"), _int(q, "toSequence"), _int(q, "limit")
        )
        return json_response(body)

    async def presence(request: ApiRequest) -> ApiResponse:
        channel = _channel(request.params["name"])
        if not await hub.can_subscribe(caller(hub, request), channel):
            raise Forbidden("not allowed to read this channel")
        return json_response({"channel": channel, "members": await hub.presence.members(channel)})

    async def disconnect(request: ApiRequest) -> ApiResponse:
        _server_only(hub, request)
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("body must be an object")
        code = body.get("code", CloseCode.RESTARTING)
        reason = body.get("reason", "disconnected by the server")
        if not isinstance(code, int) or not (
            code in (1000, 1001, 1008, 1012) or 4000 <= code < 5000
        ):
            raise BadRequest("code must be 1000, 1001, 1008, 1012 or 4000-4999")
        if not isinstance(reason, str):
            raise BadRequest("reason must be a string")
        sessions = list(hub.users.get(request.params["id"], ()))
        for session in sessions:
            hub.close_session(session, code, reason[:100])
        return json_response({"closed": len(sessions)})

    async def dev_token(request: ApiRequest) -> ApiResponse:
        if not hub.settings.dev_mode:
            raise NotFound("development mode is off")
        body = request.json()
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, str) or not user or len(user) > 128:
            raise BadRequest("body must be {user: <non-empty string>}")
        extra: dict[str, Any] = {}
        for claim in ("channels", "publish", "roles"):
            if isinstance(body.get(claim), list):
                extra[claim] = [str(v) for v in body[claim]]
        return json_response({"token": hub.verifier.issue(user, **extra)})

    r = hub.router
    r.add("POST", "/api/publish", publish)
    r.add("GET", "/api/channels", channels)
    r.add("GET", "/api/channels/{name}/history", history)
    r.add("GET", "/api/channels/{name}/presence", presence)
    r.add("POST", "/api/users/{id}/disconnect", disconnect)
    r.add("POST", "/api/dev/token", dev_token)
