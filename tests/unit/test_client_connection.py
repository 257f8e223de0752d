from __future__ import annotations

import pytest

from hubbub.client import AuthenticationFailed, ForbiddenClose
from hubbub.client.connection import AttemptFailed, Tokens, fatal_close, url_with_token
from hubbub.protocol.codes import CloseCode


def test_token_travels_as_query_parameter_and_keeps_the_rest() -> None:
    url = url_with_token("ws://h:1/ws?x=1", "a.b.c")
    assert url.query["token"] == "a.b.c" and url.query["x"] == "1"
    assert str(url_with_token("ws://h:1/ws", None)) == "ws://h:1/ws"


async def test_token_function_is_called_for_every_attempt() -> None:
    issued = iter(["t1", "t2"])
    tokens = Tokens(lambda: next(issued))
    assert await tokens.for_attempt() == "t1"
    assert await tokens.for_attempt() == "t2"


async def test_async_token_function_is_awaited() -> None:
    async def fetch() -> str:
        return "async-token"

    assert await Tokens(fetch).for_attempt() == "async-token"


async def test_after_4001_a_new_token_is_tried() -> None:
    issued = iter(["old", "new"])
    tokens = Tokens(lambda: next(issued))
    await tokens.for_attempt()
    assert fatal_close(CloseCode.UNAUTHORIZED, "token expired", tokens) is None
    assert await tokens.for_attempt() == "new"


async def test_after_4001_the_same_token_again_ends_the_client() -> None:
    tokens = Tokens(lambda: "same")
    await tokens.for_attempt()
    fatal_close(CloseCode.UNAUTHORIZED, "bad", tokens)
    with pytest.raises(AttemptFailed) as caught:
        await tokens.for_attempt()
    assert isinstance(caught.value.fatal, AuthenticationFailed)


async def test_after_4001_a_failing_token_function_ends_the_client() -> None:
    calls = 0

    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise RuntimeError("auth service down")
        return "t1"

    tokens = Tokens(flaky)
    await tokens.for_attempt()
    fatal_close(CloseCode.UNAUTHORIZED, "bad", tokens)
    with pytest.raises(AttemptFailed) as caught:
        await tokens.for_attempt()
    assert isinstance(caught.value.fatal, AuthenticationFailed)


async def test_a_failing_token_function_without_4001_is_retried() -> None:
    def down() -> str:
        raise RuntimeError("auth service down")

    with pytest.raises(AttemptFailed) as caught:
        await Tokens(down).for_attempt()
    assert caught.value.fatal is None


def test_4001_with_a_fixed_token_ends_the_client() -> None:
    assert isinstance(fatal_close(4001, "expired", Tokens("fixed")), AuthenticationFailed)


def test_4003_ends_the_client_and_other_codes_reconnect() -> None:
    tokens = Tokens(lambda: "t")
    assert isinstance(fatal_close(4003, "", tokens), ForbiddenClose)
    for code in (1000, 1001, 1006, 1008, 1011, 1012, 4002, 4008, 4029, None):
        assert fatal_close(code, "", tokens) is None
