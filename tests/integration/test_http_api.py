"""The core HTTP API of PROTOCOL.md section 14 against a real server, and the operator
endpoints (health, readiness, metrics)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from hubbub.config import Settings
from hubbub.testing import RunningServer, running_server
from tests.wsclient import WsClient


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    token: str | None = None,
    body: Any = None,
) -> tuple[int, Any]:
    """Make one call; the status and the JSON answer."""
    async with http.request(
        method, url, json=body, headers=bearer(token) if token else None
    ) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()


def assert_error(status: int, answer: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, answer
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == code
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"]


# -- publish --------------------------------------------------------------------------------


async def test_publishing_with_the_api_key_reaches_a_websocket_subscriber(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await WsClient.connect(server.url, server.token("alice"))
    try:
        await alice.subscribe("news")
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/publish",
            server.api_key,
            {"channel": "news", "data": {"headline": "hi"}},
        )
        assert status == 200
        assert answer == {"channel": "news", "seq": 1}
        event = await alice.expect("message", channel="news")
        assert event["seq"] == 1
        assert event["payload"]["data"] == {"headline": "hi"}
        assert "publisher" not in event["payload"]
    finally:
        await alice.close()


async def test_the_api_key_may_publish_into_server_only_namespaces(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/publish",
            server.api_key,
            {"channel": "user:bob", "data": "for bob"},
        )
        assert (status, answer) == (200, {"channel": "user:bob", "seq": 1})
        event = await bob.expect("message", channel="user:bob")
        assert event["payload"]["data"] == "for bob"
    finally:
        await bob.close()


async def test_consecutive_publishes_get_consecutive_seqs(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    seqs = []
    for n in range(5):
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/publish",
            server.api_key,
            {"channel": "ticks", "data": n},
        )
        assert status == 200
        seqs.append(answer["seq"])
    assert seqs == [1, 2, 3, 4, 5]


async def test_a_user_token_may_publish_where_the_user_may_and_is_named_publisher(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    watcher = await WsClient.connect(server.url, server.token("watcher"))
    try:
        await watcher.subscribe("news")
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/publish",
            server.token("alice"),
            {"channel": "news", "data": 7},
        )
        assert (status, answer) == (200, {"channel": "news", "seq": 1})
        event = await watcher.expect("message", channel="news")
        assert event["payload"] == {"data": 7, "publisher": "alice"}
    finally:
        await watcher.close()


@pytest.mark.parametrize("channel", ["user:bob", "market:X"])
async def test_a_user_token_may_not_publish_into_a_server_only_namespace(
    server: RunningServer, http: aiohttp.ClientSession, channel: str
) -> None:
    status, answer = await call(
        http,
        "POST",
        f"{server.http_url}/api/publish",
        server.token("alice"),
        {"channel": channel, "data": "spoof"},
    )
    assert_error(status, answer, 403, "forbidden")
    assert (await server.hub.broker.position(channel)).seq == 0


async def test_a_publish_claim_lets_a_user_publish_into_a_server_only_namespace(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http,
        "POST",
        f"{server.http_url}/api/publish",
        server.token("feed", publish=["market:*"]),
        {"channel": "market:X", "data": {"bid": "1.00"}},
    )
    assert (status, answer) == (200, {"channel": "market:X", "seq": 1})


async def test_publishing_without_a_token_is_401_with_a_json_error(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/publish", None, {"channel": "news", "data": 1}
    )
    assert_error(status, answer, 401, "unauthorized")


@pytest.mark.parametrize("token", ["not-a-jwt", "wrong-api-key"])
async def test_publishing_with_a_bad_token_is_401(
    server: RunningServer, http: aiohttp.ClientSession, token: str
) -> None:
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/publish", token, {"channel": "news", "data": 1}
    )
    assert_error(status, answer, 401, "unauthorized")


async def test_publishing_with_an_expired_token_is_401(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http,
        "POST",
        f"{server.http_url}/api/publish",
        server.token("alice", ttl=-60),
        {"channel": "news", "data": 1},
    )
    assert_error(status, answer, 401, "unauthorized")


@pytest.mark.parametrize(
    "body",
    [{"data": 1}, {"channel": "news"}, {"channel": "bad name", "data": 1}, [1], "news"],
)
async def test_a_malformed_publish_body_is_400(
    server: RunningServer, http: aiohttp.ClientSession, body: Any
) -> None:
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/publish", server.api_key, body
    )
    assert_error(status, answer, 400, "bad_request")


async def test_a_publish_body_that_is_not_json_is_400(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async with http.post(
        f"{server.http_url}/api/publish", data=b"{nope", headers=bearer(server.api_key)
    ) as resp:
        assert_error(resp.status, await resp.json(), 400, "bad_request")


# -- channels ----------------------------------------------------------------------------------


async def test_listing_channels_shows_each_with_its_subscriber_count(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await WsClient.connect(server.url, server.token("alice"))
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        await alice.subscribe("news")
        await bob.subscribe("news")
        await bob.subscribe("sport")
        status, answer = await call(http, "GET", f"{server.http_url}/api/channels", server.api_key)
        assert status == 200
        listed = {c["name"]: c["subscribers"] for c in answer["channels"]}
        assert listed["news"] == 2
        assert listed["sport"] == 1
        assert listed["user:alice"] == 1
    finally:
        await alice.close()
        await bob.close()


async def test_listing_channels_needs_the_api_key(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels", server.token("alice")
    )
    assert_error(status, answer, 403, "forbidden")
    status, answer = await call(http, "GET", f"{server.http_url}/api/channels")
    assert_error(status, answer, 401, "unauthorized")


async def test_history_pages_from_a_sequence_with_a_limit(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for n in range(1, 6):
        await server.hub.publish("news", {"n": n})
    epoch = (await server.hub.broker.position("news")).epoch
    status, answer = await call(
        http,
        "GET",
        f"{server.http_url}/api/channels/news/history?fromSequence=2&limit=2",
        server.api_key,
    )
    assert status == 200
    assert (answer["channel"], answer["epoch"], answer["seq"]) == ("news", epoch, 5)
    assert [e["seq"] for e in answer["events"]] == [2, 3]
    first = answer["events"][0]
    assert first["type"] == "message" and first["channel"] == "news"
    assert first["payload"] == {"data": {"n": 2}}
    assert isinstance(first["ts"], int)


async def test_history_without_parameters_returns_everything_held(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for n in range(3):
        await server.hub.publish("news", n)
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/news/history", server.token("alice")
    )
    assert status == 200
    assert [e["payload"]["data"] for e in answer["events"]] == [0, 1, 2]


async def test_history_of_another_users_channel_is_forbidden_to_a_user(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    await server.hub.send_to_user("bob", "note", {"secret": 1})
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/user:bob/history", server.token("alice")
    )
    assert_error(status, answer, 403, "forbidden")
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/user:bob/history", server.token("bob")
    )
    assert status == 200 and [e["type"] for e in answer["events"]] == ["note"]


async def test_empty_history_parameters_mean_from_the_start_with_the_default_limit(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    for n in range(3):
        await server.hub.publish("news", n)
    status, answer = await call(
        http,
        "GET",
        f"{server.http_url}/api/channels/news/history?fromSequence=&limit=",
        server.api_key,
    )
    assert status == 200
    assert [e["seq"] for e in answer["events"]] == [1, 2, 3]


async def test_a_user_whose_token_grants_a_channel_may_read_its_history(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    await server.hub.publish_event("chat:c1", "chat.new_message", {"content": "hi"})
    url = f"{server.http_url}/api/channels/chat:c1/history"
    status, answer = await call(http, "GET", url, server.token("alice", channels=["chat:c1"]))
    assert status == 200 and [e["type"] for e in answer["events"]] == ["chat.new_message"]
    status, answer = await call(http, "GET", url, server.token("mallory"))
    assert_error(status, answer, 403, "forbidden")


@pytest.mark.parametrize("query", ["fromSequence=two", "limit=1.5"])
async def test_history_with_a_non_integer_parameter_is_400(
    server: RunningServer, http: aiohttp.ClientSession, query: str
) -> None:
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/news/history?{query}", server.api_key
    )
    assert_error(status, answer, 400, "bad_request")


async def test_history_of_a_bad_channel_name_is_400(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/a::b/history", server.api_key
    )
    assert_error(status, answer, 400, "bad_request")


async def test_presence_lists_the_members_of_a_channel(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice1 = await WsClient.connect(server.url, server.token("alice"))
    alice2 = await WsClient.connect(server.url, server.token("alice"))
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        for client in (alice1, alice2, bob):
            assert (await client.subscribe("room"))["type"] == "subscribed"
        status, answer = await call(
            http, "GET", f"{server.http_url}/api/channels/room/presence", server.token("carol")
        )
        assert status == 200
        assert answer == {
            "channel": "room",
            "members": [
                {"userId": "alice", "status": "online", "connections": 2},
                {"userId": "bob", "status": "online", "connections": 1},
            ],
        }
    finally:
        for client in (alice1, alice2, bob):
            await client.close()


async def test_presence_of_another_users_channel_is_forbidden_to_a_user(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http, "GET", f"{server.http_url}/api/channels/user:bob/presence", server.token("alice")
    )
    assert_error(status, answer, 403, "forbidden")


# -- disconnect --------------------------------------------------------------------------------


async def test_disconnecting_a_user_closes_every_socket_of_theirs_with_the_code(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice1 = await WsClient.connect(server.url, server.token("alice"))
    alice2 = await WsClient.connect(server.url, server.token("alice"))
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/users/alice/disconnect",
            server.api_key,
            {"code": 4003, "reason": "banned"},
        )
        assert (status, answer) == (200, {"closed": 2})
        assert await alice1.wait_closed() == 4003
        assert await alice2.wait_closed() == 4003
        assert (await bob.request("ping"))["type"] == "pong"
    finally:
        for client in (alice1, alice2, bob):
            await client.close()


async def test_disconnecting_without_a_code_tells_clients_to_reconnect(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await WsClient.connect(server.url, server.token("alice"))
    try:
        status, answer = await call(
            http, "POST", f"{server.http_url}/api/users/alice/disconnect", server.api_key
        )
        assert (status, answer) == (200, {"closed": 1})
        assert await alice.wait_closed() == 1012
    finally:
        await alice.close()


async def test_a_long_non_ascii_disconnect_reason_still_closes_with_the_code(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    alice = await WsClient.connect(server.url, server.token("alice"))
    try:
        status, answer = await call(
            http,
            "POST",
            f"{server.http_url}/api/users/alice/disconnect",
            server.api_key,
            {"code": 4000, "reason": "é" * 100},
        )
        assert (status, answer) == (200, {"closed": 1})
        assert await alice.wait_closed() == 4000
    finally:
        await alice.close()


async def test_disconnecting_a_user_with_no_connection_closes_nothing(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/users/nobody/disconnect", server.api_key, {}
    )
    assert (status, answer) == (200, {"closed": 0})


async def test_disconnect_needs_the_api_key(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        status, answer = await call(
            http, "POST", f"{server.http_url}/api/users/bob/disconnect", server.token("alice"), {}
        )
        assert_error(status, answer, 403, "forbidden")
        assert (await bob.request("ping"))["type"] == "pong"
    finally:
        await bob.close()


@pytest.mark.parametrize("body", [{"code": 1006}, {"code": "4000"}, {"reason": 5}])
async def test_disconnect_with_a_bad_code_or_reason_is_400(
    server: RunningServer, http: aiohttp.ClientSession, body: Any
) -> None:
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/users/alice/disconnect", server.api_key, body
    )
    assert_error(status, answer, 400, "bad_request")


# -- development tokens ---------------------------------------------------------------------------


async def test_a_dev_token_connects_as_that_user_in_development_mode(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    assert server.hub.settings.dev_mode
    status, answer = await call(
        http, "POST", f"{server.http_url}/api/dev/token", None, {"user": "carol"}
    )
    assert status == 200 and isinstance(answer["token"], str)
    carol = await WsClient.connect(server.url, answer["token"])
    try:
        assert carol.welcome is not None
        assert carol.welcome["payload"]["userId"] == "carol"
    finally:
        await carol.close()


@pytest.mark.parametrize("body", [{}, {"user": ""}, {"user": 5}, ["carol"]])
async def test_a_dev_token_needs_a_user_name(
    server: RunningServer, http: aiohttp.ClientSession, body: Any
) -> None:
    status, answer = await call(http, "POST", f"{server.http_url}/api/dev/token", None, body)
    assert_error(status, answer, 400, "bad_request")


async def test_there_are_no_dev_tokens_outside_development_mode(
    http: aiohttp.ClientSession,
) -> None:
    production = Settings(dev=False, jwt_secret="s" * 32, api_key="k" * 32)
    async with running_server(production) as srv:
        assert not srv.hub.settings.dev_mode
        status, answer = await call(
            http, "POST", f"{srv.http_url}/api/dev/token", None, {"user": "carol"}
        )
        assert_error(status, answer, 404, "not_found")
        status, answer = await call(
            http, "POST", f"{srv.http_url}/api/publish", "k" * 32, {"channel": "news", "data": 1}
        )
        assert (status, answer) == (200, {"channel": "news", "seq": 1})


# -- errors and operators -------------------------------------------------------------------


async def test_an_unknown_api_path_is_a_json_404(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(http, "GET", f"{server.http_url}/api/no/such/thing")
    assert_error(status, answer, 404, "not_found")


async def test_healthz_says_ok(server: RunningServer, http: aiohttp.ClientSession) -> None:
    status, answer = await call(http, "GET", f"{server.http_url}/healthz")
    assert (status, answer) == (200, {"status": "ok"})


async def test_readyz_says_ready_with_the_node_name(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    status, answer = await call(http, "GET", f"{server.http_url}/readyz")
    assert status == 200
    assert answer["ready"] is True
    assert answer["node"] == server.hub.settings.node_name


async def test_metrics_count_open_connections(
    server: RunningServer, http: aiohttp.ClientSession
) -> None:
    async def connections() -> float:
        async with http.get(f"{server.http_url}/metrics") as resp:
            assert resp.status == 200
            assert resp.content_type == "text/plain"
            text = await resp.text()
        values = [
            line.split()[1] for line in text.splitlines() if line.startswith("hubbub_connections ")
        ]
        assert len(values) == 1, text
        return float(values[0])

    assert await connections() == 0
    alice = await WsClient.connect(server.url, server.token("alice"))
    bob = await WsClient.connect(server.url, server.token("bob"))
    try:
        assert await connections() == 2
    finally:
        await alice.close()
        await bob.close()
