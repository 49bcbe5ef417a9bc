"""Your own Evse: one connector, a contactor on a GPIO pin, a Modbus energy meter, an RFID reader.

The charger runtime talks to the hardware through an ``Evse`` (``ocpp_iot.charger_node.evse``):
it asks what happened (``events``), reads the meter (``meter``) and drives the contactor
(``set_relay``), the cable lock (``unlock``) and the in-service light (``set_available``). This
file shows one for a home-made AC charger on a Raspberry Pi, in two layers:

- ``MyEvse`` turns raw hardware state into what OCPP needs: the IEC 61851 control pilot state
  into plug / unplug / EV paused, a card into a token, a contactor that does not follow its coil
  into a fault, meter registers into a ``MeterReading``. It holds no hardware code, so it runs and
  is tested anywhere.
- a *hardware* object does the pin and bus work. ``PiHardware`` sketches it for a Pi (gpiozero for
  the pins, pymodbus for an Eastron SDM630-style meter); each place where your wiring decides is
  marked TODO. ``FakeHardware`` is the same surface in memory: ``python examples/my_evse.py``
  runs a short session on it, and the tests use it.

Plug yours in: ``MyEvse(PiHardware())`` wherever the runtime takes an ``Evse``.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_iot.charger_node.evse import (
    Connector,
    EvResumed,
    EvseEvent,
    EvSuspended,
    Fault,
    FaultCleared,
    MeterReading,
    Plugged,
    TokenPresented,
    Unplugged,
    check_evse,
)


@dataclass(frozen=True)
class RawMeter:
    """What the meter's registers say, in its own units."""

    energy_kwh: float  # total import register
    power_w: float
    voltage_v: tuple[float, ...]  # L1..L3, line to neutral
    current_a: tuple[float, ...]


class Hardware(Protocol):
    """The few things ``MyEvse`` needs from the pins and buses. All must return quickly."""

    def pilot_state(self) -> str:
        """IEC 61851-1 control pilot: A no EV, B EV connected, C/D EV asks for power, E/F error."""
        ...

    def read_card(self) -> str | None:
        """The UID of a card held to the reader since the last call (hex), else None."""
        ...

    def set_contactor(self, closed: bool) -> None: ...

    def contactor_closed(self) -> bool:
        """The contactor's auxiliary contact: whether it really is closed (a welded one is)."""
        ...

    def read_meter(self) -> RawMeter: ...

    def set_lock(self, locked: bool) -> bool:
        """Drive the cable lock; True if its feedback says it did."""
        ...

    def set_light(self, colour: str) -> None: ...


class MyEvse:
    """An ``Evse`` for one AC connector driven through a :class:`Hardware` object."""

    def __init__(self, hardware: Hardware, phases: int = 3, max_power_w: float = 11_000.0) -> None:
        self.hw = hardware
        self._connectors = (Connector(1, 1, 1, phases, max_power_w),)
        self._pilot = "A"
        self._want_relay = False  # what the station machine asked for
        self._paused = False  # EvSuspended reported, EvResumed not yet
        self._fault: str | None = None
        self._last_energy_wh = 0.0
        self._pending: list[EvseEvent] = []

    @property
    def connectors(self) -> Sequence[Connector]:
        return self._connectors

    def events(self, now: float) -> list[EvseEvent]:
        out, self._pending = self._pending, []
        pilot = self.hw.pilot_state()
        was, self._pilot = self._pilot, pilot
        if was == "A" and pilot != "A":
            out.append(Plugged(1, now))
        elif was != "A" and pilot == "A":
            out.append(Unplugged(1, now))
        # The EV asks for power in state C (D: with ventilation); in state B with the charge
        # allowed, it is not asking (full, or it paused itself).
        paused = self._want_relay and pilot == "B"
        if paused and not self._paused:
            out.append(EvSuspended(1, now))
        elif self._paused and pilot in "CD":
            out.append(EvResumed(1, now))
        self._paused = paused
        card = self.hw.read_card()
        if card:
            out.append(TokenPresented(1, now, card[:20], "ISO14443"))
        # IEC 61851: the contactor closes only while the EV asks (C/D) and the machine allows.
        closed = self._want_relay and pilot in "CD" and self._fault is None
        self.hw.set_contactor(closed)
        fault = self._check_fault(pilot, closed)
        if fault != self._fault:
            if fault is None:
                out.append(FaultCleared(1, now))
            else:
                self.hw.set_contactor(False)
                out.append(Fault(1, now, fault, "found by MyEvse"))
            self._fault = fault
        return out

    def _check_fault(self, pilot: str, closed: bool) -> str | None:
        if pilot in "EF":
            return "EVCommunicationError"
        if self.hw.contactor_closed() != closed:
            return "PowerSwitchFailure"  # welded, or its coil does not pull in
        return None

    def meter(self, connector: int, now: float) -> MeterReading:
        raw = self.hw.read_meter()
        # The register never goes back: a bad read is not allowed to make a transaction negative.
        energy = max(raw.energy_kwh * 1000.0, self._last_energy_wh)
        self._last_energy_wh = energy
        n = self._connectors[0].phases
        return MeterReading(now, energy, raw.power_w, raw.current_a[:n], raw.voltage_v[:n])

    def set_relay(self, connector: int, closed: bool, now: float) -> None:
        self._want_relay = closed
        self.hw.set_contactor(closed and self._pilot in "CD" and self._fault is None)

    def unlock(self, connector: int, now: float) -> bool:
        if self.hw.contactor_closed():
            return False  # never release a live cable
        return self.hw.set_lock(False)

    def set_available(self, connector: int, available: bool, now: float) -> None:
        self.hw.set_light("green" if available else "red")


@dataclass
class FakeHardware:
    """:class:`Hardware` in memory: set ``pilot``, ``card`` and ``meter`` from a test."""

    pilot: str = "A"
    card: str | None = None
    meter: RawMeter = field(default_factory=lambda: RawMeter(1234.5, 0.0, (230.0,) * 3, (0.0,) * 3))
    contactor: bool = False
    welded: bool = False
    locked: bool = True
    light: str = "green"

    def pilot_state(self) -> str:
        return self.pilot

    def read_card(self) -> str | None:
        card, self.card = self.card, None
        return card

    def set_contactor(self, closed: bool) -> None:
        self.contactor = closed

    def contactor_closed(self) -> bool:
        return self.contactor or self.welded

    def read_meter(self) -> RawMeter:
        return self.meter

    def set_lock(self, locked: bool) -> bool:
        self.locked = locked
        return True

    def set_light(self, colour: str) -> None:
        self.light = colour


class PiHardware:
    """:class:`Hardware` on a Raspberry Pi: a sketch to adapt to your wiring.

    Needs ``pip install gpiozero pymodbus`` (imported here, not at the top, so this file imports
    without them). Pins are BCM numbers.
    """

    def __init__(
        self, relay_pin: int = 17, aux_pin: int = 27, lock_pin: int = 22, port: str = "/dev/ttyUSB0"
    ) -> None:
        gpiozero: Any = importlib.import_module("gpiozero")
        modbus: Any = importlib.import_module("pymodbus.client")
        # TODO: your contactor's driver: active_high depends on the relay board.
        self.relay = gpiozero.OutputDevice(relay_pin, active_high=True, initial_value=False)
        self.aux = gpiozero.DigitalInputDevice(aux_pin, pull_up=True)  # TODO: your aux contact
        self.lock = gpiozero.OutputDevice(lock_pin, initial_value=True)  # TODO: lock motor driver
        self.bus = modbus.ModbusSerialClient(port=port, baudrate=9600, parity="N", timeout=0.3)
        self.bus.connect()
        self.meter_address = 1  # TODO: the meter's Modbus address

    def pilot_state(self) -> str:
        # TODO: the control pilot is a ±12 V 1 kHz PWM signal generated by your EVSE board; read
        # its high level through an ADC (e.g. an MCP3008 via gpiozero.MCP3008) and map it:
        # 12 V -> "A", 9 V -> "B", 6 V -> "C", 3 V -> "D", 0 V -> "E", -12 V -> "F".
        raise NotImplementedError("TODO: read the control pilot of your EVSE board")

    def read_card(self) -> str | None:
        # TODO: an MFRC522 or PN532 reader (SPI or I2C); return the UID as hex, once per tap.
        raise NotImplementedError("TODO: read your RFID reader")

    def set_contactor(self, closed: bool) -> None:
        self.relay.value = closed

    def contactor_closed(self) -> bool:
        return bool(self.aux.value)

    def _floats(self, address: int, count: int) -> list[float]:
        # TODO: check your meter's register map; the SDM630 keeps 32-bit big-endian floats in its
        # input registers (L1..L3 voltage from 0x0000, current from 0x0006, total power at 0x0034,
        # total import kWh at 0x0048). pymodbus 3.10 names the `slave` argument `device_id`.
        reply = self.bus.read_input_registers(address, count=2 * count, slave=self.meter_address)
        words = reply.registers
        raw = b"".join(w.to_bytes(2, "big") for w in words)
        return list(struct.unpack(f">{count}f", raw))

    def read_meter(self) -> RawMeter:
        volts = tuple(self._floats(0x0000, 3))
        amps = tuple(self._floats(0x0006, 3))
        (power,) = self._floats(0x0034, 1)
        (energy,) = self._floats(0x0048, 1)
        return RawMeter(energy, power, volts, amps)

    def set_lock(self, locked: bool) -> bool:
        self.lock.value = locked
        return True  # TODO: read the lock's feedback switch if it has one

    def set_light(self, colour: str) -> None:
        pass  # TODO: an LED or a display


def demo() -> None:
    """A session on the fake hardware, printed: plug, card, charge, EV full, unplug."""
    hw = FakeHardware()
    evse = check_evse(MyEvse(hw))
    t = 0.0

    def step(what: str) -> None:
        for event in evse.events(t):
            print(f"{t:6.0f} s  {what:<22} {event}")

    hw.pilot = "B"
    step("cable in")
    hw.card = "04A1B2C3D4"
    step("card")
    evse.set_relay(1, True, t)  # the station machine: authorized
    hw.pilot, t = "C", 10.0
    step("EV asks for power")
    hw.meter = RawMeter(1244.5, 11000.0, (230.0,) * 3, (15.9,) * 3)
    print(f"{t:6.0f} s  meter                  {evse.meter(1, t)}")
    hw.pilot, t = "B", 3300.0
    step("EV full")
    hw.pilot, t = "C", 3310.0
    step("EV tops up")
    hw.pilot, t = "B", 3320.0
    step("EV full again")
    evse.set_relay(1, False, t)
    hw.pilot, t = "A", 3400.0
    step("cable out")
    print(f"unlock: {evse.unlock(1, t)}")


if __name__ == "__main__":
    demo()
