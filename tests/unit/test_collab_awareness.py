"""Awareness states (apps/collab/awareness.py) with time passed in, as y-protocols does it."""

from __future__ import annotations

from hubbub.apps.collab.awareness import AwarenessTable
from hubbub.apps.collab.protocol import AwarenessEntry as E


def test_a_newer_clock_replaces_a_state_and_an_older_one_is_ignored() -> None:
    table = AwarenessTable()
    assert table.apply([E(1, 2, '{"c":2}')], "conn", 0.0) == [E(1, 2, '{"c":2}')]
    assert table.apply([E(1, 1, '{"c":1}')], "conn", 1.0) == []
    assert table.states() == [E(1, 2, '{"c":2}')]


def test_a_null_state_with_the_same_clock_removes_the_client() -> None:
    table = AwarenessTable()
    table.apply([E(1, 2, "{}")], "conn", 0.0)
    assert table.apply([E(1, 2, "null")], "conn", 1.0) == [E(1, 2, "null")]
    assert table.states() == []
    assert table.apply([E(1, 3, "{}")], "conn", 2.0) == [E(1, 3, "{}")]  # back again


def test_closing_a_connection_removes_only_the_states_it_sent() -> None:
    table = AwarenessTable()
    a, b = object(), object()
    table.apply([E(1, 1, "{}"), E(2, 1, "{}")], a, 0.0)
    table.apply([E(3, 1, "{}")], b, 0.0)
    assert table.remove_owner(a, 1.0) == [E(1, 1, "null"), E(2, 1, "null")]
    assert table.states() == [E(3, 1, "{}")]


def test_a_state_not_renewed_for_thirty_seconds_expires() -> None:
    table = AwarenessTable()
    table.apply([E(1, 1, "{}")], "conn", 0.0)
    table.apply([E(2, 1, "{}")], None, 0.0)  # from another node
    table.apply([E(2, 2, "{}")], None, 20.0)  # renewed
    assert table.expire(29.0) == []
    assert table.expire(30.0) == [E(1, 1, "null")]
    assert table.states() == [E(2, 2, "{}")]
    assert table.expire(50.0) == [E(2, 2, "null")]
    assert len(table) == 0
