"""Chat's storage on SQLite and on PostgreSQL: one behaviour on both.

History pages stay put while messages arrive, search finds words (and prefixes) in
one conversation only, unread counts follow the read position, and concurrent sends
of one clientMessageId store one message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hubbub.apps.chat import MIGRATIONS
from hubbub.apps.chat.store import ChatStore, search_words
from hubbub.apps.chat.tables import attachments, conversations, members, messages
from hubbub.engines.sql import SqlStore
from tests.pgdb import app_store

NOW = 1_764_070_000_000


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChatStore]:
    async with app_store(request.param, tmp_path, "chat", MIGRATIONS) as store:
        yield ChatStore(store)


async def _send(db: ChatStore, cid: str, sender: str, content: str, n: int = 0) -> dict[str, Any]:
    values = {
        "conversation_id": cid,
        "sender_id": sender,
        "client_message_id": f"{sender}-{content}-{n}",
        "content": content,
        "reply_to": None,
        "attachments": None,
        "created_at": NOW + n,
    }
    row, created, _ = await db.store_message(values, [])
    assert created
    return {"id": str(row["id"]), "content": row["content"]}


async def test_the_migration_makes_exactly_the_declared_tables(db: ChatStore) -> None:
    assert isinstance(db.store, SqlStore)
    declared = [conversations, members, messages, attachments]
    target = sa.MetaData()
    for table in declared:
        table.to_metadata(target)

    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, target)
        # only differences in chat's own tables count (others belong to core and apps)
        names = {t.name for t in declared}
        return [d for d in diff if _table_of(d) in names and not _is_search_index(d)]

    async with db.store.read() as conn:
        assert await conn.run_sync(compare) == []


def _is_search_index(difference: Any) -> bool:
    """PostgreSQL's full-text column and index exist by design beside the declared tables."""
    item = difference[0] if isinstance(difference, list) else difference
    return any(
        getattr(part, "name", None) in ("search", "ix_chat_messages_search") for part in item
    )


def _table_of(difference: Any) -> str | None:
    item = difference[0] if isinstance(difference, list) else difference
    for part in item[1:]:
        name = getattr(part, "name", None)
        table = getattr(part, "table", None)
        if table is not None:
            return str(table.name)
        if isinstance(part, str):
            return part
        if name is not None:
            return str(name)
    return None


async def test_history_pages_back_and_forward_stay_stable_while_messages_arrive(
    db: ChatStore,
) -> None:
    cid, _ = await db.create_conversation("ann", ["ann", "ben"], "paging", NOW)
    sent = [await _send(db, cid, "ann", f"m{n}", n) for n in range(25)]

    newest = await db.history(cid, before=None, after=None, limit=10)
    assert [m["content"] for m in newest.messages] == [f"m{n}" for n in range(15, 25)]
    assert newest.next == sent[15]["id"]

    arrivals = [await _send(db, cid, "ben", f"new{n}", 100 + n) for n in range(5)]
    older = await db.history(cid, before=int(newest.next), after=None, limit=10)
    assert [m["content"] for m in older.messages] == [f"m{n}" for n in range(5, 15)]
    oldest = await db.history(cid, before=int(older.next or 0), after=None, limit=10)
    assert [m["content"] for m in oldest.messages] == [f"m{n}" for n in range(5)]
    assert oldest.next is None

    forward = await db.history(cid, before=None, after=int(sent[22]["id"]), limit=4)
    assert [m["content"] for m in forward.messages] == ["m23", "m24", "new0", "new1"]
    rest = await db.history(cid, before=None, after=int(forward.next or 0), limit=4)
    assert [m["content"] for m in rest.messages] == ["new2", "new3", "new4"]
    assert rest.next is None and rest.messages[-1]["serverMessageId"] == arrivals[-1]["id"]


async def test_search_finds_every_word_and_prefixes_only_in_the_conversation(
    db: ChatStore,
) -> None:
    cid, _ = await db.create_conversation("ann", ["ann", "ben"], "search", NOW)
    other, _ = await db.create_conversation("ann", ["ann", "cat"], "elsewhere", NOW)
    await _send(db, cid, "ann", "Lunch at the Italian place?", 1)
    await _send(db, cid, "ben", "italian sounds great, see you at noon", 2)
    await _send(db, cid, "ann", "Déjà vu: the meeting moved", 3)
    await _send(db, other, "ann", "italian lunch elsewhere", 4)

    def contents(found: list[dict[str, Any]]) -> list[str]:
        return [m["content"] for m in found]

    assert contents(await db.search(cid, search_words("italian"))) == [
        "italian sounds great, see you at noon",
        "Lunch at the Italian place?",
    ]
    assert contents(await db.search(cid, search_words("ITAL lunch"))) == [
        "Lunch at the Italian place?"
    ]
    assert contents(await db.search(cid, search_words("meet"))) == ["Déjà vu: the meeting moved"]
    assert await db.search(cid, search_words("pizza")) == []
    # query syntax is not passed through: operators and quotes are just punctuation
    assert contents(await db.search(cid, search_words('noon" -see*) ('))) == [
        "italian sounds great, see you at noon"
    ]


async def test_unread_counts_follow_the_read_position_which_never_moves_back(
    db: ChatStore,
) -> None:
    cid, _ = await db.create_conversation("ann", ["ann", "ben"], "unread", NOW)
    sent = [await _send(db, cid, "ann", f"u{n}", n) for n in range(4)]
    await _send(db, cid, "ben", "own message", 9)
    assert await db.unread_count(cid, "ben") == 4
    assert await db.unread_count(cid, "ann") == 1
    assert await db.mark_read(cid, "ben", int(sent[2]["id"]), NOW) == (int(sent[2]["id"]), 1)
    assert await db.mark_read(cid, "ben", int(sent[0]["id"]), NOW) == (int(sent[2]["id"]), 1)
    listed = await db.conversations_of("ben")
    assert [(c["unread"], c["lastMessage"]["content"]) for c in listed] == [(1, "own message")]


async def test_concurrent_sends_of_one_client_message_id_store_one_message(db: ChatStore) -> None:
    cid, _ = await db.create_conversation("ann", ["ann", "ben"], "race", NOW)
    values = {
        "conversation_id": cid,
        "sender_id": "ann",
        "client_message_id": "same",
        "content": "once",
        "reply_to": None,
        "attachments": None,
        "created_at": NOW,
    }
    results = await asyncio.gather(*(db.store_message(dict(values), []) for _ in range(8)))
    assert sorted(created for _, created, _ in results) == [False] * 7 + [True]
    assert len({row["id"] for row, _, _ in results}) == 1
    page = await db.history(cid, before=None, after=None, limit=50)
    assert len(page.messages) == 1


async def test_one_direct_conversation_per_pair_even_when_made_at_once(db: ChatStore) -> None:
    made = await asyncio.gather(
        *(db.create_conversation("ann", ["ann", "ben"], None, NOW) for _ in range(5))
    )
    assert len({cid for cid, _ in made}) == 1
    assert sorted(created for _, created in made) == [False] * 4 + [True]
    assert await db.member_ids(made[0][0]) == ["ann", "ben"]


async def test_watchers_asked_at_once_for_many_users_are_each_right(db: ChatStore) -> None:
    await db.create_conversation("ann", ["ann", "ben"], None, NOW)
    await db.create_conversation("ann", ["ann", "cat", "dan"], "group", NOW)
    await db.create_conversation("eve", ["eve", "ben"], "other", NOW)
    users = ["ann", "ben", "cat", "dan", "eve", "zed"]
    found = await asyncio.gather(*(db.shared_with(u) for u in users))
    assert dict(zip(users, found, strict=True)) == {
        "ann": {"ben", "cat", "dan"},
        "ben": {"ann", "eve"},
        "cat": {"ann", "dan"},
        "dan": {"ann", "cat"},
        "eve": {"ben"},
        "zed": set(),
    }
