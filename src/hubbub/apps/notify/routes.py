"""The notifications app's HTTP API (PROTOCOL.md section 14, docs/protocol.md 16.13).

A user's token acts on that user's notifications only. The API key acts for the
server: it creates notifications and, with `?userId=`, reads and marks any user's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from hubbub.apps.notify.model import MAX_ENDPOINT, IdsPayload, ListQuery, NewNotification
from hubbub.apps.notify.providers import PushSubscription
from hubbub.apps.notify.webpush import check_subscription_keys
from hubbub.core.api import caller
from hubbub.core.hub import Hub
from hubbub.core.notices import Notice
from hubbub.core.routes import ApiRequest, ApiResponse, json_response
from hubbub.errors import BadRequest, Forbidden, NotFound

if TYPE_CHECKING:
    from hubbub.apps.notify.service import NotificationService

T = TypeVar("T")
Key = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SubscriptionKeys(msgspec.Struct, frozen=True):
    p256dh: Key
    auth: Key


class SubscriptionBody(msgspec.Struct, frozen=True):
    """`PushSubscription.toJSON()` of a browser (`expirationTime` is ignored)."""

    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ENDPOINT)]
    keys: SubscriptionKeys


class EndpointBody(msgspec.Struct, frozen=True):
    endpoint: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ENDPOINT)]


def _body(request: ApiRequest, into: type[T]) -> T:
    return _convert(request.json(), into, "body")


def _convert(value: Any, into: type[T], what: str) -> T:
    try:
        return msgspec.convert(value, into, strict=what == "body")
    except msgspec.ValidationError as exc:
        raise BadRequest(f"{what}: " + str(exc).replace("`$.", "`").replace("`$`", what)) from None


def register(hub: Hub, service: NotificationService) -> None:
    """Install the `/api/notifications` routes on `hub.router`."""

    def owner(request: ApiRequest) -> str:
        """Whose notifications a call is about: the caller, or `?userId=` for the API key."""
        who = caller(hub, request)
        asked = request.query.get("userId")
        if who.is_server:
            if not asked:
                raise BadRequest("the API key must name the user: ?userId=")
            return asked
        if asked and asked != who.user_id:
            raise Forbidden("a user reaches only their own notifications")
        return who.user_id

    async def create(request: ApiRequest) -> ApiResponse:
        who = caller(hub, request)
        body = _body(request, NewNotification)
        # Development mode lets a user notify themselves (the demo page does).
        if not who.is_server and not (hub.settings.dev_mode and body.user_id == who.user_id):
            raise Forbidden("needs the API key")
        notice = Notice(
            user_id=body.user_id,
            type=body.type,
            title=body.title,
            body=body.body,
            priority=body.priority,
            data=body.data,
        )
        made = await service.create(notice, dedupe_key=body.dedupe_key)
        return json_response({"id": made["id"]}, 201)

    async def list_(request: ApiRequest) -> ApiResponse:
        user = owner(request)
        query = {k: v for k, v in request.query.items() if k != "userId"}
        page = await service.page(user, _convert(query, ListQuery, "query"))
        return json_response(msgspec.to_builtins(page))

    async def get(request: ApiRequest) -> ApiResponse:
        return json_response(await service.get(owner(request), request.params["id"]))

    async def attempts(request: ApiRequest) -> ApiResponse:
        user = owner(request)
        notification_id = request.params["id"]
        found = await service.get(user, notification_id)
        return json_response(
            {
                "id": found["id"],
                "fallback": await service.fallback_state(notification_id),
                "attempts": await service.attempts(notification_id),
            }
        )

    def marker(method: str) -> Any:
        async def mark(request: ApiRequest) -> ApiResponse:
            user = owner(request)
            ids = _body(request, IdsPayload).notification_ids
            marked = await getattr(service, method)(user, ids)
            return json_response(msgspec.to_builtins(marked))

        return mark

    async def read_all(request: ApiRequest) -> ApiResponse:
        marked = await service.mark_all_read(owner(request))
        return json_response(msgspec.to_builtins(marked))

    async def get_preferences(request: ApiRequest) -> ApiResponse:
        prefs = await service.preferences(owner(request))
        return json_response(msgspec.to_builtins(prefs))

    async def put_preferences(request: ApiRequest) -> ApiResponse:
        prefs = await service.update_preferences(owner(request), request.json())
        return json_response(msgspec.to_builtins(prefs))

    async def vapid_key(request: ApiRequest) -> ApiResponse:
        if service.push is None:
            raise NotFound("Web Push is not configured on this server")
        return json_response({"publicKey": service.push.public_key})

    async def subscribe(request: ApiRequest) -> ApiResponse:
        user = owner(request)
        body = _body(request, SubscriptionBody)
        _check_endpoint(body.endpoint, allow_http=hub.settings.dev_mode)
        try:
            check_subscription_keys(body.keys.p256dh, body.keys.auth)
        except ValueError:
            raise BadRequest("keys.p256dh must be a P-256 point, keys.auth 16 bytes") from None
        sub = PushSubscription(body.endpoint, body.keys.p256dh, body.keys.auth)
        await service.add_push_subscription(user, sub)
        return json_response({"endpoint": body.endpoint}, 201)

    async def unsubscribe(request: ApiRequest) -> ApiResponse:
        user = owner(request)
        endpoint = _body(request, EndpointBody).endpoint
        return json_response({"removed": await service.remove_push_subscription(user, endpoint)})

    r = hub.router
    # Fixed paths before `/api/notifications/{id}`, which would match them too.
    r.add("POST", "/api/notifications", create)
    r.add("GET", "/api/notifications", list_)
    r.add("GET", "/api/notifications/vapid-key", vapid_key)
    r.add("GET", "/api/notifications/preferences", get_preferences)
    r.add("PUT", "/api/notifications/preferences", put_preferences)
    r.add("POST", "/api/notifications/read", marker("mark_read"))
    r.add("POST", "/api/notifications/read-all", read_all)
    r.add("POST", "/api/notifications/seen", marker("mark_seen"))
    r.add("POST", "/api/notifications/archive", marker("archive"))
    r.add("POST", "/api/notifications/push-subscriptions", subscribe)
    r.add("DELETE", "/api/notifications/push-subscriptions", unsubscribe)
    r.add("GET", "/api/notifications/{id}", get)
    r.add("GET", "/api/notifications/{id}/attempts", attempts)


def _check_endpoint(endpoint: str, *, allow_http: bool) -> None:
    """A push endpoint must be an https URL (http too in development mode)."""
    parts = urlsplit(endpoint)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        shown = " or http" if allow_http else ""
        raise BadRequest(f"endpoint must be an https{shown} URL")
