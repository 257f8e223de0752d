"""The collaboration app: `/collab/{name}` for Yjs clients, rooms, access and the Python API."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import jwt

from hubbub.apps.collab import protocol
from hubbub.apps.collab.access import Access, AccessRule, decide
from hubbub.apps.collab.api import Document
from hubbub.apps.collab.room import Peer, Room
from hubbub.apps.collab.store import DOC_NAME_MAX
from hubbub.core.auth import Identity
from hubbub.core.hub import Hub
from hubbub.core.sockets import RawSocket, SocketRequest
from hubbub.engines.store import Store
from hubbub.errors import BadRequest, Unauthorized, Unavailable
from hubbub.protocol.channels import is_valid_channel
from hubbub.protocol.codes import CloseCode

log = logging.getLogger("hubbub.collab")

COMPACT_EVERY = 500
"""Stored updates of a document between two compactions (the storage bound's `N`)."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The largest y-websocket message taken (a whole document's first sync can be large)."""


def valid_name(name: str) -> bool:
    """Document names follow the channel rules (letters, digits, `_ . @ -`, `:` between
    parts), at most 200 characters: each document's cluster traffic is `collab:<name>`."""
    return 0 < len(name) <= DOC_NAME_MAX and is_valid_channel(f"collab:{name}")


class Rooms:
    """The rooms open on this node: one per document, loaded once, unloaded when unused."""

    def __init__(self, app: Collab) -> None:
        self._app = app
        self.open: dict[str, Room] = {}
        self.busy: dict[str, asyncio.Future[None]] = {}

    async def acquire(self, name: str) -> Room:
        """The room of `name`, loaded if needed; `release` it when done."""
        while True:
            room = self.open.get(name)
            if room is not None and not room.unloading:
                room.refs += 1
                return room
            busy = self.busy.get(name)
            if busy is not None:  # loading or unloading: wait, then look again
                await asyncio.shield(busy)
                continue
            return await self._load(name)

    async def _load(self, name: str) -> Room:
        done = asyncio.get_running_loop().create_future()
        self.busy[name] = done
        try:
            room = Room(name, self._app)
            try:
                await room.load()
            except Exception as exc:
                log.exception("document %s: loading failed", name)
                raise Unavailable("the document could not be loaded") from exc
            room.refs += 1
            self.open[name] = room
            return room
        finally:
            del self.busy[name]
            done.set_result(None)

    async def release(self, room: Room) -> None:
        """One user fewer; the last one unloads the room, after storing."""
        room.refs -= 1
        if room.refs > 0 or room.unloading:
            return
        room.unloading = True
        done = asyncio.get_running_loop().create_future()
        self.busy[room.name] = done
        try:
            await room.unload()
        finally:
            self.open.pop(room.name, None)
            del self.busy[room.name]
            done.set_result(None)


class _Refused:
    """The peer of a connection that was refused and closed at once."""

    async def receive(self, data: bytes | str) -> None:
        return None

    async def closed(self) -> None:
        return None


class Collab:
    """Collaborative documents on a hub. Make it with `hubbub.apps.collab.install`."""

    def __init__(
        self,
        hub: Hub,
        *,
        compact_every: int = COMPACT_EVERY,
        default_access: Access = "edit",
    ) -> None:
        self.hub = hub
        self.compact_every = compact_every
        self.default_access: Access = default_access
        self.origin = secrets.token_hex(8)  # this node's mark on what it sends the broker
        self.rooms = Rooms(self)
        self.stopping = False
        self.stopped = False
        self.updates_stored = 0
        self._rule: AccessRule | None = None

    def start(self) -> None:
        """The hub started (again)."""
        self.stopping = self.stopped = False

    async def stop(self) -> None:
        """The hub is stopping: store what is pending before the store closes.

        Rooms still open are not compacted (every update is stored; the next load
        compacts); changes arriving after this are dropped, and their clients send
        them again when they reconnect (Yjs sync step 2).
        """
        self.stopping = True
        for busy in list(self.rooms.busy.values()):
            await asyncio.shield(busy)
        for room in list(self.rooms.open.values()):
            await room.flushed()
        self.stopped = True

    @property
    def store(self) -> Store:
        if self.hub.store is None:
            raise Unavailable("the store is not open")
        return self.hub.store

    def access_rule(self, rule: AccessRule) -> AccessRule:
        """Register who may edit or read which document (docs/collab.md); usable as a
        decorator. `rule(identity, claims, doc)` returns "edit", "read", "none" or None."""
        self._rule = rule
        return rule

    async def access(self, identity: Identity, claims: Mapping[str, Any], doc: str) -> Access:
        """What `identity` may do with `doc`."""
        return await decide(identity, claims, doc, self._rule, self.default_access)

    @asynccontextmanager
    async def document(self, name: str) -> AsyncIterator[Document]:
        """Open document `name` for reading and changing it from Python (see api.py)."""
        if not valid_name(name):
            raise BadRequest(f"invalid document name {name!r}")
        room = await self.rooms.acquire(name)
        try:
            yield Document(room)
            await room.flushed()
        finally:
            await self.rooms.release(room)

    # -- the endpoint ---------------------------------------------------------------------

    async def connect(self, socket: RawSocket, request: SocketRequest) -> Peer | _Refused:
        """A client opened `/collab/{name}`: check who it is and what it may do, then join."""
        name = request.params["name"]
        if not valid_name(name):
            socket.close(CloseCode.POLICY_VIOLATION, "invalid document name")
            return _Refused()
        token = request.token()
        if token is None:
            socket.close(CloseCode.UNAUTHORIZED, "missing ?token=")
            return _Refused()
        try:
            identity = self.hub.verifier.verify_bearer(token)
            claims = {} if identity.is_server else _claims_of(token)
            access = await self.access(identity, claims, name)
        except Unauthorized as exc:
            socket.close(CloseCode.UNAUTHORIZED, exc.message[:120])
            return _Refused()
        if access == "none":
            socket.send(protocol.permission_denied("no access to this document"))
            socket.close(CloseCode.FORBIDDEN, "no access to this document")
            return _Refused()
        try:
            room = await self.rooms.acquire(name)
        except Unavailable:
            socket.close(CloseCode.INTERNAL_ERROR, "document unavailable; try again")
            return _Refused()
        peer = Peer(room, socket, access, identity.user_id)
        if identity.exp is not None:
            left = identity.exp - self.hub.clock.time_ms() / 1000
            peer.expiry = self.hub.clock.call_later(
                max(0.0, left), lambda: socket.close(CloseCode.UNAUTHORIZED, "token expired")
            )
        room.join(peer)
        return peer


def _claims_of(token: str) -> dict[str, Any]:
    # Only called once `verify_bearer` checked the signature and expiry of this very token.
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims if isinstance(claims, dict) else {}
