"""What a LoRa modem driver offers the adapters (the station link, the gateway): packets out,
packets in. The drivers (RAK3172, RYLR998/896, Ebyte E22/E32) implement it over a serial port;
the tests and the simulator use the same drivers through pseudo-terminals, so nothing above this
interface knows whether the radio is real.

A driver owns its port: it configures the radio on :meth:`Modem.open`, keeps listening, and when
the port misbehaves (garbage, a modem that stops answering, a port that disappears) it resets,
reopens and goes on by itself. :meth:`Modem.transmit` then raises :class:`ModemError` for the
packet that could not go; the link layer above retries as it retries a lost frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Modem", "ModemError", "Received"]


class ModemError(Exception):
    """A packet could not be transmitted (the modem refused it, or did not answer)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One packet the modem received. ``rssi`` (dBm) and ``snr`` (dB) when the modem says them."""

    payload: bytes
    rssi: float | None = None
    snr: float | None = None


@runtime_checkable
class Modem(Protocol):
    """One LoRa modem on one serial port (all methods from the event loop's thread)."""

    #: the largest packet the modem transmits in one piece (E32: 58, RYLR998: 240, RAK3172: 255)
    max_payload: int

    async def open(self) -> None:
        """Open the port, configure the radio and start listening."""
        ...

    async def close(self) -> None: ...

    async def transmit(self, payload: bytes) -> None:
        """Send one packet; returns once the modem reports it sent (or, for a modem that does
        not say, once its time on air has passed). ``ModemError`` if it could not go."""
        ...

    async def receive(self) -> Received:
        """The next packet received (waits); ``EOFError`` once closed."""
        ...
