"""One contract, both databases: SQLite and PostgreSQL pass the same store tests.

SQLite is a fresh file in `tmp_path`. PostgreSQL is the real server of
HUBBUB_TEST_DATABASE_URL; each test gets a schema of its own (`hubbub_test_<random>`,
through the store's `schema` option, which sets the connections' search_path) and
drops it afterwards, so tests are independent and re-runnable. When PostgreSQL is
missing, its tests fail under CI (CI=true) and skip elsewhere.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.clock import ManualClock
from hubbub.engines.migrations import head_revision
from hubbub.engines.sql import SqlStore, kv_table, open_store, store_url
from hubbub.engines.store import AUTO_ID, Store, metadata
from hubbub.errors import Unavailable
from tests.services import DATABASE_URL

MakeStore = Callable[[], Awaitable[SqlStore]]
CORE_HEAD = head_revision()
KEYS = ("channel", "client_message_id")

# An "app" table, declared on the shared metadata the way an app module does.
messages = sa.Table(
    "conformance_messages",
    metadata,
    sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("client_message_id", sa.String(100), nullable=False),
    sa.Column("body", sa.JSON, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("channel", "client_message_id"),
)

# ... and the revision that app ships to create it.
APP_REVISION_1 = """
import sqlalchemy as sa
from alembic import op

from hubbub.engines.store import AUTO_ID

revision = "conformance_0001"
down_revision = None


def upgrade():
    op.create_table(
        "conformance_messages",
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(100), nullable=False),
        sa.Column("client_message_id", sa.String(100), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint(
            "channel", "client_message_id", name="uq_conformance_messages_channel_client_message_id"
        ),
    )
"""

APP_REVISION_2 = """
import sqlalchemy as sa
from alembic import op

revision = "conformance_0002"
down_revision = "conformance_0001"


def upgrade():
    op.create_index("ix_conformance_messages_created_at", "conformance_messages", ["created_at"])
"""


async def _require_postgres() -> None:
    try:
        conn = await asyncpg.connect(DATABASE_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {DATABASE_URL}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    await conn.close()


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(DATABASE_URL, timeout=5)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall_ms=1_800_000_000_000)


@pytest.fixture
def app_migrations(tmp_path: Path) -> Path:
    location = tmp_path / "app_migrations"
    location.mkdir()
    (location / "conformance_0001.py").write_text(APP_REVISION_1)
    return location


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
async def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[MakeStore]:
    """Opens stores on one fresh database; each call is a new engine, like another node."""
    opened: list[SqlStore] = []
    schema: str | None = None
    url: str | None = None
    if request.param == "postgresql":
        await _require_postgres()
        url, schema = DATABASE_URL, f"hubbub_test_{secrets.token_hex(6)}"

    async def make() -> SqlStore:
        store = await open_store(url, tmp_path / "data", clock=clock, schema=schema)
        opened.append(store)
        return store

    try:
        yield make
    finally:
        for store in opened:
            await store.close()
        if schema is not None:
            await _drop_schema(schema)


@pytest.fixture
async def store(make_store: MakeStore, app_migrations: Path) -> SqlStore:
    """A migrated store with the conformance "app" registered."""
    opened = await make_store()
    opened.add_migrations("conformance", app_migrations)
    await opened.upgrade()
    return opened


async def _table_names(store: SqlStore) -> set[str]:
    async with store.read() as conn:
        return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))


async def _count(store: SqlStore, table: sa.Table) -> int:
    async with store.read() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def _message(client_id: str, text: str = "hi", channel: str = "chat:lobby") -> dict[str, Any]:
    return {
        "channel": channel,
        "client_message_id": client_id,
        "body": {"text": text},
        "created_at": 1_800_000_000_000,
    }


# -- migrations ---------------------------------------------------------------------


async def test_upgrade_creates_the_core_tables_and_a_second_upgrade_changes_nothing(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    assert await store.current_revision() is None

    assert await store.upgrade() == [CORE_HEAD]
    assert {"hubbub_kv", "hubbub_version_core"} <= await _table_names(store)
    assert await store.current_revision() == CORE_HEAD

    await store.kv_set("ns", "kept", 1)
    assert await store.upgrade() == []
    assert await store.current_revision() == CORE_HEAD
    assert await store.kv_get("ns", "kept") == 1


async def test_several_nodes_upgrading_at_once_migrate_exactly_once(
    make_store: MakeStore,
) -> None:
    stores = [await make_store() for _ in range(4)]
    results = await asyncio.gather(*(s.upgrade() for s in stores))
    assert sorted(results) == [[], [], [], [CORE_HEAD]]
    for store in stores:
        assert await store.current_revision() == CORE_HEAD


async def test_an_app_table_declared_on_metadata_is_created_by_the_apps_migrations(
    make_store: MakeStore, app_migrations: Path
) -> None:
    store = await make_store()
    store.add_migrations("conformance", app_migrations)
    assert await store.upgrade() == [CORE_HEAD, "conformance_0001"]
    assert await store.current_revision("conformance") == "conformance_0001"

    async with store.begin() as conn:
        await conn.execute(sa.insert(messages).values(_message("m1")))
    async with store.read() as conn:
        row = (await conn.execute(sa.select(messages))).mappings().one()
    assert row["body"] == {"text": "hi"} and isinstance(row["id"], int)

    (app_migrations / "conformance_0002.py").write_text(APP_REVISION_2)
    assert await store.upgrade() == ["conformance_0002"]
    assert await store.current_revision("conformance") == "conformance_0002"
    assert await _count(store, messages) == 1


async def test_app_migration_names_are_checked(make_store: MakeStore, tmp_path: Path) -> None:
    store = await make_store()
    for bad in ("core", "Chat", "chat-app", ""):
        with pytest.raises(ValueError):
            store.add_migrations(bad, tmp_path)
    with pytest.raises(ValueError):
        store.add_migrations("chat", tmp_path / "missing")


# -- transactions -------------------------------------------------------------------


async def test_a_transaction_that_raises_leaves_nothing_behind(store: SqlStore) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with store.begin() as conn:
            await store.kv_set("ns", "k", "v", conn=conn)
            await store.insert_idempotent(messages, _message("m1"), key=KEYS, conn=conn)
            raise RuntimeError("boom")
    assert await store.kv_get("ns", "k") is None
    assert await _count(store, messages) == 0


async def test_a_transaction_commits_every_write_together(store: SqlStore) -> None:
    async with store.begin() as conn:
        await store.kv_set("ns", "a", 1, conn=conn)
        await store.kv_set("ns", "b", 2, conn=conn)
        assert await store.kv_get("ns", "a", conn=conn) == 1
    assert [await store.kv_get("ns", k) for k in "ab"] == [1, 2]


async def test_a_read_transaction_refuses_to_write(store: SqlStore) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        async with store.read() as conn:
            await conn.execute(sa.delete(kv_table))


async def test_a_read_transaction_sees_one_snapshot(store: SqlStore) -> None:
    await store.kv_set("ns", "k", "before")
    async with store.read() as conn:
        assert await store.kv_get("ns", "k", conn=conn) == "before"
        await store.kv_set("ns", "k", "after")
        assert await store.kv_get("ns", "k", conn=conn) == "before"
    assert await store.kv_get("ns", "k") == "after"


async def test_foreign_keys_are_enforced(store: SqlStore) -> None:
    local = sa.MetaData()
    parent = sa.Table("conformance_parent", local, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(
        "conformance_child",
        local,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_id", sa.ForeignKey(parent.c.id), nullable=False),
    )
    async with store.begin() as conn:
        await conn.run_sync(local.create_all)
    with pytest.raises(sa.exc.IntegrityError):
        async with store.begin() as conn:
            await conn.execute(sa.insert(child).values(id=1, parent_id=42))


# -- key-value ----------------------------------------------------------------------


async def test_kv_set_get_and_delete(store: SqlStore) -> None:
    assert await store.kv_get("ns", "k") is None
    assert await store.kv_get("ns", "k", "fallback") == "fallback"
    await store.kv_set("ns", "k", {"v": 1})
    await store.kv_set("ns", "k", {"v": 2})
    await store.kv_set("other", "k", "elsewhere")
    assert await store.kv_get("ns", "k") == {"v": 2}
    assert await store.kv_delete("ns", "k") is True
    assert await store.kv_delete("ns", "k") is False
    assert await store.kv_get("ns", "k", "gone") == "gone"
    assert await store.kv_get("other", "k") == "elsewhere"


async def test_kv_stores_json_null_apart_from_a_missing_key(store: SqlStore) -> None:
    await store.kv_set("ns", "null", None)
    assert await store.kv_get("ns", "null", "missing") is None


async def test_kv_set_stamps_the_time_of_the_stores_clock(
    store: SqlStore, clock: ManualClock
) -> None:
    await store.kv_set("ns", "k", 1)
    clock.advance(5)
    await store.kv_set("ns", "k", 2)
    async with store.read() as conn:
        stamp = await conn.scalar(sa.select(kv_table.c.updated_at))
    assert stamp == clock.time_ms()


NESTED = {
    "text": "héllo wörld — 你好 — مرحبا — 😀👩‍👩‍👧",
    'quote"s': "back\\slash\nnew line\ttab \u0000 nul",
    "nested": {"list": [1, -2.5, True, False, None, [], {}], "deep": [[[{"k": "v"}]]]},
    "big": 2**63 + 1,
    "float": 0.1,
}


async def test_kv_round_trips_nested_json_with_unicode(store: SqlStore) -> None:
    await store.kv_set("ns", "ключ 🔑", NESTED)
    assert await store.kv_get("ns", "ключ 🔑") == NESTED


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=JSON)
async def test_kv_round_trips_any_json_value(store: SqlStore, value: Any) -> None:
    await store.kv_set("prop", "value", value)
    assert await store.kv_get("prop", "value", "missing") == value


@pytest.mark.parametrize("value", [math.nan, math.inf, {1, 2}, object()])
async def test_kv_refuses_values_that_are_not_json(store: SqlStore, value: Any) -> None:
    with pytest.raises(sa.exc.StatementError):
        await store.kv_set("ns", "bad", value)
    assert await store.kv_get("ns", "bad", "missing") == "missing"


async def test_kv_refuses_keys_over_the_limit_on_every_database(store: SqlStore) -> None:
    with pytest.raises(ValueError):
        await store.kv_set("ns", "k" * 501, 1)
    with pytest.raises(ValueError):
        await store.kv_set("", "k", 1)
    await store.kv_set("n" * 200, "k" * 500, 1)
    assert await store.kv_get("n" * 200, "k" * 500) == 1


# -- idempotent insert --------------------------------------------------------------


async def test_insert_idempotent_creates_once_then_returns_the_stored_row(
    store: SqlStore,
) -> None:
    first = await store.insert_idempotent(messages, _message("m1", "first"), key=KEYS)
    again = await store.insert_idempotent(messages, _message("m1", "retry"), key=KEYS)
    other = await store.insert_idempotent(messages, _message("m2"), key=KEYS)
    assert first.created is True and again.created is False and other.created is True
    assert dict(again.row) == dict(first.row)
    assert first.row["body"] == {"text": "first"}
    assert other.row["id"] != first.row["id"]
    assert await _count(store, messages) == 2


async def test_twenty_concurrent_inserts_of_one_key_store_one_row_and_agree_on_it(
    store: SqlStore, make_store: MakeStore
) -> None:
    other_node = await make_store()
    start = asyncio.Event()

    async def insert(i: int) -> Any:
        await start.wait()
        node = store if i % 2 else other_node
        return await node.insert_idempotent(messages, _message("same", f"try {i}"), key=KEYS)

    tasks = [asyncio.create_task(insert(i)) for i in range(20)]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sum(r.created for r in results) == 1
    assert len({r.row["id"] for r in results}) == 1
    assert len({r.row["body"]["text"] for r in results}) == 1
    assert await _count(store, messages) == 1


async def test_insert_ignoring_duplicates_skips_stored_and_repeated_keys_in_one_statement(
    store: SqlStore,
) -> None:
    await store.insert_idempotent(messages, _message("old", "stored before"), key=KEYS)
    rows = [
        _message("new1", "a"),
        _message("old", "b"),
        _message("new2", "c"),
        _message("new1", "d"),
    ]
    async with store.begin() as conn:
        result = await conn.execute(
            store.insert_ignoring_duplicates(messages, KEYS).values(rows).returning(messages)
        )
        inserted = [(r["client_message_id"], r["body"]["text"]) for r in result.mappings()]
    assert sorted(inserted) == [("new1", "a"), ("new2", "c")]
    assert await _count(store, messages) == 3
    with pytest.raises(ValueError, match="unique"):
        store.insert_ignoring_duplicates(messages, ("client_message_id",))


async def test_insert_idempotent_needs_a_unique_key_with_values(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="unique"):
        await store.insert_idempotent(messages, _message("m1"), key=("client_message_id",))
    with pytest.raises(ValueError, match="value"):
        await store.insert_idempotent(
            messages, {**_message("m1"), "client_message_id": None}, key=KEYS
        )
    by_id = await store.insert_idempotent(messages, {"id": 7, **_message("m1")}, key=("id",))
    assert by_id.created and by_id.row["id"] == 7


async def test_sql_store_satisfies_the_store_protocol(store: SqlStore) -> None:
    as_protocol: Store = store
    assert as_protocol.dialect in ("sqlite", "postgresql")
    assert as_protocol.metadata is metadata


# -- opening a store ----------------------------------------------------------------


def test_database_urls_map_to_the_async_drivers(tmp_path: Path) -> None:
    default = store_url(None, tmp_path)
    assert default.drivername == "sqlite+aiosqlite"
    assert default.database == str(tmp_path / "hubbub.db")
    assert (
        store_url("sqlite:///x/h.db", tmp_path).render_as_string() == "sqlite+aiosqlite:///x/h.db"
    )
    pg = store_url("postgresql://u:p@db:5432/hub", tmp_path)
    assert pg.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@db:5432/hub"
    assert store_url("postgres://db/hub", tmp_path).drivername == "postgresql+asyncpg"
    assert store_url("postgresql+asyncpg://db/hub", tmp_path).drivername == "postgresql+asyncpg"


@pytest.mark.parametrize(
    "url", ["mysql://db/hub", "sqlite://", "sqlite:///:memory:", "postgresql+psycopg2://db/x", "x"]
)
def test_unsupported_database_urls_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store_url(url, tmp_path)


async def test_a_database_that_is_down_fails_at_open_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        await open_store("postgresql://postgres@127.0.0.1:1/test", tmp_path)


async def test_postgresql_upgrade_creates_a_missing_schema(tmp_path: Path) -> None:
    await _require_postgres()
    schema = f"hubbub_test_{secrets.token_hex(6)}"
    store = await open_store(DATABASE_URL, tmp_path, schema=schema)
    try:
        assert await store.upgrade() == [CORE_HEAD]
        await store.kv_set("ns", "k", "in its own schema")
        async with store.read() as conn:
            found = await conn.scalar(
                sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema}
            )
        assert found == 2  # hubbub_kv and hubbub_version_core
    finally:
        await store.close()
        await _drop_schema(schema)
