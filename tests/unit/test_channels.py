"""Channel names, namespaces and token patterns (PROTOCOL.md section 4)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.protocol.channels import (
    MAX_CHANNEL_LENGTH,
    is_valid_channel,
    matches_any,
    namespace_of,
    user_channel,
)


@pytest.mark.parametrize(
    "name",
    [
        "news",
        "user:bob",
        "chat:c1",
        "market:BTC-USD",
        "a:b:c",
        "Mixed_Case.with-dots@and_at",
        "0",
        "x" * 255,
    ],
)
def test_names_the_protocol_allows_are_valid(name: str) -> None:
    assert is_valid_channel(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "has space",
        "a::b",
        ":lead",
        "trail:",
        ":",
        "x" * 256,
        "tab\there",
        "ünïcode",
        "slash/name",
        "star*",
        "news\n",
        "\nnews",
        "user:bob\n",
    ],
)
def test_names_the_protocol_forbids_are_invalid(name: str) -> None:
    assert not is_valid_channel(name)


@pytest.mark.parametrize("value", [None, 5, b"news", ["news"]])
def test_a_value_that_is_not_a_string_is_not_a_channel(value: object) -> None:
    assert not is_valid_channel(value)


def test_the_longest_name_is_255_characters() -> None:
    assert MAX_CHANNEL_LENGTH == 255
    assert is_valid_channel("a:" + "b" * 253)
    assert not is_valid_channel("a:" + "b" * 254)


segment = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-",
    min_size=1,
    max_size=10,
)


@given(st.lists(segment, min_size=1, max_size=5))
def test_segments_joined_by_single_colons_are_valid(parts: list[str]) -> None:
    name = ":".join(parts)
    assert is_valid_channel(name) == (len(name) <= 255)


@given(st.text(max_size=40))
def test_any_valid_name_matches_the_protocol_alphabet(name: str) -> None:
    if is_valid_channel(name):
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-:")
        assert set(name) <= allowed
        assert "::" not in name and not name.startswith(":") and not name.endswith(":")


@pytest.mark.parametrize(
    ("channel", "namespace"),
    [
        ("user:bob", "user"),
        ("chat:c1", "chat"),
        ("a:b:c", "a"),
        ("news", ""),
        ("market:BTC-USD", "market"),
    ],
)
def test_the_namespace_is_the_part_before_the_first_colon(channel: str, namespace: str) -> None:
    assert namespace_of(channel) == namespace


def test_a_users_own_channel_is_in_the_user_namespace() -> None:
    assert user_channel("alice") == "user:alice"
    assert namespace_of(user_channel("alice")) == "user"


def test_a_star_pattern_matches_every_channel_of_a_namespace() -> None:
    assert matches_any("chat:c1", ["chat:*"])
    assert matches_any("chat:c1", ("game:*", "chat:*"))
    assert not matches_any("game:r1", ["chat:*"])


def test_a_question_mark_matches_one_character() -> None:
    assert matches_any("room:a1", ["room:a?"])
    assert not matches_any("room:a12", ["room:a?"])


def test_patterns_match_exact_names_and_are_case_sensitive() -> None:
    assert matches_any("news", ["news"])
    assert not matches_any("News", ["news"])
    assert not matches_any("chat:c1", ["Chat:*"])


def test_no_pattern_matches_nothing() -> None:
    assert not matches_any("news", [])
    assert not matches_any("news", ())
