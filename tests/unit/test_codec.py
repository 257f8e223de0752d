"""The envelope codecs and WebSocket framing of `hubbub.protocol.codec`: bytes in, objects out."""

from __future__ import annotations

import json

import msgspec
import pytest

from hubbub.errors import BadRequest
from hubbub.protocol.codec import (
    JSON,
    MSGPACK,
    Envelope,
    close_frame,
    ws_control_frame,
    ws_frame,
)


class SubscribeLike(msgspec.Struct, frozen=True):
    channels: list[str]
    limit: int = 10


# -- JSON inbound -------------------------------------------------------------


def test_a_good_json_frame_decodes_to_type_id_and_raw_payload() -> None:
    inbound = JSON.decode_inbound(b'{"type": "ping", "id": "17", "payload": {"a": 1}}')
    assert inbound.type == "ping"
    assert inbound.id == "17"
    assert msgspec.json.decode(inbound.payload) == {"a": 1}


def test_a_text_frame_given_as_str_decodes_like_bytes() -> None:
    inbound = JSON.decode_inbound('{"type": "ping"}')
    assert inbound.type == "ping" and inbound.id is None


def test_unknown_envelope_fields_are_ignored() -> None:
    inbound = JSON.decode_inbound(b'{"type": "ping", "id": "1", "future": [1, 2], "x": null}')
    assert (inbound.type, inbound.id) == ("ping", "1")


@pytest.mark.parametrize(
    "frame",
    [b"{not json", b"", b'{"type": "ping"', b"\xff\xfe", b'{"type": "ping"} trailing'],
)
def test_invalid_json_is_a_bad_request(frame: bytes) -> None:
    with pytest.raises(BadRequest):
        JSON.decode_inbound(frame)


@pytest.mark.parametrize("frame", [b"[1, 2]", b"42", b'"ping"', b"null", b"true"])
def test_a_json_value_that_is_not_an_object_is_a_bad_request(frame: bytes) -> None:
    with pytest.raises(BadRequest, match="object"):
        JSON.decode_inbound(frame)


def test_a_frame_without_type_is_a_bad_request_naming_type() -> None:
    with pytest.raises(BadRequest, match="type"):
        JSON.decode_inbound(b'{"id": "1", "payload": {}}')


@pytest.mark.parametrize("frame", [b'{"type": 5}', b'{"type": null}', b'{"type": ""}'])
def test_a_type_that_is_not_a_non_empty_string_is_a_bad_request(frame: bytes) -> None:
    with pytest.raises(BadRequest, match="type"):
        JSON.decode_inbound(frame)


def test_an_id_of_64_characters_is_accepted() -> None:
    rid = "i" * 64
    assert JSON.decode_inbound(json.dumps({"type": "ping", "id": rid})).id == rid


def test_an_id_longer_than_64_characters_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="id"):
        JSON.decode_inbound(json.dumps({"type": "ping", "id": "i" * 65}))


def test_an_id_that_is_not_a_string_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="id"):
        JSON.decode_inbound(b'{"type": "ping", "id": 17}')


# -- payloads -------------------------------------------------------------------


def test_a_payload_decodes_into_the_handler_struct() -> None:
    inbound = JSON.decode_inbound(b'{"type": "s", "payload": {"channels": ["a", "b"]}}')
    payload = JSON.decode_payload(inbound.payload, SubscribeLike)
    assert payload == SubscribeLike(channels=["a", "b"], limit=10)


def test_a_missing_payload_is_an_empty_object() -> None:
    inbound = JSON.decode_inbound(b'{"type": "ping"}')

    class Empty(msgspec.Struct):
        pass

    assert JSON.decode_payload(inbound.payload, Empty) == Empty()
    with pytest.raises(BadRequest, match="channels"):
        JSON.decode_payload(inbound.payload, SubscribeLike)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"channels": "x"}', "channels"),
        (b'{"channels": [5]}', "channels"),
        (b'{"channels": [], "limit": "ten"}', "limit"),
    ],
)
def test_a_payload_field_of_the_wrong_type_is_a_bad_request_naming_it(
    payload: bytes, field: str
) -> None:
    with pytest.raises(BadRequest, match=field) as caught:
        JSON.decode_payload(msgspec.Raw(payload), SubscribeLike)
    assert caught.value.message.startswith("payload")


def test_a_payload_that_is_not_an_object_is_a_bad_request() -> None:
    with pytest.raises(BadRequest):
        JSON.decode_payload(msgspec.Raw(b"[1]"), SubscribeLike)


# -- MessagePack ------------------------------------------------------------------


def test_a_good_msgpack_frame_decodes_like_json() -> None:
    frame = msgspec.msgpack.encode({"type": "s", "id": "9", "payload": {"channels": ["a"]}})
    inbound = MSGPACK.decode_inbound(frame)
    assert (inbound.type, inbound.id) == ("s", "9")
    assert MSGPACK.decode_payload(inbound.payload, SubscribeLike).channels == ["a"]


def test_a_msgpack_frame_without_payload_decodes_to_an_empty_object() -> None:
    inbound = MSGPACK.decode_inbound(msgspec.msgpack.encode({"type": "ping"}))

    class Empty(msgspec.Struct):
        pass

    assert MSGPACK.decode_payload(inbound.payload, Empty) == Empty()


def test_a_text_frame_on_a_msgpack_connection_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="text"):
        MSGPACK.decode_inbound('{"type": "ping"}')


@pytest.mark.parametrize("frame", [b"\xc1", b"", b"\x92\x01\x02", b"\x81\xa4type"])
def test_bad_msgpack_is_a_bad_request(frame: bytes) -> None:
    with pytest.raises(BadRequest):
        MSGPACK.decode_inbound(frame)


def test_a_msgpack_id_longer_than_64_characters_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="id"):
        MSGPACK.decode_inbound(msgspec.msgpack.encode({"type": "ping", "id": "i" * 65}))


def test_a_wrong_msgpack_payload_field_is_a_bad_request() -> None:
    with pytest.raises(BadRequest, match="channels"):
        MSGPACK.decode_payload(msgspec.Raw(msgspec.msgpack.encode({"channels": 3})), SubscribeLike)


# -- outbound envelopes -------------------------------------------------------------


def test_an_envelope_leaves_out_every_field_at_its_default() -> None:
    assert json.loads(JSON.encode(Envelope(type="pong"))) == {"type": "pong"}
    body = json.loads(JSON.encode(Envelope(type="pong", re="4", payload={"serverTime": 1})))
    assert body == {"type": "pong", "re": "4", "payload": {"serverTime": 1}}


def test_an_event_envelope_carries_channel_seq_ts_and_only_the_flags_that_are_set() -> None:
    env = Envelope(type="message", channel="news", seq=3, ts=1000, replay=True, payload={})
    assert json.loads(JSON.encode(env)) == {
        "type": "message",
        "channel": "news",
        "seq": 3,
        "ts": 1000,
        "replay": True,
        "payload": {},
    }


def test_an_envelope_encodes_the_same_in_msgpack() -> None:
    env = Envelope(type="message", channel="news", seq=3, conflated=True, payload={"data": 1})
    assert msgspec.msgpack.decode(MSGPACK.encode(env)) == json.loads(JSON.encode(env))


def test_codecs_name_their_subprotocol_and_frame_type() -> None:
    assert (JSON.name, JSON.binary) == ("hubbub.v1.json", False)
    assert (MSGPACK.name, MSGPACK.binary) == ("hubbub.v1.msgpack", True)


# -- WebSocket framing (RFC 6455 section 5.2) -----------------------------------------


@pytest.mark.parametrize(
    ("length", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_a_text_frame_header_uses_the_shortest_length_form(length: int, header: bytes) -> None:
    data = b"x" * length
    frame = ws_frame(data, binary=False)
    assert frame[: len(header)] == header
    assert frame[len(header) :] == data


def test_a_binary_frame_has_the_binary_opcode_and_no_mask() -> None:
    frame = ws_frame(b"\x01\x02", binary=True)
    assert frame == b"\x82\x02\x01\x02"


def test_a_control_frame_carries_its_opcode_and_data() -> None:
    assert ws_control_frame(0x9) == b"\x89\x00"
    assert ws_control_frame(0xA, b"hi") == b"\x8a\x02hi"


def test_a_close_frame_carries_the_code_and_reason() -> None:
    assert close_frame(4001, "token expired") == b"\x88\x0f\x0f\xa1token expired"


def test_a_long_close_reason_is_cut_to_fit_a_control_frame() -> None:
    frame = close_frame(1008, "x" * 300)
    assert frame[1] == 125 and len(frame) == 127
    assert frame[2:4] == (1008).to_bytes(2, "big")


def test_a_long_close_reason_is_cut_on_a_character_boundary() -> None:
    # RFC 6455 section 5.5.1: the reason must be valid UTF-8, or the client fails the connection.
    frame = close_frame(4000, "é" * 100)
    assert frame[1] <= 125
    reason = frame[4:]
    assert reason.decode("utf-8").startswith("é")
