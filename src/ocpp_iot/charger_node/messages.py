"""What the station machine says, independent of the OCPP version: the words it uses for
statuses, triggers and stop reasons, and the :class:`Messages` interface that turns them into one
version's payloads (:mod:`.messages_v2` for 2.0.1 and 2.1, :mod:`.messages_v16` for 1.6).

Sans-IO: times are passed in as seconds since the Unix epoch on the back end's clock (the
machine applies the offset learnt from ``currentTime``); payloads are JSON-level dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from .evse import Connector, MeterReading

__all__ = [
    "Messages",
    "StopReason",
    "Trigger",
    "TxView",
    "ConnectorView",
    "iso",
    "sampled_values",
]

#: why a transaction ends, in the machine's words; each version spells it its own way
StopReason = Literal[
    "ev_disconnected", "local", "remote", "deauthorized", "reset_immediate", "reset_soft",
    "reset_hard", "power_loss", "unlock_command", "timeout", "other",
]  # fmt: skip
#: what caused a transaction message (2.x triggerReason; 1.6 has no such field)
Trigger = Literal[
    "authorized", "cable_plugged_in", "charging_state_changed", "ev_departed",
    "meter_value_periodic", "remote_start", "remote_stop", "stop_authorized", "deauthorized",
    "reset_command", "trigger", "abnormal_condition", "ev_communication_lost",
    "meter_value_clock", "ev_connect_timeout", "unlock_command",
]  # fmt: skip

#: ReadingContext of the samples an event carries: periodic (J02), clock-aligned (J01), else
#: asked for
_CONTEXTS = {"meter_value_periodic": "Sample.Periodic", "meter_value_clock": "Sample.Clock"}


def sample_context(trigger: str) -> str:
    """The sampledValue ``context`` for the samples of an event with ``trigger``."""
    return _CONTEXTS.get(trigger, "Trigger")


def iso(t: float) -> str:
    """An OCPP timestamp (RFC 3339, UTC, millisecond precision) for ``t`` epoch seconds."""
    text = datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class TxView:
    """What a message needs to know of a transaction."""

    local_id: str  #: ours: 2.x transactionId; 1.6's local reference (the outbox key)
    connector: Connector
    id_token: str | None
    token_type: str
    remote_start_id: int | None
    csms_id: int | None  #: 1.6: the back end's transactionId once StartTransaction is answered
    start_wh: float


@dataclass(frozen=True, slots=True)
class ConnectorView:
    """What a StatusNotification needs to know of a connector."""

    connector: Connector
    plugged: bool
    fault: str | None  #: the fault code, if faulted
    fault_text: str
    operative: bool
    authorized: bool  #: a token is authorized here, waiting for the cable or the start
    charging: bool  #: in a transaction with the relay closed and the EV drawing
    suspended_ev: bool
    in_transaction: bool
    #: a transaction ended here and the cable is still in (1.6 Finishing)
    finishing: bool = False


_MEASURAND_UNITS = {
    "Energy.Active.Import.Register": "Wh",
    "Power.Active.Import": "W",
    "Current.Import": "A",
    "Voltage": "V",
    "SoC": "Percent",
}


def sampled_values(
    reading: MeterReading, measurands: Sequence[str], context: str | None, *, v16: bool
) -> list[dict[str, Any]]:
    """The sampledValue list for ``measurands`` from one reading (unknown measurands are left
    out). Per-phase measurands carry ``phase`` L1..L3. 1.6 values are strings (its schema),
    2.x values numbers; ``unit``/``unitOfMeasure`` only where not the schema's default (Wh)."""
    out: list[dict[str, Any]] = []

    def add(measurand: str, value: float, phase: str | None = None) -> None:
        item: dict[str, Any] = {"value": _number(value, v16)}
        if context is not None:
            item["context"] = context
        if measurand != "Energy.Active.Import.Register":
            item["measurand"] = measurand
        if phase is not None:
            item["phase"] = phase
        unit = _MEASURAND_UNITS[measurand]
        if unit != "Wh":
            if v16:
                item["unit"] = unit
            else:
                item["unitOfMeasure"] = {"unit": unit}
        out.append(item)

    for m in measurands:
        if m == "Energy.Active.Import.Register":
            add(m, round(reading.energy_wh, 1))
        elif m == "Power.Active.Import":
            add(m, round(reading.power_w, 1))
        elif m == "Current.Import":
            for i, a in enumerate(reading.current_a):
                add(m, round(a, 2), f"L{i + 1}")
        elif m == "Voltage":
            for i, v in enumerate(reading.voltage_v):
                add(m, round(v, 1), f"L{i + 1}-N")  # line to neutral
        elif m == "SoC" and reading.soc_percent is not None:
            add(m, round(reading.soc_percent, 1))
    return out


def meter_value(
    reading: MeterReading, t: float, measurands: Sequence[str], context: str, *, v16: bool
) -> dict[str, Any] | None:
    """One MeterValue (``timestamp`` and ``sampledValue``) for a message; ``None`` if none of
    ``measurands`` gives a value."""
    values = sampled_values(reading, measurands, context, v16=v16)
    return {"timestamp": iso(t), "sampledValue": values} if values else None


def _number(value: float, v16: bool) -> Any:
    if value == int(value):
        value = int(value)
    return str(value) if v16 else value


class Messages(Protocol):
    """One OCPP version's payloads for what the station machine wants to say.

    Each builder returns ``(action, payload)``. ``t`` is the event's time on the back end's clock.
    """

    version: str
    #: the action of transaction messages that carry meter samples ("TransactionEvent" /
    #: "MeterValues")
    sample_action: str

    def boot(self, reason: str, model: str, vendor: str, serial: str | None,
             firmware: str | None) -> tuple[str, dict[str, Any]]: ...  # fmt: skip

    def heartbeat(self) -> tuple[str, dict[str, Any]]: ...

    def status(self, view: ConnectorView, t: float) -> tuple[str, dict[str, Any]]: ...

    def status_value(self, view: ConnectorView) -> str:
        """The status this version reports for the connector (to detect changes)."""
        ...

    def authorize(self, id_token: str, token_type: str) -> tuple[str, dict[str, Any]]: ...

    def authorize_status(self, payload: dict[str, Any]) -> str:
        """``Accepted`` or the refusal, from an Authorize answer."""
        ...

    def started(
        self, tx: TxView, reading: MeterReading, t: float, trigger: Trigger, *, offline: bool,
        measurands: Sequence[str], charging_state: str | None = None,
    ) -> tuple[str, dict[str, Any]]: ...  # fmt: skip

    def updated(
        self,
        tx: TxView,
        reading: MeterReading,
        t: float,
        trigger: Trigger,
        *,
        offline: bool,
        measurands: Sequence[str],
        charging_state: str | None,
    ) -> tuple[str, dict[str, Any]] | None:
        """``None`` when the version has no message for it (1.6 sends no event for a change of
        charging state: its StatusNotification says it)."""
        ...  # fmt: skip

    def ended(
        self,
        tx: TxView,
        reading: MeterReading,
        t: float,
        trigger: Trigger,
        reason: StopReason,
        *,
        offline: bool,
        measurands: Sequence[str],
        earlier: Sequence[dict[str, Any]] = (),
    ) -> tuple[str, dict[str, Any]]:
        """``earlier``: MeterValues sampled during the transaction for the Ended message
        (2.x ``TxEndedInterval``), before the one taken at the stop."""
        ...  # fmt: skip

    def meter_values(
        self,
        connector: Connector,
        reading: MeterReading,
        t: float,
        measurands: Sequence[str],
        tx: TxView | None,
        context: str = "Trigger",
    ) -> tuple[str, dict[str, Any]]:
        """A MeterValues that is not queued (a trigger; clock-aligned data outside a
        transaction, ``context`` ``Sample.Clock``)."""
        ...  # fmt: skip

    def start_answer(self, payload: dict[str, Any]) -> tuple[str | None, int | None]:
        """From the answer to a transaction's first message: the token status it reports (if
        any) and, in 1.6, the back end's transactionId."""
        ...
