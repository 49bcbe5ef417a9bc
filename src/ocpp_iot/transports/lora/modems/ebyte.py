"""Ebyte E32 and E22 UART LoRa modules in fixed-point transmission (docs/lora.md, "Modems").

What the modules do, from Ebyte's user manuals: in normal mode (M0 = M1 = 0) every byte
written to the UART is sent; in *fixed-point* mode the first three bytes of a write are the
target's ``ADDH ADDL CHAN`` (address 0xFFFF: every module on that channel) and are not sent
as data. The module cuts what it is given into packets of its sub-packet size (E32: 58 bytes;
E22: 240, 128, 64 or 32, a setting) and starts sending when that many bytes are in or the
UART has been idle for a few byte times; the receiving module writes each packet to its UART
as it arrives, followed, on an E22 with "RSSI byte" enabled, by one byte ``b`` with the
packet's RSSI ``-(256 - b)`` dBm. AUX is low while the module is busy (taking bytes in,
transmitting) and high when it is idle. The channel number gives the frequency: E32-868/900
models ``862 + CHAN`` MHz, E22-900 ``850.125 + CHAN`` MHz.

There is no framing, no error report and no "sent" event. The driver adds its own frame,
``length (1) | payload | CRC-16/CCITT-FALSE (2)`` (:func:`~.framing.ebyte_frame`), and finds
frames in what arrives by length and CRC, resynchronising byte by byte after garbage or a lost
packet (:class:`~.framing.EbyteDeframer`). A packet of up to ``sub_packet - 3`` bytes
(:attr:`Ebyte.max_payload`; E32: 55) goes as one radio packet; up to 255 are accepted and go as
several (each lost on its own). "Sent" is the AUX pin going high again when ``aux`` (a
function reading the pin: ``True`` = high) is given, else the estimate: UART time plus the
time on air of each radio packet at ``radio``'s settings (which must match the module's "air
data rate" setting; the module's own bytes on air, if any, are not known and not counted).

The module's address, channel, air rate, sub-packet size and RSSI byte are set once in its
configuration mode (M0 = M1 = 1, Ebyte's ``C0`` command or their tool); the driver does not
change them. It listens on the module's configured channel; ``radio.frequency_hz`` gives the
channel written into each packet's header (the transmit frequency).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..arq import RadioConfig
from ..modem import ModemError
from .base import SerialModem
from .framing import EbyteDeframer, ebyte_frame

__all__ = ["Ebyte", "VARIANTS", "channel_for"]

#: variant -> (frequency of channel 0 in Hz, channel step in Hz, highest channel, default
#: sub-packet size, RSSI byte available)
VARIANTS: dict[str, tuple[int, int, int, int, bool]] = {
    "e32": (862_000_000, 1_000_000, 31, 58, False),
    "e22": (850_125_000, 1_000_000, 80, 240, True),
}
_FRAMING = 3  # length byte + CRC-16


def channel_for(variant: str, frequency_hz: int) -> int:
    """The channel number of ``frequency_hz`` (``ValueError`` if no channel has it)."""
    base, step, top, _, _ = VARIANTS[variant]
    chan, rest = divmod(frequency_hz - base, step)
    if rest or not 0 <= chan <= top:
        raise ValueError(f"{variant.upper()} channels are {base / 1e6:g} + n MHz, n 0..{top}")
    return chan


class Ebyte(SerialModem):
    """An Ebyte E32 or E22 module on ``port`` in fixed-point mode (module docstring).
    ``destination``: the target address (0xFFFF: every module on the channel); ``fixed``
    False for transparent mode (no header: the module's own address and channel)."""

    kind = "e32"

    def __init__(
        self,
        port: str,
        radio: RadioConfig,
        *,
        variant: str = "e32",
        destination: int = 0xFFFF,
        fixed: bool = True,
        sub_packet: int | None = None,
        rssi_byte: bool = False,
        aux: Callable[[], bool] | None = None,
        airtime_scale: float = 1.0,
        baudrate: int = 9600,
        **kw: object,
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown Ebyte module {variant!r} (e32, e22)")
        _, _, _, default_sub, has_rssi = VARIANTS[variant]
        size = sub_packet or default_sub
        if variant == "e32" and size != 58:
            raise ValueError("the E32's sub-packet is 58 bytes")
        if variant == "e22" and size not in (32, 64, 128, 240):
            raise ValueError("E22 sub-packets are 32, 64, 128 or 240 bytes")
        if rssi_byte and not has_rssi:
            raise ValueError(f"the {variant.upper()} has no RSSI byte")
        if not 0 <= destination <= 0xFFFF:
            raise ValueError("Ebyte addresses are 0..0xFFFF")
        self.kind = variant
        self.max_payload = size - _FRAMING
        kw.setdefault("keepalive", None)  # nothing to ask a module that never answers
        super().__init__(port, radio, baudrate=baudrate, **kw)  # type: ignore[arg-type]
        self.max_transmit = 255
        self.variant = variant
        self.channel = channel_for(variant, radio.frequency_hz)
        self.destination = destination
        self.fixed = fixed
        self.sub_packet = size
        self.rssi_byte = rssi_byte
        self.aux = aux
        self.airtime_scale = airtime_scale

    def make_framer(self) -> EbyteDeframer:
        # a frame's packets arrive one time on air apart: silence longer than that ends one
        gap = self.radio.airtime(self.sub_packet) * self.airtime_scale
        return EbyteDeframer(
            self.sub_packet,
            rssi_byte=self.rssi_byte,
            stale_after=1.5 * gap + 0.25,
            stats=self.framing,
        )

    async def configure(self) -> None:
        """Nothing to configure over the UART in normal mode (module docstring)."""

    def header(self) -> bytes:
        if not self.fixed:
            return b""
        return bytes([self.destination >> 8, self.destination & 0xFF, self.channel])

    def packets(self, size: int) -> list[int]:
        """The radio packets a ``size``-byte payload takes (their sizes)."""
        n = size + _FRAMING
        return [min(self.sub_packet, n - i) for i in range(0, n, self.sub_packet)]

    def estimate(self, size: int) -> float:
        """Seconds until a ``size``-byte payload is sent: UART time (10 bits a byte), the
        module's idle wait (3 byte times) and each packet's time on air."""
        uart = (len(self.header()) + size + _FRAMING + 3) * 10 / self.baudrate
        air = sum(self.radio.airtime(k) for k in self.packets(size))
        return uart + air * self.airtime_scale

    async def _transmit(self, payload: bytes) -> None:
        await self.write(self.header() + ebyte_frame(payload))
        if self.aux is None:
            await asyncio.sleep(self.estimate(len(payload)))
            return
        air = sum(self.radio.airtime(k) for k in self.packets(len(payload)))
        await self._wait_aux(air + self.reply_timeout)

    async def _wait_aux(self, timeout: float) -> None:
        """AUX goes low (busy) soon after the bytes arrive, then high when all is sent."""
        assert self.aux is not None
        loop = self.loop
        start = loop.time()
        try:
            while self.aux() and loop.time() - start < 0.1:  # not busy yet
                await asyncio.sleep(0.002)
            while not self.aux():
                if loop.time() - start > timeout:
                    self.note_timeout("AUX stayed low")
                    raise ModemError(f"{self.name}: AUX stayed low (busy) for {timeout:.1f} s")
                await asyncio.sleep(0.002)
        except ModemError:
            raise
        except Exception as exc:  # reading the pin failed
            raise ModemError(f"{self.name}: reading AUX failed: {exc}") from exc

    def _on_item(self, item: tuple[bytes, int | None]) -> None:
        payload, rssi = item
        self.deliver(payload, None if rssi is None else float(rssi - 256), None)
