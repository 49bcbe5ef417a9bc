"""OCPP 1.6's view of the device model: configuration keys (1.6 section 9) on the same values.

A 1.6 key with a 2.0.1 counterpart (``HeartbeatInterval`` = OCPPCommCtrlr.HeartbeatInterval,
``MeterValueSampleInterval`` = SampledDataCtrlr.TxUpdatedInterval, ...) reads and writes that
variable's Actual value; the catalog (:mod:`.device_model_catalog`) says which key is which.
ChangeAvailability's ``connectorId`` 0 is the station; connector ``k`` is the k-th connector
counting EVSE by EVSE.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .device_model_access import Availability
from .device_model_catalog import VarSpec
from .device_model_values import AvailabilityChange, InvalidValue, check_value

__all__ = ["V16View"]

_V16_VALUE_MAX = 500  # KeyValue.value and ChangeConfiguration.value maxLength (1.6 schemas)


class V16View(Availability):
    """GetConfiguration, ChangeConfiguration and 1.6 connector numbering."""

    _v16: Mapping[str, VarSpec]

    def v16_keys(self) -> list[str]:
        """Every configuration key this station has, in catalog order."""
        return list(self._v16)

    def get_configuration(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """A GetConfiguration.conf payload: ``configurationKey`` and, if any, ``unknownKey``.

        No keys (or an empty list) asks for all of them (1.6 section 6.23).
        """
        wanted = list(keys) if keys else list(self._v16)
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        for key in wanted:
            spec = self._v16.get(key)
            if spec is None:
                unknown.append(key)
                continue
            entry: dict[str, Any] = {"key": key, "readonly": spec.mutability == "ReadOnly"}
            value = self._values[(spec.path, "Actual")]
            if spec.mutability != "WriteOnly" and len(value) <= _V16_VALUE_MAX:
                entry["value"] = value
            known.append(entry)
        payload: dict[str, Any] = {"configurationKey": known}
        if unknown:
            payload["unknownKey"] = unknown
        return payload

    def change_configuration(self, key: str, value: str) -> str:
        """The ChangeConfiguration.conf status for setting ``key`` to ``value`` (1.6 6.4).

        ``NotSupported`` for an unknown key, ``Rejected`` for a read-only key or a value the
        key cannot take, ``RebootRequired`` when the new value applies after a restart (it is
        stored), else ``Accepted``. Booleans are accepted in any case and list members with
        blanks around them; both are stored in the 2.0.1 form.
        """
        spec = self._v16.get(key)
        if spec is None:
            return "NotSupported"
        if spec.mutability == "ReadOnly":
            return "Rejected"
        max_size = min(_V16_VALUE_MAX, self._int("DeviceDataCtrlr.ConfigurationValueSize"))
        try:
            new = check_value(spec, value, max_size=max_size, lenient=True)
        except InvalidValue:
            return "Rejected"
        changed = self._apply([(spec, "Actual", new)])
        return "RebootRequired" if changed and spec.reboot_required else "Accepted"

    # -- 1.6 connector numbering ---------------------------------------------------------------

    def to_v16_connector(self, evse_id: int, connector_id: int) -> int:
        """The 1.6 connectorId of connector ``connector_id`` of EVSE ``evse_id``."""
        return self.connectors().index((evse_id, connector_id)) + 1

    def from_v16_connector(self, connector_id: int) -> tuple[int, int] | None:
        """(evse id, connector id) of 1.6 connector ``connector_id`` (None for 0 or unknown)."""
        pairs = self.connectors()
        return pairs[connector_id - 1] if 1 <= connector_id <= len(pairs) else None

    def change_availability_v16(
        self, payload: Mapping[str, Any], *, busy: Collection[int] = ()
    ) -> tuple[dict[str, Any], AvailabilityChange]:
        """A 1.6 ChangeAvailability.req payload in: the .conf payload and the change."""
        change = self.set_availability_v16(
            payload["connectorId"], payload["type"] == "Operative", busy=busy
        )
        return {"status": change.status}, change

    def set_availability_v16(
        self, connector_id: int, operative: bool, *, busy: Collection[int] = ()
    ) -> AvailabilityChange:
        """1.6 ChangeAvailability: ``connector_id`` 0 is the station; ``busy`` are 1.6 ids.

        The answer's ``affected`` / ``scheduled`` pairs convert back with
        :meth:`to_v16_connector`.
        """
        busy_evses = {p[0] for c in busy if (p := self.from_v16_connector(c)) is not None}
        if connector_id == 0:
            return self.set_availability(0, operative, busy=busy_evses)
        pair = self.from_v16_connector(connector_id)
        if pair is None:
            return AvailabilityChange("Rejected")
        # A 1.6 connector is an EVSE of its own when the EVSE has one connector: set the
        # connector level, so a 2.0.1 EVSE-level state is left alone.
        return self.set_availability(pair[0], operative, pair[1], busy=busy_evses)
