"""Raw socket endpoints (core/sockets.py): routing by path, bounded sends, close on stop."""

from __future__ import annotations

import pytest

from hubbub import Hub, Settings, TokenVerifier
from hubbub.core.sockets import RawSocket, SocketRequest, binary_frame
from hubbub.protocol.codes import CloseCode


class SlowConnection:
    """A `Connection` whose client reads nothing: everything stays buffered."""

    can_ping = True

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed_with: tuple[int, str] | None = None

    def write(self, frame: bytes) -> None:
        self.written.append(frame)

    def buffered(self) -> int:
        return sum(map(len, self.written))

    async def wait_writable(self, low_water: int) -> None:
        raise ConnectionError("never drains")

    def ping(self) -> None:
        return None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


class Echo:
    def __init__(self, socket: RawSocket) -> None:
        self.socket = socket
        self.ended = False

    async def receive(self, data: bytes | str) -> None:
        self.socket.send(data if isinstance(data, bytes) else data.encode())

    async def closed(self) -> None:
        self.ended = True


def _hub(**settings: int) -> tuple[Hub, list[Echo]]:
    hub = Hub(Settings(**settings), verifier=TokenVerifier(secret="x" * 32))
    peers: list[Echo] = []

    async def handler(socket: RawSocket, request: SocketRequest) -> Echo:
        peers.append(Echo(socket))
        return peers[-1]

    hub.socket_endpoint("/echo/{name}", handler)
    return hub, peers


def test_an_endpoint_matches_one_path_segment_per_parameter() -> None:
    hub, _ = _hub()
    found = hub.sockets.match("/echo/doc-1.txt")
    assert found is not None and found[1] == {"name": "doc-1.txt"}
    assert hub.sockets.match("/echo/a/b") is None
    assert hub.sockets.match("/echo/") is None
    with pytest.raises(ValueError):
        hub.socket_endpoint("/ws", lambda s, r: None)  # type: ignore[arg-type,return-value]


async def test_sends_are_framed_and_a_client_that_reads_nothing_is_closed_with_4008() -> None:
    hub, peers = _hub(send_high_water=100, send_queue_bytes=1000)
    found = hub.sockets.match("/echo/x")
    assert found is not None
    conn = SlowConnection()
    link = await hub.sockets.accept(
        found[0], conn, SocketRequest("/echo/x", found[1]), hub.settings
    )
    await link.receive(b"hello")
    assert conn.written == [binary_frame(b"hello")]
    for _ in range(20):
        await link.receive(b"x" * 100)
    assert conn.closed_with == (CloseCode.TOO_SLOW, "send queue full")
    assert link.socket.closed
    await link.ended()
    assert peers[0].ended


async def test_stopping_the_hub_closes_every_raw_socket() -> None:
    hub, _ = _hub()
    found = hub.sockets.match("/echo/x")
    assert found is not None
    conn = SlowConnection()
    await hub.sockets.accept(found[0], conn, SocketRequest("/echo/x", found[1]), hub.settings)
    await hub.stop(CloseCode.RESTARTING, "restarting")
    assert conn.closed_with == (CloseCode.RESTARTING, "restarting")


def test_a_token_comes_from_the_authorization_header_before_the_query() -> None:
    both = SocketRequest("/", {}, {"token": "q"}, {"authorization": "Bearer h"})
    assert both.token() == "h"
    assert SocketRequest("/", {}, {"token": "q"}).token() == "q"
    assert SocketRequest("/", {}).token() is None
