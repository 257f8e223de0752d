"""Regressions found in review: each of these once lost events, leaked state or let someone in."""

from __future__ import annotations

import secrets
import time

import aiohttp

from hubbub import ManualClock, Settings
from hubbub.engines.broker import PresenceInfo
from hubbub.engines.redis import RedisBroker
from hubbub.testing import RunningServer, running_server
from tests.services import REDIS_URL
from tests.wsclient import WsClient


async def test_negative_sequences_are_bad_requests_and_leave_no_half_made_subscription() -> None:
    settings = Settings(broker_url=f"{REDIS_URL}?prefix=t{secrets.token_hex(4)}")
    async with running_server(settings) as srv:
        client = await WsClient.connect(srv.url, srv.token("alice"))
        try:
            since = {"news": {"seq": -5, "epoch": "x"}}
            answer = await client.subscribe("news", since=since)
            assert answer["type"] == "error" and answer["payload"]["code"] == "bad_request"
            (session,) = srv.hub.users["alice"]
            assert "news" not in session.subscriptions
            bad = await client.request("history", {"channel": "news", "toSequence": -1})
            assert bad["payload"]["code"] == "bad_request"
            async with aiohttp.ClientSession() as http:
                url = f"{srv.http_url}/api/channels/news/history?toSequence=-1"
                headers = {"Authorization": f"Bearer {srv.api_key}"}
                async with http.get(url, headers=headers) as r:
                    assert r.status == 400
            assert (await client.subscribe("news"))["type"] == "subscribed"
            pub = await srv.hub.publish("news", "still delivered")
            assert (await client.expect("message", channel="news"))["seq"] == pub.seq
        finally:
            await client.close()


async def test_a_quiet_subscribed_channel_keeps_its_stream_through_the_idle_sweep() -> None:
    clock = ManualClock(wall_ms=int(time.time() * 1000))
    async with running_server(clock=clock) as srv:
        client = await WsClient.connect(srv.url, srv.token("bob", ttl=24 * 3600))
        try:
            first = await srv.hub.send_to_user("bob", "note", {"n": 1})
            (session,) = srv.hub.users["bob"]
            for _ in range(300):  # two hours, past the history TTL and the idle sweep's hour,
                clock.advance(24)  # the client staying alive between heartbeats
                assert (await client.request("ping"))["type"] == "pong"
            for n in range(4096):  # the memory broker sweeps every 4096 publications
                await srv.hub.publish("busy", n)
            assert not session.closed
            second = await srv.hub.send_to_user("bob", "note", {"n": 2})
            assert (second.seq, second.epoch) == ((first.seq or 0) + 1, first.epoch)
        finally:
            await client.close()


async def test_reading_made_up_channel_names_keeps_no_state(server: RunningServer) -> None:
    client = await WsClient.connect(server.url, server.token("carol"))
    try:
        before = len(server.hub._namespaces)
        for i in range(200):
            answer = await client.request("history", {"channel": f"ns{i}:x{i}"})
            assert answer["type"] == "history" and answer["payload"]["seq"] == 0
        assert len(server.hub._namespaces) <= before + 1
        broker = server.hub.broker
        assert not any(name.startswith("ns") for name in broker._streams)  # type: ignore[attr-defined]
    finally:
        await client.close()


async def test_user_ids_that_cannot_name_a_channel_are_refused_with_4001(
    server: RunningServer,
) -> None:
    client = await WsClient.connect(server.url, server.token("auth0|5f7c"), wait_welcome=False)
    try:
        assert await client.wait_closed() == 4001
    finally:
        await client.close()


async def test_a_non_ascii_bearer_token_is_unauthorized_not_a_server_error(
    server: RunningServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": "Bearer été".encode().decode("latin-1")}
        async with http.get(server.http_url + "/api/channels", headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["error"]["code"] == "unauthorized"


async def test_a_node_restarted_under_the_same_id_drops_the_presence_of_its_previous_run() -> None:
    prefix = f"t{secrets.token_hex(4)}"
    first = RedisBroker(REDIS_URL, prefix=prefix, node_id="n1")
    await first.start()
    await first.presence_add("room", PresenceInfo(user_id="ann", connection_id="c1"))
    await first.close()  # a crash: nothing removed
    gone: list[tuple[str, str]] = []
    second = RedisBroker(REDIS_URL, prefix=prefix, node_id="n1")
    second.set_sink(lambda pub: None, on_presence_gone=lambda c, u: gone.append((c, u)))
    await second.start()
    try:
        assert await second.presence_members("room") == []
        assert not await second.presence_has_user("room", "ann")
        assert gone == [("room", "ann")]
    finally:
        await second.close()
