"""The charger's standard variables: what :class:`~.device_model.DeviceModel` holds.

Component and variable names, data types, value formats and the 1.6 configuration keys they
stand for are facts from OCPP 2.0.1 part 2 (appendix "Standardized components and variables")
and OCPP 1.6 section 9 ("Standard Configuration Key Names & Values"). Defaults are this node's
choices. Plain data: no I/O, nothing imported from the model layer (a Pi Zero starts faster).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AVAILABILITY_STATES",
    "FEATURE_PROFILES",
    "MEASURANDS",
    "TX_START_POINTS",
    "TX_STOP_POINTS",
    "VarSpec",
    "connector_specs",
    "evse_specs",
    "station_specs",
]

# OCPP 2.0.1 MeasurandEnumType, the members of the *Measurands MemberLists.
MEASURANDS: tuple[str, ...] = (
    "Current.Export",
    "Current.Import",
    "Current.Offered",
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Active.Net",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Energy.Reactive.Net",
    "Energy.Apparent.Net",
    "Energy.Apparent.Import",
    "Energy.Apparent.Export",
    "Frequency",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Factor",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "SoC",
    "Voltage",
)

# TxCtrlr.TxStartPoint / TxStopPoint members (2.0.1 E01/E06: transaction start and stop points),
# of the six the spec names (ParkingBayOccupancy, EVConnected, Authorized, DataSigned,
# PowerPathClosed, EnergyTransfer) those this station implements: the others need what the EVSE
# interface does not report (a parking bay sensor, a signing meter, the EV starting to draw), and
# SetVariables rejects them (NotInValuesList) rather than take them and act otherwise.
#: start: at the cable, at the token, or when both are there and the relay closes
TX_START_POINTS: tuple[str, ...] = ("EVConnected", "Authorized", "PowerPathClosed")
#: stop: the cable (EVConnected) and the token (Authorized). Without Authorized, a stop (the token
#: again, RequestStopTransaction, the token found invalid) withholds the power and the
#: transaction ends when the cable goes.
TX_STOP_POINTS: tuple[str, ...] = ("EVConnected", "Authorized")

# 2.0.1 AvailabilityState OptionList (ChargingStation, EVSE and Connector components).
AVAILABILITY_STATES: tuple[str, ...] = (
    "Available",
    "Occupied",
    "Reserved",
    "Unavailable",
    "Faulted",
)

# 1.6 SupportedFeatureProfiles this node implements (Core; TriggerMessage is RemoteTrigger).
FEATURE_PROFILES = "Core,RemoteTrigger"


@dataclass(frozen=True, slots=True)
class VarSpec:
    """One variable of one component, with its characteristics and default values.

    ``default`` maps attribute type (``Actual``, ``Target``, ``MinSet``, ``MaxSet``) to its
    value; the attribute types a variable supports are the keys. ``max_limit`` of a string or
    list variable is its maximum length (2.0.1 VariableCharacteristicsType). ``computed``
    variables get their value from the station's state when read (availability, clock).
    ``v16`` is the 1.6 configuration key with the same meaning (one value, two names);
    ``v2=False`` hides a 1.6-only key from the 2.x device model.
    """

    component: str
    variable: str
    data_type: str
    default: dict[str, str]
    mutability: str = "ReadWrite"
    instance: str | None = None
    evse: int | None = None
    connector: int | None = None
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: tuple[str, ...] | None = None
    persistent: bool = True
    constant: bool = False
    reboot_required: bool = False
    nonempty: bool = False
    summary: bool = False
    computed: bool = False
    v16: str | None = None
    v2: bool = True

    @property
    def path(self) -> str:
        """Text key of this variable, as used in persistence and :meth:`DeviceModel.value`.

        ``Component.Variable``, ``Component.Variable[Instance]``, ``EVSE@1.Variable`` or
        ``Connector@1.2.Variable``.
        """
        where = ""
        if self.evse is not None:
            where = f"@{self.evse}" + (f".{self.connector}" if self.connector is not None else "")
        inst = f"[{self.instance}]" if self.instance is not None else ""
        return f"{self.component}{where}.{self.variable}{inst}"


def _a(value: str) -> dict[str, str]:
    return {"Actual": value}


def _int(
    component: str,
    variable: str,
    value: int,
    *,
    lo: float | None = 0,
    hi: float | None = None,
    unit: str | None = None,
    **kw: Any,
) -> VarSpec:
    return VarSpec(
        component,
        variable,
        "integer",
        _a(str(value)),
        min_limit=lo,
        max_limit=hi,
        unit=unit,
        **kw,
    )


def _bool(component: str, variable: str, value: bool, **kw: Any) -> VarSpec:
    return VarSpec(component, variable, "boolean", _a("true" if value else "false"), **kw)


def _measurands(component: str, variable: str, value: str, v16: str | None) -> VarSpec:
    # maxLimit 500: the value must also fit 1.6's KeyValue.value (maxLength 500).
    return VarSpec(
        component, variable, "MemberList", _a(value), values_list=MEASURANDS, v16=v16,
        max_limit=500,
    )  # fmt: skip


def station_specs(
    *,
    model: str,
    vendor_name: str,
    serial_number: str | None,
    firmware_version: str | None,
    number_of_connectors: int,
) -> list[VarSpec]:
    """The station-wide variables (controllers and the ChargingStation component).

    The specs are immutable and made once per set of arguments: a thousand simulated stations
    in one process share them."""
    return list(
        _station_specs(model, vendor_name, serial_number, firmware_version, number_of_connectors)
    )


@functools.lru_cache(maxsize=64)
def _station_specs(
    model: str,
    vendor_name: str,
    serial_number: str | None,
    firmware_version: str | None,
    number_of_connectors: int,
) -> tuple[VarSpec, ...]:
    ro = "ReadOnly"
    # fmt: off
    specs = [
        # OCPPCommCtrlr (2.0.1 part 2, B and E use cases; 1.6 core keys).
        _int("OCPPCommCtrlr", "HeartbeatInterval", 300, lo=1, hi=86400, unit="s",
             v16="HeartbeatInterval"),
        _int("OCPPCommCtrlr", "OfflineThreshold", 300, unit="s"),
        _int("OCPPCommCtrlr", "MessageTimeout", 30, lo=1, hi=3600, unit="s", instance="Default"),
        _int("OCPPCommCtrlr", "MessageAttempts", 3, hi=100, instance="TransactionEvent",
             v16="TransactionMessageAttempts"),
        _int("OCPPCommCtrlr", "MessageAttemptInterval", 60, hi=86400, unit="s",
             instance="TransactionEvent", v16="TransactionMessageRetryInterval"),
        _bool("OCPPCommCtrlr", "QueueAllMessages", False),
        _int("OCPPCommCtrlr", "ResetRetries", 2, hi=100, v16="ResetRetries"),
        _bool("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", True,
              v16="UnlockConnectorOnEVSideDisconnect"),
        # On this node the link's keep-alive stands in for the WebSocket ping; it is fixed
        # when the link connects, so a new value needs a restart (2.0.1 B05: RebootRequired).
        _int("OCPPCommCtrlr", "WebSocketPingInterval", 60, hi=3600, unit="s",
             reboot_required=True, v16="WebSocketPingInterval"),
        # SampledDataCtrlr (2.0.1 J02; 1.6 MeterValueSampleInterval, *SampledData).
        _bool("SampledDataCtrlr", "Enabled", True),
        _int("SampledDataCtrlr", "TxUpdatedInterval", 60, hi=86400, unit="s",
             v16="MeterValueSampleInterval"),
        _int("SampledDataCtrlr", "TxEndedInterval", 0, hi=86400, unit="s"),
        _measurands("SampledDataCtrlr", "TxStartedMeasurands", "Energy.Active.Import.Register",
                    None),
        _measurands("SampledDataCtrlr", "TxUpdatedMeasurands",
                    "Energy.Active.Import.Register,Power.Active.Import", "MeterValuesSampledData"),
        _measurands("SampledDataCtrlr", "TxEndedMeasurands", "Energy.Active.Import.Register",
                    "StopTxnSampledData"),
        # AlignedDataCtrlr (2.0.1 J01; 1.6 ClockAlignedDataInterval, *AlignedData). 0 = off.
        _int("AlignedDataCtrlr", "Interval", 0, hi=86400, unit="s", v16="ClockAlignedDataInterval"),
        _measurands("AlignedDataCtrlr", "Measurands", "Energy.Active.Import.Register",
                    "MeterValuesAlignedData"),
        _measurands("AlignedDataCtrlr", "TxEndedMeasurands", "", "StopTxnAlignedData"),
        # the clock-aligned samples an Ended carries (1.6: at ClockAlignedDataInterval)
        _int("AlignedDataCtrlr", "TxEndedInterval", 0, hi=86400, unit="s"),
        # TxCtrlr (2.0.1 E01-E06; 1.6 ConnectionTimeOut, StopTransactionOn*).
        _int("TxCtrlr", "EVConnectionTimeOut", 60, hi=3600, unit="s", v16="ConnectionTimeOut"),
        _bool("TxCtrlr", "StopTxOnEVSideDisconnect", True, v16="StopTransactionOnEVSideDisconnect"),
        _bool("TxCtrlr", "StopTxOnInvalidId", True, v16="StopTransactionOnInvalidId"),
        VarSpec("TxCtrlr", "TxStartPoint", "MemberList", _a("PowerPathClosed"),
                values_list=TX_START_POINTS, nonempty=True, max_limit=200),
        VarSpec("TxCtrlr", "TxStopPoint", "MemberList", _a("EVConnected,Authorized"),
                values_list=TX_STOP_POINTS, nonempty=True, max_limit=200),
        # AuthCtrlr / AuthCacheCtrlr (2.0.1 C; 1.6 AuthorizeRemoteTxRequests, LocalPreAuthorize...).
        _bool("AuthCtrlr", "Enabled", True),
        _bool("AuthCtrlr", "AuthorizeRemoteStart", False, v16="AuthorizeRemoteTxRequests"),
        _bool("AuthCtrlr", "LocalPreAuthorize", False, v16="LocalPreAuthorize"),
        _bool("AuthCtrlr", "LocalAuthorizeOffline", True, v16="LocalAuthorizeOffline"),
        _bool("AuthCtrlr", "OfflineTxForUnknownIdEnabled", False, v16="AllowOfflineTxForUnknownId"),
        _bool("AuthCacheCtrlr", "Enabled", True, v16="AuthorizationCacheEnabled"),
        # DeviceDataCtrlr (2.0.1 B06/B07 paging; 1.6 GetConfigurationMaxKeys).
        _int("DeviceDataCtrlr", "ItemsPerMessage", 16, lo=1, instance="GetReport",
             mutability=ro, persistent=False),
        _int("DeviceDataCtrlr", "ItemsPerMessage", 16, lo=1, instance="GetVariables",
             mutability=ro, persistent=False, v16="GetConfigurationMaxKeys"),
        _int("DeviceDataCtrlr", "ItemsPerMessage", 16, lo=1, instance="SetVariables",
             mutability=ro, persistent=False),
        _int("DeviceDataCtrlr", "BytesPerMessage", 4000, lo=1, instance="GetReport",
             mutability=ro, persistent=False),
        _int("DeviceDataCtrlr", "BytesPerMessage", 4000, lo=1, instance="GetVariables",
             mutability=ro, persistent=False),
        _int("DeviceDataCtrlr", "BytesPerMessage", 4000, lo=1, instance="SetVariables",
             mutability=ro, persistent=False),
        _int("DeviceDataCtrlr", "ConfigurationValueSize", 1000, lo=1, mutability=ro,
             persistent=False),
        _int("DeviceDataCtrlr", "ReportingValueSize", 2500, lo=1, mutability=ro, persistent=False),
        # ClockCtrlr.DateTime: the station's time, given by the caller when read.
        VarSpec("ClockCtrlr", "DateTime", "dateTime", _a(""), mutability=ro, persistent=False,
                computed=True),
        VarSpec("ClockCtrlr", "TimeSource", "SequenceList", _a("Heartbeat"),
                values_list=("Heartbeat", "NTP", "GPS", "RealTimeClock", "MobileNetwork",
                             "RadioTimeTransmitter"), nonempty=True, max_limit=200),
        # ChargingStation: identity from the node's configuration, availability from its state.
        VarSpec("ChargingStation", "Model", "string", _a(model), mutability=ro,
                persistent=False, constant=True, max_limit=20),
        VarSpec("ChargingStation", "VendorName", "string", _a(vendor_name), mutability=ro,
                persistent=False, constant=True, max_limit=50),
        VarSpec("ChargingStation", "AvailabilityState", "OptionList", _a("Available"),
                mutability=ro, persistent=False, values_list=AVAILABILITY_STATES, summary=True,
                computed=True),
        _bool("ChargingStation", "Available", True, mutability=ro, persistent=False,
              constant=True),
        # 1.6-only keys (no 2.x variable of the same meaning in this node).
        _int("OCPP16", "NumberOfConnectors", number_of_connectors, mutability=ro,
             persistent=False, constant=True, v16="NumberOfConnectors", v2=False),
        VarSpec("OCPP16", "SupportedFeatureProfiles", "string", _a(FEATURE_PROFILES),
                mutability=ro, persistent=False, constant=True, v16="SupportedFeatureProfiles",
                v2=False),
        VarSpec("OCPP16", "ConnectorPhaseRotation", "string", _a("Unknown"), max_limit=500,
                v16="ConnectorPhaseRotation", v2=False),
    ]
    if serial_number is not None:
        specs.append(VarSpec("ChargingStation", "SerialNumber", "string", _a(serial_number),
                             mutability=ro, persistent=False, constant=True, max_limit=25))
    if firmware_version is not None:
        specs.append(VarSpec("ChargingStation", "FirmwareVersion", "string",
                             _a(firmware_version), mutability=ro, persistent=False,
                             constant=True, max_limit=50))
    # fmt: on
    return tuple(specs)


def evse_specs(evse: int, max_power_w: float) -> list[VarSpec]:
    """The EVSE component's variables for EVSE ``evse`` (2.0.1 part 2: EVSE)."""
    return list(_evse_specs(evse, max_power_w))


@functools.lru_cache(maxsize=256)
def _evse_specs(evse: int, max_power_w: float) -> tuple[VarSpec, ...]:
    ro = "ReadOnly"
    # fmt: off
    return (
        VarSpec("EVSE", "AvailabilityState", "OptionList", _a("Available"), mutability=ro,
                evse=evse, persistent=False, values_list=AVAILABILITY_STATES, summary=True,
                computed=True),
        VarSpec("EVSE", "Available", "boolean", _a("true"), mutability=ro, evse=evse,
                persistent=False, constant=True),
        # Power: Actual is what the EVSE delivers now (set by the station), MaxSet its rating.
        VarSpec("EVSE", "Power", "decimal", {"Actual": "0", "MaxSet": _num(max_power_w)},
                mutability=ro, evse=evse, persistent=False, unit="W", min_limit=0,
                max_limit=max_power_w),
    )
    # fmt: on


def connector_specs(evse: int, connector: int, connector_type: str) -> list[VarSpec]:
    """The Connector component's variables for connector ``connector`` of EVSE ``evse``."""
    return list(_connector_specs(evse, connector, connector_type))


@functools.lru_cache(maxsize=256)
def _connector_specs(evse: int, connector: int, connector_type: str) -> tuple[VarSpec, ...]:
    ro = "ReadOnly"
    # fmt: off
    return (
        VarSpec("Connector", "AvailabilityState", "OptionList", _a("Available"), mutability=ro,
                evse=evse, connector=connector, persistent=False,
                values_list=AVAILABILITY_STATES, summary=True, computed=True),
        VarSpec("Connector", "Available", "boolean", _a("true"), mutability=ro, evse=evse,
                connector=connector, persistent=False, constant=True),
        VarSpec("Connector", "ConnectorType", "string", _a(connector_type), mutability=ro,
                evse=evse, connector=connector, persistent=False, constant=True, max_limit=20),
    )
    # fmt: on


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
