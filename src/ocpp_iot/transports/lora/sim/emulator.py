"""What every simulated modem shares: its serial side, its radio side, and the test hooks.

An :class:`Emulator` gets the host's bytes (``host_bytes``) and writes its answers
(``write``); it starts transmissions on the channel (``transmit``; ``sent`` is called at
their end) and is asked whether it hears one (``hears``) and handed those it received
(``received``). All of it runs in the simulator's thread, under its lock.

Test hooks, for every modem: ``reboot`` (a restart: the volatile state goes, the modem says so
its own way), ``interleave`` (the next time the modem answers the host, it first writes a
packet "just received", so that a reception and a command reply meet on the serial line).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .channel import Transmission

if TYPE_CHECKING:
    from .core import SimRadio, Simulator

__all__ = ["Emulator"]


class Emulator:
    """Base of the simulated modems (module docstring)."""

    family = ""

    def __init__(self, radio: SimRadio, **options: Any) -> None:
        if options:
            raise TypeError(f"unknown {type(self).__name__} options: {', '.join(options)}")
        self.radio = radio
        self.tx: Transmission | None = None
        self._interleaved: list[tuple[bytes, float, float]] = []

    @property
    def sim(self) -> Simulator:
        return self.radio.sim

    # -- serial side -------------------------------------------------------------------------

    def host_bytes(self, data: bytes) -> None:
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        self.radio.write(data)

    def interleave(self, payload: bytes, rssi: float = -60.0, snr: float = 8.0) -> None:
        self._interleaved.append((payload, rssi, snr))

    def flush_interleaved(self) -> None:
        """Write the interleaved packets now (before an answer)."""
        items, self._interleaved = self._interleaved, []
        for payload, rssi, snr in items:
            self.output_packet(payload, rssi, snr, {})

    def output_packet(self, payload: bytes, rssi: float, snr: float, meta: dict[str, Any]) -> None:
        """Write a received packet to the host, in the modem's format."""
        raise NotImplementedError

    # -- radio side --------------------------------------------------------------------------

    def hears(self, tx: Transmission) -> bool:
        raise NotImplementedError

    def received(self, tx: Transmission, rssi: float, snr: float) -> bool:
        """A packet received; ``False`` if the modem drops it (not for its address)."""
        self.output_packet(tx.payload, rssi, snr, tx.meta)
        return True

    def transmit(
        self,
        payload: bytes,
        *,
        air_bytes: int,
        frequency_hz: int,
        sf: int,
        bandwidth_hz: int,
        coding_rate: int,
        preamble: int,
        power_dbm: float,
        meta: dict[str, Any] | None = None,
    ) -> Transmission:
        tx = self.sim.start_transmission(
            self.radio,
            family=self.family,
            payload=payload,
            air_bytes=air_bytes,
            frequency_hz=frequency_hz,
            sf=sf,
            bandwidth_hz=bandwidth_hz,
            coding_rate=coding_rate,
            preamble=preamble,
            power_dbm=power_dbm,
            meta=meta or {},
        )
        self.tx = tx
        return tx

    def tx_end(self, tx: Transmission) -> None:
        """The simulator's call at the end of a transmission of this radio."""
        if tx is self.tx:
            self.tx = None
            self.sent(tx)

    def sent(self, tx: Transmission) -> None:
        """Our transmission ``tx`` is over."""

    def reboot(self) -> None:
        """Restart: a transmission in progress is cut off."""
        if self.tx is not None:
            self.tx.aborted = True
            self.tx = None
        self._interleaved.clear()
