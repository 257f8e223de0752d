"""The chat app (PROTOCOL.md section 12): stored messages, typing, read receipts, presence.

A message is stored first, then the sender hears `chat.message_delivered`, then every
member, on every connection, gets `chat.new_message` on their `user:` channel, which
is sequenced and recovered after a reconnect. (sender, clientMessageId) is unique, so
a retry, on any connection, gets the same `serverMessageId` and sends nothing twice.
Members with no live connection anywhere are handed to the hub's notifier.

`ChatApp` is also the Python API: server code can create conversations and send
messages as any user, with the same rules.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import msgspec

from hubbub.apps.chat.attachments import AttachmentFiles
from hubbub.apps.chat.store import ChatStore, message_body
from hubbub.apps.chat.tables import CLIENT_MESSAGE_ID, USER_ID
from hubbub.apps.chat.typing import TypingTracker
from hubbub.core.auth import Identity
from hubbub.core.hub import Hub, Request
from hubbub.core.notices import Notice
from hubbub.errors import BadRequest, Unavailable
from hubbub.protocol.channels import is_valid_channel, user_channel

log = logging.getLogger("hubbub.chat")

MAX_CONTENT = 4000
"""Characters of one message's text."""
MAX_ATTACHMENTS = 10
MAX_MEMBERS = 500
NOTICE_BODY = 200


class SendMessage(msgspec.Struct, frozen=True, rename="camel"):
    conversation_id: str
    client_message_id: str
    content: str = ""
    reply_to: str | None = None
    attachments: list[str] = msgspec.field(default_factory=list)


class ConversationRef(msgspec.Struct, frozen=True, rename="camel"):
    conversation_id: str


class MarkRead(msgspec.Struct, frozen=True, rename="camel"):
    conversation_id: str
    message_id: str


@dataclass(frozen=True, slots=True)
class Sent:
    """What sending a message gave: the stored message, and whether this call stored it."""

    message: dict[str, Any]
    created: bool


def message_id(raw: str, field: str = "messageId") -> int:
    """A `serverMessageId` as the integer key it stands for."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest(f"`{field}` is not a message id")
    return int(raw)


def check_user_id(user_id: object) -> str:
    if (
        not isinstance(user_id, str)
        or not 0 < len(user_id) <= USER_ID
        or not is_valid_channel(user_channel(user_id))
    ):
        raise BadRequest("a user id has 1 to 128 letters, digits or _ . @ -")
    return user_id


class ChatApp:
    """Chat on one hub; see the module docstring. Make it with `hubbub.apps.chat.install`."""

    def __init__(self, hub: Hub, files: AttachmentFiles) -> None:
        self.hub = hub
        self.files = files
        self.typing = TypingTracker(hub.clock, self._announce_typing)
        self._db: ChatStore | None = None
        self._announcing: set[asyncio.Future[None]] = set()

    @property
    def db(self) -> ChatStore:
        if self._db is None:
            if self.hub.store is None:
                raise Unavailable("chat needs the store; the hub has not started")
            self._db = ChatStore(self.hub.store, self.hub.spawn)
        return self._db

    # -- the Python API ------------------------------------------------------------

    async def create_conversation(
        self, members: list[str], *, title: str | None = None, creator: str = "server"
    ) -> str:
        """Make a conversation (or find the direct one of two users); returns its id."""
        member_ids = [check_user_id(m) for m in members]
        if creator != "server":
            member_ids.append(creator)
        unique = sorted(set(member_ids))
        if not unique or len(unique) > MAX_MEMBERS:
            raise BadRequest(f"a conversation has 1 to {MAX_MEMBERS} members")
        if title is not None and (not isinstance(title, str) or len(title) > 200):
            raise BadRequest("title is a string of at most 200 characters")
        now = self.hub.clock.time_ms()
        conversation_id, created = await self.db.create_conversation(creator, unique, title, now)
        if created:
            kind = "direct" if len(unique) == 2 and not title else "group"
            event = {
                "conversationId": conversation_id,
                "kind": kind,
                "title": title,
                "members": unique,
                "createdBy": creator,
                "createdAt": now,
            }
            await self.to_users(unique, "chat.conversation_created", event)
        return conversation_id

    async def send_message(
        self,
        sender: str,
        conversation_id: str,
        content: str,
        *,
        client_message_id: str | None = None,
        reply_to: str | None = None,
        attachments: list[str] | None = None,
    ) -> Sent:
        """Store and deliver a message from `sender`; idempotent by `client_message_id`."""
        p = SendMessage(
            conversation_id=conversation_id,
            client_message_id=client_message_id or uuid.uuid4().hex,
            content=content,
            reply_to=reply_to,
            attachments=attachments or [],
        )
        sent, roster = await self._store(sender, p)
        if sent.created:
            await self._deliver(sent.message, roster)
        return sent

    async def mark_read(self, user_id: str, conversation_id: str, raw_id: str) -> dict[str, Any]:
        """Move `user_id`'s read position; tells every member and the reader's devices."""
        now, wanted = self.hub.clock.time_ms(), message_id(raw_id)
        position, unread = await self.db.mark_read(conversation_id, user_id, wanted, now)
        if position == wanted:
            event = {
                "conversationId": conversation_id,
                "userId": user_id,
                "messageId": str(position),
                "readAt": now,
            }
            await self.to_users(
                await self.db.member_ids(conversation_id), "chat.message_read", event
            )
            await self.hub.send_to_user(
                user_id, "chat.unread_count", {"conversationId": conversation_id, "unread": unread}
            )
        return {"conversationId": conversation_id, "messageId": str(position), "unread": unread}

    # -- sending -------------------------------------------------------------------

    async def _store(self, sender: str, p: SendMessage) -> tuple[Sent, list[str]]:
        if not 0 < len(p.client_message_id) <= CLIENT_MESSAGE_ID:
            raise BadRequest(f"clientMessageId has 1 to {CLIENT_MESSAGE_ID} characters")
        if len(p.content) > MAX_CONTENT:
            raise BadRequest(f"content has at most {MAX_CONTENT} characters")
        if not p.content.strip() and not p.attachments:
            raise BadRequest("a message needs content or attachments")
        if len(p.attachments) > MAX_ATTACHMENTS or len(set(p.attachments)) != len(p.attachments):
            raise BadRequest(f"at most {MAX_ATTACHMENTS} different attachments")
        values: dict[str, Any] = {
            "conversation_id": p.conversation_id,
            "sender_id": sender,
            "client_message_id": p.client_message_id,
            "content": p.content,
            "reply_to": message_id(p.reply_to, "replyTo") if p.reply_to is not None else None,
            "attachments": None,
            "created_at": self.hub.clock.time_ms(),
        }
        row, created, roster = await self.db.store_message(values, p.attachments)
        return Sent(message_body(row), created), roster

    async def _deliver(self, message: dict[str, Any], roster: list[str]) -> None:
        sender, conversation_id = message["senderId"], message["conversationId"]
        if self.typing.stop(conversation_id, sender, announce=False):
            await self._tell_typing(conversation_id, sender, False)  # before the message lands
        await self.to_users(roster, "chat.new_message", message)
        for member in roster:
            if member != sender and not await self.hub.is_online(member):
                await self.hub.notify(
                    Notice(
                        user_id=member,
                        type="chat.message",
                        title=sender,
                        body=message["content"][:NOTICE_BODY],
                        data={
                            "conversationId": conversation_id,
                            "serverMessageId": message["serverMessageId"],
                        },
                    )
                )

    async def to_users(self, users: list[str], type: str, payload: dict[str, Any]) -> None:
        """A sequenced event to every connection of each user, all users at once."""
        await asyncio.gather(*(self.hub.send_to_user(u, type, payload) for u in users))

    # -- typing --------------------------------------------------------------------

    def _announce_typing(self, conversation_id: str, user_id: str, is_typing: bool) -> None:
        task = self.hub.spawn(self._tell_typing(conversation_id, user_id, is_typing))
        self._announcing.add(task)
        task.add_done_callback(self._announcing.discard)

    async def settle(self) -> None:
        """Wait until every typing change so far has been announced."""
        while self._announcing:
            await asyncio.gather(*list(self._announcing))

    async def _tell_typing(self, conversation_id: str, user_id: str, is_typing: bool) -> None:
        event = {"conversationId": conversation_id, "userId": user_id, "isTyping": is_typing}
        try:
            roster = await self.db.member_ids(conversation_id)
            for member in roster:
                if member != user_id:
                    await self.hub.emit(user_channel(member), "chat.user_typing", event)
        except Exception:  # typing is ephemeral: a lost indicator is not worth more
            log.warning("could not announce typing in %s", conversation_id)

    # -- WebSocket handlers -------------------------------------------------------

    async def on_send_message(self, req: Request, p: SendMessage) -> None:
        sent, roster = await self._store(req.identity.user_id, p)
        message = sent.message
        req.reply(
            "chat.message_delivered",
            {
                "clientMessageId": message["clientMessageId"],
                "serverMessageId": message["serverMessageId"],
                "conversationId": message["conversationId"],
                "timestamp": message["createdAt"],
                "duplicate": not sent.created,
            },
        )
        if sent.created:
            await self._deliver(message, roster)

    async def on_typing_start(self, req: Request, p: ConversationRef) -> None:
        await self.db.require_member(p.conversation_id, req.identity.user_id)
        self.typing.start(p.conversation_id, req.identity.user_id)

    async def on_typing_stop(self, req: Request, p: ConversationRef) -> None:
        await self.db.require_member(p.conversation_id, req.identity.user_id)
        self.typing.stop(p.conversation_id, req.identity.user_id)

    async def on_mark_read(self, req: Request, p: MarkRead) -> None:
        await self.db.require_member(p.conversation_id, req.identity.user_id)
        answer = await self.mark_read(req.identity.user_id, p.conversation_id, p.message_id)
        req.reply("chat.marked_read", answer)

    async def may_subscribe(self, identity: Identity, channel: str) -> bool:
        """`chat:<conversationId>` (its presence) is for the conversation's members."""
        conversation_id = channel.split(":", 1)[1]
        return await self.db.is_member(conversation_id, identity.user_id)

    def register(self) -> None:
        hub = self.hub
        hub.on("chat.send_message", SendMessage)(self.on_send_message)
        hub.on("chat.typing_start", ConversationRef)(self.on_typing_start)
        hub.on("chat.typing_stop", ConversationRef)(self.on_typing_stop)
        hub.on("chat.mark_read", MarkRead)(self.on_mark_read)
        hub.subscribe_rule("chat")(self.may_subscribe)
        hub.presence_watchers(self._watchers)
        hub.on_stop(self.typing.clear)

    async def _watchers(self, user_id: str) -> set[str]:
        if self.hub.store is None:
            return set()
        return await self.db.shared_with(user_id)
