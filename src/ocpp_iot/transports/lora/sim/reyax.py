"""A simulated REYAX RYLR998 / RYLR896: their AT commands, byte for byte.

Modelled (see :mod:`..modems.reyax` for the sources): ``AT``, ``AT+RESET`` (``+RESET``, then
``+READY`` once restarted), ``AT+ADDRESS``, ``AT+NETWORKID``, ``AT+BAND`` (``<Hz>[,M]``),
``AT+PARAMETER``, ``AT+CRFOP``, ``AT+MODE`` (0 transceiver, 1 sleep: deaf), ``AT+IPR``,
``AT+VER?``, ``AT+UID?``, each with ``?`` (answer: the value line alone) or a value (``+OK``),
and ``AT+SEND=<address>,<length>,<data>``: exactly ``length`` bytes of data are taken, whatever
they are, then CR LF must follow (``+ERR=5`` otherwise, and also when the data stops short for
``send_timeout`` wall seconds); the packet goes on air with 8 bytes
of the module's own in front and ``+OK`` is written when it has been sent. Received packets
for this module's address (or address 0) and network come as ``+RCV=<from>,<length>,<data>,
<RSSI>,<SNR>`` CR LF, the data raw.

Errors: ``+ERR=1`` a line ending in LF without CR, ``+ERR=2`` a line not starting with ``AT``,
``+ERR=4`` an unknown command *or a value out of range* (the real module's code for the latter
is not documented in what we found: a choice), ``+ERR=5`` data of the wrong length, ``+ERR=13``
more than 240 bytes, ``+ERR=17`` a send while the last one is on air, ``+ERR=18`` a preamble
other than 12 off network 18 (RYLR998). A restart (``reboot``, ``AT+RESET``) keeps the
settings (the module stores them) and takes ``boot_time`` wall seconds.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .channel import Transmission
from .core import EMULATORS, SimRadio
from .emulator import Emulator

__all__ = ["ReyaxSim"]

_BW_HZ = {0: 7_800, 1: 10_400, 2: 15_600, 3: 20_800, 4: 31_250, 5: 41_700, 6: 62_500,
          7: 125_000, 8: 250_000, 9: 500_000}  # fmt: skip
_SEND = b"AT+SEND="
_OVERHEAD = 8


class ReyaxSim(Emulator):
    family = "reyax"

    def __init__(
        self, radio: SimRadio, *, variant: str = "rylr998", boot_time: float = 0.05,
        send_timeout: float = 0.2, **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(radio, **options)
        self.variant = variant
        self.boot_time = boot_time
        r998 = variant == "rylr998"
        self.address = 0
        self.network = 18 if r998 else 0
        self.band = 915_000_000
        self.parameter = (9, 7, 1, 12) if r998 else (12, 7, 1, 4)
        self.power = 22 if r998 else 15
        self.mode = 0
        self._buf = bytearray()
        self._fed = 0
        self.send_timeout = send_timeout
        self.booting = False
        self._boots = 0

    # -- serial side --------------------------------------------------------------------------

    def reply(self, text: bytes) -> None:
        self.flush_interleaved()
        self.write(text + b"\r\n")

    def output_packet(self, payload: bytes, rssi: float, snr: float, meta: dict[str, Any]) -> None:
        src = meta.get("src", 0)
        head = b"+RCV=%d,%d," % (src, len(payload))
        self.write(head + payload + b",%d,%d\r\n" % (round(rssi), round(snr)))

    def host_bytes(self, data: bytes) -> None:
        if self.booting:
            return
        buf = self._buf
        buf += data
        self._fed += 1
        while buf:
            if buf.startswith(_SEND):
                if not self._send_command():
                    # incomplete: give up on it if nothing more comes
                    self.sim.after_real(self.send_timeout, partial(self._stalled, self._fed))
                    break
                continue
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > 600:
                    buf.clear()
                break
            line = bytes(buf[:end])
            del buf[: end + 1]
            if not line.endswith(b"\r"):
                self.reply(b"+ERR=1")
            elif line[:-1]:
                self.line(line[:-1])

    def _stalled(self, fed: int) -> None:
        if fed == self._fed and self._buf.startswith(_SEND):
            self._buf.clear()
            self.reply(b"+ERR=5")

    def _send_command(self) -> bool:
        """``AT+SEND=...`` at the start of the buffer: handled (``True``) or incomplete."""
        buf = self._buf
        head_end = buf.find(b",", len(_SEND))
        len_end = buf.find(b",", head_end + 1) if head_end >= 0 else -1
        if len_end < 0:
            if len(buf) > 32 or b"\n" in buf:  # not a send command after all
                end = buf.find(b"\n")
                del buf[: end + 1 if end >= 0 else len(buf)]
                self.reply(b"+ERR=4")
                return True
            return False
        try:
            dest, length = int(buf[len(_SEND) : head_end]), int(buf[head_end + 1 : len_end])
        except ValueError:
            end = buf.find(b"\n")
            del buf[: end + 1 if end >= 0 else len(buf)]
            self.reply(b"+ERR=4")
            return True
        start = len_end + 1
        if length > 240:
            end = buf.find(b"\n", start)
            if end < 0:
                return False
            del buf[: end + 1]
            self.reply(b"+ERR=13")
            return True
        if len(buf) < start + length + 2:
            return False
        data = bytes(buf[start : start + length])
        if buf[start + length : start + length + 2] != b"\r\n" or not length:
            end = buf.find(b"\n", start)
            del buf[: end + 1 if end >= 0 else len(buf)]
            self.reply(b"+ERR=5")
            return True
        del buf[: start + length + 2]
        self._send(dest, data)
        return True

    def line(self, line: bytes) -> None:
        name, eq, arg = line.partition(b"=")
        query = not eq and name.endswith(b"?")
        name = name.rstrip(b"?").upper()
        if not name.startswith(b"AT"):
            self.reply(b"+ERR=2")
        elif name == b"AT":
            self.reply(b"+OK")
        elif name == b"AT+RESET":
            self.reply(b"+RESET")
            self.reboot()
        elif name == b"AT+VER" and query:
            self.reply(b"+VER=%s_SIM_V1.2.3" % self.variant.upper().encode())
        elif name == b"AT+UID" and query:
            self.reply(b"+UID=%024X" % (0x5E0000 + self.radio.index))
        elif name in (b"AT+ADDRESS", b"AT+NETWORKID", b"AT+BAND", b"AT+PARAMETER",
                      b"AT+CRFOP", b"AT+MODE", b"AT+IPR"):  # fmt: skip
            field = name[3:]
            if query:
                self.reply(b"+%s=%s" % (field, self._get(field)))
            elif eq:
                self.reply(self._set(field, arg))
            else:
                self.reply(b"+ERR=4")
        else:
            self.reply(b"+ERR=4")

    def _get(self, field: bytes) -> bytes:
        return {
            b"ADDRESS": b"%d" % self.address,
            b"NETWORKID": b"%d" % self.network,
            b"BAND": b"%d" % self.band,
            b"PARAMETER": b"%d,%d,%d,%d" % self.parameter,
            b"CRFOP": b"%d" % self.power,
            b"MODE": b"%d" % self.mode,
            b"IPR": b"115200",
        }[field]

    def _set(self, field: bytes, arg: bytes) -> bytes:
        r998 = self.variant == "rylr998"
        if field == b"BAND" and arg.endswith(b",M"):  # ",M": also keep it in memory
            arg = arg[:-2]
        try:
            values = [int(v) for v in arg.split(b",")]
        except ValueError:
            return b"+ERR=4"
        v = values[0]
        if field == b"PARAMETER":
            if len(values) != 4:
                return b"+ERR=4"
            sf, bw, cr, pre = values
            ok = (5 <= sf <= 11 and bw in (7, 8, 9)) if r998 else (7 <= sf <= 12 and 0 <= bw <= 9)
            if not ok or not 1 <= cr <= 4:
                return b"+ERR=4"
            if r998 and (not 4 <= pre <= 24 or self.network != 18 and pre != 12):
                return b"+ERR=18"
            if not r998 and not 4 <= pre <= 7:
                return b"+ERR=18"
            self.parameter = (sf, bw, cr, pre)
        elif len(values) != 1:
            return b"+ERR=4"
        elif field == b"ADDRESS" and 0 <= v <= 65535:
            self.address = v
        elif field == b"NETWORKID" and (v in (*range(3, 16), 18) if r998 else 0 <= v <= 16):
            self.network = v
        elif field == b"BAND" and 820_000_000 <= v <= 1_020_000_000:
            self.band = v
        elif field == b"CRFOP" and 0 <= v <= 22:
            self.power = v
        elif field == b"MODE" and v in (0, 1, 2):
            self.mode = v
        elif field != b"IPR":
            return b"+ERR=4"
        return b"+OK"

    def _send(self, dest: int, data: bytes) -> None:
        if self.tx is not None:
            self.reply(b"+ERR=17")
            return
        sf, bw, cr, pre = self.parameter
        self.transmit(
            data,
            air_bytes=len(data) + _OVERHEAD,
            frequency_hz=self.band,
            sf=sf,
            bandwidth_hz=_BW_HZ[bw],
            coding_rate=cr,
            preamble=pre,
            power_dbm=self.power,
            meta={"src": self.address, "dest": dest, "network": self.network},
        )

    # -- radio side ---------------------------------------------------------------------------

    def sent(self, tx: Transmission) -> None:
        self.reply(b"+OK")

    def hears(self, tx: Transmission) -> bool:
        sf, bw, _, _ = self.parameter
        return (
            not self.booting
            and self.mode == 0
            and self.tx is None
            and (tx.frequency_hz, tx.sf, tx.bandwidth_hz) == (self.band, sf, _BW_HZ[bw])
            and tx.meta.get("network") == self.network
        )

    def received(self, tx: Transmission, rssi: float, snr: float) -> bool:
        if tx.meta.get("dest") not in (0, self.address):
            return False
        self.output_packet(tx.payload, rssi, snr, tx.meta)
        return True

    def reboot(self) -> None:
        super().reboot()
        self._buf.clear()
        self.booting = True
        self._boots += 1
        boot = self._boots
        self.sim.after_real(self.boot_time, lambda: self._booted(boot))

    def _booted(self, boot: int) -> None:
        if boot == self._boots:
            self.booting = False
            self.write(b"+READY\r\n")


EMULATORS["rylr998"] = partial(ReyaxSim, variant="rylr998")
EMULATORS["rylr896"] = partial(ReyaxSim, variant="rylr896")
