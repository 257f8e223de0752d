from __future__ import annotations

from hubbub.testing import RunningServer
from tests.wsclient import WsClient


async def test_publish_reaches_a_subscriber_with_seq_and_publisher(server: RunningServer) -> None:
    alice = await WsClient.connect(server.url, server.token("alice"))
    try:
        sub = await alice.subscribe("news")
        assert sub["payload"]["seq"] == 0 and sub["payload"]["recovered"] is False
        answer = await alice.request("publish", {"channel": "news", "data": {"x": 1}})
        assert answer["type"] == "published" and answer["payload"]["seq"] == 1
        event = await alice.expect("message", channel="news")
        assert event["seq"] == 1 and event["payload"] == {"data": {"x": 1}, "publisher": "alice"}
    finally:
        await alice.close()
