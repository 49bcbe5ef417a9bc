"""The charger's persisted device model: 2.0.1/2.1 components and variables, 1.6 configuration.

One store, two views. OCPP 2.0.1 and 2.1 see components and variables with attributes
(GetVariables B06, SetVariables B05, GetBaseReport -> NotifyReport B07); OCPP 1.6 sees the same
values through its configuration keys (GetConfiguration / ChangeConfiguration, 1.6 section 9):
``HeartbeatInterval`` and ``OCPPCommCtrlr.HeartbeatInterval`` are one value. Availability set by
ChangeAvailability (2.0.1 G03/G04, 1.6 5.2) is kept here too, because it survives a reboot.

Sans-IO apart from its own small persistence (:class:`JsonFileStore`, written only when a
persisted value changes). Operations take and return JSON-level payloads (dicts as
``json.loads`` gives them), ready for the generated models; time is passed in (``now_iso``).
"""

from __future__ import annotations

import functools
import json
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from .device_model_access import Accessors, spec_of
from .device_model_catalog import VarSpec, connector_specs, evse_specs, station_specs
from .device_model_v16 import V16View
from .device_model_values import (
    AvailabilityChange,
    Change,
    DeviceModelError,
    InvalidValue,
    JsonFileStore,
    Listener,
    check_value,
)

__all__ = [
    "AvailabilityChange",
    "Change",
    "DeviceModel",
    "DeviceModelError",
    "InvalidValue",
    "JsonFileStore",
    "VarSpec",
]

_ATTRIBUTE_ORDER = ("Actual", "Target", "MinSet", "MaxSet")
_REPORT_BASES = ("FullInventory", "ConfigurationInventory", "SummaryInventory")
_STATE_FILE_VERSION = 1


class DeviceModel(Accessors, V16View):
    """Components and variables of one charging station, persisted in ``store``.

    ``evses`` gives the number of connectors of each EVSE (EVSE ids 1..N). ``defaults`` overrides
    catalog defaults by path (``{"DeviceDataCtrlr.ItemsPerMessage[GetReport]": "4"}``), read-only
    ones included; persisted values saved by an earlier run win over defaults. Without a store
    the model lives in memory only. ``extra`` adds the station's own variables (a vendor
    component, a sensor): they behave as the standard ones, in both versions' views.
    """

    def __init__(
        self,
        *,
        model: str = "ocpp-iot node",
        vendor_name: str = "ocpp-iot",
        serial_number: str | None = None,
        firmware_version: str | None = None,
        evses: Sequence[int] = (1,),
        max_power_w: float = 22000.0,
        connector_type: str = "cType2",
        extra: Sequence[VarSpec] = (),
        store: JsonFileStore | None = None,
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        # a station's own variables (VarSpec holds a dict: unhashable) get a layout of their own
        build = _layout if not extra else _layout.__wrapped__
        layout = build(
            model,
            vendor_name,
            serial_number,
            firmware_version,
            tuple(evses),
            max_power_w,
            connector_type,
            tuple(extra),
            tuple((defaults or {}).items()),
        )
        self.evses: tuple[int, ...] = layout.evses
        self._specs: Mapping[str, VarSpec] = layout.specs
        self._components = layout.components
        self._v16 = layout.v16
        # copy on write: this station's values over the layout's defaults, which stations of
        # the same layout share (`charger-node simulate`: one copy for all, issue 16)
        self._defaults: Mapping[tuple[str, str], str] = layout.values
        self._values: MutableMapping[tuple[str, str], str] = ChainMap({}, layout.values)
        self._inoperative: set[str] = set()
        self._status: dict[tuple[int, int | None], str] = {}
        self._listeners: list[Listener] = []
        self._store = store
        self._saved: dict[str, Any] = self._snapshot()
        if store is not None:
            self._load(store.load())

    # -- plain access ------------------------------------------------------------------------

    def value(self, path: str, attribute: str = "Actual") -> str | None:
        """The value of variable ``path`` (see :attr:`VarSpec.path`), or None.

        AvailabilityState reads the current state; ClockCtrlr.DateTime has none here.
        """
        return self._read(self._spec(path), attribute, None)

    def set_value(self, path: str, value: str, attribute: str = "Actual") -> bool:
        """Set a value for the station itself (BootNotification's interval, EVSE Power...).

        Mutability does not apply (the station may change its read-only values); the data type
        and limits do (:class:`InvalidValue`). Persists and notifies listeners when it changed;
        returns whether it did.
        """
        spec = self._spec(path)
        if attribute not in spec.default:
            raise ValueError(f"{path} has no {attribute} attribute")
        new = check_value(spec, value, max_size=self._int("DeviceDataCtrlr.ConfigurationValueSize"))
        changes = self._apply([(spec, attribute, new)])
        return bool(changes)

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after each change is persisted; returns an unsubscribe."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @property
    def writes(self) -> int:
        """How many times the store was written (0 without one)."""
        return self._store.writes if self._store is not None else 0

    # -- 2.0.1 / 2.1: GetVariables (B06), SetVariables (B05), GetBaseReport (B07) -------------

    def get_variables(
        self, payload: Mapping[str, Any], *, now_iso: str | None = None
    ) -> dict[str, Any]:
        """A GetVariablesResponse payload for a GetVariablesRequest payload.

        ``now_iso`` is the station's time, the value of ClockCtrlr.DateTime (Rejected without
        it). More items than ItemsPerMessageGetVariables, or a request longer than
        BytesPerMessageGetVariables, raises :class:`DeviceModelError` (B06: the station may
        answer OccurrenceConstraintViolation / FormatViolation).
        """
        items = payload["getVariableData"]
        self._check_size(payload, items, "GetVariables")
        results = []
        for item in items:
            component, variable = item["component"], item["variable"]
            result: dict[str, Any] = {"component": component, "variable": variable}
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            spec, status = self._find(component, variable)
            if spec is not None:
                attr = item.get("attributeType", "Actual")
                value = self._read(spec, attr, now_iso)
                if attr not in spec.default:
                    status = "NotSupportedAttributeType"
                elif spec.mutability == "WriteOnly" or value is None:
                    status = "Rejected"  # B06: a WriteOnly value is never read back
                    reason = "WriteOnly" if spec.mutability == "WriteOnly" else "NoValue"
                    result["attributeStatusInfo"] = {"reasonCode": reason}
                else:
                    status = "Accepted"
                    limit = self._int("DeviceDataCtrlr.ReportingValueSize")
                    result["attributeValue"] = value[:limit]
            result["attributeStatus"] = status
            results.append(result)
        return {"getVariableResult": results}

    def set_variables(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """A SetVariablesResponse payload for a SetVariablesRequest payload.

        Items apply in order; ReadOnly variables and values that fail their data type or
        limits are Rejected (with a reasonCode), a variable that only takes effect after a
        restart answers RebootRequired (the new value is stored). One store write for the
        whole request, then the listeners hear of each change.
        """
        items = payload["setVariableData"]
        self._check_size(payload, items, "SetVariables")
        results, accepted = [], []
        max_size = self._int("DeviceDataCtrlr.ConfigurationValueSize")
        for item in items:
            component, variable = item["component"], item["variable"]
            result: dict[str, Any] = {"component": component, "variable": variable}
            if "attributeType" in item:
                result["attributeType"] = item["attributeType"]
            spec, status = self._find(component, variable)
            if spec is not None:
                attr = item.get("attributeType", "Actual")
                if attr not in spec.default:
                    status = "NotSupportedAttributeType"
                elif spec.mutability == "ReadOnly":
                    status = "Rejected"
                    result["attributeStatusInfo"] = {"reasonCode": "ReadOnly"}
                else:
                    try:
                        new = check_value(spec, item["attributeValue"], max_size=max_size)
                    except InvalidValue as exc:
                        status = "Rejected"
                        result["attributeStatusInfo"] = _status_info(exc)
                    else:
                        changed = self._values[(spec.path, attr)] != new
                        self._values[(spec.path, attr)] = new
                        if changed:
                            accepted.append(Change(spec.path, attr, new, spec))
                        status = (
                            "RebootRequired" if changed and spec.reboot_required else "Accepted"
                        )
            result["attributeStatus"] = status
            results.append(result)
        self._commit(accepted)
        return {"setVariableResult": results}

    def get_base_report(
        self,
        payload: Mapping[str, Any],
        now_iso: str,
        fits: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The GetBaseReportResponse payload and the NotifyReportRequest payloads to send
        (``fits``: see :meth:`base_report`)."""
        base = payload["reportBase"]
        if base not in _REPORT_BASES:
            return {"status": "NotSupported"}, []
        reports = self.base_report(base, payload["requestId"], now_iso, fits)
        return ({"status": "Accepted"} if reports else {"status": "EmptyResultSet"}), reports

    def base_report(
        self,
        report_base: str,
        request_id: int,
        now_iso: str,
        fits: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """NotifyReportRequest payloads for ``report_base`` (B07), seqNo 0.., tbc on all but last.

        FullInventory is every variable, ConfigurationInventory the writable ones,
        SummaryInventory the AvailabilityState of the station, each EVSE and each connector.
        A message carries at most ItemsPerMessageGetReport items and, beyond its first item,
        at most BytesPerMessageGetReport bytes of compact JSON. Attribute fields equal to their
        schema defaults (type Actual, mutability ReadWrite, persistent/constant false) are
        left out: bytes count on this link. ``fits(payload)``: whether a NotifyReport goes
        through the link (a LoRa radio's largest message); a page that does not is split in
        halves until each does, or holds one item (that one the link then refuses).
        """
        if report_base not in _REPORT_BASES:
            raise ValueError(f"unknown reportBase {report_base!r}")
        chosen = [
            s
            for s in self._specs.values()
            if s.v2
            and (
                report_base == "FullInventory"
                or (report_base == "ConfigurationInventory" and s.mutability != "ReadOnly")
                or (report_base == "SummaryInventory" and s.summary)
            )
        ]
        items = [self._report_item(s, now_iso) for s in chosen]
        max_items = self._int("DeviceDataCtrlr.ItemsPerMessage[GetReport]")
        max_bytes = self._int("DeviceDataCtrlr.BytesPerMessage[GetReport]")
        head = {"requestId": request_id, "generatedAt": now_iso, "seqNo": len(items), "tbc": True}
        overhead = len(_compact({**head, "reportData": []}))
        pages: list[list[dict[str, Any]]] = []
        size = 0
        for item in items:
            item_size = len(_compact(item)) + 1
            if pages and len(pages[-1]) < max_items and overhead + size + item_size <= max_bytes:
                pages[-1].append(item)
                size += item_size
            else:
                pages.append([item])
                size = item_size
        if fits is not None:  # the largest seqNo and tbc: no page grows once numbered
            pages = _split_to_fit(pages, lambda page: fits({**head, "reportData": page}))
        reports = []
        for seq_no, page in enumerate(pages):
            report: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": now_iso,
                "seqNo": seq_no,
                "reportData": page,
            }
            if seq_no < len(pages) - 1:
                report["tbc"] = True
            reports.append(report)
        return reports

    # -- internals ---------------------------------------------------------------------------

    def _find(
        self, component: Mapping[str, Any], variable: Mapping[str, Any]
    ) -> tuple[VarSpec | None, str]:
        evse = component.get("evse") or {}
        ckey = (
            component["name"],
            component.get("instance"),
            evse.get("id"),
            evse.get("connectorId"),
        )
        variables = self._components.get(ckey)
        if variables is None:
            return None, "UnknownComponent"
        spec = variables.get((variable["name"], variable.get("instance")))
        return (spec, "Accepted") if spec is not None else (None, "UnknownVariable")

    def _read(self, spec: VarSpec, attr: str, now_iso: str | None) -> str | None:
        if spec.computed and attr == "Actual":
            if spec.variable == "AvailabilityState":
                return self.availability_state(spec.evse or 0, spec.connector)
            return now_iso  # ClockCtrlr.DateTime
        return self._values.get((spec.path, attr))

    def _check_size(self, payload: Mapping[str, Any], items: Sequence[Any], what: str) -> None:
        limit = self._int(f"DeviceDataCtrlr.ItemsPerMessage[{what}]")
        if len(items) > limit:
            raise DeviceModelError(
                "OccurrenceConstraintViolation", f"{len(items)} items, ItemsPerMessage {limit}"
            )
        byte_limit = self._int(f"DeviceDataCtrlr.BytesPerMessage[{what}]")
        if len(_compact(payload)) > byte_limit:
            raise DeviceModelError("FormatViolation", f"longer than BytesPerMessage {byte_limit}")

    def _report_item(self, spec: VarSpec, now_iso: str) -> dict[str, Any]:
        component: dict[str, Any] = {"name": spec.component}
        if spec.evse is not None:
            component["evse"] = {"id": spec.evse}
            if spec.connector is not None:
                component["evse"]["connectorId"] = spec.connector
        variable: dict[str, Any] = {"name": spec.variable}
        if spec.instance is not None:
            variable["instance"] = spec.instance
        attributes = []
        for attr in _ATTRIBUTE_ORDER:
            if attr not in spec.default:
                continue
            entry: dict[str, Any] = {} if attr == "Actual" else {"type": attr}
            value = self._read(spec, attr, now_iso)
            if spec.mutability != "WriteOnly" and value is not None:
                entry["value"] = value[: self._int("DeviceDataCtrlr.ReportingValueSize")]
            if spec.mutability != "ReadWrite":
                entry["mutability"] = spec.mutability
            if spec.persistent:
                entry["persistent"] = True
            if spec.constant:
                entry["constant"] = True
            attributes.append(entry)
        characteristics: dict[str, Any] = {"dataType": spec.data_type, "supportsMonitoring": False}
        if spec.unit is not None:
            characteristics["unit"] = spec.unit
        if spec.min_limit is not None:
            characteristics["minLimit"] = _number(spec.min_limit)
        if spec.max_limit is not None:
            characteristics["maxLimit"] = _number(spec.max_limit)
        if spec.values_list is not None:
            characteristics["valuesList"] = ",".join(spec.values_list)
        return {
            "component": component,
            "variable": variable,
            "variableAttribute": attributes,
            "variableCharacteristics": characteristics,
        }

    def _apply(self, changes: list[tuple[VarSpec, str, str]]) -> list[Change]:
        done = []
        for spec, attr, value in changes:
            if self._values[(spec.path, attr)] != value:
                self._values[(spec.path, attr)] = value
                done.append(Change(spec.path, attr, value, spec))
        self._commit(done)
        return done

    def _commit(self, changes: list[Change]) -> None:
        """Write the store if what it holds changed, then tell the listeners."""
        snapshot = self._snapshot()
        if self._store is not None and snapshot != self._saved:
            self._store.save(snapshot)
        self._saved = snapshot
        for change in changes:
            for listener in list(self._listeners):
                listener(change)

    def _snapshot(self) -> dict[str, Any]:
        # Only persistent values that differ from their defaults: a new release's defaults
        # then apply to everything the back end never set.
        values = {
            path if attr == "Actual" else f"{path}#{attr}": value
            for (path, attr), value in self._values.items()
            if self._specs[path].persistent and value != self._defaults[(path, attr)]
        }
        return {
            "v": _STATE_FILE_VERSION,
            "values": values,
            "inoperative": sorted(self._inoperative),
        }

    def _load(self, data: Mapping[str, Any]) -> None:
        if data.get("v") != _STATE_FILE_VERSION:
            return
        for key, value in dict(data.get("values") or {}).items():
            path, _, attr = str(key).partition("#")
            spec = self._specs.get(path)
            attr = attr or "Actual"
            if spec is None or not spec.persistent or attr not in spec.default:
                continue  # a variable this release no longer has
            try:
                self._values[(path, attr)] = check_value(spec, str(value), max_size=10**6)
            except InvalidValue:
                continue  # a value this release's limits no longer allow: keep the default
        for level in data.get("inoperative") or ():
            if isinstance(level, str) and self._level(*_split_level(level)) == level:
                self._inoperative.add(level)
        self._saved = self._snapshot()


@dataclass(frozen=True)
class _Layout:
    """What the stations of one configuration share and never change: the variables, their
    lookup tables and their default values (``defaults`` applied)."""

    evses: tuple[int, ...]
    specs: Mapping[str, VarSpec]
    components: Mapping[tuple[Any, ...], Mapping[tuple[str, str | None], VarSpec]]
    v16: Mapping[str, VarSpec]
    values: dict[tuple[str, str], str]  # read only: the stations' ChainMaps write their own map


@functools.lru_cache(maxsize=16)
def _layout(
    model: str,
    vendor_name: str,
    serial_number: str | None,
    firmware_version: str | None,
    evses: tuple[int, ...],
    max_power_w: float,
    connector_type: str,
    extra: tuple[VarSpec, ...],
    defaults: tuple[tuple[str, str], ...],
) -> _Layout:
    if not evses or any(n < 1 for n in evses):
        raise ValueError("every EVSE needs at least one connector")
    specs = station_specs(
        model=model,
        vendor_name=vendor_name,
        serial_number=serial_number,
        firmware_version=firmware_version,
        number_of_connectors=sum(evses),
    )
    for evse, count in enumerate(evses, start=1):
        specs += evse_specs(evse, max_power_w)
        for connector in range(1, count + 1):
            specs += connector_specs(evse, connector, connector_type)
    specs += extra
    by_path = {s.path: s for s in specs}
    v16 = {s.v16: s for s in specs if s.v16 is not None}
    if len(by_path) != len(specs) or len(v16) != sum(s.v16 is not None for s in specs):
        raise ValueError("two variables with the same path or the same 1.6 key")
    components: dict[tuple[Any, ...], dict[tuple[str, str | None], VarSpec]] = {}
    for s in specs:
        if s.v2:
            ckey = (s.component, None, s.evse, s.connector)
            components.setdefault(ckey, {})[(s.variable, s.instance)] = s
    values = {(s.path, attr): value for s in specs for attr, value in s.default.items()}
    for path, value in defaults:
        values[(path, "Actual")] = check_value(spec_of(by_path, path), value, max_size=10**6)
    return _Layout(evses, by_path, components, v16, values)


def _split_level(level: str) -> tuple[int, int | None]:
    evse, _, connector = level.partition(".")
    try:
        return int(evse), (int(connector) if connector else None)
    except ValueError:
        return -1, None


def _status_info(exc: InvalidValue) -> dict[str, Any]:
    return {"reasonCode": exc.reason, "additionalInfo": exc.info[:512]}


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _split_to_fit(
    pages: list[list[dict[str, Any]]], fits: Callable[[list[dict[str, Any]]], bool]
) -> list[list[dict[str, Any]]]:
    """``pages`` in order, each that ``fits`` refuses split in halves until it fits or holds
    one item."""
    out: list[list[dict[str, Any]]] = []
    todo = pages[::-1]
    while todo:
        page = todo.pop()
        if len(page) > 1 and not fits(page):
            half = len(page) // 2
            todo += [page[half:], page[:half]]
        else:
            out.append(page)
    return out
