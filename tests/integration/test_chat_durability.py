"""Chat as separate `hubbub serve` processes: an acknowledged message survives SIGKILL, and
members on different nodes of one cluster talk to each other."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster import API_KEY, Node, cluster, token
from tests.pgdb import fresh_database
from tests.services import REDIS_URL, free_port
from tests.wsclient import WsClient


async def _api(node: Node, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, node.http_url + path, json=body, headers=headers) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def _kill_after_delivery_and_restart(node: Node) -> None:
    node.start()
    try:
        await node.wait_ready()
        made = await _api(node, "POST", "/api/conversations", {"members": ["ann", "bob"]})
        cid = made["conversationId"]
        ann = await WsClient.connect(node.url, token("ann"))
        payload = {"conversationId": cid, "clientMessageId": "k-1", "content": "survive this"}
        answer = await ann.request("chat.send_message", payload)
        assert answer["type"] == "chat.message_delivered", answer
        node.kill()  # SIGKILL right after the acknowledgement: no shutdown, no flush
        await ann.wait_closed()
        await ann.close()

        node.start()
        await node.wait_ready()
        page = await _api(node, "GET", f"/api/conversations/{cid}/messages")
        assert [(m["serverMessageId"], m["content"]) for m in page["messages"]] == [
            (answer["payload"]["serverMessageId"], "survive this")
        ]
        # and the retry after the crash is still recognised: no second copy
        ann = await WsClient.connect(node.url, token("ann"))
        again = await ann.request("chat.send_message", payload)
        assert again["payload"]["duplicate"] is True
        await ann.close()
    finally:
        node.stop()


async def test_a_delivered_message_survives_sigkill_on_sqlite(tmp_path: Path) -> None:
    await _kill_after_delivery_and_restart(Node("chat", free_port(), "memory://", str(tmp_path)))


@pytest.mark.service
async def test_a_delivered_message_survives_sigkill_on_postgresql(tmp_path: Path) -> None:
    async with fresh_database() as url:
        node = Node("chat", free_port(), "memory://", str(tmp_path), database_url=url)
        await _kill_after_delivery_and_restart(node)


@pytest.mark.service
async def test_members_on_different_nodes_chat_through_redis_and_postgresql() -> None:
    async with fresh_database() as url, cluster(REDIS_URL, count=2, database_url=url) as nodes:
        body = {"members": ["ann", "bob", "cid", "dee"], "title": "spread"}
        cid = (await _api(nodes[0], "POST", "/api/conversations", body))["conversationId"]
        ann = await WsClient.connect(nodes[0].url, token("ann"))
        bob_phone = await WsClient.connect(nodes[1].url, token("bob"))
        bob_laptop = await WsClient.connect(nodes[0].url, token("bob"))
        cid_only_elsewhere = await WsClient.connect(nodes[1].url, token("cid"))
        try:
            for n in range(3):
                payload = {"conversationId": cid, "clientMessageId": f"x{n}", "content": f"hi {n}"}
                answer = await ann.request("chat.send_message", payload)
                assert answer["type"] == "chat.message_delivered"
            for bob in (bob_phone, bob_laptop):
                got = [(await bob.expect("chat.new_message"))["payload"] for _ in range(3)]
                assert [m["content"] for m in got] == ["hi 0", "hi 1", "hi 2"]
            read = await bob_phone.request(
                "chat.mark_read", {"conversationId": cid, "messageId": got[-1]["serverMessageId"]}
            )
            assert read["payload"]["unread"] == 0
            receipt = await ann.expect("chat.message_read")
            assert receipt["payload"]["userId"] == "bob"
            count = await bob_laptop.expect("chat.unread_count")
            assert count["payload"]["unread"] == 0
            # Only dee, connected nowhere, is handed to notifications; cid, connected to
            # the other node only, is online as far as node 1 can tell.
            assert (await ann.request("ping"))["type"] == "pong"
            for user, wanted in (("dee", 3), ("cid", 0), ("bob", 0)):
                listed = await _api(nodes[0], "GET", f"/api/notifications?userId={user}")
                assert len(listed["notifications"]) == wanted, (user, listed)
        finally:
            clients = (ann, bob_phone, bob_laptop, cid_only_elsewhere)
            await asyncio.gather(*(c.close() for c in clients))
