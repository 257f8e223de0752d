"""A user reaches only their own notifications, over HTTP and over the WebSocket;
bad input gets a clear error and changes nothing."""

from __future__ import annotations

from hubbub.testing import running_server
from tests.integration.test_notify_live import api, post_notification
from tests.wsclient import WsClient


async def test_user_a_can_neither_list_read_mark_nor_archive_user_bs_notifications() -> None:
    async with running_server() as srv:
        theirs = await post_notification(srv, "bob", title="bob's secret", body="for bob only")
        mine = await post_notification(srv, "alice", title="alice's")
        alice = srv.token("alice")
        ids = {"notificationIds": [theirs]}

        status, page = await api(srv, "GET", "/api/notifications", alice)
        assert status == 200 and [n["id"] for n in page["notifications"]] == [mine]
        assert (await api(srv, "GET", "/api/notifications?userId=bob", alice))[0] == 403
        assert (await api(srv, "GET", f"/api/notifications/{theirs}", alice))[0] == 404
        assert (await api(srv, "GET", f"/api/notifications/{theirs}/attempts", alice))[0] == 404
        for action in ("read", "seen", "archive"):
            status, body = await api(srv, "POST", f"/api/notifications/{action}", alice, ids)
            assert status == 404 and body["error"]["code"] == "not_found", action
        both = {"notificationIds": [mine, theirs]}
        assert (await api(srv, "POST", "/api/notifications/read", alice, both))[0] == 404
        status, body = await api(
            srv, "POST", "/api/notifications", alice, {"userId": "bob", "type": "x", "title": "t"}
        )
        assert status == 403

        ws = await WsClient.connect(srv.url, alice)
        listed = await ws.request("notifications.list", {})
        assert [n["id"] for n in listed["payload"]["notifications"]] == [mine]
        got = await ws.request("notifications.get", {"notificationId": theirs})
        assert got["type"] == "error" and got["payload"]["code"] == "not_found"
        for kind in ("mark_read", "mark_seen", "archive"):
            answer = await ws.request(f"notifications.{kind}", ids)
            assert answer["type"] == "error" and answer["payload"]["code"] == "not_found", kind
        # Alice's own was not marked by the mixed call above, refused as a whole.
        marked = await ws.request("notifications.mark_all_read", {})
        assert marked["payload"] == {"notificationIds": [mine], "unread": 0}
        await ws.close()

        status, bobs = await api(srv, "GET", "/api/notifications", srv.token("bob"))
        [untouched] = bobs["notifications"]
        assert untouched["id"] == theirs and untouched["state"] == "unseen"
        assert bobs["unread"] == 1
        status, item = await api(srv, "GET", f"/api/notifications/{theirs}?userId=bob")
        assert status == 200 and item["title"] == "bob's secret"


async def test_bad_input_gets_a_clear_error_and_stores_nothing() -> None:
    async with running_server() as srv:
        alice = srv.token("alice")
        bad_bodies = [
            ({"userId": "alice", "type": "x", "title": "t", "priority": "urgent"}, "priority"),
            ({"userId": "not a channel!", "type": "x", "title": "t"}, "userId"),
            ({"userId": "alice", "title": "t"}, "type"),
            ({"userId": "alice", "type": "x", "title": "t" * 501}, "title"),
            ({"userId": "alice", "type": "x", "title": "t", "data": "str"}, "data"),
            ({"userId": "alice", "type": "x", "title": "t", "data": {"a": "x" * 20000}}, "data"),
        ]
        for body, field in bad_bodies:
            status, answer = await api(srv, "POST", "/api/notifications", body=body)
            assert status == 400, body
            assert answer["error"]["code"] == "bad_request" and field in answer["error"]["message"]
        for query in ("limit=0", "limit=101", "before=abc", "unread=maybe", "archived=x"):
            status, answer = await api(srv, "GET", f"/api/notifications?{query}", alice)
            assert status == 400 and answer["error"]["code"] == "bad_request", query
        for body in ({}, {"notificationIds": []}, {"notificationIds": ["x1"]}, [1]):
            status, _ = await api(srv, "POST", "/api/notifications/read", alice, body)
            assert status == 400, body
        for prefs in (
            {"quietHours": {"start": "25:00", "end": "07:00"}},
            {"quietHours": {"start": "22:00", "end": "07:00", "timezone": "Mars/Olympus"}},
            {"emailAddress": "not-an-address"},
            {"push": "yes"},
            {"colour": "red"},
        ):
            status, _ = await api(srv, "PUT", "/api/notifications/preferences", alice, prefs)
            assert status == 400, prefs
        status, prefs = await api(srv, "GET", "/api/notifications/preferences", alice)
        assert prefs == {
            "mutedTypes": [],
            "push": True,
            "email": True,
            "emailAddress": None,
            "quietHours": None,
        }
        for sub in (
            {"endpoint": "ftp://push.example/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            {"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
            {"endpoint": "https://push.example/x"},
        ):
            path = "/api/notifications/push-subscriptions"
            assert (await api(srv, "POST", path, alice, sub))[0] == 400, sub

        ws = await WsClient.connect(srv.url, alice)
        answer = await ws.request("notifications.mark_read", {"notificationIds": "1"})
        assert answer["payload"]["code"] == "bad_request"
        answer = await ws.request("notifications.list", {"limit": 1000})
        assert answer["payload"]["code"] == "bad_request"
        assert (await ws.request("ping"))["type"] == "pong"  # the connection is fine
        await ws.close()
        status, page = await api(srv, "GET", "/api/notifications", alice)
        assert page == {"notifications": [], "unread": 0}


async def test_the_api_key_reads_and_marks_for_a_named_user() -> None:
    async with running_server() as srv:
        nid = await post_notification(srv, "dave", title="ops")
        assert (await api(srv, "GET", "/api/notifications"))[0] == 400  # which user?
        status, page = await api(srv, "GET", "/api/notifications?userId=dave")
        assert status == 200 and page["unread"] == 1
        status, marked = await api(
            srv, "POST", "/api/notifications/read?userId=dave", body={"notificationIds": [nid]}
        )
        assert status == 200 and marked == {"notificationIds": [nid], "unread": 0}
