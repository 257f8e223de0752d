"""Chat on top of a `Client` (PROTOCOL.md section 12, docs/protocol.md 16.12, docs/chat.md).

`Chat.send` gives every message a clientMessageId and, if the connection drops before
`chat.message_delivered`, sends it again with the same id once the client is back: the
server stores it once, so a send is never lost and never doubled. Events arrive on the
user's own channel through the client (exactly once, in order, recovered after a
reconnect); `Chat.on_message` and friends pick out the chat ones. The HTTP half
(conversations, history, search, attachments) goes through `ChatHttp`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec

from hubbub.client.client import Client
from hubbub.client.errors import ConnectionLost, NotConnected, RequestError, RequestTimeout
from hubbub.client.events import Event, Message


class Delivered(msgspec.Struct, frozen=True, rename="camel"):
    """The server's acknowledgement: the message is stored."""

    client_message_id: str
    server_message_id: str
    conversation_id: str
    timestamp: int
    duplicate: bool


ChatHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


class Chat:
    """The chat half of a connected `Client`."""

    def __init__(self, client: Client, *, typing_interval: float = 3.0) -> None:
        self.client = client
        self.typing_interval = typing_interval
        self._typing_sent: dict[str, float] = {}

    async def send(
        self,
        conversation_id: str,
        content: str,
        *,
        reply_to: str | None = None,
        attachments: list[str] | None = None,
        client_message_id: str | None = None,
        timeout: float = 30.0,
    ) -> Delivered:
        """Send a message; returns once the server has stored it.

        Across dropped connections it retries with the same clientMessageId until
        `timeout`, then raises `TimeoutError`. A refusal (not a member, bad content)
        raises `RequestError` at once.
        """
        payload: dict[str, Any] = {
            "conversationId": conversation_id,
            "clientMessageId": client_message_id or uuid.uuid4().hex,
            "content": content,
        }
        if reply_to is not None:
            payload["replyTo"] = reply_to
        if attachments:
            payload["attachments"] = attachments
        self._typing_sent.pop(conversation_id, None)  # the server ends typing on a message
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await self.client.wait_connected()
                    answer = await self.client.request("chat.send_message", payload)
                except (ConnectionLost, NotConnected, RequestTimeout):
                    continue  # same clientMessageId again: the server keeps one copy
                return msgspec.convert(answer, Delivered)

    async def typing(self, conversation_id: str) -> None:
        """Say the user is typing; call it on every keystroke, it sends at most one
        `chat.typing_start` per `typing_interval` (the server ends typing after 5 s)."""
        now = time.monotonic()
        if now - self._typing_sent.get(conversation_id, -1e9) < self.typing_interval:
            return
        self._typing_sent[conversation_id] = now
        await self.client.send("chat.typing_start", {"conversationId": conversation_id})

    async def stop_typing(self, conversation_id: str) -> None:
        self._typing_sent.pop(conversation_id, None)
        await self.client.send("chat.typing_stop", {"conversationId": conversation_id})

    async def mark_read(self, conversation_id: str, message_id: str) -> int:
        """Mark everything up to `message_id` read; returns the conversation's unread count."""
        answer = await self.client.request(
            "chat.mark_read", {"conversationId": conversation_id, "messageId": message_id}
        )
        return int(answer.get("unread", 0))

    def on(self, type: str, handler: ChatHandler) -> Callable[[], None]:
        """Call `handler(payload)` for each chat event of `type` (`chat.new_message`,
        `chat.user_typing`, `chat.message_read`, `chat.unread_count`, ...)."""

        async def pick(event: Event) -> None:
            if isinstance(event, Message) and event.type == type:
                result = handler(event.payload)
                if result is not None:
                    await result

        return self.client.on(None, pick)

    def on_message(self, handler: ChatHandler) -> Callable[[], None]:
        return self.on("chat.new_message", handler)


class ChatHttp:
    """The chat HTTP API (`/api/conversations`) as one user, or as the server with the
    API key. Errors raise `RequestError` with the server's code."""

    def __init__(
        self, base_url: str, token: str, *, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> ChatHttp:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(
            method,
            self.base_url + path,
            json=json,
            data=data,
            params=params,
            headers={**self._headers, **(headers or {})},
        ) as response:
            if response.status >= 400:
                body = await response.json(content_type=None)
                error = body.get("error", {}) if isinstance(body, dict) else {}
                raise RequestError(str(error.get("code", "internal")), str(error.get("message")))
            if response.content_type == "application/json":
                return await response.json()
            return await response.read()

    async def create_conversation(self, members: list[str], title: str | None = None) -> str:
        body = await self._call(
            "POST", "/api/conversations", json={"members": members, "title": title}
        )
        return str(body["conversationId"])

    async def conversations(self) -> list[dict[str, Any]]:
        """Conversations with members, unread count and last message, most recent first."""
        return list((await self._call("GET", "/api/conversations"))["conversations"])

    async def history(
        self,
        conversation_id: str,
        *,
        before: str | None = None,
        after: str | None = None,
        limit: int = 50,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of messages, oldest first, and the cursor of the next page (or None)."""
        params = {"limit": str(limit)}
        if before is not None:
            params["before"] = before
        if after is not None:
            params["after"] = after
        body = await self._call(
            "GET", f"/api/conversations/{conversation_id}/messages", params=params
        )
        return list(body["messages"]), body.get("next")

    async def search(self, conversation_id: str, query: str) -> list[dict[str, Any]]:
        body = await self._call(
            "GET", f"/api/conversations/{conversation_id}/search", params={"q": query}
        )
        return list(body["messages"])

    async def upload(
        self, conversation_id: str, name: str, data: bytes, content_type: str
    ) -> dict[str, Any]:
        """Upload an attachment; pass its `attachmentId` to `Chat.send(attachments=...)`."""
        body = await self._call(
            "POST",
            f"/api/conversations/{conversation_id}/attachments",
            data=data,
            params={"name": name},
            headers={"Content-Type": content_type},
        )
        return dict(body)

    async def download(self, conversation_id: str, attachment_id: str) -> bytes:
        path = f"/api/conversations/{conversation_id}/attachments/{attachment_id}"
        return bytes(await self._call("GET", path))
