"""Frame counters: the sender's, which must never repeat, and the receiver's window of seen ones.

Each direction of each station has one 32-bit counter (AES-CCM's nonce includes it: a repeat
under the same key would expose the keystream, so it must never happen, restarts included).

Sender (:class:`SendCounter`): counters are handed out one per radio frame. The persisted state
is a *reservation*: counters below ``reserved`` may be used without writing anything; taking
the one at ``reserved`` first moves the reservation ``block`` further and asks the adapter to
persist the state before that frame is transmitted. A restarted sender resumes at the
persisted ``reserved``: it jumps forward by at most ``block`` counters and never reuses one,
however it stopped (a known failure of other radio stacks is a restarted sender starting again
at 0 and being taken for a replay; here that cannot happen).

Receiver (:class:`ReceiveWindow`), per peer, after the MIC has verified:

- at or below ``highest - size``: *too old*, dropped;
- within the last ``size`` counters: *duplicate* if seen before (a retransmission, or a replay),
  else accepted (a fragment resent after later ones);
- up to ``max_gap`` above ``highest``: accepted (frames lost in between, or a restart jump);
- further ahead: a *jump*. Not accepted on its own: the receiver asks the sender to prove it is
  live (a CTRL RESYNC_REQUEST, answered by a RESYNC_CONFIRM that echoes the request's counter),
  and only then moves ``highest`` (:meth:`ReceiveWindow.resync`). See docs/lora.md.

Both are plain data with ``to_json`` / ``from_json`` for the adapter to persist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .frame import COUNTER_LIMIT, FrameError, reconstruct_counter

__all__ = [
    "Verdict",
    "ReplayError",
    "Replayed",
    "TooOld",
    "CounterJump",
    "CounterExhausted",
    "SendCounter",
    "ReceiveWindow",
    "CounterState",
]


class Verdict(Enum):
    FRESH = "fresh"
    DUPLICATE = "duplicate"
    TOO_OLD = "too old"
    JUMP = "jump"


class ReplayError(FrameError):
    """An authentic frame that is not accepted because of its counter."""


class Replayed(ReplayError):
    """Its counter was seen already."""


class TooOld(ReplayError):
    """Its counter is below the receiver's window."""


class CounterJump(ReplayError):
    """Its counter is further ahead than the receiver accepts without a confirmation."""


_ERRORS: dict[Verdict, type[ReplayError]] = {
    Verdict.DUPLICATE: Replayed,
    Verdict.TOO_OLD: TooOld,
    Verdict.JUMP: CounterJump,
}


class CounterExhausted(RuntimeError):
    """The 32-bit counter is used up: the station needs a new key."""


@dataclass(slots=True)
class SendCounter:
    """One direction's frame counter on the sending side."""

    next: int = 0
    #: counters below this are covered by the persisted state
    reserved: int = 0
    #: how far each reservation reaches (the largest jump a restart causes)
    block: int = 64

    def take(self) -> tuple[int, bool]:
        """The next counter, and whether the state must be persisted before the frame that
        uses it is transmitted (the reservation moved)."""
        counter = self.next
        if counter >= COUNTER_LIMIT:
            raise CounterExhausted("the 32-bit frame counter is used up: re-key the station")
        self.next += 1
        if counter >= self.reserved:
            self.reserved = min(counter + self.block, COUNTER_LIMIT)
            return counter, True
        return counter, False

    def to_json(self) -> dict[str, int]:
        return {"next": self.next, "reserved": self.reserved}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None, block: int = 64) -> SendCounter:
        """The counter of a sender that (re)starts from ``value``: it resumes at the reservation,
        past every counter it may have used before it stopped."""
        if not value:
            return cls(block=block)
        resume = max(int(value.get("next", 0)), int(value.get("reserved", 0)))
        return cls(next=resume, reserved=resume, block=block)


@dataclass(slots=True)
class ReceiveWindow:
    """The counters seen from one peer in one direction."""

    #: the highest counter accepted; -1 before the first
    highest: int = -1
    #: bit i set: counter ``highest - i`` was accepted
    seen: int = 0
    size: int = 128
    max_gap: int = 1024
    #: counters accepted / dropped, by verdict (for the adapter's metrics)
    counts: dict[str, int] = field(default_factory=dict)
    #: the first counter (the base) of the newest message delivered; -1 before the first. The
    #: sender sends one message at a time, each at higher counters than the one before, so a
    #: message starting below it is stale: a recording of one it gave up on, never delivered,
    #: whose counters the window has not seen. Delivered late, it would arrive out of order.
    delivered: int = -1

    def reconstruct(self, counter16: int) -> int:
        """The full counter of a frame from its 16 bits on air (nearest above ``highest``)."""
        return reconstruct_counter(counter16, self.highest)

    def verdict(self, counter: int) -> Verdict:
        if counter < 0 or counter <= self.highest - self.size:
            return Verdict.TOO_OLD
        if counter <= self.highest:
            return Verdict.DUPLICATE if self.seen >> (self.highest - counter) & 1 else Verdict.FRESH
        if counter - self.highest <= self.max_gap:
            return Verdict.FRESH
        return Verdict.JUMP

    def check(self, counter: int) -> None:
        """Raise the :class:`ReplayError` for ``counter``'s verdict, or return if fresh."""
        v = self.verdict(counter)
        if v is not Verdict.FRESH:
            self.count(v)
            raise _ERRORS[v](f"counter {counter} ({v.value}; highest {self.highest})")

    def count(self, verdict: Verdict) -> None:
        self.counts[verdict.value] = self.counts.get(verdict.value, 0) + 1

    def accept(self, counter: int) -> None:
        """Mark a fresh ``counter`` seen (call only after its MIC verified)."""
        if self.verdict(counter) is not Verdict.FRESH:
            raise ValueError(f"counter {counter} is not fresh")
        self.count(Verdict.FRESH)
        if counter > self.highest:
            shift = counter - self.highest
            self.seen = ((self.seen << shift) | 1) & ((1 << self.size) - 1)
            self.highest = counter
        else:
            self.seen |= 1 << (self.highest - counter)

    def resync(self, counter: int) -> None:
        """Accept a confirmed jump: ``counter`` becomes the highest, the earlier ones within
        the window count as unseen (the held frame that caused the jump can still arrive)."""
        self.highest = counter
        self.seen = 1
        self.count(Verdict.FRESH)

    def to_json(self) -> dict[str, Any]:
        return {
            "highest": self.highest,
            "seen": format(self.seen, "x"),
            "delivered": self.delivered,
        }

    @classmethod
    def from_json(
        cls, value: dict[str, Any] | None, size: int = 128, max_gap: int = 1024
    ) -> ReceiveWindow:
        if not value:
            return cls(size=size, max_gap=max_gap)
        seen = int(str(value.get("seen", "0")), 16) & ((1 << size) - 1)
        highest, delivered = int(value.get("highest", -1)), int(value.get("delivered", -1))
        return cls(highest, seen, size, max_gap, delivered=delivered)


@dataclass(slots=True)
class CounterState:
    """Everything one side keeps about one peer's counters: ours (``send``) and theirs
    (``receive``). The adapter persists :meth:`to_json` when asked, and after each frame
    accepted from the peer (else a restart could accept that frame again)."""

    send: SendCounter = field(default_factory=SendCounter)
    receive: ReceiveWindow = field(default_factory=ReceiveWindow)

    def to_json(self) -> dict[str, Any]:
        return {"send": self.send.to_json(), "receive": self.receive.to_json()}

    @classmethod
    def from_json(
        cls,
        value: dict[str, Any] | None,
        *,
        block: int = 64,
        size: int = 128,
        max_gap: int = 1024,
    ) -> CounterState:
        value = value or {}
        return cls(
            SendCounter.from_json(value.get("send"), block),
            ReceiveWindow.from_json(value.get("receive"), size, max_gap),
        )
