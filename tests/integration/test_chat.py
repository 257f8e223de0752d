"""Chat over real sockets (PROTOCOL.md section 12): send, dedup, every device, read receipts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hubbub.apps import chat as chat_app
from hubbub.core.notices import Notice
from hubbub.testing import RunningServer, running_server
from tests.wsclient import WsClient, disconnect


class Http:
    """The chat HTTP API as one user (or the server, with the API key)."""

    def __init__(self, srv: RunningServer, token: str) -> None:
        self.base = srv.http_url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, *, json: Any = None, data: bytes | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = {**self.headers, **kw.pop("headers", {})}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method, self.base + path, json=json, data=data, headers=headers, **kw
            ) as response,
        ):
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.read()


@pytest.fixture
async def srv() -> AsyncIterator[RunningServer]:
    async with running_server() as server:
        yield server


async def conversation(srv: RunningServer, *members: str, title: str | None = None) -> str:
    status, body = await Http(srv, srv.api_key).call(
        "POST", "/api/conversations", json={"members": list(members), "title": title}
    )
    assert status == 201, body
    return str(body["conversationId"])


async def connect(srv: RunningServer, user: str) -> WsClient:
    return await WsClient.connect(srv.url, srv.token(user))


def send_payload(cid: str, cmid: str, content: str = "hello") -> dict[str, Any]:
    return {"conversationId": cid, "clientMessageId": cmid, "content": content}


async def test_a_retried_client_message_id_is_stored_once_and_delivered_once_across_a_reconnect(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="pair")
    bob = await connect(srv, "bob")
    alice = await connect(srv, "alice")
    ids = set()
    for attempt in range(5):
        if attempt == 2:  # the sender's connection drops between retries
            await disconnect(srv, "alice")
            await alice.wait_closed()
            await alice.close()
            alice = await connect(srv, "alice")
        answer = await alice.request("chat.send_message", send_payload(cid, "m-1"))
        assert answer["type"] == "chat.message_delivered", answer
        assert answer["payload"]["clientMessageId"] == "m-1"
        ids.add(answer["payload"]["serverMessageId"])
    assert len(ids) == 1
    await alice.request("chat.send_message", send_payload(cid, "m-2", "after"))
    # bob sees m-1 once, then m-2: nothing twice, nothing missing
    first = await bob.expect("chat.new_message")
    second = await bob.expect("chat.new_message")
    assert (first["payload"]["clientMessageId"], second["payload"]["clientMessageId"]) == (
        "m-1",
        "m-2",
    )
    assert first["payload"]["serverMessageId"] in ids
    assert first["channel"] == "user:bob" and second["seq"] == first["seq"] + 1
    status, page = await Http(srv, srv.token("bob")).call(
        "GET", f"/api/conversations/{cid}/messages"
    )
    assert status == 200
    assert [m["clientMessageId"] for m in page["messages"]] == ["m-1", "m-2"]
    for client in (alice, bob):
        await client.close()


async def test_every_connection_of_every_member_gets_the_message_including_the_senders_others(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", "carol", title="team")
    bobs = [await connect(srv, "bob") for _ in range(3)]
    alices = [await connect(srv, "alice") for _ in range(2)]
    carol = await connect(srv, "carol")
    answer = await alices[0].request("chat.send_message", send_payload(cid, "x1", "to all"))
    server_id = answer["payload"]["serverMessageId"]
    for client in [*bobs, *alices, carol]:
        event = await client.expect("chat.new_message")
        assert event["payload"]["serverMessageId"] == server_id
        assert event["payload"]["senderId"] == "alice"
        assert event["payload"]["content"] == "to all"
    for client in [*bobs, *alices, carol]:
        await client.close()


async def test_typing_reaches_other_members_and_stop_ends_it(srv: RunningServer) -> None:
    cid = await conversation(srv, "alice", "bob")
    alice, bob = await connect(srv, "alice"), await connect(srv, "bob")
    await alice.send("chat.typing_start", {"conversationId": cid})
    event = await bob.expect("chat.user_typing")
    assert event["payload"] == {"conversationId": cid, "userId": "alice", "isTyping": True}
    assert "seq" not in event  # typing is not stored or sequenced
    await alice.send("chat.typing_stop", {"conversationId": cid})
    event = await bob.expect("chat.user_typing")
    assert event["payload"]["isTyping"] is False
    await alice.close()
    await bob.close()


async def test_read_receipts_reach_other_members_and_the_readers_devices_and_unread_agrees(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="reads")
    alice = await connect(srv, "alice")
    bob_phone, bob_laptop, bob_tablet = [await connect(srv, "bob") for _ in range(3)]
    sent = []
    for n in range(3):
        answer = await alice.request("chat.send_message", send_payload(cid, f"r{n}", f"msg {n}"))
        sent.append(answer["payload"]["serverMessageId"])
    bob_http = Http(srv, srv.token("bob"))
    _, listing = await bob_http.call("GET", "/api/conversations")
    assert listing["conversations"][0]["unread"] == 3

    answer = await bob_phone.request(
        "chat.mark_read", {"conversationId": cid, "messageId": sent[1]}
    )
    assert answer["type"] == "chat.marked_read"
    assert answer["payload"]["unread"] == 1
    receipt = await alice.expect("chat.message_read")
    assert receipt["payload"]["userId"] == "bob"
    assert receipt["payload"]["messageId"] == sent[1]
    for device in (bob_laptop, bob_tablet):
        read = await device.expect("chat.message_read")
        assert read["payload"]["messageId"] == sent[1]
        count = await device.expect("chat.unread_count")
        assert count["payload"] == {"conversationId": cid, "unread": 1}
    # every device that asks gets the same count, and reading never moves back
    await bob_laptop.request("chat.mark_read", {"conversationId": cid, "messageId": sent[0]})
    for token in (srv.token("bob"), srv.token("bob")):
        _, listing = await Http(srv, token).call("GET", "/api/conversations")
        assert listing["conversations"][0]["unread"] == 1
        assert listing["conversations"][0]["lastReadId"] == sent[1]
    _, alice_listing = await Http(srv, srv.token("alice")).call("GET", "/api/conversations")
    assert alice_listing["conversations"][0]["readUpTo"] == {"alice": "0", "bob": sent[1]}
    _, alice_listing = await Http(srv, srv.token("alice")).call("GET", "/api/conversations")
    assert alice_listing["conversations"][0]["unread"] == 0  # her own messages are not unread
    for client in (alice, bob_phone, bob_laptop, bob_tablet):
        await client.close()


async def test_members_with_no_live_connection_are_handed_to_the_notifier(
    srv: RunningServer,
) -> None:
    noticed: list[Notice] = []

    class Recorder:
        async def notify(self, notice: Notice) -> None:
            noticed.append(notice)

    srv.hub.notifier = Recorder()
    cid = await conversation(srv, "alice", "bob", "dave", title="offline")
    alice, bob = await connect(srv, "alice"), await connect(srv, "bob")
    answer = await alice.request("chat.send_message", send_payload(cid, "n1", "are you there"))
    await bob.expect("chat.new_message")
    assert [(n.user_id, n.type, n.body) for n in noticed] == [
        ("dave", "chat.message", "are you there")
    ]
    assert noticed[0].data["serverMessageId"] == answer["payload"]["serverMessageId"]
    await alice.close()
    await bob.close()


async def test_the_python_api_sends_like_a_member(srv: RunningServer) -> None:
    chat = chat_app.of(srv.hub)
    cid = await chat.create_conversation(["alice", "bob"], title="api")
    bob = await connect(srv, "bob")
    sent = await chat.send_message("alice", cid, "from the server", client_message_id="py-1")
    again = await chat.send_message("alice", cid, "from the server", client_message_id="py-1")
    assert sent.created and not again.created
    assert again.message["serverMessageId"] == sent.message["serverMessageId"]
    event = await bob.expect("chat.new_message")
    assert event["payload"]["content"] == "from the server"
    await bob.close()


async def test_replies_and_a_direct_conversation_per_pair(srv: RunningServer) -> None:
    first = await conversation(srv, "erin", "frank")
    assert await conversation(srv, "frank", "erin") == first
    erin = await connect(srv, "erin")
    original = await erin.request("chat.send_message", send_payload(first, "q1", "question"))
    reply = await erin.request(
        "chat.send_message",
        {**send_payload(first, "q2", "answer"), "replyTo": original["payload"]["serverMessageId"]},
    )
    assert reply["type"] == "chat.message_delivered"
    event = await erin.expect("chat.new_message", timeout=5)
    while event["payload"]["clientMessageId"] != "q2":
        event = await erin.expect("chat.new_message", timeout=5)
    assert event["payload"]["replyTo"] == original["payload"]["serverMessageId"]
    await erin.close()


async def test_presence_online_and_offline_reach_people_who_share_a_conversation() -> None:
    from hubbub.config import Settings

    async with running_server(Settings(presence_grace=0.2)) as srv:
        await conversation(srv, "gina", "hank")
        hank = await connect(srv, "hank")
        gina = await connect(srv, "gina")
        online = await hank.expect("presence.user_online")
        assert online["payload"]["userId"] == "gina"
        await gina.close()
        offline = await hank.expect("presence.user_offline", timeout=5)
        assert offline["payload"]["userId"] == "gina"
        status, body = await Http(srv, srv.token("hank")).call(
            "GET", f"/api/conversations/{await conversation(srv, 'gina', 'hank')}/presence"
        )
        assert status == 200
        assert {m["userId"]: m["online"] for m in body["members"]} == {
            "gina": False,
            "hank": True,
        }
        await hank.close()


async def test_concurrent_senders_each_get_one_message_per_client_id(srv: RunningServer) -> None:
    cid = await conversation(srv, "ivy", "jack", title="race")
    ivys = [await connect(srv, "ivy") for _ in range(3)]
    answers = await asyncio.gather(
        *(c.request("chat.send_message", send_payload(cid, "same", "once")) for c in ivys)
    )
    assert len({a["payload"]["serverMessageId"] for a in answers}) == 1
    assert sorted(a["payload"]["duplicate"] for a in answers) == [False, True, True]
    _, page = await Http(srv, srv.api_key).call("GET", f"/api/conversations/{cid}/messages")
    assert len(page["messages"]) == 1
    for c in ivys:
        await c.close()


async def test_an_offline_member_finds_the_message_in_their_notifications(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "olga", title="while you were out")
    alice = await connect(srv, "alice")
    answer = await alice.request("chat.send_message", send_payload(cid, "o1", "call me back"))
    # The notice is handed over after the acknowledgement, within the same handler; a
    # connection's frames are handled in order, so once `pong` is back it is stored.
    assert (await alice.request("ping"))["type"] == "pong"
    status, body = await Http(srv, srv.token("olga")).call("GET", "/api/notifications")
    assert status == 200, body
    [notice] = body["notifications"]
    assert notice["type"] == "chat.message" and notice["body"] == "call me back"
    assert notice["data"]["serverMessageId"] == answer["payload"]["serverMessageId"]
    status, body = await Http(srv, srv.token("alice")).call("GET", "/api/notifications")
    assert body["notifications"] == []  # the sender, online, gets no notification
    await alice.close()
