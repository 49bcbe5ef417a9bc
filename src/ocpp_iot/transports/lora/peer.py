"""One peer relationship: what an endpoint keeps about, and decides for, one station.

A :class:`Peer` holds the station's key, both counters, the reassembly of its messages, our
queue to it and our message in flight, and the acknowledgement we owe it. Its methods are the
ARQ reactions to authentic frames (the endpoint has verified the MIC and the counter verdict
before calling them); choosing what to put on air, and when, is the endpoint's job.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from .arq import AckDuty, ArqConfig, InFlight, RadioConfig, SendQueue
from .events import Delivered, Dropped, Event, LinkStats, PersistState, SendAcked, SendFailed
from .fragment import Reassembler
from .frame import Control, Frame, FrameType, MalformedFrame
from .replay import CounterState, Verdict

__all__ = ["Peer"]


@dataclass(slots=True)
class Peer:
    address: int
    key: bytes
    counters: CounterState
    reasm: Reassembler
    radio: RadioConfig
    arq: ArqConfig
    queue: SendQueue = field(default_factory=SendQueue)
    inflight: InFlight | None = None
    duty: AckDuty | None = None
    #: CTRL frames to send: (code, argument)
    control: deque[tuple[Control, int]] = field(default_factory=deque)
    #: our outstanding RESYNC_REQUEST's counter, and until when an echo of it is accepted
    resync_request: int | None = None
    resync_until: float = 0.0
    resync_queued: bool = False
    #: bare acknowledgements sent, per base of the peer's recent messages
    reacks: dict[int, int] = field(default_factory=dict)
    #: (base, position): the last missing position our NACK asked for
    expect_last: tuple[int, int] | None = None
    #: (base of the peer's CALL, the REPLY frame that answered it): sent again if it repeats
    reply: tuple[int, bytes] | None = None
    stats: LinkStats = field(default_factory=LinkStats)

    def wants(self) -> tuple[list[float], list[float], list[float]]:
        """(when DATA frames, when control frames would go, and our timers), for the endpoint's
        next deadline (``-inf``: now)."""
        inf = self.inflight
        data = [-math.inf] if (inf is not None and inf.todo) or (inf is None and self.queue) else []
        control = [-math.inf] if self.control else []
        if self.duty is not None:
            control.append(self.duty.due)
        timers = [t for t in (self.reasm.deadline(),) if t is not None]
        if inf is not None and inf.deadline is not None:
            timers.append(inf.deadline)
        if self.resync_request is not None:
            timers.append(self.resync_until)
        return data, control, timers

    # -- acknowledgements of our message ------------------------------------------------------

    def on_ack(self, ack16: int, events: list[Event]) -> None:
        """An ACK field or frame: our message in flight is through if the base matches."""
        inf = self.inflight
        if inf is not None and inf.base & 0xFFFF == ack16:
            self.inflight = None
            self.stats.acked += 1
            events.append(SendAcked(self.address, inf.message.tag))

    def on_nack(self, payload: bytes, events: list[Event]) -> None:
        """A NACK: resend the data fragments the peer lacks."""
        inf = self.inflight
        if inf is None or inf.base & 0xFFFF != int.from_bytes(payload[:2], "big"):
            return
        inf.received |= int.from_bytes(payload[2:], "little")
        inf.nacked = True
        inf.nacks += 1
        if inf.nacks > 2 * self.arq.max_retries:
            self._fail(events)
            return
        inf.todo = inf.missing_data(inf.data_count) or [inf.positions - 1]
        inf.deadline = None

    def on_timeout(self, events: list[Event]) -> None:
        """No acknowledgement in time: resend what a NACK said is missing, or else probe with
        the last position (the peer answers it with an ACK or a NACK); give up after
        ``max_retries`` timeouts."""
        inf = self.inflight
        assert inf is not None
        inf.attempts += 1
        if inf.attempts > self.arq.max_retries:
            self._fail(events)
            return
        missing = inf.missing_data(inf.data_count) if inf.nacked else []
        inf.todo, inf.deadline = missing or [inf.positions - 1], None

    def _fail(self, events: list[Event]) -> None:
        inf = self.inflight
        assert inf is not None
        self.inflight = None
        self.stats.failed += 1
        events.append(SendFailed(self.address, inf.message.tag, inf.message.data))

    def on_control(self, frame: Frame, events: list[Event]) -> None:
        code = Control(frame.payload[0])
        if code is Control.NACK:
            self.on_nack(frame.payload[1:], events)
        elif code is Control.RESYNC_REQUEST:  # prove we are live: echo its counter
            self.control.append((Control.RESYNC_CONFIRM, frame.counter))
        elif int.from_bytes(frame.payload[1:5], "big") == self.resync_request:
            self.resync_request = None

    def on_reply(self, frame: Frame, events: list[Event]) -> None:
        """A REPLY (fresh): the answer to our CALL, which its ACK field acknowledged. Nothing
        is owed for it: if it had been lost, our CALL's retransmission would have asked again.
        Not subject to the stale rule: a REPLY resent for a repeated CALL keeps its counter,
        which may be below a message the peer sent after it."""
        self._deliver(frame.payload, events)

    def _stale(self, base: int, events: list[Event]) -> bool:
        """A fresh message that starts below the newest one delivered (ReceiveWindow
        ``delivered``): dropped, it would arrive out of order."""
        if base >= self.counters.receive.delivered:
            return False
        self.stats.stale += 1
        events.append(Dropped(self.address, f"message at counter {base}: older than one delivered"))
        return True

    def on_jump(self, frame: Frame, now: float) -> list[Event]:
        """A frame further ahead than ``max_gap``: held (dropped) until the peer proves it is
        live by echoing our RESYNC_REQUEST; that echo moves the window (replay.py)."""
        self.stats.jumps += 1
        is_ctrl = frame.type is FrameType.CTRL
        echo = int.from_bytes(frame.payload[1:5], "big") if is_ctrl else -1
        if is_ctrl and frame.payload[0] == Control.RESYNC_REQUEST:
            # answering proves nothing to us and accepts nothing: it lets a peer that sees *our*
            # counter as a jump confirm us while we confirm it (both jumped: no deadlock)
            self.control.append((Control.RESYNC_CONFIRM, frame.counter))
        if (
            is_ctrl
            and frame.payload[0] == Control.RESYNC_CONFIRM
            and self.resync_request is not None
            and echo == self.resync_request
            and now < self.resync_until
        ):
            self.counters.receive.resync(frame.counter)
            self.resync_request = None
            self.stats.resyncs += 1
            return [PersistState(self.address, urgent=False)]
        if self.resync_request is None and not self.resync_queued:
            self.control.append((Control.RESYNC_REQUEST, frame.counter))
            self.resync_queued = True
        return [Dropped(self.address, f"counter {frame.counter} jumps ahead: confirming")]

    # -- the peer's messages --------------------------------------------------------------------

    def on_data(
        self, frame: Frame, now: float, size: int, *, fresh: bool, events: list[Event]
    ) -> None:
        """A DATA frame (``fresh``: its counter is new; else a retransmission or a replay):
        deliver what completes, and decide the acknowledgement owed."""
        f = frame.fragment
        base = frame.counter - (f.index if f is not None else 0)
        if base < 0:
            return
        reasm = self.reasm
        if fresh and self._stale(base, events):
            return
        if f is None:
            if fresh:
                self._deliver(frame.payload, events, base)
                reasm.completed.append(base)
                self.owe_ack(base, frame.answer, now)
            elif reasm.was_completed(base) or self._delivered_before(base, 1):
                self._again(base, now)
            return
        # Reply at once after the last position of the message or the last one our NACK asked
        # for (the sender's round is over); after any other position the sender may still be
        # transmitting (and then deaf): reply once the channel stayed quiet for one more frame,
        # each new frame of the message pushing the reply further.
        last = f.positions - 1
        quiet = self.radio.airtime(size) + 2 * self.arq.turnaround
        at = now if f.index == last or self.expect_last == (base, f.index) else now + quiet
        duty = self.duty
        owed = duty if duty is not None and duty.base == base else None
        if reasm.was_completed(base) or (not fresh and self._delivered_before(base, f.data)):
            if owed is not None and not owed.nack:
                owed.due = max(owed.due, at)  # not sent yet: keep it after the sender's round
            elif not fresh or f.index == last:  # a retransmission or a probe: ack again
                self._again(base, at)
            return
        try:
            message = reasm.add(base, f.index, f.data, f.parity, frame.payload, now)
        except MalformedFrame:
            self.stats.malformed += 1
            return
        if message is not None:
            self._deliver(message, events, base)
            self.owe_ack(base, frame.answer, at)
            return
        if not fresh or at == now or owed is not None:
            bitmap = reasm.received(base)
            missing = [i for i in range(f.data) if not bitmap >> i & 1]
            self.expect_last = (base, missing[-1]) if missing else None
            self.duty = AckDuty(base, at, nack=True, bitmap=bitmap, positions=f.positions)

    def _delivered_before(self, base: int, data_positions: int) -> bool:
        """Whether the peer's repeated message ``base`` was delivered before a restart of ours
        (docs/lora.md, "Counters and replay", restarts): every one of its data positions'
        counters is seen in the window restored from the persisted state, but the memory of
        completed messages did not survive. Only a message newer than every one remembered
        qualifies (a stop-and-wait sender retransmits its latest message; an older repeat is
        a replay and stays unanswered). It is then remembered as completed, so that it is
        acknowledged again within ``reack_limit`` like any other."""
        reasm = self.reasm
        if base in reasm.pending or (reasm.completed and base <= max(reasm.completed)):
            return False
        window = self.counters.receive
        if any(window.verdict(base + i) is not Verdict.DUPLICATE for i in range(data_positions)):
            return False
        reasm.completed.append(base)
        self.stats.reacked_after_restart += 1
        return True

    def _deliver(self, data: bytes, events: list[Event], base: int | None = None) -> None:
        """``base``: a DATA message's (the newest such is persisted with the event below)."""
        if base is not None:
            window = self.counters.receive
            window.delivered = max(window.delivered, base)
        self.stats.delivered += 1
        events.append(Delivered(self.address, data))
        events.append(PersistState(self.address, urgent=False))

    def owe_ack(self, base: int, answer: bool, at: float) -> None:
        """Owe an ACK of the peer's new message ``base`` from ``at``; an ANS message's is held
        ``answer_wait`` for the answer to carry it, but only while our own slot is free (else
        the answer would wait behind our message)."""
        hold = answer and self.inflight is None
        self.duty = AckDuty(base, at + (self.arq.answer_wait if hold else 0.0), answer=hold)
        if self.reply is not None and self.reply[0] != base:
            self.reply = None  # a new message: the previous CALL's REPLY will not be asked for

    def _again(self, base: int, at: float) -> None:
        """The peer repeated (part of) message ``base`` we have: acknowledge it again, or send
        our REPLY to it again; at most ``reack_limit`` times (a replayed frame costs little)."""
        if self.reacks.get(base, 0) >= self.arq.reack_limit:
            self.stats.reacks_suppressed += 1
            return
        resend = self.reply[1] if self.reply is not None and self.reply[0] == base else None
        self.duty = AckDuty(base, at, resend=resend)

    def acked_bare(self, base: int) -> None:
        """Count a bare acknowledgement of ``base`` (for the re-ack limit); forget the counts
        of messages no longer remembered (their frames are too old to be acked again)."""
        self.reacks[base] = self.reacks.get(base, 0) + 1
        keep = set(self.reasm.completed) | set(self.reasm.pending)
        for b in [b for b in self.reacks if b not in keep]:
            del self.reacks[b]
