"""The asyncio shell around one :class:`~.station.StationMachine`: it reads the clock, moves frames
between the machine and a :class:`~ocpp_iot.transports.link.StationLink`, and sleeps until the
machine's next wake-up. Nothing OCPP-specific happens here.

Frames are compact CBOR by default (``encoding="cbor"``, what the bridge reads on ``up``), or
OCPP-J text (``"json"``, for a back end or tool that wants JSON). A frame from the back end is
decoded by what it is (CBOR, or JSON when the link says so or it looks like JSON), whatever the
station sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from ..codecs import DecodeError, cbor, ocppj
from ..rpc import Call, Frame
from ..transports.link import FrameReceived, LinkDown, LinkUp, StationLink
from .station import StationMachine

__all__ = ["Encoding", "StationRuntime", "decode_frame", "encode_frame", "steady_clock"]

log = logging.getLogger(__name__)

Encoding = Literal["cbor", "json"]

#: events a stopping runtime takes in at most (see StationRuntime._answer_received)
_DRAIN_LIMIT = 1000


def steady_clock() -> Callable[[], float]:
    """Epoch seconds that never step back: the wall clock read once, then the monotonic clock.

    A Pi has no real-time clock; NTP may step its wall clock, backwards too, and the station
    machine and the hardware seam need a ``now`` that only moves forward. The messages' timestamps
    do not suffer: they are on the back end's clock, from the offset each BootNotification and
    Heartbeat answer gives."""
    wall, mono = time.time(), time.monotonic()
    return lambda: wall + (time.monotonic() - mono)


def encode_frame(frame: Frame, version: str, encoding: Encoding) -> bytes:
    return ocppj.encode(frame) if encoding == "json" else cbor.encode(frame, version)


def decode_frame(data: bytes, version: str, *, json: bool = False) -> Frame:
    """A frame from the back end; ``DecodeError`` if it is neither CBOR nor OCPP-J."""
    if json or ocppj.looks_like_ocppj(data):
        return ocppj.decode(data, version)
    got_version, frame = cbor.decode(data)
    if got_version != version:
        raise DecodeError(f"frame for OCPP {got_version}, this station speaks {version}")
    return frame


class StationRuntime:
    """Runs ``machine`` over ``link`` until :meth:`stop` or a reset (see :meth:`run`)."""

    def __init__(
        self,
        machine: StationMachine,
        link: StationLink,
        *,
        encoding: Encoding = "cbor",
        clock: Callable[[], float] | None = None,
        rate: float = 1.0,
        on_frame: Callable[[str, Frame], None] | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.machine = machine
        self.link = link
        self.encoding: Encoding = encoding
        self.clock = clock if clock is not None else steady_clock()
        #: clock seconds per wall second (1; a test's accelerated clock: the radio simulator's)
        self.rate = rate
        self.on_frame = on_frame  #: ("up" | "down", frame): for logs and tests
        # what run() waits on between two turns; resolved by a frame or link event, stop() or
        # the machine's timer. A bare future, not an Event and a Task per turn: a thousand
        # simulated stations share one process, and each Event holds a deque (760 B)
        self._waiting: asyncio.Future[None] | None = None
        self._stop: str | None = None
        self.frames_in = self.frames_out = 0

    def stop(self, how: str = "stop") -> None:
        """Ask :meth:`run` to return: ``"stop"`` ends at once, ``"drain"`` ends the
        transactions first and returns once their last messages are answered."""
        self._stop = how
        self._wake_up()

    def _fits(self, action: str, payload: dict[str, Any]) -> bool:
        """Whether a CALL of ``payload`` fits the link's largest frame (a LoRa radio's), its
        message id as long as any this station makes (short counters: 8 characters is ample)."""
        limit = self.link.max_frame
        if limit is None:  # a link without a limit: nothing to encode
            return True
        frame = Call("zzzzzzzz", action, payload)
        return len(encode_frame(frame, self.machine.version, self.encoding)) <= limit

    def _wake_up(self, *_: object) -> None:
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def run(self, boot_reason: str = "PowerUp") -> str | None:
        """Run until stopped (returns ``None``) or reset (returns the reset type: the caller
        restarts the station, as a charger reboots). The link is closed on return."""
        m = self.machine
        m.start(self.clock(), boot_reason)
        await self.link.open()
        m.frame_fits = self._fits if self.link.max_frame is not None else None
        loop = asyncio.get_running_loop()
        receiving: asyncio.Task[object] = self._receive()
        draining = False
        try:
            while True:
                now = self.clock()
                if self._stop == "stop":
                    return None
                if self._stop == "drain" and not draining:
                    draining = True
                    m.stop_transactions(now)
                m.tick(now)
                self._flush()
                if m.restart_due is not None:
                    return m.restart_due
                if draining and m.settled:
                    return None
                # the machine's wake-up is on ``clock``; asyncio waits in wall seconds
                delay = max(0.0, m.next_wakeup(now) - self.clock()) / self.rate
                # a stop asked for during this turn (a callback of tick or flush) is seen now,
                # not after the delay: nothing was waiting for it to wake
                stopping = self._stop == "stop" or (self._stop == "drain" and not draining)
                if not receiving.done() and not stopping:
                    self._waiting = loop.create_future()
                    timer = loop.call_later(delay, self._wake_up)
                    try:
                        await self._waiting
                    finally:
                        timer.cancel()
                        self._waiting = None
                if receiving.done():
                    try:
                        event = receiving.result()
                    except EOFError:
                        return None
                    self._on_link(event)
                    receiving = self._receive()
        finally:
            if self._stop is not None:  # stopped (SIGTERM): not a reset, nor a closed link
                receiving = await self._answer_received(receiving)
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, EOFError):
                await receiving
            self._flush()
            await self.link.close()

    async def _answer_received(self, receiving: asyncio.Task[object]) -> asyncio.Task[object]:
        """Take in what the link has already received when a stop comes, and answer it while
        the link is up: the link acknowledged those frames on arrival (MQTT QoS 1: the broker
        counts them delivered, a persistent session does not give them again), so a CALL left
        in the inbox would never be answered. Nothing is waited for: once the inbox is empty
        (or ``_DRAIN_LIMIT`` events were taken, or the link went down) the run ends. A reset
        does not do this: a charger that reboots loses what it had not handled, as over
        OCPP-J, and the back end's CALL times out. Returns the receive still pending."""
        for _ in range(_DRAIN_LIMIT):
            for _turn in range(3):  # a receive with an event ready finishes in a turn or two
                if receiving.done():
                    break
                await asyncio.sleep(0)
            if not receiving.done() or receiving.cancelled() or receiving.exception():
                break
            event = receiving.result()
            self._on_link(event)
            receiving = self._receive()
            if isinstance(event, LinkDown) or not self.link.up:
                break
        return receiving

    def _receive(self) -> asyncio.Task[object]:
        receiving: asyncio.Task[object] = asyncio.ensure_future(self.link.receive())
        receiving.add_done_callback(self._wake_up)
        return receiving

    def _on_link(self, event: object) -> None:
        m, now = self.machine, self.clock()
        if isinstance(event, LinkUp):
            m.link_up(now)
        elif isinstance(event, LinkDown):
            m.link_down(now)
        elif isinstance(event, FrameReceived):
            try:
                frame = decode_frame(event.data, m.version, json=event.json)
            except DecodeError as exc:
                log.warning("%s: undecodable frame from the back end: %s", m.station_id, exc)
                return
            self.frames_in += 1
            if self.on_frame is not None:
                self.on_frame("down", frame)
            m.receive(frame, now)
        self._flush()

    def _flush(self) -> None:
        m = self.machine
        for frame in m.take_frames():
            if not self.link.up:
                continue  # the machine resends what matters after the next LinkUp
            self.frames_out += 1
            if self.on_frame is not None:
                self.on_frame("up", frame)
            self.link.send(
                encode_frame(frame, m.version, self.encoding), json=self.encoding == "json"
            )
