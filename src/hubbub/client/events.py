"""What the client hands the application: events from `Client.events()` and handlers,
and the answers of its convenience requests. All frozen data."""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.protocol.codec import Envelope


class Message(msgspec.Struct, frozen=True):
    """One event from the server: a channel event (`message`, `chat.new_message`,
    `presence.join`, ...) or a frame that belongs to no channel.

    `seq` is set on sequenced channel events; the client delivers those exactly
    once and in `seq` order per channel. Ephemeral events (presence, typing)
    have no `seq`. `ts` is the server time in milliseconds.
    """

    channel: str | None
    seq: int | None
    type: str
    payload: Any
    ts: int | None = None

    @property
    def data(self) -> Any:
        """The `data` of a `publish`ed message (None when the payload has none)."""
        if isinstance(self.payload, dict):
            return self.payload.get("data")
        return None


class Connected(msgspec.Struct, frozen=True):
    """A connection is up (after `welcome`). `reconnect` is False for the first one."""

    user_id: str
    connection_id: str
    reconnect: bool


class Disconnected(msgspec.Struct, frozen=True):
    """The connection ended with WebSocket close `code` (None when the network dropped).

    `reconnecting` says whether the client will try again; when False the
    client is closed for good and `Client.events()` ends after this event.
    """

    code: int | None
    reason: str
    reconnecting: bool


class SubscriptionReset(msgspec.Struct, frozen=True):
    """The server could not replay what this channel missed (`recovered: false`).

    The client now continues from the server's position `seq` in `epoch`;
    events before it that were missed are lost, so reload the state of this
    channel from the HTTP API or the app's snapshot. `last_value` is the
    channel's newest event when its namespace keeps one.
    """

    channel: str
    epoch: str
    seq: int
    last_value: Message | None = None


class RecoveryFailed(msgspec.Struct, frozen=True):
    """Events `from_seq`..`to_seq` of `channel` were missed and are no longer held.

    The client continues with the events after `to_seq`; reload the state of
    this channel if it matters.
    """

    channel: str
    from_seq: int
    to_seq: int


class SubscriptionError(msgspec.Struct, frozen=True):
    """The server refused to (re)subscribe `channel`; the client stops asking for it."""

    channel: str
    code: str
    message: str


class ServerError(msgspec.Struct, frozen=True):
    """An `error` frame that answers no pending request."""

    code: str
    message: str
    channel: str | None = None


Event = (
    Message
    | Connected
    | Disconnected
    | SubscriptionReset
    | RecoveryFailed
    | SubscriptionError
    | ServerError
)


class Subscription(msgspec.Struct, frozen=True):
    """The answer to subscribing one channel: its newest `seq`, its `epoch`, and
    whether missed events are being replayed (`recovered`)."""

    channel: str
    seq: int
    epoch: str
    recovered: bool
    last_value: Message | None = None


class History(msgspec.Struct, frozen=True):
    """A page of a channel's history, oldest first, and the channel's position."""

    channel: str
    epoch: str
    seq: int
    events: list[Message]


class PresenceMember(msgspec.Struct, frozen=True):
    """One user present in a channel, with their status and number of connections."""

    user_id: str
    status: str
    connections: int


def message_from_envelope(env: Envelope) -> Message:
    """The `Message` an envelope from the server stands for."""
    return Message(channel=env.channel, seq=env.seq, type=env.type, payload=env.payload, ts=env.ts)


def message_from_dict(raw: Any) -> Message | None:
    """A `Message` from an envelope embedded in an answer (history events, `lastValue`)."""
    if not isinstance(raw, dict):
        return None
    try:
        env = msgspec.convert(raw, Envelope)
    except msgspec.ValidationError:
        return None
    return message_from_envelope(env)


def event_channel(event: Event) -> str | None:
    """The channel an event belongs to, if any (used to route `Client.on` handlers)."""
    if isinstance(event, Message | SubscriptionReset | RecoveryFailed | SubscriptionError):
        return event.channel
    return None
