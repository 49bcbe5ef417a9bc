"""RAKwireless RAK3172 with RUI3 firmware, in LoRa P2P mode (docs/lora.md, "Modems").

The AT exchange, as RUI3 implements it (its AT command manual, and ``atcmd_p2p.c`` of the RUI3
sources for the value ranges):

- a command is a line ending in CR LF; the answer is optional value lines, then one status
  line: ``OK``, ``AT_ERROR``, ``AT_PARAM_ERROR``, ``AT_BUSY_ERROR``, ``AT_MODE_NO_SUPPORT``,
  ``AT_COMMAND_NOT_FOUND``, ... (every ``AT_*`` status is an error); empty lines around it;
- ``AT+NWM=?`` answers ``AT+NWM=<0|1|2>``; ``AT+NWM=0`` (P2P) answers ``OK`` and restarts the
  module, so it is sent only when the mode differs;
- ``AT+P2P=<Hz>:<SF 5..12>:<BW kHz: 125|250|500>:<CR 0..3 for 4/5..4/8>:<preamble 5..65535>:
  <dBm 5..22>``; ``AT+PFREQ=<Hz>`` sets the frequency alone;
- ``AT+PRECV=65533``: listen without a time limit and still allow transmissions (65534
  listens but refuses them, 65535 stops after one packet, 0 stops listening); P2P parameters
  are changed with reception stopped (``AT_BUSY_ERROR`` otherwise);
- ``AT+PSEND=<hex, even, up to 512 digits>`` answers ``OK``, then ``+EVT:TXP2P DONE`` when the
  packet is sent; received packets come as ``+EVT:RXP2P:<rssi>:<snr>:<hex>`` (RSSI in dBm,
  SNR in dB).

Hex on the serial line makes every payload binary-safe. When the driver listens on another
frequency than it transmits on (``rx_frequency_hz``), each transmission stops reception,
retunes, sends, retunes back and listens again: five commands, a few milliseconds.
"""

from __future__ import annotations

import asyncio
import binascii

from ..arq import RadioConfig
from ..modem import ModemError
from .base import SerialModem
from .framing import LineBuffer

__all__ = ["Rak3172"]

_BANDWIDTHS = {125_000: 125, 250_000: 250, 500_000: 500}
_OK = b"OK"


def p2p_settings(radio: RadioConfig, frequency_hz: int, tx_power_dbm: int) -> bytes:
    """The ``AT+P2P=`` command for ``radio`` at ``frequency_hz``."""
    return b"AT+P2P=%d:%d:%d:%d:%d:%d" % (
        frequency_hz,
        radio.sf,
        _BANDWIDTHS[radio.bandwidth_hz],
        radio.coding_rate - 1,
        radio.preamble,
        tx_power_dbm,
    )


class Rak3172(SerialModem):
    """A RAK3172 (RUI3) on ``port`` (module docstring). ``radio`` gives the modulation and the
    transmit frequency; ``rx_frequency_hz`` where to listen (default: the same)."""

    kind = "rak3172"
    max_payload = 255

    def __init__(
        self,
        port: str,
        radio: RadioConfig,
        *,
        rx_frequency_hz: int | None = None,
        tx_power_dbm: int = 14,
        baudrate: int = 115200,
        restart_timeout: float = 5.0,
        **kw: object,
    ) -> None:
        if radio.bandwidth_hz not in _BANDWIDTHS:
            raise ValueError(f"RUI3 P2P bandwidths: 125, 250, 500 kHz, not {radio.bandwidth_hz}")
        if not 5 <= radio.preamble <= 65535:
            raise ValueError(f"RUI3 P2P preambles are 5..65535 symbols, not {radio.preamble}")
        if not 5 <= tx_power_dbm <= 22:
            raise ValueError(f"RUI3 P2P transmit power is 5..22 dBm, not {tx_power_dbm}")
        if not radio.crc or not radio.explicit_header:
            raise ValueError("RUI3 P2P always sends an explicit header and a CRC")
        super().__init__(port, radio, baudrate=baudrate, **kw)  # type: ignore[arg-type]
        self.tx_frequency_hz = radio.frequency_hz
        self.rx_frequency_hz = rx_frequency_hz or radio.frequency_hz
        self.tx_power_dbm = tx_power_dbm
        self.restart_timeout = restart_timeout
        self._sent: asyncio.Future[None] | None = None

    def make_framer(self) -> LineBuffer:
        return LineBuffer(max_line=1100, stale_after=self.partial_timeout, stats=self.framing)

    # -- configuration ------------------------------------------------------------------------

    async def probe(self) -> None:
        await self.command(b"AT")

    async def _answering(self, timeout: float) -> None:
        """Probe with ``AT`` until the modem answers (it may be starting)."""
        deadline = self.loop.time() + timeout
        while True:
            try:
                await self.command(b"AT", timeout=min(self.reply_timeout, 0.5))
                return
            except ModemError:
                if self.loop.time() >= deadline:
                    raise
                self._timeouts_in_row = 0  # starting up is not "not answering" yet

    async def configure(self) -> None:
        await self._answering(self.restart_timeout)
        mode = await self.command(b"AT+NWM=?")
        if not any(line.strip().endswith(b"=0") or line.strip() == b"0" for line in mode):
            # LoRaWAN (1) or FSK (2): switch to LoRa P2P; the module answers OK and restarts
            try:
                await self.command(b"AT+NWM=0")
            except ModemError:
                pass  # the restart may swallow the OK
            await asyncio.sleep(0.2)
            await self._answering(self.restart_timeout)
        await self.command(b"AT+PRECV=0")
        await self.command(p2p_settings(self.radio, self.rx_frequency_hz, self.tx_power_dbm))
        await self.command(b"AT+PRECV=65533")

    # -- transmission -------------------------------------------------------------------------

    async def _transmit(self, payload: bytes) -> None:
        split = self.rx_frequency_hz != self.tx_frequency_hz
        if split:
            await self.command(b"AT+PRECV=0")
            await self.command(b"AT+PFREQ=%d" % self.tx_frequency_hz)
        self._sent = self.loop.create_future()
        try:
            await self.command(b"AT+PSEND=" + binascii.hexlify(payload).upper())
            try:
                await asyncio.wait_for(self._sent, self.airtime_wait(len(payload)))
            except TimeoutError:
                self.note_timeout("no +EVT:TXP2P DONE")
                raise ModemError(f"{self.name}: the packet was not reported sent") from None
        finally:
            self._sent = None
            if split and self.is_ready:
                await self.command(b"AT+PFREQ=%d" % self.rx_frequency_hz)
                await self.command(b"AT+PRECV=65533")

    def _abort(self, exc: ModemError) -> None:
        if self._sent is not None and not self._sent.done():
            self._sent.set_exception(exc)

    # -- what the modem says ------------------------------------------------------------------

    def _on_item(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        at = line.find(b"+EVT:")
        if at > 0:  # garbage glued in front of an event
            self.framing.garbage_bytes += at
            line = line[at:]
        if line.startswith(b"+EVT:"):
            self._event(line)
        elif line == _OK:
            self.finish(line, True)
        elif line.startswith(b"AT_"):  # every RUI3 status but OK is an error
            self.finish(line, False)
        elif line == self.pending_command():
            pass  # the module echoes commands (ATE)
        elif b"Current Work Mode" in line or b"RAKwireless" in line:
            self.restarted(line)
        elif line.startswith(b"AT+") and self.reply_line(line):
            pass  # a value line (AT+NWM=0)
        else:
            self.stats.garbage_lines += 1

    def _event(self, line: bytes) -> None:
        if line.startswith(b"+EVT:TXP2P"):
            if self._sent is not None and not self._sent.done():
                self._sent.set_result(None)
            else:
                self.stats.unexpected_replies += 1
            return
        if line.startswith(b"+EVT:RXP2P:"):
            # +EVT:RXP2P:<rssi>:<snr>:<hex> (some versions put the length before the hex)
            fields = line[len(b"+EVT:RXP2P:") :].split(b":")
            try:
                if len(fields) not in (3, 4):
                    raise ValueError(f"{len(fields)} fields")
                rssi, snr = float(fields[0]), float(fields[1])
                payload = binascii.unhexlify(fields[-1])
                if len(fields) == 4 and int(fields[2]) != len(payload):
                    raise ValueError("length field does not match")
                if not payload:
                    raise ValueError("empty")
            except (ValueError, binascii.Error):
                self.stats.bad_events += 1
                return
            self.deliver(payload, rssi, snr)
            return
        if line.startswith(b"+EVT:RXP2P RECEIVE TIMEOUT"):
            # reception ended (a mode other than 65533 was set): listen again via a reset
            self.restarted(line)
            return
        self.stats.garbage_lines += 1
