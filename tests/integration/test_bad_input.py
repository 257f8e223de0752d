"""PROTOCOL.md section 2 over a real socket: bad input gets an error or a close, and never
disturbs another connection of the same server."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.clock import ManualClock
from hubbub.config import Settings
from hubbub.testing import RunningServer, running_server
from tests.wsclient import Closed, WsClient

NEWS = "news"
MAX_FRAME = 64 * 1024
_probe_ids = itertools.count(1)


@asynccontextmanager
async def connected(srv: RunningServer, user: str, **claims: Any) -> AsyncIterator[WsClient]:
    client = await WsClient.connect(srv.url, srv.token(user, **claims))
    try:
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def watching(srv: RunningServer) -> AsyncIterator[WsClient]:
    """A bystander subscribed to `news`, connected before the bad input starts."""
    async with connected(srv, "bystander") as client:
        answer = await client.subscribe(NEWS)
        assert answer["type"] == "subscribed"
        yield client


@pytest.fixture
async def bystander(server: RunningServer) -> AsyncIterator[WsClient]:
    async with watching(server) as client:
        yield client


@pytest.fixture
async def alice(server: RunningServer) -> AsyncIterator[WsClient]:
    async with connected(server, "alice") as client:
        yield client


async def assert_still_served(bystander: WsClient) -> None:
    """The bystander publishes to its channel and gets its own event back."""
    note = f"still here {next(_probe_ids)}"
    answer = await bystander.request("publish", {"channel": NEWS, "data": note})
    assert answer["type"] == "published", answer
    event = await bystander.expect("message", channel=NEWS, seq=answer["payload"]["seq"])
    assert event["payload"]["data"] == note


async def assert_open(client: WsClient) -> None:
    """The connection still answers a request."""
    probe = f"probe-{next(_probe_ids)}"
    await client.send("ping", id=probe)
    pong = await client.expect("pong", re=probe)
    assert isinstance(pong["payload"]["serverTime"], int)


async def expect_error(client: WsClient) -> dict[str, Any]:
    return await client.expect("error")


async def next_msgpack(client: WsClient, type: str, **match: Any) -> dict[str, Any]:
    """The next MessagePack frame of `type` (and matching fields), skipping others."""
    while True:
        got: dict[str, Any] = msgspec.msgpack.decode((await client.recv())["_binary"])
        if got.get("type") == type and all(got.get(k) == v for k, v in match.items()):
            return got


async def close_code_after_draining(client: WsClient) -> tuple[list[dict[str, Any]], int | None]:
    """Every frame up to the server's close, and the close code."""
    frames: list[dict[str, Any]] = list(client.backlog)
    client.backlog.clear()
    while True:
        try:
            frames.append(await client.recv())
        except Closed as closed:
            return frames, closed.code


# -- frames that are not envelopes ------------------------------------------------------


async def test_invalid_json_gets_bad_request_and_the_connection_stays_open(
    alice: WsClient, bystander: WsClient
) -> None:
    await alice.send_raw('{"type": "ping", "id": ')
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    assert error["payload"]["message"]
    await assert_open(alice)
    await assert_still_served(bystander)


@pytest.mark.parametrize("frame", ["[1, 2, 3]", "42", '"ping"', "null", "true", "[]"])
async def test_a_json_value_that_is_not_an_object_gets_bad_request(
    alice: WsClient, bystander: WsClient, frame: str
) -> None:
    await alice.send_raw(frame)
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_a_frame_without_type_gets_bad_request(alice: WsClient, bystander: WsClient) -> None:
    await alice.send_raw('{"payload": {"channels": ["news"]}}')
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    assert "type" in error["payload"]["message"]
    await assert_open(alice)
    await assert_still_served(bystander)


@pytest.mark.parametrize(
    "frame",
    [
        {"id": "no-type", "payload": {}},
        {"type": 5, "id": "number-type"},
        {"type": "", "id": "empty-type"},
    ],
)
async def test_an_envelope_with_a_bad_type_answers_with_re_of_its_id(
    alice: WsClient, bystander: WsClient, frame: dict[str, Any]
) -> None:
    # Section 2: every direct answer to a frame with an `id`, error included, carries `re`.
    await alice.send_raw(json.dumps(frame))
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    assert error.get("re") == frame["id"]
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_an_unknown_type_gets_unknown_type_with_re(
    alice: WsClient, bystander: WsClient
) -> None:
    rid = await alice.send("nosuch.thing", {"x": 1})
    error = await expect_error(alice)
    assert error["payload"]["code"] == "unknown_type"
    assert error["re"] == rid
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_unknown_fields_are_ignored(alice: WsClient) -> None:
    await alice.send_raw(json.dumps({"type": "ping", "id": "u1", "future": {"a": 1}}))
    pong = await alice.expect("pong", re="u1")
    assert pong["type"] == "pong"
    answer = await alice.request("publish", {"channel": NEWS, "data": 1, "priority": "high"})
    assert answer["type"] == "published"


@pytest.mark.parametrize(
    ("type", "payload"),
    [
        ("subscribe", {"channels": "x"}),
        ("subscribe", {"channels": [5]}),
        ("subscribe", {}),
        ("publish", {"channel": 5, "data": 1}),
        ("publish", {"data": 1}),
        ("history", {"channel": NEWS, "limit": "ten"}),
        ("unsubscribe", {"channels": None}),
        ("presence.update", {"status": 3}),
        ("ping", [1, 2]),
    ],
)
async def test_a_payload_field_of_the_wrong_type_gets_bad_request_with_re(
    alice: WsClient, bystander: WsClient, type: str, payload: Any
) -> None:
    answer = await alice.request(type, payload)
    assert answer["type"] == "error"
    assert answer["payload"]["code"] == "bad_request"
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_an_id_of_64_characters_is_echoed_in_re(alice: WsClient) -> None:
    rid = "x" * 64
    await alice.send("ping", id=rid)
    assert (await alice.expect("pong"))["re"] == rid


async def test_an_id_longer_than_64_characters_gets_bad_request(
    alice: WsClient, bystander: WsClient
) -> None:
    await alice.send("ping", id="x" * 65)
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    assert "id" in error["payload"]["message"]
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_a_binary_frame_on_a_json_connection_gets_bad_request(
    alice: WsClient, bystander: WsClient
) -> None:
    await alice.send_raw(b'{"type": "ping", "id": "b1"}')
    error = await expect_error(alice)
    assert error["payload"]["code"] == "bad_request"
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_a_text_frame_on_a_msgpack_connection_gets_bad_request(
    server: RunningServer, bystander: WsClient
) -> None:
    client = await WsClient.connect(
        server.url, server.token("packer"), wait_welcome=False, protocols=("hubbub.v1.msgpack",)
    )
    try:
        assert client.ws.protocol == "hubbub.v1.msgpack"
        await next_msgpack(client, "welcome")
        await client.send_raw('{"type": "ping", "id": "t1"}')
        error = await next_msgpack(client, "error")
        assert error["payload"]["code"] == "bad_request"
        await client.send_raw(msgspec.msgpack.encode({"type": "ping", "id": "m1"}))
        assert (await next_msgpack(client, "pong"))["re"] == "m1"
    finally:
        await client.close()
    await assert_still_served(bystander)


# -- size --------------------------------------------------------------------------------


def ping_of_size(size: int, rid: str = "big") -> str:
    frame = json.dumps({"type": "ping", "id": rid, "pad": ""})
    return json.dumps({"type": "ping", "id": rid, "pad": "x" * (size - len(frame))})


async def test_a_frame_over_64_kib_closes_with_1009(alice: WsClient, bystander: WsClient) -> None:
    frame = ping_of_size(MAX_FRAME + 1)
    assert len(frame.encode()) == MAX_FRAME + 1
    await alice.send_raw(frame)
    assert await alice.wait_closed() == 1009
    await assert_still_served(bystander)


async def test_a_frame_of_exactly_64_kib_is_accepted(alice: WsClient) -> None:
    # Section 2: only a frame *larger* than the limit closes the connection.
    frame = ping_of_size(MAX_FRAME, rid="edge")
    assert len(frame.encode()) == MAX_FRAME
    await alice.send_raw(frame)
    assert (await alice.expect("pong"))["re"] == "edge"


async def test_a_frame_just_under_the_limit_is_accepted(alice: WsClient) -> None:
    await alice.send_raw(ping_of_size(MAX_FRAME - 1, rid="under"))
    assert (await alice.expect("pong"))["re"] == "under"


async def test_the_frame_limit_follows_the_settings() -> None:
    async with running_server(Settings(max_frame_bytes=1024)) as srv, watching(srv) as by:
        async with connected(srv, "alice") as alice:
            await alice.send_raw(ping_of_size(1000, rid="fits"))
            assert (await alice.expect("pong"))["re"] == "fits"
            await alice.send_raw(ping_of_size(2000))
            assert await alice.wait_closed() == 1009
        await assert_still_served(by)


# -- channels ------------------------------------------------------------------------------

BAD_NAMES = ["has space", "", "x" * 256, "a::b", ":lead", "trail:", "ünï", "news\n"]


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_subscribing_to_a_bad_channel_name_gets_bad_request_with_the_channel(
    alice: WsClient, bystander: WsClient, name: str
) -> None:
    answer = await alice.subscribe(name)
    assert answer["type"] == "error"
    assert answer["payload"]["code"] == "bad_request"
    assert answer["payload"]["channel"] == name
    await assert_open(alice)
    await assert_still_served(bystander)


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_publishing_to_a_bad_channel_name_gets_bad_request_with_the_channel(
    alice: WsClient, bystander: WsClient, name: str
) -> None:
    answer = await alice.request("publish", {"channel": name, "data": 1})
    assert answer["type"] == "error"
    assert answer["payload"]["code"] == "bad_request"
    assert answer["payload"]["channel"] == name
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_one_bad_name_does_not_spoil_the_other_channels_of_a_subscribe(
    server: RunningServer, alice: WsClient
) -> None:
    rid = await alice.send("subscribe", {"channels": ["good1", "bad name", "good2"]})
    answers = [await alice.expect(t, re=rid) for t in ("subscribed", "error", "subscribed")]
    assert [a["payload"]["channel"] for a in answers] == ["good1", "bad name", "good2"]
    await server.hub.publish("good2", "after")
    assert (await alice.expect("message", channel="good2"))["payload"]["data"] == "after"


async def test_subscribing_to_another_users_channel_is_forbidden(
    server: RunningServer, alice: WsClient, bystander: WsClient
) -> None:
    answer = await alice.subscribe("user:bob")
    assert answer["type"] == "error"
    assert answer["payload"]["code"] == "forbidden"
    assert answer["payload"]["channel"] == "user:bob"
    # Bob's next event does not reach alice: the first event she sees is her own.
    await server.hub.send_to_user("bob", "note", {"secret": True})
    await server.hub.send_to_user("alice", "note", {"secret": False})
    event = await alice.expect("note")
    assert event["channel"] == "user:alice"
    await assert_still_served(bystander)


@pytest.mark.parametrize("channel", ["user:bob", "market:X", "chat:c1", "metrics:cpu"])
async def test_publishing_into_a_server_only_namespace_is_forbidden(
    server: RunningServer, bystander: WsClient, channel: str
) -> None:
    async with connected(server, "alice") as alice, connected(server, "bob") as bob:
        answer = await alice.request("publish", {"channel": channel, "data": "spoof"})
        assert answer["type"] == "error"
        assert answer["payload"]["code"] == "forbidden"
        assert answer["payload"]["channel"] == channel
        assert (await server.hub.broker.position(channel)).seq == 0
        # Nothing reached bob: the first event on his channel is the real one.
        await server.hub.send_to_user("bob", "note", {"real": True})
        event = await bob.expect("note", channel="user:bob")
        assert event["seq"] == 1
    await assert_still_served(bystander)


async def test_subscriptions_past_the_limit_are_forbidden_with_the_channel() -> None:
    async with running_server(Settings(max_subscriptions=3)) as srv, watching(srv) as by:
        async with connected(srv, "alice") as alice:
            for name in ("a", "b", "c"):
                assert (await alice.subscribe(name))["type"] == "subscribed"
            answer = await alice.subscribe("d")
            assert answer["type"] == "error"
            assert answer["payload"]["code"] == "forbidden"
            assert answer["payload"]["channel"] == "d"
            again = await alice.subscribe("a")
            assert again["type"] == "subscribed", "an existing subscription is not a new one"
            await alice.request("unsubscribe", {"channels": ["a"]})
            assert (await alice.subscribe("d"))["type"] == "subscribed"
        await assert_still_served(by)


async def test_a_subscribe_that_asks_for_too_many_gets_the_rest_forbidden() -> None:
    async with running_server(Settings(max_subscriptions=2)) as srv, watching(srv) as by:
        async with connected(srv, "alice") as alice:
            rid = await alice.send("subscribe", {"channels": ["a", "b", "c", "d"]})
            first = [await alice.expect("subscribed", re=rid) for _ in range(2)]
            refused = [await alice.expect("error", re=rid) for _ in range(2)]
            assert [f["payload"]["channel"] for f in first] == ["a", "b"]
            assert [(r["payload"]["code"], r["payload"]["channel"]) for r in refused] == [
                ("forbidden", "c"),
                ("forbidden", "d"),
            ]
        await assert_still_served(by)


# -- repeated bad input and floods ----------------------------------------------------------


async def test_twenty_bad_frames_in_ten_seconds_are_answered_and_tolerated(
    alice: WsClient, bystander: WsClient
) -> None:
    for _ in range(20):
        await alice.send_raw("not json")
    for _ in range(20):
        assert (await expect_error(alice))["payload"]["code"] == "bad_request"
    await assert_open(alice)
    await assert_still_served(bystander)


async def test_more_than_twenty_bad_frames_in_ten_seconds_close_with_1008(
    alice: WsClient, bystander: WsClient
) -> None:
    for n in range(21):
        await alice.send_raw("[]" if n % 2 else "not json")
    frames, code = await close_code_after_draining(alice)
    assert code == 1008
    errors = [f for f in frames if f.get("type") == "error"]
    assert len(errors) == 21
    assert {e["payload"]["code"] for e in errors} == {"bad_request"}
    await assert_still_served(bystander)


async def test_a_flood_past_the_rate_limit_gets_rate_limited_then_closes_with_4029() -> None:
    slow = Settings(rate_per_second=1.0, rate_burst=5, rate_strikes=3)
    async with running_server(slow, clock=ManualClock()) as srv, watching(srv) as by:
        async with connected(srv, "flooder") as flooder:
            for n in range(30):
                await flooder.send("ping", id=f"f{n}")
            frames, code = await close_code_after_draining(flooder)
        assert code == 4029
        pongs = [f for f in frames if f["type"] == "pong"]
        limited = [f for f in frames if f["type"] == "error"]
        assert [p["re"] for p in pongs] == [f"f{n}" for n in range(5)]
        assert len(limited) == 4, "three strikes are tolerated, the fourth closes"
        assert {e["payload"]["code"] for e in limited} == {"rate_limited"}
        await assert_still_served(by)


async def test_a_connection_that_stops_at_the_rate_limit_is_served_again_later() -> None:
    clock = ManualClock()
    slow = Settings(rate_per_second=1.0, rate_burst=3, rate_strikes=5)
    async with running_server(slow, clock=clock) as srv, connected(srv, "alice") as alice:
        for n in range(4):
            await alice.send("ping", id=f"p{n}")
        for n in range(3):
            assert (await alice.expect("pong"))["re"] == f"p{n}"
        error = await expect_error(alice)
        assert error["payload"]["code"] == "rate_limited"
        clock.advance(1.0)
        await alice.send("ping", id="later")
        assert (await alice.expect("pong"))["re"] == "later"


async def test_bad_frames_spread_over_more_than_ten_seconds_do_not_close() -> None:
    clock = ManualClock()
    async with running_server(clock=clock) as srv, connected(srv, "alice") as alice:
        for _ in range(3):
            for _ in range(15):
                await alice.send_raw("not json")
            for _ in range(15):
                assert (await expect_error(alice))["payload"]["code"] == "bad_request"
            clock.advance(10.5)
        await assert_open(alice)


# -- random input (hypothesis) ----------------------------------------------------------------

KNOWN_TYPES = [
    "subscribe",
    "unsubscribe",
    "publish",
    "history",
    "replay_request",
    "presence.get",
    "presence.update",
    "ping",
    "auth",
    "auth.refresh",
]


def envelopes_of(ints: st.SearchStrategy[int]) -> tuple[st.SearchStrategy[Any], ...]:
    """Random JSON-like values and envelope-shaped objects built from them, with `ints`."""
    json_values = st.recursive(
        st.none() | st.booleans() | ints | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
        max_leaves=12,
    )
    channel_like = st.sampled_from([NEWS, "user:fuzzer", "user:bob", "market:X", ""]) | st.text(
        max_size=12
    )
    payloads = st.fixed_dictionaries(
        {},
        optional={
            "channel": channel_like | json_values,
            "channels": st.lists(channel_like, max_size=3) | json_values,
            "data": json_values,
            "since": st.dictionaries(channel_like, json_values, max_size=2),
            "fromSequence": st.integers(-3, 5) | json_values,
            "toSequence": st.integers(-3, 5) | json_values,
            "limit": st.integers(-3, 5) | json_values,
            "status": st.text(max_size=40) | json_values,
            "token": st.text(max_size=20),
        },
    )
    envelopes = st.fixed_dictionaries(
        {"type": st.sampled_from(KNOWN_TYPES) | st.text(max_size=12) | json_values},
        optional={"id": st.text(max_size=70) | json_values, "payload": payloads | json_values},
    )
    return json_values, envelopes


json_values, envelopes = envelopes_of(st.integers())
# MessagePack carries integers of at most 64 bits.
_, msgpack_envelopes = envelopes_of(st.integers(-(2**63), 2**64 - 1))

frames = (
    st.binary(max_size=300)
    | st.text(max_size=300)
    | json_values.map(json.dumps)
    | envelopes.map(json.dumps)
)
FUZZ = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@FUZZ
@given(frame=frames)
async def test_random_frames_never_break_the_server(
    server: RunningServer, bystander: WsClient, frame: str | bytes
) -> None:
    async with connected(server, "fuzzer") as victim:
        await victim.send_raw(frame)
        await assert_open(victim)
    await assert_still_served(bystander)


@FUZZ
@given(frame=st.binary(max_size=300) | msgpack_envelopes.map(msgspec.msgpack.encode))
async def test_random_msgpack_frames_never_break_the_server(
    server: RunningServer, bystander: WsClient, frame: bytes
) -> None:
    victim = await WsClient.connect(
        server.url, server.token("fuzzer"), wait_welcome=False, protocols=("hubbub.v1.msgpack",)
    )
    try:
        await victim.send_raw(frame)
        probe = f"probe-{next(_probe_ids)}"
        await victim.send_raw(msgspec.msgpack.encode({"type": "ping", "id": probe}))
        await next_msgpack(victim, "pong", re=probe)
    finally:
        await victim.close()
    await assert_still_served(bystander)
