"""One live document and the clients editing it on this node.

A room holds the document (`pycrdt.Doc`), its connected peers and their awareness.
Every change, from a client or from Python code on the server, goes the same way:
applied to the document (which also checks that it decodes), appended to the store
by the room's writer, then sent to every local peer and through the broker to the
other nodes. The writer stores whatever has queued up while it was busy in one
transaction, so a burst of edits costs one commit, and it compacts the document
every `compact_every` stored updates. Changes that other nodes stored arrive through
the broker and are applied and sent on, not stored again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import TYPE_CHECKING, Any

import msgspec
import pycrdt

from hubbub.apps.collab import protocol, store
from hubbub.apps.collab.access import Access
from hubbub.apps.collab.awareness import AwarenessTable
from hubbub.apps.collab.protocol import AwarenessEntry, ProtocolError
from hubbub.clock import TimerHandle
from hubbub.core.sockets import RawSocket, binary_frame
from hubbub.engines.broker import Publication
from hubbub.protocol.codes import CloseCode

if TYPE_CHECKING:
    from hubbub.apps.collab.app import Collab

log = logging.getLogger("hubbub.collab")

EMPTY_UPDATE = b"\x00\x00"
MAX_PENDING = 1000
"""Updates waiting for the writer past which a client's further messages wait their turn."""
TICK = 5.0
"""Seconds between awareness expiry and silence checks."""
SILENCE_LIMIT = 60.0
"""A peer that sent nothing for this long is closed (Yjs clients send awareness every 15 s)."""


class Peer:
    """One client connection in a room: the app's `SocketPeer` for `/collab/{name}`."""

    __slots__ = ("room", "socket", "access", "user_id", "last_seen", "expiry")

    def __init__(self, room: Room, socket: RawSocket, access: Access, user_id: str) -> None:
        self.room = room
        self.socket = socket
        self.access = access
        self.user_id = user_id
        self.last_seen = room.app.hub.clock.monotonic()
        self.expiry: TimerHandle | None = None

    async def receive(self, data: bytes | str) -> None:
        """Handle one message; a malformed one closes the connection with 1008."""
        self.last_seen = self.room.app.hub.clock.monotonic()
        if self.room.app.stopped:
            return
        if isinstance(data, str):
            self.socket.close(CloseCode.POLICY_VIOLATION, "y-websocket messages are binary")
            return
        try:
            message = protocol.decode_message(data)
            await self.room.handle(self, message)
        except ProtocolError as exc:
            self.socket.close(CloseCode.POLICY_VIOLATION, f"bad message: {exc}"[:120])

    async def closed(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        await self.room.leave(self)


class Room:
    """A document open on this node; see the module docstring."""

    def __init__(self, name: str, app: Collab) -> None:
        self.name = name
        self.channel = f"collab:{name}"
        self.app = app
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.peers: set[Peer] = set()
        self.awareness = AwarenessTable()
        self.refs = 0
        self.unloading = False
        self.since_compaction = 0
        self._applying = False
        self._pending: list[bytes] = []
        self._origins: list[Peer | None] = []
        self._writer: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._timer: TimerHandle | None = None
        self.doc.observe(self._on_change)

    # -- lifecycle ----------------------------------------------------------------------

    async def load(self) -> None:
        """Listen to other nodes first (so nothing falls between), then read the store."""
        await self.app.hub.listen(self.channel, self._from_broker)
        try:
            blobs = await store.load(self.app.store, self.name)
        except BaseException:
            await self.app.hub.unlisten(self.channel, self._from_broker)
            raise
        for blob in blobs:
            try:
                self._apply(blob)
            except ValueError:
                log.error("document %s: a stored update does not decode; skipped", self.name)
        self._timer = self.app.hub.clock.call_later(TICK, self._tick)

    async def unload(self) -> None:
        """Store what is pending, stop listening, and compact into one snapshot."""
        if self._timer is not None:
            self._timer.cancel()
        await self.flushed()
        await self.app.hub.unlisten(self.channel, self._from_broker)
        if self.app.stopping:
            return  # every update is stored already; the next load compacts
        try:
            await store.compact(
                self.app.store, self.name, self.app.hub.clock.time_ms(), self.doc.get_update()
            )
        except Exception:
            log.exception("document %s: compaction on unload failed", self.name)

    async def flushed(self) -> None:
        """Wait until every change made so far is stored and sent."""
        while not self._idle.is_set():
            await self._idle.wait()

    # -- peers ----------------------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        """A client joined: send our state vector (sync step 1) and who is here."""
        self.peers.add(peer)
        peer.socket.send(protocol.sync_step1(self.doc.get_state()))
        states = self.awareness.states()
        if states:
            peer.socket.send(protocol.awareness_message(protocol.encode_awareness(states)))

    async def leave(self, peer: Peer) -> None:
        if peer not in self.peers:
            return
        self.peers.discard(peer)
        removed = self.awareness.remove_owner(peer, self.app.hub.clock.monotonic())
        if removed:
            self._send_awareness(removed)
        await self.app.rooms.release(self)

    async def handle(self, peer: Peer, message: protocol.Message) -> None:
        """One decoded message from `peer`."""
        if isinstance(message, protocol.SyncStep1):
            try:
                missing = self.doc.get_update(message.state_vector)
            except ValueError:
                raise ProtocolError("state vector does not decode") from None
            peer.socket.send(protocol.sync_step2(missing))
        elif isinstance(message, protocol.SyncStep2 | protocol.SyncUpdate):
            if peer.access != "edit":
                return  # read-only: dropped, never stored nor sent on
            await self.client_update(peer, message.update)
        elif isinstance(message, protocol.AwarenessMessage):
            self.client_awareness(peer, message.update)
        elif isinstance(message, protocol.QueryAwareness):
            states = self.awareness.states()
            peer.socket.send(protocol.awareness_message(protocol.encode_awareness(states)))

    async def client_update(self, peer: Peer, update: bytes) -> None:
        if update == EMPTY_UPDATE:
            return
        try:
            self._apply(update)
        except ValueError:
            raise ProtocolError("update does not decode") from None
        self._enqueue(update, peer)
        if len(self._pending) >= MAX_PENDING:
            await self.flushed()

    def client_awareness(self, peer: Peer, update: bytes) -> None:
        entries = protocol.decode_awareness(update)
        for entry in entries:
            try:
                msgspec.json.decode(entry.state)
            except msgspec.DecodeError:
                raise ProtocolError("awareness state is not JSON") from None
        accepted = self.awareness.apply(entries, peer, self.app.hub.clock.monotonic())
        if accepted:
            self._send_awareness(accepted)

    def broadcast(self, message: bytes) -> None:
        """Send one message to every local peer, framed once."""
        if not self.peers:
            return
        frame = binary_frame(message)
        for peer in self.peers:
            peer.socket.send_frame(frame)

    # -- changes ------------------------------------------------------------------------

    def _apply(self, update: bytes) -> None:
        self._applying = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying = False

    def _on_change(self, event: pycrdt.TransactionEvent) -> None:
        """A change made on the document by Python code (not by applying an update)."""
        if self._applying:
            return
        update = event.update
        if update != EMPTY_UPDATE:
            self._enqueue(update, None)

    def _enqueue(self, update: bytes, origin: Peer | None) -> None:
        self._pending.append(update)
        self._origins.append(origin)
        if self._writer is None:
            self._idle.clear()
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                origins, self._origins = self._origins, []
                await self._store_and_send(batch, origins)
        finally:
            self._writer = None
            self._idle.set()

    async def _store_and_send(self, batch: list[bytes], origins: list[Peer | None]) -> None:
        app = self.app
        if app.stopped:
            return  # the store is closed; the clients send these again on reconnect
        try:
            await store.append(app.store, self.name, batch, app.hub.clock.time_ms())
        except Exception:
            # Kept in memory (the unload snapshot stores it); the clients reconnect and
            # send again what the store may lack.
            log.exception("document %s: storing %d updates failed", self.name, len(batch))
            for origin in origins:
                if origin is not None:
                    origin.socket.close(CloseCode.INTERNAL_ERROR, "storage failed")
            return
        merged = batch[0] if len(batch) == 1 else pycrdt.merge_updates(*batch)
        app.updates_stored += len(batch)
        self.broadcast(protocol.sync_update(merged))
        await self._publish("collab.update", {"u": base64.b64encode(merged).decode()})
        self.since_compaction += len(batch)
        if self.since_compaction >= app.compact_every:
            self.since_compaction = 0
            try:
                await store.compact(app.store, self.name, app.hub.clock.time_ms())
            except Exception:
                log.exception("document %s: compaction failed", self.name)

    # -- awareness and other nodes ----------------------------------------------------------

    def _send_awareness(self, entries: list[AwarenessEntry]) -> None:
        encoded = protocol.encode_awareness(entries)
        self.broadcast(protocol.awareness_message(encoded))
        self.app.hub.spawn(
            self._publish("collab.awareness", {"a": base64.b64encode(encoded).decode()})
        )

    async def _publish(self, type: str, payload: dict[str, Any]) -> None:
        try:
            await self.app.hub.emit(self.channel, type, {**payload, "o": self.app.origin})
        except Exception:  # other nodes catch up when their clients sync again
            log.warning("document %s: could not reach the broker", self.name)

    def _from_broker(self, pub: Publication) -> None:
        payload = pub.payload
        if not isinstance(payload, dict) or payload.get("o") == self.app.origin:
            return  # our own, already applied and sent
        try:
            if pub.type == "collab.update":
                update = base64.b64decode(payload["u"])
                self._apply(update)
                self.broadcast(protocol.sync_update(update))
            elif pub.type == "collab.awareness":
                entries = protocol.decode_awareness(base64.b64decode(payload["a"]))
                now = self.app.hub.clock.monotonic()
                accepted = self.awareness.apply(entries, None, now)
                if accepted:
                    encoded = protocol.encode_awareness(accepted)
                    self.broadcast(protocol.awareness_message(encoded))
        except (KeyError, TypeError, ValueError):
            log.warning("document %s: a malformed %s from the broker", self.name, pub.type)

    def _tick(self) -> None:
        """Expire stale awareness and close peers that went silent."""
        clock = self.app.hub.clock
        now = clock.monotonic()
        removed = self.awareness.expire(now)
        if removed:
            encoded = protocol.encode_awareness(removed)
            self.broadcast(protocol.awareness_message(encoded))  # other nodes expire their own
        for peer in list(self.peers):
            if now - peer.last_seen > SILENCE_LIMIT:
                peer.socket.close(CloseCode.HEARTBEAT_TIMEOUT, "no message for 60 s")
        self._timer = clock.call_later(TICK, self._tick)
