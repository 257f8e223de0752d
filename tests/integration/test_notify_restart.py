"""After a restart, notifications, their states, unread counts and pending fallbacks are there."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubbub import ManualClock, Settings
from hubbub.apps import notify
from hubbub.testing import running_server
from tests.integration.notify_services import PushService
from tests.integration.test_notify_live import api, post_notification
from tests.integration.test_notify_store import postgres_schema
from tests.wsclient import WsClient, wait_until


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.service)]
)
async def test_notifications_states_counts_and_pending_fallbacks_survive_a_restart(
    tmp_path: Path, database: str
) -> None:
    async with postgres_schema(database, tmp_path) as url:
        settings = Settings(database_url=url, notify_fallback_delay=60.0)
        push = PushService()
        async with push.running():
            async with running_server(settings, clock=ManualClock()) as srv:
                token = srv.token("alice")
                browser = push.browser("alice-phone")
                path = "/api/notifications/push-subscriptions"
                await api(srv, "POST", path, token, browser.subscription())
                read, seen, archived, waiting = [
                    await post_notification(srv, "alice", title=title)
                    for title in ("read", "seen", "archived", "waiting")
                ]
                for action, nid in (("read", read), ("seen", seen), ("archive", archived)):
                    ids = {"notificationIds": [nid]}
                    await api(srv, "POST", f"/api/notifications/{action}", token, ids)
                await api(
                    srv, "PUT", "/api/notifications/preferences", token, {"mutedTypes": ["a"]}
                )
                status, before = await api(srv, "GET", "/api/notifications?archived=include", token)
                assert before["unread"] == 2

            clock = ManualClock()
            async with running_server(settings, clock=clock) as srv:
                token = srv.token("alice")
                status, after = await api(srv, "GET", "/api/notifications?archived=include", token)
                assert after == before
                states = {n["title"]: n["state"] for n in after["notifications"]}
                assert states == {
                    "waiting": "unseen",
                    "archived": "archived",
                    "seen": "seen",
                    "read": "read",
                }
                alice = await WsClient.connect(srv.url, token)
                answer = await alice.request("notifications.unread_count", {})
                assert answer["payload"] == {"count": 2}
                await alice.close()
                await wait_until(lambda: "alice" not in srv.hub.users)
                status, prefs = await api(srv, "GET", "/api/notifications/preferences", token)
                assert prefs["mutedTypes"] == ["a"]

                # The fallbacks still pending were planned again on start.
                service = notify.service_of(srv.hub)
                await service.fallback.settle()
                assert service.fallback.planned == 2  # `seen` and `waiting`: still unread
                clock.advance(61)
                await service.fallback.settle()
                got = sorted([(await push.next()).message["title"] for _ in range(2)])
                assert got == ["seen", "waiting"]
