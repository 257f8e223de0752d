"""A user's notification preferences, and the pure rules that read them.

Preferences are kept per user in the store's key-value table (namespace
`notify.preferences`). The rules (docs/notifications.md):

- A muted type (`mutedTypes`, exact names or `prefix.*`) and any notification
  arriving in quiet hours is stored and counted as unread, but not sent live
  and never sent by push or email. Critical ignores both.
- Push (normal and above) and email (critical) are each on or off.
"""

from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Annotated, Any

import msgspec

from hubbub.errors import BadRequest

MAX_MUTED = 200
_CLOCK_TIME = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")

TypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
ClockTime = Annotated[str, msgspec.Meta(pattern=_CLOCK_TIME)]


class QuietHours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A daily span, `start` to `end` ("HH:MM", may cross midnight), in `timezone`."""

    start: ClockTime
    end: ClockTime
    timezone: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = "UTC"

    def contains(self, time_ms: int) -> bool:
        """Whether the moment `time_ms` (ms since the epoch) falls inside the span."""
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = datetime.datetime.fromtimestamp(time_ms / 1000, tz=zone)
        now = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        if start == end:
            return False  # an empty span
        if start < end:
            return start <= now < end
        return now >= start or now < end  # it crosses midnight


def _minutes(clock_time: str) -> int:
    hours, minutes = clock_time.split(":")
    return int(hours) * 60 + int(minutes)


class Preferences(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """What a user wants: the wire shape of `GET`/`PUT /api/notifications/preferences`."""

    muted_types: Annotated[list[TypeName], msgspec.Meta(max_length=MAX_MUTED)] = []
    push: bool = True
    email: bool = True
    email_address: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    quiet_hours: QuietHours | None = None

    def mutes(self, type: str) -> bool:
        """Whether notifications of `type` are muted (exactly, or by a `prefix.*` entry)."""
        for muted in self.muted_types:
            if muted == type or (muted.endswith(".*") and type.startswith(muted[:-1])):
                return True
        return False

    def holds_back(self, type: str, priority: str, time_ms: int) -> bool:
        """Whether a notification is kept quiet: stored, not sent live, no push or email."""
        if priority == "critical":
            return False
        if self.mutes(type):
            return True
        return self.quiet_hours is not None and self.quiet_hours.contains(time_ms)


def checked(prefs: Preferences) -> Preferences:
    """`prefs` once its time zone and email address are known to be usable."""
    if prefs.quiet_hours is not None:
        try:
            zoneinfo.ZoneInfo(prefs.quiet_hours.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise BadRequest(f"unknown time zone {prefs.quiet_hours.timezone!r}") from None
    if prefs.email_address is not None and not _EMAIL.match(prefs.email_address):
        raise BadRequest("emailAddress is not an email address")
    return prefs


def merged(current: Preferences, changes: Any) -> Preferences:
    """`current` with the fields present in `changes` (a JSON object) replaced."""
    if not isinstance(changes, dict):
        raise BadRequest("preferences must be a JSON object")
    base = msgspec.to_builtins(current)
    base.update(changes)
    try:
        return checked(msgspec.convert(base, Preferences))
    except msgspec.ValidationError as exc:
        raise BadRequest("preferences: " + str(exc).replace("`$.", "`")) from None


def from_stored(value: Any) -> Preferences:
    """Preferences as kept in the store (defaults when none are)."""
    if value is None:
        return Preferences()
    return msgspec.convert(value, Preferences)
