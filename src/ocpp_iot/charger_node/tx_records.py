"""The transaction messages of a station's connectors: what a transaction's start, samples and
end say, and its record across restarts. Sans-IO; the base of :class:`.transactions.Transactions`
(which decides *when*, from the hardware's events), talking to the station machine through a
:class:`Port`.

Rules implemented (OCPP 2.0.1 part 2 unless said; 1.6 where it has the concept):

- E01: the station makes the transaction id (short base-36 counters from the outbox; 1.6: the
  local reference, the back end's id follows in StartTransaction.conf).
- E04: events that happen while offline carry ``offline: true``.
- J02: Started / Updated / Ended carry the TxStarted / TxUpdated / TxEnded measurands; Ended
  carries the register at the stop; 2.x ``chargingState`` when it changes. With
  ``SampledDataCtrlr.TxEndedInterval`` (1.6: ``MeterValueSampleInterval``, as
  ``StopTxnSampledData`` says) the Ended / StopTransaction also carries the TxEnded measurands
  sampled at the start (Transaction.Begin) and every interval after (Sample.Periodic); with
  ``AlignedDataCtrlr.TxEndedInterval`` (1.6: ``ClockAlignedDataInterval``, for
  ``StopTxnAlignedData``) the aligned TxEnded measurands at each clock-aligned boundary
  (Sample.Clock, J01). They are kept in the transaction's record as they are taken, in time
  order, as the meter's numbers only (:func:`_compact`: ~70 B of JSON a sample whatever the
  measurands; the sampledValue lists are made at the Ended); past :data:`MAX_ENDED_SAMPLES`
  every second one after the first is dropped (the start, the stop and the latest stay), and
  an Ended that would not fit the link's largest frame (``Port.fits``: a LoRa link's few KB)
  is thinned the same way until it does, with a warning: a transaction's end is never lost to
  its size. The 1.6 default of ``StopTxnSampledData`` is empty
  (``meterStop`` is the register at the stop): :data:`V16_DEFAULTS`.
- A transaction in progress is recorded with each of its messages (``Outbox.put(keep=...)``, in
  the same commit); after a restart that finds one (power loss, a kill), it is ended with reason
  PowerLoss and the last register known (2.0.1 E09 without resumption; 1.6 ``PowerLoss``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Protocol

from .device_model import DeviceModel
from .evse import Connector, Evse, MeterReading
from .messages import ConnectorView, Messages, StopReason, Trigger, TxView, meter_value
from .station_log import StationLog

__all__ = ["ConnectorState", "METER_KEY", "Port", "TX_KEY", "Tx", "TxRecords", "V16_DEFAULTS"]

log = logging.getLogger(__name__)

#: the outbox's kept records of transactions in progress: ``tx:<id>``
TX_KEY = "tx:"
#: device model defaults that differ in 1.6: StopTxnSampledData (sampled every
#: MeterValueSampleInterval there, while 2.x's TxEndedInterval is off by default) starts empty
V16_DEFAULTS = {"SampledDataCtrlr.TxEndedMeasurands": ""}
#: the most samples an Ended carries from TxEndedInterval (the record rewritten with each
#: message of the transaction grows with them: ~70 B each, 17 KB at the most)
MAX_ENDED_SAMPLES = 250
#: the register of a connector at its last transaction's stop, ``meter:<connector>`` (kept with
#: the Ended)
METER_KEY = "meter:"


class Port(Protocol):
    """What :class:`Transactions` needs of the station machine."""

    station_id: str

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
        keep: Mapping[str, dict[str, Any] | None],
    ) -> None:
        """Store a transaction message in the outbox (durable), to be sent in order."""
        ...  # fmt: skip

    def new_transaction_id(self) -> str: ...

    def fits(self, action: str, payload: dict[str, Any]) -> bool:
        """Whether a CALL of ``payload`` fits the link's largest frame in its encoding."""
        ...

    def keep(self, key: str, value: dict[str, Any] | None) -> None:
        """Persist a record with no message (a lazy commit)."""
        ...  # fmt: skip


@dataclass
class Tx:
    view: TxView
    started_at: float
    last_sample: float
    last_wh: float
    offline_start: bool = False
    #: the TxEnded samples so far (periodic and clock-aligned), for the Ended: :func:`_compact`
    ended_samples: list[Any] = field(default_factory=list)
    last_ended_sample: float = 0.0
    #: the back end said the token is not valid and StopTxOnInvalidId is false: the
    #: transaction goes on, the power stays off (1.6 3.5, 2.0.1 E05)
    power_withheld: bool = False
    #: stopped (the token again, the back end, the token found invalid) while Authorized is not
    #: a TxStopPoint: the power is withheld and it ends, with this reason, when the cable goes
    #: (2.0.1 E06)
    stop_asked: StopReason | None = None
    #: the chargingState its events last said (2.x): a change is sent once, whatever else
    #: went at the same instant
    charging_state: str | None = None
    #: begun at the token with no cable in yet (TxStartPoint Authorized): ends after
    #: EVConnectionTimeOut without one (2.0.1 E03.FR.05)
    awaiting_cable: bool = False

    @property
    def awaits_token(self) -> bool:
        """Begun at the cable (TxStartPoint EVConnected), no token yet, not stopped: a token
        presented or a RequestStartTransaction authorizes this one."""
        return self.view.id_token is None and self.stop_asked is None

    @property
    def authorized(self) -> bool:
        """A token authorizes it and no stop has taken it back (F05: the connector stays
        locked)."""
        return self.view.id_token is not None and self.stop_asked is None


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
    #: a token the back end could not be asked about (offline, the boot not accepted yet,
    #: its answer lost) and the local rules did not accept: asked when it can be (id, type, since)
    held: tuple[str, str, float] | None = None
    tx: Tx | None = None
    finishing: bool = False  #: a transaction ended with the cable in; until it goes
    reported: str | None = None  #: the status last sent


class TxRecords:
    """The connectors' states and their transactions' messages (see the module docstring)."""

    evse: Evse
    model: DeviceModel
    messages: Messages
    port: Port
    connectors: dict[int, ConnectorState]
    _logger: ClassVar[logging.Logger] = log

    @property
    def log(self) -> StationLog:
        """The log, the station's id before each message (made when a line is written: an
        adapter kept per station would cost each of ``simulate``'s stations memory)."""
        return StationLog(self._logger, self.port.station_id)

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

    def connectors_in_order(self) -> Sequence[ConnectorState]:
        return [self.connectors[n] for n in sorted(self.connectors)]

    def measurands(self, kind: str) -> list[str]:
        m = self.model
        if kind == "started":
            return m.tx_started_measurands
        if kind == "aligned":
            return m.aligned_measurands
        if kind == "ended_aligned":
            return m.aligned_tx_ended_measurands
        return m.tx_updated_measurands if kind == "updated" else m.tx_ended_measurands

    def ended_interval(self) -> int:
        """Seconds between the TxEnded samples (0: none but the stop's): 2.x
        SampledDataCtrlr.TxEndedInterval, 1.6 MeterValueSampleInterval; 0 without measurands."""
        m = self.model
        if not m.tx_ended_measurands:
            return 0
        return m.tx_updated_interval if self.messages.version == "1.6" else m.tx_ended_interval

    def ended_aligned_interval(self) -> int:
        """The clock-aligned interval of the Ended's aligned samples (0: off): 2.x
        AlignedDataCtrlr.TxEndedInterval, 1.6 ClockAlignedDataInterval; 0 without measurands."""
        m = self.model
        if not m.aligned_tx_ended_measurands:
            return 0
        if self.messages.version == "1.6":
            return m.aligned_data_interval
        return m.aligned_tx_ended_interval

    # -- start-up -----------------------------------------------------------------------------

    def recover(self, kept: dict[str, dict[str, Any]], now: float) -> None:
        """End the transactions a previous run left in progress (PowerLoss)."""
        for key, rec in sorted(kept.items()):
            number = int(rec["connector"])
            if number not in self.connectors:
                self.log.warning("kept transaction %s names unknown connector %d", key, number)
                continue
            s = self.connectors[number]
            view = TxView(
                rec["id"], s.info, rec.get("token"), rec.get("token_type", "ISO14443"),
                rec.get("remote_start_id"), rec.get("csms_id"), float(rec["start_wh"]),
            )  # fmt: skip
            tx = Tx(view, float(rec["started_at"]), now, float(rec.get("last_wh", view.start_wh)))
            tx.ended_samples = list(rec.get("ended", ()))
            s.tx = tx
            reading = self.evse.meter(number, now)
            if reading.energy_wh < tx.last_wh:  # a meter that restarted from another value
                reading = replace(reading, energy_wh=tx.last_wh, power_w=0.0)
            self.log.info("transaction %s was in progress at the restart: ending it", view.local_id)
            self._end(s, reading, now, "abnormal_condition", "power_loss")

    # -- the messages -------------------------------------------------------------------------

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

    def _withhold_power(self, s: ConnectorState, tx: Tx, now: float) -> None:
        """The transaction goes on, its energy does not: the relay opens and the power path
        keeps it open (a stopped transaction, a token found invalid)."""
        tx.power_withheld = True
        self._relay(s, False, now)

    def _relay(self, s: ConnectorState, closed: bool, now: float) -> None:
        if s.relay != closed:
            s.relay = closed
            self.evse.set_relay(s.info.number, closed, now)

    def _record(self, tx: Tx) -> dict[str, Any]:
        v = tx.view
        return {
            "id": v.local_id, "connector": v.connector.number, "token": v.id_token,
            "token_type": v.token_type, "remote_start_id": v.remote_start_id,
            "csms_id": v.csms_id, "start_wh": v.start_wh, "started_at": tx.started_at,
            "last_wh": tx.last_wh,
        } | ({"ended": tx.ended_samples} if tx.ended_samples else {})  # fmt: skip

    def _sample_for_end(
        self, tx: Tx, reading: MeterReading, now: float, context: str, kind: str = "ended"
    ) -> bool:
        """Take a sample for the Ended (kept in memory; the caller persists the record)."""
        if kind == "ended":
            tx.last_ended_sample = now
        if not self.measurands(kind):
            return False
        samples = tx.ended_samples
        samples.append(_compact(reading, self.port.csms_time(now), context))
        if len(samples) > MAX_ENDED_SAMPLES:
            tx.ended_samples = _thinned(samples)
            self.log.info("transaction %s: TxEnded samples thinned to %d",
                          tx.view.local_id, len(tx.ended_samples))  # fmt: skip
        return True

    def _expand(self, samples: Sequence[Sequence[Any] | dict[str, Any]]) -> list[dict[str, Any]]:
        """The MeterValues of kept samples, with the measurands configured now."""
        v16 = self.messages.version == "1.6"
        out = []
        for entry in samples:
            if isinstance(entry, dict):  # a record of an earlier release: a MeterValue as is
                out.append(entry)
                continue
            t, context, reading = _expanded(entry)
            kind = "ended_aligned" if context == "Sample.Clock" else "ended"
            value = meter_value(reading, t, self.measurands(kind), context, v16=v16)
            if value is not None:
                out.append(value)
        return out

    def _ended_sample_due(
        self, s: ConnectorState, now: float, context: str = "Sample.Periodic", kind: str = "ended"
    ) -> None:
        """A sample for the Ended, periodic (TxEndedInterval) or clock-aligned (``Sample.Clock``,
        ``ended_aligned``: AlignedDataCtrlr.TxEndedMeasurands), recorded at once (a restart ends
        the transaction as PowerLoss with the samples taken before it)."""
        tx = s.tx
        assert tx is not None
        if self._sample_for_end(tx, self._read(s, now), now, context, kind):
            self.port.keep(TX_KEY + tx.view.local_id, self._record(tx))

    def _start(
        self, s: ConnectorState, id_token: str | None, token_type: str, remote_id: int | None,
        now: float, trigger: Trigger,
    ) -> None:  # fmt: skip
        reading = self._read(s, now)
        view = TxView(
            self.port.new_transaction_id(), s.info, id_token, token_type, remote_id, None,
            reading.energy_wh,
        )  # fmt: skip
        tx = Tx(
            view,
            now,
            now,
            reading.energy_wh,
            offline_start=not self.port.online,
            awaiting_cable=not s.plugged,
        )
        s.tx, s.authorized, s.finishing = tx, None, False
        t = self.port.csms_time(now)
        if self.ended_interval() > 0:
            self._sample_for_end(tx, reading, now, "Transaction.Begin")
        tx.charging_state = self._charging_state(s)
        action, payload = self.messages.started(
            view, reading, t, trigger, offline=not self.port.online,
            measurands=self.measurands("started"), charging_state=tx.charging_state,
        )  # fmt: skip
        self.port.queue(
            action, payload, view.local_id, now, {TX_KEY + view.local_id: self._record(tx)}
        )

    def _updated(
        self, s: ConnectorState, reading: MeterReading, now: float, trigger: Trigger,
        charging_state: str | None,
    ) -> None:  # fmt: skip
        tx = s.tx
        assert tx is not None
        clock = trigger == "meter_value_clock"
        if not clock:  # J01 and J02 are independent: an aligned sample moves no periodic one
            tx.last_sample = now
        tx.last_wh = max(tx.last_wh, reading.energy_wh)
        if charging_state is not None:
            tx.charging_state = charging_state
        built = self.messages.updated(
            tx.view, reading, self.port.csms_time(now), trigger, offline=not self.port.online,
            measurands=self.measurands("aligned" if clock else "updated"),
            charging_state=charging_state,
        )  # fmt: skip
        if built is not None:
            keep = {TX_KEY + tx.view.local_id: self._record(tx)}
            self.port.queue(built[0], built[1], tx.view.local_id, now, keep)

    def _end(
        self, s: ConnectorState, reading: MeterReading, now: float, trigger: Trigger,
        reason: StopReason,
    ) -> None:  # fmt: skip
        tx = s.tx
        assert tx is not None
        self._relay(s, False, now)
        s.tx, s.suspended_ev, s.finishing = None, False, s.plugged
        samples = tx.ended_samples
        while True:
            action, payload = self.messages.ended(
                tx.view, reading, self.port.csms_time(now), trigger, reason,
                offline=not self.port.online, measurands=self.measurands("ended"),
                earlier=self._expand(samples),
            )  # fmt: skip
            if not samples or self.port.fits(action, payload):
                break
            samples = _thinned(samples)
            self.log.warning("transaction %s: the %s is too big for the link; %d of its "
                             "samples kept", tx.view.local_id, action, len(samples))  # fmt: skip
        # the record goes with the Ended; the register at the stop stays (a restarted meter,
        # the simulation's, goes on from it)
        keep = {
            TX_KEY + tx.view.local_id: None,
            METER_KEY + str(s.info.number): {"wh": reading.energy_wh},
        }
        self.port.queue(action, payload, tx.view.local_id, now, keep)
        wh = reading.energy_wh - tx.view.start_wh
        self.log.info("transaction %s ended (%s): %.1f Wh", tx.view.local_id, reason, wh)


_CONTEXTS = {"Transaction.Begin": "B", "Sample.Periodic": "P", "Sample.Clock": "C"}
_CONTEXT_NAMES = {code: name for name, code in _CONTEXTS.items()}


def _compact(reading: MeterReading, t: float, context: str) -> list[Any]:
    """A sample as kept in the record: ``[t, context code, Wh, W, [A per phase], [V per
    phase], SoC]``, rounded as the sampledValues are (``t`` on the back end's clock)."""
    return [
        t, _CONTEXTS[context], round(reading.energy_wh, 1), round(reading.power_w, 1),
        [round(a, 2) for a in reading.current_a], [round(v, 1) for v in reading.voltage_v],
        None if reading.soc_percent is None else round(reading.soc_percent, 1),
    ]  # fmt: skip


def _expanded(entry: Sequence[Any]) -> tuple[float, str, MeterReading]:
    t, code, wh, w, amps, volts, soc = entry
    return t, _CONTEXT_NAMES[code], MeterReading(t, wh, w, tuple(amps), tuple(volts), soc)


def _thinned(samples: list[Any]) -> list[Any]:
    """Every second one of the middle dropped (the first and the latest stay); two or fewer:
    the oldest dropped."""
    if len(samples) <= 2:
        return samples[1:]
    return [samples[0], *samples[1:-1:2], samples[-1]]
