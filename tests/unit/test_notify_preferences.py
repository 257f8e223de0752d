"""Notification preferences: mutes, quiet hours and what critical ignores (pure rules)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.apps.notify.preferences import Preferences, QuietHours, from_stored, merged
from hubbub.errors import BadRequest


def at(hour: int, minute: int = 0, tz: str = "UTC") -> int:
    from zoneinfo import ZoneInfo

    moment = datetime.datetime(2025, 11, 25, hour, minute, tzinfo=ZoneInfo(tz))
    return int(moment.timestamp() * 1000)


def test_a_muted_type_matches_exactly_or_by_prefix() -> None:
    prefs = Preferences(muted_types=["chat.message", "billing.*"])
    assert prefs.mutes("chat.message") and prefs.mutes("billing.paid")
    assert not prefs.mutes("chat.mention") and not prefs.mutes("billingx")


def test_critical_is_never_held_back_other_priorities_are_when_muted_or_quiet() -> None:
    prefs = Preferences(
        muted_types=["ops.alert"], quiet_hours=QuietHours(start="22:00", end="07:00")
    )
    night, day = at(23), at(12)
    assert prefs.holds_back("ops.alert", "high", day)
    assert prefs.holds_back("news", "normal", night)
    assert not prefs.holds_back("news", "normal", day)
    assert not prefs.holds_back("ops.alert", "critical", night)


def test_quiet_hours_cross_midnight_in_the_users_own_time_zone() -> None:
    quiet = QuietHours(start="22:00", end="07:00", timezone="America/New_York")
    assert quiet.contains(at(23, 30, "America/New_York"))
    assert quiet.contains(at(6, 59, "America/New_York"))
    assert not quiet.contains(at(7, 0, "America/New_York"))
    assert not quiet.contains(at(23, 30, "UTC"))  # 18:30 in New York
    assert not QuietHours(start="09:00", end="09:00").contains(at(9))  # an empty span


@given(st.integers(0, 23), st.integers(0, 23), st.integers(0, 1439))
def test_a_span_and_its_complement_cover_every_minute_once(start: int, end: int, m: int) -> None:
    if start == end:
        return
    span = QuietHours(start=f"{start:02}:00", end=f"{end:02}:00")
    rest = QuietHours(start=f"{end:02}:00", end=f"{start:02}:00")
    moment = at(0) + m * 60_000
    assert span.contains(moment) != rest.contains(moment)


def test_changes_keep_the_fields_they_do_not_name_and_are_checked() -> None:
    prefs = merged(Preferences(), {"push": False})
    prefs = merged(prefs, {"emailAddress": "a@example.com"})
    assert (prefs.push, prefs.email, prefs.email_address) == (False, True, "a@example.com")
    for bad in (
        {"quietHours": {"start": "7:00", "end": "08:00"}},
        {"quietHours": {"start": "22:00", "end": "07:00", "timezone": "Nowhere/Land"}},
        {"emailAddress": "two@@at.example"},
        {"mutedTypes": [""]},
        {"unknown": 1},
        [],
    ):
        with pytest.raises(BadRequest):
            merged(prefs, bad)


def test_stored_preferences_round_trip_and_default_when_missing() -> None:
    import msgspec

    prefs = Preferences(muted_types=["a"], quiet_hours=QuietHours(start="01:00", end="02:00"))
    assert from_stored(msgspec.to_builtins(prefs)) == prefs
    assert from_stored(None) == Preferences()
