"""The core message types: subscribe with recovery, unsubscribe, publish, history, replay,
presence and the small ones (ping, auth.refresh). PROTOCOL.md sections 3-5."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec

from hubbub.core.session import ChannelSubscription, Session
from hubbub.engines.broker import Publication, StreamPosition
from hubbub.errors import BadRequest, Forbidden, HubbubError
from hubbub.protocol.channels import is_valid_channel
from hubbub.protocol.codec import Envelope

if TYPE_CHECKING:
    from hubbub.core.hub import Hub, Request

MAX_HISTORY_PAGE = 1000


SeqNumber = Annotated[int, msgspec.Meta(ge=0, le=2**53)]


class Since(msgspec.Struct, frozen=True):
    seq: SeqNumber
    epoch: str


class SubscribePayload(msgspec.Struct, frozen=True):
    channels: list[str]
    since: dict[str, Since] = {}


class UnsubscribePayload(msgspec.Struct, frozen=True):
    channels: list[str]


class PublishPayload(msgspec.Struct, frozen=True):
    channel: str
    data: Any


class HistoryPayload(msgspec.Struct, frozen=True, rename="camel"):
    channel: str
    from_sequence: SeqNumber | None = None
    to_sequence: SeqNumber | None = None
    limit: SeqNumber | None = None


class ReplayPayload(msgspec.Struct, frozen=True, rename="camel"):
    channel: str
    from_sequence: SeqNumber
    to_sequence: SeqNumber


class ChannelPayload(msgspec.Struct, frozen=True):
    channel: str


class StatusPayload(msgspec.Struct, frozen=True):
    status: str


class TokenPayload(msgspec.Struct, frozen=True):
    token: str


class Empty(msgspec.Struct, frozen=True):
    pass


def check_channel(name: str) -> None:
    if not is_valid_channel(name):
        raise BadRequest("invalid channel name", channel=name if isinstance(name, str) else None)


async def subscribe_channel(
    hub: Hub, session: Session, channel: str, since: Since | None, re: str | None
) -> None:
    """Subscribe `session` to `channel`, replaying from `since` when the history allows.

    Live events that arrive while the history is read wait in the subscription's
    buffer, so the client gets: `subscribed`, the missed events, then live ones,
    each exactly once and in `seq` order.
    """
    ns = hub.namespace(channel)
    old = session.subscriptions.get(channel)
    sub = ChannelSubscription(conflate=ns.conflation)
    if old is not None:
        old.buffer = sub.buffer
        sub = old
    else:
        await hub.attach(session, channel, sub)
    try:
        position, replay, recovered = await _catch_up(hub, channel, since)
        last = await hub.broker.last_value(channel) if ns.keep_last_value else None
    except BaseException:
        # Whatever went wrong, the subscription must not stay half made (its buffer
        # would grow with every publication and never be sent).
        if old is None:
            await hub.detach(session, channel)
        else:
            _release(session, sub, 0)
        raise
    body: dict[str, Any] = {
        "channel": channel,
        "seq": position.seq,
        "epoch": position.epoch,
        "recovered": recovered,
    }
    if last is not None:
        body["lastValue"] = msgspec.to_builtins(last.envelope())
    if session.closed:
        return
    session.reply("subscribed", body, re)
    for pub in replay:
        session.queue.push(pub.frame(session.codec))
    _release(session, sub, position.seq)
    if ns.presence and old is None:
        await hub.presence.join(channel, session.user_id, session.id, session.status)


def _release(session: Session, sub: ChannelSubscription, after: int) -> None:
    """Send the live events that waited while catching up (those past `after`), go live."""
    waiting = sub.buffer or []
    sub.buffer = None
    sub.floor = after
    for pub in waiting:
        if pub.seq is None:
            session.queue.push(pub.frame(session.codec))
        elif pub.seq > after:
            sub.floor = 0
            session.queue.push(pub.frame(session.codec))


async def _catch_up(
    hub: Hub, channel: str, since: Since | None
) -> tuple[StreamPosition, list[Publication], bool]:
    """The channel's position and, from `since`, every missed event or none at all."""
    if since is None:
        return await hub.broker.position(channel), [], False
    result = await hub.broker.history(channel, after=since.seq)
    position = result.position
    replay = result.publications
    recovered = False
    if position.epoch == since.epoch and since.seq <= position.seq:
        if since.seq == position.seq:
            recovered, replay = True, []
        else:
            recovered = (
                bool(replay) and replay[0].seq == since.seq + 1 and replay[-1].seq == position.seq
            )
    hub.metrics.recoveries.labels("ok" if recovered else "failed").inc()
    return position, replay if recovered else [], recovered


async def on_subscribe(req: Request, p: SubscribePayload) -> None:
    hub, session = req.hub, req.session
    for channel in p.channels:
        try:
            check_channel(channel)
            if not await hub.can_subscribe(req.identity, channel):
                raise Forbidden("not allowed to subscribe", channel=channel)
            limit = hub.settings.max_subscriptions
            if channel not in session.subscriptions and len(session.subscriptions) > limit:
                raise Forbidden(f"more than {limit} subscriptions", channel=channel)
        except HubbubError as exc:
            exc.channel = channel
            session.send_error(exc, req.id)
            continue
        try:
            await subscribe_channel(hub, session, channel, p.since.get(channel), req.id)
        except HubbubError as exc:  # e.g. the broker is unavailable: answer for this channel
            exc.channel = channel
            session.send_error(exc, req.id)


async def on_unsubscribe(req: Request, p: UnsubscribePayload) -> None:
    for channel in p.channels:
        await req.hub.detach(req.session, channel)
    req.reply("unsubscribed", {"channels": p.channels})


async def on_publish(req: Request, p: PublishPayload) -> None:
    check_channel(p.channel)
    if not req.hub.can_publish(req.identity, p.channel):
        raise Forbidden("not allowed to publish", channel=p.channel)
    pub = await req.hub.publish(p.channel, p.data, publisher=req.session.user_id)
    req.reply("published", {"channel": p.channel, "seq": pub.seq})


async def history_body(
    hub: Hub, channel: str, start: int | None, end: int | None, limit: int | None
) -> dict[str, Any]:
    """`{channel, epoch, seq, events}` for the history call of WebSocket and HTTP alike."""
    limit = MAX_HISTORY_PAGE if limit is None else max(0, min(limit, MAX_HISTORY_PAGE))
    after = max(0, (start or 1) - 1)
    result = await hub.broker.history(channel, after=after, until=end, limit=limit)
    return {
        "channel": channel,
        "epoch": result.position.epoch,
        "seq": result.position.seq,
        "events": [msgspec.to_builtins(p.envelope()) for p in result.publications],
    }


async def on_history(req: Request, p: HistoryPayload) -> None:
    check_channel(p.channel)
    if not await req.hub.can_subscribe(req.identity, p.channel):
        raise Forbidden("not allowed to read this channel", channel=p.channel)
    body = await history_body(req.hub, p.channel, p.from_sequence, p.to_sequence, p.limit)
    req.reply("history", body)


async def on_replay(req: Request, p: ReplayPayload) -> None:
    check_channel(p.channel)
    if p.from_sequence < 1 or p.to_sequence < p.from_sequence:
        raise BadRequest("need 1 <= fromSequence <= toSequence", channel=p.channel)
    if p.to_sequence - p.from_sequence >= MAX_HISTORY_PAGE:
        raise BadRequest(f"at most {MAX_HISTORY_PAGE} events per replay", channel=p.channel)
    if not await req.hub.can_subscribe(req.identity, p.channel):
        raise Forbidden("not allowed to read this channel", channel=p.channel)
    result = await req.hub.broker.history(p.channel, after=p.from_sequence - 1, until=p.to_sequence)
    session = req.session
    for pub in result.publications:
        session.queue.push(pub.frame(session.codec, 1))
    complete = len(result.publications) == p.to_sequence - p.from_sequence + 1
    req.reply(
        "replay_complete",
        {
            "channel": p.channel,
            "fromSequence": p.from_sequence,
            "toSequence": p.to_sequence,
            "complete": complete,
        },
    )


async def on_presence_get(req: Request, p: ChannelPayload) -> None:
    check_channel(p.channel)
    if not await req.hub.can_subscribe(req.identity, p.channel):
        raise Forbidden("not allowed to read this channel", channel=p.channel)
    members = await req.hub.presence.members(p.channel)
    req.reply("presence", {"channel": p.channel, "members": members})


async def on_presence_update(req: Request, p: StatusPayload) -> None:
    if not p.status or len(p.status) > 32:
        raise BadRequest("status must be 1 to 32 characters")
    hub, user = req.hub, req.session.user_id
    for session in list(hub.users.get(user, ())):
        session.status = p.status
        for channel in list(session.subscriptions):
            if hub.namespace(channel).presence:
                await hub.presence.update(channel, user, session.id, p.status)
    await hub.announce_status(user, p.status)
    req.reply("presence.updated", {"status": p.status})


async def on_ping(req: Request, p: Empty) -> None:
    req.reply("pong", {"serverTime": req.hub.clock.time_ms()})


async def on_refresh(req: Request, p: TokenPayload) -> None:
    identity = await req.hub.refresh(req.session, p.token)
    req.reply("auth.refreshed", {"exp": identity.exp})


async def on_auth_again(req: Request, p: Empty) -> None:
    raise BadRequest("already authenticated; use auth.refresh")


def register(hub: Hub) -> None:
    """Install the core message types on `hub`."""
    hub.on("subscribe", SubscribePayload)(on_subscribe)
    hub.on("unsubscribe", UnsubscribePayload)(on_unsubscribe)
    hub.on("publish", PublishPayload)(on_publish)
    hub.on("history", HistoryPayload)(on_history)
    hub.on("replay_request", ReplayPayload)(on_replay)
    hub.on("presence.get", ChannelPayload)(on_presence_get)
    hub.on("presence.update", StatusPayload)(on_presence_update)
    hub.on("ping", Empty)(on_ping)
    hub.on("auth.refresh", TokenPayload)(on_refresh)
    hub.on("auth", Empty)(on_auth_again)


__all__ = ["Envelope", "register", "subscribe_channel"]
