#!/usr/bin/env python3
"""Generate the typed OCPP models in ``src/ocpp_iot/model/{v16,v201,v21}`` from the OCA schemas.

The schemas are read from the installed PyPI package ``ocpp`` (``ocpp/v16/schemas``,
``ocpp/v201/schemas``, ``ocpp/v21/schemas``). For every version this writes:

* ``enums.py`` - one ``StrEnum`` per schema enum (2.x: named after the definition; 1.6: the
  OCPP 1.6 type name where known, else ``<Owner><Field>``), members in schema order;
* ``datatypes.py`` - one model per object definition / nested object (1.6 nested objects are
  named after their field and shared across actions when structurally identical);
* ``messages.py`` - ``<Action>Request`` / ``<Action>Response`` per schema file;
* ``lenient.py`` - subclasses of the classes above that accept unknown enum values and over-long
  strings (used by ``ocpp_iot.model.parse(..., lenient=True)`` only, imported lazily);
* ``__init__.py`` - re-exports and ``ACTIONS``.

Usage: ``python tools/gen_model.py`` writes; ``--check`` exits 1 if any file would change.
Output is deterministic: it depends only on the schema files and this script.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "ocpp_iot" / "model"

VERSIONS: dict[str, str] = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}

# --------------------------------------------------------------------------------------------
# Who initiates each action. Not in the schemas: taken from the OCPP specifications.
# "charger" = charge point / charging station, "charge_system" = central system / CSMS.
# --------------------------------------------------------------------------------------------

_V16_FROM_CHARGER = {
    "Authorize",
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    # security extension
    "SecurityEventNotification",
    "SignCertificate",
    "LogStatusNotification",
    "SignedFirmwareStatusNotification",
}

_V201_FROM_CHARGER = {
    "Authorize",
    "BootNotification",
    "ClearedChargingLimit",
    "FirmwareStatusNotification",
    "Get15118EVCertificate",
    "GetCertificateStatus",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "NotifyChargingLimit",
    "NotifyCustomerInformation",
    "NotifyDisplayMessages",
    "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule",
    "NotifyEvent",
    "NotifyMonitoringReport",
    "NotifyReport",
    "PublishFirmwareStatusNotification",
    "ReportChargingProfiles",
    "ReservationStatusUpdate",
    "SecurityEventNotification",
    "SignCertificate",
    "StatusNotification",
    "TransactionEvent",
}

_V21_FROM_CHARGER = _V201_FROM_CHARGER | {
    "BatterySwap",
    "ClosePeriodicEventStream",
    "GetCertificateChainStatus",
    "NotifyDERAlarm",
    "NotifyDERStartStop",
    "NotifyPeriodicEventStream",
    "NotifyPriorityCharging",
    "NotifySettlement",
    "OpenPeriodicEventStream",
    "PullDynamicScheduleUpdate",
    "ReportDERControl",
    "VatNumberValidation",
}

_FROM_BOTH = {"DataTransfer"}

FROM_CHARGER = {"1.6": _V16_FROM_CHARGER, "2.0.1": _V201_FROM_CHARGER, "2.1": _V21_FROM_CHARGER}

#: Actions sent with SEND (OCPP 2.1 message type 6): no response schema.
SEND_ONLY = {"2.1": {"NotifyPeriodicEventStream"}}

# Every action the charge system initiates, listed so that a new schema file without a decision
# here fails generation instead of being guessed.
_V16_FROM_SYSTEM = {
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "SignedUpdateFirmware",
}
_V201_FROM_SYSTEM = {
    "CancelReservation",
    "CertificateSigned",
    "ChangeAvailability",
    "ClearCache",
    "ClearChargingProfile",
    "ClearDisplayMessage",
    "ClearVariableMonitoring",
    "CostUpdated",
    "CustomerInformation",
    "DeleteCertificate",
    "GetBaseReport",
    "GetChargingProfiles",
    "GetCompositeSchedule",
    "GetDisplayMessages",
    "GetInstalledCertificateIds",
    "GetLocalListVersion",
    "GetLog",
    "GetMonitoringReport",
    "GetReport",
    "GetTransactionStatus",
    "GetVariables",
    "InstallCertificate",
    "PublishFirmware",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "SetDisplayMessage",
    "SetMonitoringBase",
    "SetMonitoringLevel",
    "SetNetworkProfile",
    "SetVariableMonitoring",
    "SetVariables",
    "TriggerMessage",
    "UnlockConnector",
    "UnpublishFirmware",
    "UpdateFirmware",
}
_V21_FROM_SYSTEM = _V201_FROM_SYSTEM | {
    "AFRRSignal",
    "AdjustPeriodicEventStream",
    "ChangeTransactionTariff",
    "ClearDERControl",
    "ClearTariffs",
    "GetDERControl",
    "GetPeriodicEventStream",
    "GetTariffs",
    "NotifyAllowedEnergyTransfer",
    "NotifyWebPaymentStarted",
    "RequestBatterySwap",
    "SetDERControl",
    "SetDefaultTariff",
    "UpdateDynamicSchedule",
    "UsePriorityCharging",
}
FROM_SYSTEM = {"1.6": _V16_FROM_SYSTEM, "2.0.1": _V201_FROM_SYSTEM, "2.1": _V21_FROM_SYSTEM}

# --------------------------------------------------------------------------------------------
# OCPP 1.6 names. The 1.6 schemas inline their enums and nested objects; these are the type
# names the OCPP 1.6 specification (section 7, "Types") gives them. Anything not listed is
# named by rule (see docs/model.md).
# --------------------------------------------------------------------------------------------

V16_OBJECT_NAMES = {
    "csChargingProfiles": "ChargingProfile",
    "localAuthorizationList": "AuthorizationData",
    "configurationKey": "KeyValue",
    "transactionData": "TransactionData",
}

V16_ENUM_NAMES = {
    ("IdTagInfo", "status"): "AuthorizationStatus",
    ("BootNotification", "status"): "RegistrationStatus",
    ("ChangeAvailability", "type"): "AvailabilityType",
    ("ChangeAvailability", "status"): "AvailabilityStatus",
    ("ChangeConfiguration", "status"): "ConfigurationStatus",
    ("ClearChargingProfile", "chargingProfilePurpose"): "ChargingProfilePurposeType",
    ("ChargingProfile", "chargingProfilePurpose"): "ChargingProfilePurposeType",
    ("ChargingProfile", "chargingProfileKind"): "ChargingProfileKindType",
    ("ChargingProfile", "recurrencyKind"): "RecurrencyKindType",
    ("ChargingSchedule", "chargingRateUnit"): "ChargingRateUnitType",
    ("GetCompositeSchedule", "chargingRateUnit"): "ChargingRateUnitType",
    ("DiagnosticsStatusNotification", "status"): "DiagnosticsStatus",
    ("FirmwareStatusNotification", "status"): "FirmwareStatus",
    ("SampledValue", "context"): "ReadingContext",
    ("SampledValue", "format"): "ValueFormat",
    ("SampledValue", "measurand"): "Measurand",
    ("SampledValue", "phase"): "Phase",
    ("SampledValue", "location"): "Location",
    ("SampledValue", "unit"): "UnitOfMeasure",
    ("RemoteStartTransaction", "status"): "RemoteStartStopStatus",
    ("RemoteStopTransaction", "status"): "RemoteStartStopStatus",
    ("ReserveNow", "status"): "ReservationStatus",
    ("Reset", "type"): "ResetType",
    ("Reset", "status"): "ResetStatus",
    ("SendLocalList", "updateType"): "UpdateType",
    ("SendLocalList", "status"): "UpdateStatus",
    ("SetChargingProfile", "status"): "ChargingProfileStatus",
    ("StatusNotification", "errorCode"): "ChargePointErrorCode",
    ("StatusNotification", "status"): "ChargePointStatus",
    ("StopTransaction", "reason"): "Reason",
    ("TriggerMessage", "requestedMessage"): "MessageTrigger",
    ("TriggerMessage", "status"): "TriggerMessageStatus",
    ("UnlockConnector", "status"): "UnlockStatus",
}

# Names that a generated attribute must not take (BaseModel API, our API, typing helpers used
# in annotations inside class bodies).
_RESERVED = {
    "to_payload",
    "schema_name",
    "list",
    "Annotated",
    "Field",
    "StrictStr",
    "StrictInt",
    "StrictFloat",
    "StrictBool",
    "DateTime",
    "Uri",
    "Omittable",
}

# --------------------------------------------------------------------------------------------
# Naming helpers
# --------------------------------------------------------------------------------------------

_WORD_FIXES: tuple[tuple[str, str], ...] = (
    ("SoC", "Soc"),
    ("soC", "soc"),
    ("SoH", "Soh"),
    ("soH", "soh"),
    ("V2X", "V2x"),
    ("EMAIDs", "Emaids"),
)


def snake(name: str, *, split_digits: bool = False) -> str:
    """camelCase / PascalCase / with acronyms -> snake_case (see docs/model.md for the rule)."""
    s = name
    for old, new in _WORD_FIXES:
        s = s.replace(old, new)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    if split_digits:
        s = re.sub(r"([A-Za-z])([0-9])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s)
    s = re.sub(r"_+", "_", s).strip("_")
    return s.lower()


def method_name(action: str) -> str:
    """Action -> behaviour method name: words split at case changes and letter/digit borders."""
    return snake(action, split_digits=True)


def member_name(value: str) -> str:
    """Enum value -> UPPER_SNAKE member name."""
    n = snake(value).upper()
    if not n or n[0].isdigit():
        n = "V_" + n
    if keyword.iskeyword(n.lower()) and False:  # pragma: no cover - upper-case never clashes
        n += "_"
    return n


def attr_name(alias: str) -> str:
    n = snake(alias)
    if keyword.iskeyword(n) or n in _RESERVED or n.startswith("model_") or n in _BASEMODEL_ATTRS:
        n += "_"
    return n


def camel(name: str) -> str:
    return name[:1].upper() + name[1:]


def _basemodel_attrs() -> set[str]:
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover
        return set()
    return {a for a in dir(BaseModel) if not a.startswith("__")}


_BASEMODEL_ATTRS = _basemodel_attrs()

# --------------------------------------------------------------------------------------------
# Intermediate representation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class T:
    """A field type. kind: str | int | num | bool | enum | obj | list | any."""

    kind: str
    ref: str = ""  # enum / obj class name
    item: T | None = None  # list item
    max_length: int | None = None
    min_length: int | None = None
    fmt: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: float | None = None
    min_items: int | None = None
    max_items: int | None = None


@dataclass
class FieldDef:
    alias: str
    attr: str
    type: T
    required: bool


@dataclass
class ClassDef:
    name: str
    fields: list[FieldDef]
    open: bool  # additional properties allowed
    schema_name: str
    kind: str  # "datatype" | "message"
    source: str = ""


@dataclass
class VersionModel:
    version: str
    package: str
    enums: dict[str, list[str]] = field(default_factory=dict)
    classes: dict[str, ClassDef] = field(default_factory=dict)
    messages: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # action -> names
    schema_files: list[str] = field(default_factory=list)


_IGNORED_KEYS = {"description", "javaType", "comment", "$id", "$schema", "title", "default"}


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in _IGNORED_KEYS}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def schema_dir(version: str) -> Path:
    import ocpp

    return Path(os.path.dirname(ocpp.__file__)) / VERSIONS[version] / "schemas"


def load_schema(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8-sig") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


class Builder:
    def __init__(self, vm: VersionModel) -> None:
        self.vm = vm
        self.obj_keys: dict[str, str] = {}  # canonical structure -> class name (1.6 inline)
        self.enum_keys: dict[tuple[str, tuple[str, ...]], str] = {}
        self.actions: set[str] = set()
        self.defs: dict[str, Any] = {}

    # -- enums ----------------------------------------------------------------------------
    def add_enum(self, name: str, values: list[str]) -> str:
        vals = tuple(values)
        if name in self.vm.enums:
            if tuple(self.vm.enums[name]) != vals:
                raise SystemExit(f"{self.vm.version}: enum {name} defined twice, differently")
            return name
        self.vm.enums[name] = list(values)
        return name

    # -- types ----------------------------------------------------------------------------
    def type_of(self, node: dict[str, Any], owner: str, fname: str, source: str) -> T:
        if "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/definitions/"):
                raise SystemExit(f"unsupported $ref {ref} in {source}")
            dname = ref.split("/")[-1]
            return self.definition(dname, source)
        if "enum" in node:
            # 1.6 nested objects repeat some enums (StopTransaction's copy of SampledValue):
            # reuse the enum already made for the same field with the same values.
            key = (fname, tuple(node["enum"]))
            nested = self.vm.version == "1.6" and owner not in self.actions
            if nested and key in self.enum_keys:
                return T("enum", ref=self.enum_keys[key])
            ename = self.add_enum(self.enum_name(owner, fname), node["enum"])
            if nested:
                self.enum_keys.setdefault(key, ename)
            return T("enum", ref=ename)
        t = node.get("type")
        if t == "object":
            cname = self.inline_object_name(node, owner, fname)
            return T("obj", ref=self.object(cname, node, source, "datatype", cname))
        if t == "array":
            item = self.type_of(node["items"], owner, fname, source)
            return T(
                "list",
                item=item,
                min_items=node.get("minItems"),
                max_items=node.get("maxItems"),
            )
        if t == "string":
            fmt = node.get("format")
            if fmt not in (None, "date-time", "uri"):
                raise SystemExit(f"unsupported format {fmt} in {source}")
            return T(
                "str",
                max_length=node.get("maxLength"),
                min_length=node.get("minLength"),
                fmt=fmt,
            )
        if t in ("integer", "number"):
            return T(
                "int" if t == "integer" else "num",
                minimum=node.get("minimum"),
                maximum=node.get("maximum"),
                multiple_of=node.get("multipleOf"),
            )
        if t == "boolean":
            return T("bool")
        if t is None:
            return T("any")
        raise SystemExit(f"unsupported type {t!r} in {source}")

    def enum_name(self, owner: str, fname: str) -> str:
        if self.vm.version == "1.6":
            special = V16_ENUM_NAMES.get((owner, fname))
            if special:
                return special
        f = camel(fname)
        return f if f.startswith(owner) else owner + f

    def inline_object_name(self, node: dict[str, Any], owner: str, fname: str) -> str:
        key = json.dumps(_strip(node), sort_keys=True)
        if key in self.obj_keys:
            return self.obj_keys[key]
        base = V16_OBJECT_NAMES.get(fname, camel(fname)) if self.vm.version == "1.6" else ""
        if not base:
            base = owner + camel(fname)
        name = base
        if name in self.vm.classes or name in self.obj_keys.values():
            name = owner + camel(fname)
        if name in self.vm.classes or name in self.obj_keys.values():
            raise SystemExit(f"{self.vm.version}: cannot name nested object {owner}.{fname}")
        self.obj_keys[key] = name
        return name

    def definition(self, dname: str, source: str) -> T:
        node = self.defs[dname]
        if "enum" in node:
            return T("enum", ref=self.add_enum(dname, node["enum"]))
        if node.get("type") == "object":
            key = json.dumps(_strip(node), sort_keys=True)
            known = self.vm.classes.get(dname)
            if known is not None:
                if known.source != key:
                    raise SystemExit(f"{self.vm.version}: definition {dname} differs in {source}")
                return T("obj", ref=dname)
            return T("obj", ref=self.object(dname, node, source, "datatype", dname, key))
        # A definition that is a plain scalar: inline it.
        return self.type_of(node, dname, dname, source)

    def object(
        self,
        cname: str,
        node: dict[str, Any],
        source: str,
        kind: str,
        schema_name: str,
        key: str | None = None,
    ) -> str:
        if cname in self.vm.classes:
            return cname
        key = key or json.dumps(_strip(node), sort_keys=True)
        cdef = ClassDef(cname, [], node.get("additionalProperties", True) is not False, "", kind)
        cdef.schema_name = schema_name
        cdef.source = key
        self.vm.classes[cname] = cdef  # reserve the name before recursing
        required = set(node.get("required", []))
        owner = cname
        if kind == "message":
            owner = re.sub(r"(Request|Response)$", "", cname)
        seen: set[str] = set()
        for alias, sub in node.get("properties", {}).items():
            attr = attr_name(alias)
            if attr in seen:
                raise SystemExit(f"{cname}: two fields map to attribute {attr}")
            seen.add(attr)
            cdef.fields.append(
                FieldDef(alias, attr, self.type_of(sub, owner, alias, source), alias in required)
            )
        missing = required - set(node.get("properties", {}))
        if missing:
            raise SystemExit(f"{cname}: required fields without schema: {missing}")
        return cname


def build(version: str) -> VersionModel:
    vm = VersionModel(version, VERSIONS[version])
    b = Builder(vm)
    sdir = schema_dir(version)
    files = sorted(p.name for p in sdir.glob("*.json"))
    vm.schema_files = files
    actions: dict[str, dict[str, str]] = {}
    for fn in files:
        stem = fn[:-5]
        if stem.endswith("Response"):
            actions.setdefault(stem[: -len("Response")], {})["response"] = fn
        elif stem.endswith("Request"):
            actions.setdefault(stem[: -len("Request")], {})["request"] = fn
        else:  # 1.6 requests, and 2.1's SEND-only NotifyPeriodicEventStream
            actions.setdefault(stem, {})["request"] = fn
    b.actions = set(actions)
    for action in sorted(actions):
        parts = actions[action]
        if "request" not in parts:
            raise SystemExit(f"{version}: {action} has no request schema")
        names: list[str | None] = []
        for part in ("request", "response"):
            part_file = parts.get(part)
            if part_file is None:
                if action not in SEND_ONLY.get(version, set()):
                    raise SystemExit(f"{version}: {action} has no response schema")
                names.append(None)
                continue
            schema = load_schema(sdir / part_file)
            b.defs = schema.get("definitions", {})
            cname = action + ("Request" if part == "request" else "Response")
            if schema.get("type") != "object":
                raise SystemExit(f"{part_file}: top level is not an object")
            b.object(cname, schema, part_file, "message", part_file[:-5])
            vm.classes[cname].source = part_file
            names.append(cname)
        vm.messages[action] = (names[0] or "", names[1])
        if (action in FROM_CHARGER[version]) + (action in FROM_SYSTEM[version]) + (
            action in _FROM_BOTH
        ) != 1:
            raise SystemExit(f"{version}: no single initiator known for {action}")
    return vm


# --------------------------------------------------------------------------------------------
# Emission
# --------------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return repr(int(v)) if float(v).is_integer() else repr(v)


def type_expr(t: T, lenient: bool, twins: set[str]) -> str:
    k = t.kind
    if k == "str":
        base = {"date-time": "DateTime", "uri": "Uri"}.get(t.fmt or "", "StrictStr")
        cons = []
        if t.min_length is not None:
            cons.append(f"min_length={t.min_length}")
        if t.max_length is not None and not lenient:
            cons.append(f"max_length={t.max_length}")
        if not cons:
            return base
        return _alias(f"Annotated[{base}, Field({', '.join(cons)})]", base, cons)
    if k in ("int", "num"):
        cons = []
        if t.minimum is not None:
            cons.append(f"ge={_num(t.minimum)}")
        if t.maximum is not None:
            cons.append(f"le={_num(t.maximum)}")
        icons = list(cons)
        fcons = list(cons)
        if t.multiple_of is not None:
            fcons.append(f"multiple_of={_num(float(t.multiple_of))}")
            if float(t.multiple_of).is_integer():
                icons.append(f"multiple_of={int(t.multiple_of)}")
        ie = f"Annotated[StrictInt, Field({', '.join(icons)})]" if icons else "StrictInt"
        if k == "int":
            return _alias(ie, "Int", icons) if icons else ie
        fe = f"Annotated[StrictFloat, Field({', '.join(fcons)})]" if fcons else "StrictFloat"
        return _alias(f"{ie} | {fe}", "Number", fcons)
    if k == "bool":
        return "StrictBool"
    if k == "any":
        return "Any"
    if k == "enum":
        if lenient:
            return f'Annotated[enums.{t.ref} | StrictStr, Field(union_mode="left_to_right")]'
        return f"enums.{t.ref}"
    if k == "obj":
        if lenient and t.ref in twins:
            return t.ref
        return f"{_home(t.ref)}{t.ref}"
    if k == "list":
        assert t.item is not None
        inner = type_expr(t.item, lenient, twins)
        cons = []
        if t.min_items is not None:
            cons.append(f"min_length={t.min_items}")
        if t.max_items is not None:
            cons.append(f"max_length={t.max_items}")
        if cons:
            return f"Annotated[list[{inner}], Field({', '.join(cons)})]"
        return f"list[{inner}]"
    raise AssertionError(k)


_HOME: dict[str, str] = {}
#: constrained scalar types, shared by all fields that use them (fewer pydantic FieldInfo
#: objects to build at import): type expression -> alias name in ``_types.py``
_ALIASES: dict[str, str] = {}


def _alias(expr: str, base: str, cons: list[str]) -> str:
    if expr not in _ALIASES:
        parts = [base.replace("Strict", "")]
        for c in cons:
            key, _, val = c.partition("=")
            val = val.replace("-", "m").replace(".", "p")
            parts.append(f"{key}{val}")
        name = "_".join(parts)
        if name in _ALIASES.values():
            raise SystemExit(f"alias name clash {name}")
        _ALIASES[expr] = name
    return _ALIASES[expr]


def _home(cname: str) -> str:
    """Module prefix of a class when referenced from another generated module."""
    return _HOME.get(cname, "")


def header(vm: VersionModel, what: str) -> str:
    return (
        f'"""OCPP {vm.version} {what}.\n\n'
        f"GENERATED by tools/gen_model.py from the JSON schemas in the PyPI package `ocpp`\n"
        f"(ocpp/{vm.package}/schemas, {len(vm.schema_files)} files). DO NOT EDIT: run\n"
        f"`python tools/gen_model.py` instead.\n"
        f'"""\n\n'
        "# ruff: noqa\n"
        "# fmt: off\n"
    )


def needs_twin(vm: VersionModel) -> set[str]:
    """Classes that differ in their lenient form: those reaching an enum or a maxLength."""

    def t_needs(t: T, memo: dict[str, bool]) -> bool:
        if t.kind == "enum":
            return True
        if t.kind == "str":
            return t.max_length is not None
        if t.kind == "list":
            assert t.item is not None
            return t_needs(t.item, memo)
        if t.kind == "obj":
            return c_needs(t.ref, memo)
        return False

    def c_needs(name: str, memo: dict[str, bool]) -> bool:
        if name not in memo:
            memo[name] = False
            memo[name] = any(t_needs(f.type, memo) for f in vm.classes[name].fields)
        return memo[name]

    memo: dict[str, bool] = {}
    return {n for n in vm.classes if c_needs(n, memo)}


def deps(t: T) -> set[str]:
    if t.kind == "obj":
        return {t.ref}
    if t.kind == "list" and t.item is not None:
        return deps(t.item)
    return set()


def topo(names: list[str], vm: VersionModel) -> list[str]:
    order: list[str] = []
    done: set[str] = set()
    wanted = set(names)

    def visit(n: str, stack: tuple[str, ...]) -> None:
        if n in done:
            return
        if n in stack:
            raise SystemExit(f"recursive structure {' -> '.join(stack + (n,))}")
        for f in vm.classes[n].fields:
            for d in sorted(deps(f.type)):
                if d in wanted:
                    visit(d, stack + (n,))
        done.add(n)
        order.append(n)

    for n in sorted(names):
        visit(n, ())
    return order


def widens(t: T, twins: set[str]) -> bool:
    """Whether the lenient type of a field is not a subtype of its strict one for a type
    checker: an enum that also takes any string, or a list whose items change (lists are
    invariant). A lenient twin class is a subclass of the strict one, so a plain field of it
    narrows and needs nothing."""
    if t.kind == "enum":
        return True
    if t.kind == "list":
        assert t.item is not None
        return _item_differs(t.item, twins)
    return False


def _item_differs(t: T, twins: set[str]) -> bool:
    """Whether a list item's lenient type is a different type to a type checker (a dropped
    ``maxLength`` leaves it ``str``)."""
    if t.kind == "enum":
        return True
    if t.kind == "obj":
        return t.ref in twins
    if t.kind == "list":
        assert t.item is not None
        return _item_differs(t.item, twins)
    return False


def field_line(f: FieldDef, lenient: bool, twins: set[str]) -> str:
    te = type_expr(f.type, lenient, twins)
    # The lenient twins widen their parents' fields on purpose (unknown enum values accepted):
    # tell the type checker so on exactly those lines.
    ignore = "  # type: ignore[assignment]" if lenient and widens(f.type, twins) else ""
    if f.required:
        return f"    {f.attr}: {te} = Field(alias={f.alias!r}){ignore}"
    # Omittable[X]: `X | None` for type checkers, `X` (null refused) for validation; see _base.
    return f"    {f.attr}: Omittable[{te}] = Field(None, alias={f.alias!r}){ignore}"


def class_block(c: ClassDef, vm: VersionModel, doc: str) -> str:
    base = "OpenOcppModel" if c.open else "OcppModel"
    lines = [f"class {c.name}({base}):", f'    """{doc}"""', ""]
    lines.append(f"    schema_name: ClassVar[str] = {c.schema_name!r}")
    for f in c.fields:
        lines.append(field_line(f, False, set()))
    return "\n".join(lines) + "\n"


IMPORTS = (
    "from typing import Annotated, Any, ClassVar\n\n"
    "from pydantic import Field, StrictBool\n\n"
    "from .._base import DateTime, OcppModel, Omittable, OpenOcppModel, StrictFloat, StrictInt"
    ", StrictStr, Uri\n"
    "from ._types import *\n"
)


def describe(c: ClassDef, vm: VersionModel) -> str:
    if c.kind == "message":
        return f"OCPP {vm.version} {c.name} (schema {c.source})."
    return f"OCPP {vm.version} data type {c.name}."


def emit(vm: VersionModel) -> dict[str, str]:
    files: dict[str, str] = {}
    # enums
    out = [header(vm, "enumerations"), "from enum import StrEnum\n"]
    names = sorted(vm.enums)
    out.append(f"__all__ = {names!r}\n")
    for en in names:
        out.append(f"\nclass {en}(StrEnum):")
        out.append(f'    """OCPP {vm.version} enumeration {en}."""\n')
        used: set[str] = set()
        for v in vm.enums[en]:
            m = member_name(v)
            while m in used:
                m += "_"
            used.add(m)
            out.append(f"    {m} = {v!r}")
        out.append("")
    files["enums.py"] = "\n".join(out)

    datatypes = [n for n, c in vm.classes.items() if c.kind == "datatype"]
    messages = [n for n, c in vm.classes.items() if c.kind == "message"]
    _HOME.clear()
    _ALIASES.clear()
    for n in datatypes:
        _HOME[n] = ""

    # datatypes
    out = [header(vm, "data types"), IMPORTS, "from . import enums\n"]
    out.append(f"__all__ = {sorted(datatypes)!r}\n")
    for n in topo(datatypes, vm):
        out.append("\n" + class_block(vm.classes[n], vm, describe(vm.classes[n], vm)))
    files["datatypes.py"] = "\n".join(out)

    # messages
    for n in datatypes:
        _HOME[n] = "datatypes."
    out = [header(vm, "messages"), IMPORTS, "from . import datatypes, enums\n"]
    out.append(f"__all__ = {sorted(messages)!r}\n")
    for n in sorted(messages):
        out.append("\n" + class_block(vm.classes[n], vm, describe(vm.classes[n], vm)))
    files["messages.py"] = "\n".join(out)

    # lenient twins
    twins = needs_twin(vm)
    out = [
        header(vm, "lenient twins (unknown enum values and over-long strings accepted)"),
        IMPORTS,
        "from . import datatypes, enums, messages\n",
    ]
    tw_sorted = sorted(twins)
    out.append(f"__all__ = {tw_sorted!r}\n")
    for n in topo(tw_sorted, vm):
        c = vm.classes[n]
        parent = ("datatypes." if c.kind == "datatype" else "messages.") + n
        lines = [f"class {n}({parent}):", f'    """Lenient form of :class:`{parent}`."""', ""]
        for f in c.fields:
            strict_te = type_expr(f.type, False, set())
            lenient_te = type_expr(f.type, True, twins)
            if strict_te != lenient_te:
                lines.append(field_line(f, True, twins))
        out.append("\n" + "\n".join(lines) + "\n")
    files["lenient.py"] = "\n".join(out)

    # shared constrained types (collected while emitting the modules above)
    out = [header(vm, "constrained scalar types shared by the models")]
    out.append("from typing import Annotated\n")
    out.append("from pydantic import Field\n")
    out.append("from .._base import DateTime, StrictFloat, StrictInt, StrictStr, Uri\n")
    names = sorted(_ALIASES.values())
    out.append(f"__all__ = {names!r}\n")
    for expr, name in sorted(_ALIASES.items(), key=lambda kv: kv[1]):
        out.append(f"{name} = {expr}")
    out.append("")
    files["_types.py"] = "\n".join(out)

    # package
    out = [header(vm, "models and action registry")]
    out.append("from .._base import Action")
    out.append("from .datatypes import *  # noqa: F403")
    out.append("from .enums import *  # noqa: F403")
    out.append("from .messages import *  # noqa: F403")
    out.append("from . import datatypes as _datatypes, enums as _enums, messages as _messages")
    out.append("")
    out.append(f"VERSION = {vm.version!r}")
    out.append("")
    out.append("#: action name -> Action(name, request, response, initiator, method)")
    out.append("ACTIONS: dict[str, Action] = {")
    for action in sorted(vm.messages):
        req, resp = vm.messages[action]
        if action in _FROM_BOTH:
            who = "both"
        elif action in FROM_CHARGER[vm.version]:
            who = "charger"
        else:
            who = "charge_system"
        out.append(
            f"    {action!r}: Action({action!r}, {req}, {resp}, {who!r}, {method_name(action)!r}),"
        )
    out.append("}")
    out.append("")
    out.append(
        '__all__ = ["ACTIONS", "VERSION"] + _enums.__all__ + _datatypes.__all__ + _messages.__all__'
    )
    out.append("")
    files["__init__.py"] = "\n".join(out)
    return files


def generate() -> dict[Path, str]:
    result: dict[Path, str] = {}
    for version, pkg in VERSIONS.items():
        vm = build(version)
        for name, text in emit(vm).items():
            result[OUT / pkg / name] = text
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the output would change")
    args = ap.parse_args(argv)
    files = generate()
    drift: list[str] = []
    for pkg in VERSIONS.values():
        out_dir = OUT / pkg
        if out_dir.exists():
            for p in sorted(out_dir.glob("*.py")):
                if p not in files:
                    drift.append(f"unexpected file {p.relative_to(ROOT)}")
                    if not args.check:
                        p.unlink()
    for path, text in sorted(files.items()):
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            drift.append(f"{'stale' if old is not None else 'missing'} {path.relative_to(ROOT)}")
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if args.check:
        for d in drift:
            print(d, file=sys.stderr)
        return 1 if drift else 0
    for d in drift:
        print("wrote", d.split(" ", 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
