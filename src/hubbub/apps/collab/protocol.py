"""The y-websocket wire protocol, bytes in and objects out, with no I/O.

Each WebSocket message is one binary frame, as the Yjs `y-websocket` provider
sends it (y-protocols: `sync.js`, `awareness.js`, `auth.js`). Integers are
lib0 variable-length unsigned integers (7 bits a byte, low group first, the top
bit set on every byte but the last); byte strings and strings are a length then
the bytes (strings in UTF-8).

| message | layout |
|---|---|
| sync step 1 | 0, 0, state vector (bytes) |
| sync step 2 | 0, 1, update (bytes) |
| sync update | 0, 2, update (bytes) |
| awareness | 1, awareness update (bytes) |
| auth: permission denied | 2, 0, reason (string) |
| query awareness | 3 |

An awareness update is a count, then for each client: its client id, its clock,
and its state as a JSON string (`"null"` when the client left).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

MAX_VAR_UINT = 2**53 - 1  # what a JavaScript number holds exactly


class MessageType(IntEnum):
    """The first integer of every message."""

    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    """The second integer of a sync message."""

    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """A peer's state vector: "send me what I am missing"."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """The answer to step 1: every change the asker was missing."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """A change made live."""

    update: bytes


@dataclass(frozen=True, slots=True)
class AwarenessMessage:
    """Awareness states (cursors, names) of one or more clients, still encoded."""

    update: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    """ "Send me every awareness state you know"."""


@dataclass(frozen=True, slots=True)
class AuthMessage:
    """An auth message (servers send it; a client sending it is ignored)."""

    denied_reason: str


Message = SyncStep1 | SyncStep2 | SyncUpdate | AwarenessMessage | QueryAwareness | AuthMessage


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state: `state` is its JSON text, `"null"` once it left."""

    client_id: int
    clock: int
    state: str

    @property
    def removed(self) -> bool:
        return self.state == "null"


# -- lib0 encoding ----------------------------------------------------------------------


def write_var_uint(out: bytearray, value: int) -> None:
    """Append `value` (0 to 2**53 - 1) as a lib0 variable-length unsigned integer."""
    if not 0 <= value <= MAX_VAR_UINT:
        raise ValueError(f"not a lib0 unsigned integer: {value}")
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def write_var_bytes(out: bytearray, data: bytes) -> None:
    write_var_uint(out, len(data))
    out += data


def write_var_string(out: bytearray, text: str) -> None:
    write_var_bytes(out, text.encode())


class Reader:
    """Reads lib0 values from the front of a message; running past its end is a ProtocolError."""

    __slots__ = ("_data", "pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self._data)

    def var_uint(self) -> int:
        value = 0
        shift = 0
        data = self._data
        while True:
            if self.pos >= len(data):
                raise ProtocolError("message ends inside an integer")
            byte = data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
            if shift > 53:
                raise ProtocolError("integer longer than 53 bits")
        if value > MAX_VAR_UINT:
            raise ProtocolError("integer longer than 53 bits")
        return value

    def var_bytes(self) -> bytes:
        length = self.var_uint()
        end = self.pos + length
        if end > len(self._data):
            raise ProtocolError("message ends inside a byte string")
        chunk = self._data[self.pos : end]
        self.pos = end
        return chunk

    def var_string(self) -> str:
        try:
            return self.var_bytes().decode()
        except UnicodeDecodeError:
            raise ProtocolError("string is not UTF-8") from None


# -- messages -----------------------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """The message in one binary frame; raises ProtocolError for anything malformed."""
    reader = Reader(data)
    kind = reader.var_uint()
    message: Message
    if kind == MessageType.SYNC:
        sync = reader.var_uint()
        payload = reader.var_bytes()
        if sync == SyncType.STEP1:
            message = SyncStep1(payload)
        elif sync == SyncType.STEP2:
            message = SyncStep2(payload)
        elif sync == SyncType.UPDATE:
            message = SyncUpdate(payload)
        else:
            raise ProtocolError(f"unknown sync message type {sync}")
    elif kind == MessageType.AWARENESS:
        message = AwarenessMessage(reader.var_bytes())
    elif kind == MessageType.QUERY_AWARENESS:
        message = QueryAwareness()
    elif kind == MessageType.AUTH:
        reader.var_uint()
        message = AuthMessage(reader.var_string())
    else:
        raise ProtocolError(f"unknown message type {kind}")
    return message


def _sync(sync: SyncType, payload: bytes) -> bytes:
    out = bytearray()
    write_var_uint(out, MessageType.SYNC)
    write_var_uint(out, sync)
    write_var_bytes(out, payload)
    return bytes(out)


def sync_step1(state_vector: bytes) -> bytes:
    """Sync step 1 carrying our state vector."""
    return _sync(SyncType.STEP1, state_vector)


def sync_step2(update: bytes) -> bytes:
    """Sync step 2 carrying what the other side was missing."""
    return _sync(SyncType.STEP2, update)


def sync_update(update: bytes) -> bytes:
    """A live update."""
    return _sync(SyncType.UPDATE, update)


def awareness_message(update: bytes) -> bytes:
    """An awareness message carrying an encoded awareness update."""
    out = bytearray()
    write_var_uint(out, MessageType.AWARENESS)
    write_var_bytes(out, update)
    return bytes(out)


def permission_denied(reason: str) -> bytes:
    """The auth message that makes a y-websocket provider report "permission denied"."""
    out = bytearray()
    write_var_uint(out, MessageType.AUTH)
    write_var_uint(out, 0)
    write_var_string(out, reason)
    return bytes(out)


def query_awareness() -> bytes:
    out = bytearray()
    write_var_uint(out, MessageType.QUERY_AWARENESS)
    return bytes(out)


# -- awareness updates --------------------------------------------------------------------


def decode_awareness(update: bytes) -> list[AwarenessEntry]:
    """The entries of an awareness update; raises ProtocolError for anything malformed."""
    reader = Reader(update)
    count = reader.var_uint()
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        entries.append(AwarenessEntry(client_id, clock, reader.var_string()))
    return entries


def encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    """An awareness update holding `entries`."""
    out = bytearray()
    write_var_uint(out, len(entries))
    for entry in entries:
        write_var_uint(out, entry.client_id)
        write_var_uint(out, entry.clock)
        write_var_string(out, entry.state)
    return bytes(out)
