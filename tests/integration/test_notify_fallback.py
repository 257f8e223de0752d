"""Users who are away: Web Push and email after the delay, decided on an injected clock.

The push service checks the VAPID signature and decrypts the payload as a browser
would; the SMTP server is a real one. Time moves only when a test advances it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from hubbub import ManualClock, Settings
from hubbub.apps import notify
from hubbub.testing import RunningServer, running_server
from tests.integration.notify_services import PushService, SmtpServer
from tests.integration.test_notify_live import api, post_notification
from tests.wsclient import WsClient, wait_until

DELAY = 30.0


@dataclass
class World:
    srv: RunningServer
    clock: ManualClock
    push: PushService
    smtp: SmtpServer

    @property
    def service(self) -> notify.NotificationService:
        return notify.service_of(self.srv.hub)

    async def elapse(self, seconds: float = DELAY + 1) -> None:
        """Let time pass, then wait until every fallback that fell due is decided."""
        self.clock.advance(seconds)
        await self.service.fallback.settle()

    async def subscribe(self, user: str, name: str, *, gone: bool = False) -> None:
        browser = self.push.browser(name, gone=gone)
        path = "/api/notifications/push-subscriptions"
        status, body = await api(
            self.srv, "POST", path, self.srv.token(user), browser.subscription()
        )
        assert status == 201, body

    async def fallback(self, nid: str, user: str = "alice") -> dict[str, Any]:
        path = f"/api/notifications/{nid}/attempts"
        status, body = await api(self.srv, "GET", path, self.srv.token(user))
        assert status == 200, body
        return body  # type: ignore[no-any-return]


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = ManualClock()
    push, smtp = PushService(), SmtpServer()
    async with push.running(), smtp.running():
        settings = Settings(
            notify_fallback_delay=DELAY,
            notify_smtp_host="127.0.0.1",
            notify_smtp_port=smtp.port,
            notify_smtp_from="alerts@hubbub.test",
        )
        async with running_server(settings, clock=clock) as srv:
            status, key = await api(srv, "GET", "/api/notifications/vapid-key")
            assert status == 200
            push.expected_key = key["publicKey"]
            yield World(srv, clock, push, smtp)
        assert push.refused == []


async def test_an_away_user_gets_normal_by_web_push_signed_and_encrypted(world: World) -> None:
    await world.subscribe("alice", "alice-phone")
    nid = await post_notification(
        world.srv, "alice", title="Build passed", body="main is green", data={"run": 7}
    )
    await world.elapse(DELAY - 1)
    assert world.push.received.empty()  # not before the delay

    await world.elapse(2)
    pushed = await world.push.next()
    assert pushed.browser == "alice-phone"
    assert pushed.message == {
        "id": nid,
        "type": "test.ping",
        "priority": "normal",
        "title": "Build passed",
        "body": "main is green",
        "data": {"run": 7},
        "createdAt": pushed.message["createdAt"],
    }
    assert pushed.headers["Urgency"] == "normal" and int(pushed.headers["TTL"]) > 0
    record = await world.fallback(nid)
    assert record["fallback"] == "done"
    assert [(a["channel"], a["outcome"], a["status"]) for a in record["attempts"]] == [
        ("push", "sent", 201)
    ]


async def test_an_away_user_gets_critical_by_email_over_smtp_and_by_push(world: World) -> None:
    token = world.srv.token("alice")
    await api(
        world.srv, "PUT", "/api/notifications/preferences", token, {"emailAddress": "a@x.test"}
    )
    await world.subscribe("alice", "alice-laptop")
    nid = await post_notification(
        world.srv, "alice", title="Card declined", body="Update your card", priority="critical"
    )
    await world.elapse()
    mail = await world.smtp.next()
    assert mail["To"] == "a@x.test" and mail["X-Envelope-To"] == "a@x.test"
    assert mail["From"] == "alerts@hubbub.test"
    assert mail["Subject"] == "[critical] Card declined"
    assert mail["X-Hubbub-Notification"] == nid
    assert "Update your card" in mail.get_payload()
    pushed = await world.push.next()
    assert pushed.message["id"] == nid and pushed.headers["Urgency"] == "high"
    outcomes = {(a["channel"], a["outcome"]) for a in (await world.fallback(nid))["attempts"]}
    assert outcomes == {("push", "sent"), ("email", "sent")}


async def test_low_priority_goes_nowhere_when_the_user_is_away(world: World) -> None:
    token = world.srv.token("alice")
    await api(
        world.srv, "PUT", "/api/notifications/preferences", token, {"emailAddress": "a@x.test"}
    )
    await world.subscribe("alice", "alice-phone")
    low = await post_notification(world.srv, "alice", title="fyi", priority="low")
    marker = await post_notification(world.srv, "alice", title="marker", priority="critical")
    await world.elapse()
    assert (await world.push.next()).message["id"] == marker
    assert (await world.smtp.next())["X-Hubbub-Notification"] == marker
    assert world.push.received.empty() and world.smtp.mail.empty()
    assert await world.fallback(low) == {"id": low, "fallback": None, "attempts": []}


async def test_reading_before_the_delay_cancels_the_fallback(world: World) -> None:
    await world.subscribe("alice", "alice-phone")
    read = await post_notification(world.srv, "alice", title="read in time")
    archived = await post_notification(world.srv, "alice", title="archived in time")
    marker = await post_notification(world.srv, "alice", title="left unread")
    token = world.srv.token("alice")
    await api(world.srv, "POST", "/api/notifications/read", token, {"notificationIds": [read]})
    await api(
        world.srv, "POST", "/api/notifications/archive", token, {"notificationIds": [archived]}
    )
    await world.elapse()
    assert (await world.push.next()).message["id"] == marker
    assert world.push.received.empty()
    for nid in (read, archived):
        assert await world.fallback(nid) == {"id": nid, "fallback": "cancelled", "attempts": []}


async def test_a_user_connected_when_the_delay_ends_gets_no_push(world: World) -> None:
    await world.subscribe("alice", "alice-phone")
    alice = await WsClient.connect(world.srv.url, world.srv.token("alice"))
    nid = await post_notification(world.srv, "alice", title="seen live")
    await alice.expect("notification")
    await world.elapse()
    assert world.push.received.empty()
    assert (await world.fallback(nid))["fallback"] == "cancelled"
    await alice.close()


async def test_push_off_or_email_off_in_preferences_is_respected(world: World) -> None:
    token = world.srv.token("alice")
    prefs = {"push": False, "email": False, "emailAddress": "a@x.test"}
    await api(world.srv, "PUT", "/api/notifications/preferences", token, prefs)
    await world.subscribe("alice", "alice-phone")
    nid = await post_notification(world.srv, "alice", title="nothing", priority="critical")
    await world.elapse()
    assert await world.fallback(nid) == {"id": nid, "fallback": None, "attempts": []}
    assert world.push.received.empty() and world.smtp.mail.empty()


async def test_a_subscription_the_push_service_says_is_gone_is_recorded_and_forgotten(
    world: World,
) -> None:
    await world.subscribe("alice", "old-phone", gone=True)
    await world.subscribe("alice", "new-phone")
    nid = await post_notification(world.srv, "alice", title="first")
    await world.elapse()
    assert (await world.push.next()).browser == "new-phone"
    attempts = (await world.fallback(nid))["attempts"]
    assert [(a["outcome"], a["status"]) for a in attempts] == [("gone", 410), ("sent", 201)]
    remaining = await world.service.repo.subscriptions("alice")
    assert [s.endpoint for s in remaining] == [world.push.browsers["new-phone"].endpoint]


async def test_without_a_subscription_or_address_the_skipped_channels_are_recorded(
    world: World,
) -> None:
    nid = await post_notification(world.srv, "alice", title="nowhere", priority="critical")
    await world.elapse()
    attempts = (await world.fallback(nid))["attempts"]
    assert [(a["channel"], a["outcome"], a["detail"]) for a in attempts] == [
        ("push", "skipped", "no push subscription"),
        ("email", "skipped", "no email address"),
    ]


async def test_an_unreachable_push_service_is_a_recorded_failure(world: World) -> None:
    browser = world.push.browser("dead")
    subscription = browser.subscription()
    subscription["endpoint"] = "http://127.0.0.1:9/push/dead"  # the discard port: refused
    status, _ = await api(
        world.srv,
        "POST",
        "/api/notifications/push-subscriptions",
        world.srv.token("alice"),
        subscription,
    )
    assert status == 201
    nid = await post_notification(world.srv, "alice", title="into the void")
    await world.elapse()
    [attempt] = (await world.fallback(nid))["attempts"]
    assert attempt["outcome"] == "failed" and "unreachable" in attempt["detail"]
    await wait_until(lambda: world.service.fallback.planned == 0)


async def test_a_fallback_left_pending_by_a_node_that_died_is_taken_over(world: World) -> None:
    await world.subscribe("alice", "alice-phone")
    now = world.clock.time_ms()
    # What a node that stored a notification and died before its fallback leaves behind.
    row, _, _ = await world.service.repo.insert(
        {
            "user_id": "alice",
            "type": "ops.orphan",
            "priority": "high",
            "title": "left behind",
            "body": "",
            "data": {},
            "created_at": now,
            "live": True,
            "fallback": "pending",
            "fallback_due": now,
            "dedupe_key": None,
        }
    )
    assert world.service.fallback.planned == 0  # no timer on this node
    await world.elapse()
    pushed = await world.push.next()
    assert pushed.message["title"] == "left behind" and pushed.headers["Urgency"] == "high"
    assert (await world.fallback(str(row["id"])))["fallback"] == "done"
