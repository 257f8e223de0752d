"""The Python SDK's chat helpers against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub.client import Client
from hubbub.client.chat import Chat, ChatHttp
from hubbub.client.errors import RequestError
from hubbub.testing import RunningServer
from tests.wsclient import WsClient, disconnect

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


async def test_a_send_during_a_dropped_connection_is_delivered_once_after_the_reconnect(
    server: RunningServer,
) -> None:
    async with ChatHttp(server.http_url, server.api_key) as admin:
        cid = await admin.create_conversation(["alice", "bob"], title="sdk")
    bob = await WsClient.connect(server.url, server.token("bob"))
    async with Client(server.url, token=server.token("alice")) as client:
        chat = Chat(client)
        first = await chat.send(cid, "before the drop")
        await disconnect(server, "alice")
        second = await chat.send(cid, "during the drop", timeout=15)
        again = await chat.send(cid, "during the drop", client_message_id=second.client_message_id)
        assert not second.duplicate and again.duplicate
        assert again.server_message_id == second.server_message_id
    got = [(await bob.expect("chat.new_message"))["payload"]["content"] for _ in range(2)]
    assert got == ["before the drop", "during the drop"]
    assert int(second.server_message_id) > int(first.server_message_id)
    await bob.close()


async def test_events_typing_read_and_the_http_half(server: RunningServer) -> None:
    async with (
        ChatHttp(server.http_url, server.token("alice")) as alice_http,
        ChatHttp(server.http_url, server.token("bob")) as bob_http,
        Client(server.url, token=server.token("alice")) as alice,
        Client(server.url, token=server.token("bob")) as bob,
    ):
        cid = await alice_http.create_conversation(["bob"], title="helpers")
        alice_chat, bob_chat = Chat(alice), Chat(bob)
        seen: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        for type in ("chat.new_message", "chat.user_typing", "chat.message_read"):
            bob_chat.on(type, lambda p, t=type: seen.put_nowait((t, p)))
        alice_chat.on("chat.message_read", lambda p: seen.put_nowait(("alice-read", p)))

        await alice_chat.typing(cid)
        await alice_chat.typing(cid)  # throttled: one typing_start
        kind, payload = await asyncio.wait_for(seen.get(), 5)
        assert (kind, payload["isTyping"]) == ("chat.user_typing", True)

        attachment = await alice_http.upload(cid, "dot.png", PNG, "image/png")
        sent = await alice_chat.send(cid, "look", attachments=[attachment["attachmentId"]])
        kind, payload = await asyncio.wait_for(seen.get(), 5)
        assert kind == "chat.user_typing" and payload["isTyping"] is False  # sending ended it
        kind, payload = await asyncio.wait_for(seen.get(), 5)
        assert kind == "chat.new_message" and payload["serverMessageId"] == sent.server_message_id
        assert await bob_http.download(cid, payload["attachments"][0]["attachmentId"]) == PNG

        assert await bob_chat.mark_read(cid, sent.server_message_id) == 0
        receipts = {(await asyncio.wait_for(seen.get(), 5))[0] for _ in range(2)}
        assert receipts == {"chat.message_read", "alice-read"}

        for n in range(5):
            await alice_chat.send(cid, f"page {n}")
        page, cursor = await bob_http.history(cid, limit=4)
        assert [m["content"] for m in page] == ["page 1", "page 2", "page 3", "page 4"]
        older, end = await bob_http.history(cid, before=cursor, limit=4)
        assert [m["content"] for m in older] == ["look", "page 0"] and end is None
        assert [m["content"] for m in await bob_http.search(cid, "page 3")] == ["page 3"]
        listed = await bob_http.conversations()
        assert listed[0]["conversationId"] == cid and listed[0]["unread"] == 5

        async with ChatHttp(server.http_url, server.token("eve")) as eve:
            with pytest.raises(RequestError) as refused:
                await eve.history(cid)
        assert refused.value.code == "forbidden"
