"""The notifications app's storage on SQLite and on PostgreSQL: one behaviour on both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hubbub.apps.notify.migrations import LOCATION
from hubbub.apps.notify.model import ListQuery, attempts, notifications, push_subscriptions
from hubbub.apps.notify.providers import PushSubscription
from hubbub.apps.notify.repository import NotificationRepository
from hubbub.engines.sql import SqlStore
from hubbub.errors import NotFound
from tests.pgdb import app_store, fresh_database

NOW = 1_764_070_000_000


@asynccontextmanager
async def postgres_schema(database: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL of the test's own: a SQLite file, or a fresh PostgreSQL database."""
    if database == "sqlite":
        yield f"sqlite:///{tmp_path / 'notify.db'}"
        return
    async with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
async def repo(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[NotificationRepository]:
    async with app_store(request.param, tmp_path, "notify", LOCATION) as store:
        yield NotificationRepository(store)


def row(user: str, n: int = 0, **fields: Any) -> dict[str, Any]:
    values = {
        "user_id": user,
        "type": "t.x",
        "priority": "normal",
        "title": f"n{n}",
        "body": "",
        "data": {"n": n},
        "created_at": NOW + n,
        "live": True,
        "fallback": None,
        "fallback_due": None,
        "dedupe_key": None,
    }
    return values | fields


async def add(repo: NotificationRepository, user: str, n: int = 0, **fields: Any) -> int:
    made, created, _ = await repo.insert(row(user, n, **fields))
    assert created
    return int(made["id"])


async def test_the_migration_makes_exactly_the_declared_tables(
    repo: NotificationRepository,
) -> None:
    assert isinstance(repo.store, SqlStore)
    declared = [notifications, push_subscriptions, attempts]
    target = sa.MetaData()
    for table in declared:
        table.to_metadata(target)
    names = {t.name for t in declared}

    def compare(conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        found = []
        for difference in compare_metadata(context, target):
            item = difference[0] if isinstance(difference, list) else difference
            parts = [getattr(p, "table", p) for p in item[1:]]
            if any(getattr(p, "name", p) in names for p in parts):
                found.append(difference)
        return found

    async with repo.store.read() as conn:
        assert await conn.run_sync(compare) == []


async def test_pages_filter_and_stay_put_while_newer_notifications_arrive(
    repo: NotificationRepository,
) -> None:
    ids = [await add(repo, "alice", n, type="a" if n % 2 else "b") for n in range(6)]
    await add(repo, "bob", 99)
    first, more, unread = await repo.page("alice", ListQuery(limit=4))
    assert [r["id"] for r in first] == ids[::-1][:4] and more and unread == 6
    await add(repo, "alice", 50)
    rest, more, unread = await repo.page("alice", ListQuery(limit=4, before=str(first[-1]["id"])))
    assert [r["id"] for r in rest] == ids[1::-1] and not more and unread == 7
    typed, _, _ = await repo.page("alice", ListQuery(type="a"))
    assert [r["id"] for r in typed] == [ids[5], ids[3], ids[1]]
    await repo.set_time("alice", [ids[0]], "archived_at", NOW)
    only, _, _ = await repo.page("alice", ListQuery(archived="only"))
    assert [r["id"] for r in only] == [ids[0]]
    shown, _, _ = await repo.page("alice", ListQuery(limit=100))
    assert ids[0] not in [r["id"] for r in shown]


async def test_marks_are_all_or_nothing_and_reading_cancels_the_pending_fallback(
    repo: NotificationRepository,
) -> None:
    mine = await add(repo, "alice", 1, fallback="pending", fallback_due=NOW + 1000)
    theirs = await add(repo, "bob", 2)
    with pytest.raises(NotFound):
        await repo.set_time("alice", [mine, theirs], "read_at", NOW)
    assert (await repo.get(None, mine))["read_at"] is None
    changed, unread = await repo.set_time("alice", [mine], "read_at", NOW + 5)
    assert (changed, unread) == ([mine], 0)
    again, _ = await repo.set_time("alice", [mine], "read_at", NOW + 9)
    assert again == []
    stored = await repo.get("alice", mine)
    assert (stored["read_at"], stored["seen_at"], stored["fallback"]) == (
        NOW + 5,
        NOW + 5,
        "cancelled",
    )
    assert await repo.pending_fallbacks() == []
    assert await repo.claim_fallback(mine) is None


async def test_one_of_many_concurrent_claims_of_a_fallback_wins(
    repo: NotificationRepository,
) -> None:
    nid = await add(repo, "alice", fallback="pending", fallback_due=NOW)
    assert await repo.pending_fallbacks() == [(nid, NOW)]
    claims = await asyncio.gather(*(repo.claim_fallback(nid) for _ in range(8)))
    assert sum(c is not None for c in claims) == 1


async def test_a_repeated_dedupe_key_stores_one_notification(repo: NotificationRepository) -> None:
    results = await asyncio.gather(
        *(repo.insert(row("alice", n, dedupe_key="order-7")) for n in range(5))
    )
    assert sum(created for _, created, _ in results) == 1
    assert len({r["id"] for r, _, _ in results}) == 1
    assert await repo.unread_count("alice") == 1


async def test_a_browser_subscribed_again_by_another_user_moves_over(
    repo: NotificationRepository,
) -> None:
    sub = PushSubscription("https://push.example/abc", "key", "auth")
    await repo.add_subscription("alice", sub, NOW)
    await repo.add_subscription("alice", sub, NOW + 1)
    assert await repo.subscriptions("alice") == [sub]
    await repo.add_subscription("bob", sub, NOW + 2)
    assert await repo.subscriptions("alice") == []
    assert await repo.subscriptions("bob") == [sub]
    assert not await repo.remove_subscription("alice", sub.endpoint)
    assert await repo.remove_subscription("bob", sub.endpoint)
