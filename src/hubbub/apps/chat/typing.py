"""Who is typing where, with typing that ends by itself when not refreshed.

`chat.typing_start` marks a user typing in a conversation until `chat.typing_stop`
or until `expiry` seconds (5 by default, PROTOCOL.md section 12) pass without another
`typing_start`. Only changes are announced: a refresh while typing sends nothing.
Time comes from the injected clock, so tests advance it instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Callable

from hubbub.clock import Clock, TimerHandle

TYPING_EXPIRY = 5.0

Announce = Callable[[str, str, bool], None]
"""Called with (conversation_id, user_id, is_typing) on every change."""


class TypingTracker:
    """Typing state of (conversation, user) pairs on this node."""

    def __init__(self, clock: Clock, announce: Announce, expiry: float = TYPING_EXPIRY) -> None:
        self._clock = clock
        self._announce = announce
        self._expiry = expiry
        self._timers: dict[tuple[str, str], TimerHandle] = {}

    def is_typing(self, conversation_id: str, user_id: str) -> bool:
        return (conversation_id, user_id) in self._timers

    def start(self, conversation_id: str, user_id: str) -> None:
        """The user typed: announce it unless already known, and (re)arm the expiry."""
        key = (conversation_id, user_id)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = self._clock.call_later(self._expiry, lambda: self._expire(key))
        if old is None:
            self._announce(conversation_id, user_id, True)

    def stop(self, conversation_id: str, user_id: str, *, announce: bool = True) -> bool:
        """The user stopped (sent, cleared the box, left); True if they were typing.

        The change is announced unless `announce` is False (the caller tells it itself).
        """
        old = self._timers.pop((conversation_id, user_id), None)
        if old is None:
            return False
        old.cancel()
        if announce:
            self._announce(conversation_id, user_id, False)
        return True

    def _expire(self, key: tuple[str, str]) -> None:
        if self._timers.pop(key, None) is not None:
            self._announce(key[0], key[1], False)

    def clear(self) -> None:
        """Forget everything without announcing (the node is stopping)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
