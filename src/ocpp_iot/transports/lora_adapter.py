"""The asyncio loop around one LoRa :class:`~.lora.Endpoint` and one :class:`~.lora.modem.Modem`:
what both the charger's :class:`~.lora_link.LoraStationLink` and the gateway
(:mod:`ocpp_iot.bridge.lora_gateway`) run (the loop of endpoint.py's docstring).

- every packet the modem receives goes to :meth:`Endpoint.receive`;
- :meth:`RadioAdapter.send` queues a message (:meth:`Endpoint.send`), synchronously;
- one driver task calls :meth:`Endpoint.poll` when :meth:`Endpoint.next_deadline` comes (or
  something new happened) and hands each :class:`~.lora.Transmit` to the modem, one at a time,
  in order; a :class:`~.lora.modem.ModemError` loses that frame (the ARQ resends it like any
  lost frame);
- every other event goes to ``on_event`` at once, in order, in the loop's thread. A
  :class:`~.lora.PersistState` with ``urgent`` is handled there before the frame after it
  reaches the modem (transmissions only leave from the driver task, after the handler ran).
  If that handler raises (a full disk, a read-only remount), the adapter fails closed: no frame
  reaches the modem until the write succeeds (retried with a growing delay). The frames sealed
  meanwhile use counters the state on disk does not cover; sent and then forgotten by a restart,
  their counters would seal other frames again (an AES-CCM nonce used twice). They are held
  back as lost frames, which the ARQ resends once the state is written.

The modem is opened in the background and opened again after a failure, with a growing delay
(``on_open`` runs after each successful open, ``on_lost`` when an open modem ended). Time is
``clock()`` in radio seconds; ``rate`` radio seconds pass per wall second (1 for real radios;
tests run faster, see :func:`~.lora.memory_radio.scaled_clock`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .lora import Endpoint, Event, PersistState, Priority, Transmit
from .lora.modem import Modem, ModemError

__all__ = ["RadioAdapter"]

log = logging.getLogger("ocpp_iot.transports.lora")


class RadioAdapter:
    """Runs ``endpoint`` over ``modem`` (module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        modem: Modem,
        on_event: Callable[[Event], None],
        *,
        clock: Callable[[], float] = time.time,
        rate: float = 1.0,
        name: str = "lora",
        on_open: Callable[[], None] | None = None,
        on_lost: Callable[[], None] | None = None,
        reopen_delays: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.endpoint = endpoint
        self.modem = modem
        self.on_event = on_event
        self.on_open = on_open
        self.on_lost = on_lost
        self.clock = clock
        self.rate = rate
        self.name = name
        self.reopen_delays = reopen_delays
        self.is_open = False
        #: what happened to the modem: opens, failed opens, frames it refused, frames sent
        self.counts: collections.Counter[str] = collections.Counter()
        self._tx: collections.deque[Transmit] = collections.deque()
        self._transmitting = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: an urgent state write that failed: nothing is transmitted until it is done
        self._unwritten: PersistState | None = None
        self._write_delay = reopen_delays[0]
        self._write_at = 0.0  #: time.monotonic() of the next attempt

    # -- control ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the modem (in the background, until it opens) and run."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop the tasks and close the modem (a frame on air is let finish)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.is_open:
            self.is_open = False
            with contextlib.suppress(Exception):
                await self.modem.close()

    def kill(self) -> None:
        """Stop at once, as a power cut: nothing more is sent, handled or written."""
        self._stopping = True
        self.on_event = lambda ev: None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.is_open:
            self.is_open = False
            asyncio.ensure_future(self._close_quietly())

    async def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            await self.modem.close()

    @property
    def idle(self) -> bool:
        """Nothing queued for the modem (the endpoint may still wait for acknowledgements)."""
        return not self._tx and not self._transmitting

    # -- inputs -------------------------------------------------------------------------------

    def send(
        self,
        address: int,
        data: bytes,
        *,
        priority: Priority = Priority.CALL,
        answer: bool = False,
        tag: Any = None,
    ) -> None:
        """Queue one message for ``address`` (``ValueError`` if it is too long)."""
        events = self.endpoint.send(
            address, data, self.clock(), priority=priority, answer=answer, tag=tag
        )
        self._handle(events)

    def poke(self) -> None:
        """Make the driver look again (after the endpoint was changed from outside)."""
        self._wake.set()

    def _handle(self, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Transmit):
                if self._unwritten is not None:  # fail closed (module docstring)
                    self.counts["withheld"] += 1
                    continue
                self._tx.append(ev)
                self._wake.set()
            elif isinstance(ev, PersistState):
                self._persist(ev)
            else:
                self.on_event(ev)

    @property
    def withholding(self) -> bool:
        """An urgent counter-state write failed: no frame goes on air until it succeeds."""
        return self._unwritten is not None

    def _persist(self, ev: PersistState) -> None:
        try:
            self.on_event(ev)  # writes the whole state: every reservation so far
        except Exception as exc:
            self.counts["state_write_failures"] += 1
            if not ev.urgent:  # only a received frame's mark: a restart may take it again
                log.warning("%s: counter state not written (%s)", self.name, exc)
            elif self._unwritten is None:
                log.error("%s: the counter state cannot be written (%s): nothing is "
                          "transmitted until it is", self.name, exc)  # fmt: skip
                self._unwritten = ev
                self._write_delay = self.reopen_delays[0]
                self._write_at = time.monotonic() + self._write_delay
            return
        if self._unwritten is not None and ev.urgent:  # only a durable (fsynced) write counts
            self._unwritten = None
            log.warning("%s: counter state written: transmitting again", self.name)

    def _write_withheld(self) -> None:
        """Try the failed urgent write again when its time has come."""
        ev = self._unwritten
        if ev is None or time.monotonic() < self._write_at:
            return
        self._write_delay = min(self._write_delay * 2, self.reopen_delays[1])
        self._write_at = time.monotonic() + self._write_delay
        self._persist(ev)

    # -- the tasks ----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.reopen_delays[0]
        while not self._stopping:
            try:
                await self.modem.open()
            except Exception as exc:  # a missing port, a modem that does not answer
                self.counts["open_failures"] += 1
                log.warning("%s: cannot open the modem (%s): again in %.0f s", self.name, exc,
                            delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reopen_delays[1])
                continue
            delay = self.reopen_delays[0]
            log.info("%s: modem open", self.name)
            self.is_open = True
            self.counts["opens"] += 1
            if self.on_open is not None:
                self.on_open()
            receiver = asyncio.ensure_future(self._receive())
            driver = asyncio.ensure_future(self._drive())
            try:
                await asyncio.wait({receiver, driver}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (receiver, driver):
                    t.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await t
            if self._stopping:
                return
            # the modem ended (closed underneath us): close and open it again
            self.is_open = False
            if self.on_lost is not None:
                self.on_lost()
            with contextlib.suppress(Exception):
                await self.modem.close()
            log.warning("%s: the modem stopped: opening it again", self.name)
            await asyncio.sleep(delay)

    async def _receive(self) -> None:
        while True:
            try:
                rx = await self.modem.receive()
            except EOFError:
                return
            except Exception as exc:  # the driver recovers; do not spin if it cannot
                self.counts["receive_errors"] += 1
                log.warning("%s: receiving failed: %s", self.name, exc)
                await asyncio.sleep(0.1)
                continue
            self.counts["received"] += 1
            self._handle(self.endpoint.receive(rx.payload, self.clock()))

    async def _drive(self) -> None:
        idle_polls = 0
        while True:
            self._write_withheld()
            while self._tx:
                ev = self._tx.popleft()
                self._transmitting = True
                try:
                    await self.modem.transmit(ev.data)
                    self.counts["transmitted"] += 1
                except ModemError as exc:
                    self.counts["transmit_errors"] += 1
                    log.info("%s: a frame could not go (%s): the link layer resends", self.name,
                             exc)  # fmt: skip
                finally:
                    self._transmitting = False
            self._wake.clear()
            events = self.endpoint.poll(self.clock())
            self._handle(events)
            if self._tx:
                idle_polls = 0
                continue
            deadline = self.endpoint.next_deadline()
            wait = None if deadline is None else max(0.0, (deadline - self.clock()) / self.rate)
            if wait == 0.0:
                idle_polls = 0 if events else idle_polls + 1
                if idle_polls > 1:  # a deadline that poll did not act on: do not spin
                    wait = 0.001
            if self._unwritten is not None:
                retry = max(0.0, self._write_at - time.monotonic())
                wait = retry if wait is None else min(wait, retry)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
