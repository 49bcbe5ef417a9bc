"""Typed accessors and availability of the device model (mixins of :class:`.DeviceModel`).

Availability follows OCPP 2.0.1 G03/G04 and 1.6 section 5.2 (ChangeAvailability): the station,
each EVSE and each connector keep their own Operative/Inoperative state, persisted.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, MutableMapping
from typing import Any

from .device_model_catalog import VarSpec
from .device_model_values import AvailabilityChange, Change, check_value

__all__ = ["MESSAGE_TIMEOUT", "Accessors", "Availability", "ModelState"]

#: how long the station waits for the answer to a CALL (seconds)
MESSAGE_TIMEOUT = "OCPPCommCtrlr.MessageTimeout[Default]"


class ModelState:
    """What the mixins share with :class:`.DeviceModel` (which sets it up)."""

    evses: tuple[int, ...]
    _specs: Mapping[str, VarSpec]
    _values: MutableMapping[tuple[str, str], str]
    _inoperative: set[str]
    _status: dict[tuple[int, int | None], str]
    #: every connector inoperative until the machine is made again (:meth:`Availability.
    #: hold_for_reset`); a class default, so a station that never holds costs nothing
    _held_for_reset: bool = False

    def _commit(self, changes: list[Change]) -> None:
        raise NotImplementedError

    def _apply(self, changes: list[tuple[VarSpec, str, str]]) -> list[Change]:
        raise NotImplementedError

    def _spec(self, path: str) -> VarSpec:
        return spec_of(self._specs, path)

    def _int(self, path: str) -> int:
        return int(self._values[(path, "Actual")])

    def _bool(self, path: str) -> bool:
        return self._values[(path, "Actual")] == "true"

    def _list(self, path: str) -> list[str]:
        text = self._values[(path, "Actual")]
        return text.split(",") if text else []

    def _level(self, evse_id: int, connector_id: int | None) -> str | None:
        if evse_id == 0:
            return "0" if connector_id is None else None
        if not 1 <= evse_id <= len(self.evses):
            return None
        if connector_id is None:
            return str(evse_id)
        return f"{evse_id}.{connector_id}" if 1 <= connector_id <= self.evses[evse_id - 1] else None


class Accessors(ModelState):
    """The values the station machine reads, typed (2.0.1 names; 1.6 keys alias them)."""

    @property
    def heartbeat_interval(self) -> int:
        return self._int("OCPPCommCtrlr.HeartbeatInterval")

    @property
    def offline_threshold(self) -> int:
        return self._int("OCPPCommCtrlr.OfflineThreshold")

    @property
    def message_timeout(self) -> int:
        return self._int(MESSAGE_TIMEOUT)

    @property
    def message_attempts_tx(self) -> int:
        """OCPPCommCtrlr.MessageAttemptsTransactionEvent (1.6 TransactionMessageAttempts)."""
        return self._int("OCPPCommCtrlr.MessageAttempts[TransactionEvent]")

    @property
    def message_attempt_interval_tx(self) -> int:
        """OCPPCommCtrlr.MessageAttemptIntervalTransactionEvent (1.6 ...RetryInterval)."""
        return self._int("OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]")

    @property
    def queue_all_messages(self) -> bool:
        return self._bool("OCPPCommCtrlr.QueueAllMessages")

    @property
    def reset_retries(self) -> int:
        return self._int("OCPPCommCtrlr.ResetRetries")

    @property
    def unlock_on_ev_side_disconnect(self) -> bool:
        return self._bool("OCPPCommCtrlr.UnlockOnEVSideDisconnect")

    @property
    def ping_interval(self) -> int:
        """OCPPCommCtrlr.WebSocketPingInterval: the link keep-alive (used at connect)."""
        return self._int("OCPPCommCtrlr.WebSocketPingInterval")

    @property
    def tx_updated_interval(self) -> int:
        return self._int("SampledDataCtrlr.TxUpdatedInterval")

    @property
    def tx_ended_interval(self) -> int:
        return self._int("SampledDataCtrlr.TxEndedInterval")

    @property
    def tx_started_measurands(self) -> list[str]:
        return self._list("SampledDataCtrlr.TxStartedMeasurands")

    @property
    def tx_updated_measurands(self) -> list[str]:
        return self._list("SampledDataCtrlr.TxUpdatedMeasurands")

    @property
    def tx_ended_measurands(self) -> list[str]:
        return self._list("SampledDataCtrlr.TxEndedMeasurands")

    @property
    def aligned_data_interval(self) -> int:
        return self._int("AlignedDataCtrlr.Interval")

    @property
    def aligned_measurands(self) -> list[str]:
        return self._list("AlignedDataCtrlr.Measurands")

    @property
    def aligned_tx_ended_interval(self) -> int:
        return self._int("AlignedDataCtrlr.TxEndedInterval")

    @property
    def aligned_tx_ended_measurands(self) -> list[str]:
        return self._list("AlignedDataCtrlr.TxEndedMeasurands")

    @property
    def ev_connection_timeout(self) -> int:
        return self._int("TxCtrlr.EVConnectionTimeOut")

    @property
    def stop_tx_on_ev_side_disconnect(self) -> bool:
        return self._bool("TxCtrlr.StopTxOnEVSideDisconnect")

    @property
    def stop_tx_on_invalid_id(self) -> bool:
        return self._bool("TxCtrlr.StopTxOnInvalidId")

    @property
    def tx_start_points(self) -> list[str]:
        return self._list("TxCtrlr.TxStartPoint")

    @property
    def tx_stop_points(self) -> list[str]:
        return self._list("TxCtrlr.TxStopPoint")

    @property
    def auth_enabled(self) -> bool:
        return self._bool("AuthCtrlr.Enabled")

    @property
    def authorize_remote_start(self) -> bool:
        return self._bool("AuthCtrlr.AuthorizeRemoteStart")

    @property
    def local_pre_authorize(self) -> bool:
        return self._bool("AuthCtrlr.LocalPreAuthorize")

    @property
    def local_authorize_offline(self) -> bool:
        return self._bool("AuthCtrlr.LocalAuthorizeOffline")

    @property
    def offline_tx_for_unknown_id(self) -> bool:
        return self._bool("AuthCtrlr.OfflineTxForUnknownIdEnabled")

    @property
    def auth_cache_enabled(self) -> bool:
        return self._bool("AuthCacheCtrlr.Enabled")


class Availability(ModelState):
    """ChangeAvailability's persisted state and the AvailabilityState read from it."""

    def set_availability(
        self,
        evse_id: int,
        operative: bool,
        connector_id: int | None = None,
        *,
        busy: Collection[int] = (),
    ) -> AvailabilityChange:
        """Make the station (``evse_id`` 0), an EVSE or a connector (in)operative, persisted.

        ``busy`` are the EVSE ids with a transaction in progress: their connectors that would
        become inoperative make the answer ``Scheduled`` (the transaction goes on; the stored
        state applies once it ends). Each level keeps its own state: a connector set Inoperative
        stays so when its EVSE or the station becomes Operative again. Unknown ids: Rejected.
        """
        level = self._level(evse_id, connector_id)
        if level is None:
            return AvailabilityChange("Rejected")
        before = {c: self.is_operative(*c) for c in self.connectors()}
        if operative:
            self._inoperative.discard(level)
        else:
            self._inoperative.add(level)
        self._commit([])
        affected = tuple(c for c in self.connectors() if self.is_operative(*c) != before[c])
        scheduled = () if operative else tuple(c for c in affected if c[0] in busy)
        return AvailabilityChange("Scheduled" if scheduled else "Accepted", affected, scheduled)

    def change_availability(
        self, payload: Mapping[str, Any], *, busy: Collection[int] = ()
    ) -> tuple[dict[str, Any], AvailabilityChange]:
        """A 2.0.1/2.1 ChangeAvailabilityRequest payload in: the response payload and the change.

        No ``evse`` (or EVSE id 0) is the whole station; ``evse.connectorId`` one connector.
        """
        evse = payload.get("evse") or {}
        change = self.set_availability(
            evse.get("id", 0),
            payload["operationalStatus"] == "Operative",
            evse.get("connectorId"),
            busy=busy,
        )
        return {"status": change.status}, change

    def hold_for_reset(self) -> None:
        """Make every connector inoperative until the restart, not persisted: a Reset OnIdle
        that waits for the transactions in progress lets no new one begin meanwhile (else a
        busy station would put the reset off for ever). The transactions in progress go on, as
        with an inoperative state that is Scheduled."""
        self._held_for_reset = True

    def is_operative(self, evse_id: int = 0, connector_id: int | None = None) -> bool:
        """Whether the station, the EVSE and (if given) the connector are all Operative (none
        is while :meth:`hold_for_reset` holds them)."""
        if self._held_for_reset:
            return False
        levels = ["0"]
        if evse_id:
            levels.append(str(evse_id))
            if connector_id is not None:
                levels.append(f"{evse_id}.{connector_id}")
        return not any(level in self._inoperative for level in levels)

    def connectors(self) -> list[tuple[int, int]]:
        """Every (evse id, connector id) of the station, in order."""
        return [(e, c) for e, n in enumerate(self.evses, start=1) for c in range(1, n + 1)]

    def set_status(self, evse_id: int, connector_id: int | None, state: str) -> None:
        """The station machine's current state of a connector (or the station, ``evse_id`` 0).

        One of Available, Occupied, Reserved, Unavailable, Faulted; not persisted. Read back as
        AvailabilityState, where an inoperative station, EVSE or connector reads Unavailable.
        """
        spec = self._spec("ChargingStation.AvailabilityState")
        check_value(spec, state, max_size=50)
        if self._level(evse_id, connector_id if evse_id else None) is None:
            raise ValueError(f"no connector {evse_id}/{connector_id}")
        self._status[(evse_id, connector_id if evse_id else None)] = state

    def availability_state(self, evse_id: int = 0, connector_id: int | None = None) -> str:
        """AvailabilityState of the station, an EVSE (from its connectors) or a connector."""
        if not self.is_operative(evse_id, connector_id):
            return "Unavailable"
        if evse_id == 0:
            return self._status.get((0, None), "Available")
        if connector_id is not None:
            return self._status.get((evse_id, connector_id), "Available")
        states = [
            self.availability_state(evse_id, c) for c in range(1, self.evses[evse_id - 1] + 1)
        ]
        for state in ("Occupied", "Reserved", "Available"):
            if state in states:
                return state
        return "Faulted" if "Faulted" in states else "Unavailable"


def spec_of(specs: Mapping[str, VarSpec], path: str) -> VarSpec:
    """The variable ``path`` of ``specs``; ``KeyError`` naming it if there is none."""
    try:
        return specs[path]
    except KeyError:
        raise KeyError(f"no variable {path!r} in the device model") from None
