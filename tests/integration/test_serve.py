"""`hubbub serve` as a user runs it: embedded defaults, dev tokens, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from hubbub import Settings
from hubbub.testing import running_server
from tests.cluster import Node
from tests.services import free_port
from tests.wsclient import WsClient


async def test_serve_with_defaults_gives_dev_tokens_and_closes_clients_with_1001_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    env = {**os.environ, "HUBBUB_PORT": str(port), "HUBBUB_DATA_DIR": str(tmp_path / "data")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "serve", stdout=log, stderr=log, env=env
    )
    node = Node("serve", port, "memory://", str(tmp_path))
    try:
        await node.wait_ready(proc)
        async with aiohttp.ClientSession() as http:
            async with http.post(node.http_url + "/api/dev/token", json={"user": "dev"}) as r:
                assert r.status == 200
                token = (await r.json())["token"]
        client = await WsClient.connect(node.url, token)
        try:
            assert client.welcome is not None
            assert (tmp_path / "data" / "jwt-secret").exists()
            assert (tmp_path / "data" / "hubbub.db").exists()
            proc.send_signal(signal.SIGTERM)
            assert await client.wait_closed() == 1001
            assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            await client.close()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def test_production_mode_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "serve", "--host", "0.0.0.0", "--port", "0",
        "--data-dir", str(tmp_path), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"HUBBUB_JWT_SECRET" in err


async def test_origin_outside_the_allow_list_is_refused_before_the_upgrade() -> None:
    settings = Settings(allowed_origins=["https://app.example"])
    async with running_server(settings) as srv:
        ok = await WsClient.connect(
            srv.url, srv.token("a"), headers={"Origin": "https://app.example"}
        )
        await ok.close()
        try:
            bad = await WsClient.connect(
                srv.url, srv.token("a"), headers={"Origin": "https://evil.example"}
            )
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 403
        else:
            await bad.close()
            raise AssertionError("a foreign origin was let in")


async def test_metrics_count_connections_frames_and_recoveries() -> None:
    async with running_server() as srv:
        client = await WsClient.connect(srv.url, srv.token("m"))
        try:
            first = await client.subscribe("news")
            await srv.hub.publish("news", 1)
            since = {"news": {"seq": 0, "epoch": first["payload"]["epoch"]}}
            again = await client.subscribe("news", since=since)
            assert again["payload"]["recovered"] is True
            async with aiohttp.ClientSession() as http:
                async with http.get(srv.http_url + "/metrics") as r:
                    text = await r.text()
            lines = dict(
                line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#")
            )
            assert float(lines["hubbub_connections"]) == 1
            assert float(lines["hubbub_frames_in_total"]) >= 2
            assert float(lines['hubbub_recoveries_total{result="ok"}']) == 1
            assert float(lines["hubbub_publish_to_send_seconds_count"]) >= 1
        finally:
            await client.close()


async def test_db_upgrade_migrates_a_fresh_database_then_reports_it_up_to_date(
    tmp_path: Path,
) -> None:
    async def upgrade() -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub", "db", "upgrade", "--data-dir", str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
        return out.decode()

    assert "applied: 0001_core_tables" in await upgrade()
    assert (tmp_path / "hubbub.db").exists()
    assert "up to date" in await upgrade()
