"""The client's book of channels: which it wants, which the server put it in, where
each stands, and how to resume them after a reconnect. Pure, like `tracker.py`."""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.client.events import Message, message_from_dict, message_from_envelope
from hubbub.client.tracker import ChannelTracker, Step
from hubbub.protocol.codec import Envelope


class SubscribedPayload(msgspec.Struct, frozen=True, rename="camel"):
    """The payload of `subscribed` (PROTOCOL.md section 4)."""

    channel: str
    seq: int
    epoch: str = ""
    recovered: bool = False
    last_value: Any = None


class ReplayCompletePayload(msgspec.Struct, frozen=True, rename="camel"):
    """The payload of `replay_complete`."""

    channel: str
    from_sequence: int
    to_sequence: int
    complete: bool = False


def parse_subscribed(payload: Any) -> SubscribedPayload | None:
    """The payload of a `subscribed` frame, or None when it is malformed."""
    try:
        return msgspec.convert(payload, SubscribedPayload)
    except msgspec.ValidationError:
        return None


def parse_replay_complete(payload: Any) -> ReplayCompletePayload | None:
    """The payload of a `replay_complete` frame, or None when it is malformed."""
    try:
        return msgspec.convert(payload, ReplayCompletePayload)
    except msgspec.ValidationError:
        return None


class ChannelBook:
    """Every channel the client hears from, and the intent behind it.

    - `wanted`: channels the application subscribed; resubscribed on reconnect.
    - `assigned`: channels the server subscribed the connection to by itself
      (the user's own `user:` channel); resumed on reconnect as well.
    - `leaving`: channels being unsubscribed; their late events are dropped.
    - one `ChannelTracker` per channel with sequenced events.
    """

    def __init__(self, *, max_held: int = 10_000) -> None:
        self.wanted: dict[str, None] = {}
        self.assigned: dict[str, None] = {}
        self.leaving: set[str] = set()
        self.trackers: dict[str, ChannelTracker] = {}
        self._resuming: dict[str, str] = {}
        self._max_held = max_held

    def tracker(self, channel: str) -> ChannelTracker:
        """The tracker of `channel`, made on first use."""
        found = self.trackers.get(channel)
        if found is None:
            found = self.trackers[channel] = ChannelTracker(channel, max_held=self._max_held)
        return found

    def want(self, channels: list[str]) -> None:
        """The application subscribes `channels`."""
        for channel in channels:
            self.wanted[channel] = None
            self.leaving.discard(channel)
            self.tracker(channel)

    def leave(self, channels: list[str]) -> None:
        """The application unsubscribes `channels`: forget them and drop their late events."""
        for channel in channels:
            self.wanted.pop(channel, None)
            self.assigned.pop(channel, None)
            self.trackers.pop(channel, None)
            self.leaving.add(channel)

    def left(self, channels: list[str]) -> None:
        """The server confirmed the unsubscribe; nothing more will come."""
        for channel in channels:
            self.leaving.discard(channel)

    def refused(self, channel: str) -> None:
        """The server refused `channel`: stop asking for it."""
        self.wanted.pop(channel, None)
        self.assigned.pop(channel, None)
        self.trackers.pop(channel, None)

    def to_resume(self) -> list[str]:
        """The channels to subscribe again after a reconnect."""
        return list(dict.fromkeys([*self.wanted, *self.assigned]))

    def since(self, channels: list[str], request_id: str) -> dict[str, dict[str, Any]]:
        """The `since` of a subscribe of `channels` sent with id `request_id`.

        Remembers which channels that request resumes, so that its answers are
        told apart from a `subscribed` that resumes nothing.
        """
        since: dict[str, dict[str, Any]] = {}
        for channel in channels:
            tracker = self.trackers.get(channel)
            position = tracker.position() if tracker is not None else None
            if position is not None:
                since[channel] = {"seq": position[0], "epoch": position[1]}
                self._resuming[channel] = request_id
        return since

    def forget_request(self, request_id: str) -> None:
        """A subscribe request ended without (all of) its answers."""
        for channel in [c for c, rid in self._resuming.items() if rid == request_id]:
            del self._resuming[channel]

    def on_subscribed(self, env: Envelope) -> Step:
        """A `subscribed` frame: update the channel's position."""
        body = parse_subscribed(env.payload)
        if body is None:
            return Step()
        channel = body.channel
        answers_since = env.re is not None and self._resuming.get(channel) == env.re
        if answers_since:
            del self._resuming[channel]
        if env.re is None:
            if channel in self.leaving:
                return Step()
            self.assigned[channel] = None
        elif channel not in self.wanted and channel not in self.assigned:
            return Step()
        last_value = message_from_dict(body.last_value)
        return self.tracker(channel).subscribed(
            body.seq, body.epoch, body.recovered, answers_since=answers_since, last_value=last_value
        )

    def on_event(self, env: Envelope) -> Step:
        """A frame of a channel (`env.channel` set): what to deliver of it."""
        channel = env.channel
        if channel is None or channel in self.leaving:
            return Step()
        message: Message = message_from_envelope(env)
        if env.seq is None:
            return Step([message])
        if channel in self._resuming and not env.replay:
            # The answer to the resume in flight replays this event again, in order
            # (docs/protocol.md 16.3); taking it now would only open a false gap.
            return Step()
        return self.tracker(channel).receive(message, replay=env.replay, conflated=env.conflated)

    def on_replay_complete(self, channel: str, from_seq: int, to_seq: int, complete: bool) -> Step:
        """A replay ended (or was refused, `complete=False`)."""
        tracker = self.trackers.get(channel)
        if tracker is None:
            return Step()
        return tracker.replay_complete(from_seq, to_seq, complete)

    def connection_lost(self) -> None:
        """Forget what depended on the connection; positions stay for the resume."""
        self._resuming.clear()
        self.leaving.clear()
        for tracker in self.trackers.values():
            tracker.connection_lost()
