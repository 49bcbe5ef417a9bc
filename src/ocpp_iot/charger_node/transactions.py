"""Connectors and transactions: what the station machine does with the hardware's events.

Sans-IO. :class:`Transactions` takes :mod:`.evse` events, answers and commands, and decides when a
transaction starts, samples and ends; what each message says, and the record kept across
restarts, is :mod:`.tx_records`'s (its base class). It talks to the station machine through a
:class:`~.tx_records.Port`: transaction messages go to the durable outbox, authorizations to the
link.

Rules implemented (OCPP 2.0.1 part 2 unless said; 1.6 behaves the same way where it has the
concept):

- E01/E06 start and stop points: ``TxStartPoint`` ``EVConnected`` starts at the cable,
  ``Authorized`` at the token, ``PowerPathClosed`` (the default) when both are there and the
  relay closes (the device model takes no other member). A transaction ends when the cable
  goes (with ``StopTxOnEVSideDisconnect``; without, it goes on unpowered until the cable is
  back), the same token is presented again
  (StopAuthorized), the back end stops it (RemoteStop), the token is found invalid
  (``StopTxOnInvalidId``), or on a reset. The three stops by the token end it only while
  ``TxStopPoint`` has ``Authorized``; without, the power goes off and it ends when the cable
  goes (``EVConnected``), with the stop's reason.
- C01 / C10 / C12 / C15: a token is authorized by the back end when it can be asked, else
  locally from the Authorization Cache (:mod:`.authorization`).
- E03: an authorization waits ``EVConnectionTimeOut`` seconds for the cable.
- A token the back end cannot be asked about (offline; before the boot is accepted, as B02 /
  B03 allow no Authorize; its answer lost with the link) and that the local rules do not accept
  (C12 / C15: unknown offline is not started by default) is held, not forgotten: it is asked
  once the back end can be (the boot accepted, the link back), so the driver need not show it
  again. It waits while its cable is in, ``EVConnectionTimeOut`` seconds without one.
- J02: meter values every ``TxUpdatedInterval`` seconds; J01: a clock-aligned sample when
  :mod:`.aligned` says one is due.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

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
from .messages import Messages, StopReason, Trigger
from .tx_records import TX_KEY, ConnectorState, Port, Tx, TxRecords

__all__ = ["ConnectorState", "Port", "TX_KEY", "Transactions", "Tx"]

log = logging.getLogger(__name__)


class Transactions(TxRecords):
    """The connectors of one station and their transactions."""

    _logger = log

    def __init__(self, evse: Evse, model: DeviceModel, messages: Messages, port: Port) -> None:
        self.evse = evse
        self.model = model
        self.messages = messages
        self.port = port
        self.connectors = {c.number: ConnectorState(c) for c in evse.connectors}
        self.auth = AuthCache(model, port.remember_token)
        #: new transactions may start (False once the station is shutting down)
        self.accepting = True

    # -- views --------------------------------------------------------------------------------

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

    def start_up(self, kept: dict[str, dict[str, Any]], now: float) -> None:
        """Make the hardware agree with a machine that starts (every relay open; after a kill
        or a Reset it may still be delivering), learn which cables are in, end what the last
        run left in progress (:meth:`recover`) and show each connector's availability."""
        plugged = getattr(self.evse, "plugged", None)
        for s in self.connectors_in_order():
            self.evse.set_relay(s.info.number, False, now)
            # an EVSE reports a cable when it goes in: one that went in before this start (a
            # Reset restarts all but the hardware) is known only if the EVSE can say so (a
            # ``plugged(connector)`` method, as the simulated EVSE has)
            if callable(plugged):
                s.plugged = bool(plugged(s.info.number))
        self.recover(kept, now)
        self.show_availability(now)

    def show_availability(self, now: float) -> None:
        """Tell the hardware whether each connector is in service, as the device model says."""
        for s in self.connectors_in_order():
            c = s.info
            self.evse.set_available(
                c.number, self.model.is_operative(c.evse_id, c.connector_id), now
            )

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
            if s.tx is not None:
                s.tx.awaiting_cable = False
            if (
                s.tx is None
                and self.accepting
                and "EVConnected" in self.model.tx_start_points
                and self.model.is_operative(s.info.evse_id, s.info.connector_id)
            ):
                self._start(s, None, "ISO14443", None, now, "cable_plugged_in")
            self._power_path(s, now)
        elif isinstance(ev, Unplugged):
            s.plugged = False
            s.suspended_ev = s.finishing = False
            if s.tx is not None and self._stops_at_unplug(s.tx):
                reason = s.tx.stop_asked or "ev_disconnected"
                self._end(s, self._read(s, now), now, "ev_communication_lost", reason)
            elif s.tx is not None:  # it goes on without power until the cable is back
                self._relay(s, False, now)
                self._state_changed(s, now, "Idle")
            s.authorized = s.held = None
        elif isinstance(ev, Fault):
            s.fault, s.fault_text = ev.code, ev.text
            self._relay(s, False, now)
            self._state_changed(s, now, self._charging_state(s))  # SuspendedEVSE
        elif isinstance(ev, FaultCleared):
            s.fault, s.fault_text = None, ""
            self._power_path(s, now)
        elif isinstance(ev, EvSuspended):
            s.suspended_ev = True
            self._state_changed(s, now, self._charging_state(s))
        elif isinstance(ev, EvResumed):
            s.suspended_ev = False
            self._state_changed(s, now, self._charging_state(s))

    def _stops_at_unplug(self, tx: Tx) -> bool:
        """E06 / E10 (1.6 StopTransactionOnEVSideDisconnect): the cable going ends the
        transaction, unless StopTxOnEVSideDisconnect is false; one not yet authorized, or
        stopped already (:meth:`deauthorize`), ends anyway (nothing would resume it)."""
        return not tx.authorized or self.model.stop_tx_on_ev_side_disconnect

    def _token(self, ev: TokenPresented, now: float) -> None:
        # the same token again stops its transaction (E07 StopAuthorized; 1.6 Local)
        for s in self.connectors.values():
            if s.tx is not None and s.tx.view.id_token == ev.id_token:
                if ev.connector in (0, s.info.number):
                    self.deauthorize(s.tx, now, "stop_authorized", "local")
                    return
        target = self._free_connector(ev.connector)
        if target is None:
            self.log.info("token %s presented but no connector is free", ev.id_token)
            return
        self.authorize(target.info.number, ev.id_token, ev.type, None, now)

    def _free_connector(self, number: int) -> ConnectorState | None:
        candidates = (
            [self.connectors[number]] if number in self.connectors else self.connectors.values()
        )
        # a transaction started at the cable (EVConnected) waits for its token: first choice
        # (not one stopped already: it ends at the unplug, E06)
        waiting = [s for s in candidates if s.tx is not None and s.tx.awaits_token]
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
            self._hold(number, id_token, token_type, remote_id, now)

    def _hold(self, number: int, id_token: str, token_type: str, remote_id: int | None,
              now: float) -> None:  # fmt: skip
        if remote_id is not None:  # the back end asked for it: it asks again if it wants
            self.log.info("remote start for %s dropped: the back end cannot be asked", id_token)
            return
        self.log.info("token %s held: not accepted locally, the back end is asked when it can "
                      "be", id_token)  # fmt: skip
        self.connectors[number].held = (id_token, token_type, now)

    def reachable(self, now: float) -> None:
        """The back end can be asked again (the boot accepted, the link back): the tokens
        held for it are asked now."""
        for s in self.connectors.values():
            if s.held is not None:
                (id_token, token_type, since), s.held = s.held, None
                if s.tx is None or s.tx.awaits_token:
                    self.authorize(s.info.number, id_token, token_type, None, now)
                    if s.held is not None and s.held[0] == id_token:
                        s.held = (id_token, token_type, since)  # still held: since then

    def authorize_answered(self, tag: tuple[Any, ...], payload: dict[str, Any] | None,
                           now: float) -> None:  # fmt: skip
        """The Authorize of ``tag`` was answered (``payload``) or lost (``None``: link down,
        no answer, a CALLERROR): then decided locally."""
        _, number, id_token, token_type, remote_id = tag
        if payload is None:
            if self.auth.accepted_locally(id_token):
                self.authorized(number, id_token, token_type, remote_id, now)
            else:
                self._hold(number, id_token, token_type, remote_id, now)
            return
        status = self.messages.authorize_status(payload)
        self.auth.put(id_token, status)
        if status == "Accepted":
            self.authorized(number, id_token, token_type, remote_id, now)
        else:
            self.log.info("token %s not accepted: %s", id_token, status)

    def authorized(self, number: int, id_token: str, token_type: str, remote_id: int | None,
                   now: float) -> None:  # fmt: skip
        s = self.connectors[number]
        if s.tx is not None:  # started at the cable (EVConnected): the token joins it
            if s.tx.awaits_token:
                view = replace(s.tx.view, id_token=id_token, token_type=token_type)
                if remote_id is not None:
                    view = replace(view, remote_start_id=remote_id)
                s.tx.view = view
                self._power_path(s, now, report=False)  # the Authorized event says it
                state = self._charging_state(s)
                trigger: Trigger = "remote_start" if remote_id is not None else "authorized"
                self._updated(s, self._read(s, now), now, trigger, state)
            else:
                self._power_path(s, now)
            return
        s.authorized = (id_token, token_type, remote_id, now)
        self._power_path(s, now)  # starts it if the cable is in
        if s.tx is None and self.accepting and "Authorized" in self.model.tx_start_points:
            how: Trigger = "remote_start" if remote_id is not None else "authorized"
            self._start(s, id_token, token_type, remote_id, now, how)

    def clear_cache(self) -> None:
        self.auth.clear()

    # -- timers -------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        interval = self.model.tx_updated_interval
        ended_interval = self.ended_interval()
        timeout = self.model.ev_connection_timeout
        for s in self.connectors.values():
            if s.tx is not None and interval > 0 and now - s.tx.last_sample >= interval:
                self._updated(s, self._read(s, now), now, "meter_value_periodic", None)
            if s.tx is not None and ended_interval > 0:
                if now - s.tx.last_ended_sample >= ended_interval:
                    self._ended_sample_due(s, now)
            if s.held is not None and not s.plugged and timeout > 0:
                if now - s.held[2] >= timeout:
                    self.log.info("connector %d: token %s held, no cable within %d s",
                                  s.info.number, s.held[0], timeout)  # fmt: skip
                    s.held = None
            since = self._waiting_for_cable(s)
            if since is not None and timeout > 0 and now - since >= timeout:  # E03
                self.log.info("connector %d: no cable within %d s", s.info.number, timeout)
                if s.tx is not None:  # E03.FR.05: begun at the token, ended for want of one
                    self._end(s, self._read(s, now), now, "ev_connect_timeout", "timeout")
                else:
                    s.authorized = None

    def next_due(self) -> float | None:
        interval = self.model.tx_updated_interval
        ended_interval = self.ended_interval()
        times = []
        for s in self.connectors.values():
            if s.tx is not None and interval > 0:
                times.append(s.tx.last_sample + interval)
            if s.tx is not None and ended_interval > 0:
                times.append(s.tx.last_ended_sample + ended_interval)
            since = self._waiting_for_cable(s)
            if since is not None and self.model.ev_connection_timeout > 0:
                times.append(since + self.model.ev_connection_timeout)
            if s.held is not None and not s.plugged and self.model.ev_connection_timeout > 0:
                times.append(s.held[2] + self.model.ev_connection_timeout)
        return min(times, default=None)

    @staticmethod
    def _waiting_for_cable(s: ConnectorState) -> float | None:
        """Since when the connector waits for a cable: a token authorized here, or a
        transaction it began (TxStartPoint Authorized) with none in yet; else ``None``."""
        if s.tx is not None:
            return s.tx.started_at if s.tx.awaiting_cable else None
        return s.authorized[3] if s.authorized is not None else None

    # -- commands -----------------------------------------------------------------------------

    def stop(self, tx: Tx, now: float, trigger: Trigger, reason: StopReason) -> None:
        s = self.connectors[tx.view.connector.number]
        self._end(s, self._read(s, now), now, trigger, reason)

    def deauthorize(self, tx: Tx, now: float, trigger: Trigger, reason: StopReason) -> None:
        """Stop ``tx`` by its authorization (the token again, the back end's stop, the token
        found invalid). E06: it ends at once when ``Authorized`` is a TxStopPoint, or when no
        cable is in (nothing else would end it); else the power goes off and it ends, with
        ``reason``, when the cable goes (the EVConnected stop point)."""
        s = self.connectors[tx.view.connector.number]
        if "Authorized" in self.model.tx_stop_points or not s.plugged:
            self._end(s, self._read(s, now), now, trigger, reason)
            return
        if tx.stop_asked is not None:
            return  # stopped already: it waits for the cable to go
        self.log.info("connector %d: transaction %s stopped (%s); power off until the cable "
                      "goes", s.info.number, tx.view.local_id, reason)  # fmt: skip
        tx.stop_asked = reason
        self._withhold_power(s, tx, now)
        self._updated(s, self._read(s, now), now, trigger, self._charging_state(s))

    def stop_all(self, now: float, trigger: Trigger, reason: StopReason) -> None:
        for tx in self.active():
            self.stop(tx, now, trigger, reason)

    def tx_answered(self, tx_id: str, payload: dict[str, Any], now: float, *, first: bool) -> None:
        """A message of ``tx_id`` was answered: the token's status, if the answer has one (an
        Updated's does when it carried the token), and, for the ``first``, 1.6's id."""
        status, csms_id = self.messages.start_answer(payload)
        if not first:
            csms_id = None
        tx = self.find(local_id=tx_id)
        if tx is None:
            return
        if csms_id is not None:
            tx.view = replace(tx.view, csms_id=csms_id)
        if status is not None and tx.view.id_token is not None:
            self.auth.put(tx.view.id_token, status)  # C10: the cache learns from it too
        if status is None or status == "Accepted":
            return
        if self.model.stop_tx_on_invalid_id:
            self.deauthorize(tx, now, "deauthorized", "deauthorized")
        elif not tx.power_withheld:  # the transaction goes on; the energy does not
            s = self.connectors[tx.view.connector.number]
            self.log.info("connector %d: token not valid, power withheld", s.info.number)
            self._withhold_power(s, tx, now)
            self._state_changed(s, now, self._charging_state(s))

    def clock_aligned(self, now: float) -> list[tuple[Connector, MeterReading]]:
        """A clock-aligned sample of every connector (J01): queued as an Updated event
        (MeterValueClock; 1.6 a MeterValues with the transaction) where a transaction is in
        progress; the readings of the others are returned, for a MeterValues each."""
        idle = []
        for s in self.connectors.values():
            reading = self._read(s, now)
            if s.tx is not None:
                self._updated(s, reading, now, "meter_value_clock", None)
            else:
                idle.append((s.info, reading))
        return idle

    def clock_aligned_for_end(self, now: float) -> None:
        """A boundary of the Ended's clock-aligned interval: a sample of each transaction."""
        for s in self.connectors.values():
            if s.tx is not None:
                self._ended_sample_due(s, now, "Sample.Clock", "ended_aligned")

    def triggered_update(self, tx: Tx, now: float) -> None:
        s = self.connectors[tx.view.connector.number]
        self._updated(s, self._read(s, now), now, "trigger", self._charging_state(s))

    # -- internals ----------------------------------------------------------------------------

    def _power_path(self, s: ConnectorState, now: float, *, report: bool = True) -> None:
        """Close the relay when a cable is in, a token authorized and nothing forbids it,
        starting the transaction if there is none (PowerPathClosed). ``report``: send the
        change of charging state (not when the caller's own event says it)."""
        token = s.tx.view.id_token if s.tx is not None else (s.authorized or (None,))[0]
        ready = s.plugged and token is not None and s.fault is None
        ready = ready and (s.tx is not None or self.view(s.info.number).operative)
        ready = ready and not (s.tx is not None and s.tx.power_withheld)
        if not ready or (s.tx is None and not self.accepting):
            return
        if s.tx is None:
            assert s.authorized is not None
            self._relay(s, True, now)  # first: the Started then says Charging
            id_token, token_type, remote_id, _ = s.authorized
            trigger: Trigger = "remote_start" if remote_id is not None else "authorized"
            self._start(s, id_token, token_type, remote_id, now, trigger)
        elif not s.relay:
            self._relay(s, True, now)
            if report:  # Charging, or SuspendedEV for an EV that paused meanwhile
                self._state_changed(s, now, self._charging_state(s))

    def _state_changed(self, s: ConnectorState, now: float, state: str) -> None:
        """E02 / E05: an Updated with trigger ChargingStateChanged when ``state`` is not what
        the transaction's events said last (the Started, or an event at the same instant, may
        have said it already)."""
        if s.tx is not None and s.tx.charging_state != state:
            self._updated(s, self._read(s, now), now, "charging_state_changed", state)
