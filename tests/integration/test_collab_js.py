"""The real JavaScript Yjs client (npm `yjs` + `y-websocket`) against `/collab/{name}`.

Each test runs one scenario of tests/js/collab/scenario.mjs in Node.js and checks
what the server holds (its live document and its store) beside what the clients see.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pycrdt

from hubbub.apps import collab
from hubbub.apps.collab.store import load
from hubbub.testing import RunningServer, running_server
from tests.wsclient import wait_until

SCENARIO = Path(__file__).resolve().parents[1] / "js" / "collab" / "scenario.mjs"


class Node:
    """One `node scenario.mjs <name>` process, spoken to line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def expect(self, step: str, timeout: float = 30.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"node ended before {step!r}: {err.decode()[-2000:]}")
                try:
                    message: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue  # a library's own console output
                assert message.get("step") != "error", message.get("message")
                if message.get("step") == step:
                    return message

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def finish(self) -> None:
        async with asyncio.timeout(20):
            await self.proc.wait()
        assert self.proc.returncode == 0


async def scenario(srv: RunningServer, name: str, doc: str, **tokens: str) -> Node:
    env = {
        **os.environ,
        "COLLAB_URL": f"ws://127.0.0.1:{srv.port}/collab",
        "COLLAB_DOC": doc,
        **{f"TOKEN_{k.upper()}": v for k, v in tokens.items()},
    }
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SCENARIO),
        name,
        cwd=SCENARIO.parent,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Node(proc)


def server_text(srv: RunningServer, doc: str) -> str:
    room = collab.of(srv.hub).rooms.open[doc]
    return str(room.doc.get("t", type=pycrdt.Text))


async def stored_text(srv: RunningServer, doc: str) -> str:
    check: pycrdt.Doc[Any] = pycrdt.Doc()
    assert srv.hub.store is not None
    for blob in await load(srv.hub.store, doc):
        check.apply_update(blob)
    return str(check.get("t", type=pycrdt.Text))


async def test_three_yjs_clients_editing_at_once_end_with_the_same_text_as_the_server() -> None:
    async with running_server() as srv:
        tokens = {k: srv.token(f"user-{k}") for k in ("a", "b", "c")}
        node = await scenario(srv, "concurrent", "race", **tokens)
        texts = (await node.expect("converged"))["texts"]
        assert len(set(texts)) == 1 and len(texts[0]) > 100
        await collab.of(srv.hub).rooms.open["race"].flushed()
        assert server_text(srv, "race") == texts[0]
        assert await stored_text(srv, "race") == texts[0]
        node.go()
        await node.finish()


async def test_edits_made_offline_merge_and_reach_the_others_on_reconnect() -> None:
    async with running_server() as srv:
        node = await scenario(srv, "offline", "trip", a=srv.token("ann"), b=srv.token("bob"))
        merged = await node.expect("merged")
        assert merged["a"] == merged["b"]
        for part in ("shared start. ", "written offline by A. ", "written by B meanwhile. "):
            assert part in merged["a"]
        await collab.of(srv.hub).rooms.open["trip"].flushed()
        assert server_text(srv, "trip") == merged["a"]
        node.go()
        await node.finish()


async def test_a_read_only_users_edits_reach_neither_the_others_nor_the_store() -> None:
    async with running_server() as srv:
        editor = srv.token("ed", collab={"memo": "edit"})
        reader = srv.token("rita", collab={"memo": "read", "other": "edit"})
        node = await scenario(srv, "readonly", "memo", editor=editor, reader=reader)
        reader_id = (await node.expect("reader_edited"))["id"]
        room = collab.of(srv.hub).rooms.open["memo"]
        # The reader sent its edit, then an awareness state: once the server holds the
        # state, it has handled the edit. Anything it had let through would be stored and
        # sent before the marker below.
        await wait_until(lambda: any(e.client_id == reader_id for e in room.awareness.states()))
        async with collab.of(srv.hub).document("memo") as doc:
            text = doc.text("t")
            text.insert(len(text), "marker")
        node.go()
        done = await node.expect("done")
        assert "FROM THE READER" not in done["editor"]
        assert "FROM THE READER" in done["reader"]  # only in the reader's own copy
        assert "FROM THE READER" not in server_text(srv, "memo")
        assert "FROM THE READER" not in await stored_text(srv, "memo")
        assert "by the editor" in await stored_text(srv, "memo")
        node.go()
        await node.finish()


async def test_a_cursor_reaches_the_others_and_disappears_when_its_client_disconnects() -> None:
    async with running_server() as srv:
        node = await scenario(srv, "awareness", "cursors", a=srv.token("ann"), b=srv.token("bob"))
        done = await node.expect("done")
        assert done["seen"]["cursor"] == {"index": 3}
        assert done["seen"]["user"]["name"] == "ann"
        assert done["id"] not in done["after"]
        await node.finish()


async def test_a_change_made_through_the_python_api_appears_in_the_javascript_clients() -> None:
    async with running_server() as srv:
        node = await scenario(srv, "python", "agenda", a=srv.token("ann"), b=srv.token("bob"))
        await node.expect("ready")
        async with collab.of(srv.hub).document("agenda") as doc:
            with doc.transaction():
                doc.text("t").insert(0, "written in Python")
                doc.map("meta")["title"] = "Monday"
                doc.array("items").extend([1, "two"])
        node.go()
        done = await node.expect("done")
        assert done["texts"] == ["written in Python"] * 2
        assert done["title"] == "Monday"
        await node.finish()
