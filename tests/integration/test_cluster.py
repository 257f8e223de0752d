"""Three nodes, each its own process, one Redis: one hub."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from tests.cluster import API_KEY, cluster, token
from tests.services import DATABASE_URL, REDIS_URL
from tests.wsclient import Closed, WsClient

PER_PUBLISHER = 200


def _prefixed(url: str) -> str:
    return f"{url}?prefix=t{secrets.token_hex(4)}&node_ttl=1.5"


async def _redis_subscriptions(broker_url: str, channel: str) -> int:
    """How many pub/sub subscriptions Redis holds for `channel` (one per node, not per client)."""
    prefix = broker_url.split("prefix=")[1].split("&")[0]
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        reply = await client.execute_command("PUBSUB", "SHARDNUMSUB", f"{prefix}:{{{channel}}}:s")
    finally:
        await client.aclose()
    return int(reply[1])


async def _collect(client: WsClient, channel: str, count: int) -> list[tuple[int, Any]]:
    got: list[tuple[int, Any]] = []
    while len(got) < count:
        frame = await client.next(timeout=20)
        if frame.get("type") == "message" and frame.get("channel") == channel:
            got.append((frame["seq"], frame["payload"]["data"]))
    return got


async def test_subscribers_on_every_node_get_every_event_once_in_seq_order() -> None:
    # The nodes share PostgreSQL too, as deployed: all three migrate it at once on start.
    broker_url = _prefixed(REDIS_URL)
    async with cluster(broker_url, database_url=DATABASE_URL) as nodes:
        subs = [await WsClient.connect(nodes[i % 3].url, token(f"s{i}")) for i in range(12)]
        pubs = [await WsClient.connect(node.url, token(f"p{j}")) for j, node in enumerate(nodes)]
        try:
            for client in subs:
                assert (await client.subscribe("feed"))["type"] == "subscribed"
            assert await _redis_subscriptions(broker_url, "feed") == len(nodes)
            total = PER_PUBLISHER * len(pubs)
            collectors = [asyncio.create_task(_collect(c, "feed", total)) for c in subs]

            async def publish_all(j: int, pub: WsClient) -> None:
                for n in range(PER_PUBLISHER):
                    frame = {"channel": "feed", "data": [j, n]}
                    await pub.ws.send_str(json.dumps({"type": "publish", "payload": frame}))

            await asyncio.gather(*(publish_all(j, p) for j, p in enumerate(pubs)))
            results = await asyncio.wait_for(asyncio.gather(*collectors), 60)
            first = results[0]
            assert [seq for seq, _ in first] == list(range(1, total + 1))
            assert sorted(data for _, data in first) == sorted(
                [j, n] for j in range(len(pubs)) for n in range(PER_PUBLISHER)
            )
            for got in results[1:]:
                assert got == first  # same events, same seq, same order on every node
        finally:
            await asyncio.gather(*(c.close() for c in subs + pubs))


class Follower:
    """A subscriber that, when its node dies, reconnects to another and resumes with since."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.seen: list[int] = []
        self.epoch = ""
        self.reconnects = 0
        self.client: WsClient | None = None

    async def join(self, url: str) -> None:
        self.client = await WsClient.connect(url, token(self.user))
        since = {"feed": {"seq": self.seen[-1], "epoch": self.epoch}} if self.seen else None
        answer = await self.client.subscribe("feed", since=since)
        assert answer["type"] == "subscribed", answer
        if since:
            assert answer["payload"]["recovered"] is True, answer
        self.epoch = answer["payload"]["epoch"]

    async def follow(self, urls: list[str], until: int) -> None:
        while not self.seen or self.seen[-1] < until:
            assert self.client is not None
            try:
                frame = await self.client.next(timeout=20)
            except (Closed, aiohttp.ClientError, ConnectionError):
                await self.client.close()
                self.reconnects += 1
                await self.join(urls[self.reconnects % len(urls)])
                continue
            if frame.get("type") == "message" and frame.get("channel") == "feed":
                self.seen.append(frame["seq"])


async def test_clients_of_a_killed_node_recover_the_complete_stream_on_another() -> None:
    async with cluster(_prefixed(REDIS_URL)) as nodes:
        victim, survivors = nodes[0], nodes[1:]
        followers = [Follower(f"f{i}") for i in range(6)]
        for i, f in enumerate(followers):
            await f.join((victim if i % 2 == 0 else survivors[0]).url)
        total = 600
        tasks = [
            asyncio.create_task(f.follow([n.url for n in survivors], total)) for f in followers
        ]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            for n in range(1, total + 1):
                target = survivors[n % 2].http_url
                async with http.post(
                    target + "/api/publish", json={"channel": "feed", "data": n}
                ) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["seq"] == n
                if n == total // 3:
                    victim.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        for i, f in enumerate(followers):
            assert f.seen == list(range(1, total + 1)), f"follower {i}"
            assert (f.reconnects >= 1) == (i % 2 == 0)
        for f in followers:
            assert f.client is not None
            await f.client.close()


async def test_presence_spans_nodes_and_a_killed_nodes_users_leave_within_the_ttl() -> None:
    async with cluster(_prefixed(REDIS_URL)) as nodes:
        ann = await WsClient.connect(nodes[0].url, token("ann"))
        bob = await WsClient.connect(nodes[1].url, token("bob"))
        cat = await WsClient.connect(nodes[2].url, token("cat"))
        try:
            await bob.subscribe("room")
            await ann.subscribe("room")
            joined = await bob.expect("presence.join", timeout=10, channel="room")
            while joined["payload"]["userId"] != "ann":
                joined = await bob.expect("presence.join", timeout=10, channel="room")
            members = (await cat.request("presence.get", {"channel": "room"}))["payload"]
            assert sorted(m["userId"] for m in members["members"]) == ["ann", "bob"]
            nodes[0].kill()
            left = await bob.expect("presence.leave", timeout=10, channel="room")
            assert left["payload"] == {"channel": "room", "userId": "ann"}
            members = (await cat.request("presence.get", {"channel": "room"}))["payload"]
            assert [m["userId"] for m in members["members"]] == ["bob"]
        finally:
            await asyncio.gather(ann.close(), bob.close(), cat.close())


async def test_a_node_stopped_with_sigterm_announces_its_users_leaving_to_the_others() -> None:
    async with cluster(_prefixed(REDIS_URL), count=2) as nodes:
        ann = await WsClient.connect(nodes[0].url, token("ann"))
        bob = await WsClient.connect(nodes[1].url, token("bob"))
        try:
            await bob.subscribe("hall")
            await ann.subscribe("hall")
            joined = await bob.expect("presence.join", timeout=10, channel="hall")
            while joined["payload"]["userId"] != "ann":
                joined = await bob.expect("presence.join", timeout=10, channel="hall")
            nodes[0].stop()  # SIGTERM: a clean shutdown, well inside the node TTL
            left = await bob.expect("presence.leave", timeout=5, channel="hall")
            assert left["payload"] == {"channel": "hall", "userId": "ann"}
        finally:
            await asyncio.gather(ann.close(), bob.close())
