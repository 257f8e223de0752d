"""Documents survive a restart, and compaction keeps what a document takes in the store
bounded, on SQLite and on PostgreSQL.

The bound (docs/collab.md): a document takes at most its encoded state (one snapshot)
plus `compact_every` update rows, each no larger than the largest update a client sent;
once its last client leaves, the snapshot alone.
"""

from __future__ import annotations

import random
import secrets
from pathlib import Path
from typing import Any

import msgspec
import pycrdt
import pytest

from hubbub.apps import collab
from hubbub.apps.collab.store import load, stored_size
from hubbub.config import Settings
from hubbub.testing import running_server
from hubbub.testing.collab import yclient
from tests.services import DATABASE_URL
from tests.wsclient import wait_until

EDITS = 10_000


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collab.db'}"
    return DATABASE_URL


def _settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


async def test_a_document_is_intact_after_the_server_restarts(database_url: str) -> None:
    name = f"restart-{secrets.token_hex(4)}"
    async with running_server(_settings(database_url)) as srv:
        async with yclient(srv.http_url, name, srv.token("ann")) as ann:
            ann.text().insert(0, "before the restart")
            ann.doc.get("m", type=pycrdt.Map)["k"] = "v"
            room = collab.of(srv.hub).rooms.open[name]
            await wait_until(lambda: str(room.doc.get("t", type=pycrdt.Text)) != "")
            await room.flushed()
    async with running_server(_settings(database_url)) as srv:
        async with yclient(srv.http_url, name, srv.token("bob")) as bob:
            await wait_until(lambda: str(bob.text()) == "before the restart")
            assert bob.doc.get("m", type=pycrdt.Map)["k"] == "v"


def _typing(text: pycrdt.Text, rng: random.Random, cursor: int) -> int:
    """One edit as a person makes them: mostly typing on, sometimes a backspace or a jump."""
    n = len(text)
    roll = rng.random()
    if roll < 0.05:
        return rng.randrange(n + 1)  # the cursor moves; the next edit happens there
    if roll < 0.25 and cursor > 0:
        del text[cursor - 1 : cursor]
        return cursor - 1
    text.insert(min(cursor, n), rng.choice("etaoin shrdlu"))
    return min(cursor, n) + 1


async def test_ten_thousand_edits_take_at_most_the_state_plus_compact_every_updates(
    database_url: str,
) -> None:
    name = f"bound-{secrets.token_hex(4)}"
    async with running_server(_settings(database_url)) as srv:
        app = collab.of(srv.hub)
        assert srv.hub.store is not None
        sent: list[bytes] = []
        async with yclient(srv.http_url, name, srv.token("ann")) as ann:
            ann.doc.observe(lambda event: sent.append(event.update))
            rng = random.Random(8)
            cursor = 0
            while len(sent) < EDITS:
                cursor = _typing(ann.text(), rng, cursor)
                if len(sent) % 200 == 0:
                    await ann.ws.ping()  # let the socket drain now and then
            room = app.rooms.open[name]
            await wait_until(lambda: app.updates_stored >= EDITS, timeout=30)
            await room.flushed()
            assert str(room.doc.get("t", type=pycrdt.Text)) == str(ann.text())
            state = len(room.doc.get_update())
            size = await stored_size(srv.hub.store, name)
            assert size.update_rows <= app.compact_every
            assert size.total_bytes <= state + app.compact_every * max(map(len, sent))
            assert size.total_bytes < sum(map(len, sent)) / 2  # compaction did its work
        await wait_until(lambda: name not in app.rooms.open)  # the last client left
        size = await stored_size(srv.hub.store, name)
        assert size.update_rows == 0 and size.snapshot_bytes <= state
        blobs = await load(srv.hub.store, name)
        check: pycrdt.Doc[Any] = pycrdt.Doc()
        for blob in blobs:
            check.apply_update(blob)
        assert str(check.get("t", type=pycrdt.Text)) == str(ann.text())
        print(msgspec.json.encode({"sent": sum(map(len, sent)), "state": state}))
