"""Fan-out encodes a publication once: every subscriber gets the very same bytes."""

from __future__ import annotations

from hubbub import Hub, Settings, TokenVerifier
from hubbub.protocol.codec import JSON, MSGPACK, Codec


class Recorder:
    """A `Connection` that keeps what the hub writes (the core's own interface)."""

    can_ping = True

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)

    def buffered(self) -> int:
        return 0

    async def wait_writable(self, low_water: int) -> None:
        return None

    def ping(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        return None


def _hub() -> Hub:
    return Hub(Settings(), verifier=TokenVerifier(secret="x" * 32))


async def _subscriber(hub: Hub, user: str, codec: Codec = JSON) -> Recorder:
    conn = Recorder()
    session = await hub.open(conn, codec, hub.verifier.issue(user))
    rid = "s"
    await hub.receive(
        session,
        ('{"type":"subscribe","id":"s","payload":{"channels":["news"]}}' if codec is JSON
         else MSGPACK.encode_any({"type": "subscribe", "id": rid,
                                  "payload": {"channels": ["news"]}})),
    )  # fmt: skip
    conn.frames.clear()
    return conn


async def test_one_publication_is_the_same_bytes_object_for_every_subscriber() -> None:
    hub = _hub()
    conns = [await _subscriber(hub, f"u{i}") for i in range(20)]
    await hub.publish("news", {"headline": "once"})
    frames = [c.frames[-1] for c in conns]
    assert all(f is frames[0] for f in frames)  # identity: encoded once, not per recipient
    assert b'"seq":1' in frames[0]


async def test_each_codec_is_encoded_once_however_many_use_it() -> None:
    hub = _hub()
    json_conns = [await _subscriber(hub, f"j{i}") for i in range(3)]
    pack_conns = [await _subscriber(hub, f"m{i}", MSGPACK) for i in range(3)]
    await hub.publish("news", 1)
    assert len({id(c.frames[-1]) for c in json_conns}) == 1
    assert len({id(c.frames[-1]) for c in pack_conns}) == 1
    assert json_conns[0].frames[-1][0] == 0x81 and pack_conns[0].frames[-1][0] == 0x82
