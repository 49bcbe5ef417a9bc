"""LoRa point-to-point link layer, sans-IO (docs/lora.md).

- :func:`time_on_air` (Semtech's formula) and :class:`DutyCycleLedger` (EU868 sub-bands, one
  rolling hour): :mod:`.airtime`;
- the radio frame, AES-CCM with a 4-byte MIC, and its errors: :mod:`.frame`;
- frame counters, the replay window and restarts: :mod:`.replay`;
- fragmentation with optional XOR parity, and reassembly: :mod:`.fragment`;
- acknowledgements, retransmission, timeouts from time on air, the send queue: :mod:`.arq`;
- :class:`Endpoint`, one radio's link layer tying them together: :mod:`.endpoint`.

No serial ports, no asyncio, no clock reads, no threads here: bytes and ``now`` in, frames to
transmit and events out. The modem drivers, the simulator and the station link live beside it.
"""

from .airtime import EU868_BANDS, DutyCycleLedger, SubBand, band_for, symbol_time, time_on_air
from .arq import ArqConfig, Priority, RadioConfig, ack_timeout
from .endpoint import Endpoint
from .events import (
    Delivered,
    Dropped,
    Event,
    LinkStats,
    PersistState,
    SendAcked,
    SendFailed,
    Transmit,
)
from .fragment import Reassembler, parity_row, split
from .frame import (
    BadMic,
    Direction,
    Frame,
    FrameError,
    FrameType,
    MalformedFrame,
    TruncatedFrame,
    UnsupportedVersion,
    decode,
    peek,
    seal,
)
from .replay import (
    CounterJump,
    CounterState,
    ReceiveWindow,
    Replayed,
    ReplayError,
    SendCounter,
    TooOld,
)

__all__ = [
    "time_on_air",
    "symbol_time",
    "DutyCycleLedger",
    "SubBand",
    "EU868_BANDS",
    "band_for",
    "RadioConfig",
    "ArqConfig",
    "Priority",
    "ack_timeout",
    "Endpoint",
    "Event",
    "Transmit",
    "Delivered",
    "SendAcked",
    "SendFailed",
    "PersistState",
    "Dropped",
    "LinkStats",
    "Frame",
    "FrameType",
    "Direction",
    "seal",
    "peek",
    "decode",
    "FrameError",
    "TruncatedFrame",
    "MalformedFrame",
    "UnsupportedVersion",
    "BadMic",
    "ReplayError",
    "Replayed",
    "TooOld",
    "CounterJump",
    "SendCounter",
    "ReceiveWindow",
    "CounterState",
    "split",
    "parity_row",
    "Reassembler",
]
