"""The `Store` contract: durable data on SQLite or PostgreSQL, with one behaviour on both.

Core and apps declare their tables on the shared `metadata` below (SQLAlchemy
Core, dialect-neutral types) and ship Alembic revisions that create them; the
store runs those migrations on start. `hubbub.engines.sql` implements the
contract; `tests/conformance/test_store.py` checks it against both databases.

An app's table, for example::

    messages = sa.Table(
        "chat_messages",
        metadata,
        sa.Column("id", AUTO_ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("client_message_id", sa.String(100), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),  # milliseconds
        sa.UniqueConstraint("channel", "client_message_id"),
    )
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
"""Where core and apps declare their tables. Constraint names follow `NAMING_CONVENTION`
so that migrations can name them the same way on both databases."""

AUTO_ID: sa.types.TypeEngine[int] = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""The type of an auto-increment primary key: 64-bit on both databases (on SQLite only
an INTEGER primary key is the auto-incremented rowid)."""


class Inserted(NamedTuple):
    """What `Store.insert_idempotent` returns: the stored row, and whether this call made it."""

    row: RowMapping
    created: bool


class Store(Protocol):
    """Durable data: tables on `metadata`, transactions, migrations and a few shared helpers.

    Contract, for every implementation (checked by tests/conformance/test_store.py):
    - `begin()` is one transaction: it commits when the block ends and rolls back
      entirely when the block raises. Write transactions are serialized where the
      database has a single writer (SQLite), so a read-modify-write inside one is safe.
      Keep them short: never await the network inside one.
    - `read()` is a consistent snapshot that may not write (a write raises).
    - `upgrade()` brings the core tables, then every registered app's tables, to their
      newest revision. It is safe to call on every start and from several processes
      at once; a call that finds everything current changes nothing.
    - `insert_idempotent` inserts a row unless a row with the same key exists, and
      returns the row that is stored. Concurrent calls with the same key store
      exactly one row and all return it. This is how client-chosen ids
      (clientMessageId, clientOrderId) make retries safe.
    - `kv_*` is a small JSON key-value store in namespaces (app settings, cursors).
      Values are JSON: dicts, lists, strings, numbers, booleans and None; NaN and
      other non-JSON values are refused on every database.
    - Helpers that take `conn` run inside that transaction; without it, in their own.
    """

    @property
    def dialect(self) -> str:
        """The database: "sqlite" or "postgresql"."""
        ...

    @property
    def metadata(self) -> sa.MetaData:
        """The shared `metadata` on which core and apps declare their tables."""
        ...

    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a write transaction, committed when the block ends without error."""
        ...

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection in a read-only transaction: one consistent snapshot."""
        ...

    def add_migrations(self, name: str, location: str | os.PathLike[str]) -> None:
        """Register an app's Alembic revisions, run by `upgrade` after the core's.

        `location` is a directory of revision files forming one linear history (the
        first has `down_revision = None`); its version is kept in the table
        `hubbub_version_<name>`, apart from the core's and from any Alembic of the host
        application in the same database.
        """
        ...

    async def upgrade(self) -> list[str]:
        """Run every pending migration; return the revisions applied (empty when current)."""
        ...

    async def current_revision(self, name: str = "core") -> str | None:
        """The revision the database is at for `name` ("core" or an app), None before any."""
        ...

    async def close(self) -> None:
        """Close every connection. The store is unusable afterwards."""
        ...

    def insert_ignoring_duplicates(self, table: sa.Table, key: Sequence[str]) -> sa.Insert:
        """An INSERT into `table` (add `.values([...])` and `.returning(...)`) that skips
        each row whose `key` (a primary key or unique constraint) is already stored, or
        repeats an earlier row of the same statement. RETURNING gives the rows it inserted.
        This is `insert_idempotent` for many rows in one statement."""
        ...

    async def insert_idempotent(
        self,
        table: sa.Table,
        values: Mapping[str, Any],
        *,
        key: Sequence[str],
        conn: AsyncConnection | None = None,
    ) -> Inserted:
        """Insert `values` unless a row with the same `key` values exists; return the stored row.

        `key` names the columns of a primary key or unique constraint of `table`, and
        `values` gives each of them a non-null value (ValueError otherwise). When the row
        exists, its stored values win: compare them if a retry may carry different data.
        """
        ...

    async def kv_get(
        self, namespace: str, key: str, default: Any = None, *, conn: AsyncConnection | None = None
    ) -> Any:
        """The value stored under (`namespace`, `key`), or `default`."""
        ...

    async def kv_set(
        self, namespace: str, key: str, value: Any, *, conn: AsyncConnection | None = None
    ) -> None:
        """Store `value` under (`namespace`, `key`), replacing any previous value."""
        ...

    async def kv_delete(
        self, namespace: str, key: str, *, conn: AsyncConnection | None = None
    ) -> bool:
        """Forget (`namespace`, `key`); True when it was there."""
        ...
