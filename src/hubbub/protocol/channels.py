"""Channel names (PROTOCOL.md section 4): validation and namespaces."""

from __future__ import annotations

import fnmatch
import re

CHANNEL_RE = re.compile(r"^[A-Za-z0-9_.@-]+(:[A-Za-z0-9_.@-]+)*$")
MAX_CHANNEL_LENGTH = 255
DEFAULT_NAMESPACE = ""


def is_valid_channel(name: object) -> bool:
    """True when `name` is a string that PROTOCOL.md allows as a channel name."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_CHANNEL_LENGTH
        and CHANNEL_RE.fullmatch(name) is not None
    )


def namespace_of(channel: str) -> str:
    """The part before the first `:`; the default namespace ("") when there is none."""
    head, sep, _ = channel.partition(":")
    return head if sep else DEFAULT_NAMESPACE


def user_channel(user_id: str) -> str:
    """The personal channel every connection of `user_id` is subscribed to."""
    return f"user:{user_id}"


def matches_any(channel: str, patterns: list[str] | tuple[str, ...]) -> bool:
    """True when `channel` matches one of the glob patterns (`*`, `?`) of a token claim."""
    return any(fnmatch.fnmatchcase(channel, p) for p in patterns)
