"""The hook through which apps hand a user a notice they would otherwise miss.

An app that has something for a user (chat: a message to a member with no live
connection) builds a `Notice` and calls `hub.notify(notice)`. The notifications
app fills the hook by setting `hub.notifier`; it stores the notice, sends it live
where the user's preferences allow, and falls back to push or email. With no
notifier installed, `hub.notify` does nothing. Core never imports an app, and
apps never import each other: this small protocol is all they share.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import msgspec

Priority = Literal["low", "normal", "high", "critical"]
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "critical")


class Notice(msgspec.Struct, frozen=True, kw_only=True):
    """Something for one user (PROTOCOL.md section 11's fields, before it is stored)."""

    user_id: str
    type: str
    title: str
    body: str = ""
    priority: Priority = "normal"
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Notifier(Protocol):
    """What the notifications app provides.

    Contract: `notify` returns once the notice is stored (or deliberately dropped by
    the user's preferences); delivery, live or by fallback, happens after. It may
    raise `HubbubError` subclasses; callers log and go on, a notice is never worth
    failing the action that caused it.
    """

    async def notify(self, notice: Notice) -> None: ...
