"""Fan-out over real sockets: every subscriber gets every event once, in `seq` order."""

from __future__ import annotations

import asyncio
import json

from hubbub.testing import RunningServer
from tests.wsclient import WsClient

SUBSCRIBERS = 50
EVENTS = 1000


async def _collect(client: WsClient, count: int) -> list[tuple[int, int]]:
    got: list[tuple[int, int]] = []
    while len(got) < count:
        frame = await client.next()
        if frame.get("type") == "message" and frame.get("channel") == "feed":
            got.append((frame["seq"], frame["payload"]["data"]["n"]))
    return got


async def test_fifty_subscribers_each_receive_all_thousand_events_once_in_order(
    server: RunningServer,
) -> None:
    subscribers = await asyncio.gather(
        *(WsClient.connect(server.url, server.token(f"sub{i}")) for i in range(SUBSCRIBERS))
    )
    publisher = await WsClient.connect(server.url, server.token("pub"))
    try:
        for client in subscribers:
            answer = await client.subscribe("feed")
            assert answer["type"] == "subscribed"
        collectors = [asyncio.create_task(_collect(c, EVENTS)) for c in subscribers]
        for n in range(EVENTS):
            frame = {
                "type": "publish",
                "id": str(n),
                "payload": {"channel": "feed", "data": {"n": n}},
            }
            await publisher.ws.send_str(json.dumps(frame))
        acks = 0
        while acks < EVENTS:
            frame = await publisher.next()
            assert frame["type"] != "error", frame
            if frame["type"] == "published":
                acks += 1
        results = await asyncio.wait_for(asyncio.gather(*collectors), timeout=60)
        expected = [(n + 1, n) for n in range(EVENTS)]
        for got in results:
            assert got == expected
    finally:
        await asyncio.gather(publisher.close(), *(c.close() for c in subscribers))
