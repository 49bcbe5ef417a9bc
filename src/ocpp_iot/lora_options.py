"""The LoRa modem's command-line options, shared by ``charger-node run --link lora`` and
``bridge lora-gateway``: one definition of each radio setting (its range, default and help), the
flag names and environment variables given by the command (``--lora-sf`` /
``CHARGER_NODE_LORA_SF`` on a station, ``--sf`` / ``BRIDGE_LORA_SF`` on the gateway).

The values land in the command's options under click's names for the flags (``lora_sf``,
``sf``, ...); :class:`~ocpp_iot.transports.lora_setup.ModemSettings` is built from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from .transports.lora_setup import MODEM_KINDS, ModemSettings

__all__ = ["Frequency", "modem_options"]

F = TypeVar("F", bound=Callable[..., Any])
#: ModemSettings' defaults, read off the class: building one would load the link layer, which
#: an MQTT node's command line does not need
_DEFAULT = {f.name: f.default for f in dataclasses.fields(ModemSettings)}


@dataclass(frozen=True)
class Frequency:
    """One of the two frequencies of an end (docs/lora.md, "Gateway": each end transmits on
    its own, the other end listens there)."""

    name: str
    default: int
    help: str


def modem_options(
    *,
    flag_prefix: str,
    env_prefix: str,
    transmit: Frequency,
    listen: Frequency,
    port_required: bool,
    peer: str,
) -> Callable[[F], F]:
    """Click options for a LoRa modem: ``{flag_prefix}port``, ``modem``, ``sf``, ``bandwidth``,
    ``coding-rate``, ``preamble``, the two frequencies, ``power`` and ``max-packet``, each with
    the variable ``{env_prefix}{NAME}``. ``peer`` names the other end's settings in the help
    ("the gateway's"): the modulation must be the same at both ends."""

    def opt(name: str, **kw: Any) -> Callable[[F], F]:
        envvar = env_prefix + name.upper().replace("-", "_")
        return click.option(f"{flag_prefix}{name}", envvar=envvar, **kw)

    options = [
        opt("port", required=port_required, default=None,
            help="the LoRa modem's serial port, e.g. /dev/ttyUSB0"),
        opt("modem", type=click.Choice(list(MODEM_KINDS)), default="rak3172",
            help="the modem's kind (its command set)"),
        opt("sf", type=click.IntRange(7, 12), default=_DEFAULT["sf"],
            help=f"spreading factor (as {peer})"),
        opt("bandwidth", type=click.Choice(["125000", "250000", "500000"]),
            default=str(_DEFAULT["bandwidth_hz"]), help=f"bandwidth in Hz (as {peer})"),
        opt("coding-rate", type=click.IntRange(1, 4), default=_DEFAULT["coding_rate"],
            help=f"1..4 for 4/5..4/8 (as {peer})"),
        opt("preamble", type=click.IntRange(4, 65535), default=_DEFAULT["preamble"],
            help=f"preamble symbols (as {peer}; an RYLR896 takes 4..7)"),
        opt(transmit.name, type=int, default=transmit.default, help=transmit.help),
        opt(listen.name, type=int, default=listen.default, help=listen.help),
        opt("power", type=click.IntRange(-9, 27), default=_DEFAULT["power_dbm"],
            help="transmit power, dBm"),
        opt("max-packet", type=click.IntRange(21, 255), default=None, show_default=False,
            help="packet size of the deployment (the smallest modem's)  [default: the "
            "modem's]"),
    ]  # fmt: skip

    def decorate(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return decorate
