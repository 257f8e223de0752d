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


def _request_id(value: object) -> str | None:
    """The `id` of a frame that failed to decode, if it has a usable one."""
    if isinstance(value, bytes | str):
        try:
            value = (msgspec.msgpack if isinstance(value, bytes) else msgspec.json).decode(value)
        except (msgspec.DecodeError, ValueError):
            return None
    if isinstance(value, dict):
        rid = value.get("id")
        if isinstance(rid, str) and len(rid) <= MAX_REQUEST_ID_LENGTH:
            return rid
    return None


class Codec:
    """One wire encoding of envelopes; `binary` says which WebSocket frame type carries it."""

    name: str = ""
    binary: bool = False
    empty_object: bytes = b"{}"

    def encode(self, envelope: Envelope) -> bytes:
        raise NotImplementedError

    def decode_inbound(self, data: bytes | str) -> Inbound:
        raise NotImplementedError

    def decode_payload(self, raw: msgspec.Raw | None, into: type[T]) -> T:
        """The payload as the Struct `into`; a missing payload is an empty object."""
        raise NotImplementedError


class JsonCodec(Codec):
    """`hubbub.v1.json`: one JSON object per text frame."""

    name = "hubbub.v1.json"
    binary = False

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._inbound = msgspec.json.Decoder(Inbound)
        self._payloads: dict[type[Any], msgspec.json.Decoder[Any]] = {}

    def encode(self, envelope: Envelope) -> bytes:
        return self._encoder.encode(envelope)

    def encode_any(self, value: Any) -> bytes:
        """Encode any value (used for HTTP bodies)."""
        return self._encoder.encode(value)

    def decode_inbound(self, data: bytes | str) -> Inbound:
        try:
            inbound = self._inbound.decode(data)
        except msgspec.ValidationError as exc:
            raise BadRequest(
                _explain(exc),
                re=_request_id(data if isinstance(data, str) else data.decode("utf-8", "replace")),
            ) from None
        except msgspec.DecodeError:
            raise BadRequest("frame is not valid JSON") from None
        _check_inbound(inbound)
        return inbound

    def decode_payload(self, raw: msgspec.Raw | None, into: type[T]) -> T:
        if raw is None or not raw:
            raw = msgspec.Raw(self.empty_object)
        decoder = self._payloads.get(into)
        if decoder is None:
            decoder = self._payloads[into] = msgspec.json.Decoder(into)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise BadRequest("payload: " + _explain(exc)) from None
        except msgspec.DecodeError:
            raise BadRequest("payload is not valid JSON") from None


class MsgpackCodec(Codec):
    """`hubbub.v1.msgpack`: the same envelopes as MessagePack in binary frames."""

    name = "hubbub.v1.msgpack"
    binary = True
    empty_object = b"\x80"

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._inbound = msgspec.msgpack.Decoder(Inbound)
        self._payloads: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}

    def encode(self, envelope: Envelope) -> bytes:
        return self._encoder.encode(envelope)

    def decode_inbound(self, data: bytes | str) -> Inbound:
        if isinstance(data, str):
            raise BadRequest("text frame on a MessagePack connection")
        try:
            inbound = self._inbound.decode(data)
        except msgspec.ValidationError as exc:
            raise BadRequest(_explain(exc), re=_request_id(data)) from None
        except msgspec.DecodeError:
            raise BadRequest("frame is not valid MessagePack") from None
        _check_inbound(inbound)
        return inbound

    def decode_payload(self, raw: msgspec.Raw | None, into: type[T]) -> T:
        if raw is None or not raw:
            raw = msgspec.Raw(self.empty_object)
        decoder = self._payloads.get(into)
        if decoder is None:
            decoder = self._payloads[into] = msgspec.msgpack.Decoder(into)
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except msgspec.ValidationError as exc:
            raise BadRequest("payload: " + _explain(exc)) from None
        except msgspec.DecodeError:
            raise BadRequest("payload is not valid MessagePack") from None


def _check_inbound(inbound: Inbound) -> None:
    if not inbound.type:
        raise BadRequest("`type` must not be empty", re=_request_id({"id": inbound.id}))
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
