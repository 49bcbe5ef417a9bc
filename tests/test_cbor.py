"""Compact CBOR codec: corpus round trips, value forms, fallbacks, header, table drift."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest

from ocpp_iot.codecs import DecodeError, cbor, ocppj
from ocpp_iot.rpc import Call, CallError, CallResult, CallResultError, Frame, Send

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sessions-v201.jsonl"


def same(a: Any, b: Any) -> bool:
    """Strict JSON-value equality: same types (int stays int, float stays float), same keys."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def assert_round_trip(frame: Frame, version: str) -> bytes:
    data = cbor.encode(frame, version)
    got_version, got = cbor.decode(data)
    assert got_version == version
    assert type(got) is type(frame)
    assert same(json.loads(ocppj.encode(got)), json.loads(ocppj.encode(frame)))
    if isinstance(frame, CallResult):
        assert got.action == frame.action
    return data


def items(data: bytes) -> list[Any]:
    """The CBOR items after the header (and the raw UUID message id, if any)."""
    start = 17 if data[0] & 16 else 1
    return cbor2.loads(b"\x9f" + data[start:] + b"\xff")  # type: ignore[no-any-return]


def schema_mode(data: bytes) -> bool:
    """True when the payload went through the schema tables (not the plain-JSON fallback)."""
    it = items(data)
    act = it[0] if data[0] & 16 else it[1]
    return type(act) is int and act >= 0


def load_corpus(renumber: bool) -> list[tuple[int, Frame]]:
    out: list[tuple[int, Frame]] = []
    action_of: dict[tuple[int, str], str] = {}
    ids: dict[tuple[int, str], str] = {}
    count: dict[int, int] = {}
    for line in CORPUS.read_text().splitlines():
        rec = json.loads(line)
        s, f = rec["session"], list(rec["frame"])
        if renumber:
            if f[0] == 2:
                count[s] = count.get(s, 0) + 1
                ids[(s, f[1])] = str(count[s])
            f[1] = ids[(s, f[1])]
        if f[0] == 2:
            action_of[(s, f[1])] = f[2]
            out.append((s, Call(f[1], f[2], f[3])))
        elif f[0] == 3:
            out.append((s, CallResult(f[1], f[2], action_of[(s, f[1])])))
        else:
            out.append((s, CallError(*f[1:])))
    return out


@pytest.mark.skipif(not CORPUS.exists(), reason="corpus not available")
@pytest.mark.parametrize("renumber", [False, True], ids=["recorded", "renumbered"])
def test_whole_corpus_round_trips_exactly(renumber: bool) -> None:
    frames = load_corpus(renumber)
    assert len(frames) > 9000
    total = 0
    for _, frame in frames:
        data = assert_round_trip(frame, "2.0.1")
        assert schema_mode(data), frame
        total += len(data)
    assert total / len(frames) < 45  # compact: OCPP-J needs about 265 B a frame here


def test_table_generator_check_reports_no_drift() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_cbor_tables.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_generated_tables_say_they_are_generated() -> None:
    for short in ("v16", "v201", "v21"):
        for kind in ("tables", "codec"):
            head = (ROOT / "src/ocpp_iot/codecs" / f"_cbor_{kind}_{short}.py").read_text()[:400]
            assert "GENERATED" in head and "tools/gen_cbor_tables.py" in head and "ocpp" in head


def test_generated_codec_is_the_one_of_its_tables() -> None:
    # the codec modules carry the DIGEST of the tables they were generated from (the --check
    # above regenerates both from the schemas; this catches a hand-edited table without it)
    for short in ("v16", "v201", "v21"):
        tables = importlib.import_module(f"ocpp_iot.codecs._cbor_tables_{short}")
        codec = importlib.import_module(f"ocpp_iot.codecs._cbor_codec_{short}")
        assert (codec.DIGEST, codec.VERSION, codec.FORMAT) == (
            tables.DIGEST,
            tables.VERSION,
            tables.FORMAT,
        )
        assert list(codec.ACTIONS) == [a[0] for a in tables.ACTIONS]
        assert len(codec.ENC_REQ) == len(codec.DEC_RESP) == len(tables.ACTIONS)


def test_a_version_loads_only_its_own_codec() -> None:
    # a 2.0.1 node must not pay for the 1.6 and 2.1 encoders and decoders (issue 16)
    code = (
        "import json, sys; from ocpp_iot.codecs import cbor; from ocpp_iot.rpc import Call;"
        "cbor.decode(cbor.encode(Call('1', 'Heartbeat', {}), '2.0.1'));"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('ocpp_iot.codecs._'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert loaded == ["ocpp_iot.codecs._cbor_codec_v201", "ocpp_iot.codecs._cbor_runtime"]


# ---- header ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "version", "mt"),
    [
        (Call("1", "Heartbeat", {}), "1.6", 2),
        (CallResult("1", {"currentTime": "2024-01-01T00:00:00Z"}, "Heartbeat"), "2.0.1", 3),
        (CallError("1", "GenericError"), "2.0.1", 4),
        (CallResultError("1", "GenericError"), "2.1", 5),
        (
            Send(
                "1",
                "NotifyPeriodicEventStream",
                {"id": 1, "pending": 0, "basetime": "2024-01-01T00:00:00Z", "data": []},
            ),
            "2.1",
            6,
        ),  # noqa: E501
    ],
)
def test_first_byte_carries_format_version_ocpp_version_and_type(
    frame: Frame, version: str, mt: int
) -> None:
    data = assert_round_trip(frame, version)
    assert data[0] >> 5 == cbor.FORMAT_VERSION
    assert data[0] & 15 == ("1.6", "2.0.1", "2.1").index(version) * 5 + mt - 2
    assert not data[0] & 16  # "1" is not a UUID


def test_uuid_message_id_travels_as_16_raw_bytes() -> None:
    mid = "ae97ba94-d0ed-482f-8f6d-05584ef8aa38"
    data = assert_round_trip(Call(mid, "Heartbeat", {}), "2.0.1")
    assert data[0] & 16 and data[1:17] == bytes.fromhex(mid.replace("-", ""))
    assert len(data) <= 19


def test_other_format_version_is_refused() -> None:
    data = bytearray(cbor.encode(Call("1", "Heartbeat", {}), "2.0.1"))
    for fmt in (0, 2, 7):
        data[0] = fmt << 5 | data[0] & 31
        with pytest.raises(DecodeError, match="format"):
            cbor.decode(bytes(data))


def test_types_of_21_are_refused_in_older_versions() -> None:
    with pytest.raises(ValueError):
        cbor.encode(Send("1", "Heartbeat", {}), "2.0.1")
    data = bytearray(cbor.encode(CallError("1", "GenericError"), "2.0.1"))
    data[0] = data[0] & ~15 | 8  # 2.0.1 with message type 5
    with pytest.raises(DecodeError):
        cbor.decode(bytes(data))


def test_call_result_needs_its_action() -> None:
    with pytest.raises(ValueError, match="action"):
        cbor.encode(CallResult("1", {}), "2.0.1")


def test_unknown_version_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cbor.encode(Call("1", "Heartbeat", {}), "3.0")


# ---- message ids -------------------------------------------------------------------------------

IDS = [
    "0",
    "1",
    "42",
    "007",
    "18446744073709551615",
    "99999999999999999999",
    "ae97ba94-d0ed-482f-8f6d-05584ef8aa38",
    "AE97BA94-D0ED-482F-8F6D-05584EF8AA38",
    "Ae97ba94-d0ed-482f-8f6d-05584ef8aa38",
    "ae97ba94d0ed482f8f6d05584ef8aa38",
    "ABCDEF0123456789ABCDEF012345AB",  # 30 hex digits: 15 bytes + kind would look like a UUID
    "HeartbeatInterval19",  # 19 packed characters: 16-byte bstr again
    "-1",
    "x" * 36,  # the longest OCPP-J allows (test_cbor_limits: an empty or longer one is refused)
    "\u0661\u0662\u0663",  # Arabic-Indic digits: not decimal on the wire
    "a b",
    "ünïcödé-id",
]


@pytest.mark.parametrize("mid", IDS)
def test_message_ids_of_every_shape_round_trip(mid: str) -> None:
    for version in ("1.6", "2.0.1", "2.1"):
        assert_round_trip(Call(mid, "Heartbeat", {}), version)
        assert_round_trip(
            CallResult(mid, {"currentTime": "2024-02-29T23:59:59.5+05:30"}, "Heartbeat"), version
        )  # noqa: E501
        assert_round_trip(CallError(mid, "InternalError", "boom", {"x": [1, 2.5]}), version)


# ---- value forms -------------------------------------------------------------------------------


def sampled(value: Any, **extra: Any) -> dict[str, Any]:
    return {
        "evseId": 1,
        "meterValue": [
            {"timestamp": "2026-06-05T12:41:03.074Z", "sampledValue": [{"value": value, **extra}]}
        ],  # noqa: E501
    }


@pytest.mark.parametrize(
    "value",
    [
        230.1, 226.0, 28.95, 0.001, 4070851.2, 0.0, -0.0, -0.5, -230.1, 1e16, 1.5e-07, 5e-324,
        1.7976931348623157e308, 123456789.123, 0.1234, 9007199254740993.0, 3, -7, 0, 10**30,
        -(10**25), 65535.0, 65536.0, 16777215.75, 4294967296.5, 2.0**60,
    ],
)  # fmt: skip
def test_decimal_readings_keep_type_and_exact_repr(value: Any) -> None:
    data = assert_round_trip(Call("1", "MeterValues", sampled(value)), "2.0.1")
    assert schema_mode(data)
    _, got = cbor.decode(data)
    back = got.payload["meterValue"][0]["sampledValue"][0]["value"]
    assert type(back) is type(value) and repr(back) == repr(value)


def test_decimal_reading_is_smaller_than_a_float64() -> None:
    small = cbor.encode(Call("1", "MeterValues", sampled(230.1)), "2.0.1")
    big = cbor.encode(Call("1", "MeterValues", sampled(230.123456)), "2.0.1")
    assert len(big) - len(small) >= 5


@pytest.mark.parametrize(
    "ts",
    [
        "2026-06-05T12:41:03.074Z",
        "2026-06-05T12:41:03Z",
        "2026-06-05T12:41:03.1Z",
        "2026-06-05T12:41:03.123456789Z",
        "2026-06-05T12:41:03.000+02:00",
        "2026-06-05T12:41:03-09:30",
        "2026-06-05T12:41:03+00:00",
        "2026-06-05T12:41:03-00:00",
        "2026-06-05t12:41:03z",
        "2026-06-05 12:41:03Z",
        "2024-02-29T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00.000Z",
        "2019-12-31T23:59:59.999Z",
        "2054-12-31T23:59:59.999Z",
        "9999-12-31T23:59:59.999999999+14:00",
        "2026-06-05T24:00:00Z",
        "2026-06-05T23:59:60Z",
        "not a time",
        "",
    ],
)
def test_timestamps_of_every_shape_round_trip(ts: str) -> None:
    for version in ("1.6", "2.0.1", "2.1"):
        data = assert_round_trip(CallResult("9", {"currentTime": ts}, "Heartbeat"), version)
        assert schema_mode(data)


def test_rfc3339_timestamp_with_milliseconds_takes_six_bytes() -> None:
    a = cbor.encode(
        CallResult("9", {"currentTime": "2026-06-05T12:41:03.074Z"}, "Heartbeat"), "2.0.1"
    )  # noqa: E501
    assert len(a) <= 10 and len(a) < len('"2026-06-05T12:41:03.074Z"') - 10


def test_repeated_and_nearby_timestamps_in_one_frame_are_cheap() -> None:
    one = {"timestamp": "2026-06-05T12:41:03.074Z", "sampledValue": [{"value": 1.0}]}
    base = {"evseId": 1, "meterValue": [one]}
    later = dict(one, timestamp="2026-06-05T12:56:03.074Z")
    five = {"evseId": 1, "meterValue": [one, one, later, later]}
    a = assert_round_trip(Call("1", "MeterValues", base), "2.0.1")
    b = assert_round_trip(Call("1", "MeterValues", five), "2.0.1")
    # a repeated meter value costs its head, count, value head and value; a nearby one 5 more
    assert len(b) - len(a) <= 3 * 4 + 5


def test_repeat_of_a_timestamp_after_an_explicit_one_in_the_same_object() -> None:
    # the second profile's validTo repeats the frame's previous timestamp, its validFrom does not
    sched = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }  # noqa: E501
    p1 = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "validFrom": "2026-01-01T00:00:00Z",
        "validTo": "2026-02-01T00:00:00Z",
        "chargingSchedule": [sched],
    }
    p2 = dict(p1, id=2, validFrom="2026-01-15T00:00:00Z")
    p3 = dict(p1, id=3, validFrom="2026-02-01T00:00:00Z", validTo="2026-03-01T00:00:00Z")
    payload = {
        "requestId": 1,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [p1, p2, p3],
    }  # noqa: E501
    assert schema_mode(assert_round_trip(Call("1", "ReportChargingProfiles", payload), "2.0.1"))
    assert schema_mode(assert_round_trip(Call("1", "ReportChargingProfiles", payload), "2.1"))


def test_sampled_value_shapes_are_small() -> None:
    sv = [
        {"value": 230.1, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
        {
            "value": 16.25,
            "measurand": "Current.Import",
            "phase": "L2",
            "unitOfMeasure": {"unit": "A"},
        },  # noqa: E501
        {
            "value": 12.5,
            "measurand": "Power.Active.Import",
            "unitOfMeasure": {"unit": "kW", "multiplier": 3},
        },  # noqa: E501
        {
            "value": 57.0,
            "measurand": "SoC",
            "unitOfMeasure": {"unit": "Percent"},
            "context": "Sample.Periodic",
        },  # noqa: E501
        {"value": 1.0, "measurand": "Voltage", "unitOfMeasure": {"unit": "A"}},
        {"value": 1.0, "measurand": "Frequency", "unitOfMeasure": {"unit": "Hz"}},
        {"value": 1.0, "unitOfMeasure": {"unit": "Wh"}},
        {"value": 1.0, "unitOfMeasure": {}},
        {"value": 1.0, "unitOfMeasure": {"unit": "Wh", "customData": {"vendorId": "x", "k": [1]}}},
        {
            "value": 1.0,
            "location": "Outlet",
            "signedMeterValue": {
                "signedMeterData": "AB==",
                "signingMethod": "m",
                "encodingMethod": "e",
                "publicKey": "k",
            },
        },  # noqa: E501
    ]
    payload = {
        "evseId": 1,
        "meterValue": [{"timestamp": "2026-06-05T12:41:03.074Z", "sampledValue": sv}],
    }  # noqa: E501
    data = assert_round_trip(Call("1", "MeterValues", payload), "2.0.1")
    assert schema_mode(data)
    first_two = {
        "evseId": 1,
        "meterValue": [{"timestamp": "2026-06-05T12:41:03.074Z", "sampledValue": sv[:2]}],
    }  # noqa: E501
    # header, id, action, head, evseId, count, head, timestamp, count, 2 x (head + value)
    assert len(cbor.encode(Call("1", "MeterValues", first_two), "2.0.1")) <= 7 + 6 + 1 + 2 * 5


def test_1_6_sampled_values_and_integer_transaction_ids() -> None:
    payload = {
        "connectorId": 1,
        "transactionId": 1234567890123,
        "meterValue": [
            {
                "timestamp": "2026-06-05T12:41:03Z",
                "sampledValue": [
                    {"value": "230.1", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
                    {"value": "12", "unit": "kWh", "context": "Sample.Clock", "format": "Raw"},
                    {
                        "value": "x",
                        "location": "Body",
                        "unit": "Celsius",
                        "measurand": "Temperature",
                    },  # noqa: E501
                ],
            }
        ],
    }
    assert schema_mode(assert_round_trip(Call("1", "MeterValues", payload), "1.6"))


@pytest.mark.parametrize(
    "token",
    ["AEEB975729FAE9", "aeeb975729fae9", "04A2B3C4", "12345678", "0012", "ABC", "a-b_c", "X" * 36],
)  # noqa: E501
def test_id_tokens_round_trip(token: str) -> None:
    payload = {"idToken": {"idToken": token, "type": "ISO14443"}}
    assert schema_mode(assert_round_trip(Call("1", "Authorize", payload), "2.0.1"))


def test_hex_token_is_packed() -> None:
    a = cbor.encode(
        Call("1", "Authorize", {"idToken": {"idToken": "AEEB975729FAE9", "type": "ISO14443"}}),
        "2.0.1",
    )  # noqa: E501
    # header, id, action, head, idToken head, 1 + kind + 7 bytes
    assert len(a) <= 5 + 9


def test_integer_field_keeps_float_and_big_values() -> None:
    for seq in (0, 23, 24, 255, 65535, 65536, 2**24, 2**32, 2**56, 2**64, 2**70, 1.0):
        p = {
            "eventType": "Updated",
            "timestamp": "2026-06-05T12:41:03.074Z",
            "triggerReason": "Authorized",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "abc"},
        }
        assert schema_mode(assert_round_trip(Call("1", "TransactionEvent", p), "2.0.1"))


def test_custom_data_with_vendor_fields_round_trips() -> None:
    p = {
        "customData": {"vendorId": "com.example", "nested": {"a": [1, 2.0, None, True, "x"]}},
        "reason": "PowerUp",
        "chargingStation": {"model": "M", "vendorName": "V", "customData": {"vendorId": "v"}},
    }
    assert schema_mode(assert_round_trip(Call("1", "BootNotification", p), "2.0.1"))


def test_free_form_data_transfer_round_trips() -> None:
    for data in (None, 1, 1.5, "s", [1, {"a": None}], {"k": {"l": [True, False]}}):
        p = {"vendorId": "v", "data": data}
        assert schema_mode(assert_round_trip(Call("1", "DataTransfer", p), "2.0.1"))


# ---- fallbacks ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        Call("1", "NoSuchAction", {"a": 1}),
        Call("1", "Heartbeat", {"unexpected": True}),
        Call(
            "1",
            "BootNotification",
            {"reason": "NotAReason", "chargingStation": {"model": "m", "vendorName": "v"}},
        ),  # noqa: E501
        Call(
            "1",
            "StatusNotification",
            {"timestamp": 5, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ),  # noqa: E501
        Call("1", "TransactionEvent", {}),
        CallResult("1", {"currentTime": None}, "Heartbeat"),
        CallResult("1", {"x": [1.5, -0.0]}, "NoSuchAction"),
    ],
)
def test_payloads_outside_the_schema_still_round_trip_exactly(frame: Frame) -> None:
    data = assert_round_trip(frame, "2.0.1")
    assert not schema_mode(data)


@pytest.mark.parametrize("payload", [{"a": {1, 2}}, {"a": b"x"}, {1: "int key"}, ["not", "a dict"]])  # noqa: E501
def test_non_json_payload_is_a_value_error(payload: Any) -> None:
    with pytest.raises(ValueError):
        cbor.encode(Call("1", "Heartbeat", payload), "2.0.1")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_not_json(bad: float) -> None:
    with pytest.raises(ValueError):
        cbor.encode(Call("1", "MeterValues", sampled(bad)), "2.0.1")
    with pytest.raises(ValueError):
        cbor.encode(CallError("1", "GenericError", "", {"x": bad}), "2.0.1")
    good = cbor.encode(Call("1", "MeterValues", sampled(1.0e300)), "2.0.1")
    hostile = good.replace(cbor2.dumps(1.0e300), cbor2.dumps(bad))
    assert hostile != good
    with pytest.raises(DecodeError):
        cbor.decode(hostile)


def test_lone_surrogate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cbor.encode(Call("1", "DataTransfer", {"vendorId": "\ud800"}), "2.0.1")


def test_non_string_message_id_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cbor.encode(Call(1, "Heartbeat", {}), "2.0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "frame",
    [
        CallError("5", "NotImplemented"),
        CallError("5", "NotImplemented", "no such action"),
        CallError("5", "FormationViolation", "", {"field": "x"}),
        CallError("5", "VendorSpecificCode", "desc", {"a": [1, 2.5, None]}),
        CallError("-1", "RpcFrameworkError", "unreadable id"),
    ],
)
def test_call_errors_round_trip(frame: CallError) -> None:
    for version in ("1.6", "2.0.1", "2.1"):
        assert_round_trip(frame, version)
    assert_round_trip(
        CallResultError(
            frame.message_id, frame.error_code, frame.error_description, frame.error_details
        ),
        "2.1",
    )  # noqa: E501


def test_send_round_trips() -> None:
    p = {
        "id": 7,
        "pending": 0,
        "basetime": "2026-06-05T12:41:03.074Z",
        "data": [{"t": 0.5, "v": "230.1"}],
    }  # noqa: E501
    data = assert_round_trip(Send("ab", "NotifyPeriodicEventStream", p), "2.1")
    assert schema_mode(data)


def test_send_only_message_as_call_and_its_result_round_trip() -> None:
    p = {"id": 7, "pending": 0, "basetime": "2026-06-05T12:41:03Z", "data": []}
    assert schema_mode(assert_round_trip(Call("1", "NotifyPeriodicEventStream", p), "2.1"))
    # no response schema: a CALLRESULT for it still travels, as plain CBOR
    assert not schema_mode(
        assert_round_trip(CallResult("1", {"a": 1}, "NotifyPeriodicEventStream"), "2.1")
    )  # noqa: E501


def test_not_a_frame_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cbor.encode([2, "1", "Heartbeat", {}], "2.0.1")  # type: ignore[arg-type]


def test_decoded_frames_are_json_mirrorable() -> None:
    frame = Call(
        "1",
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
    )  # noqa: E501
    version, got = cbor.decode(cbor.encode(frame, "2.0.1"))
    assert json.loads(ocppj.encode(got)) == json.loads(ocppj.encode(frame))
    assert ocppj.decode(ocppj.encode(got), version) == got


def test_empty_call_result_is_header_id_and_action_only() -> None:
    data = assert_round_trip(
        CallResult("ae97ba94-d0ed-482f-8f6d-05584ef8aa38", {}, "StatusNotification"), "2.0.1"
    )  # noqa: E501
    assert len(data) == 18


# ---- decoder refusals --------------------------------------------------------------------------


MALFORMED: list[Any] = [
    b"",
    b"\x2a",
    "text",
    None,
    bytes([0x2A]) + b"\x01",  # id only
    bytes([0x2A]) + b"\x01\x18\xff",  # unknown action code 255
    bytes([0x2A]) + b"\x01\x00\x00\x00",  # trailing items
    bytes([0x2A]) + b"\x01\x02\x1b\xff\xff\xff\xff\xff\xff\xff\xff",  # head out of range
    bytes([0x2A]) + b"\x01\x00\x00\xff\x01",  # stray break
    bytes([0x2A]) + b"\x01\x00" + b"\x81" * 5000 + b"\x00",  # deep nesting
    bytes([0x2A]) + b"\x01\x00\x5b\xff\xff\xff\xff\xff\xff\xff\xff",  # huge bstr length
    bytes([0x2A]) + b"\x01\x00" + b"\x00" * (cbor.MAX_FRAME_SIZE),  # oversized
    bytes([0x2A]) + b"\x01\x22\xa1\x01\x02",  # raw payload with an int key
    bytes([0x2A]) + b"\x01\x22\xa1\x61a\x41x",  # raw payload with bytes inside
    bytes([0x2A]) + b"\x01\x22\xc1\x01",  # tagged value in a raw payload
    bytes([0x2B]) + b"\x01\x02\x00\x01",  # Heartbeat result: delta without a base
    bytes([0x2B]) + b"\x01\x02\x00\x4d" + b"\xff" * 13,  # timestamp bstr too long
]


@pytest.mark.parametrize("data", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_input_raises_decode_error(data: Any) -> None:
    with pytest.raises(DecodeError):
        cbor.decode(data)


def test_decode_error_carries_a_readable_message_id() -> None:
    # A CALL cut short after its id: a receiver can still answer it by id (OCPP-J 4.2.3).
    boot = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}
    data = cbor.encode(Call("42", "BootNotification", boot), "2.0.1")
    with pytest.raises(DecodeError) as info:
        cbor.decode(data[:4])
    assert (info.value.message_id, info.value.error_code) == ("42", "FormatViolation")
    with pytest.raises(DecodeError) as info:
        cbor.decode(data[:1] + b"\xff")  # the id itself is unreadable
    assert info.value.message_id is None


def test_decode_error_codes_follow_part_4_and_the_version() -> None:
    heartbeat = cbor.encode(Call("42", "Heartbeat", {}), "1.6")
    header, rest = heartbeat[:1], heartbeat[1:]
    mid = rest[: len(rest) - 1]  # the id item; the last byte is Heartbeat's action code
    cases = [
        # an action code beyond the version's table: not known by the receiver (4.3)
        (header + mid + b"\x18\xff", "42", "NotImplemented"),
        # a CALL whose payload is wrong: 1.6 spells FormatViolation FormationViolation
        (header + mid + b"\x20\x01", "42", "FormationViolation"),
        # the id is unreadable: RpcFrameworkError, which 1.6 does not have (GenericError)
        (header + b"\xff", None, "GenericError"),
    ]
    for data, message_id, code in cases:
        with pytest.raises(DecodeError) as info:
            cbor.decode(data)
        assert (info.value.message_id, info.value.error_code, info.value.version) == (
            message_id,
            code,
            "1.6",
        ), data.hex()
