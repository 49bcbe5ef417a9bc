"""A simulated Ebyte E32 / E22 UART module in normal mode, byte for byte.

Modelled (see :mod:`..modems.ebyte` for the sources): the host's bytes collect in a 512-byte
buffer (more is dropped); when the line has been idle ``idle_gap`` wall seconds the burst is
taken: in fixed-point mode its first three bytes are the target ``ADDH ADDL CHAN`` (a burst
of three bytes or fewer sends nothing), in transparent mode all of it is data for the
module's own address and channel. The data goes on air in packets of ``sub_packet`` bytes,
one after the other, each on the target channel's frequency (E32: 862 + CHAN MHz, E22:
850.125 + CHAN MHz). A module hears packets on its own channel whose target is its address,
0xFFFF, or anything if its own address is 0xFFFF, and writes each packet's bytes to the host,
followed by the RSSI byte ``256 + RSSI`` if ``rssi_byte`` (E22 only). :meth:`EbyteSim.aux` is
the AUX pin: ``False`` (low) while bytes are buffered or being sent.

The module's settings (address, channel, the air rate as ``sf``/``bandwidth_hz``/
``coding_rate``/``preamble``, sub-packet size, RSSI byte, fixed or transparent) are the
emulator's options, as they are set in the module's configuration mode, not over the line.
What the module itself adds on air, if anything, is not known: a packet's time on air is that
of its data bytes.
"""

from __future__ import annotations

from collections import deque
from functools import partial
from typing import Any

from .channel import Transmission
from .core import EMULATORS, SimRadio
from .emulator import Emulator

__all__ = ["EbyteSim"]

_VARIANTS = {  # variant -> (channel 0 in Hz, step, default channel, default sub-packet, RSSI byte)
    "e32": (862_000_000, 1_000_000, 6, 58, False),
    "e22": (850_125_000, 1_000_000, 18, 240, True),
}


class EbyteSim(Emulator):
    family = "ebyte"

    def __init__(
        self,
        radio: SimRadio,
        *,
        variant: str = "e32",
        address: int | None = None,
        channel: int | None = None,
        fixed: bool = True,
        rssi_byte: bool = False,
        sub_packet: int | None = None,
        sf: int = 9,
        bandwidth_hz: int = 125_000,
        coding_rate: int = 1,
        preamble: int = 8,
        power_dbm: float = 20.0,
        idle_gap: float = 0.003,
        boot_time: float = 0.05,
        **options: Any,
    ) -> None:
        super().__init__(radio, **options)
        base, step, default_channel, default_sub, has_rssi = _VARIANTS[variant]
        if rssi_byte and not has_rssi:
            raise ValueError(f"the {variant.upper()} has no RSSI byte")
        self.variant = variant
        self.address = radio.index if address is None else address
        self.channel = default_channel if channel is None else channel
        self.fixed = fixed
        self.rssi_byte = rssi_byte
        self.sub_packet = sub_packet or default_sub
        self.air = (sf, bandwidth_hz, coding_rate, preamble)
        self.power = power_dbm
        self.idle_gap = idle_gap
        self.boot_time = boot_time
        self._base, self._step = base, step
        self._inbuf = bytearray()
        self._burst = 0
        self._packets: deque[tuple[int, int, bytes]] = deque()
        self.booting = False
        self._boots = 0
        #: host bytes dropped because the module's buffer was full
        self.overflow = 0

    def frequency(self, channel: int) -> int:
        return self._base + channel * self._step

    def aux(self) -> bool:
        """The AUX pin: ``True`` (high) when idle (a hung module holds it low)."""
        busy = self._inbuf or self._packets or self.tx is not None or self.booting
        return not busy and not self.radio.muted

    # -- serial side --------------------------------------------------------------------------

    def host_bytes(self, data: bytes) -> None:
        if self.booting:
            return
        room = 512 - len(self._inbuf) - sum(len(p[2]) for p in self._packets)
        if len(data) > room:
            self.overflow += len(data) - max(room, 0)
            data = data[: max(room, 0)]
        self._inbuf += data
        self._burst += 1
        burst = self._burst
        self.sim.after_real(self.idle_gap, lambda: self._idle(burst))

    def _idle(self, burst: int) -> None:
        if burst != self._burst or not self._inbuf:
            return  # more bytes came meanwhile
        data, self._inbuf = bytes(self._inbuf), bytearray()
        self.flush_interleaved()
        if self.fixed:
            if len(data) <= 3:
                return
            dest, chan, data = (data[0] << 8) | data[1], data[2], data[3:]
        else:
            dest, chan = self.address, self.channel
        for i in range(0, len(data), self.sub_packet):
            self._packets.append((dest, chan, data[i : i + self.sub_packet]))
        if self.tx is None:
            self._next()

    def _next(self) -> None:
        if not self._packets:
            return
        dest, chan, chunk = self._packets.popleft()
        sf, bw, cr, pre = self.air
        self.transmit(
            chunk,
            air_bytes=len(chunk),
            frequency_hz=self.frequency(chan),
            sf=sf,
            bandwidth_hz=bw,
            coding_rate=cr,
            preamble=pre,
            power_dbm=self.power,
            meta={"dest": dest, "chan": chan, "src": self.address},
        )

    def output_packet(self, payload: bytes, rssi: float, snr: float, meta: dict[str, Any]) -> None:
        extra = bytes([max(0, min(255, 256 + round(rssi)))]) if self.rssi_byte else b""
        self.write(payload + extra)

    # -- radio side ---------------------------------------------------------------------------

    def sent(self, tx: Transmission) -> None:
        self._next()

    def hears(self, tx: Transmission) -> bool:
        sf, bw, _, _ = self.air
        return (
            not self.booting
            and self.tx is None
            and (tx.frequency_hz, tx.sf, tx.bandwidth_hz) == (self.frequency(self.channel), sf, bw)
        )

    def received(self, tx: Transmission, rssi: float, snr: float) -> bool:
        if self.address != 0xFFFF and tx.meta.get("dest") not in (0xFFFF, self.address):
            return False
        self.output_packet(tx.payload, rssi, snr, tx.meta)
        return True

    def reboot(self) -> None:
        super().reboot()
        self._inbuf.clear()
        self._packets.clear()
        self.booting = True
        self._boots += 1
        boot = self._boots
        self.sim.after_real(self.boot_time, lambda: self._booted(boot))

    def _booted(self, boot: int) -> None:
        if boot == self._boots:
            self.booting = False


EMULATORS["e32"] = partial(EbyteSim, variant="e32")
EMULATORS["e22"] = partial(EbyteSim, variant="e22")
