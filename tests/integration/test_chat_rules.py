"""Chat's rules: typing expiry on an injected clock, members only, bad input refused and
nothing stored, attachments checked by size and content."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hubbub import ManualClock, Settings
from hubbub.apps import chat as chat_app
from hubbub.testing import RunningServer, running_server
from tests.integration.test_chat import Http, connect, conversation, send_payload
from tests.wsclient import WsClient

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def srv() -> AsyncIterator[RunningServer]:
    async with running_server(Settings(max_upload_bytes=4096)) as server:
        yield server


async def _typing_events(client: WsClient, srv: RunningServer) -> list[bool]:
    """Every `chat.user_typing` that reached `client` until now, in order."""
    await chat_app.of(srv.hub).settle()
    marker = await srv.hub.send_to_user("bob", "marker", {})
    seen = []
    while True:
        frame = await client.next()
        if frame["type"] == "chat.user_typing":
            seen.append(frame["payload"]["isTyping"])
        if frame["type"] == "marker" and frame["seq"] == marker.seq:
            return seen


async def _typing_start(client: WsClient, cid: str) -> None:
    """Send `chat.typing_start` (which has no answer) and wait until the server handled it:
    a connection's frames are handled in order, so the `pong` comes after it."""
    await client.send("chat.typing_start", {"conversationId": cid})
    assert (await client.request("ping"))["type"] == "pong"


async def test_typing_ends_by_itself_five_seconds_after_the_last_typing_start() -> None:
    clock = ManualClock()
    async with running_server(clock=clock) as srv:
        chat = chat_app.of(srv.hub)
        cid = await conversation(srv, "alice", "bob")
        alice, bob = await connect(srv, "alice"), await connect(srv, "bob")
        await _typing_start(alice, cid)
        assert await _typing_events(bob, srv) == [True]

        clock.advance(4.9)
        await _typing_start(alice, cid)  # refreshed
        assert await _typing_events(bob, srv) == []  # a refresh announces nothing new
        clock.advance(4.9)  # 9.8 s after the first start, 4.9 s after the last
        assert chat.typing.is_typing(cid, "alice")
        assert await _typing_events(bob, srv) == []

        clock.advance(0.2)
        assert not chat.typing.is_typing(cid, "alice")
        assert await _typing_events(bob, srv) == [False]
        await alice.close()
        await bob.close()


async def test_a_non_member_can_neither_send_read_mark_search_type_nor_see_presence(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="private")
    alice = await connect(srv, "alice")
    answer = await alice.request("chat.send_message", send_payload(cid, "s1", "secret words"))
    secret_id = answer["payload"]["serverMessageId"]
    mallory = await connect(srv, "mallory")

    refused = [
        ("chat.send_message", send_payload(cid, "m1", "let me in")),
        ("chat.mark_read", {"conversationId": cid, "messageId": secret_id}),
        ("chat.typing_start", {"conversationId": cid}),
        ("chat.typing_stop", {"conversationId": cid}),
        ("subscribe", {"channels": [f"chat:{cid}"]}),
        ("presence.get", {"channel": f"chat:{cid}"}),
        ("history", {"channel": f"chat:{cid}"}),
    ]
    for type, payload in refused:
        frame = await mallory.request(type, payload)
        assert frame["type"] == "error" and frame["payload"]["code"] == "forbidden", (type, frame)

    http = Http(srv, srv.token("mallory"))
    for method, path, body in [
        ("GET", f"/api/conversations/{cid}", None),
        ("GET", f"/api/conversations/{cid}/messages", None),
        ("GET", f"/api/conversations/{cid}/search?q=secret", None),
        ("GET", f"/api/conversations/{cid}/presence", None),
        ("POST", f"/api/conversations/{cid}/read", {"messageId": secret_id}),
        ("POST", f"/api/conversations/{cid}/messages", {"clientMessageId": "h", "content": "x"}),
        ("POST", f"/api/conversations/{cid}/members", {"userId": "mallory"}),
        ("GET", "/api/conversations/cdoesnotexist/messages", None),
        ("GET", f"/api/channels/chat:{cid}/presence", None),
        ("GET", f"/api/channels/chat:{cid}/history", None),
    ]:
        status, answer_body = await http.call(method, path, json=body)
        assert status == 403, (method, path, answer_body)
        assert answer_body["error"]["code"] == "forbidden"
    status, listing = await http.call("GET", "/api/conversations")
    assert status == 200 and listing["conversations"] == []

    status, page = await Http(srv, srv.api_key).call("GET", f"/api/conversations/{cid}/messages")
    assert [m["content"] for m in page["messages"]] == ["secret words"]  # nothing was stored
    # a member may subscribe to the conversation's channel and see who is there
    member_view = await alice.request("subscribe", {"channels": [f"chat:{cid}"]})
    assert member_view["type"] == "subscribed"
    await alice.close()
    await mallory.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"clientMessageId": "e1", "content": ""}, "bad_request"),
        ({"clientMessageId": "e2", "content": "   "}, "bad_request"),
        ({"clientMessageId": "e3", "content": "x" * 4001}, "bad_request"),
        ({"clientMessageId": "", "content": "hi"}, "bad_request"),
        ({"clientMessageId": "e" * 101, "content": "hi"}, "bad_request"),
        ({"clientMessageId": "e4", "content": 5}, "bad_request"),
        ({"content": "no client id"}, "bad_request"),
        ({"clientMessageId": "e5", "content": "hi", "replyTo": "abc"}, "bad_request"),
        ({"clientMessageId": "e6", "content": "hi", "replyTo": "999999"}, "not_found"),
        ({"clientMessageId": "e7", "content": "", "attachments": ["a" + "0" * 24]}, "not_found"),
        ({"clientMessageId": "e8", "content": "hi", "attachments": ["x"] * 11}, "bad_request"),
    ],
)
async def test_bad_messages_are_refused_with_a_clear_error_and_nothing_is_stored(
    srv: RunningServer, payload: dict[str, Any], code: str
) -> None:
    cid = await conversation(srv, "alice", "bob", title="bad input")
    alice = await connect(srv, "alice")
    answer = await alice.request("chat.send_message", {"conversationId": cid, **payload})
    assert answer["type"] == "error" and answer["payload"]["code"] == code, answer
    good = await alice.request("chat.send_message", send_payload(cid, "fine", "still works"))
    assert good["type"] == "chat.message_delivered"
    _, page = await Http(srv, srv.api_key).call("GET", f"/api/conversations/{cid}/messages")
    assert [m["clientMessageId"] for m in page["messages"]] == ["fine"]
    await alice.close()


async def test_a_client_message_id_reused_for_other_content_is_a_conflict(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="conflict")
    alice = await connect(srv, "alice")
    await alice.request("chat.send_message", send_payload(cid, "k1", "first"))
    answer = await alice.request("chat.send_message", send_payload(cid, "k1", "different"))
    assert answer["payload"]["code"] == "conflict"
    await alice.close()


async def test_attachments_upload_attach_and_download_for_members_only(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="files")
    alice_http, bob_http = Http(srv, srv.token("alice")), Http(srv, srv.token("bob"))
    status, uploaded = await alice_http.call(
        "POST",
        f"/api/conversations/{cid}/attachments?name=../photo%20é.png",
        data=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert status == 201, uploaded
    assert uploaded["contentType"] == "image/png" and uploaded["size"] == len(PNG)
    assert uploaded["name"] == "_photo é.png"

    bob = await connect(srv, "bob")
    alice = await connect(srv, "alice")
    sent = await alice.request(
        "chat.send_message",
        {**send_payload(cid, "f1", ""), "attachments": [uploaded["attachmentId"]]},
    )
    assert sent["type"] == "chat.message_delivered", sent
    event = await bob.expect("chat.new_message")
    assert event["payload"]["attachments"] == [uploaded]

    path = f"/api/conversations/{cid}/attachments/{uploaded['attachmentId']}"
    status, data = await bob_http.call("GET", path)
    assert status == 200 and data == PNG
    status, _ = await Http(srv, srv.token("mallory")).call("GET", path)
    assert status == 403
    # bob cannot attach alice's upload as his own
    stolen = await bob.request(
        "chat.send_message",
        {**send_payload(cid, "f2", "mine"), "attachments": [uploaded["attachmentId"]]},
    )
    assert stolen["payload"]["code"] == "not_found"
    await alice.close()
    await bob.close()


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (PNG + b"\x00" * 5000, "image/png", 413, "too_large"),
        (b"<html><script>alert(1)</script>", "text/html", 400, "bad_request"),
        (b"MZ\x90\x00 not a png", "image/png", 400, "bad_request"),
        (b"\xff\xfe\x00bad text", "text/plain", 400, "bad_request"),
        (b"", "image/png", 400, "bad_request"),
        (PNG, "", 400, "bad_request"),
    ],
)
async def test_too_large_or_disallowed_uploads_are_refused_and_nothing_is_stored(
    srv: RunningServer, data: bytes, content_type: str, status: int, code: str
) -> None:
    cid = await conversation(srv, "alice", "bob", title="bad files")
    http = Http(srv, srv.token("alice"))
    got, body = await http.call(
        "POST",
        f"/api/conversations/{cid}/attachments?name=x",
        data=data,
        headers={"Content-Type": content_type} if content_type else {},
    )
    assert (got, body["error"]["code"]) == (status, code), body
    assert _stored_files(Path(srv.hub.settings.data_dir) / "chat-attachments") == []


def _stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_bad_http_requests_get_clear_errors(srv: RunningServer) -> None:
    cid = await conversation(srv, "alice", "bob", title="http")
    http = Http(srv, srv.token("alice"))
    for method, path, body, code in [
        ("POST", "/api/conversations", {"members": "bob"}, "bad_request"),
        ("POST", "/api/conversations", {"members": ["bad id!"]}, "bad_request"),
        ("POST", "/api/conversations", {"members": ["b"] * 2, "title": 7}, "bad_request"),
        ("GET", f"/api/conversations/{cid}/messages?limit=0", None, "bad_request"),
        ("GET", f"/api/conversations/{cid}/messages?before=x", None, "bad_request"),
        ("GET", f"/api/conversations/{cid}/messages?before=5&after=2", None, "bad_request"),
        ("GET", f"/api/conversations/{cid}/search?q=%20%21%21", None, "bad_request"),
        ("POST", f"/api/conversations/{cid}/read", {"messageId": 5}, "bad_request"),
        ("POST", f"/api/conversations/{cid}/read", {"messageId": "424242"}, "not_found"),
    ]:
        status, answer = await http.call(method, path, json=body)
        assert answer["error"]["code"] == code, (path, answer)
        assert 400 <= status < 500
    status, _ = await Http(srv, "not-a-token").call("GET", "/api/conversations")
    assert status == 401


async def test_members_join_and_leave_groups_and_everyone_concerned_hears_of_it(
    srv: RunningServer,
) -> None:
    cid = await conversation(srv, "alice", "bob", title="group")
    alice, carol = await connect(srv, "alice"), await connect(srv, "carol")
    alice_http, bob_http = Http(srv, srv.token("alice")), Http(srv, srv.token("bob"))

    status, body = await bob_http.call(
        "POST", f"/api/conversations/{cid}/members", json={"userId": "carol"}
    )
    assert status == 200 and body["members"] == ["alice", "bob", "carol"]
    for client in (alice, carol):
        added = await client.expect("chat.member_added")
        assert added["payload"] == {"conversationId": cid, "userId": "carol", "by": "bob"}
    sent = await carol.request("chat.send_message", send_payload(cid, "c1", "hi all"))
    assert sent["type"] == "chat.message_delivered"

    status, body = await bob_http.call("DELETE", f"/api/conversations/{cid}/members/carol")
    assert status == 403  # only the creator (here the server) removes others
    status, body = await Http(srv, srv.token("carol")).call(
        "DELETE", f"/api/conversations/{cid}/members/carol"
    )
    assert status == 200 and body["members"] == ["alice", "bob"]
    removed = await carol.expect("chat.member_removed")  # the one who left hears it too
    assert removed["payload"]["userId"] == "carol"
    refused = await carol.request("chat.send_message", send_payload(cid, "c2", "still here?"))
    assert refused["payload"]["code"] == "forbidden"

    direct = await conversation(srv, "alice", "dan")
    status, body = await alice_http.call(
        "POST", f"/api/conversations/{direct}/members", json={"userId": "bob"}
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    created = await alice.expect("chat.conversation_created", timeout=5)
    assert created["payload"]["conversationId"] == direct
    await alice.close()
    await carol.close()
