"""A subscriber that stops reading never holds up the others and cannot grow memory."""

from __future__ import annotations

import asyncio

from hubbub import NamespaceOptions, Settings
from hubbub.core.hub import Hub
from hubbub.core.session import Session
from hubbub.testing import RunningServer, running_server
from tests.rawws import RawWs
from tests.wsclient import WsClient

QUEUE_LIMIT = 256 * 1024
HIGH_WATER = 32 * 1024
PAYLOAD = "x" * 4000


def _session_of(hub: Hub, user: str) -> Session:
    (session,) = hub.users[user]
    return session


async def _stuck_subscriber(srv: RunningServer, user: str, channel: str) -> tuple[RawWs, Session]:
    raw = await RawWs.connect(srv.port, srv.token(user))
    assert (await raw.read_json())["type"] == "welcome"
    raw.send_json({"type": "subscribe", "id": "s", "payload": {"channels": [channel]}})
    while (await raw.read_json()).get("re") != "s":
        pass
    return raw, _session_of(srv.hub, user)


async def test_stuck_subscriber_is_closed_with_4008_while_others_get_everything() -> None:
    settings = Settings(send_queue_bytes=QUEUE_LIMIT, send_high_water=HIGH_WATER)
    async with running_server(settings) as srv:
        fast = await WsClient.connect(srv.url, srv.token("fast"))
        await fast.subscribe("wire")
        raw, slow = await _stuck_subscriber(srv, "slow", "wire")
        received = 0
        n = 0
        try:
            # The stuck client reads nothing from here on. Keep publishing until it is cut off;
            # the fast one must have everything published so far each time we look.
            while not slow.closed:
                n += 1
                assert n < 5000, "the stuck subscriber was never closed"
                await srv.hub.publish("wire", {"n": n, "pad": PAYLOAD})
                assert slow.queue.pending_bytes <= QUEUE_LIMIT
                assert slow.conn.buffered() <= HIGH_WATER + len(PAYLOAD) + 200
                while received < n:
                    frame = await fast.next()
                    if frame.get("type") == "message":
                        received += 1
                        assert frame["seq"] == received
            assert slow.close_code == 4008
            assert srv.hub.metrics.queue_overflows._value.get() == 1
            # The fast subscriber carries on after the cut.
            pub = await srv.hub.publish("wire", {"n": n + 1})
            frame = await fast.expect("message", seq=pub.seq)
            assert frame["payload"]["data"] == {"n": n + 1}
        finally:
            raw.close()
            await fast.close()


async def test_conflated_channel_keeps_a_stuck_dashboard_open_and_sends_it_the_newest() -> None:
    settings = Settings(
        send_queue_bytes=QUEUE_LIMIT,
        send_high_water=HIGH_WATER,
        namespaces={"dash": NamespaceOptions(conflation=True, presence=False)},
    )
    async with running_server(settings) as srv:
        raw, viewer = await _stuck_subscriber(srv, "viewer", "dash:cpu")
        try:
            total = 3000  # ~12 MB: far past the queue bound unless conflated
            for n in range(1, total + 1):
                await srv.hub.publish("dash:cpu", {"n": n, "pad": PAYLOAD})
                if n % 100 == 0:
                    await asyncio.sleep(0)  # let the socket drain what it can
                assert viewer.queue.pending_bytes <= QUEUE_LIMIT
            assert not viewer.closed
            seqs: list[int] = []
            conflated_seen = False
            while not seqs or seqs[-1] != total:
                frame = await asyncio.wait_for(raw.read_json(), 10)
                if frame.get("type") == "message":
                    seqs.append(frame["seq"])
                    conflated_seen |= frame.get("conflated") is True
            assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
            assert len(seqs) < total and conflated_seen
        finally:
            raw.close()
