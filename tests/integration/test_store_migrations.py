"""The default store on a real SQLite file: migrated on start, once, in WAL mode.

"Another process" is a real `python` process running what `hubbub serve` runs on
start: open the store in the data directory and upgrade it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from hubbub.engines.migrations import head_revision
from hubbub.engines.sql import SQLITE_BUSY_TIMEOUT, open_store

CORE_HEAD = head_revision()

START_NODE = """
import asyncio, json, sys
from hubbub.engines.sql import open_store

async def main():
    store = await open_store(None, sys.argv[1])
    try:
        applied = await store.upgrade()
        print(json.dumps({
            "applied": applied,
            "revision": await store.current_revision(),
            "kept": await store.kv_get("test", "kept"),
        }))
    finally:
        await store.close()

asyncio.run(main())
"""


async def start_node_process(data_dir: Path) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        START_NODE,
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out)
    return result


async def test_start_creates_and_migrates_the_database_file_in_the_data_dir(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "hubbub-data"
    store = await open_store(None, data_dir)
    try:
        assert await store.upgrade() == [CORE_HEAD]
        assert await store.current_revision() == CORE_HEAD
    finally:
        await store.close()
    assert (data_dir / "hubbub.db").is_file()


async def test_the_database_file_is_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(None, tmp_path)
    try:
        await store.upgrade()
    finally:
        await store.close()
    with closing(sqlite3.connect(tmp_path / "hubbub.db")) as db:
        # The journal mode is a property of the file, seen by any other program.
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_every_connection_is_durable_with_foreign_keys_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    store = await open_store(None, tmp_path)
    try:
        for transaction in (store.begin, store.read):
            async with transaction() as conn:
                pragmas = {
                    name: await conn.scalar(sa.text(f"PRAGMA {name}"))
                    for name in ("synchronous", "foreign_keys", "busy_timeout")
                }
            assert pragmas == {
                "synchronous": 2,  # FULL
                "foreign_keys": 1,
                "busy_timeout": int(SQLITE_BUSY_TIMEOUT * 1000),
            }
    finally:
        await store.close()


async def test_a_second_process_starting_on_a_migrated_file_changes_nothing(
    tmp_path: Path,
) -> None:
    store = await open_store(None, tmp_path)
    try:
        await store.upgrade()
        await store.kv_set("test", "kept", {"written": "before"})
    finally:
        await store.close()
    schema_before = _schema(tmp_path / "hubbub.db")

    second = await start_node_process(tmp_path)

    assert second == {"applied": [], "revision": CORE_HEAD, "kept": {"written": "before"}}
    assert _schema(tmp_path / "hubbub.db") == schema_before


async def test_processes_starting_together_on_a_new_file_migrate_it_once(
    tmp_path: Path,
) -> None:
    results = await asyncio.gather(*(start_node_process(tmp_path) for _ in range(3)))
    assert sorted(r["applied"] for r in results) == [[], [], [CORE_HEAD]]
    assert {r["revision"] for r in results} == {CORE_HEAD}


def _schema(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    return [(str(name), str(sql)) for name, sql in rows]
