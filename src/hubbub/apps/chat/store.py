"""Chat's durable data: conversations, members, messages, read positions, search.

Every query of the chat app lives here, on the `Store` contract, so SQLite and
PostgreSQL behave the same. Message ids grow with time; a history page's cursor is
a message id, so pages stay put while new messages arrive.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.apps.chat.tables import attachments, conversations, members, messages
from hubbub.core.groupcommit import GroupCommit, Pending
from hubbub.engines.store import Store
from hubbub.errors import Conflict, Forbidden, HubbubError, NotFound

PAGE_DEFAULT = 50
PAGE_MAX = 200
SEARCH_LIMIT = 50
SEARCH_WORDS = 8
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class _NewMessage:
    values: dict[str, Any]
    attachment_ids: tuple[str, ...]


_Stored = tuple[RowMapping, bool, list[str]]


def _key(new: _NewMessage) -> tuple[str, str]:
    return new.values["sender_id"], new.values["client_message_id"]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history, oldest first; `next` is the cursor of the page after it."""

    messages: list[dict[str, Any]]
    next: str | None


def message_body(row: RowMapping) -> dict[str, Any]:
    """A stored message as `chat.new_message` carries it (PROTOCOL.md section 12)."""
    body: dict[str, Any] = {
        "serverMessageId": str(row["id"]),
        "conversationId": row["conversation_id"],
        "senderId": row["sender_id"],
        "clientMessageId": row["client_message_id"],
        "content": row["content"],
        "createdAt": row["created_at"],
    }
    if row["reply_to"] is not None:
        body["replyTo"] = str(row["reply_to"])
    if row["attachments"]:
        body["attachments"] = row["attachments"]
    return body


def search_words(query: str) -> list[str]:
    """The words of a search query, lower-cased (punctuation and operators dropped)."""
    return [w.lower() for w in _WORD.findall(query)][:SEARCH_WORDS]


class ChatStore:
    """The chat tables on a `Store`."""

    def __init__(
        self,
        store: Store,
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Future[None]] = asyncio.ensure_future,
    ) -> None:
        """`spawn` starts background writers (pass `Hub.spawn`, which waits for them on stop)."""
        self.store = store
        self._writes: GroupCommit[_NewMessage, _Stored] = GroupCommit(
            self._store_batch, spawn=spawn
        )
        self._watchers: GroupCommit[str, set[str]] = GroupCommit(
            self._shared_with_batch, spawn=spawn, max_batch=500
        )

    # -- conversations -------------------------------------------------------------

    async def create_conversation(
        self, creator: str, member_ids: Sequence[str], title: str | None, now: int
    ) -> tuple[str, bool]:
        """Make a conversation with `member_ids` (the creator among them, if a user).

        Two members and no title make a direct conversation, of which there is one per
        pair: asking again returns the same id. Returns `(id, created)`.
        """
        unique = sorted(set(member_ids))
        direct = len(unique) == 2 and not title
        values = {
            "id": "c" + secrets.token_hex(8),
            "kind": "direct" if direct else "group",
            "title": title,
            "direct_key": "\n".join(unique) if direct else None,
            "created_by": creator,
            "created_at": now,
        }
        async with self.store.begin() as conn:
            if direct:
                made = await self.store.insert_idempotent(
                    conversations, values, key=["direct_key"], conn=conn
                )
                if not made.created:
                    return str(made.row["id"]), False
            else:
                await conn.execute(sa.insert(conversations).values(values))
            await conn.execute(
                sa.insert(members),
                [{"conversation_id": values["id"], "user_id": u, "joined_at": now} for u in unique],
            )
        return str(values["id"]), True

    async def conversation(self, conversation_id: str) -> RowMapping | None:
        async with self.store.read() as conn:
            query = sa.select(conversations).where(conversations.c.id == conversation_id)
            return (await conn.execute(query)).mappings().first()

    async def member_ids(
        self, conversation_id: str, conn: AsyncConnection | None = None
    ) -> list[str]:
        query = (
            sa.select(members.c.user_id)
            .where(members.c.conversation_id == conversation_id)
            .order_by(members.c.user_id)
        )
        if conn is not None:
            return list((await conn.execute(query)).scalars())
        async with self.store.read() as own:
            return list((await own.execute(query)).scalars())

    async def is_member(self, conversation_id: str, user_id: str) -> bool:
        query = sa.select(sa.literal(1)).where(
            members.c.conversation_id == conversation_id, members.c.user_id == user_id
        )
        async with self.store.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def require_member(self, conversation_id: str, user_id: str) -> None:
        """Raise Forbidden unless `user_id` is a member (a conversation that does not
        exist looks the same, so ids cannot be probed)."""
        if not await self.is_member(conversation_id, user_id):
            raise Forbidden("not a member of this conversation")

    async def add_member(self, conversation_id: str, user_id: str, now: int) -> bool:
        """Add a member to a group; False when already one."""
        async with self.store.begin() as conn:
            kind = await conn.scalar(
                sa.select(conversations.c.kind).where(conversations.c.id == conversation_id)
            )
            if kind is None:
                raise NotFound("no such conversation")
            if kind == "direct":
                raise Conflict("a direct conversation has exactly two members")
            made = await self.store.insert_idempotent(
                members,
                {"conversation_id": conversation_id, "user_id": user_id, "joined_at": now},
                key=["conversation_id", "user_id"],
                conn=conn,
            )
            return made.created

    async def remove_member(self, conversation_id: str, user_id: str) -> bool:
        async with self.store.begin() as conn:
            kind = await conn.scalar(
                sa.select(conversations.c.kind).where(conversations.c.id == conversation_id)
            )
            if kind == "direct":
                raise Conflict("a direct conversation has exactly two members")
            result = await conn.execute(
                sa.delete(members).where(
                    members.c.conversation_id == conversation_id, members.c.user_id == user_id
                )
            )
            return bool(result.rowcount)

    async def shared_with(self, user_id: str) -> set[str]:
        """Every user who shares a conversation with `user_id` (the user's watchers).

        Asked on every first connection and last disconnection of a user, so the
        questions asked at the same moment (a reconnect storm) share one query.
        """
        return await self._watchers.submit(user_id)

    async def _shared_with_batch(self, batch: list[Pending[str, set[str]]]) -> None:
        users = sorted({p.item for p in batch})
        mine, theirs = members.alias("mine"), members.alias("theirs")
        query = (
            sa.select(mine.c.user_id, theirs.c.user_id)
            .join(theirs, theirs.c.conversation_id == mine.c.conversation_id)
            .where(mine.c.user_id.in_(users), theirs.c.user_id != mine.c.user_id)
            .distinct()
        )
        found: dict[str, set[str]] = {user: set() for user in users}
        async with self.store.read() as conn:
            for user, other in await conn.execute(query):
                found[user].add(other)
        for pending in batch:
            pending.done(set(found[pending.item]))

    async def conversations_of(self, user_id: str, only: str | None = None) -> list[dict[str, Any]]:
        """The user's conversations (or just `only`), most recently active first, each
        with its members, unread count and last message."""
        query = (
            sa.select(conversations, members.c.last_read_id)
            .join(members, members.c.conversation_id == conversations.c.id)
            .where(members.c.user_id == user_id)
        )
        if only is not None:
            query = query.where(conversations.c.id == only)
        async with self.store.read() as conn:
            mine = (await conn.execute(query)).mappings().all()
            ids = [row["id"] for row in mine]
            if not ids:
                return []
            roster = await self._members_of(conn, ids)
            last = await self._last_messages(conn, ids)
            unread = await self._unread_counts(conn, user_id, ids)
        listed = []
        for row in mine:
            latest = last.get(row["id"])
            listed.append(
                {
                    "conversationId": row["id"],
                    "kind": row["kind"],
                    "title": row["title"],
                    "members": list(roster.get(row["id"], {})),
                    "readUpTo": roster.get(row["id"], {}),
                    "unread": unread.get(row["id"], 0),
                    "lastReadId": str(row["last_read_id"]),
                    "lastMessage": message_body(latest) if latest is not None else None,
                    "createdAt": row["created_at"],
                }
            )
        listed.sort(key=_activity, reverse=True)
        return listed

    async def _members_of(self, conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, str]]:
        """Each conversation's members, in order, with the id each has read up to."""
        rows = await conn.execute(
            sa.select(members.c.conversation_id, members.c.user_id, members.c.last_read_id)
            .where(members.c.conversation_id.in_(ids))
            .order_by(members.c.user_id)
        )
        roster: dict[str, dict[str, str]] = {}
        for conversation_id, member, read in rows:
            roster.setdefault(conversation_id, {})[member] = str(read)
        return roster

    async def _last_messages(self, conn: AsyncConnection, ids: list[str]) -> dict[str, RowMapping]:
        newest = (
            sa.select(sa.func.max(messages.c.id))
            .where(messages.c.conversation_id.in_(ids))
            .group_by(messages.c.conversation_id)
        )
        rows = (await conn.execute(sa.select(messages).where(messages.c.id.in_(newest)))).mappings()
        return {row["conversation_id"]: row for row in rows}

    async def _unread_counts(
        self, conn: AsyncConnection, user_id: str, ids: Iterable[str]
    ) -> dict[str, int]:
        query = (
            sa.select(messages.c.conversation_id, sa.func.count())
            .join(
                members,
                sa.and_(
                    members.c.conversation_id == messages.c.conversation_id,
                    members.c.user_id == user_id,
                ),
            )
            .where(
                messages.c.conversation_id.in_(list(ids)),
                messages.c.id > members.c.last_read_id,
                messages.c.sender_id != user_id,
            )
            .group_by(messages.c.conversation_id)
        )
        return {cid: int(n) for cid, n in await conn.execute(query)}

    async def unread_count(self, conversation_id: str, user_id: str) -> int:
        async with self.store.read() as conn:
            counts = await self._unread_counts(conn, user_id, [conversation_id])
        return counts.get(conversation_id, 0)

    # -- messages ------------------------------------------------------------------

    async def store_message(
        self, values: dict[str, Any], attachment_ids: Sequence[str]
    ) -> tuple[RowMapping, bool, list[str]]:
        """Store a message once per (sender, clientMessageId), checking membership,
        `replyTo` and attachments in the same transaction.

        Returns `(row, created, member_ids)`. A retry returns the stored row; a
        clientMessageId reused for another conversation or content is a Conflict.
        Messages sent at the same time share one transaction (group commit); each
        call still returns only once its message is committed.
        """
        row, created, roster = await self._writes.submit(_NewMessage(values, tuple(attachment_ids)))
        if not created and (
            row["conversation_id"] != values["conversation_id"]
            or row["content"] != values["content"]
        ):
            raise Conflict("clientMessageId already used for another message")
        return row, created, roster

    async def _store_batch(self, batch: list[Pending[_NewMessage, _Stored]]) -> None:
        async with self.store.begin() as conn:
            rosters = await self._rosters(conn, {p.item.values["conversation_id"] for p in batch})
            accepted: list[Pending[_NewMessage, _Stored]] = []
            for pending in batch:
                try:
                    await self._check_message(conn, pending.item, rosters)
                except HubbubError as exc:
                    pending.fail(exc)
                else:
                    accepted.append(pending)
            if not accepted:
                return
            inserted = await conn.execute(
                self.store.insert_ignoring_duplicates(messages, ["sender_id", "client_message_id"])
                .values([p.item.values for p in accepted])
                .returning(*messages.c)
            )
            made = {(r["sender_id"], r["client_message_id"]): r for r in inserted.mappings()}
            stored = dict(made)
            missing = [_key(p.item) for p in accepted if _key(p.item) not in made]
            if missing:
                existing = await conn.execute(
                    sa.select(messages).where(
                        sa.tuple_(messages.c.sender_id, messages.c.client_message_id).in_(missing)
                    )
                )
                stored.update(
                    {(r["sender_id"], r["client_message_id"]): r for r in existing.mappings()}
                )
        for pending in accepted:
            key = _key(pending.item)
            roster = rosters[pending.item.values["conversation_id"]]
            # The first of several sends of one key in a batch made it; the rest are retries.
            pending.done((stored[key], made.pop(key, None) is not None, roster))

    async def _rosters(self, conn: AsyncConnection, ids: set[str]) -> dict[str, list[str]]:
        rows = await conn.execute(
            sa.select(members.c.conversation_id, members.c.user_id)
            .where(members.c.conversation_id.in_(sorted(ids)))
            .order_by(members.c.user_id)
        )
        rosters: dict[str, list[str]] = {cid: [] for cid in ids}
        for conversation_id, user_id in rows:
            rosters[conversation_id].append(user_id)
        return rosters

    async def _check_message(
        self, conn: AsyncConnection, new: _NewMessage, rosters: dict[str, list[str]]
    ) -> None:
        values = new.values
        cid = values["conversation_id"]
        if values["sender_id"] not in rosters[cid]:
            raise Forbidden("not a member of this conversation")
        if values.get("reply_to") is not None:
            await self._check_reply(conn, cid, values["reply_to"])
        if new.attachment_ids:
            values["attachments"] = await self._attachments_for(
                conn, cid, values["sender_id"], new.attachment_ids
            )

    async def _check_reply(self, conn: AsyncConnection, cid: str, reply_to: int) -> None:
        found = await conn.scalar(
            sa.select(messages.c.conversation_id).where(messages.c.id == reply_to)
        )
        if found != cid:
            raise NotFound("replyTo is not a message of this conversation")

    async def _attachments_for(
        self, conn: AsyncConnection, cid: str, sender: str, ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        rows = (
            await conn.execute(
                sa.select(attachments).where(
                    attachments.c.id.in_(list(ids)),
                    attachments.c.conversation_id == cid,
                    attachments.c.uploader_id == sender,
                )
            )
        ).mappings()
        found = {row["id"]: row for row in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no attachment {missing[0]!r} uploaded by you to this conversation")
        return [attachment_body(found[i]) for i in ids]

    async def history(
        self, conversation_id: str, *, before: int | None, after: int | None, limit: int
    ) -> Page:
        """A page of messages, oldest first. Without a cursor: the newest; `before`: the
        ones just older (paging back); `after`: the ones just newer (catching up)."""
        query = sa.select(messages).where(messages.c.conversation_id == conversation_id)
        if after is not None:
            query = query.where(messages.c.id > after).order_by(messages.c.id)
        else:
            if before is not None:
                query = query.where(messages.c.id < before)
            query = query.order_by(messages.c.id.desc())
        async with self.store.read() as conn:
            rows = list((await conn.execute(query.limit(limit + 1))).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        if after is None:
            rows.reverse()
        cursor = None
        if more and rows:
            cursor = str(rows[-1]["id"] if after is not None else rows[0]["id"])
        return Page([message_body(r) for r in rows], cursor)

    async def search(self, conversation_id: str, words: list[str]) -> list[dict[str, Any]]:
        """Messages of the conversation holding every word (a word also matches as a
        prefix), newest first."""
        condition: sa.ColumnElement[bool] | sa.TextClause
        if self.store.dialect == "postgresql":
            condition = sa.text("chat_messages.search @@ to_tsquery('simple', :q)").bindparams(
                q=" & ".join(f"{w}:*" for w in words)
            )
        else:
            matching = sa.text(
                "SELECT rowid FROM chat_messages_fts WHERE chat_messages_fts MATCH :q"
            ).bindparams(q=" ".join(f'"{w}"*' for w in words))
            condition = messages.c.id.in_(matching)
        query = (
            sa.select(messages)
            .where(messages.c.conversation_id == conversation_id, condition)
            .order_by(messages.c.id.desc())
            .limit(SEARCH_LIMIT)
        )
        async with self.store.read() as conn:
            return [message_body(r) for r in (await conn.execute(query)).mappings()]

    async def mark_read(
        self, conversation_id: str, user_id: str, message_id: int, now: int
    ) -> tuple[int, int]:
        """Move the user's read position up to `message_id` (never back).

        Returns `(position, unread)`: the read position now held and the unread count.
        """
        async with self.store.begin() as conn:
            found = await conn.scalar(
                sa.select(messages.c.conversation_id).where(messages.c.id == message_id)
            )
            if found != conversation_id:
                raise NotFound("messageId is not a message of this conversation")
            where = sa.and_(
                members.c.conversation_id == conversation_id, members.c.user_id == user_id
            )
            await conn.execute(
                sa.update(members)
                .where(where, members.c.last_read_id < message_id)
                .values(last_read_id=message_id, last_read_at=now)
            )
            position = await conn.scalar(sa.select(members.c.last_read_id).where(where))
            if position is None:
                raise Forbidden("not a member of this conversation")
            unread = await self._unread_counts(conn, user_id, [conversation_id])
        return int(position), unread.get(conversation_id, 0)

    # -- attachments ---------------------------------------------------------------

    async def add_attachment(self, values: dict[str, Any]) -> None:
        async with self.store.begin() as conn:
            await conn.execute(sa.insert(attachments).values(values))

    async def attachment(self, conversation_id: str, attachment_id: str) -> RowMapping | None:
        query = sa.select(attachments).where(
            attachments.c.id == attachment_id, attachments.c.conversation_id == conversation_id
        )
        async with self.store.read() as conn:
            return (await conn.execute(query)).mappings().first()


def attachment_body(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An attachment as messages carry it."""
    return {
        "attachmentId": row["id"],
        "name": row["name"],
        "contentType": row["content_type"],
        "size": row["size"],
    }


def _activity(conversation: dict[str, Any]) -> int:
    last = conversation["lastMessage"]
    return int(last["createdAt"]) if last else int(conversation["createdAt"])
