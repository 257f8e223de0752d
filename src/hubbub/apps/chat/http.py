"""Chat's HTTP API under `/api/conversations` (PROTOCOL.md section 14, docs/protocol.md 16.12).

A user's JWT acts as that user and sees only their conversations; the API key acts as
the server and may do anything (it names the user where one is needed). A
conversation one is not a member of answers 403 whether or not it exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubbub.apps.chat.app import check_user_id, message_id
from hubbub.apps.chat.attachments import check_upload, clean_name
from hubbub.apps.chat.store import PAGE_DEFAULT, PAGE_MAX, attachment_body, search_words
from hubbub.core.api import caller
from hubbub.core.auth import Identity
from hubbub.core.routes import ApiRequest, ApiResponse, json_response
from hubbub.errors import BadRequest, Forbidden, NotFound

if TYPE_CHECKING:
    from hubbub.apps.chat.app import ChatApp


def _acting_user(who: Identity, named: object, what: str) -> str:
    """The user a call acts as: the caller, or for the API key the user it names."""
    if not who.is_server:
        return who.user_id
    if named is None:
        raise BadRequest(f"with the API key, name the user in `{what}`")
    return check_user_id(named)


def _limit(query: dict[str, str]) -> int:
    raw = query.get("limit") or str(PAGE_DEFAULT)
    if not raw.isdigit() or not 0 < int(raw) <= PAGE_MAX:
        raise BadRequest(f"`limit` is a whole number from 1 to {PAGE_MAX}")
    return int(raw)


def _cursor(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    return None if raw in (None, "") else message_id(str(raw), name)


def register(chat: ChatApp) -> None:
    """Install the `/api/conversations` routes on the chat app's hub."""
    hub = chat.hub

    async def member(request: ApiRequest) -> tuple[Identity, str]:
        """The caller, once allowed into the conversation of the path."""
        who = caller(hub, request)
        conversation_id = request.params["id"]
        if not who.is_server:
            await chat.db.require_member(conversation_id, who.user_id)
        elif await chat.db.conversation(conversation_id) is None:
            raise NotFound("no such conversation")
        return who, conversation_id

    async def create(request: ApiRequest) -> ApiResponse:
        who = caller(hub, request)
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("members"), list):
            raise BadRequest("body must be {members: [userId...], title?}")
        creator = "server" if who.is_server else who.user_id
        conversation_id = await chat.create_conversation(
            body["members"], title=body.get("title"), creator=creator
        )
        return json_response({"conversationId": conversation_id}, 201)

    async def listing(request: ApiRequest) -> ApiResponse:
        who = caller(hub, request)
        user = _acting_user(who, request.query.get("userId"), "?userId=")
        return json_response({"conversations": await chat.db.conversations_of(user)})

    async def one(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        user = who.user_id if not who.is_server else request.query.get("userId")
        found = await chat.db.conversations_of(user or "", only=conversation_id)
        if found:
            return json_response(found[0])
        row = await chat.db.conversation(conversation_id)
        assert row is not None  # `member` found it
        return json_response(
            {
                "conversationId": conversation_id,
                "kind": row["kind"],
                "title": row["title"],
                "members": await chat.db.member_ids(conversation_id),
                "createdAt": row["created_at"],
            }
        )

    async def history(request: ApiRequest) -> ApiResponse:
        _, conversation_id = await member(request)
        before, after = _cursor(request.query, "before"), _cursor(request.query, "after")
        if before is not None and after is not None:
            raise BadRequest("page with `before` or with `after`, not both")
        page = await chat.db.history(
            conversation_id, before=before, after=after, limit=_limit(request.query)
        )
        body: dict[str, Any] = {"messages": page.messages}
        if page.next is not None:
            body["next"] = page.next
        return json_response(body)

    async def search(request: ApiRequest) -> ApiResponse:
        _, conversation_id = await member(request)
        words = search_words(request.query.get("q", ""))
        if not words:
            raise BadRequest("`q` needs at least one word")
        return json_response({"messages": await chat.db.search(conversation_id, words)})

    async def send(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest("body must be {clientMessageId, content, replyTo?, attachments?}")
        sender = _acting_user(who, body.get("senderId"), "senderId")
        content, attachments = body.get("content", ""), body.get("attachments") or []
        cmid, reply_to = body.get("clientMessageId"), body.get("replyTo")
        if not isinstance(content, str) or not isinstance(attachments, list):
            raise BadRequest("content is a string and attachments a list of ids")
        if not isinstance(cmid, str) or (reply_to is not None and not isinstance(reply_to, str)):
            raise BadRequest("clientMessageId (and replyTo) are strings")
        sent = await chat.send_message(
            sender,
            conversation_id,
            content,
            client_message_id=cmid,
            reply_to=reply_to,
            attachments=[str(a) for a in attachments],
        )
        return json_response(sent.message, 201 if sent.created else 200)

    async def mark_read(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("messageId"), str):
            raise BadRequest("body must be {messageId}")
        user = _acting_user(who, body.get("userId"), "userId")
        return json_response(await chat.mark_read(user, conversation_id, body["messageId"]))

    async def add_member(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        body = request.json()
        user = check_user_id(body.get("userId") if isinstance(body, dict) else None)
        if await chat.db.add_member(conversation_id, user, hub.clock.time_ms()):
            event = {"conversationId": conversation_id, "userId": user, "by": who.user_id}
            await chat.to_users(
                await chat.db.member_ids(conversation_id), "chat.member_added", event
            )
        return json_response({"members": await chat.db.member_ids(conversation_id)})

    async def remove_member(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        user = check_user_id(request.params["user"])
        row = await chat.db.conversation(conversation_id)
        allowed = who.is_server or user == who.user_id or (row and row["created_by"] == who.user_id)
        if not allowed:
            raise Forbidden("only the creator removes others; anyone may leave")
        before = await chat.db.member_ids(conversation_id)
        if await chat.db.remove_member(conversation_id, user):
            event = {"conversationId": conversation_id, "userId": user, "by": who.user_id}
            await chat.to_users(before, "chat.member_removed", event)
        return json_response({"members": await chat.db.member_ids(conversation_id)})

    async def presence(request: ApiRequest) -> ApiResponse:
        _, conversation_id = await member(request)
        listed = [
            {"userId": m, "online": await hub.is_online(m)}
            for m in await chat.db.member_ids(conversation_id)
        ]
        return json_response({"conversationId": conversation_id, "members": listed})

    async def upload(request: ApiRequest) -> ApiResponse:
        who, conversation_id = await member(request)
        uploader = _acting_user(who, request.query.get("userId"), "?userId=")
        content_type = check_upload(
            request.body, request.headers.get("content-type", ""), hub.settings.max_upload_bytes
        )
        attachment_id = chat.files.new_id()
        digest = await chat.files.write(attachment_id, request.body)
        values = {
            "id": attachment_id,
            "conversation_id": conversation_id,
            "uploader_id": uploader,
            "name": clean_name(request.query.get("name", "file")),
            "content_type": content_type,
            "size": len(request.body),
            "sha256": digest,
            "created_at": hub.clock.time_ms(),
        }
        await chat.db.add_attachment(values)
        return json_response(attachment_body(values), 201)

    async def download(request: ApiRequest) -> ApiResponse:
        _, conversation_id = await member(request)
        row = await chat.db.attachment(conversation_id, request.params["attachment"])
        if row is None:
            raise NotFound("no such attachment in this conversation")
        data = await chat.files.read(row["id"])
        headers = chat.files.download_headers(row["name"], row["content_type"])
        return ApiResponse(200, data, row["content_type"], headers=headers)

    r = hub.router
    base = "/api/conversations/{id}"
    r.add("POST", "/api/conversations", create)
    r.add("GET", "/api/conversations", listing)
    r.add("GET", base, one)
    r.add("GET", f"{base}/messages", history)
    r.add("POST", f"{base}/messages", send)
    r.add("GET", f"{base}/search", search)
    r.add("POST", f"{base}/read", mark_read)
    r.add("POST", f"{base}/members", add_member)
    r.add("DELETE", f"{base}/members/{{user}}", remove_member)
    r.add("GET", f"{base}/presence", presence)
    r.add("POST", f"{base}/attachments", upload)
    r.add("GET", f"{base}/attachments/{{attachment}}", download)
