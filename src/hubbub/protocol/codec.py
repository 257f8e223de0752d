"""Envelopes (PROTOCOL.md section 2) and their two encodings, JSON and MessagePack.

Decoding is in two steps so that a bad payload can still be answered with `re`:
first the envelope (type, id, raw payload), then the payload into the Struct the
handler of that type declares.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec

from hubbub.errors import BadRequest

MAX_REQUEST_ID_LENGTH: Final = 64
T = TypeVar("T")


class Inbound(msgspec.Struct, frozen=True):
    """A frame from a client, payload not yet decoded."""

    type: str
    id: str | None = None
    payload: msgspec.Raw = msgspec.Raw(b"")


class Envelope(msgspec.Struct, omit_defaults=True):
    """A frame from the server. Fields left at their default are not sent."""

    type: str
    channel: str | None = None
    seq: int | None = None
    ts: int | None = None
    re: str | None = None
    replay: bool = False
    conflated: bool = False
    payload: Any = None


def _explain(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    return text.replace("`$.", "`").replace("`$`", "the frame")


def _request_id(decode: Any, data: bytes | str) -> str | None:
    """The `id` of a frame that failed to decode as an envelope, if it has a usable one."""
    try:
        value = decode(data)
    except (msgspec.DecodeError, ValueError):
        return None
    rid = value.get("id") if isinstance(value, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= MAX_REQUEST_ID_LENGTH else None


class Codec:
    """One wire encoding of envelopes; `binary` says which WebSocket frame type carries it."""

    name: str = ""
    binary: bool = False
    label: str = ""  # how error messages name the encoding
    empty_object: bytes = b"{}"

    def __init__(self, encoder: Any, make_decoder: Any, decode_any: Any) -> None:
        self._encoder = encoder
        self._decode_any = decode_any
        self._make_decoder = make_decoder
        self._inbound = make_decoder(Inbound)
        self._payloads: dict[type[Any], Any] = {}
        self._empty_raw = msgspec.Raw(self.empty_object)

    def encode(self, envelope: Envelope) -> bytes:
        return self._encoder.encode(envelope)  # type: ignore[no-any-return]

    def encode_any(self, value: Any) -> bytes:
        """Encode any value."""
        return self._encoder.encode(value)  # type: ignore[no-any-return]

    def _frame_data(self, data: bytes | str) -> bytes | str:
        return data

    def decode_inbound(self, data: bytes | str) -> Inbound:
        """The envelope of a client frame; `BadRequest` (with the frame's `id`) if malformed."""
        data = self._frame_data(data)
        try:
            inbound: Inbound = self._inbound.decode(data)
        except msgspec.ValidationError as exc:
            raise BadRequest(_explain(exc), re=_request_id(self._decode_any, data)) from None
        except msgspec.DecodeError:
            raise BadRequest(f"frame is not valid {self.label}") from None
        _check_inbound(inbound)
        return inbound

    def decode_payload(self, raw: msgspec.Raw | None, into: type[T]) -> T:
        """The payload as the Struct `into`; a missing payload is an empty object."""
        if raw is None or not raw:
            raw = self._empty_raw
        decoder = self._payloads.get(into)
        if decoder is None:
            decoder = self._payloads[into] = self._make_decoder(into)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise BadRequest("payload: " + _explain(exc)) from None
        except msgspec.DecodeError:
            raise BadRequest(f"payload is not valid {self.label}") from None


class JsonCodec(Codec):
    """`hubbub.v1.json`: one JSON object per text frame."""

    name = "hubbub.v1.json"
    binary = False
    label = "JSON"

    def __init__(self) -> None:
        super().__init__(msgspec.json.Encoder(), msgspec.json.Decoder, msgspec.json.decode)


class MsgpackCodec(Codec):
    """`hubbub.v1.msgpack`: the same envelopes as MessagePack in binary frames."""

    name = "hubbub.v1.msgpack"
    binary = True
    label = "MessagePack"
    empty_object = b"\x80"

    def __init__(self) -> None:
        super().__init__(msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder, msgspec.msgpack.decode)

    def _frame_data(self, data: bytes | str) -> bytes | str:
        if isinstance(data, str):
            raise BadRequest("text frame on a MessagePack connection")
        return data


def _check_inbound(inbound: Inbound) -> None:
    if not inbound.type:
        rid = inbound.id if inbound.id and len(inbound.id) <= MAX_REQUEST_ID_LENGTH else None
        raise BadRequest("`type` must not be empty", re=rid)
    if inbound.id is not None and len(inbound.id) > MAX_REQUEST_ID_LENGTH:
        raise BadRequest(f"`id` is longer than {MAX_REQUEST_ID_LENGTH} characters")


JSON: Final = JsonCodec()
MSGPACK: Final = MsgpackCodec()
CODECS: Final[dict[str, Codec]] = {JSON.name: JSON, MSGPACK.name: MSGPACK}


def ws_frame(data: bytes, *, binary: bool) -> bytes:
    """One unmasked, final WebSocket frame (RFC 6455 section 5.2) carrying `data`.

    Server frames are never masked, so the same bytes serve every recipient:
    this is what lets a publication be encoded once for all subscribers.
    """
    first = 0x82 if binary else 0x81
    n = len(data)
    if n < 126:
        return bytes((first, n)) + data
    if n < 65536:
        return bytes((first, 126)) + n.to_bytes(2, "big") + data
    return bytes((first, 127)) + n.to_bytes(8, "big") + data


def ws_control_frame(opcode: int, data: bytes = b"") -> bytes:
    """An unmasked control frame (ping 0x9, pong 0xA, close 0x8); `data` at most 125 bytes."""
    return bytes((0x80 | opcode, len(data))) + data[:125]


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame with `code` and a UTF-8 reason cut (on a character) to fit."""
    cut = reason.encode()[:123].decode("utf-8", "ignore").encode()
    body = code.to_bytes(2, "big") + cut
    return ws_control_frame(0x8, body)
