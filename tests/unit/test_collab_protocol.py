"""The y-websocket encoding (apps/collab/protocol.py): bytes in, messages out, no I/O."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.apps.collab import protocol
from hubbub.apps.collab.protocol import AwarenessEntry, ProtocolError, Reader


def test_messages_have_the_layout_the_javascript_provider_sends() -> None:
    # Bytes as y-protocols writes them: type 0 sync, 0 step 1, length 1, state vector 0.
    assert protocol.sync_step1(b"\x00") == b"\x00\x00\x01\x00"
    assert protocol.sync_step2(b"\x00\x00") == b"\x00\x01\x02\x00\x00"
    assert protocol.sync_update(b"\x01") == b"\x00\x02\x01\x01"
    assert protocol.query_awareness() == b"\x03"
    assert protocol.permission_denied("no") == b"\x02\x00\x02no"
    assert protocol.decode_message(b"\x00\x00\x01\x00") == protocol.SyncStep1(b"\x00")
    assert protocol.decode_message(b"\x00\x02\x01\x07") == protocol.SyncUpdate(b"\x07")
    assert protocol.decode_message(b"\x03") == protocol.QueryAwareness()


def test_integers_use_seven_bits_per_byte_low_group_first() -> None:
    out = bytearray()
    protocol.write_var_uint(out, 300)
    assert bytes(out) == b"\xac\x02"
    assert Reader(b"\xac\x02").var_uint() == 300


@given(st.integers(min_value=0, max_value=2**53 - 1))
def test_every_javascript_safe_integer_round_trips(value: int) -> None:
    out = bytearray()
    protocol.write_var_uint(out, value)
    assert Reader(bytes(out)).var_uint() == value


@given(
    st.lists(
        st.builds(
            AwarenessEntry,
            st.integers(0, 2**32 - 1),
            st.integers(0, 2**31),
            st.one_of(
                st.just("null"), st.text().map(lambda t: msgspec.json.encode({"name": t}).decode())
            ),
        )
    )
)
def test_awareness_updates_round_trip(entries: list[AwarenessEntry]) -> None:
    wire = protocol.awareness_message(protocol.encode_awareness(entries))
    message = protocol.decode_message(wire)
    assert isinstance(message, protocol.AwarenessMessage)
    assert protocol.decode_awareness(message.update) == entries


@pytest.mark.parametrize(
    "data",
    [b"", b"\x09", b"\x00\x05\x00", b"\x00\x02\x05ab", b"\x01\x03\x01", b"\xff\xff\xff"],
)
def test_malformed_messages_raise_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        protocol.decode_message(data)


@given(st.binary(max_size=64))
def test_no_bytes_make_the_decoder_fail_other_than_with_a_protocol_error(data: bytes) -> None:
    try:
        message = protocol.decode_message(data)
        if isinstance(message, protocol.AwarenessMessage):
            protocol.decode_awareness(message.update)
    except ProtocolError:
        pass
