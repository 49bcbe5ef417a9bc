"""REYAX RYLR998 and RYLR896 (docs/lora.md, "Modems").

The AT exchange, from REYAX's AT command guides for both modules:

- commands end in CR LF; a setting answers ``+OK``, a query (``AT+BAND?``) answers its value
  line (``+BAND=868100000``) alone, an error answers ``+ERR=<n>`` (1 no line end, 2 not an AT
  command, 4 unknown command, 5 data length does not match, 10 transmission timed out, 13 more
  than 240 bytes, 17 the last transmission is not finished, 18 preamble not allowed, ...);
- ``AT+ADDRESS=<0..65535>``, ``AT+NETWORKID=<id>`` (RYLR998: 3..15 or 18, the default;
  RYLR896: 0..16), ``AT+BAND=<Hz>``, ``AT+PARAMETER=<SF>,<BW code>,<CR 1..4 for 4/5..4/8>,
  <preamble>`` with BW codes 7, 8, 9 for 125, 250, 500 kHz (RYLR896 also 0..6 for 7.8 to
  62.5 kHz); RYLR998: SF 5..11 (at most 9 at 125 kHz, 10 at 250 kHz), preamble 4..24 with
  network 18, exactly 12 with any other; RYLR896: SF 7..12, preamble 4..7;
  ``AT+CRFOP=<dBm>`` the transmit power;
- ``AT+SEND=<address>,<length>,<data>`` (address 0 reaches every module of the network),
  at most 240 bytes; the module puts 8 bytes of its own in front of them on air;
- received: ``+RCV=<address>,<length>,<data>,<RSSI>,<SNR>``; ``+READY`` after a (re)start.

``<data>`` is bytes, not a line: it may hold commas, CR, LF, NUL. The driver cuts ``+RCV``
by its length field, never at a line end (:class:`ReyaxLines`), so any byte arrives intact.
What it sends is the packet's bytes as they are (``encoding="binary"``, 240 bytes a packet)
by default, trusting the length field on the module's side too; ``encoding="hex"`` sends hex
digits instead (120 bytes a packet, twice the airtime), for a firmware that would end a
command at a CR or LF inside the data. Both ends must use the same encoding.

Settings are read before they are written (the module keeps them in flash). Listening on
another frequency than the transmit one (``rx_frequency_hz``) retunes with ``AT+BAND`` around
every transmission, which writes the module's flash each time: prefer one frequency here.
"""

from __future__ import annotations

import asyncio
import binascii

from ..arq import RadioConfig
from ..modem import ModemError
from .base import ModemRefused, SerialModem
from .framing import LineBuffer

__all__ = ["Rylr", "ReyaxLines", "parse_rcv", "AIR_OVERHEAD"]

#: bytes the module adds to every packet on air (REYAX: "the payload part will increase more
#: 8 bytes than the actual data length")
AIR_OVERHEAD = 8
_BW_CODES = {
    7_800: 0,
    10_400: 1,
    15_600: 2,
    20_800: 3,
    31_250: 4,
    41_700: 5,
    62_500: 6,
    125_000: 7,
    250_000: 8,
    500_000: 9,
}
_RCV = b"+RCV="


#: "more bytes are needed" (from :func:`_digits` and :meth:`ReyaxLines.record_length`)
_MORE = -1


def _digits(buf: bytes | bytearray, start: int, limit: int) -> tuple[int, int] | int | None:
    """A decimal field of at most ``limit`` digits ending in a comma at ``start``:
    ``(value, index after the comma)``; ``_MORE`` if the buffer ends first; ``None`` if it is
    not one."""
    i = start
    while i < len(buf) and i - start <= limit:
        c = buf[i]
        if c == 0x2C:  # ","
            return (int(buf[start:i]), i + 1) if i > start else None
        if not 0x30 <= c <= 0x39:
            return None
        i += 1
    return _MORE if i - start <= limit else None


def parse_rcv(line: bytes) -> tuple[int, bytes, int, int]:
    """``(address, data, rssi, snr)`` of a ``+RCV=`` line (without its CR LF), cut by its
    length field; ``ValueError`` if it is not one."""
    if not line.startswith(_RCV):
        raise ValueError("not +RCV")
    a = _digits(line, len(_RCV), 5)
    if not isinstance(a, tuple):
        raise ValueError("bad address")
    n = _digits(line, a[1], 3)
    if not isinstance(n, tuple):
        raise ValueError("bad length")
    (address, _), (length, data_at) = a, n
    data = line[data_at : data_at + length]
    trailer = line[data_at + length :].split(b",")
    if len(data) != length or len(trailer) != 3 or trailer[0]:
        raise ValueError("data and trailer do not match the length field")
    return address, data, int(trailer[1]), int(trailer[2])


class ReyaxLines(LineBuffer):
    """REYAX lines: every line starts with ``+``; ``+RCV=`` records are cut by length."""

    def skip_junk(self, buf: bytearray) -> int:
        if buf[0] == 0x2B:  # "+"
            return 0
        plus = buf.find(b"+")
        if plus > 0:
            return plus
        end = buf.rfind(b"\n")
        return end + 1 if end >= 0 else 0

    def record_length(self, buf: bytearray) -> int | None:
        if not buf.startswith(_RCV):
            return _MORE if len(buf) < len(_RCV) and _RCV.startswith(bytes(buf)) else None
        a = _digits(buf, len(_RCV), 5)
        if not isinstance(a, tuple):
            return a  # not a record, or more bytes needed
        n = _digits(buf, a[1], 3)
        if not isinstance(n, tuple):
            return n
        length, data_at = n
        if length > 255:
            return None
        end = buf.find(b"\n", data_at + length)
        if end >= 0:
            return end + 1
        return _MORE if len(buf) - (data_at + length) < 24 else None


class Rylr(SerialModem):
    """A REYAX RYLR998 (``variant="rylr998"``) or RYLR896 on ``port`` (module docstring).
    ``address``/``network_id``: this module's; ``destination``: where packets go (0: every
    module of the network)."""

    kind = "rylr998"

    def __init__(
        self,
        port: str,
        radio: RadioConfig,
        *,
        variant: str = "rylr998",
        address: int = 0,
        network_id: int | None = None,
        destination: int = 0,
        encoding: str = "binary",
        rx_frequency_hz: int | None = None,
        tx_power_dbm: int | None = None,
        baudrate: int = 115200,
        **kw: object,
    ) -> None:
        if variant not in ("rylr998", "rylr896"):
            raise ValueError(f"unknown REYAX module {variant!r}")
        if encoding not in ("binary", "hex"):
            raise ValueError("encoding is 'binary' or 'hex'")
        net = (18 if variant == "rylr998" else 0) if network_id is None else network_id
        self._check(variant, radio, net)
        if not 0 <= address <= 65535 or not 0 <= destination <= 65535:
            raise ValueError("REYAX addresses are 0..65535")
        self.kind = variant
        self.max_payload = 240 if encoding == "binary" else 120
        super().__init__(port, radio, baudrate=baudrate, **kw)  # type: ignore[arg-type]
        self.variant = variant
        self.address = address
        self.network_id = net
        self.destination = destination
        self.encoding = encoding
        self.tx_frequency_hz = radio.frequency_hz
        self.rx_frequency_hz = rx_frequency_hz or radio.frequency_hz
        self.tx_power_dbm = tx_power_dbm

    @staticmethod
    def _check(variant: str, radio: RadioConfig, net: int) -> None:
        bw = _BW_CODES.get(radio.bandwidth_hz)
        if variant == "rylr998":
            if bw not in (7, 8, 9):
                raise ValueError("RYLR998 bandwidths are 125, 250 or 500 kHz")
            if not 5 <= radio.sf <= {7: 9, 8: 10, 9: 11}[bw]:
                raise ValueError(f"RYLR998 does not take SF{radio.sf} at {radio.bandwidth_hz} Hz")
            if net != 18 and radio.preamble != 12:
                raise ValueError("RYLR998: with a network id other than 18 the preamble is 12")
            if not 4 <= radio.preamble <= 24:
                raise ValueError("RYLR998 preambles are 4..24")
            if net not in (*range(3, 16), 18):
                raise ValueError("RYLR998 network ids are 3..15 or 18")
        else:
            if bw is None:
                raise ValueError(f"RYLR896 has no {radio.bandwidth_hz} Hz bandwidth")
            if not 7 <= radio.sf <= 12:
                raise ValueError("RYLR896 spreading factors are 7..12")
            if not 4 <= radio.preamble <= 7:
                raise ValueError("RYLR896 preambles are 4..7")
            if not 0 <= net <= 16:
                raise ValueError("RYLR896 network ids are 0..16")
        if not radio.crc or not radio.explicit_header:
            raise ValueError("REYAX modules always send an explicit header and a CRC")

    def make_framer(self) -> ReyaxLines:
        return ReyaxLines(max_line=600, stale_after=self.partial_timeout, stats=self.framing)

    def airtime_wait(self, size: int) -> float:
        return super().airtime_wait(size + AIR_OVERHEAD)

    # -- configuration ------------------------------------------------------------------------

    async def probe(self) -> None:
        await self.command(b"AT")

    async def _setting(self, name: bytes, value: bytes) -> None:
        """``AT+<name>=<value>`` unless the module says it has that value already."""
        try:
            current = await self.command(b"AT+" + name + b"?")
        except ModemRefused:
            current = []
        if current and current[-1] == b"+" + name + b"=" + value:
            return
        await self.command(b"AT+" + name + b"=" + value)

    async def configure(self) -> None:
        deadline = self.loop.time() + 3.0
        while True:  # the module may be starting (it says +READY when it is)
            try:
                await self.command(b"AT", timeout=min(self.reply_timeout, 0.5))
                break
            except ModemError:
                if self.loop.time() >= deadline:
                    raise
                self._timeouts_in_row = 0
        r = self.radio
        await self._setting(b"ADDRESS", b"%d" % self.address)
        await self._setting(b"NETWORKID", b"%d" % self.network_id)
        await self._setting(b"BAND", b"%d" % self.rx_frequency_hz)
        await self._setting(
            b"PARAMETER",
            b"%d,%d,%d,%d" % (r.sf, _BW_CODES[r.bandwidth_hz], r.coding_rate, r.preamble),
        )
        if self.tx_power_dbm is not None:
            await self._setting(b"CRFOP", b"%d" % self.tx_power_dbm)

    # -- transmission -------------------------------------------------------------------------

    async def _transmit(self, payload: bytes) -> None:
        data = payload if self.encoding == "binary" else binascii.hexlify(payload).upper()
        split = self.rx_frequency_hz != self.tx_frequency_hz
        if split:
            await self.command(b"AT+BAND=%d" % self.tx_frequency_hz)
        try:
            send = b"AT+SEND=%d,%d," % (self.destination, len(data)) + data
            try:
                await self.command(send, timeout=self.airtime_wait(len(data)))
            except ModemRefused as exc:
                if exc.reply != b"+ERR=17":
                    raise
                # the module still sends the packet before: wait for it once
                await asyncio.sleep(self.radio.airtime(min(255, len(data) + AIR_OVERHEAD)))
                await self.command(send, timeout=self.airtime_wait(len(data)))
        finally:
            if split and self.is_ready:
                await self.command(b"AT+BAND=%d" % self.rx_frequency_hz)

    # -- what the modem says ------------------------------------------------------------------

    def _on_item(self, line: bytes) -> None:
        if line.startswith(_RCV):
            try:
                _address, data, rssi, snr = parse_rcv(line)
                if self.encoding == "hex":
                    data = binascii.unhexlify(data)
                if not data:
                    raise ValueError("empty")
            except (ValueError, binascii.Error):
                self.stats.bad_events += 1
                return
            self.deliver(data, float(rssi), float(snr))
        elif line == b"+OK":
            self.finish(line, True)
        elif line.startswith(b"+ERR="):
            self.finish(line, False)
        elif line == b"+READY":
            self.restarted(line)
        elif line == b"+RESET":
            pass
        elif (pending := self.pending_command()) is not None and pending.endswith(b"?"):
            if self.reply_line(line):
                self.finish(line, True)  # a query's answer is its value line alone
        else:
            self.stats.garbage_lines += 1
