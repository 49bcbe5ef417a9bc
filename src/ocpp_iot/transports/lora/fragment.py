"""Fragmentation of messages larger than one radio packet, XOR parity, and reassembly.

A message that does not fit one frame is sent as ``n`` data fragments and ``r`` optional
parity fragments (positions ``0 .. n + r - 1``; ``n + r <= 64``, ``r <= 15``):

- the fragmented body is ``length (2 bytes, big-endian) | message``, cut into ``n`` pieces of
  ``size`` bytes (the last one shorter); the length lets a receiver trim the last piece when it
  is rebuilt from parity (padded with zeros to ``size``);
- parity fragment ``j`` is the XOR of the data fragments (each zero-padded to ``size``) selected
  by :func:`parity_row`: ``j = 0`` takes all of them, ``j = 1..6`` those whose index has bit
  ``j - 1`` set, higher rows a pseudo-random half (a xorshift32 generator defined there), so
  that the other side can rebuild the same rows (LoRaWAN TS004 also sends XOR combinations of
  earlier fragments, from its own generator; this is not its matrix);
- the receiver solves the received rows over GF(2) (Gaussian elimination): the message is
  rebuilt as soon as the rows received span all ``n`` data fragments, whichever they are.

A reassembly that sees no new fragment for ``timeout`` seconds is dropped (:meth:`expire`).
No I/O, no clock: ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .frame import MAX_PARITY, MAX_POSITIONS, MalformedFrame, overhead

__all__ = [
    "LENGTH_PREFIX",
    "fragment_size",
    "fits_whole",
    "parity_count",
    "parity_row",
    "split",
    "plan",
    "Reassembly",
    "Reassembler",
]

LENGTH_PREFIX = 2
_MASK32 = 0xFFFFFFFF


def fragment_size(max_packet: int) -> int:
    """Message bytes per fragment when the modem carries ``max_packet`` bytes (header with
    fragment and ACK fields, and the MIC, take the rest)."""
    size = max_packet - overhead(fragmented=True, ack=True)
    if size < 8:
        raise ValueError(f"a {max_packet}-byte packet is too small for fragments")
    return size


def fits_whole(length: int, max_packet: int) -> bool:
    """Whether a message of ``length`` bytes goes in one frame (with room for an ACK field)."""
    return length <= max_packet - overhead(fragmented=False, ack=True)


def parity_count(data: int, ratio: float) -> int:
    """Parity fragments for ``data`` data fragments: ``ceil(data * ratio)``, within the limits
    (none for an unfragmented message)."""
    if data < 2 or ratio <= 0:
        return 0
    return min(MAX_PARITY, MAX_POSITIONS - data, math.ceil(data * ratio))


def parity_row(data: int, j: int) -> int:
    """Which data fragments parity fragment ``j`` covers, as a bitmask (bit ``i``: fragment
    ``i``).

    - row 0 covers all of them;
    - rows 1..6 cover fragment ``i`` when bit ``j - 1`` of ``i`` is set: with row 0, the
      columns of the first ``r`` rows are distinct as long as ``data <= 2**(r - 1)``, so any
      two (and any three) lost data fragments are rebuilt when those rows arrive;
    - rows 7..14 (only for more than 64 fragments' worth of variety) are pseudo-random:
      ``x = (0x9E3779B9 ^ data << 16 ^ j) mod 2**32``; for each ``i`` from 0 step xorshift32
      (``x ^= x << 13; x ^= x >> 17; x ^= x << 5``, mod 2**32) and take fragment ``i`` when
      bit 31 of ``x`` is set.

    An empty row takes fragment ``j mod data`` instead."""
    if j == 0:
        return (1 << data) - 1
    mask = 0
    if j <= 6:
        for i in range(data):
            if i >> (j - 1) & 1:
                mask |= 1 << i
        return mask or 1 << (j % data)
    x = (0x9E3779B9 ^ (data << 16) ^ j) & _MASK32 or 1
    for i in range(data):
        x ^= (x << 13) & _MASK32
        x ^= x >> 17
        x ^= (x << 5) & _MASK32
        if x >> 31:
            mask |= 1 << i
    return mask or 1 << (j % data)


def split(message: bytes, size: int, parity: int = 0) -> list[bytes]:
    """The payloads of positions ``0 .. n + parity - 1`` for ``message`` (module docstring)."""
    if len(message) >= 1 << 16:
        raise ValueError("a message is at most 65535 bytes")
    body = len(message).to_bytes(LENGTH_PREFIX, "big") + message
    n = math.ceil(len(body) / size)
    if n + parity > MAX_POSITIONS or parity > MAX_PARITY or n + parity < 2:
        raise ValueError(f"{len(message)} bytes need {n}+{parity} positions: too many")
    pieces = [body[i * size : (i + 1) * size] for i in range(n)]
    padded = [int.from_bytes(p.ljust(size, b"\0"), "big") for p in pieces]
    out = list(pieces)
    for j in range(parity):
        row, value = parity_row(n, j), 0
        for i in range(n):
            if row >> i & 1:
                value ^= padded[i]
        out.append(value.to_bytes(size, "big"))
    return out


def plan(
    message: bytes, max_packet: int, parity_ratio: float = 0.0
) -> tuple[list[bytes], int, int]:
    """How ``message`` goes over a modem of ``max_packet`` bytes: the payloads of its
    positions, and its data and parity fragment counts (``[message], 1, 0``: whole)."""
    if fits_whole(len(message), max_packet):
        return [message], 1, 0
    size = fragment_size(max_packet)
    n = math.ceil((len(message) + LENGTH_PREFIX) / size)
    r = parity_count(n, parity_ratio)
    return split(message, size, r), n, r


@dataclass(slots=True)
class Reassembly:
    """The fragments received so far of one message."""

    data: int
    parity: int
    touched: float
    pieces: dict[int, bytes] = field(default_factory=dict)

    @property
    def received(self) -> int:
        """Bitmap of the positions received (bit ``i``: position ``i``)."""
        return sum(1 << i for i in self.pieces)

    def add(self, index: int, payload: bytes) -> bool:
        """Keep one position; ``False`` if it was already there. ``MalformedFrame`` if its
        length contradicts the others' (all but the last data fragment have one size)."""
        if index in self.pieces:
            return False
        full = [len(p) for i, p in self.pieces.items() if i != self.data - 1]
        size = full[0] if full else None
        if index != self.data - 1:
            if size is not None and len(payload) != size:
                raise MalformedFrame(f"fragment {index} is {len(payload)} bytes, not {size}")
            size = len(payload)
        last = self.pieces.get(self.data - 1, payload if index == self.data - 1 else b"")
        if not payload or (size is not None and len(last) > size):
            raise MalformedFrame("a fragment is empty, or the last one longer than the others")
        self.pieces[index] = payload
        return True

    def solve(self) -> bytes | None:
        """The message if the positions received determine it, else ``None``.
        ``MalformedFrame`` if the fragments contradict each other."""
        if len(self.pieces) < self.data:
            return None
        n = self.data
        size = max(len(p) for p in self.pieces.values())
        for i, p in self.pieces.items():
            full = i != n - 1  # every position but the last data one is exactly ``size``
            if (full and len(p) != size) or not p:
                raise MalformedFrame(f"fragment {i} is {len(p)} bytes, not {size}")
        pivots: dict[int, tuple[int, int]] = {}  # lowest bit -> (mask, value)
        for i, p in self.pieces.items():
            mask = 1 << i if i < n else parity_row(n, i - n)
            value = int.from_bytes(p.ljust(size, b"\0"), "big")
            while mask:
                low = mask & -mask
                if low not in pivots:
                    pivots[low] = (mask, value)
                    break
                pm, pv = pivots[low]
                mask, value = mask ^ pm, value ^ pv
        if len(pivots) < n:
            return None
        solved: dict[int, int] = {}
        for bit in sorted(pivots, reverse=True):  # higher bits are solved first
            mask, value = pivots[bit]
            rest = mask ^ bit
            while rest:
                low = rest & -rest
                value ^= solved[low]
                rest ^= low
            solved[bit] = value
        body = b"".join(solved[1 << i].to_bytes(size, "big") for i in range(n))
        length = int.from_bytes(body[:LENGTH_PREFIX], "big")
        total = LENGTH_PREFIX + length
        if not (n - 1) * size < total <= n * size:
            raise MalformedFrame(f"length {length} does not match {n} fragments of {size}")
        last = self.pieces.get(n - 1)
        if last is not None and len(last) != total - (n - 1) * size:
            raise MalformedFrame("the last data fragment's length contradicts the length")
        return body[LENGTH_PREFIX:total]


class Reassembler:
    """The messages being reassembled from one peer, keyed by base counter (the counter of
    position 0: a fragment's counter minus its index), and the last few completed ones."""

    __slots__ = ("timeout", "limit", "pending", "completed", "dropped")

    def __init__(self, timeout: float, limit: int = 2, remember: int = 8) -> None:
        self.timeout = timeout
        self.limit = limit
        self.pending: dict[int, Reassembly] = {}
        self.completed: deque[int] = deque(maxlen=remember)
        #: reassemblies given up (timeout, displaced, contradictory)
        self.dropped = 0

    def add(
        self, base: int, index: int, data: int, parity: int, payload: bytes, now: float
    ) -> bytes | None:
        """Add a fragment; the message when this completes it, else ``None`` (also for a
        fragment of a message completed before: see :meth:`was_completed`)."""
        if base in self.completed:
            return None
        r = self.pending.get(base)
        if r is not None and (r.data, r.parity) != (data, parity):
            del self.pending[base]
            self.dropped += 1
            raise MalformedFrame(f"fragments of message {base} disagree on their counts")
        if r is None:
            if len(self.pending) >= self.limit:
                oldest = min(self.pending, key=lambda b: self.pending[b].touched)
                del self.pending[oldest]
                self.dropped += 1
            r = self.pending[base] = Reassembly(data, parity, now)
        try:
            if not r.add(index, payload):
                return None
            r.touched = now
            message = r.solve()
        except MalformedFrame:
            del self.pending[base]
            self.dropped += 1
            raise
        if message is not None:
            del self.pending[base]
            self.completed.append(base)
        return message

    def was_completed(self, base: int) -> bool:
        return base in self.completed

    def received(self, base: int) -> int:
        """Bitmap of the positions of ``base`` received (all of them once complete)."""
        r = self.pending.get(base)
        return r.received if r is not None else 0

    def deadline(self) -> float | None:
        return min((r.touched + self.timeout for r in self.pending.values()), default=None)

    def expire(self, now: float) -> list[int]:
        """Drop reassemblies idle for ``timeout``; return their base counters."""
        gone = [b for b, r in self.pending.items() if r.touched + self.timeout <= now]
        for b in gone:
            del self.pending[b]
        self.dropped += len(gone)
        return gone
