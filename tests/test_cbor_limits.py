"""Compact CBOR codec: the limits of what a frame may hold, on both sides.

Each case is one a hostile or careless peer can reach: value sharing (tags 28/29) that turns a
few hundred bytes into an exponential tree, nesting at the limit, message ids OCPP-J refuses,
oversized packed text, bignums OCPP-J cannot write, an explicit null where a date-time goes.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cbor2
import pytest

from ocpp_iot.codecs import DecodeError, cbor, ocppj
from ocpp_iot.codecs._cbor_runtime import Bad, dec_string, enc_string
from ocpp_iot.rpc import Call, CallResult


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the block runs longer than ``seconds``."""

    def expired(signum: int, frame: Any) -> None:
        raise AssertionError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _placeholder_frame(value_cbor: bytes, version: str = "2.0.1") -> bytes:
    """A DataTransfer CALL whose ``data`` item is ``value_cbor`` (raw CBOR bytes)."""
    mark = "zz_placeholder_zz"
    data = cbor.encode(Call("1", "DataTransfer", {"vendorId": "v", "data": mark}), version)
    marked = cbor2.dumps(mark)
    assert data.count(marked) == 1
    return data.replace(marked, value_cbor)


def _ref(i: int) -> bytes:
    return b"\xd8\x1d" + (bytes([i]) if i < 24 else b"\x18" + bytes([i]))


def _shared_dag(levels: int) -> bytes:
    """An array of ``levels`` arrays, each [previous, previous] by reference: 2**levels leaves."""
    parts = [b"\xd8\x1c\x80"] + [b"\xd8\x1c\x82" + _ref(k - 1) * 2 for k in range(1, levels)]
    head = bytes([0x80 + levels]) if levels < 24 else b"\x98" + bytes([levels])
    return head + b"".join(parts)


@pytest.mark.parametrize("levels", [12, 60])
def test_value_sharing_in_a_free_form_value_is_refused_at_once(levels: int) -> None:
    frame = _placeholder_frame(_shared_dag(levels))
    with deadline(5), pytest.raises(DecodeError, match="tag 2[89]"):
        cbor.decode(frame)


@pytest.mark.parametrize("levels", [12, 60])
def test_value_sharing_in_a_map_key_is_refused_before_cbor2_hashes_it(levels: int) -> None:
    # a map key array is decoded as a tuple: hashing a shared tuple tree is exponential
    frame = _placeholder_frame(b"\xa1" + _shared_dag(levels) + b"\x00")
    with deadline(5), pytest.raises(DecodeError, match="tag 2[89]"):
        cbor.decode(frame)


def test_a_self_referencing_array_is_refused() -> None:
    with deadline(5), pytest.raises(DecodeError):
        cbor.decode(_placeholder_frame(b"\xd8\x1c\x81\xd8\x1d\x00"))


STRINGREF_BOMB = (
    b"\xd9\x01\x00"  # tag 256: a string reference namespace
    + b"\x99\x3f\xff"  # an array of 16,383 items
    + b"\x79\x0f\xa0"
    + b"x" * 4000  # the first, a 4,000-character string
    + b"\xd8\x19\x00" * 16382  # then references to it: 4,000 characters for 3 bytes
)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("string references, 49 KB for 65 MB of text", STRINGREF_BOMB),
        ("a string reference alone", b"\xd8\x19\x00"),
        ("a decimal fraction of a 60 KB mantissa", b"\xc4\x82\x21\x59\xea\x60" + b"\x07" * 60000),
        ("a rational", b"\xd8\x1e\x82\x01\x03"),
        ("a regular expression", b"\xd8\x23\x63a.b"),
        ("a MIME message", b"\xd8\x24\x62hi"),
        ("an epoch date-time", b"\xc1\x1a\x65\x00\x00\x00"),
        ("a set", b"\xd9\x01\x02\x82\x01\x02"),
        ("self-described CBOR", b"\xd9\xd9\xf7\x01"),
        ("a tag no one registered", b"\xda\x00\x01\x00\x00\x01"),
        ("a tag inside a map key", b"\xa1\x81\xd8\x1e\x82\x01\x03\x00"),
    ],
)
def test_every_tag_but_bignums_is_refused_at_once(name: str, value: bytes) -> None:
    with deadline(5), pytest.raises(DecodeError, match=r"tag \d+ \(only bignums"):
        cbor.decode(_placeholder_frame(value))


def test_bignums_are_the_tags_allowed() -> None:
    frame = Call("1", "DataTransfer", {"vendorId": "v", "data": [2**64, -(2**64) - 1, 2**200]})
    data = cbor.encode(frame, "2.0.1")
    assert b"\xc2" in data and b"\xc3" in data  # written as tags 2 and 3
    assert cbor.decode(data) == ("2.0.1", frame)


def test_the_bytes_of_a_tag_29_inside_a_string_are_only_bytes() -> None:
    # the pre-check looks for d8 1d; inside a string it is data, and the frame decodes
    payload = {"vendorId": "v", "messageId": "D81DD81D"}  # a hex token: bytes on the wire
    frame = cbor.encode(Call("1", "DataTransfer", payload), "2.0.1")
    assert b"\xd8\x1d" in frame
    assert cbor.decode(frame) == ("2.0.1", Call("1", "DataTransfer", payload))


def _nested(depth: int) -> Any:
    v: Any = 0
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


@pytest.mark.parametrize("version", ["2.0.1", "2.1"])  # 1.6 DataTransfer.data is a string
def test_a_free_form_value_at_the_nesting_limit_round_trips(version: str) -> None:
    frame = Call("1", "DataTransfer", {"vendorId": "v", "data": _nested(64)})
    assert cbor.decode(cbor.encode(frame, version)) == (version, frame)


def test_a_free_form_value_past_the_nesting_limit_is_refused_both_ways() -> None:
    frame = Call("1", "DataTransfer", {"vendorId": "v", "data": _nested(65)})
    with pytest.raises(ValueError, match="deeply"):
        cbor.encode(frame, "2.0.1")
    with pytest.raises(DecodeError):
        cbor.decode(_placeholder_frame(cbor2.dumps(_nested(65))))


@pytest.mark.parametrize("length", [0, 37, 200])
def test_a_message_id_ocppj_refuses_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="1 to 36 characters"):
        cbor.encode(Call("a" * length, "Heartbeat", {}), "2.0.1")  # nothing the peer refuses
    data = cbor.encode(Call("a", "Heartbeat", {}), "2.0.1")
    data = data[:1] + cbor2.dumps("a" * length) + data[1 + len(cbor2.dumps("a")) :]
    with pytest.raises(DecodeError) as caught:
        cbor.decode(data)
    assert caught.value.error_code == "RpcFrameworkError"
    assert caught.value.message_id is None
    # the same rule as the OCPP-J parser
    with pytest.raises(ocppj.DecodeError):
        ocppj.decode(f'[2,"{"a" * length}","Heartbeat",{{}}]', "2.0.1")


def test_packed_text_longer_than_the_encoder_writes_is_refused() -> None:
    longest = "Z" * 120
    out: list[Any] = []
    enc_string(longest, out)
    assert out[0][0] == 3 and len(out[0]) == 1 + 91  # kind byte, 1 + 6 * 120 bits
    assert dec_string(out[0]) == longest
    over = b"\x03" + (1 << 6 * 121).to_bytes(92, "big")
    with pytest.raises(Bad):
        dec_string(over)
    with deadline(5), pytest.raises(Bad):
        dec_string(b"\x03\x01" + bytes(60000))


def test_a_bignum_in_a_number_field_is_bounded_too() -> None:
    # a "number" field writes an int as [int]: the same bound applies there, both ways
    huge = {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 10**4300}]}
    for action, body in (
        ("MeterValues", {"evseId": 1, "meterValue": [huge]}),
        ("TransactionEvent", {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z",
                              "triggerReason": "Authorized", "seqNo": 10**4300,
                              "transactionInfo": {"transactionId": "t1"}}),
    ):  # fmt: skip
        with pytest.raises(ValueError):
            cbor.encode(Call("1", action, body), "2.0.1")
    payload = {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": 12345}]}
    data = cbor.encode(Call("1", "MeterValues", {"evseId": 1, "meterValue": [payload]}), "2.0.1")
    small = cbor2.dumps([12345])
    assert data.count(small) == 1
    with pytest.raises(DecodeError):
        cbor.decode(data.replace(small, cbor2.dumps([10**5000])))


def test_an_integer_ocppj_can_write_round_trips_and_a_larger_one_is_refused() -> None:
    big = 10**4300 - 1  # 4,300 digits: the most Python's JSON writer takes
    ok = Call("1", "DataTransfer", {"vendorId": "v", "data": [big, -big]})
    assert cbor.decode(cbor.encode(ok, "2.0.1")) == ("2.0.1", ok)
    ocppj.encode(ok)  # and OCPP-J can carry it
    with pytest.raises(ValueError):
        cbor.encode(Call("1", "DataTransfer", {"vendorId": "v", "data": 10**4300}), "2.0.1")
    with pytest.raises(DecodeError):
        cbor.decode(_placeholder_frame(cbor2.dumps(10**4300)))


def test_a_bignum_in_a_schema_integer_field_is_refused() -> None:
    # 2.0.1 Heartbeat has no integer; a 2.0.1 TransactionEvent seqNo is one
    payload = {
        "eventType": "Started",
        "timestamp": "2026-01-01T00:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 123456789,
        "transactionInfo": {"transactionId": "t1"},
    }
    data = cbor.encode(Call("1", "TransactionEvent", payload), "2.0.1")
    small = cbor2.dumps(123456789)
    assert data.count(small) == 1
    with pytest.raises(DecodeError):
        cbor.decode(data.replace(small, cbor2.dumps(10**5000)))


def test_an_explicit_null_date_time_below_the_root_does_not_break_the_frame() -> None:
    # used to be written as "the same timestamp as the previous one", which decode refused
    for frame in (
        CallResult(
            "1", {"idTokenInfo": {"status": "Accepted", "cacheExpiryDateTime": None}}, "Authorize"
        ),
        Call("1", "Authorize", {"idToken": {"idToken": "x", "type": "ISO14443"}, "x": None}),
    ):
        assert cbor.decode(cbor.encode(frame, "2.0.1")) == ("2.0.1", frame)
