from __future__ import annotations

import asyncio

import msgspec
import pytest

from hubbub.client import ConnectionLost, OfflineQueueFull, RequestError, RequestTimeout
from hubbub.client.offline import OfflineQueue
from hubbub.client.requests import PendingRequests
from hubbub.clock import ManualClock
from hubbub.protocol.codec import Envelope
from hubbub.protocol.codes import ErrorCode


async def test_answer_is_matched_to_its_request_by_re() -> None:
    requests = PendingRequests(ManualClock())
    first, f1 = requests.open("ping")
    second, f2 = requests.open("ping")
    assert requests.answer(Envelope(type="pong", re=second, payload={"n": 2}))
    assert f2.done() and not f1.done()
    assert (await f2)[0].payload == {"n": 2}
    assert second not in requests and first in requests


async def test_error_answer_raises_request_error_with_the_code() -> None:
    requests = PendingRequests(ManualClock())
    request_id, future = requests.open("publish")
    error = {"code": "forbidden", "message": "no", "channel": "user:bob"}
    requests.answer(Envelope(type="error", re=request_id, payload=error))
    with pytest.raises(RequestError) as caught:
        await future
    assert caught.value.code is ErrorCode.FORBIDDEN
    assert caught.value.channel == "user:bob" and caught.value.message == "no"


async def test_unknown_error_codes_are_kept_raw() -> None:
    requests = PendingRequests(ManualClock())
    request_id, future = requests.open("x")
    requests.answer(Envelope(type="error", re=request_id, payload={"code": "teapot"}))
    with pytest.raises(RequestError) as caught:
        await future
    assert caught.value.raw_code == "teapot" and caught.value.code is ErrorCode.INTERNAL


async def test_request_without_answer_times_out_when_the_clock_passes_the_timeout() -> None:
    clock = ManualClock()
    requests = PendingRequests(clock)
    _, future = requests.open("history", timeout=5.0)
    clock.advance(4.9)
    assert not future.done()
    clock.advance(0.2)
    with pytest.raises(RequestTimeout):
        await future
    with pytest.raises(asyncio.TimeoutError):
        raise RequestTimeout("also an asyncio timeout")
    assert len(requests) == 0


async def test_subscribe_collects_one_answer_per_channel_errors_included() -> None:
    requests = PendingRequests(ManualClock())
    request_id, future = requests.open("subscribe", expected=2)
    requests.answer(Envelope(type="subscribed", re=request_id, payload={"channel": "a"}))
    assert not future.done()
    error = {"code": "forbidden", "message": "no", "channel": "b"}
    requests.answer(Envelope(type="error", re=request_id, payload=error))
    answers = await future
    assert [a.type for a in answers] == ["subscribed", "error"]


async def test_an_error_without_channel_fails_a_multi_answer_request() -> None:
    requests = PendingRequests(ManualClock())
    request_id, future = requests.open("subscribe", expected=3)
    requests.answer(Envelope(type="error", re=request_id, payload={"code": "bad_request"}))
    with pytest.raises(RequestError):
        await future


async def test_late_answers_are_not_claimed() -> None:
    requests = PendingRequests(ManualClock())
    assert not requests.answer(Envelope(type="pong", re="99"))
    assert not requests.answer(Envelope(type="message", payload={}))


async def test_fail_all_fails_every_waiting_request() -> None:
    requests = PendingRequests(ManualClock())
    futures = [requests.open("ping")[1] for _ in range(3)]
    requests.fail_all(lambda: ConnectionLost("gone"))
    for future in futures:
        with pytest.raises(ConnectionLost):
            await future
    assert len(requests) == 0


async def test_offline_queue_is_bounded_and_first_in_first_out() -> None:
    queue = OfflineQueue(limit=2)
    a = queue.put("c", msgspec.Raw(b"1"))
    queue.put("c", msgspec.Raw(b"2"))
    with pytest.raises(OfflineQueueFull):
        queue.put("c", msgspec.Raw(b"3"))
    item = queue.pop()
    assert item is a
    queue.push_back(a)
    assert queue.pop() is a


async def test_offline_queue_skips_publishes_whose_caller_gave_up() -> None:
    queue = OfflineQueue(limit=2)
    a = queue.put("c", msgspec.Raw(b"1"))
    b = queue.put("c", msgspec.Raw(b"2"))
    a.future.cancel()
    queue.put("c", msgspec.Raw(b"3"))
    assert queue.pop() is b


async def test_offline_queue_fail_all_tells_every_caller() -> None:
    queue = OfflineQueue(limit=5)
    item = queue.put("c", msgspec.Raw(b"1"))
    queue.fail_all(lambda: ConnectionLost("closed"))
    with pytest.raises(ConnectionLost):
        await item.future
    assert len(queue) == 0
