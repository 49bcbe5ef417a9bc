"""One radio's link layer, sans-IO: bytes and ``now`` in, frames to transmit and events out.

An :class:`Endpoint` is one side of the radio link: a station (it sends ``UP`` frames and has
one peer, itself as the address both directions name) or a gateway (it sends ``DOWN`` frames
and has one peer per provisioned station). It ties the pieces together: frames and crypto
(:mod:`.frame`), counters and replay (:mod:`.replay`), fragments (:mod:`.fragment`), the ARQ
rules (:mod:`.arq`) and the duty-cycle ledger (:mod:`.airtime`), shared by all peers because it
is one transmitter's budget.

The adapter's loop: pass every packet the modem receives to :meth:`receive`, every message to
send to :meth:`send`, call :meth:`poll` when :meth:`next_deadline` comes, and act on the events
in order: :class:`PersistState` (write :meth:`state` before the next transmission when
``urgent``), :class:`Transmit` (hand the bytes to the modem now; the radio is busy for its
airtime), :class:`Delivered`, :class:`SendAcked`, :class:`SendFailed`, :class:`Dropped` (log).
One frame is transmitted at a time; nothing here reads a clock or draws global randomness.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

from .airtime import DutyCycleLedger
from .arq import (
    AckDuty,
    ArqConfig,
    InFlight,
    OutMessage,
    Priority,
    RadioConfig,
    ack_timeout,
    max_message,
    reassembly_timeout,
    retry_delay,
)
from .events import Dropped, Event, LinkStats, PersistState, SendAcked, Transmit
from .fragment import Reassembler, plan
from .frame import (
    BadMic,
    Control,
    Direction,
    Fragment,
    Frame,
    FrameError,
    FrameType,
    MalformedFrame,
    TruncatedFrame,
    open_frame,
    overhead,
    peek,
    seal,
)
from .peer import Peer
from .replay import CounterState, Verdict

__all__ = ["Endpoint"]


class Endpoint:
    """One side of the radio link (module docstring)."""

    def __init__(
        self,
        direction: Direction,
        radio: RadioConfig | None = None,
        arq: ArqConfig | None = None,
        *,
        ledger: DutyCycleLedger | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.direction = direction
        self.radio = radio or RadioConfig()
        self.arq = arq or ArqConfig()
        self.ledger = ledger if ledger is not None else DutyCycleLedger()
        band = self.ledger.band(self.radio.frequency_hz)  # refuses a frequency without one
        longest = self.radio.airtime(self.radio.max_packet)
        for_data = band.budget * (1 - self.arq.control_reserve)  # what _fits leaves DATA
        if longest > for_data:
            # else the ledger would refuse the first full frame on every poll, for ever
            raise ValueError(
                f"a {self.radio.max_packet}-byte packet takes {longest:.2f} s on air, more than "
                f"the {for_data:.2f} s an hour that {band.name} leaves for data: a smaller max "
                "packet or spreading factor"
            )
        self.rng = rng if rng is not None else random.Random(0)
        self.stats = LinkStats()
        self.busy_until = -math.inf
        #: until when the ledger refused the head DATA / control frame (None: it did not)
        self._blocked: dict[bool, float | None] = {False: None, True: None}
        self._peers: dict[int, Peer] = {}
        self._resync_wait = 4 * ack_timeout(self.radio, self.arq, True)

    # -- peers and their state ----------------------------------------------------------------

    def add_peer(self, address: int, key: bytes, state: dict[str, Any] | None = None) -> None:
        """Provision a peer (a station's own address, with its key) from persisted state."""
        if len(key) != 16 or not 0 <= address <= 0xFFFF:
            raise ValueError("a peer has a 16-bit address and a 16-byte key")
        a = self.arq
        counters = CounterState.from_json(
            state, block=a.reserve_block, size=a.window, max_gap=a.max_gap
        )
        reasm = Reassembler(reassembly_timeout(self.radio, a))
        self._peers[address] = Peer(address, bytes(key), counters, reasm, self.radio, a)

    def remove_peer(self, address: int) -> int:
        """Forget a peer (re-keyed or re-addressed): nothing more is sent to it or taken from
        it. Returns how many of our messages to it are dropped (queued, or in flight)."""
        peer = self._peers.pop(address, None)
        if peer is None:
            return 0
        return len(peer.queue) + (peer.inflight is not None)

    def state(self, address: int) -> dict[str, Any]:
        """The peer's counter state to persist (plain JSON data)."""
        return self._peers[address].counters.to_json()

    def peer_stats(self, address: int) -> LinkStats:
        return self._peers[address].stats

    @property
    def max_message(self) -> int:
        return max_message(self.radio)

    # -- the three inputs ---------------------------------------------------------------------

    def send(
        self,
        address: int,
        data: bytes,
        now: float,
        *,
        priority: Priority = Priority.CALL,
        answer: bool = False,
        tag: Any = None,
    ) -> list[Event]:
        """Queue a message for ``address``; ``answer``: it is a CALL whose answer will
        acknowledge it. Returns what :meth:`poll` returns now."""
        if not 1 <= len(data) <= self.max_message:
            raise ValueError(f"a message is 1..{self.max_message} bytes, not {len(data)}")
        self._peers[address].queue.push(OutMessage(bytes(data), priority, answer, tag))
        return self.poll(now)

    def receive(self, raw: bytes, now: float) -> list[Event]:
        """One packet from the modem: account for it, then :meth:`poll`."""
        events = self._receive(raw, now)
        return events + self.poll(now)

    def poll(self, now: float) -> list[Event]:
        """Run the timers and transmit the next frame if the radio and the ledger allow."""
        events: list[Event] = []
        for peer in self._peers.values():
            peer.reasm.expire(now)
            inf = peer.inflight
            if inf is not None and inf.deadline is not None and now >= inf.deadline:
                peer.on_timeout(events)
            if peer.resync_request is not None and now >= peer.resync_until:
                peer.resync_request = None
        if now >= self.busy_until:
            self._transmit_next(now, events)
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do, or ``None``."""
        timers: list[float] = []
        # when a DATA / a control frame would go, radio and ledger aside
        want: dict[bool, list[float]] = {False: [], True: []}
        for p in self._peers.values():
            data_at, control_at, times = p.wants()
            want[False] += data_at
            want[True] += control_at
            timers += times
        at: dict[bool, float] = {}
        for control, times in want.items():
            if times:
                blocked = self._blocked[control]
                at[control] = max(min(times), self.busy_until, blocked or -math.inf)
        if False in at and True in at and min(want[True]) <= at[False]:
            at[False] = max(at[False], at[True])  # control frames due first go first
        timers.extend(at.values())
        return min(timers) if timers else None

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, raw: bytes, now: float) -> list[Event]:
        try:
            header = peek(raw)
        except TruncatedFrame as exc:
            self.stats.truncated += 1
            return [Dropped(None, str(exc))]
        except FrameError as exc:
            self.stats.malformed += 1
            return [Dropped(None, str(exc))]
        peer = self._peers.get(header.address)
        if header.direction == self.direction or (peer is None and self.direction is Direction.UP):
            # another station's uplink, or a downlink to another station: normal, not an error
            self.stats.not_for_us += 1
            return []
        if peer is None:
            self.stats.unknown_peer += 1
            return [Dropped(header.address, f"no station {header.address} provisioned here")]
        st, window = peer.stats, peer.counters.receive
        counter = window.reconstruct(header.counter16)
        try:
            frame = open_frame(raw, header, peer.key, counter)
        except BadMic as exc:
            st.bad_mic += 1
            return [Dropped(peer.address, str(exc))]
        except MalformedFrame as exc:
            st.malformed += 1
            return [Dropped(peer.address, str(exc))]
        st.received += 1
        verdict = window.verdict(counter)
        events: list[Event] = []
        if verdict is Verdict.TOO_OLD:
            st.too_old += 1
            window.count(verdict)
            return [Dropped(peer.address, f"counter {counter} too old")]
        if verdict is Verdict.JUMP:
            window.count(verdict)
            return peer.on_jump(frame, now)
        if verdict is Verdict.DUPLICATE:
            st.duplicates += 1
            window.count(verdict)
            if frame.type is FrameType.DATA:
                peer.on_data(frame, now, len(raw), fresh=False, events=events)
            return events
        window.accept(counter)
        if frame.ack is not None:
            peer.on_ack(frame.ack, events)
        if frame.type is FrameType.DATA:
            peer.on_data(frame, now, len(raw), fresh=True, events=events)
        elif frame.type is FrameType.REPLY:
            peer.on_reply(frame, events)
        elif frame.type is FrameType.CTRL:
            peer.on_control(frame, events)
        return events

    # -- transmitting -------------------------------------------------------------------------

    def _transmit_next(self, now: float, events: list[Event]) -> None:
        """Pick the one frame to send now, in priority order: control frames, acknowledgements
        due, the message in flight, then a new message by priority across peers. If the
        ledger says no, nothing is sent (strict priority) until it says yes."""
        peers = list(self._peers.values())
        for p in peers:
            if p.control:
                code, arg = p.control[0]
                frame = self._frame(p, FrameType.CTRL, bytes((code,)) + arg.to_bytes(4, "big"))
                sent = self._emit(p, frame, now, events, control=True)
                if sent is not None:
                    p.control.popleft()
                    if code is Control.RESYNC_REQUEST:
                        p.resync_queued = False
                        p.resync_request = sent.counter
                        p.resync_until = now + self._resync_wait
                return
        for p in peers:
            duty = p.duty
            if duty is None or duty.due > now:
                continue
            plain_ack = not duty.nack and duty.resend is None
            if plain_ack and p.inflight is None and p.queue and self._start(p, now, events):
                return  # the new message carries the acknowledgement
            self._send_duty(p, duty, now, events)  # else a bare one (from the reserve)
            return
        for p in peers:
            inf = p.inflight
            if inf is not None and inf.todo:
                self._send_position(p, inf, now, events)
                return
        waiting = [(p.queue.peek(), i) for i, p in enumerate(peers) if p.inflight is None]
        best = min(((k, i) for k, i in waiting if k is not None), default=None)
        if best is not None:
            self._start(peers[best[1]], now, events)

    def _frame(self, peer: Peer, type_: FrameType, payload: bytes = b"", **kw: Any) -> Frame:
        """A frame to ``peer``; its counter is taken when it is sent (:meth:`_emit`)."""
        return Frame(type_, self.direction, peer.address, 0, payload, **kw)

    def _fits(self, size: int, now: float, *, control: bool = False) -> bool:
        """Whether a frame of ``size`` bytes may go now. DATA frames leave ``control_reserve``
        of the sub-band's budget unused, so that acknowledgements still go out when data has
        spent the rest (else the peer would retransmit into our silence, and give up)."""
        airtime = self.radio.airtime(size)
        f = self.radio.frequency_hz
        reserve = 0.0 if control else self.arq.control_reserve * self.ledger.band(f).budget
        at = self.ledger.wait_until(f, airtime, now, reserve=reserve)
        if at > now:
            self._blocked[control] = at
            self.stats.duty_waits += 1
            return False
        self._blocked[control] = None
        return True

    def _take(self, peer: Peer, events: list[Event]) -> int:
        counter, persist = peer.counters.send.take()
        if persist:
            events.append(PersistState(peer.address, urgent=True))
        return counter

    def _emit(
        self, peer: Peer, frame: Frame, now: float, events: list[Event], *, control: bool
    ) -> Frame | None:
        """Take a counter for ``frame``, seal and transmit it if the ledger allows."""
        size = overhead(False, frame.ack is not None) + len(frame.payload)
        if not self._fits(size, now, control=control):
            return None
        frame = replace(frame, counter=self._take(peer, events))
        self._put_on_air(peer, seal(frame, peer.key), now, events, control=control)
        return frame

    def _put_on_air(
        self,
        peer: Peer,
        data: bytes,
        now: float,
        events: list[Event],
        *,
        control: bool,
        again: bool = False,
    ) -> None:
        """Emit ``data`` for transmission now; account for it in the ledger and the stats."""
        airtime = self.radio.airtime(len(data))
        type_ = FrameType(data[0] >> 4 & 3)
        self.ledger.record(self.radio.frequency_hz, airtime, now)
        self.busy_until = now + airtime
        st = peer.stats
        if control:
            st.control_frames += 1
            st.control_airtime += airtime
        else:
            st.data_frames += 1
            st.data_airtime += airtime
            st.retransmissions += again
        events.append(Transmit(data, airtime, self.radio.frequency_hz, peer.address, type_, again))

    def _send_duty(self, peer: Peer, duty: AckDuty, now: float, events: list[Event]) -> None:
        if duty.resend is not None:  # the peer repeated its CALL: our REPLY again
            # (from the control budget: it stands for the ACK that would be sent otherwise)
            if self._fits(len(duty.resend), now, control=True):
                self._put_on_air(peer, duty.resend, now, events, control=False, again=True)
                peer.duty = None
                peer.acked_bare(duty.base)
            return
        if duty.nack:
            body = bytes((Control.NACK,)) + (duty.base & 0xFFFF).to_bytes(2, "big")
            body += duty.bitmap.to_bytes(math.ceil(duty.positions / 8), "little")
            frame = self._frame(peer, FrameType.CTRL, body)
        else:
            frame = self._frame(peer, FrameType.ACK, ack=duty.base & 0xFFFF)
        if self._emit(peer, frame, now, events, control=True) is not None:
            peer.duty = None
            peer.acked_bare(duty.base)

    def _send_position(self, peer: Peer, inf: InFlight, now: float, events: list[Event]) -> None:
        pos = inf.todo[0]
        data = inf.frames[pos]
        if not self._fits(len(data), now):
            return
        inf.todo.pop(0)
        self._put_on_air(peer, data, now, events, control=False, again=inf.first_round_done)
        if not inf.todo:
            inf.first_round_done = True
            timeout = ack_timeout(self.radio, self.arq, inf.message.answer, inf.positions)
            wait = retry_delay(timeout, inf.attempts, self.arq.backoff_cap, self.rng)
            inf.deadline = self.busy_until + wait

    def _reply(
        self, peer: Peer, duty: AckDuty, message: OutMessage, now: float, events: list[Event]
    ) -> bool:
        """Send an answer as a REPLY to the held CALL ``duty.base``: it acknowledges the CALL,
        is kept for a repeat of the CALL, and occupies no slot (nothing acknowledges it)."""
        counter = self._take(peer, events)
        frame = Frame(
            FrameType.REPLY,
            self.direction,
            peer.address,
            counter,
            message.data,
            ack=duty.base & 0xFFFF,
        )
        sealed = seal(frame, peer.key)
        peer.reply, peer.duty = (duty.base, sealed), None
        peer.stats.piggybacked += 1
        self._put_on_air(peer, sealed, now, events, control=False)
        events.append(SendAcked(peer.address, message.tag, confirmed=False))
        return True

    def _start(self, peer: Peer, now: float, events: list[Event]) -> bool:
        """Seal all frames of the next queued message (consecutive counters) and send the
        first; an acknowledgement we owe this peer rides on every one of them. Nothing is
        taken from the queue while the ledger refuses its first frame."""
        pieces, n, r = plan(peer.queue.first().data, self.radio.max_packet, self.arq.parity_ratio)
        duty = peer.duty
        if duty is not None and (duty.nack or duty.resend is not None):
            duty = None  # those go on their own: a NACK, or our REPLY again (not just an ACK)
        ack = duty.base & 0xFFFF if duty is not None else None
        if not self._fits(overhead(n > 1, ack is not None) + len(pieces[0]), now):
            return False
        message = peer.queue.pop()
        if duty is not None and duty.answer and message.priority is Priority.ANSWER and n == 1:
            return self._reply(peer, duty, message, now, events)
        frames: list[bytes] = []
        base = -1
        for i, piece in enumerate(pieces):
            counter = self._take(peer, events)
            base = counter if i == 0 else base
            frag = Fragment(i, n, r) if n > 1 else None
            f = Frame(FrameType.DATA, self.direction, peer.address, counter, piece, frag, ack)
            frames.append(seal(replace(f, answer=message.answer), peer.key))
        if ack is not None:
            peer.duty = None
            peer.stats.piggybacked += 1
        inf = InFlight(message, base, frames, n, list(range(len(frames))))
        peer.inflight = inf
        self._send_position(peer, inf, now, events)
        return True
