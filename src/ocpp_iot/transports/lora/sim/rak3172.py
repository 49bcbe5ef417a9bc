"""A simulated RAK3172 with RUI3 firmware: the AT commands the P2P driver uses, byte for byte.

Modelled (see :mod:`..modems.rak3172` for the sources): ``AT``, ``ATE`` (echo on/off), ``ATZ``
(restart), ``AT+NWM=?|0|1|2`` (a mode change answers ``OK`` and restarts), ``AT+P2P=?|...``,
``AT+PFREQ``/``PSF``/``PBW``/``PCR``/``PPL``/``PTP`` (``?`` or a value), ``AT+PRECV=<0..65535>``
(65533 listen and allow sending, 65534 listen only, 65535 one packet, 1..65532 that many
milliseconds, then ``+EVT:RXP2P RECEIVE TIMEOUT``; 0 off), ``AT+PSEND=<hex>`` (``OK``, then
``+EVT:TXP2P DONE`` after the time on air). Errors: ``AT_PARAM_ERROR`` for a bad value,
``AT_BUSY_ERROR`` to send or change P2P settings while receiving without 65533 or while
sending, ``AT_MODE_NO_SUPPORT`` for P2P commands in LoRaWAN mode, ``AT_COMMAND_NOT_FOUND``,
``AT_ERROR`` for a line that is not a command. Status lines come as ``CR LF status CR LF``.

A restart takes ``boot_time`` wall seconds (input is ignored meanwhile), ends reception and a
transmission in progress, keeps the settings (RUI3 stores them in flash) and prints a banner:
``RAKwireless RAK3172 (simulated RUI3)`` and ``Current Work Mode: LoRa P2P.`` (or LoRaWAN).
The factory state is LoRaWAN mode (``work_mode=1``).
"""

from __future__ import annotations

import binascii
from typing import Any

from .channel import Transmission
from .core import EMULATORS, SimRadio
from .emulator import Emulator

__all__ = ["Rak3172Sim"]

_RANGES = {  # P2P setting -> allowed values (RUI3's checks)
    "freq": range(150_000_000, 960_000_001),
    "sf": range(5, 13),
    "bw": (125, 250, 500),
    "cr": range(0, 4),
    "pre": range(5, 65536),
    "pwr": range(5, 23),
}
_SINGLE = {b"PFREQ": "freq", b"PSF": "sf", b"PBW": "bw", b"PCR": "cr", b"PPL": "pre", b"PTP": "pwr"}
_ORDER = ("freq", "sf", "bw", "cr", "pre", "pwr")


class Rak3172Sim(Emulator):
    family = "rak"

    def __init__(
        self, radio: SimRadio, *, work_mode: int = 1, echo: bool = False, boot_time: float = 0.05,
        **options: Any,
    ) -> None:  # fmt: skip
        super().__init__(radio, **options)
        self.nwm = work_mode
        self.echo = echo
        self.boot_time = boot_time
        self.p2p = {"freq": 868_000_000, "sf": 7, "bw": 125, "cr": 0, "pre": 8, "pwr": 14}
        self.rx_mode = 0
        self._rx_epoch = 0
        self._buf = bytearray()
        self.booting = False
        self._boots = 0

    # -- serial side --------------------------------------------------------------------------

    def host_bytes(self, data: bytes) -> None:
        if self.booting:
            return
        self._buf += data
        while (end := self._buf.find(b"\n")) >= 0:
            line = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            if line.strip():
                self.line(line.strip())
            if self.booting:
                self._buf.clear()
                return
        if len(self._buf) > 1100:  # longer than any command: RUI3 gives up on it
            self._buf.clear()
            self.status(b"AT_TEST_PARAM_OVERFLOW")

    def status(self, status: bytes, values: tuple[bytes, ...] = ()) -> None:
        self.flush_interleaved()
        for v in values:
            self.write(v + b"\r\n")
        self.write(b"\r\n" + status + b"\r\n")

    def output_packet(self, payload: bytes, rssi: float, snr: float, meta: dict[str, Any]) -> None:
        hexed = binascii.hexlify(payload).upper()
        self.write(b"+EVT:RXP2P:%d:%d:%s\r\n" % (round(rssi), round(snr), hexed))

    def line(self, line: bytes) -> None:
        if self.echo:
            self.write(line + b"\r\n")
        name, eq, arg = line.partition(b"=")
        name = name.upper()
        if name == b"AT":
            self.status(b"OK")
        elif name == b"ATZ":
            self.reboot()
        elif name == b"ATE":
            self.echo = not self.echo
            self.status(b"OK")
        elif not name.startswith(b"AT+"):
            self.status(b"AT_ERROR")
        elif name == b"AT+NWM":
            self._nwm(arg)
        elif name[3:] in (b"P2P", b"PRECV", b"PSEND", *_SINGLE):
            if self.nwm != 0:
                self.status(b"AT_MODE_NO_SUPPORT")
            elif not eq:
                self.status(b"AT_PARAM_ERROR")
            else:
                getattr(self, "_" + name[3:].decode().lower(), self._single)(name[3:], arg)
        else:
            self.status(b"AT_COMMAND_NOT_FOUND")

    def _nwm(self, arg: bytes) -> None:
        if arg == b"?":
            self.status(b"OK", (b"AT+NWM=%d" % self.nwm,))
        elif arg in (b"0", b"1", b"2"):
            self.nwm = int(arg)
            self.write(b"OK\r\n")
            self.reboot()
        else:
            self.status(b"AT_PARAM_ERROR")

    def _busy(self) -> bool:
        return self.tx is not None or self.rx_mode != 0

    def _p2p(self, _name: bytes, arg: bytes) -> None:
        if arg == b"?":
            value = b":".join(b"%d" % self.p2p[k] for k in _ORDER)
            self.status(b"OK", (b"AT+P2P=" + value,))
            return
        try:
            values = [int(v) for v in arg.split(b":")]
        except ValueError:
            self.status(b"AT_PARAM_ERROR")
            return
        if len(values) != 6 or any(
            v not in _RANGES[k] for k, v in zip(_ORDER, values, strict=False)
        ):
            self.status(b"AT_PARAM_ERROR")
        elif self._busy():
            self.status(b"AT_BUSY_ERROR")
        else:
            self.p2p.update(zip(_ORDER, values, strict=True))
            self.status(b"OK")

    def _single(self, name: bytes, arg: bytes) -> None:
        key = _SINGLE[name]
        if arg == b"?":
            self.status(b"OK", (b"AT+%s=%d" % (name, self.p2p[key]),))
            return
        if not arg.isdigit() or int(arg) not in _RANGES[key]:
            self.status(b"AT_PARAM_ERROR")
        elif self._busy():
            self.status(b"AT_BUSY_ERROR")
        else:
            self.p2p[key] = int(arg)
            self.status(b"OK")

    def _precv(self, _name: bytes, arg: bytes) -> None:
        if not arg.isdigit() or int(arg) > 65535:
            self.status(b"AT_PARAM_ERROR")
            return
        mode = int(arg)
        if mode != 0 and (self.tx is not None or self.rx_mode == 65534):
            self.status(b"AT_BUSY_ERROR")
            return
        self.rx_mode = mode
        self._rx_epoch += 1
        if 0 < mode < 65533:
            epoch = self._rx_epoch
            self.sim.after(mode / 1000, lambda: self._rx_timeout(epoch))
        self.status(b"OK")

    def _rx_timeout(self, epoch: int) -> None:
        if epoch == self._rx_epoch and self.rx_mode != 0:
            self.rx_mode = 0
            self.write(b"+EVT:RXP2P RECEIVE TIMEOUT\r\n")

    def _psend(self, _name: bytes, arg: bytes) -> None:
        try:
            if not arg or len(arg) % 2 or len(arg) > 512:
                raise ValueError(len(arg))
            payload = binascii.unhexlify(arg)
        except (ValueError, binascii.Error):
            self.status(b"AT_PARAM_ERROR")
            return
        if len(payload) > 255 or self.tx is not None or self.rx_mode not in (0, 65533):
            self.status(b"AT_BUSY_ERROR" if len(payload) <= 255 else b"AT_PARAM_ERROR")
            return
        self.status(b"OK")
        p = self.p2p
        self.transmit(
            payload,
            air_bytes=len(payload),
            frequency_hz=p["freq"],
            sf=p["sf"],
            bandwidth_hz=p["bw"] * 1000,
            coding_rate=p["cr"] + 1,
            preamble=p["pre"],
            power_dbm=p["pwr"],
        )

    # -- radio side ---------------------------------------------------------------------------

    def sent(self, tx: Transmission) -> None:
        self.write(b"+EVT:TXP2P DONE\r\n")

    def hears(self, tx: Transmission) -> bool:
        p = self.p2p
        return (
            not self.booting
            and self.nwm == 0
            and self.tx is None
            and self.rx_mode != 0
            and (tx.frequency_hz, tx.sf, tx.bandwidth_hz) == (p["freq"], p["sf"], p["bw"] * 1000)
        )

    def received(self, tx: Transmission, rssi: float, snr: float) -> bool:
        self.output_packet(tx.payload, rssi, snr, tx.meta)
        if self.rx_mode == 65535:
            self.rx_mode = 0
        return True

    def reboot(self) -> None:
        super().reboot()
        self.rx_mode = 0
        self._rx_epoch += 1
        self._buf.clear()
        self.booting = True
        self._boots += 1
        boot = self._boots
        self.sim.after_real(self.boot_time, lambda: self._booted(boot))

    def _booted(self, boot: int) -> None:
        if boot != self._boots:
            return  # restarted again meanwhile
        self.booting = False
        mode = {0: b"LoRa P2P", 1: b"LoRaWAN", 2: b"LoRa FSK"}.get(self.nwm, b"LoRaWAN")
        self.write(b"\r\nRAKwireless RAK3172 (simulated RUI3)\r\nCurrent Work Mode: %s.\r\n" % mode)


EMULATORS["rak3172"] = Rak3172Sim
