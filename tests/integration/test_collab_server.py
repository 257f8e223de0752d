"""`/collab/{name}` with y-websocket clients written in Python: sync, storage, access."""

from __future__ import annotations

import asyncio
import contextlib

import pycrdt

from hubbub.apps import collab
from hubbub.apps.collab import protocol
from hubbub.apps.collab.store import load, stored_size
from hubbub.testing import running_server
from hubbub.testing.collab import yclient
from tests.wsclient import wait_until


async def test_two_clients_converge_and_the_server_document_holds_the_text() -> None:
    async with running_server() as srv:
        async with (
            yclient(srv.http_url, "doc1", srv.token("ann")) as ann,
            yclient(srv.http_url, "doc1", srv.token("bob")) as bob,
        ):
            ann.text().insert(0, "hello")
            await wait_until(lambda: str(bob.text()) == "hello")
            bob.text().insert(5, " world")
            await wait_until(lambda: str(ann.text()) == "hello world")
            room = collab.of(srv.hub).rooms.open["doc1"]
            await room.flushed()
            assert str(room.doc.get("t", type=pycrdt.Text)) == "hello world"


async def test_every_update_is_stored_before_the_others_receive_it() -> None:
    async with running_server() as srv:
        async with (
            yclient(srv.http_url, "stored", srv.token("ann")) as ann,
            yclient(srv.http_url, "stored", srv.token("bob")) as bob,
        ):
            ann.text().insert(0, "durable")
            await wait_until(lambda: str(bob.text()) == "durable")
            blobs = await load(srv.hub.store, "stored")  # type: ignore[arg-type]
            check: pycrdt.Doc = pycrdt.Doc()
            for blob in blobs:
                check.apply_update(blob)
            assert str(check.get("t", type=pycrdt.Text)) == "durable"


async def test_a_token_without_access_is_closed_with_4003_and_told_permission_denied() -> None:
    async with running_server() as srv:
        token = srv.token("eve", collab={"public-*": "edit"})
        async with yclient(srv.http_url, "secret", token, sync=False) as eve:
            assert await eve.wait_closed() == 4003
            assert any(isinstance(m, protocol.AuthMessage) for m in eve.received)


async def test_a_bad_token_is_closed_with_4001() -> None:
    async with running_server() as srv:
        async with yclient(srv.http_url, "doc", "not-a-jwt", sync=False) as c:
            assert await c.wait_closed() == 4001


async def test_a_malformed_message_closes_only_that_connection_with_1008() -> None:
    async with running_server() as srv:
        async with (
            yclient(srv.http_url, "doc", srv.token("ann")) as ann,
            yclient(srv.http_url, "doc", srv.token("bob")) as bob,
        ):
            await bob.ws.send_bytes(b"\x00\x02\x05ab")  # an update cut short
            assert await bob.wait_closed() == 1008
            ann.text().insert(0, "still here")
            await wait_until(lambda: "doc" in collab.of(srv.hub).rooms.open)
            room = collab.of(srv.hub).rooms.open["doc"]
            await wait_until(lambda: str(room.doc.get("t", type=pycrdt.Text)) == "still here")
        # Stored when the last editor has left, a moment after its close was answered.
        async with asyncio.timeout(5):
            while not (await stored_size(srv.hub.store, "doc")).total_bytes:  # type: ignore[arg-type]  # noqa: ASYNC110 - the store has no event to await
                await asyncio.sleep(0.01)


async def test_a_message_over_the_size_limit_closes_only_that_connection_with_1009() -> None:
    from hubbub.apps.collab.app import MAX_MESSAGE_BYTES

    async with running_server() as srv:
        async with (
            yclient(srv.http_url, "big", srv.token("ann")) as ann,
            yclient(srv.http_url, "big", srv.token("bob")) as bob,
        ):
            with contextlib.suppress(ConnectionError):  # the server may reset mid-send
                await bob.ws.send_bytes(b"\x00\x02" + b"x" * (MAX_MESSAGE_BYTES + 16))
            # 1009, or no code when the reset came before the close frame was read
            assert await bob.wait_closed() in (1009, None)
            assert bob.ws.closed
            ann.text().insert(0, "unharmed")
            room = collab.of(srv.hub).rooms.open["big"]
            await wait_until(lambda: str(room.doc.get("t", type=pycrdt.Text)) == "unharmed")
            assert "x" * 100 not in str(room.doc.get("t", type=pycrdt.Text))
