"""`Hub.listen`: an app hears a channel's publications from every node, and the broker
stays subscribed exactly while someone listens or a client is subscribed."""

from __future__ import annotations

from hubbub import Hub, Settings, TokenVerifier
from hubbub.engines.broker import Publication
from hubbub.engines.memory import MemoryBroker
from hubbub.protocol.codec import JSON
from tests.unit.test_hub_fanout import Recorder


class CountingBroker(MemoryBroker):
    """A memory broker that remembers which channels this node asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.subscribed: set[str] = set()

    async def subscribe(self, channel: str) -> None:
        self.subscribed.add(channel)
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)
        await super().unsubscribe(channel)


def _hub() -> tuple[Hub, CountingBroker]:
    broker = CountingBroker()
    return Hub(Settings(), verifier=TokenVerifier(secret="x" * 32), broker=broker), broker


async def test_a_listener_hears_every_publication_of_its_channel_and_no_other() -> None:
    hub, _ = _hub()
    heard: list[Publication] = []
    await hub.listen("collab:a", heard.append)
    await hub.emit("collab:a", "collab.update", {"n": 1})
    await hub.publish_event("collab:a", "collab.update", {"n": 2})
    await hub.emit("collab:b", "collab.update", {"n": 3})
    assert [p.payload["n"] for p in heard] == [1, 2]


async def test_the_broker_is_subscribed_while_anyone_listens_or_a_client_is_subscribed() -> None:
    hub, broker = _hub()
    heard: list[Publication] = []
    await hub.listen("room", heard.append)
    assert "room" in broker.subscribed
    conn = Recorder()
    session = await hub.open(conn, JSON, hub.verifier.issue("ann"))
    await hub.receive(session, '{"type":"subscribe","payload":{"channels":["room"]}}')
    await hub.unlisten("room", heard.append)
    assert "room" in broker.subscribed  # the client still needs it
    await hub.publish("room", {"still": "delivered"})
    assert any(b'"still"' in f for f in conn.frames)
    await hub.listen("room", heard.append)
    await hub.disconnect(session)
    assert "room" in broker.subscribed  # the listener still needs it
    await hub.unlisten("room", heard.append)
    assert "room" not in broker.subscribed


async def test_a_failing_listener_does_not_stop_delivery_to_clients_or_other_listeners() -> None:
    hub, _ = _hub()
    heard: list[Publication] = []

    def broken(pub: Publication) -> None:
        raise RuntimeError("bug in an app")

    await hub.listen("room", broken)
    await hub.listen("room", heard.append)
    await hub.emit("room", "x", {})
    assert len(heard) == 1
