"""Redis restarts mid-stream: nothing acknowledged is lost silently, and no node falls over."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import aiohttp

from tests.cluster import API_KEY, cluster, token
from tests.services import private_redis, start_redis
from tests.wsclient import Closed, WsClient, wait_until


class Watcher:
    """Follows `feed` on one node; after a close it reconnects there and resumes with since."""

    def __init__(self, user: str, url: str) -> None:
        self.user, self.url = user, url
        self.events: list[tuple[str, int, Any]] = []  # (epoch, seq, data)
        self.epoch = ""
        self.seq = 0
        self.told_lost = False
        self.client: WsClient | None = None

    async def join(self) -> None:
        async with asyncio.timeout(30):
            while True:
                try:
                    self.client = await WsClient.connect(self.url, token(self.user))
                    since = {"feed": {"seq": self.seq, "epoch": self.epoch}} if self.epoch else None
                    answer = await self.client.subscribe("feed", since=since)
                    if answer["type"] == "subscribed":
                        break
                except (Closed, aiohttp.ClientError, ConnectionError):
                    pass
                if self.client is not None:
                    await self.client.close()
                await asyncio.sleep(0.1)  # the node is waiting for Redis: retry with a pause
        p = answer["payload"]
        if since and not p["recovered"]:
            self.told_lost = True
        if not since or not p["recovered"]:
            self.epoch, self.seq = p["epoch"], p["seq"]

    async def follow(self, final: asyncio.Future[tuple[str, int]]) -> None:
        """Until the watcher stands where the channel ends (the same epoch and seq)."""
        while not (final.done() and final.result() == (self.epoch, self.seq)):
            assert self.client is not None
            try:
                frame = await self.client.next(timeout=30)
            except (Closed, aiohttp.ClientError, ConnectionError):
                await self.client.close()
                await self.join()
                continue
            if frame.get("type") == "message" and frame.get("channel") == "feed":
                assert frame["seq"] == self.seq + 1, (frame, self.seq)
                self.seq = frame["seq"]
                self.events.append((self.epoch, frame["seq"], frame["payload"]["data"]))


async def _publish(http: aiohttp.ClientSession, url: str, n: int) -> tuple[int, dict[str, Any]]:
    async with http.post(url + "/api/publish", json={"channel": "feed", "data": n}) as r:
        return r.status, await r.json()


async def test_redis_restart_loses_nothing_acknowledged_silently_and_refuses_during_outage() -> (
    None
):
    with private_redis() as (url, port):
        async with cluster(f"{url}?node_ttl=1.5", count=2) as nodes:
            watchers = [Watcher(f"w{i}", nodes[i % 2].url) for i in range(4)]
            for w in watchers:
                await w.join()
            final: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
            tasks = [asyncio.create_task(w.follow(final)) for w in watchers]
            acked: list[int] = []
            refused = 0
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                for n in range(1, 101):
                    status, _ = await _publish(http, nodes[n % 2].http_url, n)
                    assert status == 200
                    acked.append(n)
                redis_dir = tempfile.mkdtemp(prefix="hubbub-redis-restart-")
                # Kill Redis: it keeps nothing on disk, so its history and epochs are gone.
                shutdown = await asyncio.create_subprocess_exec(
                    "redis-cli", "-p", str(port), "shutdown", "nosave",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                await shutdown.wait()
                for n in range(101, 111):
                    status, body = await _publish(http, nodes[n % 2].http_url, n)
                    assert status == 503 and body["error"]["code"] == "unavailable", body
                    refused += 1
                proc = start_redis(port, redis_dir)
                try:
                    n = 111
                    async with asyncio.timeout(30):
                        while True:  # nodes reconnect with backoff; publishes resume
                            status, _ = await _publish(http, nodes[n % 2].http_url, n)
                            if status == 200:
                                acked.append(n)
                                break
                            await asyncio.sleep(0.1)
                    for n in range(112, 212):
                        status, _ = await _publish(http, nodes[n % 2].http_url, n)
                        assert status == 200
                        acked.append(n)
                    history = nodes[0].http_url + "/api/channels/feed/history?limit=0"
                    async with http.get(history) as r:
                        end = await r.json()
                    final.set_result((end["epoch"], end["seq"]))
                    goal = final.result()
                    try:
                        await wait_until(
                            lambda: all((w.epoch, w.seq) == goal for w in watchers), 60
                        )
                    except TimeoutError:
                        states = [(w.user, w.epoch, w.seq, w.told_lost) for w in watchers]
                        logs = [n.read_log() for n in nodes]
                        raise AssertionError(
                            f"goal {goal}; watchers {states}; logs {logs}"
                        ) from None
                    for task in tasks:
                        assert not task.done() or task.exception() is None
                        task.cancel()
                finally:
                    for w in watchers:
                        if w.client is not None:
                            await w.client.close()
                    proc.kill()
                    proc.wait()
            assert refused == 10
            for w in watchers:
                got = [d for _, _, d in w.events]
                assert len(got) == len(set(got))  # nothing twice
                missing = [n for n in acked if n not in got]
                # Redis lost the history: whoever missed anything was told so.
                assert not missing or w.told_lost, (w.user, missing[:5])
                assert all(n in got for n in range(1, 101))  # delivered before the outage
