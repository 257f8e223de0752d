"""Notifications reach every connection of their user, and read state follows on each."""

from __future__ import annotations

from typing import Any

import aiohttp

from hubbub import ManualClock, Settings
from hubbub.apps import notify
from hubbub.core.notices import Notice
from hubbub.testing import RunningServer, running_server
from tests.wsclient import WsClient


async def api(
    srv: RunningServer, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    """One HTTP call; the API key unless `token` is given."""
    headers = {"Authorization": f"Bearer {token or srv.api_key}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, srv.http_url + path, json=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def post_notification(srv: RunningServer, user: str, **fields: Any) -> str:
    body = {"userId": user, "type": "test.ping", "title": "hello", **fields}
    status, answer = await api(srv, "POST", "/api/notifications", body=body)
    assert status == 201, answer
    return str(answer["id"])


async def test_a_notification_reaches_all_three_devices_and_a_read_on_one_updates_the_others() -> (
    None
):
    async with running_server() as srv:
        phone, laptop, tablet = [
            await WsClient.connect(srv.url, srv.token("alice")) for _ in range(3)
        ]
        nid = await post_notification(srv, "alice", body="your build passed", priority="high")

        for device in (phone, laptop, tablet):
            event = await device.expect("notification")
            assert event["channel"] == "user:alice" and isinstance(event["seq"], int)
            payload = event["payload"]
            assert payload["id"] == nid and payload["userId"] == "alice"
            assert (payload["title"], payload["body"], payload["priority"]) == (
                "hello",
                "your build passed",
                "high",
            )
            assert payload["read"] is False and payload["state"] == "unseen"
            assert (await device.expect("notifications.unread_count"))["payload"] == {"count": 1}

        answer = await phone.request("notifications.mark_read", {"notificationIds": [nid]})
        assert answer["type"] == "notifications.updated"
        assert answer["payload"] == {"notificationIds": [nid], "unread": 0}
        for other in (laptop, tablet):
            read = await other.expect("notifications_read")
            assert read["payload"] == {"notificationIds": [nid]}
            count = await other.expect("notifications.unread_count")
            assert count["payload"] == {"count": 0}
            assert count["seq"] > read["seq"]
        for device in (phone, laptop, tablet):
            await device.close()


async def test_marking_all_read_and_archiving_reach_every_device_with_the_new_count() -> None:
    async with running_server() as srv:
        first, second = [await WsClient.connect(srv.url, srv.token("alice")) for _ in range(2)]
        ids = [await post_notification(srv, "alice", title=f"n{i}") for i in range(3)]
        await second.expect("notifications.unread_count", payload={"count": 3})

        archived = await first.request("notifications.archive", {"notificationIds": [ids[0]]})
        assert archived["payload"] == {"notificationIds": [ids[0]], "unread": 2}
        event = await second.expect("notifications_archived")
        assert event["payload"] == {"notificationIds": [ids[0]]}
        await second.expect("notifications.unread_count", payload={"count": 2})

        status, body = await api(srv, "POST", "/api/notifications/read-all", srv.token("alice"))
        assert status == 200 and body == {"notificationIds": ids[1:], "unread": 0}
        event = await second.expect("notifications_read")
        assert event["payload"] == {"notificationIds": ids[1:], "all": True}
        await second.expect("notifications.unread_count", payload={"count": 0})

        page = await first.request("notifications.list", {"archived": "include"})
        states = {n["id"]: n["state"] for n in page["payload"]["notifications"]}
        assert states == {ids[0]: "archived", ids[1]: "read", ids[2]: "read"}
        await first.close()
        await second.close()


async def test_a_muted_type_is_stored_and_counted_but_not_sent_live() -> None:
    async with running_server() as srv:
        token = srv.token("alice")
        status, prefs = await api(
            srv, "PUT", "/api/notifications/preferences", token, {"mutedTypes": ["chat.*"]}
        )
        assert status == 200 and prefs["mutedTypes"] == ["chat.*"]
        alice = await WsClient.connect(srv.url, token)
        muted = await post_notification(srv, "alice", type="chat.message", title="psst")
        marker = await post_notification(srv, "alice", type="billing.paid", title="marker")

        # Events on user:alice arrive in order: the first notification is the marker.
        first = await alice.expect("notification")
        assert first["payload"]["id"] == marker
        assert [f for f in alice.backlog if f["type"] == "notification"] == []
        counts = [f["payload"]["count"] for f in alice.backlog if f["type"].endswith("count")]
        assert counts == [1]  # the muted one still counted for the badge

        status, page = await api(srv, "GET", "/api/notifications", token)
        assert [n["id"] for n in page["notifications"]] == [marker, muted]
        assert page["unread"] == 2
        await alice.close()


async def test_critical_is_sent_live_despite_a_mute_and_quiet_hours() -> None:
    clock = ManualClock()  # 2025-11-25 11:26:40 UTC
    async with running_server(clock=clock) as srv:
        token = srv.token("alice")
        quiet = {"start": "11:00", "end": "12:00", "timezone": "UTC"}
        status, _ = await api(
            srv,
            "PUT",
            "/api/notifications/preferences",
            token,
            {"mutedTypes": ["ops.alert"], "quietHours": quiet},
        )
        assert status == 200
        alice = await WsClient.connect(srv.url, token)
        await post_notification(srv, "alice", type="news.digest", title="quiet hours hold me")
        await post_notification(srv, "alice", type="ops.alert", title="muted and normal")
        critical = await post_notification(
            srv, "alice", type="ops.alert", title="disk full", priority="critical"
        )
        event = await alice.expect("notification")
        assert event["payload"]["id"] == critical and event["payload"]["priority"] == "critical"
        assert [f for f in alice.backlog if f["type"] == "notification"] == []
        await alice.close()


async def test_quiet_hours_across_midnight_in_the_users_time_zone_hold_back_normal() -> None:
    clock = ManualClock()  # 12:26 in Paris, 20:26 in Tokyo
    async with running_server(clock=clock) as srv:
        token = srv.token("bob")
        night = {"start": "20:00", "end": "07:00", "timezone": "Asia/Tokyo"}
        await api(srv, "PUT", "/api/notifications/preferences", token, {"quietHours": night})
        bob = await WsClient.connect(srv.url, token)
        await post_notification(srv, "bob", title="at night in Tokyo")
        await api(
            srv,
            "PUT",
            "/api/notifications/preferences",
            token,
            {"quietHours": {**night, "timezone": "Europe/Paris"}},
        )
        marker = await post_notification(srv, "bob", title="midday in Paris")
        assert (await bob.expect("notification"))["payload"]["id"] == marker
        await bob.close()


async def test_the_python_api_and_the_hub_notify_hook_store_and_deliver() -> None:
    async with running_server() as srv:
        service = notify.service_of(srv.hub)
        alice = await WsClient.connect(srv.url, srv.token("alice"))
        await srv.hub.notify(
            Notice(user_id="alice", type="chat.message", title="bob", body="hi", data={"c": "1"})
        )
        event = await alice.expect("notification")
        assert event["payload"]["data"] == {"c": "1"} and event["payload"]["type"] == "chat.message"
        made = await service.create(
            Notice(user_id="alice", type="x.y", title="again"), dedupe_key="k1"
        )
        repeat = await service.create(
            Notice(user_id="alice", type="x.y", title="again"), dedupe_key="k1"
        )
        assert repeat["id"] == made["id"]
        page = await service.page("alice")
        assert [n["title"] for n in page.notifications] == ["again", "bob"]
        marked = await service.mark_read("alice", [made["id"]])
        assert marked.unread == 1
        await alice.expect("notifications_read", payload={"notificationIds": [made["id"]]})
        await alice.close()


async def test_cursor_pages_stay_stable_while_new_notifications_arrive() -> None:
    async with running_server(Settings()) as srv:
        token = srv.token("carol")
        ids = [await post_notification(srv, "carol", title=f"n{i}") for i in range(5)]
        status, first = await api(srv, "GET", "/api/notifications?limit=2", token)
        assert [n["id"] for n in first["notifications"]] == [ids[4], ids[3]]
        newer = await post_notification(srv, "carol", title="newer")
        path = f"/api/notifications?limit=2&before={first['next']}"
        status, second = await api(srv, "GET", path, token)
        assert [n["id"] for n in second["notifications"]] == [ids[2], ids[1]]
        status, third = await api(srv, "GET", f"/api/notifications?before={second['next']}", token)
        assert [n["id"] for n in third["notifications"]] == [ids[0]]
        assert "next" not in third and third["unread"] == 6
        await api(srv, "POST", "/api/notifications/read", token, {"notificationIds": [ids[1]]})
        status, unread = await api(srv, "GET", "/api/notifications?unread=true&limit=10", token)
        assert [n["id"] for n in unread["notifications"]] == [newer, ids[4], ids[3], ids[2], ids[0]]
