"""The hub: sessions, message dispatch, publication and fan-out.

Transports hand it connections (`open`), frames (`receive`) and closes
(`disconnect`). Apps register message handlers (`on`), HTTP routes (`router`)
and subscribe rules, and use `publish`, `publish_event`, `send_to_user` and
`presence`. Core never imports an app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from hubbub.clock import Clock, SystemClock
from hubbub.config import DEFAULT_NAMESPACES, NamespaceOptions, Settings
from hubbub.core.auth import Identity, TokenVerifier
from hubbub.core.connection import Connection
from hubbub.core.metrics import HubMetrics
from hubbub.core.notices import Notice, Notifier
from hubbub.core.presence import PresenceTracker
from hubbub.core.routes import Router
from hubbub.core.session import ChannelSubscription, Session
from hubbub.core.sockets import SocketEndpoints, SocketHandler
from hubbub.core.users import UserPresence, Watchers
from hubbub.engines.broker import Broker, HistoryOptions, Publication
from hubbub.engines.memory import MemoryBroker
from hubbub.engines.store import Store
from hubbub.errors import (
    BadRequest,
    Forbidden,
    HubbubError,
    RateLimited,
    Unauthorized,
    UnknownType,
)
from hubbub.protocol.channels import matches_any, namespace_of, user_channel
from hubbub.protocol.codec import JSON, Codec, Envelope
from hubbub.protocol.codes import CloseCode

log = logging.getLogger("hubbub")
P = TypeVar("P")
T = TypeVar("T")

PROTOCOL_VERSION = 1


class Request:
    """One client request being handled: who sent it and how to answer it."""

    __slots__ = ("hub", "session", "id", "type")

    def __init__(self, hub: Hub, session: Session, id: str | None, type: str) -> None:
        self.hub = hub
        self.session = session
        self.id = id
        self.type = type

    @property
    def identity(self) -> Identity:
        assert self.session.identity is not None
        return self.session.identity

    def reply(self, type: str, payload: Any, **fields: Any) -> None:
        """Answer this request; the answer carries `re`."""
        self.session.reply(type, payload, self.id, **fields)


Handler = Callable[[Request, Any], Awaitable[None]]
SubscribeRule = Callable[[Identity, str], Awaitable[bool]]
Listener = Callable[[Publication], None]


class AuthPayload(msgspec.Struct, frozen=True):
    token: str


class Hub:
    """One node of Hubbub; see the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        verifier: TokenVerifier,
        broker: Broker | None = None,
        clock: Clock | None = None,
        store_opener: Callable[[], Awaitable[Store]] | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._node_name = self.settings.node_name  # asks the OS for the host name: once
        self.clock: Clock = clock or SystemClock()
        self.verifier = verifier
        self.broker: Broker = broker or MemoryBroker(self.clock)
        self.broker.set_sink(
            self._deliver, on_reset=self._broker_reset, on_presence_gone=self._presence_gone
        )
        self.metrics = HubMetrics()
        self.presence = PresenceTracker(
            self.broker, self.clock, self.settings.presence_grace, self.emit
        )
        self.router = Router()
        self.sessions: dict[str, Session] = {}
        self.users: dict[str, set[Session]] = {}
        self.channels: dict[str, dict[Session, ChannelSubscription]] = {}
        self._handlers: dict[str, tuple[type[Any], Handler]] = {}
        self._subscribe_rules: dict[str, SubscribeRule] = {}
        self._namespaces: dict[str, NamespaceOptions] = {}
        self.people = UserPresence(self)
        self._last_ping = self.clock.monotonic()
        self._heartbeat: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.started = False
        self._start_hooks: list[Callable[[], None]] = []
        self._stop_hooks: list[Callable[[], Awaitable[None] | None]] = []
        self.store: Store | None = None
        self._store_opener = store_opener
        self.notifier: Notifier | None = None
        self._busy = 0  # frames (and token connects) being handled right now
        self._idle: asyncio.Event | None = None
        self.apps: dict[str, Any] = {}
        """The apps installed on this hub, by name (each app's `install` adds itself)."""
        self._migrations: list[tuple[str, str]] = []
        self.sockets = SocketEndpoints()
        self._listeners: dict[str, list[Listener]] = {}
        from hubbub.core import api, subscriptions

        subscriptions.register(self)
        api.register(self)

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (running its migrations) and the broker, start heartbeats."""
        if self.store is None and self._store_opener is not None:
            self.store = await self._store_opener()
            for name, location in self._migrations:
                self.store.add_migrations(name, location)
            await self.store.upgrade()
        await self.broker.start()
        self._last_ping = self.clock.monotonic()
        self._schedule_heartbeat()
        self.started = True
        for hook in self._start_hooks:
            hook()

    async def stop(self, code: int = CloseCode.GOING_AWAY, reason: str = "server stopping") -> None:
        """Close every connection with `code` (1001 or 1012 tell clients to reconnect)."""
        self.started = False
        for hook in self._stop_hooks:
            pending = hook()
            if pending is not None:
                await pending
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        for session in list(self.sessions.values()):
            self.close_session(session, code, reason)
        self.sockets.close_all(code, reason)
        for session in list(self.sessions.values()):
            await self.disconnect(session)
        await self._handlers_done()
        self.people.cancel()
        await self.presence.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        # Let them finish cancelling before the broker goes: one still inside a broker
        # call would hold a connection the broker can no longer close.
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.broker.close()
        if self.store is not None and self._store_opener is not None:
            await self.store.close()
            self.store = None

    async def _handlers_done(self, timeout: float = 5.0) -> None:
        """Wait (a bounded time) for frames still being handled: they may be inside the
        store or the broker, which close next."""
        if not self._busy:
            return
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("%d frames still in their handlers at shutdown", self._busy)
        finally:
            self._idle = None

    def spawn(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        """Run `coro` in the background, kept alive until it ends; returns its task.

        When the hub stops, tasks still running are cancelled and awaited before the
        broker and the store close, so none is left holding a connection.
        """
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- registration (the API apps build on) ----------------------------------

    def on_start(self, fn: Callable[[], None]) -> None:
        """Call `fn` each time the hub has started (apps start their timers here)."""
        self._start_hooks.append(fn)

    def on_stop(self, fn: Callable[[], Awaitable[None] | None]) -> None:
        """Call `fn` when the hub begins to stop, before connections are closed; when it
        returns an awaitable (an app storing what is pending), the stop waits for it."""
        self._stop_hooks.append(fn)

    def add_migrations(self, name: str, location: str) -> None:
        """Register an app's Alembic revisions (its tables), run when the hub starts."""
        self._migrations.append((name, location))

    def on(self, type: str, payload: type[P]) -> Callable[[Handler], Handler]:
        """Register the handler of client frames of `type`, its payload decoded as `payload`."""

        def register(fn: Handler) -> Handler:
            self._handlers[type] = (payload, fn)
            return fn

        return register

    def subscribe_rule(self, namespace: str) -> Callable[[SubscribeRule], SubscribeRule]:
        """Register who may subscribe to a namespace whose policy is `token` or `none`."""

        def register(fn: SubscribeRule) -> SubscribeRule:
            self._subscribe_rules[namespace] = fn
            return fn

        return register

    def socket_endpoint(
        self, pattern: str, handler: SocketHandler, *, max_message_bytes: int | None = None
    ) -> None:
        """Serve WebSockets on `pattern` (e.g. `/collab/{name}`) with an app's own protocol.

        The transport hands each connection to `handler` as a `RawSocket` (core/sockets.py);
        messages up to `max_message_bytes` (default: the `/ws` frame limit) reach its peer.
        """
        limit = max_message_bytes or self.settings.max_frame_bytes
        self.sockets.add(pattern, handler, max_message_bytes=limit)

    async def listen(self, channel: str, listener: Listener) -> None:
        """Call `listener` with every publication of `channel` that reaches this node,
        from any node (its own included), while it listens; the broker is subscribed
        while anyone listens or a client is subscribed."""
        listeners = self._listeners.get(channel)
        if listeners is None:
            if channel not in self.channels:
                await self.broker.subscribe(channel)
            listeners = self._listeners.setdefault(channel, [])
        listeners.append(listener)

    async def unlisten(self, channel: str, listener: Listener) -> None:
        """Stop calling `listener` for `channel`."""
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[channel]
            if channel not in self.channels:
                await self.broker.unsubscribe(channel)

    def presence_watchers(self, fn: Watchers) -> Watchers:
        """Register a source of users who hear `presence.user_online/offline` of a user."""
        self.people.add_source(fn)
        return fn

    # -- connections ---------------------------------------------------------

    def origin_allowed(self, origin: str | None) -> bool:
        allowed = self.settings.allowed_origins
        if not allowed or origin is None or "*" in allowed:
            return True
        return origin in allowed

    async def open(
        self,
        conn: Connection,
        codec: Codec,
        token: str | None,
        on_session: Callable[[Session], None] | None = None,
    ) -> Session:
        """A new connection; with no token it must send `auth` within the auth timeout.

        `on_session` gets the session as soon as it exists, before the token is checked
        (a transport that sees pongs meanwhile needs it)."""
        session = Session(
            conn,
            codec,
            self.settings,
            self.clock,
            on_overflow=self._overflow,
        )
        self.sessions[session.id] = session
        self.metrics.connections.inc()
        self.metrics.connections_total.inc()
        if on_session is not None:
            on_session(session)
        if token is not None:
            self._busy += 1
            try:
                await self._authenticate(session, token, None)
            except Exception:
                log.exception("opening a connection failed")
                self.close_session(session, CloseCode.INTERNAL_ERROR, "internal error")
            finally:
                self._busy -= 1
                if not self._busy and self._idle is not None:
                    self._idle.set()
        else:
            session.set_timer(
                "auth",
                self.clock.call_later(
                    self.settings.auth_timeout,
                    lambda: self.close_session(session, CloseCode.UNAUTHORIZED, "auth timeout"),
                ),
            )
        return session

    def close_session(self, session: Session, code: int, reason: str) -> None:
        """Close a connection now; `disconnect` follows when the transport sees it end."""
        if session.closed:
            return
        session.closed = True
        session.close_code = code
        session.queue.close()
        session.cancel_timers()
        session.conn.close(code, reason)

    def _overflow(self, session: Session) -> None:
        self.metrics.queue_overflows.inc()
        self.close_session(session, CloseCode.TOO_SLOW, "send queue full")

    async def disconnect(self, session: Session) -> None:
        """Forget a closed connection: subscriptions, presence, user routing."""
        if self.sessions.pop(session.id, None) is None:
            return
        self.metrics.connections.dec()
        session.closed = True
        session.queue.close()
        session.cancel_timers()
        for channel in list(session.subscriptions):
            await self.detach(session, channel)
        user = session.user_id
        sessions = self.users.get(user)
        if sessions is not None:
            await self.people.forget(user, session.id)
            sessions.discard(session)
            if not sessions:
                del self.users[user]
                self.people.went_away(user)

    async def _authenticate(self, session: Session, token: str, re: str | None) -> None:
        try:
            identity = self.verifier.verify(token)
        except Unauthorized as exc:
            self.close_session(session, CloseCode.UNAUTHORIZED, exc.message)
            return
        session.cancel_timer("auth")
        session.identity = identity
        self._schedule_expiry(session)
        first = session.user_id not in self.users
        self.users.setdefault(session.user_id, set()).add(session)
        session.reply(
            "welcome",
            {
                "connectionId": session.id,
                "userId": identity.user_id,
                "serverTime": self.clock.time_ms(),
                "heartbeatInterval": int(self.settings.heartbeat_interval * 1000),
                "node": self._node_name,
                "protocol": PROTOCOL_VERSION,
            },
            re,
        )
        from hubbub.core.subscriptions import subscribe_channel

        try:
            await subscribe_channel(self, session, user_channel(identity.user_id), None, None)
        except HubbubError as exc:
            self.close_session(session, CloseCode.RESTARTING, exc.message)
            return
        await self.people.record(session)
        if first:
            await self.people.came_back(session.user_id, session.status)

    def _schedule_expiry(self, session: Session) -> None:
        """One timer per connection: the warning, then (re-armed) the close at expiry."""
        exp = session.identity.exp if session.identity else None
        if exp is None:
            return
        left = exp - self.clock.time_ms() / 1000
        warn = left - self.settings.refresh_warning

        def expired() -> None:
            self.close_session(session, CloseCode.UNAUTHORIZED, "token expired")

        def expiring() -> None:
            session.send(Envelope(type="auth.expiring", payload={"exp": int(exp)}))
            rest = exp - self.clock.time_ms() / 1000
            session.set_timer("expiry", self.clock.call_later(max(0.0, rest), expired))

        session.set_timer("expiry", self.clock.call_later(max(0.0, warn), expiring))

    async def refresh(self, session: Session, token: str) -> Identity:
        """Swap the token of a live session; the user must stay the same."""
        identity = self.verifier.verify(token)
        if session.identity is not None and identity.user_id != session.user_id:
            raise Forbidden("token is for another user")
        session.identity = identity
        session.cancel_timer("expiry")
        self._schedule_expiry(session)
        return identity

    # -- frames --------------------------------------------------------------

    async def receive(self, session: Session, data: bytes | str) -> None:
        """Handle one frame from a client. Bad input gets an error frame, never an exception."""
        if session.closed:
            return
        self._busy += 1  # `stop` waits for frames in their handlers (one try, no extra call)
        try:
            now = session.last_seen = self.clock.monotonic()
            metrics = self.metrics
            metrics.frames_in += 1
            metrics.bytes_in += len(data)
            if len(data) > self.settings.max_frame_bytes:
                self.close_session(session, CloseCode.TOO_LARGE, "frame too large")
                return
            if not session.rate.take(now):
                self._send_error(session, RateLimited("too many frames; slow down"), None)
                if session.rate_strikes.hit():
                    self.close_session(session, CloseCode.RATE_LIMITED, "rate limited")
                return
            codec = session.codec
            if isinstance(data, bytes) != codec.binary:
                kind = "binary" if isinstance(data, bytes) else "text"
                self._bad_frame(
                    session, BadRequest(f"{kind} frame on a {codec.name} connection"), None
                )
                return
            try:
                inbound = codec.decode_inbound(data)
            except BadRequest as exc:
                self._bad_frame(session, exc, exc.re)
                return
            if session.identity is None:
                await self._receive_unauthenticated(
                    session, inbound.type, inbound.id, inbound.payload
                )
                return
            entry = self._handlers.get(inbound.type)
            if entry is None:
                self._send_error(session, UnknownType(f"unknown type {inbound.type!r}"), inbound.id)
                return
            payload_type, handler = entry
            try:
                payload = codec.decode_payload(inbound.payload, payload_type)
                await handler(Request(self, session, inbound.id, inbound.type), payload)
            except BadRequest as exc:
                self._bad_frame(session, exc, inbound.id)
            except HubbubError as exc:
                self._send_error(session, exc, inbound.id)
            except Exception:
                log.exception("handler of %s failed", inbound.type)
                self._send_error(session, HubbubError("internal error"), inbound.id)

        finally:
            self._busy -= 1
            if not self._busy and self._idle is not None:
                self._idle.set()

    async def _receive_unauthenticated(
        self, session: Session, type: str, id: str | None, raw: Any
    ) -> None:
        if type != "auth":
            self.close_session(session, CloseCode.UNAUTHORIZED, "authenticate first")
            return
        try:
            payload = session.codec.decode_payload(raw, AuthPayload)
        except BadRequest as exc:
            self.close_session(session, CloseCode.UNAUTHORIZED, exc.message)
            return
        await self._authenticate(session, payload.token, id)

    def _send_error(self, session: Session, error: HubbubError, re: str | None) -> None:
        self.metrics.errors.labels(error.code.value).inc()
        session.send_error(error, re)

    def _bad_frame(self, session: Session, error: HubbubError, re: str | None) -> None:
        self._send_error(session, error, re)
        if session.bad_frames.hit():
            self.close_session(session, CloseCode.POLICY_VIOLATION, "too many bad frames")

    def touch(self, session: Session) -> None:
        """The client answered a ping (or sent anything): it is alive."""
        session.last_seen = self.clock.monotonic()

    # -- heartbeats ------------------------------------------------------------

    def _schedule_heartbeat(self) -> None:
        self._heartbeat = self.clock.call_later(self.settings.heartbeat_interval, self._beat)

    def _beat(self) -> None:
        """Close connections silent since the previous ping, then ping the rest."""
        previous = self._last_ping
        self._last_ping = self.clock.monotonic()
        for session in list(self.sessions.values()):
            if session.closed:
                continue
            if not session.conn.can_ping:
                continue
            if session.last_seen < previous:
                self.close_session(session, CloseCode.HEARTBEAT_TIMEOUT, "no pong")
            else:
                session.conn.ping()
        if self.started:
            self._schedule_heartbeat()

    # -- channels ----------------------------------------------------------------

    def namespace(self, channel: str) -> NamespaceOptions:
        """The options of `channel`'s namespace (looked up once per namespace)."""
        ns = namespace_of(channel)
        found = self._namespaces.get(ns)
        if found is None:
            found = self.settings.namespace(ns)
            if ns in self.settings.namespaces or ns in DEFAULT_NAMESPACES:
                self._namespaces[ns] = found  # any other name a client makes up is not kept
        return found

    async def can_subscribe(self, identity: Identity, channel: str) -> bool:
        """Whether `identity` may subscribe to `channel` (namespace policy, token, app rules)."""
        if identity.is_admin or matches_any(channel, identity.channels):
            return True
        ns = namespace_of(channel)
        policy = self.namespace(channel).subscribe
        if policy == "authenticated":
            return True
        if policy == "owner":
            return channel == user_channel(identity.user_id)
        rule = self._subscribe_rules.get(ns)
        return rule is not None and await rule(identity, channel)

    def can_publish(self, identity: Identity, channel: str) -> bool:
        if identity.is_server or matches_any(channel, identity.publish):
            return True
        return self.namespace(channel).publish == "authenticated"

    async def attach(self, session: Session, channel: str, sub: ChannelSubscription) -> None:
        """Add a subscription (catching up until its buffer is released)."""
        subs = self.channels.get(channel)
        if subs is None:
            if channel not in self._listeners:
                await self.broker.subscribe(channel)
            subs = self.channels.setdefault(channel, {})
        subs[session] = sub
        session.subscriptions[channel] = sub
        self.metrics.subscriptions.inc()

    async def detach(self, session: Session, channel: str) -> None:
        if session.subscriptions.pop(channel, None) is None:
            return
        self.metrics.subscriptions.dec()
        subs = self.channels.get(channel)
        if subs is not None:
            subs.pop(session, None)
            if not subs:
                del self.channels[channel]
                if channel not in self._listeners:
                    await self.broker.unsubscribe(channel)
        if self.namespace(channel).presence:
            await self.presence.leave(channel, session.user_id, session.id)

    def _broker_reset(self) -> None:
        """The broker may have missed publications: every client reconnects and recovers."""
        for session in list(self.sessions.values()):
            self.close_session(session, CloseCode.RESTARTING, "broker reconnected; recover")

    def _presence_gone(self, channel: str, user_id: str) -> None:
        """A dead node's user left `channel` for good."""
        if not self.namespace(channel).presence:
            return  # the user: channel's record of live connections, not a presence channel
        self.spawn(self.emit(channel, "presence.leave", {"channel": channel, "userId": user_id}))

    # -- publishing --------------------------------------------------------------

    def history_options(self, channel: str) -> HistoryOptions:
        ns = self.namespace(channel)
        return HistoryOptions(
            size=ns.history_size, ttl=ns.history_ttl, keep_last_value=ns.keep_last_value
        )

    async def publish(
        self, channel: str, data: Any, *, publisher: str | None = None
    ) -> Publication:
        """Publish `data` to `channel` as a `message` event; returns it with its `seq`."""
        payload: dict[str, Any] = {"data": data}
        if publisher is not None:
            payload["publisher"] = publisher
        return await self.publish_event(channel, "message", payload)

    async def publish_event(self, channel: str, type: str, payload: Any) -> Publication:
        """Publish an event of any `type` to `channel`, sequenced and kept in history."""
        self.metrics.publications.inc()
        return await self.broker.publish(
            channel, type, payload, history=self.history_options(channel)
        )

    async def emit(self, channel: str, type: str, payload: Any) -> Publication:
        """Send an ephemeral event (no `seq`, no history) to a channel's subscribers."""
        return await self.broker.publish(channel, type, payload, history=None)

    async def send_to_user(self, user_id: str, type: str, payload: Any) -> Publication:
        """Send a sequenced event to every connection of `user_id` (its `user:` channel)."""
        return await self.publish_event(user_channel(user_id), type, payload)

    def _deliver(self, pub: Publication) -> None:
        """The broker's sink: hand one publication to every local subscriber, encoded once."""
        listeners = self._listeners.get(pub.channel)
        if listeners:
            for listener in tuple(listeners):
                try:
                    listener(pub)
                except Exception:  # one app's bug must not stop the fan-out
                    log.exception("listener of %s failed", pub.channel)
        subs = self.channels.get(pub.channel)
        if not subs:
            return
        frame: bytes | None = None
        sent = 0
        for session, sub in subs.items():
            if sub.buffer is not None:
                sub.buffer.append(pub)
                continue
            if sub.floor and pub.seq is not None:
                if pub.seq <= sub.floor:
                    continue  # the client has it already (fan-out lagging behind history)
                sub.floor = 0
            if sub.conflate and pub.seq is not None:
                session.queue.push_conflatable(pub)
            elif session.codec is JSON:
                if frame is None:
                    frame = pub.frame(JSON)
                session.queue.push(frame)
            else:
                session.queue.push(pub.frame(session.codec))
            sent += 1
        if sent:
            self.metrics.frames_out += sent
            if frame is not None:
                self.metrics.bytes_out += sent * len(frame)
            lag = (self.clock.time_ms() - pub.ts) / 1000
            self.metrics.publish_latency.observe(max(0.0, lag))

    # -- users -------------------------------------------------------------------

    async def is_online(self, user_id: str) -> bool:
        """Whether `user_id` has a live connection on any node of the cluster."""
        return await self.people.is_online(user_id)

    async def announce_status(self, user_id: str, status: str) -> None:
        """Tell the user's watchers that the user is online with `status`."""
        await self.people.announce(user_id, status)

    async def notify(self, notice: Notice) -> None:
        """Hand `notice` to the notifications app, if one is installed (core/notices.py)."""
        if self.notifier is None:
            return
        try:
            await self.notifier.notify(notice)
        except Exception:  # a notice is never worth failing the action that caused it
            log.exception("notifier failed for %s", notice.type)
