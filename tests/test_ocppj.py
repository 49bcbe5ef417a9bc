"""OCPP-J codec: round trips, the frame rules of part 4, and hostile input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_iot.codecs import DecodeError, ocppj
from ocpp_iot.rpc import Call, CallError, CallResult, CallResultError, Send

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(st.text(max_size=10), json_values, max_size=5)
ids = st.text(min_size=1, max_size=36)


@given(ids, st.text(min_size=1, max_size=40), payloads)
def test_call_round_trip(message_id: str, action: str, payload: dict) -> None:
    frame = Call(message_id, action, payload)
    data = ocppj.encode(frame)
    assert json.loads(data) == [2, message_id, action, payload]
    assert ocppj.decode(data, "2.0.1") == frame


@given(ids, payloads)
def test_call_result_round_trip(message_id: str, payload: dict) -> None:
    frame = CallResult(message_id, payload)
    assert ocppj.decode(ocppj.encode(frame), "1.6") == frame


@given(ids, st.text(), st.text(), payloads)
def test_call_error_round_trip(message_id: str, code: str, desc: str, details: dict) -> None:
    frame = CallError(message_id, code, desc, details)
    assert json.loads(ocppj.encode(frame)) == [4, message_id, code, desc, details]
    assert ocppj.decode(ocppj.encode(frame), "2.0.1") == frame


def test_types_5_and_6_only_in_21() -> None:
    send = Send("9", "NotifyPeriodicEventStream", {"id": 1, "pending": 0, "basetime": "x"})
    rerr = CallResultError("9", "FormatViolation", "", {})
    for frame in (send, rerr):
        data = ocppj.encode(frame)
        assert ocppj.decode(data, "2.1") == frame
        with pytest.raises(DecodeError) as info:
            ocppj.decode(data, "2.0.1")
        assert info.value.error_code == "MessageTypeNotSupported"
        assert info.value.message_id == "9"


def test_floats_and_ints_keep_their_type() -> None:
    frame = ocppj.decode(b'[3,"1",{"a":1,"b":1.0,"c":2.50}]', "2.0.1")
    assert isinstance(frame, CallResult)
    assert type(frame.payload["a"]) is int and type(frame.payload["b"]) is float
    assert ocppj.encode(frame) == b'[3,"1",{"a":1,"b":1.0,"c":2.5}]'


def test_non_ascii_is_utf8_not_escaped() -> None:
    data = ocppj.encode(Call("1", "DataTransfer", {"vendorId": "Ünïcode ⚡"}))
    assert "⚡".encode() in data


@pytest.mark.parametrize(
    ("data", "message_id", "code"),
    [
        (b"", None, "RpcFrameworkError"),
        (b"not json", None, "RpcFrameworkError"),
        (b"{}", None, "RpcFrameworkError"),
        (b"[]", None, "RpcFrameworkError"),
        (b'["2","1","Heartbeat",{}]', None, "RpcFrameworkError"),
        (b'[2,1,"Heartbeat",{}]', None, "RpcFrameworkError"),
        (b'[2,"","Heartbeat",{}]', None, "RpcFrameworkError"),
        (b'[2,"' + b"x" * 37 + b'","Heartbeat",{}]', None, "RpcFrameworkError"),
        (b'[7,"42",{}]', "42", "MessageTypeNotSupported"),
        (b'[2,"42","Heartbeat"]', "42", "RpcFrameworkError"),
        (b'[2,"42",5,{}]', "42", "RpcFrameworkError"),
        (b'[2,"42","Heartbeat",[]]', "42", "FormatViolation"),
        (b'[2,"42","Heartbeat",null]', "42", "FormatViolation"),
        (b'[3,"42",{},1]', "42", "RpcFrameworkError"),
        (b'[4,"42","x","y"]', "42", "RpcFrameworkError"),
        (b'[4,"42","x",1,{}]', "42", "RpcFrameworkError"),
        (b"\xff\xfe[", None, "RpcFrameworkError"),
    ],
)
def test_malformed_frames(data: bytes, message_id: str | None, code: str) -> None:
    with pytest.raises(DecodeError) as info:
        ocppj.decode(data, "2.0.1")
    assert info.value.message_id == message_id
    assert info.value.error_code == code
    assert info.value.version == "2.0.1"


@pytest.mark.parametrize(
    ("data", "message_id", "code"),
    [
        (b"not json", None, "GenericError"),  # 1.6 has no RpcFrameworkError
        (b'[2,"' + b"x" * 37 + b'","Heartbeat",{}]', None, "GenericError"),
        (b'[5,"42","x","y",{}]', "42", "GenericError"),  # nor MessageTypeNotSupported
        (b'[2,"42","Heartbeat",[]]', "42", "FormationViolation"),
    ],
)
def test_16_error_codes_are_spelled_for_16(data: bytes, message_id: str | None, code: str) -> None:
    # OCPP-J 1.6 section 4.2.3 (Table 7) is the list of codes a 1.6 peer understands.
    with pytest.raises(DecodeError) as info:
        ocppj.decode(data, "1.6")
    assert (info.value.message_id, info.value.error_code, info.value.version) == (
        message_id,
        code,
        "1.6",
    )


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_message_id_limit_is_36_in_every_version(version: str) -> None:
    # OCPP-J 1.6 4.1.4 Table 3, 2.0.1 / 2.1 4.1.4 Table 4: at most 36 characters.
    ok = "u" * ocppj.MAX_MESSAGE_ID_LENGTH
    assert ocppj.MAX_MESSAGE_ID_LENGTH == 36
    assert ocppj.decode(f'[2,"{ok}","Heartbeat",{{}}]', version) == Call(ok, "Heartbeat", {})
    with pytest.raises(DecodeError) as info:
        ocppj.decode(f'[2,"{ok}x","Heartbeat",{{}}]', version)
    assert info.value.message_id is None and info.value.version == version


def test_decode_does_not_judge_the_action() -> None:
    # Whether an action exists is the model's question (parse_frame_json, dispatch: both
    # answer NotImplemented); the codec carries any action name.
    assert ocppj.decode(b'[2,"1","NoSuchAction",{}]', "2.0.1") == Call("1", "NoSuchAction", {})


def test_oversized_and_deep_input_is_refused() -> None:
    with pytest.raises(DecodeError):
        ocppj.decode(b"[" * (ocppj.MAX_FRAME_BYTES + 1), "2.0.1")
    with pytest.raises(DecodeError):
        ocppj.decode(b'[2,"1","A",' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]", "2.0.1")


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    try:
        frame = ocppj.decode(data, "2.1")
    except DecodeError:
        return
    assert ocppj.decode(ocppj.encode(frame), "2.1") == frame


def test_unknown_version_is_a_caller_error() -> None:
    with pytest.raises(ValueError, match="unknown OCPP version"):
        ocppj.decode(b"[]", "3.0")
