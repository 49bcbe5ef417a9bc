"""Connectors and transactions: what the station machine does with the hardware's events.

Sans-IO. :class:`Transactions` takes :mod:`.evse` events, answers and commands, decides when a
transaction starts, samples and ends, and says so through a :class:`Port` (the station machine):
transaction messages go to the durable outbox, status changes and authorizations to the link.

Rules implemented (OCPP 2.0.1 part 2 unless said; 1.6 behaves the same way where it has the
concept):

- E01/E06 start and stop points: ``TxStartPoint`` ``EVConnected`` starts at the cable,
  ``Authorized`` at the token, anything else (the default ``PowerPathClosed``) when both are there
  and the relay closes. A transaction ends when the cable goes (``StopTxOnEVSideDisconnect``), the
  same token is presented again (StopAuthorized), the back end stops it (RemoteStop), the token is
  found invalid (``StopTxOnInvalidId``), or on a reset.
- C01 / C10 / C12 / C15: a token is authorized by the back end when it can be asked, else
  locally from the Authorization Cache (:mod:`.authorization`).
- E04: events that happen while offline carry ``offline: true``.
- J02: meter values every ``TxUpdatedInterval`` seconds; Started / Ended carry the
  TxStarted / TxEnded measurands; Ended carries the register at the stop.
- A transaction in progress is recorded with its first message (``Outbox.put(keep=...)``); after a
  restart that finds one (power loss, a kill), it is ended with reason PowerLoss and the last
  register known (2.0.1 E09 without resumption; 1.6 ``PowerLoss``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .authorization import AuthCache
from .device_model import DeviceModel
from .evse import (
    Connector,
    EvResumed,
    Evse,
    EvseEvent,
    EvSuspended,
    Fault,
    FaultCleared,
    MeterReading,
    Plugged,
    TokenPresented,
    Unplugged,
)
from .messages import ConnectorView, Messages, StopReason, Trigger, TxView

__all__ = ["Port", "Transactions", "ConnectorState"]

log = logging.getLogger(__name__)

TX_KEY = "tx:"


class Port(Protocol):
    """What :class:`Transactions` needs of the station machine."""

    @property
    def online(self) -> bool: ...

    def csms_time(self, now: float) -> float: ...

    def call(self, action: str, payload: dict[str, Any], tag: Any) -> bool:
        """Send a CALL that is not queued durably; ``False`` if it cannot go (offline, or
        not registered)."""
        ...

    def remember_token(self, id_token: str, status: str | None) -> None:
        """Persist the Authorization Cache's entry for ``id_token`` (``None``: forget it)."""
        ...

    def queue(
        self,
        action: str,
        payload: dict[str, Any],
        tx_id: str,
        now: float,
        keep: tuple[str, dict[str, Any] | None],
    ) -> None:
        """Store a transaction message in the outbox (durable), to be sent in order."""
        ...  # fmt: skip

    def new_transaction_id(self) -> str: ...


@dataclass
class Tx:
    view: TxView
    started_at: float
    last_sample: float
    last_wh: float
    offline_start: bool = False


@dataclass
class ConnectorState:
    info: Connector
    plugged: bool = False
    fault: str | None = None
    fault_text: str = ""
    suspended_ev: bool = False
    relay: bool = False
    #: a token authorized here, waiting for the cable: (id, type, remote start id, since)
    authorized: tuple[str, str, int | None, float] | None = None
    tx: Tx | None = None
    finishing: bool = False  #: a transaction ended with the cable in; until it goes
    reported: str | None = None  #: the status last sent


class Transactions:
    """The connectors of one station and their transactions."""

    def __init__(self, evse: Evse, model: DeviceModel, messages: Messages, port: Port) -> None:
        self.evse = evse
        self.model = model
        self.messages = messages
        self.port = port
        self.connectors = {c.number: ConnectorState(c) for c in evse.connectors}
        self.auth = AuthCache(model, port.remember_token)

    # -- views --------------------------------------------------------------------------------

    def view(self, number: int) -> ConnectorView:
        s = self.connectors[number]
        c = s.info
        return ConnectorView(
            c,
            s.plugged,
            s.fault,
            s.fault_text,
            self.model.is_operative(c.evse_id, c.connector_id),
            s.authorized is not None,
            s.tx is not None and s.relay and not s.suspended_ev and s.fault is None,
            s.suspended_ev,
            s.tx is not None,
            s.finishing,
        )

    def active(self) -> list[Tx]:
        return [s.tx for s in self.connectors.values() if s.tx is not None]

    def find(self, local_id: str | None = None, csms_id: int | None = None) -> Tx | None:
        for tx in self.active():
            if local_id is not None and tx.view.local_id == local_id:
                return tx
            if csms_id is not None and tx.view.csms_id == csms_id:
                return tx
        return None

    def busy_evses(self) -> set[int]:
        return {tx.view.connector.evse_id for tx in self.active()}

    # -- start-up -----------------------------------------------------------------------------

    def recover(self, kept: dict[str, dict[str, Any]], now: float) -> None:
        """End the transactions a previous run left in progress (PowerLoss)."""
        for key, rec in sorted(kept.items()):
            number = int(rec["connector"])
            if number not in self.connectors:
                log.warning("kept transaction %s names unknown connector %d", key, number)
                continue
            s = self.connectors[number]
            view = TxView(
                rec["id"], s.info, rec.get("token"), rec.get("token_type", "ISO14443"),
                rec.get("remote_start_id"), rec.get("csms_id"), float(rec["start_wh"]),
            )  # fmt: skip
            tx = Tx(view, float(rec["started_at"]), now, float(rec.get("last_wh", view.start_wh)))
            s.tx = tx
            reading = self.evse.meter(number, now)
            if reading.energy_wh < tx.last_wh:  # a meter that restarted from another value
                reading = replace(reading, energy_wh=tx.last_wh, power_w=0.0)
            log.info("transaction %s was in progress at the restart: ending it", view.local_id)
            self._end(s, reading, now, "abnormal_condition", "power_loss")

    # -- hardware events ----------------------------------------------------------------------

    def on_event(self, ev: EvseEvent, now: float) -> None:
        if isinstance(ev, TokenPresented):
            self._token(ev, now)
            return
        s = self.connectors.get(ev.connector)
        if s is None:
            if isinstance(ev, Fault | FaultCleared) and ev.connector == 0:
                for other in self.connectors.values():
                    self.on_event(replace(ev, connector=other.info.number), now)
            return
        if isinstance(ev, Plugged):
            s.plugged = True
            if s.tx is None and "EVConnected" in self.model.tx_start_points:
                self._start(s, None, "ISO14443", None, now, "cable_plugged_in")
            self._power_path(s, now)
        elif isinstance(ev, Unplugged):
            s.plugged = False
            s.suspended_ev = s.finishing = False
            if s.tx is not None:
                self._end(s, self._read(s, now), now, "ev_communication_lost", "ev_disconnected")
            s.authorized = None
        elif isinstance(ev, Fault):
            s.fault, s.fault_text = ev.code, ev.text
            self._relay(s, False, now)
            self._state_changed(s, now, "SuspendedEVSE")
        elif isinstance(ev, FaultCleared):
            s.fault, s.fault_text = None, ""
            self._power_path(s, now)
        elif isinstance(ev, EvSuspended):
            s.suspended_ev = True
            self._state_changed(s, now, "SuspendedEV")
        elif isinstance(ev, EvResumed):
            s.suspended_ev = False
            self._state_changed(s, now, "Charging" if s.relay else "EVConnected")

    def _token(self, ev: TokenPresented, now: float) -> None:
        # the same token again stops its transaction (E07 StopAuthorized; 1.6 Local)
        for s in self.connectors.values():
            if s.tx is not None and s.tx.view.id_token == ev.id_token:
                if ev.connector in (0, s.info.number):
                    self._end(s, self._read(s, now), now, "stop_authorized", "local")
                    return
        target = self._free_connector(ev.connector)
        if target is None:
            log.info("token %s presented but no connector is free", ev.id_token)
            return
        self.authorize(target.info.number, ev.id_token, ev.type, None, now)

    def _free_connector(self, number: int) -> ConnectorState | None:
        candidates = (
            [self.connectors[number]] if number in self.connectors else self.connectors.values()
        )
        # a transaction started at the cable (EVConnected) waits for its token: first choice
        waiting = [s for s in candidates if s.tx is not None and s.tx.view.id_token is None]
        free = [
            s
            for s in candidates
            if s.tx is None and s.fault is None and self.view(s.info.number).operative
        ]
        plugged = [s for s in free if s.plugged]
        chosen = waiting or plugged or free
        return chosen[0] if chosen else None

    # -- authorization ------------------------------------------------------------------------

    def authorize(
        self, number: int, id_token: str, token_type: str, remote_id: int | None, now: float,
        *, ask: bool = True,
    ) -> None:  # fmt: skip
        """Authorize ``id_token`` on connector ``number`` (C01), asking the back end if it can
        be asked, else deciding locally (:mod:`.authorization`)."""
        tag = ("authorize", number, id_token, token_type, remote_id)
        if not self.model.auth_enabled or not ask or self.auth.pre_authorized(id_token):
            self.authorized(number, id_token, token_type, remote_id, now)
        elif self.port.call(*self.messages.authorize(id_token, token_type), tag):
            pass  # authorize_answered decides
        elif self.auth.accepted_locally(id_token):
            self.authorized(number, id_token, token_type, remote_id, now)
        else:
            log.info("token %s refused: the back end cannot be asked", id_token)

    def authorize_answered(self, tag: tuple[Any, ...], payload: dict[str, Any] | None,
                           now: float) -> None:  # fmt: skip
        """The Authorize of ``tag`` was answered (``payload``) or lost (``None``: link down,
        no answer, a CALLERROR): then decided locally."""
        _, number, id_token, token_type, remote_id = tag
        if payload is None:
            if self.auth.accepted_locally(id_token):
                self.authorized(number, id_token, token_type, remote_id, now)
            return
        status = self.messages.authorize_status(payload)
        self.auth.put(id_token, status)
        if status == "Accepted":
            self.authorized(number, id_token, token_type, remote_id, now)
        else:
            log.info("token %s not accepted: %s", id_token, status)

    def authorized(self, number: int, id_token: str, token_type: str, remote_id: int | None,
                   now: float) -> None:  # fmt: skip
        s = self.connectors[number]
        if s.tx is not None:  # started at the cable (EVConnected): the token joins it
            if s.tx.view.id_token is None:
                s.tx.view = replace(s.tx.view, id_token=id_token, token_type=token_type)
                self._power_path(s, now, report=False)  # the Authorized event says it
                state = self._charging_state(s)
                self._updated(s, self._read(s, now), now, "authorized", state)
            else:
                self._power_path(s, now)
            return
        s.authorized = (id_token, token_type, remote_id, now)
        self._power_path(s, now)  # starts it if the cable is in
        if s.tx is None and "Authorized" in self.model.tx_start_points:
            trigger: Trigger = "remote_start" if remote_id is not None else "authorized"
            self._start(s, id_token, token_type, remote_id, now, trigger)

    def clear_cache(self) -> None:
        self.auth.clear()

    # -- timers -------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        interval = self.model.tx_updated_interval
        timeout = self.model.ev_connection_timeout
        for s in self.connectors.values():
            if s.tx is not None and interval > 0 and now - s.tx.last_sample >= interval:
                self._updated(s, self._read(s, now), now, "meter_value_periodic", None)
            if s.authorized is not None and s.tx is None and timeout > 0:
                if now - s.authorized[3] >= timeout:  # E03: no cable in time
                    log.info("connector %d: no cable within %d s", s.info.number, timeout)
                    s.authorized = None

    def next_due(self) -> float | None:
        interval = self.model.tx_updated_interval
        times = []
        for s in self.connectors.values():
            if s.tx is not None and interval > 0:
                times.append(s.tx.last_sample + interval)
            if s.authorized is not None and self.model.ev_connection_timeout > 0:
                times.append(s.authorized[3] + self.model.ev_connection_timeout)
        return min(times, default=None)

    # -- commands -----------------------------------------------------------------------------

    def stop(self, tx: Tx, now: float, trigger: Trigger, reason: StopReason) -> None:
        s = self.connectors[tx.view.connector.number]
        self._end(s, self._read(s, now), now, trigger, reason)

    def stop_all(self, now: float, trigger: Trigger, reason: StopReason) -> None:
        for tx in self.active():
            self.stop(tx, now, trigger, reason)

    def start_answered(self, tx_id: str, payload: dict[str, Any], now: float) -> None:
        """The first message of ``tx_id`` was answered: the token's status, 1.6's id."""
        status, csms_id = self.messages.start_answer(payload)
        tx = self.find(local_id=tx_id)
        if tx is None:
            return
        if csms_id is not None:
            tx.view = replace(tx.view, csms_id=csms_id)
        if status is not None and tx.view.id_token is not None:
            self.auth.put(tx.view.id_token, status)  # C10: the cache learns from it too
        if status is not None and status != "Accepted" and self.model.stop_tx_on_invalid_id:
            self.stop(tx, now, "deauthorized", "deauthorized")

    def triggered_update(self, tx: Tx, now: float) -> None:
        s = self.connectors[tx.view.connector.number]
        self._updated(s, self._read(s, now), now, "trigger", self._charging_state(s))

    def measurands(self, kind: str) -> list[str]:
        m = self.model
        if kind == "started":
            return m.tx_started_measurands
        return m.tx_updated_measurands if kind == "updated" else m.tx_ended_measurands

    # -- internals ----------------------------------------------------------------------------

    def _read(self, s: ConnectorState, now: float) -> MeterReading:
        return self.evse.meter(s.info.number, now)

    def _charging_state(self, s: ConnectorState) -> str:
        """2.x ChargingStateEnumType: SuspendedEVSE when the station holds the power back (a
        fault, or an authorized transaction with the relay open), SuspendedEV when the EV
        does, EVConnected for a cable in a transaction not yet authorized (E02)."""
        authorized = s.tx is not None and s.tx.view.id_token is not None
        if s.fault is not None or (s.plugged and not s.relay and authorized):
            return "SuspendedEVSE"
        if s.suspended_ev:
            return "SuspendedEV"
        if s.relay:
            return "Charging"
        return "EVConnected" if s.plugged else "Idle"

    def _relay(self, s: ConnectorState, closed: bool, now: float) -> None:
        if s.relay != closed:
            s.relay = closed
            self.evse.set_relay(s.info.number, closed, now)

    def _power_path(self, s: ConnectorState, now: float, *, report: bool = True) -> None:
        """Close the relay when a cable is in, a token authorized and nothing forbids it,
        starting the transaction if there is none (PowerPathClosed). ``report``: send the
        change of charging state (not when the caller's own event says it)."""
        token = s.tx.view.id_token if s.tx is not None else (s.authorized or (None,))[0]
        ready = s.plugged and token is not None and s.fault is None
        ready = ready and (s.tx is not None or self.view(s.info.number).operative)
        if not ready:
            return
        if s.tx is None:
            assert s.authorized is not None
            self._relay(s, True, now)  # first: the Started then says Charging
            id_token, token_type, remote_id, _ = s.authorized
            trigger: Trigger = "remote_start" if remote_id is not None else "authorized"
            self._start(s, id_token, token_type, remote_id, now, trigger)
        elif not s.relay:
            self._relay(s, True, now)
            if report and s.tx.last_sample != now:
                self._state_changed(s, now, "Charging")

    def _state_changed(self, s: ConnectorState, now: float, state: str) -> None:
        if s.tx is not None:
            self._updated(s, self._read(s, now), now, "charging_state_changed", state)

    def _record(self, tx: Tx) -> dict[str, Any]:
        v = tx.view
        return {
            "id": v.local_id, "connector": v.connector.number, "token": v.id_token,
            "token_type": v.token_type, "remote_start_id": v.remote_start_id,
            "csms_id": v.csms_id, "start_wh": v.start_wh, "started_at": tx.started_at,
            "last_wh": tx.last_wh,
        }  # fmt: skip

    def _start(
        self, s: ConnectorState, id_token: str | None, token_type: str, remote_id: int | None,
        now: float, trigger: Trigger,
    ) -> None:  # fmt: skip
        reading = self._read(s, now)
        view = TxView(
            self.port.new_transaction_id(), s.info, id_token, token_type, remote_id, None,
            reading.energy_wh,
        )  # fmt: skip
        tx = Tx(view, now, now, reading.energy_wh, offline_start=not self.port.online)
        s.tx, s.authorized, s.finishing = tx, None, False
        t = self.port.csms_time(now)
        action, payload = self.messages.started(
            view, reading, t, trigger, offline=not self.port.online,
            measurands=self.measurands("started"), charging_state=self._charging_state(s),
        )  # fmt: skip
        self.port.queue(
            action, payload, view.local_id, now, (TX_KEY + view.local_id, self._record(tx))
        )

    def _updated(
        self, s: ConnectorState, reading: MeterReading, now: float, trigger: Trigger,
        charging_state: str | None,
    ) -> None:  # fmt: skip
        tx = s.tx
        assert tx is not None
        tx.last_sample = now
        tx.last_wh = max(tx.last_wh, reading.energy_wh)
        built = self.messages.updated(
            tx.view, reading, self.port.csms_time(now), trigger, offline=not self.port.online,
            measurands=self.measurands("updated"), charging_state=charging_state,
        )  # fmt: skip
        if built is not None:
            key = (TX_KEY + tx.view.local_id, self._record(tx))
            self.port.queue(built[0], built[1], tx.view.local_id, now, key)

    def _end(
        self, s: ConnectorState, reading: MeterReading, now: float, trigger: Trigger,
        reason: StopReason,
    ) -> None:  # fmt: skip
        tx = s.tx
        assert tx is not None
        self._relay(s, False, now)
        s.tx, s.suspended_ev, s.finishing = None, False, s.plugged
        action, payload = self.messages.ended(
            tx.view, reading, self.port.csms_time(now), trigger, reason,
            offline=not self.port.online, measurands=self.measurands("ended"),
        )  # fmt: skip
        self.port.queue(action, payload, tx.view.local_id, now, (TX_KEY + tx.view.local_id, None))
        wh = reading.energy_wh - tx.view.start_wh
        log.info("transaction %s ended (%s): %.1f Wh", tx.view.local_id, reason, wh)

    def connectors_in_order(self) -> Sequence[ConnectorState]:
        return [self.connectors[n] for n in sorted(self.connectors)]
