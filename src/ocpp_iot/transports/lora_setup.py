"""What a LoRa end needs to start: the modem settings both commands take (``charger-node run
--link lora``, ``bridge lora-gateway``) and the modem built from them.

:class:`ModemSettings` is the whole radio setup of one end: the modem kind and its serial port,
the modulation (shared by both ends), where this end transmits and where it listens (the
frequency plan of docs/lora.md, "Gateway"), the transmit power and the packet size.
:func:`make_modem` hands them to the drivers of :mod:`ocpp_iot.transports.lora.modems`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:  # the link layer (and cryptography) only where a LoRa end is built: an
    # MQTT node's command line reads MODEM_KINDS and the defaults, and nothing else of LoRa
    from .lora import RadioConfig
    from .lora.modem import Modem

__all__ = ["MODEM_KINDS", "ModemSettings", "make_modem"]

#: modem kinds and the largest packet each transmits in one piece (the Ebyte drivers frame
#: each packet with a length byte and a CRC: three bytes of a sub-packet of 58 / 240)
MODEM_KINDS: Final = {"rak3172": 255, "rylr998": 240, "rylr896": 240, "e22": 237, "e32": 55}


@dataclass(frozen=True, slots=True)
class ModemSettings:
    kind: str
    port: str
    #: where this end transmits
    tx_hz: int
    #: where it listens (the other end's ``tx_hz``)
    rx_hz: int
    sf: int = 9
    bandwidth_hz: int = 125000
    coding_rate: int = 1
    preamble: int = 8
    #: transmit power in dBm (EU: 14 dBm ERP in 868.0-868.6 MHz, 27 dBm in 869.4-869.65 MHz)
    power_dbm: int = 14
    #: the packet size both ends use (the smaller modem's); None: this modem's
    max_packet: int | None = None
    baudrate: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in MODEM_KINDS:
            raise ValueError(f"modem must be one of {', '.join(MODEM_KINDS)}, not {self.kind!r}")
        if self.max_packet is not None and self.max_packet > MODEM_KINDS[self.kind]:
            raise ValueError(f"a {self.kind} sends at most {MODEM_KINDS[self.kind]} bytes")
        from .lora import band_for

        self.radio()  # validates modulation and packet size
        band_for(self.tx_hz, self.bandwidth_hz)  # a duty-cycled sub-band holds the channel

    @property
    def packet(self) -> int:
        return self.max_packet if self.max_packet is not None else MODEM_KINDS[self.kind]

    def radio(self) -> RadioConfig:
        """The link layer's view of it (this end's transmit frequency and packet size)."""
        from .lora import RadioConfig

        return RadioConfig(
            sf=self.sf,
            bandwidth_hz=self.bandwidth_hz,
            coding_rate=self.coding_rate,
            preamble=self.preamble,
            max_packet=self.packet,
            frequency_hz=self.tx_hz,
        )


def make_modem(settings: ModemSettings) -> Modem:
    """The driver for ``settings.kind`` on ``settings.port``, not opened yet
    (:func:`ocpp_iot.transports.lora.modems.create`). An Ebyte module listens on the channel
    it was configured with (its configuration mode, not the driver), and has its power set
    there too."""
    try:
        drivers = importlib.import_module("ocpp_iot.transports.lora.modems")
    except ImportError as exc:
        raise ValueError(f"no LoRa modem drivers available ({exc})") from None
    options: dict[str, object] = {}
    if settings.kind in ("rak3172", "rylr998", "rylr896"):
        options = {"rx_frequency_hz": settings.rx_hz, "tx_power_dbm": settings.power_dbm}
    if settings.baudrate is not None:
        options["baudrate"] = settings.baudrate
    return cast("Modem", drivers.create(settings.kind, settings.port, settings.radio(), **options))
