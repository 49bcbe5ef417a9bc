"""The charger's persisted device model: 2.x GetVariables/SetVariables/NotifyReport, 1.6 keys.

Every payload the model produces is validated against the generated models of the version(s)
that carry it, so what a station sends is schema-valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ocpp_iot.charger_node.device_model import (
    Change,
    DeviceModel,
    DeviceModelError,
    InvalidValue,
    JsonFileStore,
    VarSpec,
)
from ocpp_iot.charger_node.device_model_catalog import AVAILABILITY_STATES, MEASURANDS
from ocpp_iot.codecs import cbor
from ocpp_iot.model import parse, v16, v21, v201
from ocpp_iot.rpc import Call

NOW = "2026-12-02T03:30:00Z"


def comp(name: str, evse: int | None = None, connector: int | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name}
    if evse is not None:
        c["evse"] = {"id": evse} if connector is None else {"id": evse, "connectorId": connector}
    return c


def get_item(
    c: dict[str, Any], var: str, inst: str | None = None, attr: str | None = None
) -> dict[str, Any]:
    item: dict[str, Any] = {"component": c, "variable": {"name": var}}
    if inst is not None:
        item["variable"]["instance"] = inst
    if attr is not None:
        item["attributeType"] = attr
    return item


def set_item(
    c: dict[str, Any], var: str, value: str, inst: str | None = None, attr: str | None = None
) -> dict[str, Any]:
    item = get_item(c, var, inst, attr)
    item["attributeValue"] = value
    return item


def get_vars(
    dm: DeviceModel, *items: dict[str, Any], now_iso: str | None = NOW
) -> list[dict[str, Any]]:
    request = {"getVariableData": list(items)}
    parse(v201.GetVariablesRequest, request)
    response = dm.get_variables(request, now_iso=now_iso)
    parse(v201.GetVariablesResponse, response)
    parse(v21.GetVariablesResponse, response)
    results: list[dict[str, Any]] = response["getVariableResult"]
    return results


def set_vars(dm: DeviceModel, *items: dict[str, Any]) -> list[dict[str, Any]]:
    request = {"setVariableData": list(items)}
    parse(v201.SetVariablesRequest, request)
    response = dm.set_variables(request)
    parse(v201.SetVariablesResponse, response)
    parse(v21.SetVariablesResponse, response)
    results: list[dict[str, Any]] = response["setVariableResult"]
    return results


@pytest.fixture
def store(tmp_path: Path) -> JsonFileStore:
    return JsonFileStore(tmp_path / "device_model.json")


# -- GetVariables -------------------------------------------------------------------------------


def test_get_variables_each_status() -> None:
    dm = DeviceModel(evses=(1, 2), serial_number="SN-7", model="PiCharger", vendor_name="Acme")
    results = get_vars(
        dm,
        get_item(comp("OCPPCommCtrlr"), "HeartbeatInterval"),
        get_item(comp("OCPPCommCtrlr"), "MessageAttempts", "TransactionEvent"),
        get_item(comp("EVSE", 2), "Power", attr="MaxSet"),
        get_item(comp("ChargingStation"), "SerialNumber"),
        get_item(comp("ClockCtrlr"), "DateTime"),
        get_item(comp("NoSuchCtrlr"), "HeartbeatInterval"),
        get_item(comp("EVSE", 3), "Power"),  # no EVSE 3
        get_item(comp("OCPPCommCtrlr", 1), "HeartbeatInterval"),  # not an EVSE component
        get_item(comp("OCPPCommCtrlr"), "NoSuchVariable"),
        get_item(comp("OCPPCommCtrlr"), "MessageAttempts"),  # the instance is part of the name
        get_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", attr="Target"),
        get_item(comp("OCPP16"), "NumberOfConnectors"),  # 1.6-only key: not a 2.x component
    )
    statuses = [r["attributeStatus"] for r in results]
    assert statuses == ["Accepted"] * 5 + ["UnknownComponent"] * 3 + ["UnknownVariable"] * 2 + [
        "NotSupportedAttributeType",
        "UnknownComponent",
    ]
    values = [r.get("attributeValue") for r in results[:5]]
    assert values == ["300", "3", "22000", "SN-7", NOW]
    assert results[2]["attributeType"] == "MaxSet"
    assert "attributeType" not in results[0]  # echoed only when asked
    assert all("attributeValue" not in r for r in results[5:])
    # the request's component and variable are echoed
    assert results[6]["component"] == {"name": "EVSE", "evse": {"id": 3}}


def test_get_variables_datetime_needs_the_time() -> None:
    (result,) = get_vars(DeviceModel(), get_item(comp("ClockCtrlr"), "DateTime"), now_iso=None)
    assert result["attributeStatus"] == "Rejected"


def test_get_variables_too_many_items_or_bytes() -> None:
    dm = DeviceModel(
        defaults={
            "DeviceDataCtrlr.ItemsPerMessage[GetVariables]": "2",
            "DeviceDataCtrlr.BytesPerMessage[GetVariables]": "200",
        }
    )
    item = get_item(comp("OCPPCommCtrlr"), "HeartbeatInterval")
    assert len(get_vars(dm, item, item)) == 2
    with pytest.raises(DeviceModelError) as exc:
        dm.get_variables({"getVariableData": [item] * 3})
    assert exc.value.code == "OccurrenceConstraintViolation"
    long_item = get_item(comp("OCPPCommCtrlr" + "x" * 30), "HeartbeatInterval" + "y" * 30)
    with pytest.raises(DeviceModelError) as exc:
        dm.get_variables({"getVariableData": [long_item, long_item]})
    assert exc.value.code == "FormatViolation"


# -- SetVariables -------------------------------------------------------------------------------


def test_set_variables_accepted_changes_the_value_and_the_accessor() -> None:
    dm = DeviceModel()
    results = set_vars(
        dm,
        set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "90"),
        set_item(comp("SampledDataCtrlr"), "TxUpdatedMeasurands", "Voltage,Current.Import"),
        set_item(comp("TxCtrlr"), "StopTxOnEVSideDisconnect", "false"),
        set_item(comp("OCPPCommCtrlr"), "MessageAttemptInterval", "15", "TransactionEvent"),
        set_item(comp("SampledDataCtrlr"), "TxEndedMeasurands", ""),  # an empty MemberList
    )
    assert [r["attributeStatus"] for r in results] == ["Accepted"] * 5
    assert dm.heartbeat_interval == 90
    assert dm.tx_updated_measurands == ["Voltage", "Current.Import"]
    assert dm.stop_tx_on_ev_side_disconnect is False
    assert dm.message_attempt_interval_tx == 15
    assert dm.tx_ended_measurands == []
    (got,) = get_vars(dm, get_item(comp("OCPPCommCtrlr"), "HeartbeatInterval"))
    assert got["attributeValue"] == "90"


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (set_item(comp("ChargingStation"), "Model", "Other"), "ReadOnly"),
        (set_item(comp("DeviceDataCtrlr"), "ItemsPerMessage", "99", "GetReport"), "ReadOnly"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "1.5"), "InvalidValue"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "sixty"), "InvalidValue"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "0"), "OutOfRange"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "-5"), "OutOfRange"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "86401"), "OutOfRange"),
        (set_item(comp("OCPPCommCtrlr"), "QueueAllMessages", "yes"), "InvalidValue"),
        (set_item(comp("OCPPCommCtrlr"), "QueueAllMessages", "True"), "InvalidValue"),
        (set_item(comp("SampledDataCtrlr"), "TxUpdatedMeasurands", "Volts"), "NotInValuesList"),
        (set_item(comp("SampledDataCtrlr"), "TxUpdatedMeasurands", "SoC,SoC"), "InvalidValue"),
        (set_item(comp("TxCtrlr"), "TxStartPoint", ""), "InvalidValue"),
        # a stop point the station cannot sense (no parking bay sensor, no signing meter)
        (set_item(comp("TxCtrlr"), "TxStopPoint", "DataSigned"), "NotInValuesList"),
        (set_item(comp("TxCtrlr"), "TxStartPoint", "ParkingBayOccupancy"), "NotInValuesList"),
        (set_item(comp("TxCtrlr"), "TxStopPoint", "PowerPathClosed"), "NotInValuesList"),
        (set_item(comp("ClockCtrlr"), "TimeSource", "NTP,Sundial"), "NotInValuesList"),
        (set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "1" * 1001), "TooLong"),
    ],
)
def test_set_variables_rejected(store: JsonFileStore, item: dict[str, Any], reason: str) -> None:
    dm = DeviceModel(store=store, defaults={"DeviceDataCtrlr.ConfigurationValueSize": "1000"})
    before = dm.get_variables({"getVariableData": [item]}, now_iso=NOW)
    request = {"setVariableData": [item]}
    if len(item["attributeValue"]) <= 1000:
        parse(v201.SetVariablesRequest, request)
    else:
        parse(v21.SetVariablesRequest, request)  # 2.1 allows 2500 characters
    response = dm.set_variables(request)
    parse(v21.SetVariablesResponse, response)
    (result,) = response["setVariableResult"]
    assert result["attributeStatus"] == "Rejected"
    assert result["attributeStatusInfo"]["reasonCode"] == reason
    assert dm.get_variables({"getVariableData": [item]}, now_iso=NOW) == before
    assert store.writes == 0


def test_set_variables_unknown_and_unsupported_and_reboot() -> None:
    dm = DeviceModel()
    results = set_vars(
        dm,
        set_item(comp("NoSuchCtrlr"), "X", "1"),
        set_item(comp("OCPPCommCtrlr"), "X", "1"),
        set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "60", attr="MaxSet"),
        set_item(comp("OCPPCommCtrlr"), "WebSocketPingInterval", "20"),
        set_item(comp("OCPPCommCtrlr"), "WebSocketPingInterval", "20"),  # now unchanged
    )
    assert [r["attributeStatus"] for r in results] == [
        "UnknownComponent",
        "UnknownVariable",
        "NotSupportedAttributeType",
        "RebootRequired",
        "Accepted",
    ]
    assert dm.ping_interval == 20  # stored; applies at the next connect
    assert results[2]["attributeType"] == "MaxSet"


def test_set_variables_items_apply_in_order() -> None:
    dm = DeviceModel()
    hb = comp("OCPPCommCtrlr")
    set_vars(dm, set_item(hb, "HeartbeatInterval", "10"), set_item(hb, "HeartbeatInterval", "20"))
    assert dm.heartbeat_interval == 20


def test_set_variables_too_many_items() -> None:
    dm = DeviceModel(defaults={"DeviceDataCtrlr.ItemsPerMessage[SetVariables]": "1"})
    item = set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "60")
    with pytest.raises(DeviceModelError) as exc:
        dm.set_variables({"setVariableData": [item, item]})
    assert exc.value.code == "OccurrenceConstraintViolation"
    assert dm.heartbeat_interval == 300


def test_listeners_hear_each_change_once() -> None:
    dm = DeviceModel()
    heard: list[Change] = []
    unsubscribe = dm.add_listener(heard.append)
    set_vars(
        dm,
        set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "300"),  # the default: no change
        set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "45"),
        set_item(comp("OCPPCommCtrlr"), "OfflineThreshold", "bad"),
    )
    assert [(c.path, c.attribute, c.value) for c in heard] == [
        ("OCPPCommCtrlr.HeartbeatInterval", "Actual", "45")
    ]
    assert dm.change_configuration("MeterValueSampleInterval", "30") == "Accepted"
    assert dm.set_value("OCPPCommCtrlr.HeartbeatInterval", "120") is True
    assert dm.set_value("OCPPCommCtrlr.HeartbeatInterval", "120") is False
    assert [c.path for c in heard[1:]] == [
        "SampledDataCtrlr.TxUpdatedInterval",
        "OCPPCommCtrlr.HeartbeatInterval",
    ]
    unsubscribe()
    dm.set_value("OCPPCommCtrlr.HeartbeatInterval", "121")
    assert len(heard) == 3


def test_set_value_checks_type_but_not_mutability() -> None:
    dm = DeviceModel()
    assert dm.set_value("EVSE@1.Power", "7400.5") is True  # ReadOnly for the back end
    (got,) = get_vars(dm, get_item(comp("EVSE", 1), "Power"))
    assert got["attributeValue"] == "7400.5"
    with pytest.raises(InvalidValue):
        dm.set_value("EVSE@1.Power", "30000")  # above its MaxSet rating
    with pytest.raises(KeyError):
        dm.set_value("EVSE@9.Power", "1")
    with pytest.raises(ValueError):
        dm.set_value("OCPPCommCtrlr.HeartbeatInterval", "1", attribute="Target")


# -- persistence --------------------------------------------------------------------------------


def test_values_survive_a_reopen_and_are_written_only_on_change(store: JsonFileStore) -> None:
    dm = DeviceModel(store=store)
    assert store.writes == 0 and not store.path.exists()  # defaults are not written
    set_vars(
        dm,
        set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "77"),
        set_item(comp("TxCtrlr"), "TxStopPoint", "EVConnected"),
        set_item(comp("ChargingStation"), "Model", "x"),  # rejected
    )
    assert store.writes == 1  # one write for the whole request
    set_vars(dm, set_item(comp("OCPPCommCtrlr"), "HeartbeatInterval", "77"))
    assert dm.change_configuration("HeartbeatInterval", "77") == "Accepted"
    assert dm.change_configuration("NumberOfConnectors", "4") == "Rejected"
    assert store.writes == 1  # same value, rejected value: nothing to write
    dm.set_value("EVSE@1.Power", "3000")  # not persistent
    dm.set_status(1, 1, "Occupied")  # not persistent
    assert store.writes == 1
    assert dm.set_availability(1, False).status == "Accepted"
    assert dm.set_availability(1, False).status == "Accepted"
    assert store.writes == 2
    assert not list(store.path.parent.glob("*.tmp"))

    again = DeviceModel(store=JsonFileStore(store.path))
    assert again.heartbeat_interval == 77
    assert again.tx_stop_points == ["EVConnected"]
    assert again.is_operative(1) is False and again.is_operative(0) is True
    assert again.value("EVSE@1.Power") == "0"
    assert again.availability_state(1, 1) == "Unavailable"
    assert again.writes == 0  # opening writes nothing

    # Back to the default: the override goes away (one write), a reopen still agrees.
    again.set_value("OCPPCommCtrlr.HeartbeatInterval", "300")
    assert json.loads(store.path.read_text())["values"] == {"TxCtrlr.TxStopPoint": "EVConnected"}
    assert DeviceModel(store=JsonFileStore(store.path)).heartbeat_interval == 300


def test_unreadable_or_stale_file_falls_back_to_defaults(store: JsonFileStore) -> None:
    store.path.write_text("{not json")
    assert DeviceModel(store=store).heartbeat_interval == 300
    store.path.write_text(
        json.dumps(
            {
                "v": 1,
                "values": {
                    "OCPPCommCtrlr.HeartbeatInterval": "0",  # below today's minLimit
                    "Gone.Variable": "1",
                    "ChargingStation.Model": "forged",  # not persistent
                    "OCPPCommCtrlr.OfflineThreshold": "42",
                },
                "inoperative": ["7", "1.5", "x", "0"],
            }
        )
    )
    dm = DeviceModel(store=store)
    assert dm.heartbeat_interval == 300
    assert dm.offline_threshold == 42
    assert dm.value("ChargingStation.Model") == "ocpp-iot node"
    assert dm.is_operative(0) is False
    assert dm.set_availability(0, True).affected == ((1, 1),)


def test_defaults_override_and_are_checked() -> None:
    dm = DeviceModel(defaults={"OCPPCommCtrlr.HeartbeatInterval": "600"})
    assert dm.heartbeat_interval == 600
    with pytest.raises(InvalidValue):
        DeviceModel(defaults={"OCPPCommCtrlr.HeartbeatInterval": "soon"})
    with pytest.raises(KeyError):
        DeviceModel(defaults={"Nope.Nope": "1"})


def test_stations_of_one_layout_share_defaults_but_not_values(tmp_path: Path) -> None:
    # `simulate` builds many models of one configuration: what they change stays their own
    # (copy on write), in memory and in their files, and a new one starts from the defaults
    a = DeviceModel(store=JsonFileStore(tmp_path / "a.json"))
    b = DeviceModel(store=JsonFileStore(tmp_path / "b.json"))
    assert a._defaults is b._defaults
    assert a.set_value("OCPPCommCtrlr.HeartbeatInterval", "600")
    assert a.set_availability(1, False).status == "Accepted"
    assert (a.heartbeat_interval, b.heartbeat_interval) == (600, 300)
    assert b.value("OCPPCommCtrlr.HeartbeatInterval") == "300"
    assert not a.is_operative(1, None) and b.is_operative(1, None)
    assert DeviceModel().heartbeat_interval == 300
    assert not (tmp_path / "b.json").exists()
    again = DeviceModel(store=JsonFileStore(tmp_path / "a.json"))
    assert again.heartbeat_interval == 600 and not again.is_operative(1, None)
    with_default = DeviceModel(defaults={"OCPPCommCtrlr.HeartbeatInterval": "60"})
    assert (with_default.heartbeat_interval, DeviceModel().heartbeat_interval) == (60, 300)


# -- GetBaseReport -> NotifyReport ---------------------------------------------------------------


def _key(item: dict[str, Any]) -> tuple[Any, ...]:
    c, v = item["component"], item["variable"]
    evse = c.get("evse", {})
    return c["name"], evse.get("id"), evse.get("connectorId"), v["name"], v.get("instance")


def test_base_report_pages_by_items_per_message() -> None:
    dm = DeviceModel(evses=(1, 2), defaults={"DeviceDataCtrlr.ItemsPerMessage[GetReport]": "3"})
    one_page = DeviceModel(
        evses=(1, 2),
        defaults={
            "DeviceDataCtrlr.ItemsPerMessage[GetReport]": "1000",
            "DeviceDataCtrlr.BytesPerMessage[GetReport]": "1000000",
        },
    )
    (whole,) = one_page.base_report("FullInventory", 5, NOW)
    reports = dm.base_report("FullInventory", 5, NOW)
    assert len(reports) == -(-len(whole["reportData"]) // 3) > 10
    for seq_no, report in enumerate(reports):
        parse(v201.NotifyReportRequest, report)
        parse(v21.NotifyReportRequest, report)
        assert report["seqNo"] == seq_no and report["requestId"] == 5
        assert report["generatedAt"] == NOW
        assert report.get("tbc", False) is (seq_no < len(reports) - 1)
        assert 1 <= len(report["reportData"]) <= 3
    items = [i for r in reports for i in r["reportData"]]
    keys = [_key(i) for i in items]
    assert keys == [_key(i) for i in whole["reportData"]]  # the same items, in the same order
    assert len(set(keys)) == len(keys)
    assert ("OCPPCommCtrlr", None, None, "HeartbeatInterval", None) in keys
    assert ("Connector", 2, 2, "AvailabilityState", None) in keys
    assert not any(k[0] == "OCPP16" for k in keys)  # 1.6-only keys are not 2.x variables
    by_key = dict(zip(keys, items, strict=True))
    hb = by_key[("OCPPCommCtrlr", None, None, "HeartbeatInterval", None)]
    assert hb["variableAttribute"] == [{"value": "300", "persistent": True}]
    assert hb["variableCharacteristics"] == {
        "dataType": "integer",
        "supportsMonitoring": False,
        "unit": "s",
        "minLimit": 1,
        "maxLimit": 86400,
    }
    power = by_key[("EVSE", 1, None, "Power", None)]
    assert [a.get("type", "Actual") for a in power["variableAttribute"]] == ["Actual", "MaxSet"]
    measurands = by_key[("SampledDataCtrlr", None, None, "TxUpdatedMeasurands", None)]
    assert measurands["variableCharacteristics"]["valuesList"] == ",".join(MEASURANDS)


def test_base_report_pages_by_bytes_per_message() -> None:
    limit = 900
    dm = DeviceModel(defaults={"DeviceDataCtrlr.BytesPerMessage[GetReport]": str(limit)})
    reports = dm.base_report("FullInventory", 1, NOW)
    for report in reports:
        size = len(json.dumps(report, separators=(",", ":")).encode())
        assert size <= limit or len(report["reportData"]) == 1
    assert max(len(r["reportData"]) for r in reports) > 1


def test_base_report_pages_are_split_until_each_fits_the_link() -> None:
    """On a LoRa link a NotifyReport must fit the radio's largest message: a page the link
    refuses is split in halves, the items keep their order, seqNo and tbc are as for any
    paging, and without a limit nothing changes."""
    dm = DeviceModel(evses=(1, 2))
    plain = dm.base_report("FullInventory", 4, NOW)
    limit = 700

    def fits(payload: dict[str, Any]) -> bool:
        return len(cbor.encode(Call("zzzzzzzz", "NotifyReport", payload), "2.0.1")) <= limit

    assert not all(fits(r) for r in plain)  # the default paging would not fit
    assert dm.base_report("FullInventory", 4, NOW, lambda p: True) == plain
    reports = dm.base_report("FullInventory", 4, NOW, fits)
    assert len(reports) > len(plain) and all(fits(r) for r in reports)
    assert [i for r in reports for i in r["reportData"]] == [
        i for r in plain for i in r["reportData"]
    ]
    for seq_no, report in enumerate(reports):
        parse(v201.NotifyReportRequest, report)
        assert report["seqNo"] == seq_no and report.get("tbc", False) is (seq_no < len(reports) - 1)
    answer, via = dm.get_base_report({"requestId": 4, "reportBase": "FullInventory"}, NOW, fits)
    assert answer == {"status": "Accepted"} and via == reports


def test_configuration_and_summary_inventory() -> None:
    dm = DeviceModel(evses=(2, 1))
    dm.set_availability(2, False)
    dm.set_status(1, 2, "Occupied")
    config = [i for r in dm.base_report("ConfigurationInventory", 2, NOW) for i in r["reportData"]]
    assert config and all(
        "mutability" not in a for i in config for a in i["variableAttribute"]
    )  # only ReadWrite variables (the default mutability is left out)
    assert ("ChargingStation", None, None, "Model", None) not in {_key(i) for i in config}
    response, reports = dm.get_base_report({"requestId": 3, "reportBase": "SummaryInventory"}, NOW)
    parse(v201.GetBaseReportResponse, response)
    assert response == {"status": "Accepted"}
    summary = {
        _key(i): i["variableAttribute"][0]["value"] for r in reports for i in r["reportData"]
    }
    assert summary == {
        ("ChargingStation", None, None, "AvailabilityState", None): "Available",
        ("EVSE", 1, None, "AvailabilityState", None): "Occupied",
        ("Connector", 1, 1, "AvailabilityState", None): "Available",
        ("Connector", 1, 2, "AvailabilityState", None): "Occupied",
        ("EVSE", 2, None, "AvailabilityState", None): "Unavailable",
        ("Connector", 2, 1, "AvailabilityState", None): "Unavailable",
    }
    with pytest.raises(ValueError):
        dm.base_report("Everything", 1, NOW)
    assert dm.get_base_report({"requestId": 1, "reportBase": "Everything"}, NOW) == (
        {"status": "NotSupported"},
        [],
    )


# -- 1.6 ----------------------------------------------------------------------------------------


def test_get_configuration_all_and_some_keys() -> None:
    dm = DeviceModel(evses=(1, 1))
    everything = dm.get_configuration()
    parse(v16.GetConfigurationResponse, everything)
    keys = {kv["key"]: kv for kv in everything["configurationKey"]}
    assert "unknownKey" not in everything
    required_core = {
        "AuthorizeRemoteTxRequests", "ClockAlignedDataInterval", "ConnectionTimeOut",
        "ConnectorPhaseRotation", "GetConfigurationMaxKeys", "HeartbeatInterval",
        "LocalAuthorizeOffline", "LocalPreAuthorize", "MeterValuesAlignedData",
        "MeterValuesSampledData", "MeterValueSampleInterval", "NumberOfConnectors",
        "ResetRetries", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId",
        "StopTxnAlignedData", "StopTxnSampledData", "SupportedFeatureProfiles",
        "TransactionMessageAttempts", "TransactionMessageRetryInterval",
        "UnlockConnectorOnEVSideDisconnect",
    }  # fmt: skip
    assert required_core <= set(keys)
    assert keys["NumberOfConnectors"] == {
        "key": "NumberOfConnectors",
        "readonly": True,
        "value": "2",
    }
    assert keys["HeartbeatInterval"]["readonly"] is False
    assert keys["SupportedFeatureProfiles"]["value"].split(",")[0] == "Core"
    some = dm.get_configuration(["HeartbeatInterval", "NoSuchKey", "StopTxnSampledData"])
    parse(v16.GetConfigurationResponse, some)
    assert [kv["key"] for kv in some["configurationKey"]] == [
        "HeartbeatInterval",
        "StopTxnSampledData",
    ]
    assert some["unknownKey"] == ["NoSuchKey"]
    assert dm.get_configuration([]) == everything


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("HeartbeatInterval", "120", "Accepted"),
        ("StopTransactionOnEVSideDisconnect", "FALSE", "Accepted"),
        ("MeterValuesSampledData", "Energy.Active.Import.Register, Voltage", "Accepted"),
        ("HeartbeatInterval", "often", "Rejected"),
        ("HeartbeatInterval", "0", "Rejected"),
        ("MeterValuesSampledData", "Temperature", "Rejected"),
        ("NumberOfConnectors", "3", "Rejected"),
        ("GetConfigurationMaxKeys", "3", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
        ("WebSocketPingInterval", "15", "RebootRequired"),
    ],
)
def test_change_configuration(key: str, value: str, status: str) -> None:
    dm = DeviceModel()
    request = {"key": key, "value": value}
    parse(v16.ChangeConfigurationRequest, request)
    answer = dm.change_configuration(key, value)
    parse(v16.ChangeConfigurationResponse, {"status": answer})
    assert answer == status


def test_one_value_two_names() -> None:
    dm = DeviceModel()
    hb, sampled = comp("OCPPCommCtrlr"), comp("SampledDataCtrlr")
    assert dm.change_configuration("MeterValueSampleInterval", "15") == "Accepted"
    assert dm.change_configuration("StopTransactionOnEVSideDisconnect", "FALSE") == "Accepted"
    assert dm.change_configuration("MeterValuesSampledData", "SoC , Voltage") == "Accepted"
    got = get_vars(
        dm,
        get_item(sampled, "TxUpdatedInterval"),
        get_item(comp("TxCtrlr"), "StopTxOnEVSideDisconnect"),
        get_item(sampled, "TxUpdatedMeasurands"),
    )
    assert [g["attributeValue"] for g in got] == ["15", "false", "SoC,Voltage"]
    assert dm.tx_updated_interval == 15
    set_vars(
        dm,
        set_item(hb, "HeartbeatInterval", "33"),
        set_item(hb, "MessageAttempts", "7", "TransactionEvent"),
        set_item(hb, "MessageAttemptInterval", "9", "TransactionEvent"),
        set_item(comp("AuthCtrlr"), "AuthorizeRemoteStart", "true"),
    )
    keys = ["HeartbeatInterval", "TransactionMessageAttempts", "TransactionMessageRetryInterval"]
    config = dm.get_configuration([*keys, "AuthorizeRemoteTxRequests", "GetConfigurationMaxKeys"])
    assert [kv["value"] for kv in config["configurationKey"]] == ["33", "7", "9", "true", "16"]
    assert dm.message_attempts_tx == 7 and dm.authorize_remote_start is True


# -- availability -------------------------------------------------------------------------------


def test_availability_levels_and_scheduled() -> None:
    dm = DeviceModel(evses=(1, 2))
    assert dm.connectors() == [(1, 1), (2, 1), (2, 2)]
    change = dm.set_availability(0, False, busy={2})
    assert change.status == "Scheduled"
    assert change.affected == ((1, 1), (2, 1), (2, 2))
    assert change.scheduled == ((2, 1), (2, 2))
    parse(v201.ChangeAvailabilityResponse, {"status": change.status})
    assert dm.availability_state() == "Unavailable"
    # A connector set Inoperative stays so when the station becomes Operative again.
    assert dm.set_availability(2, False, 2).affected == ()
    assert dm.set_availability(0, True).affected == ((1, 1), (2, 1))
    assert dm.is_operative(2, 2) is False and dm.is_operative(2) is True
    assert dm.availability_state(2) == "Available"  # one connector still available
    assert dm.set_availability(2, True, 2, busy={2}).status == "Accepted"  # Operative: never
    assert dm.set_availability(2, False, busy={1}).status == "Accepted"  # not busy there
    for evse, connector in [(3, None), (1, 2), (0, 1), (-1, None)]:
        assert dm.set_availability(evse, False, connector).status == "Rejected"
    with pytest.raises(ValueError):
        dm.set_status(1, 1, "Charging")  # a 1.6 status, not an AvailabilityState
    with pytest.raises(ValueError):
        dm.set_status(5, 1, "Occupied")


def test_availability_v16_connector_numbering() -> None:
    dm = DeviceModel(evses=(1, 2))
    assert [dm.to_v16_connector(*c) for c in dm.connectors()] == [1, 2, 3]
    assert dm.from_v16_connector(3) == (2, 2) and dm.from_v16_connector(4) is None
    change = dm.set_availability_v16(3, False, busy=[3])
    parse(v16.ChangeAvailabilityResponse, {"status": change.status})
    assert change.status == "Scheduled" and change.affected == ((2, 2),)
    assert dm.set_availability_v16(9, False).status == "Rejected"
    assert dm.set_availability_v16(0, False).affected == ((1, 1), (2, 1))


# -- the catalog ----------------------------------------------------------------------------------


def test_catalog_lists_match_the_schemas() -> None:
    assert set(MEASURANDS) == {m.value for m in v201.MeasurandEnumType}
    assert set(AVAILABILITY_STATES) == {s.value for s in v201.ConnectorStatusEnumType}
    assert {m for m in MEASURANDS if m in {x.value for x in v16.Measurand}} >= {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Voltage",
        "SoC",
    }


def test_change_availability_payloads() -> None:
    dm = DeviceModel(evses=(1, 2))
    cases: list[tuple[dict[str, Any], str, tuple[tuple[int, int], ...]]] = [
        ({"operationalStatus": "Inoperative", "evse": {"id": 2, "connectorId": 1}}, "Scheduled",
         ((2, 1),)),
        ({"operationalStatus": "Inoperative"}, "Scheduled", ((1, 1), (2, 2))),
        ({"operationalStatus": "Operative", "evse": {"id": 0}}, "Accepted", ((1, 1), (2, 2))),
        ({"operationalStatus": "Inoperative", "evse": {"id": 7}}, "Rejected", ()),
    ]  # fmt: skip
    for request, status, affected in cases:
        for version in (v201, v21):
            parse(version.ChangeAvailabilityRequest, request)
        response, change = dm.change_availability(request, busy={2})
        for version in (v201, v21):
            parse(version.ChangeAvailabilityResponse, response)
        assert (response["status"], change.affected) == (status, affected)
    assert dm.value("Connector@2.1.AvailabilityState") == "Unavailable"
    assert dm.value("Connector@2.2.AvailabilityState") == "Available"
    request16 = {"connectorId": 2, "type": "Operative"}
    parse(v16.ChangeAvailabilityRequest, request16)
    response, change = dm.change_availability_v16(request16)
    parse(v16.ChangeAvailabilityResponse, response)
    assert response == {"status": "Accepted"} and change.affected == ((2, 1),)
    response, change = dm.change_availability_v16(
        {"connectorId": 0, "type": "Inoperative"}, busy=[1]
    )
    assert response == {"status": "Scheduled"} and change.scheduled == ((1, 1),)


def test_extra_variables_write_only_and_duplicates(store: JsonFileStore) -> None:
    secret = VarSpec(
        "VendorCtrlr", "Token", "string", {"Actual": "s3"}, mutability="WriteOnly",
        max_limit=40, v16="VendorToken",
    )  # fmt: skip
    lamp = VarSpec("VendorCtrlr", "Lamp", "boolean", {"Actual": "true"}, v16="VendorLamp")
    dm = DeviceModel(extra=[secret, lamp], store=store)
    vendor = comp("VendorCtrlr")
    token, lamp_on = get_vars(dm, get_item(vendor, "Token"), get_item(vendor, "Lamp"))
    assert token["attributeStatus"] == "Rejected" and "attributeValue" not in token
    assert token["attributeStatusInfo"] == {"reasonCode": "WriteOnly"}
    assert lamp_on["attributeValue"] == "true"
    (result,) = set_vars(dm, set_item(vendor, "Token", "new-token"))
    assert result["attributeStatus"] == "Accepted"
    assert dm.value("VendorCtrlr.Token") == "new-token"  # the station itself can read it
    assert dm.change_configuration("VendorLamp", "False") == "Accepted"
    config = dm.get_configuration(["VendorToken", "VendorLamp"])
    parse(v16.GetConfigurationResponse, config)
    assert config["configurationKey"] == [
        {"key": "VendorToken", "readonly": False},  # no value for a write-only key
        {"key": "VendorLamp", "readonly": False, "value": "false"},
    ]
    reports = dm.base_report("ConfigurationInventory", 1, NOW)
    items = {_key(i): i for r in reports for i in r["reportData"]}
    assert items[("VendorCtrlr", None, None, "Token", None)]["variableAttribute"] == [
        {"mutability": "WriteOnly", "persistent": True}
    ]
    again = DeviceModel(extra=[secret, lamp], store=JsonFileStore(store.path))
    assert again.value("VendorCtrlr.Token") == "new-token"
    with pytest.raises(ValueError):
        DeviceModel(extra=[lamp, lamp])
    with pytest.raises(ValueError):
        DeviceModel(extra=[VarSpec("X", "Y", "integer", {"Actual": "1"}, v16="HeartbeatInterval")])
