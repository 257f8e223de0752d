"""Authentication: tokens by query, header or first frame; 4001 for bad ones; refresh."""

from __future__ import annotations

import time

import jwt
import pytest

from hubbub import ManualClock, Settings
from hubbub.testing import RunningServer, running_server
from tests.wsclient import Closed, WsClient


def _real_time_clock() -> ManualClock:
    return ManualClock(wall_ms=int(time.time() * 1000))


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        jwt.encode(
            {"sub": "alice", "exp": int(time.time()) + 60},
            "a-wrong-secret-that-is-long-enough-1234567",
            "HS256",
        ),
        "expired",
        "no-sub",
    ],
)
async def test_bad_or_expired_token_is_closed_with_4001(server: RunningServer, token: str) -> None:
    if token == "expired":
        token = server.token("alice", ttl=-10)
    elif token == "no-sub":
        token = jwt.encode({"exp": int(time.time()) + 60}, server.hub.settings.jwt_secret or "")
    client = await WsClient.connect(server.url, token, wait_welcome=False)
    try:
        assert await client.wait_closed() == 4001
    finally:
        await client.close()


async def test_missing_token_is_closed_with_4001_after_the_auth_timeout() -> None:
    clock = ManualClock()
    async with running_server(Settings(auth_timeout=5.0), clock=clock) as srv:
        client = await WsClient.connect(srv.url, None, wait_welcome=False)
        try:
            clock.advance(4.9)
            assert not client.ws.closed
            clock.advance(0.2)
            assert await client.wait_closed() == 4001
        finally:
            await client.close()


async def test_first_frame_auth_gets_welcome_and_other_frames_first_get_4001(
    server: RunningServer,
) -> None:
    client = await WsClient.connect(server.url, None, wait_welcome=False)
    rude = await WsClient.connect(server.url, None, wait_welcome=False)
    try:
        welcome = await client.request("auth", {"token": server.token("alice")})
        assert welcome["type"] == "welcome" and welcome["payload"]["userId"] == "alice"
        await rude.send("subscribe", {"channels": ["news"]})
        assert await rude.wait_closed() == 4001
    finally:
        await client.close()
        await rude.close()


async def test_bearer_header_authenticates(server: RunningServer) -> None:
    headers = {"Authorization": f"Bearer {server.token('carol')}"}
    client = await WsClient.connect(server.url, None, headers=headers)
    try:
        assert client.welcome and client.welcome["payload"]["userId"] == "carol"
    finally:
        await client.close()


async def test_another_users_channel_is_forbidden_own_is_subscribed(server: RunningServer) -> None:
    client = await WsClient.connect(server.url, server.token("alice"))
    try:
        answer = await client.subscribe("user:bob")
        assert answer["type"] == "error"
        assert answer["payload"]["code"] == "forbidden"
        assert answer["payload"]["channel"] == "user:bob"
        own = await client.subscribe("user:alice")
        assert own["type"] == "subscribed"
    finally:
        await client.close()


async def test_token_claims_grant_channels_beyond_the_defaults(server: RunningServer) -> None:
    client = await WsClient.connect(server.url, server.token("alice", channels=["chat:c1"]))
    try:
        assert (await client.subscribe("chat:c1"))["type"] == "subscribed"
        denied = await client.subscribe("chat:c2")
        assert denied["payload"]["code"] == "forbidden"
    finally:
        await client.close()


async def test_refresh_before_expiry_keeps_the_connection_and_no_refresh_closes_it() -> None:
    clock = _real_time_clock()
    async with running_server(Settings(refresh_warning=30.0), clock=clock) as srv:
        keeper = await WsClient.connect(srv.url, srv.token("alice", ttl=60))
        lapser = await WsClient.connect(srv.url, srv.token("bob", ttl=60))
        try:
            clock.advance(31)
            expiring = await keeper.expect("auth.expiring")
            assert expiring["payload"]["exp"] > 0
            await lapser.expect("auth.expiring")
            # Both answered the heartbeat ping of second 25 only when the server has read
            # something from them since: without this the next beat could close the
            # lapser with 4002 before its token expires.
            assert (await lapser.request("ping"))["type"] == "pong"
            answer = await keeper.request("auth.refresh", {"token": srv.token("alice", ttl=3600)})
            assert answer["type"] == "auth.refreshed"
            clock.advance(40)
            assert await lapser.wait_closed() == 4001
            pong = await keeper.request("ping")
            assert pong["type"] == "pong"
        finally:
            await keeper.close()
            await lapser.close()


async def test_refresh_with_another_users_token_is_forbidden(server: RunningServer) -> None:
    client = await WsClient.connect(server.url, server.token("alice"))
    try:
        answer = await client.request("auth.refresh", {"token": server.token("mallory")})
        assert answer["type"] == "error" and answer["payload"]["code"] == "forbidden"
        assert (await client.request("ping"))["type"] == "pong"
    finally:
        await client.close()


async def test_closed_client_raises_closed(server: RunningServer) -> None:
    client = await WsClient.connect(server.url, "garbage", wait_welcome=False)
    try:
        with pytest.raises(Closed):
            await client.recv()
    finally:
        await client.close()


async def test_first_frame_auth_in_time_is_not_closed_by_the_auth_timeout() -> None:
    clock = ManualClock()
    async with running_server(Settings(auth_timeout=5.0), clock=clock) as srv:
        client = await WsClient.connect(srv.url, None, wait_welcome=False)
        try:
            clock.advance(4)
            welcome = await client.request("auth", {"token": srv.token("alice")})
            assert welcome["type"] == "welcome"
            clock.advance(10)
            assert (await client.request("ping"))["type"] == "pong"
        finally:
            await client.close()
