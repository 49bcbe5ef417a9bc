"""The hardware seam: what only the charger itself knows.

The station machine (OCPP's side of the charger) never touches hardware. It asks an :class:`Evse`
what happened (a cable was plugged in, a card was held to the reader, the EV stopped drawing, a
fault tripped), reads the meter, and tells it what to do (close or open the relay, release the
cable lock, show the connector as available or not). Anything that does that for real hardware,
or pretends to (:mod:`ocpp_iot.charger_node.simulated`), is an ``Evse``.

Time is passed in. Every method takes ``now``: seconds on the caller's clock (the runtime passes
epoch seconds that never step back, ``runtime.steady_clock()``; a test passes whatever it
likes). ``now`` never goes backwards between calls.
An ``Evse`` built on real hardware may ignore it; a simulated one uses nothing else, so a test runs
an hour of charging in a millisecond.

Connectors are numbered 1..N, the way OCPP 1.6 numbers them (``connectorId``); each
:class:`Connector` also says where it sits in OCPP 2.x's EVSE/connector tree. Every method takes
that flat number; the station machine maps it to 2.x's ``evse.id`` / ``evse.connectorId``.

This module imports nothing but the standard library: it is loaded on a Raspberry Pi Zero next to
the user's own driver code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "FAULT_CODES",
    "Connector",
    "EvResumed",
    "EvSuspended",
    "Evse",
    "EvseEvent",
    "Fault",
    "FaultCleared",
    "MeterReading",
    "Plugged",
    "ScheduledEvse",
    "TokenPresented",
    "Unplugged",
    "check_evse",
]

# OCPP 1.6's ChargePointErrorCode values (StatusNotification.errorCode), minus NoError. A fault
# code outside this set is still allowed: the station machine reports it as OtherError with the
# code as vendorErrorCode (1.6), or in the Problem event's text (2.x).
FAULT_CODES: frozenset[str] = frozenset(
    {
        "ConnectorLockFailure",
        "EVCommunicationError",
        "GroundFailure",
        "HighTemperature",
        "InternalError",
        "LocalListConflict",
        "OtherError",
        "OverCurrentFailure",
        "OverVoltage",
        "PowerMeterFailure",
        "PowerSwitchFailure",
        "ReaderFailure",
        "ResetFailure",
        "UnderVoltage",
        "WeakSignal",
    }
)


@dataclass(frozen=True, slots=True)
class Connector:
    """One place to plug in a car.

    ``number`` is what every :class:`Evse` method takes (1..N; OCPP 1.6's ``connectorId``).
    ``evse_id`` and ``connector_id`` place it in OCPP 2.x (``EVSEType.id`` and
    ``EVSEType.connectorId``, both from 1). ``phases`` is 1 or 3, ``max_power_w`` what the
    connector can deliver (for a 3-phase 32 A AC point about 22 kW).
    """

    number: int
    evse_id: int
    connector_id: int = 1
    phases: int = 3
    max_power_w: float = 22_080.0

    def __post_init__(self) -> None:
        if self.number < 1 or self.evse_id < 1 or self.connector_id < 1:
            raise ValueError(f"connector numbers start at 1: {self}")
        if self.phases not in (1, 3):
            raise ValueError(f"phases must be 1 or 3, not {self.phases}")
        if not self.max_power_w > 0:
            raise ValueError(f"max_power_w must be positive, not {self.max_power_w}")


@dataclass(frozen=True, slots=True)
class MeterReading:
    """What the connector's meter says at ``timestamp`` (the ``now`` it was read at).

    - ``energy_wh``: the import register (OCPP measurand ``Energy.Active.Import.Register``), in Wh.
      It never decreases and does not start at 0 (a meter counts for its whole life); a
      transaction's energy is the register at stop minus the register at start.
    - ``power_w``: active power imported now (``Power.Active.Import``), 0 when nothing flows.
    - ``current_a``, ``voltage_v``: per phase, L1 first (``Current.Import`` and ``Voltage`` with
      phase ``L1``..``L3``; voltage line to neutral). One entry per phase of the connector.
      With a power factor of 1, ``sum(i * v)`` is ``power_w``.
    - ``soc_percent``: the EV's state of charge when the charger knows it (DC, ISO 15118), else
      ``None``.
    """

    timestamp: float
    energy_wh: float
    power_w: float
    current_a: tuple[float, ...]
    voltage_v: tuple[float, ...]
    soc_percent: float | None = None

    @property
    def phases(self) -> int:
        return len(self.current_a)


# --- events: what happened since the station machine last asked. Each carries the connector it
# happened on and ``at``, the time it happened (<= the ``now`` of the call that returned it).


@dataclass(frozen=True, slots=True)
class Plugged:
    """A cable was plugged in (both ends: for a tethered cable, into the EV)."""

    connector: int
    at: float


@dataclass(frozen=True, slots=True)
class Unplugged:
    """The cable was removed. The EV draws nothing from here on."""

    connector: int
    at: float


@dataclass(frozen=True, slots=True)
class TokenPresented:
    """Someone showed an identifier (an RFID card, a key code, an app's token).

    ``connector`` is where it was shown, or 0 for a reader the connectors share. ``type`` is the
    OCPP 2.x ``IdTokenEnumType`` value (``ISO14443`` for most RFID cards); 1.6 sends ``id_token``
    alone as ``idTag`` (at most 20 characters there, 36 in 2.0.1).
    """

    connector: int
    at: float
    id_token: str
    type: str = "ISO14443"


@dataclass(frozen=True, slots=True)
class Fault:
    """The hardware found a fault; the connector cannot charge until :class:`FaultCleared`.

    ``connector`` 0 means the whole station. ``code`` is best one of :data:`FAULT_CODES`;
    ``text`` is free text for people (1.6 ``info``, at most 50 characters there).
    Hardware protection cuts the power on a fault whatever the relay was told.
    """

    connector: int
    at: float
    code: str
    text: str = ""


@dataclass(frozen=True, slots=True)
class FaultCleared:
    """The fault reported on ``connector`` (0: the station) is gone."""

    connector: int
    at: float


@dataclass(frozen=True, slots=True)
class EvSuspended:
    """The EV no longer wants power (it is full, or paused itself) while plugged in.

    With the relay closed: OCPP 2.x chargingState ``SuspendedEV``, 1.6 status ``SuspendedEV``.
    """

    connector: int
    at: float


@dataclass(frozen=True, slots=True)
class EvResumed:
    """The EV wants power again after :class:`EvSuspended` (it draws if the relay is closed)."""

    connector: int
    at: float


EvseEvent = Plugged | Unplugged | TokenPresented | Fault | FaultCleared | EvSuspended | EvResumed


@runtime_checkable
class Evse(Protocol):
    """What the station machine needs from the charger's hardware.

    The machine calls :meth:`events` often (every second or so, or when
    :meth:`ScheduledEvse.next_event_at` says), reads :meth:`meter` when it samples or a transaction
    starts or ends, and drives the relay: it closes it when a transaction is authorized and a cable
    is in, and opens it when the transaction stops. Methods must return quickly (no waiting on the
    EV); a slow bus is read in the background by the implementation.
    """

    @property
    def connectors(self) -> Sequence[Connector]:
        """The connectors, in number order (``connectors[0].number == 1``)."""
        ...

    def events(self, now: float) -> list[EvseEvent]:
        """What happened since the last call, oldest first. An empty list when nothing did."""
        ...

    def meter(self, connector: int, now: float) -> MeterReading:
        """The connector's meter, read now."""
        ...

    def set_relay(self, connector: int, closed: bool, now: float) -> None:
        """Close (power on) or open (power off) the connector's contactor.

        Closing with no cable in, or during a fault, is allowed and delivers nothing.
        """
        ...

    def unlock(self, connector: int, now: float) -> bool:
        """Release the cable lock; ``True`` if it is released (OCPP UnlockConnector).

        A connector without a lock (tethered cable) answers ``True``. An implementation never
        unlocks a live cable: with the relay closed it answers ``False``.
        """
        ...

    def set_available(self, connector: int, available: bool, now: float) -> None:
        """Show the connector as in or out of service (LED, display; OCPP ChangeAvailability).

        The machine still decides what to do with a cable plugged into an unavailable connector.
        """
        ...

    # Optional: ``plugged(connector) -> bool``, whether a cable is in right now. The machine asks
    # it once at start-up (after a reset or a crash the hardware has not changed, but the machine
    # has forgotten what it saw); without it, connectors are taken as free until a Plugged event.


@runtime_checkable
class ScheduledEvse(Evse, Protocol):
    """An :class:`Evse` that knows when its next event is due (a simulation does).

    The runtime then sleeps until that time instead of polling: a thousand simulated stations
    in one process cost nothing while idle.
    """

    def next_event_at(self) -> float | None:
        """When :meth:`events` next has something to return, or ``None`` if nothing is planned."""
        ...


def check_evse(evse: object) -> Evse:
    """``evse`` if it looks like an :class:`Evse`, else a ``TypeError`` naming what is missing.

    A structural check for the user's own class (``isinstance`` with a runtime-checkable
    protocol only checks that the names exist); it also checks that the connectors are
    numbered 1..N in order.
    """
    missing = [
        name
        for name in ("connectors", "events", "meter", "set_relay", "unlock", "set_available")
        if not hasattr(evse, name)
    ]
    if missing:
        raise TypeError(f"{type(evse).__name__} is not an Evse: no {', '.join(missing)}")
    for name in ("events", "meter", "set_relay", "unlock", "set_available"):
        if not callable(getattr(evse, name)):
            raise TypeError(f"{type(evse).__name__}.{name} is not a method")
    connectors = list(getattr(evse, "connectors"))  # noqa: B009 (an object, not an Evse yet)
    if not connectors or not all(isinstance(c, Connector) for c in connectors):
        raise TypeError(f"{type(evse).__name__}.connectors must be a non-empty list of Connector")
    numbers = [c.number for c in connectors]
    if numbers != list(range(1, len(numbers) + 1)):
        raise TypeError(f"{type(evse).__name__}.connectors must be numbered 1..N: {numbers}")
    assert isinstance(evse, Evse)
    return evse
