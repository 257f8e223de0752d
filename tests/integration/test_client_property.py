"""A property of the whole stack: whatever the drops, the app sees exactly what was published.

Hypothesis picks when the server drops the SDK's connection and how much is published
meanwhile (over a real socket to a real server). After every run the application's
view of the channel equals the published stream, once each and in order, except
where the server told it `recovered: false` because the history no longer held the gap.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub import NamespaceOptions, Settings
from hubbub.client import Backoff, Client, Message, RecoveryFailed, SubscriptionReset
from hubbub.testing import RunningServer, running_server

HISTORY = 20
FAST = Backoff(base=0.005, cap=0.02)
_names = itertools.count()

# Each step: publish n events while connected; drop the connection and publish n events
# at once (more than HISTORY makes the gap unrecoverable); or let the client catch up.
step = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 15)),
    st.tuples(st.just("drop"), st.integers(0, HISTORY + 10)),
    st.tuples(st.just("settle"), st.just(0)),
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def prop_server() -> AsyncIterator[RunningServer]:
    options = NamespaceOptions(history_size=HISTORY, presence=False)
    async with running_server(Settings(namespaces={"prop": options})) as srv:
        yield srv


@pytest.mark.asyncio(loop_scope="module")
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
async def test_app_sees_every_event_once_in_order_or_is_told_it_was_lost(
    prop_server: RunningServer, steps: list[tuple[str, int]]
) -> None:
    srv = prop_server
    channel = f"prop:c{next(_names)}"
    user = f"u{next(_names)}"
    client = Client(srv.url, token=srv.token(user), backoff=FAST)
    stream = client.events()
    seen: list[int] = []
    data_seen: dict[int, object] = {}
    lost_through = 0  # every seq up to here may be missing: the app was told
    published: dict[int, object] = {}
    async with client:
        await client.subscribe(channel)

        async def publish(count: int) -> None:
            for _ in range(count):
                n = len(published)
                pub = await srv.hub.publish(channel, {"n": n})
                assert pub.seq is not None
                published[pub.seq] = {"n": n}

        async def catch_up() -> None:
            nonlocal lost_through
            want = len(published)
            if max(seen[-1:] + [lost_through], default=0) >= want:
                return
            async with asyncio.timeout(10):
                async for event in stream:
                    if isinstance(event, Message) and event.channel == channel:
                        assert event.seq is not None
                        seen.append(event.seq)
                        data_seen[event.seq] = event.data
                    elif isinstance(event, SubscriptionReset) and event.channel == channel:
                        lost_through = max(lost_through, event.seq)
                    elif isinstance(event, RecoveryFailed) and event.channel == channel:
                        lost_through = max(lost_through, event.to_seq)
                    if max(seen[-1:] + [lost_through], default=0) >= want:
                        return

        for kind, n in steps:
            if kind == "publish":
                await publish(n)
            elif kind == "drop":
                for session in list(srv.hub.users.get(user, ())):
                    srv.hub.close_session(session, 1012, "dropped by the test")
                await publish(n)
            else:
                await catch_up()
        await publish(1)  # a last event, so that the end is known
        await catch_up()
        await publish(1)  # and one more, which a live client must see
        await catch_up()

    assert seen == sorted(set(seen)), "events twice or out of order"
    for seq, data in data_seen.items():
        assert published[seq] == data
    missing = [s for s in published if s not in data_seen]
    assert all(s <= lost_through for s in missing), (missing, lost_through)
    assert max(published) in data_seen
