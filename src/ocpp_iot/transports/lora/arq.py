"""Acknowledgement and retransmission rules: timeouts from time on air, back-off, the send queue.

Stop-and-wait per peer and direction: one message (all its fragments) in flight; the next
starts when it is acknowledged or abandoned. Retransmissions repeat the very frames sent first
(same counters): the receiver recognises them as duplicates and acknowledges again instead of
delivering twice, so a message is delivered at most once and in order.

Acknowledgements (docs/lora.md, "ARQ"):

- a complete message is acknowledged by its base counter's low 16 bits: in the ACK field of the
  receiver's next *new* DATA frame to that peer (piggyback), or in a bare ACK frame;
- a message flagged ANS (an OCPP CALL: its answer will come) is not acknowledged at once: the
  receiver holds the acknowledgement up to ``answer_wait`` for the answer to carry it, and sends
  a bare ACK only if no DATA frame left for the peer by then (or at once, if its own message
  is in flight: its answer would have to wait for that);
- an answer that fits one frame and goes while that acknowledgement is held is sent as a REPLY:
  it acknowledges the CALL and is not acknowledged itself. If it is lost, the CALL's sender
  times out and repeats the CALL, and the receiver sends the same REPLY frame again. A CALL and
  its answer cost two frames, no acknowledgement at all;
- an incomplete fragmented message is answered by a NACK (bitmap of positions received) when
  its last position arrives; the sender then resends the missing data fragments;
- no acknowledgement within the timeout: the sender resends its last position (a probe: the
  receiver answers it with an ACK if it has the message, a NACK if not), after a randomised,
  growing back-off, at most ``max_retries`` times, then reports the message failed.

Timeouts are derived from time on air at the configured radio settings (:func:`ack_timeout`),
never fixed. No clock and no global random state: ``now`` and an ``random.Random`` come in.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .airtime import HOUR, symbol_time, time_on_air
from .fragment import fragment_size
from .frame import MAX_PACKET, MAX_POSITIONS, overhead

__all__ = [
    "Priority",
    "RadioConfig",
    "ArqConfig",
    "ack_frame_size",
    "nack_frame_size",
    "ack_timeout",
    "retry_delay",
    "give_up_after",
    "reassembly_timeout",
    "max_message",
    "OutMessage",
    "SendQueue",
    "InFlight",
    "AckDuty",
]


class Priority(IntEnum):
    """Send order of new messages (lower first). Acknowledgements and control frames go
    before any of them; the frames of the message in flight before a new message."""

    ANSWER = 1  #: CALLRESULT / CALLERROR: the peer's CALL waits for it (may go as a REPLY)
    CALL = 2  #: our CALLs (transactions, status)
    BULK = 3  #: what can wait: meter values, logs


@dataclass(frozen=True, slots=True)
class RadioConfig:
    """The LoRa settings both ends use, and the modem's largest packet."""

    sf: int = 9
    bandwidth_hz: int = 125000
    coding_rate: int = 1
    preamble: int = 8
    crc: bool = True
    explicit_header: bool = True
    low_data_rate: bool | None = None
    #: the modem's largest packet (E32: 58, RYLR998: 240, RAK3172: 255)
    max_packet: int = MAX_PACKET
    #: where this end transmits (the ledger's sub-band follows from it)
    frequency_hz: int = 868_100_000

    def __post_init__(self) -> None:
        if not overhead(True, True) + 8 <= self.max_packet <= MAX_PACKET:
            raise ValueError(f"max_packet {self.max_packet} not in 21..{MAX_PACKET}")
        self.airtime(0)  # validates the modulation settings

    def airtime(self, size: int) -> float:
        return time_on_air(
            size,
            self.sf,
            self.bandwidth_hz,
            self.coding_rate,
            self.preamble,
            self.crc,
            self.explicit_header,
            self.low_data_rate,
        )


@dataclass(frozen=True, slots=True)
class ArqConfig:
    #: timeouts before a message is abandoned (and twice as many NACK rounds)
    max_retries: int = 10
    #: how long a receiver holds the acknowledgement of an ANS message for the answer
    answer_wait: float = 2.0
    #: seconds between the end of a frame received and the start of the reply (serial line,
    #: modem switching to transmit); counted twice (their side, and our own)
    turnaround: float = 0.1
    #: the back-off grows as 2**attempt up to 2**backoff_cap
    backoff_cap: int = 4
    #: parity fragments per data fragment of a fragmented message (see fragment.py)
    parity_ratio: float = 0.0
    #: the receive window (counters) and the largest forward jump accepted unconfirmed
    window: int = 128
    max_gap: int = 1024
    #: the sender's counter reservation (the largest jump a restart causes)
    reserve_block: int = 64
    #: bare re-acknowledgements sent per message at most (a replayed frame costs one at most)
    reack_limit: int = 12
    #: the share of each sub-band's budget DATA frames leave to ACK, NACK and CTRL frames
    control_reserve: float = 0.1

    def __post_init__(self) -> None:
        if self.window < MAX_POSITIONS * 2:
            raise ValueError(f"the window must hold two messages: at least {2 * MAX_POSITIONS}")
        if not self.reserve_block < self.max_gap:
            raise ValueError("a restart's jump (reserve_block) must be below max_gap")


def ack_frame_size() -> int:
    """A bare ACK: header with the ACK field, no payload, MIC."""
    return overhead(fragmented=False, ack=True)


def nack_frame_size(positions: int) -> int:
    """A NACK (CTRL) for a message of ``positions``: code, base counter, bitmap, and MIC."""
    return overhead(fragmented=False, ack=False) + 3 + math.ceil(positions / 8)


def ack_timeout(radio: RadioConfig, arq: ArqConfig, answer: bool, positions: int = 1) -> float:
    """How long, after the end of our last frame of a message, its acknowledgement may take:
    both turnarounds, the answer wait for an ANS message, and the time on air of the longest
    reply that may carry it (a full packet when an answer may carry it; else the larger of an
    ACK and the NACK for ``positions``), plus two symbols of slack for the receiver's detection.
    It is never shorter than the reply's own time on air, at whatever spreading factor."""
    if answer:
        reply = radio.max_packet
    else:
        reply = max(ack_frame_size(), nack_frame_size(positions) if positions > 1 else 0)
    slack = 2 * symbol_time(radio.sf, radio.bandwidth_hz)
    hold = arq.answer_wait if answer else 0.0
    return 2 * arq.turnaround + hold + radio.airtime(reply) + slack


def retry_delay(timeout: float, attempt: int, cap: int, rng: random.Random) -> float:
    """The wait before retransmission ``attempt`` (0 for the first): the timeout, plus a random
    share of ``timeout * 2**min(attempt, cap)`` (so that two senders that collided do not
    collide again, and a congested channel gets room)."""
    return timeout + rng.uniform(0.0, timeout * (1 << min(attempt, cap)))


def give_up_after(radio: RadioConfig, arq: ArqConfig, positions: int = 1) -> float:
    """The longest a CALL of ``positions`` fragments may take before the sender gives it up:
    every round's timeout at its longest back-off (:func:`retry_delay`), for the first try and
    the ``max_retries`` after it, without the waits for the duty cycle. A layer above that times
    out sooner (OCPP's MessageTimeout) abandons CALLs the radio is still delivering."""
    timeout = ack_timeout(radio, arq, True, positions)
    rounds = range(arq.max_retries + 1)
    return sum(timeout * (1 + (1 << min(a, arq.backoff_cap))) for a in rounds)


def reassembly_timeout(radio: RadioConfig, arq: ArqConfig) -> float:
    """How long a partly received message is kept without a new fragment: one duty-cycle hour
    (a sender that spent its budget may be silent that long between two fragments) plus as
    long as the sender may take between rounds at its longest back-off, for every round."""
    per_round = ack_timeout(radio, arq, True, MAX_POSITIONS) * (1 + (1 << arq.backoff_cap))
    return HOUR + (arq.max_retries + 1) * (per_round + radio.airtime(radio.max_packet))


def max_message(radio: RadioConfig) -> int:
    """The largest message the link carries (64 fragments without parity)."""
    return MAX_POSITIONS * fragment_size(radio.max_packet) - 2


# -- the send queue and the message in flight ------------------------------------------------


@dataclass(slots=True)
class OutMessage:
    data: bytes
    priority: Priority
    #: an OCPP CALL: the peer's answer will acknowledge it
    answer: bool = False
    tag: Any = None


class SendQueue:
    """New messages for one peer, by priority, first come first served within one."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, OutMessage]] = []
        self._seq = itertools.count()

    def push(self, message: OutMessage) -> None:
        heapq.heappush(self._heap, (message.priority, next(self._seq), message))

    def peek(self) -> tuple[int, int] | None:
        """(priority, arrival) of the next message, for choosing between peers."""
        if not self._heap:
            return None
        p, seq, _ = self._heap[0]
        return p, seq

    def first(self) -> OutMessage:
        """The next message, left in the queue."""
        return self._heap[0][2]

    def pop(self) -> OutMessage:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)


@dataclass(slots=True)
class InFlight:
    """Our message being sent: its sealed frames by position, what the peer has of it."""

    message: OutMessage
    base: int
    frames: list[bytes]
    #: data fragments (the rest of the positions are parity); 1 for a whole message
    data_count: int
    #: positions still to transmit in this round, in order
    todo: list[int]
    #: positions the peer reported received (NACK bitmap)
    received: int = 0
    #: timeouts so far (each starts a retransmission round)
    attempts: int = 0
    #: NACKs received so far (each starts a round too); ``nacked``: ``received`` is known
    nacks: int = 0
    nacked: bool = False
    #: when the acknowledgement is overdue (set when the round's last frame is sent)
    deadline: float | None = None
    #: counted when the first round is done: every later frame is a retransmission
    first_round_done: bool = False

    @property
    def positions(self) -> int:
        return len(self.frames)

    def missing_data(self, data_count: int) -> list[int]:
        return [i for i in range(data_count) if not self.received >> i & 1]


@dataclass(slots=True)
class AckDuty:
    """An acknowledgement we owe the peer for its message with base counter ``base``."""

    base: int
    due: float
    #: a NACK (with the received ``bitmap`` of ``positions``) rather than an ACK
    nack: bool = False
    bitmap: int = 0
    positions: int = 0
    #: held for the answer to carry it (the peer's message was flagged ANS)
    answer: bool = False
    #: a REPLY frame already sent for ``base``, to send again instead of an ACK
    resend: bytes | None = None
