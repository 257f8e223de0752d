"""A PostgreSQL database of a test's own, made on the test server and dropped after."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.engine import make_url

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
