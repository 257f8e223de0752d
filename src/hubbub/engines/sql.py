"""The SQL store: SQLAlchemy Core (async) on SQLite (aiosqlite, the default) or PostgreSQL.

One `SqlStore` implements the `Store` contract on both databases. The parts where
they differ are handled here and nowhere else (docs/decisions/storage.md):

- SQLite runs in WAL mode with foreign keys on and a busy timeout. SQLAlchemy, not
  the sqlite3 driver, emits BEGIN: write transactions use BEGIN IMMEDIATE, which takes
  SQLite's single write lock up front, so a read-modify-write cannot fail half way
  with "database is locked"; inside one process, writers also queue on an
  asyncio lock instead of polling SQLite's busy handler. Read transactions use a plain
  BEGIN with `PRAGMA query_only`, and do not wait for writers.
- PostgreSQL runs migrations under a transaction-scoped advisory lock, so that
  several nodes starting at once migrate one after the other.
- Upserts use each dialect's INSERT ... ON CONFLICT, which both spell the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.clock import Clock, SystemClock
from hubbub.engines import migrations
from hubbub.engines.store import Inserted, metadata
from hubbub.errors import Unavailable

log = logging.getLogger("hubbub.store")

SQLITE_BUSY_TIMEOUT = 10.0
"""Seconds a SQLite writer waits for the write lock before the store reports Unavailable."""

KV_NAMESPACE_MAX = 200
KV_KEY_MAX = 500

kv_table = sa.Table(
    "hubbub_kv",
    metadata,
    sa.Column("namespace", sa.String(KV_NAMESPACE_MAX), primary_key=True),
    sa.Column("key", sa.String(KV_KEY_MAX), primary_key=True),
    sa.Column("value", sa.JSON(), nullable=False),
    sa.Column("updated_at", sa.BigInteger(), nullable=False),  # milliseconds
)

_READ_ONLY = "hubbub_read_only"  # execution option, and flag in the SQLite connection's info
_UNREACHABLE = (OSError, sa.exc.DBAPIError, sa.exc.TimeoutError)
# The same JSON on both databases: compact, UTF-8 as is, and no NaN (which PostgreSQL refuses).
_json_dumps = functools.partial(
    json.dumps, ensure_ascii=False, allow_nan=False, separators=(",", ":")
)


def store_url(url: str | None, data_dir: str | os.PathLike[str]) -> URL:
    """The async SQLAlchemy URL for a `database_url` setting; None is `<data_dir>/hubbub.db`.

    Accepts `sqlite:///path` and `postgresql://...` (or `postgres://`), with or without
    the async driver named; anything else is a ValueError.
    """
    if url is None:
        return URL.create("sqlite+aiosqlite", database=str(Path(data_dir) / "hubbub.db"))
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ValueError(f"not a database URL: {url!r}") from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite" and driver in ("", "aiosqlite"):
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            raise ValueError("SQLite needs a file (sqlite:///path): memory lives in one connection")
        return parsed.set(drivername="sqlite+aiosqlite")
    shown = parsed.render_as_string(hide_password=True)
    raise ValueError(f"unsupported database {shown!r}: use sqlite:///path or postgresql://...")


async def open_store(
    url: str | None,
    data_dir: str | os.PathLike[str],
    *,
    clock: Clock | None = None,
    schema: str | None = None,
) -> SqlStore:
    """Connect to the database of `url` (see `store_url`) and return its store.

    It connects once, so a wrong URL or a database that is down fails here, at start,
    as Unavailable. It does not migrate: call `upgrade()` once the apps have added
    their migrations. `schema` (PostgreSQL only) puts every table in that schema,
    created by `upgrade()` if missing, for a database shared with other applications.
    """
    target = store_url(url, data_dir)
    if url is None:
        await asyncio.to_thread(Path(data_dir).mkdir, parents=True, exist_ok=True)
    store = SqlStore(_create_engine(target, schema), clock=clock or SystemClock(), schema=schema)
    try:
        async with store.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except BaseException:
        await store.close()
        raise
    return store


def _create_engine(url: URL, schema: str | None) -> AsyncEngine:
    if url.get_backend_name() == "postgresql":
        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        return create_async_engine(
            url, json_serializer=_json_dumps, pool_pre_ping=True, connect_args=connect_args
        )
    if schema is not None:
        raise ValueError("schema is for PostgreSQL; a SQLite file is its own schema")
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(f"SQLite 3.35 or newer is needed (RETURNING); {sqlite3.sqlite_version}")
    engine = create_async_engine(url, json_serializer=_json_dumps)
    sa.event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling skips BEGIN before DDL and SELECT;
    # with it off, `_sqlite_on_begin` emits every BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")  # durable at commit: store before acknowledging
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    read_only = bool(conn.get_execution_options().get(_READ_ONLY))
    info = conn.connection.info  # lives as long as the SQLite connection
    if info.get(_READ_ONLY, False) != read_only:
        conn.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
        info[_READ_ONLY] = read_only
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class SqlStore:
    """A `Store` on SQLite or PostgreSQL. Make one with `open_store`."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock, schema: str | None = None) -> None:
        self._engine = engine
        self._clock = clock
        self._schema = schema
        self._migrations: dict[str, Path] = {"core": migrations.CORE_VERSIONS}
        postgres = engine.dialect.name == "postgresql"
        # PostgreSQL: REPEATABLE READ gives the whole transaction one snapshot, and a
        # read-only one never fails to serialize. SQLite: every transaction is a snapshot.
        self._read_options: dict[str, Any] = (
            {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            if postgres
            else {_READ_ONLY: True}
        )
        self._write_lock = None if postgres else asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def metadata(self) -> sa.MetaData:
        return metadata

    # -- transactions -----------------------------------------------------------------

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a write transaction, committed when the block ends without error."""
        async with self._writer():
            async with self._transaction({}) as conn:
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a read-only transaction: one consistent snapshot."""
        async with self._transaction(self._read_options) as conn:
            yield conn

    @asynccontextmanager
    async def _writer(self) -> AsyncIterator[None]:
        if self._write_lock is None:
            yield
            return
        try:
            async with asyncio.timeout(SQLITE_BUSY_TIMEOUT):
                await self._write_lock.acquire()
        except TimeoutError:
            # Most likely a write transaction opened inside another one.
            raise Unavailable("the database is busy") from None
        try:
            yield
        finally:
            self._write_lock.release()

    @asynccontextmanager
    async def _transaction(self, options: dict[str, Any]) -> AsyncIterator[AsyncConnection]:
        conn = self._engine.connect()
        # Opening runs to its end even if the caller is cancelled meanwhile (the hub
        # stopping): a driver connection cut off half way would never be closed.
        opening = asyncio.ensure_future(self._open(conn, options))
        try:
            await asyncio.shield(opening)
        except asyncio.CancelledError:
            if not opening.done():
                with contextlib.suppress(BaseException):
                    await opening
            if conn.sync_connection is not None:
                await asyncio.shield(conn.close())
            raise
        try:
            yield conn
            await conn.commit()
        finally:
            await asyncio.shield(conn.close())  # rolls back what was not committed

    async def _open(self, conn: AsyncConnection, options: dict[str, Any]) -> None:
        try:
            await conn.start()
            await conn.execution_options(**options)
            await conn.begin()
        except BaseException as exc:
            if conn.sync_connection is not None:
                await asyncio.shield(conn.close())
            if isinstance(exc, _UNREACHABLE):
                raise Unavailable("the database is unavailable") from exc
            raise

    @asynccontextmanager
    async def _using(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
        else:
            async with self.begin() as own:
                yield own

    # -- migrations -------------------------------------------------------------------

    def add_migrations(self, name: str, location: str | os.PathLike[str]) -> None:
        """Register an app's Alembic revisions, run by `upgrade` after the core's."""
        if not name.isidentifier() or not name.islower() or len(name) > 40:
            raise ValueError(f"a migration history name is a short lower-case identifier: {name!r}")
        if name in self._migrations:
            raise ValueError(f"migrations {name!r} are already registered")
        path = Path(location)
        if not path.is_dir():
            raise ValueError(f"no migration directory at {path}")
        self._migrations[name] = path

    async def upgrade(self) -> list[str]:
        """Run every pending migration, all in one transaction; return the revisions applied."""
        applied: list[str] = []
        async with self.begin() as conn:
            if self.dialect == "postgresql":
                await self._lock_for_migrations(conn)
            for name, location in self._migrations.items():
                applied += await conn.run_sync(migrations.upgrade_to_head, name, location)
        if applied:
            log.info("database migrated: %s", ", ".join(applied))
        return applied

    async def _lock_for_migrations(self, conn: AsyncConnection) -> None:
        # Held until commit: a second node waits, then finds everything current.
        digest = hashlib.sha256(f"hubbub.migrations:{self._schema or ''}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
        if self._schema is not None:
            found = await conn.scalar(
                sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": self._schema}
            )
            if found is None:
                await conn.execute(sa.schema.CreateSchema(self._schema))

    async def current_revision(self, name: str = "core") -> str | None:
        """The revision the database is at for `name` ("core" or an app), None before any."""
        async with self.read() as conn:
            return await conn.run_sync(migrations.current_revision, name)

    async def close(self) -> None:
        """Close every connection. The store is unusable afterwards."""
        await self._engine.dispose()

    # -- helpers ----------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def insert_ignoring_duplicates(
        self, table: sa.Table, key: Sequence[str]
    ) -> postgresql.Insert | sqlite.Insert:
        """An INSERT into `table` that skips every row whose `key` is already stored."""
        _conflict_target(table, key, dict.fromkeys(key, 0))
        return self._insert(table).on_conflict_do_nothing(index_elements=[table.c[k] for k in key])

    async def insert_idempotent(
        self,
        table: sa.Table,
        values: Mapping[str, Any],
        *,
        key: Sequence[str],
        conn: AsyncConnection | None = None,
    ) -> Inserted:
        """Insert `values` unless a row with the same `key` values exists; return the stored row."""
        key_columns = _conflict_target(table, key, values)
        insert = (
            self._insert(table)
            .values(dict(values))
            .on_conflict_do_nothing(index_elements=key_columns)
            .returning(*table.c)
        )
        existing = sa.select(table).where(*(column == values[column.key] for column in key_columns))
        async with self._using(conn) as c:
            # PostgreSQL: a concurrent insert of the same key makes ours wait for its commit
            # and then do nothing; the SELECT (a new snapshot in READ COMMITTED) sees it.
            # Only a delete between the two statements can make it vanish: try again.
            for _ in range(3):
                row = (await c.execute(insert)).mappings().first()
                if row is not None:
                    return Inserted(row, True)
                row = (await c.execute(existing)).mappings().first()
                if row is not None:
                    return Inserted(row, False)
        raise Unavailable("the row was inserted and deleted concurrently; try again")

    async def kv_get(
        self, namespace: str, key: str, default: Any = None, *, conn: AsyncConnection | None = None
    ) -> Any:
        """The value stored under (`namespace`, `key`), or `default`."""
        query = sa.select(kv_table.c.value).where(
            kv_table.c.namespace == namespace, kv_table.c.key == key
        )
        if conn is not None:
            rows = (await conn.execute(query)).all()
        else:
            async with self.read() as own:
                rows = (await own.execute(query)).all()
        return rows[0].value if rows else default

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, conn: AsyncConnection | None = None
    ) -> None:
        """Store `value` under (`namespace`, `key`), replacing any previous value."""
        _check_kv_key(namespace, key)
        insert = self._insert(kv_table).values(
            namespace=namespace, key=key, value=value, updated_at=self._clock.time_ms()
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[kv_table.c.namespace, kv_table.c.key],
            set_={"value": insert.excluded.value, "updated_at": insert.excluded.updated_at},
        )
        async with self._using(conn) as c:
            await c.execute(upsert)

    async def kv_delete(
        self, namespace: str, key: str, *, conn: AsyncConnection | None = None
    ) -> bool:
        """Forget (`namespace`, `key`); True when it was there."""
        delete = sa.delete(kv_table).where(kv_table.c.namespace == namespace, kv_table.c.key == key)
        async with self._using(conn) as c:
            result = await c.execute(delete)
        return bool(result.rowcount)


def _conflict_target(
    table: sa.Table, key: Sequence[str], values: Mapping[str, Any]
) -> list[sa.Column[Any]]:
    """The columns of `key`, once checked to be a unique key of `table` that `values` fills."""
    wanted = frozenset(key)
    unique_sets = [
        frozenset(column.key for column in constraint.columns)
        for constraint in (*table.constraints, *table.indexes)
        if isinstance(constraint, sa.PrimaryKeyConstraint | sa.UniqueConstraint)
        or (isinstance(constraint, sa.Index) and constraint.unique)
    ]
    if wanted not in unique_sets:
        raise ValueError(f"{list(key)} is not a primary key or unique constraint of {table.name}")
    missing = [name for name in key if values.get(name) is None]
    if missing:
        raise ValueError(f"insert_idempotent needs a value for every key column: {missing}")
    return [table.c[name] for name in key]


def _check_kv_key(namespace: str, key: str) -> None:
    # PostgreSQL enforces these lengths and SQLite would not: check them here for both.
    if not 0 < len(namespace) <= KV_NAMESPACE_MAX or not 0 < len(key) <= KV_KEY_MAX:
        raise ValueError(
            f"a kv namespace has 1 to {KV_NAMESPACE_MAX} characters and a key 1 to {KV_KEY_MAX}"
        )
