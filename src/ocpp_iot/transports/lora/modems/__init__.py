"""Serial LoRa modem drivers implementing :class:`~..modem.Modem` (docs/lora.md, "Modems").

- :class:`Rak3172`: RAKwireless RAK3172, RUI3 firmware, LoRa P2P (:mod:`.rak3172`);
- :class:`Rylr`: REYAX RYLR998 and RYLR896 (:mod:`.reyax`);
- :class:`Ebyte`: Ebyte E32 and E22 UART modules in fixed-point mode (:mod:`.ebyte`);
- :func:`create`: one of them by name, as the command lines name them.

Shared: :mod:`.serial_port` (pyserial, a reader thread, writes off the event loop),
:mod:`.framing` (lines, length-delimited records, Ebyte frames; sans-IO), :mod:`.base`
(lifecycle, command exchange, recovery, :class:`ModemStats`).
"""

from __future__ import annotations

from typing import Any

from ..arq import RadioConfig
from .base import ModemRefused, ModemStats, SerialModem
from .ebyte import Ebyte
from .framing import EbyteDeframer, FramingStats, LineBuffer, crc16, ebyte_frame
from .rak3172 import Rak3172
from .reyax import Rylr

__all__ = [
    "KINDS",
    "create",
    "SerialModem",
    "ModemStats",
    "ModemRefused",
    "Rak3172",
    "Rylr",
    "Ebyte",
    "FramingStats",
    "LineBuffer",
    "EbyteDeframer",
    "crc16",
    "ebyte_frame",
]

#: the modem names :func:`create` knows
KINDS = ("rak3172", "rylr998", "rylr896", "e32", "e22")


def create(kind: str, port: str, radio: RadioConfig, **options: Any) -> SerialModem:
    """A driver for a ``kind`` modem (one of :data:`KINDS`) on ``port``; ``options`` go to
    its constructor."""
    if kind == "rak3172":
        return Rak3172(port, radio, **options)
    if kind in ("rylr998", "rylr896"):
        return Rylr(port, radio, variant=kind, **options)
    if kind in ("e32", "e22"):
        return Ebyte(port, radio, variant=kind, **options)
    raise ValueError(f"unknown modem {kind!r}: one of {', '.join(KINDS)}")
