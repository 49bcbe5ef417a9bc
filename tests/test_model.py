"""ocpp_iot.model: registry, naming, error mapping, lenient mode, corpus round trip, drift."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc3339_validator
from hypothesis import given, settings
from hypothesis import strategies as st
from test_model_support import (
    all_schemas,
    del_at,
    fast_oracle,
    inlined,
    leaf_paths,
    minimal,
    model_for,
    same_json,
    schema_dir,
    set_at,
)

from ocpp_iot.codecs import DecodeError
from ocpp_iot.model import (
    DATE_TIME_PATTERN,
    VERSION_MODULES,
    Action,
    OcppModel,
    PayloadError,
    TypedFrame,
    find_action,
    get_version,
    parse,
    parse_frame_json,
    parse_json,
)

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sessions-v201.jsonl"  # shared/ beside the checkout
FMT = "FormatViolation"
OCC = "OccurrenceConstraintViolation"
TYPE = "TypeConstraintViolation"
PROP = "PropertyConstraintViolation"


# --- registry ---------------------------------------------------------------------------------


def _actions_in_dir(version: str) -> set[str]:
    names = set()
    for p in schema_dir(version).glob("*.json"):
        names.add(re.sub(r"(Request|Response)$", "", p.name[:-5]))
    return names


@pytest.mark.parametrize(("version", "count"), [("1.6", 39), ("2.0.1", 64), ("2.1", 91)])
def test_action_counts(version: str, count: int) -> None:
    mod = get_version(version)
    assert len(mod.ACTIONS) == count
    assert set(mod.ACTIONS) == _actions_in_dir(version)
    assert mod.VERSION == version
    for name, act in mod.ACTIONS.items():
        assert isinstance(act, Action) and act.name == name
        assert act.request.__name__ == name + "Request"
        assert issubclass(act.request, OcppModel)
        if act.response is None:
            assert (version, name) == ("2.1", "NotifyPeriodicEventStream")
        else:
            assert act.response.__name__ == name + "Response"
        assert getattr(mod, name + "Request") is act.request


def test_version_modules_are_lazy_and_consistent() -> None:
    assert set(VERSION_MODULES) == {"1.6", "2.0.1", "2.1"}
    import ocpp_iot.model as m

    assert m.v201 is get_version("2.0.1")
    with pytest.raises(ValueError):
        get_version("1.5")
    code = "import sys, ocpp_iot.model; print('ocpp_iot.model.v21' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("version", "action", "initiator"),
    [
        ("1.6", "BootNotification", "charger"),
        ("1.6", "StopTransaction", "charger"),
        ("1.6", "SignedFirmwareStatusNotification", "charger"),
        ("1.6", "RemoteStartTransaction", "charge_system"),
        ("1.6", "ExtendedTriggerMessage", "charge_system"),
        ("1.6", "DataTransfer", "both"),
        ("2.0.1", "TransactionEvent", "charger"),
        ("2.0.1", "Get15118EVCertificate", "charger"),
        ("2.0.1", "ReservationStatusUpdate", "charger"),
        ("2.0.1", "SetVariables", "charge_system"),
        ("2.0.1", "CostUpdated", "charge_system"),
        ("2.0.1", "DataTransfer", "both"),
        ("2.1", "NotifyPeriodicEventStream", "charger"),
        ("2.1", "VatNumberValidation", "charger"),
        ("2.1", "PullDynamicScheduleUpdate", "charger"),
        ("2.1", "BatterySwap", "charger"),
        ("2.1", "AFRRSignal", "charge_system"),
        ("2.1", "NotifyWebPaymentStarted", "charge_system"),
        ("2.1", "UsePriorityCharging", "charge_system"),
        ("2.1", "RequestBatterySwap", "charge_system"),
    ],
)
def test_initiators(version: str, action: str, initiator: str) -> None:
    assert get_version(version).ACTIONS[action].initiator == initiator


@pytest.mark.parametrize(
    ("version", "action", "method"),
    [
        ("2.0.1", "BootNotification", "boot_notification"),
        ("2.0.1", "Get15118EVCertificate", "get_15118_ev_certificate"),
        ("2.0.1", "NotifyEVChargingNeeds", "notify_ev_charging_needs"),
        ("2.1", "AFRRSignal", "afrr_signal"),
        ("2.1", "VatNumberValidation", "vat_number_validation"),
        ("2.1", "ClearDERControl", "clear_der_control"),
        ("1.6", "RemoteStartTransaction", "remote_start_transaction"),
    ],
)
def test_method_names(version: str, action: str, method: str) -> None:
    assert get_version(version).ACTIONS[action].method == method


def test_method_names_unique_and_identifiers() -> None:
    for v in VERSION_MODULES:
        methods = [a.method for a in get_version(v).ACTIONS.values()]
        assert len(set(methods)) == len(methods)
        assert all(m.isidentifier() and m == m.lower() for m in methods)


def test_attribute_names_and_aliases() -> None:
    v201, v21, v16 = get_version("2.0.1"), get_version("2.1"), get_version("1.6")
    f = v201.OCSPRequestDataType.model_fields
    assert f["responder_url"].alias == "responderURL"
    assert v201.StatusNotificationRequest.model_fields["evse_id"].alias == "evseId"
    assert v21.EVEnergyOfferType.model_fields
    cp = v21.V2XChargingParametersType.model_fields
    assert cp["target_soc"].alias == "targetSoC"
    assert cp["ev_max_v2x_energy_request"].alias == "evMaxV2XEnergyRequest"
    assert v21.NotifyEVChargingNeedsRequest.model_fields
    assert v16.StartTransactionRequest.model_fields["meter_start"].alias == "meterStart"
    for v in VERSION_MODULES:
        mod = get_version(v)
        for name in mod.__all__:
            cls = getattr(mod, name)
            if isinstance(cls, type) and issubclass(cls, OcppModel):
                for attr, info in cls.model_fields.items():
                    assert attr.isidentifier() and attr == attr.lower(), (name, attr)
                    assert info.alias is not None


def test_v16_names_from_the_spec() -> None:
    v16 = get_version("1.6")
    assert v16.AuthorizeResponse.model_fields["id_tag_info"].annotation is v16.IdTagInfo
    assert v16.IdTagInfo.model_fields["status"].annotation is v16.AuthorizationStatus
    assert v16.MeterValuesRequest.model_fields["meter_value"].annotation == list[v16.MeterValue]
    sv = v16.SampledValue.model_fields
    assert sv["measurand"].annotation is v16.Measurand
    assert sv["context"].annotation is v16.ReadingContext
    # identical structure reused: RemoteStartTransaction / SetChargingProfile -> ChargingProfile
    rs = v16.RemoteStartTransactionRequest.model_fields["charging_profile"].annotation
    sp = v16.SetChargingProfileRequest.model_fields["cs_charging_profiles"].annotation
    assert rs is sp is v16.ChargingProfile
    assert v16.RegistrationStatus.ACCEPTED == "Accepted"


def test_construct_by_name_or_alias_and_dump_by_alias() -> None:
    v201 = get_version("2.0.1")
    a = v201.StatusNotificationRequest(
        timestamp="2024-01-01T00:00:00Z", connector_status="Available", evse_id=1, connector_id=2
    )
    b = v201.StatusNotificationRequest(
        timestamp="2024-01-01T00:00:00Z", connectorStatus="Available", evseId=1, connectorId=2
    )
    assert a == b
    assert a.to_payload() == {
        "timestamp": "2024-01-01T00:00:00Z",
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 2,
    }
    assert a.connector_status is v201.ConnectorStatusEnumType.AVAILABLE


def test_custom_data_is_open_but_needs_vendor_id() -> None:
    v201 = get_version("2.0.1")
    p = {"customData": {"vendorId": "acme", "x": [1, 2.5, None, {"y": True}]}}
    m = parse(v201.HeartbeatRequest, p)
    assert same_json(m.to_payload(), p)
    with pytest.raises(PayloadError) as e:
        parse(v201.HeartbeatRequest, {"customData": {"x": 1}})
    assert e.value.code == OCC


# --- numbers, strings, date-times -------------------------------------------------------------


def test_numbers_keep_their_json_type() -> None:
    v201 = get_version("2.0.1")
    base = {"timestamp": "2024-01-01T00:00:00Z", "sampledValue": [{"value": 5}]}
    for value in (5, 5.0, -0.25, 10**20, 1e300):
        p = {"evseId": 1, "meterValue": [{**base, "sampledValue": [{"value": value}]}]}
        for m in (
            parse(v201.MeterValuesRequest, p),
            parse_json(v201.MeterValuesRequest, json.dumps(p)),
        ):
            assert same_json(m.to_payload(), p)
    for bad in (True, "5", None, [5]):
        p = {"evseId": 1, "meterValue": [{**base, "sampledValue": [{"value": bad}]}]}
        with pytest.raises(PayloadError) as e:
            parse(v201.MeterValuesRequest, p)
        assert e.value.code == TYPE
    for bad in (True, "1", 1.0, 1.5):
        with pytest.raises(PayloadError) as e:
            parse(v201.MeterValuesRequest, {"evseId": bad, "meterValue": [base]})
        assert e.value.code == TYPE, bad


def test_v16_multiple_of() -> None:
    v16 = get_version("1.6")
    period = {"startPeriod": 0, "limit": 21.4}
    prof = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [period]},
    }
    p = {"connectorId": 1, "csChargingProfiles": prof}
    for good in (21.4, 0.3, 16, 32.0):
        q = set_at(
            p,
            ("csChargingProfiles", "chargingSchedule", "chargingSchedulePeriod", 0, "limit"),
            good,
        )
        assert same_json(parse(v16.SetChargingProfileRequest, q).to_payload(), q)
    q = set_at(
        p, ("csChargingProfiles", "chargingSchedule", "chargingSchedulePeriod", 0, "limit"), 4.11
    )
    with pytest.raises(PayloadError) as e:
        parse(v16.SetChargingProfileRequest, q)
    assert e.value.code == PROP


DATE_TIMES_OK = [
    "2024-01-01T00:00:00Z",
    "2024-02-29T23:59:59.123456+01:00",
    "2000-02-29T12:00:00-12:30",
    "0001-12-31T00:00:00Z",
    "1999-04-30T10:10:10.5Z",
]
DATE_TIMES_BAD = [
    "2024-01-01",
    "2024-01-01 00:00:00Z",
    "2024-01-01T00:00:00",
    "2023-02-29T00:00:00Z",
    "1900-02-29T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-01-01T24:00:00Z",
    "2024-01-01T00:60:00Z",
    "2024-01-01T00:00:60Z",
    "0000-01-01T00:00:00Z",
    "2024-01-01T00:00:00+24:00",
    "2024-01-01t00:00:00z",
    "2024-01-01T00:00:00Z\n",
    "2024-01-01T00:00:00.Z",
    "٢٠٢٤-01-01T00:00:00Z",
    "",
]


@pytest.mark.parametrize("value", DATE_TIMES_OK + DATE_TIMES_BAD)
def test_date_time_agrees_with_oracle(value: str) -> None:
    v201 = get_version("2.0.1")
    ours_ok = re.fullmatch(DATE_TIME_PATTERN.strip("^$"), value) is not None
    oracle_ok = rfc3339_validator.validate_rfc3339(value) and not value.endswith("\n")
    assert ours_ok == oracle_ok == (value in DATE_TIMES_OK)
    p = {"currentTime": value}
    if ours_ok:
        m = parse(v201.HeartbeatResponse, p)
        assert m.current_time == value  # kept verbatim
        assert parse_json(v201.HeartbeatResponse, json.dumps(p)).to_payload() == p
    else:
        with pytest.raises(PayloadError) as e:
            parse(v201.HeartbeatResponse, p)
        assert e.value.code == PROP
        with pytest.raises(PayloadError) as e:
            parse_json(v201.HeartbeatResponse, json.dumps(p))
        assert e.value.code == PROP


def test_uri_format_v16() -> None:
    v16 = get_version("1.6")
    ok = {"location": "ftp://user@host/path?x=1", "retrieveDate": "2024-01-01T00:00:00Z"}
    assert parse(v16.UpdateFirmwareRequest, ok).to_payload() == ok
    for bad in ("not a uri", "/relative/path", ""):
        with pytest.raises(PayloadError) as e:
            parse(v16.UpdateFirmwareRequest, {**ok, "location": bad})
        assert e.value.code == PROP


# --- error mapping over every schema ----------------------------------------------------------

SCHEMAS = all_schemas()


def _expect(version: str, stem: str, payload: Any, code: str) -> None:
    """Oracle rejects, model rejects with code (both from dicts and from JSON)."""
    cls = model_for(version, stem)
    assert not fast_oracle(version, stem)(payload), payload
    with pytest.raises(PayloadError) as e:
        parse(cls, payload)
    assert e.value.code == code, (payload, e.value.description)
    assert "\n" not in e.value.description and e.value.details["errors"]
    with pytest.raises(PayloadError) as e:
        parse_json(cls, json.dumps(payload))
    assert e.value.code == code, (payload, e.value.description)


@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=[f"{v}-{s}" for v, s in SCHEMAS])
def test_mutations_rejected_with_mapped_code(version: str, stem: str) -> None:
    schema = inlined(version, stem)
    cls = model_for(version, stem)
    for full in (False, True):
        base = minimal(schema, full=full)
        assert fast_oracle(version, stem)(base), base
        assert same_json(parse(cls, base).to_payload(), base)
        assert same_json(parse_json(cls, json.dumps(base)).to_payload(), base)
    base = minimal(schema, full=True)
    _expect(version, stem, [base], FMT)
    _expect(version, stem, {**base, "zzUnknownField": 1}, FMT)
    for path, node in leaf_paths(schema, base):
        if not path:
            continue
        parent = schema
        for k in path[:-1]:
            parent = parent["items"] if isinstance(k, int) else parent["properties"][k]
        if isinstance(path[-1], str) and path[-1] in parent.get("required", []):
            _expect(version, stem, del_at(base, path), OCC)
        t = node.get("type")
        if "enum" in node:
            _expect(version, stem, set_at(base, path, "NoSuchValue"), PROP)
        if t == "string":
            _expect(version, stem, set_at(base, path, 5), TYPE)
            if "maxLength" in node:
                _expect(version, stem, set_at(base, path, "x" * (node["maxLength"] + 1)), TYPE)
            if node.get("format") == "date-time":
                _expect(version, stem, set_at(base, path, "2024-02-30T00:00:00Z"), PROP)
        elif t in ("integer", "number"):
            _expect(version, stem, set_at(base, path, "5"), TYPE)
            _expect(version, stem, set_at(base, path, True), TYPE)
            cast = int if t == "integer" else float
            if "minimum" in node:
                _expect(version, stem, set_at(base, path, cast(node["minimum"]) - 1), PROP)
            if "maximum" in node:
                _expect(version, stem, set_at(base, path, cast(node["maximum"]) + 1), PROP)
        elif t == "boolean":
            _expect(version, stem, set_at(base, path, 1), TYPE)
        elif t == "object":
            _expect(version, stem, set_at(base, path, "x"), TYPE)
            if node.get("additionalProperties") is False:
                _expect(version, stem, set_at(base, path + ("zzExtra",), 1), FMT)
        elif t == "array":
            _expect(version, stem, set_at(base, path, {}), TYPE)
            if node.get("minItems"):
                _expect(version, stem, set_at(base, path, []), OCC)
            if "maxItems" in node:
                items = [minimal(node["items"], full=True)] * (node["maxItems"] + 1)
                _expect(version, stem, set_at(base, path, items), OCC)


def test_error_details_and_description() -> None:
    v201 = get_version("2.0.1")
    with pytest.raises(PayloadError) as e:
        parse(v201.BootNotificationRequest, {"reason": "PowerUp", "chargingStation": {}})
    err = e.value
    assert isinstance(err, ValueError)
    assert err.code == OCC
    assert "chargingStation.model" in err.description
    assert err.details["errors"][0]["loc"] == "chargingStation.model"
    assert len(json.dumps(err.details)) < 500
    with pytest.raises(PayloadError) as e:
        parse_json(v201.BootNotificationRequest, b'{"reason": ')
    assert e.value.code == FMT
    with pytest.raises(PayloadError) as e:
        parse(v201.BootNotificationRequest, "not an object")
    assert e.value.code == FMT


# --- lenient mode -----------------------------------------------------------------------------


def test_lenient_accepts_unknown_enum_and_long_string() -> None:
    v201 = get_version("2.0.1")
    p = {
        "currentTime": "2024-01-01T00:00:00Z",
        "interval": 300,
        "status": "Maybe",
        "statusInfo": {"reasonCode": "x" * 40, "additionalInfo": "ok"},
    }
    with pytest.raises(PayloadError) as e:
        parse(v201.BootNotificationResponse, p)
    assert e.value.code == PROP
    for m, w in (
        (parse(v201.BootNotificationResponse, p, lenient=True, warnings=(w1 := [])), w1),
        (
            parse_json(
                v201.BootNotificationResponse, json.dumps(p), lenient=True, warnings=(w2 := [])
            ),
            w2,
        ),
    ):
        assert isinstance(m, v201.BootNotificationResponse)
        assert m.status == "Maybe"
        assert m.status_info.reason_code == "x" * 40
        assert m.to_payload() == p
        assert len(w) == 2
        assert "status" in w[0] and "'Maybe'" in w[0]
        assert "statusInfo.reasonCode" in w[1] and "20" in w[1]


def test_lenient_known_values_still_enums_and_no_warnings() -> None:
    v201 = get_version("2.0.1")
    p = {"currentTime": "2024-01-01T00:00:00Z", "interval": 300, "status": "Accepted"}
    w: list[str] = []
    m = parse(v201.BootNotificationResponse, p, lenient=True, warnings=w)
    assert m.status is v201.RegistrationStatusEnumType.ACCEPTED and w == []


def test_lenient_still_strict_on_everything_else() -> None:
    v201 = get_version("2.0.1")
    base = {"currentTime": "2024-01-01T00:00:00Z", "interval": 300, "status": "Maybe"}
    cases = [
        ({k: v for k, v in base.items() if k != "interval"}, OCC),
        ({**base, "interval": "300"}, TYPE),
        ({**base, "extra": 1}, FMT),
        ({**base, "currentTime": "yesterday"}, PROP),
    ]
    for payload, code in cases:
        with pytest.raises(PayloadError) as e:
            parse(v201.BootNotificationResponse, payload, lenient=True, warnings=[])
        assert e.value.code == code


def test_lenient_nested_lists_and_v16() -> None:
    v201, v16 = get_version("2.0.1"), get_version("1.6")
    p = {
        "evseId": 1,
        "meterValue": [
            {
                "timestamp": "2024-01-01T00:00:00Z",
                "sampledValue": [{"value": 1, "measurand": "Energy.Active.Import.Registerr"}],
            }
        ],
    }
    w: list[str] = []
    m = parse(v201.MeterValuesRequest, p, lenient=True, warnings=w)
    assert m.meter_value[0].sampled_value[0].measurand == "Energy.Active.Import.Registerr"
    assert m.to_payload() == p and "meterValue[0].sampledValue[0].measurand" in w[0]
    q = {"chargePointVendor": "v" * 25, "chargePointModel": "m"}
    w = []
    m16 = parse(v16.BootNotificationRequest, q, lenient=True, warnings=w)
    assert isinstance(m16, v16.BootNotificationRequest) and m16.to_payload() == q
    assert len(w) == 1


# --- corpus and frames ------------------------------------------------------------------------


def _corpus() -> list[list[Any]]:
    with CORPUS.open() as f:
        return [json.loads(line)["frame"] for line in f]


@pytest.mark.skipif(not CORPUS.exists(), reason="corpus not available")
def test_corpus_round_trip() -> None:
    mod = get_version("2.0.1")
    actions: dict[str, str] = {}
    n = 0
    for frame in _corpus():
        if frame[0] == 2:
            actions[frame[1]] = frame[2]
            cls = mod.ACTIONS[frame[2]].request
        else:
            assert frame[0] == 3
            cls = mod.ACTIONS[actions[frame[1]]].response
        payload = frame[-1]
        assert same_json(parse(cls, payload).to_payload(), payload)
        data = json.dumps(frame, separators=(",", ":")).encode()
        tf = parse_frame_json(data, "2.0.1", actions.get)
        assert tf.message_id == frame[1] and tf.action == actions[frame[1]]
        assert type(tf.model) is cls and same_json(tf.model.to_payload(), payload)
        # the general path gives the same answer
        spaced = json.dumps(frame, indent=1).encode()
        assert parse_frame_json(spaced, "2.0.1", actions.get) == tf
        n += 1
    assert n == 9738


def test_frame_fast_and_slow_paths_agree() -> None:
    v201 = get_version("2.0.1")
    hb = b'[2,"1","Heartbeat",{}]'
    tf = parse_frame_json(hb, "2.0.1")
    assert isinstance(tf, TypedFrame)
    assert tf == (2, "1", "Heartbeat", v201.HeartbeatRequest(), None)
    for variant in (
        b' [ 2 , "1" , "Heartbeat" , { } ] ',
        '[2,"1","Heartbeat",{}]',
        b'[2,"\\u0031","Heartbeat",{}]',
    ):
        assert parse_frame_json(variant, "2.0.1") == tf
    res = parse_frame_json(
        b'[3,"9",{"currentTime":"2024-01-01T00:00:00Z"}]', "2.0.1", {"9": "Heartbeat"}.get
    )
    assert res.model == v201.HeartbeatResponse(current_time="2024-01-01T00:00:00Z")
    assert parse_frame_json(b'[3,"9",{"x":1}]', "2.0.1").model is None
    err = parse_frame_json(b'[4,"9","NotImplemented","no",{}]', "2.0.1")
    assert err.error == ("NotImplemented", "no", {}) and err.model is None
    send = (
        b'[6,"5","NotifyPeriodicEventStream",{"id":1,"pending":0,'
        b'"basetime":"2024-01-01T00:00:00Z","data":[{"t":0.5,"v":"1"}]}]'
    )
    tf6 = parse_frame_json(send, "2.1")
    assert tf6.message_type == 6 and tf6.model.to_payload()["data"] == [{"t": 0.5, "v": "1"}]


@pytest.mark.parametrize(
    ("data", "version", "code", "message_id"),
    [
        # the frame: the rules of ocppj.from_list (OCPP-J part 4 section 4)
        (b'[2,"1","Heartbeat",{}', "2.0.1", "RpcFrameworkError", None),  # not JSON
        (b'{"a":1}', "2.0.1", "RpcFrameworkError", None),
        (b'[2,1,"Heartbeat",{}]', "2.0.1", "RpcFrameworkError", None),
        (b'[2,"' + b"x" * 37 + b'","Heartbeat",{}]', "2.0.1", "RpcFrameworkError", None),
        (b'[7,"1","Heartbeat",{}]', "2.0.1", "MessageTypeNotSupported", "1"),
        (b'[6,"1","Heartbeat",{}]', "2.0.1", "MessageTypeNotSupported", "1"),
        (b'[2,"1","Heartbeat",{},{}]', "2.0.1", "RpcFrameworkError", "1"),
        (b'[2,"1","Heartbeat",[]]', "2.0.1", FMT, "1"),
        # the action: not known to the version (section 4.3)
        (b'[2,"1","NoSuchAction",{}]', "2.0.1", "NotImplemented", "1"),
        (b'[2,"1","NoSuchAction",{}]', "1.6", "NotImplemented", "1"),
        (b'[2,"1","NotifyPeriodicEventStream",{}]', "2.0.1", "NotImplemented", "1"),  # 2.1 only
        # the payload
        (b'[2,"1","Heartbeat",{"x":1}]', "2.0.1", FMT, "1"),
        (b'[2,"1","BootNotification",{"reason":"PowerUp"}]', "2.0.1", OCC, "1"),
        (b'[3,"1",{"currentTime":5}]', "2.0.1", TYPE, "1"),
        # 1.6 spells two codes differently and has neither RpcFrameworkError nor
        # MessageTypeNotSupported (OCPP-J 1.6 section 4.2.3)
        (b'[2,"1","Heartbeat",{"x":1}]', "1.6", "FormationViolation", "1"),
        (b'[2,"1","Authorize",{}]', "1.6", "OccurenceConstraintViolation", "1"),
        (b'[2,"1","Heartbeat",[]]', "1.6", "FormationViolation", "1"),
        (b'[6,"1","Heartbeat",{}]', "1.6", "GenericError", "1"),
        (b"nope", "1.6", "GenericError", None),
    ],
)
def test_frame_errors(data: bytes, version: str, code: str, message_id: str | None) -> None:
    with pytest.raises(DecodeError) as e:
        parse_frame_json(data, version, {"1": "Heartbeat"}.get)
    assert (e.value.error_code, e.value.message_id, e.value.version) == (code, message_id, version)


def test_payload_error_is_a_decode_error_with_both_spellings() -> None:
    with pytest.raises(PayloadError) as e:
        parse(get_version("1.6").AuthorizeRequest, {})
    assert isinstance(e.value, DecodeError) and isinstance(e.value, ValueError)
    assert (e.value.code, e.value.error_code, e.value.version) == (
        OCC,
        "OccurenceConstraintViolation",
        "1.6",
    )


def test_find_action_answers_not_implemented() -> None:
    assert find_action("2.0.1", "Heartbeat").request is get_version("2.0.1").HeartbeatRequest
    with pytest.raises(DecodeError) as e:
        find_action("1.6", "TransactionEvent", "m1")  # 2.0.1 has it, 1.6 does not
    assert (e.value.error_code, e.value.message_id, e.value.version) == (
        "NotImplemented",
        "m1",
        "1.6",
    )


# Frames around the header rules: each is decided by ocppj.from_list in both readers.
HEADER_CASES = [
    b"",
    b"[]",
    b"[2]",
    b'[2,"1"]',
    b'[true,"1","Heartbeat",{}]',
    b'[2.0,"1","Heartbeat",{}]',
    b'[2,"","Heartbeat",{}]',
    b'[2,"' + b"a" * 36 + b'","Heartbeat",{}]',  # fast path, longest id
    b'[2,"' + b"a" * 37 + b'","Heartbeat",{}]',  # was accepted by the fast path (128) before
    b'[3,"' + b"b" * 37 + b'",{"currentTime":"2024-01-01T00:00:00Z"}]',
    b'[2,"1","",{}]',
    b'[2,"1","Heartbeat",null]',
    b'[3,"1",[]]',
    b'[3,"1",{},{}]',
    b'[4,"1","X","y"]',
    b'[4,"1","X","y",{}]',
    b'[5,"1","X","y",{}]',
    b'[6,"1","NotifyPeriodicEventStream",{}]',
    b'[9,"1",{}]',
    b'[2,"1","Heartbeat",{}]]',
    b'[2,"1","Heartbeat",{}] ',
]


def _verdict(fn: Any, data: bytes, version: str) -> tuple[Any, ...]:
    try:
        frame = fn(data, version)
    except DecodeError as exc:
        return ("error", exc.message_id, exc.error_code, exc.version)
    return ("frame", frame.message_type, frame.message_id)


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
@pytest.mark.parametrize("data", HEADER_CASES)
def test_both_readers_apply_the_same_header_rules(data: bytes, version: str) -> None:
    from ocpp_iot.codecs import ocppj

    codec = _verdict(ocppj.decode, data, version)
    typed = _verdict(lambda d, v: parse_frame_json(d, v, {"1": "Heartbeat"}.get), data, version)
    if codec[0] == "error":
        assert typed == codec
    elif typed[0] == "error":  # the frame is fine; only the action or payload can fail now
        assert typed[1] == codec[2]
        assert typed[2] in {
            "NotImplemented",
            FMT,
            OCC,
            TYPE,
            PROP,
            "FormationViolation",
            "OccurenceConstraintViolation",
        }
    else:
        assert typed[1:] == codec[1:]


frame_parts = st.builds(
    lambda kind, mid, action, payload, tail: json.dumps([kind, mid, action, payload, *tail]),
    st.sampled_from([2, 3, 4, 5, 6, 7, "2", True]),
    st.one_of(st.text(max_size=40), st.integers()),
    st.sampled_from(["Heartbeat", "NoSuchAction", "", 3]),
    st.sampled_from([{}, [], None, {"x": 1}]),
    st.lists(st.sampled_from([{}, "x"]), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(frame_parts, st.sampled_from(["1.6", "2.0.1", "2.1"]))
def test_header_verdicts_agree_on_generated_frames(text: str, version: str) -> None:
    from ocpp_iot.codecs import ocppj

    data = text.replace(", ", ",").encode()  # compact, so the fast path is tried too
    codec = _verdict(ocppj.decode, data, version)
    typed = _verdict(parse_frame_json, data, version)
    if codec[0] == "error":
        assert typed == codec
    elif typed[0] == "frame":
        assert typed[1:] == codec[1:]
    else:
        assert typed[1] == codec[2] and typed[3] == version


# --- generator --------------------------------------------------------------------------------


def test_generator_check_no_drift() -> None:
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_model.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_generated_files_have_header() -> None:
    for pkg in ("v16", "v201", "v21"):
        for p in (ROOT / "src" / "ocpp_iot" / "model" / pkg).glob("*.py"):
            head = p.read_text(encoding="utf-8")[:400]
            assert "GENERATED by tools/gen_model.py" in head and "DO NOT EDIT" in head
            assert f"ocpp/{pkg}/schemas" in head
