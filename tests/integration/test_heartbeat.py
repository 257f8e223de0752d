"""Heartbeats on an injected clock: silent clients are closed within two intervals."""

from __future__ import annotations

import asyncio

from hubbub import ManualClock, Settings
from hubbub.testing import running_server
from tests.wsclient import WsClient, wait_until

INTERVAL = 25.0


async def test_client_that_stops_answering_pings_is_closed_within_two_intervals() -> None:
    clock = ManualClock()
    async with running_server(Settings(heartbeat_interval=INTERVAL), clock=clock) as srv:
        alive = await WsClient.connect(srv.url, srv.token("alive"))
        silent = await WsClient.connect(srv.url, srv.token("silent"), autoping=False)
        try:
            (alive_session,) = srv.hub.users["alive"]
            (silent_session,) = srv.hub.users["silent"]
            # aiohttp answers pings inside receive(), so the live client keeps reading.
            reading = asyncio.create_task(alive.expect("never-sent", timeout=60))
            clock.advance(INTERVAL)  # first ping to both
            await wait_until(lambda: alive_session.last_seen >= clock.monotonic())
            reading.cancel()
            assert not silent_session.closed
            clock.advance(INTERVAL)  # second beat: silent has not answered the first ping
            assert silent_session.closed and silent_session.close_code == 4002
            assert not alive_session.closed
            assert await silent.wait_closed() == 4002
            assert (await alive.request("ping"))["type"] == "pong"
        finally:
            await alive.close()
            await silent.close()


async def test_app_level_ping_gets_pong_with_server_time() -> None:
    clock = ManualClock()
    async with running_server(clock=clock) as srv:
        client = await WsClient.connect(srv.url, srv.token("a"))
        try:
            pong = await client.request("ping")
            assert pong["payload"]["serverTime"] == clock.time_ms()
        finally:
            await client.close()
