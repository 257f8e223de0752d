"""Presence with several connections per user and a grace period, on an injected clock."""

from __future__ import annotations

from typing import Any

from hubbub import ManualClock, Settings
from hubbub.testing import RunningServer, running_server
from tests.wsclient import WsClient, wait_until

GRACE = 5.0


async def _next_on_room(client: WsClient) -> dict[str, Any]:
    while True:
        frame = await client.next()
        if frame.get("channel") == "room":
            return frame


async def _assert_quiet(srv: RunningServer, watcher: WsClient) -> None:
    """Nothing happened on `room` for `watcher` before a marker published now."""
    await srv.hub.presence.settle()
    marker = await srv.hub.publish("room", "marker")
    frame = await _next_on_room(watcher)
    assert frame["type"] == "message" and frame["seq"] == marker.seq, frame


async def _members(client: WsClient) -> list[dict[str, Any]]:
    answer = await client.request("presence.get", {"channel": "room"})
    return answer["payload"]["members"]  # type: ignore[no-any-return]


async def test_presence_counts_connections_and_leaves_only_after_the_grace_period() -> None:
    clock = ManualClock()
    async with running_server(Settings(presence_grace=GRACE), clock=clock) as srv:
        bob = await WsClient.connect(srv.url, srv.token("bob"))
        await bob.subscribe("room")
        own = await _next_on_room(bob)
        assert own["type"] == "presence.join" and own["payload"]["userId"] == "bob"
        first = await WsClient.connect(srv.url, srv.token("alice"))
        await first.subscribe("room")
        join = await _next_on_room(bob)
        assert join["type"] == "presence.join"
        assert join["payload"] == {"channel": "room", "userId": "alice"}
        assert "seq" not in join

        second = await WsClient.connect(srv.url, srv.token("alice"))
        await second.subscribe("room")
        await _assert_quiet(srv, bob)  # a second connection is no new join
        alice = [m for m in await _members(bob) if m["userId"] == "alice"]
        assert alice == [{"userId": "alice", "status": "online", "connections": 2}]

        await first.close()
        await wait_until(lambda: len(srv.hub.users["alice"]) == 1)
        clock.advance(GRACE * 2)
        await _assert_quiet(srv, bob)  # alice is still here on her second connection
        assert [m["connections"] for m in await _members(bob) if m["userId"] == "alice"] == [1]

        await second.close()
        await wait_until(lambda: "alice" not in srv.hub.users)
        clock.advance(GRACE - 1)
        await _assert_quiet(srv, bob)  # within the grace period: no leave yet
        back = await WsClient.connect(srv.url, srv.token("alice"))
        await back.subscribe("room")
        clock.advance(GRACE * 2)
        await _assert_quiet(srv, bob)  # she came back in time: no leave, no new join

        await back.close()
        await wait_until(lambda: "alice" not in srv.hub.users)
        clock.advance(GRACE + 0.1)
        await srv.hub.presence.settle()
        leave = await _next_on_room(bob)
        assert leave["type"] == "presence.leave"
        assert leave["payload"] == {"channel": "room", "userId": "alice"}
        assert [m["userId"] for m in await _members(bob)] == ["bob"]
        await bob.close()


async def test_status_update_shows_in_presence_and_reaches_watchers() -> None:
    async with running_server() as srv:
        watched: dict[str, list[str]] = {"alice": ["bob"]}

        @srv.hub.presence_watchers
        async def friends(user_id: str) -> list[str]:
            return watched.get(user_id, [])

        bob = await WsClient.connect(srv.url, srv.token("bob"))
        alice = await WsClient.connect(srv.url, srv.token("alice"))
        online = await bob.expect("presence.user_online")
        assert online["payload"] == {"userId": "alice", "status": "online"}
        await alice.subscribe("room")
        answer = await alice.request("presence.update", {"status": "away"})
        assert answer["type"] == "presence.updated"
        away = await bob.expect("presence.user_online")
        assert away["payload"] == {"userId": "alice", "status": "away"}
        members = await _members(bob)
        assert members == [{"userId": "alice", "status": "away", "connections": 1}]
        await alice.close()
        await bob.close()
