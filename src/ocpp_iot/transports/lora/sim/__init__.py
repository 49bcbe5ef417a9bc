"""The LoRa radio simulator (docs/lora.md, "Simulator"): modems on pseudo-terminals, byte for
byte, joined by a simulated channel.

- :class:`Simulator` (:mod:`.core`): the radios, their ptys, one thread, the radio clock;
- :mod:`.channel`: time on air, loss, collisions, half-duplex, RSSI/SNR;
- :mod:`.dutycycle`: the simulator's own check of every radio's duty cycle;
- the modems: :mod:`.rak3172` (RUI3 P2P), :mod:`.reyax` (RYLR998/896), :mod:`.ebyte`
  (E32/E22 in fixed-point or transparent mode);
- ``python -m ocpp_iot.transports.lora.sim``: the same as a command (:mod:`.__main__`).

The real drivers (:mod:`..modems`) open the pty paths as they open ``/dev/ttyUSB0``; nothing
in them knows they are simulated.
"""

from .channel import DEMOD_SNR, Channel, Link, Propagation, Transmission
from .core import EMULATORS, SimRadio, Simulator
from .dutycycle import DutyCycleExceeded, DutyCycleMonitor, Violation
from .pty import PtyPort

__all__ = [
    "Simulator",
    "SimRadio",
    "EMULATORS",
    "Channel",
    "Link",
    "Propagation",
    "Transmission",
    "DEMOD_SNR",
    "DutyCycleMonitor",
    "DutyCycleExceeded",
    "Violation",
    "PtyPort",
]
