"""Databases of a test's own: a new PostgreSQL database, or an app's migrated store on
SQLite or in a PostgreSQL schema, dropped after."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from os import PathLike
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from hubbub.engines.sql import SqlStore, open_store
from tests.services import DATABASE_URL


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Yield the URL of a new, empty database; PostgreSQL must be up (the test fails if not)."""
    name = f"hubbub_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(DATABASE_URL, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield make_url(DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(DATABASE_URL, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def app_store(
    database: str, data_dir: Path, name: str, migrations: str | PathLike[str]
) -> AsyncIterator[SqlStore]:
    """A migrated store with app `name`'s tables: a SQLite file in `data_dir`, or a
    PostgreSQL schema of its own (dropped after) when `database` is "postgresql"."""
    url = schema = None
    if database == "postgresql":
        url, schema = DATABASE_URL, f"hubbub_{name}_{secrets.token_hex(6)}"
    store = await open_store(url, data_dir, schema=schema)
    try:
        store.add_migrations(name, migrations)
        await store.upgrade()
        yield store
    finally:
        await store.close()
        if schema is not None:
            conn = await asyncpg.connect(DATABASE_URL, timeout=5)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
