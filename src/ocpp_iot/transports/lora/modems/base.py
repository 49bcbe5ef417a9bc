"""What the three serial modem drivers share: the lifecycle, the recovery, the command exchange.

:class:`SerialModem` implements :class:`~..modem.Modem` over a :class:`~.serial_port.
SerialPort`. A supervisor task owns the port: it opens it, has the driver configure the radio,
then watches; on trouble (the port failed, the modem stopped answering, the modem restarted on
its own) it closes the port, waits a growing delay (0.2 s doubling to 10 s by default),
reopens and configures again, for as long as the driver is open. Meanwhile ``transmit`` raises
:class:`~..modem.ModemError` at once (the link layer retries a lost frame anyway) and
``receive`` keeps waiting.

Everything the port delivers goes through the driver's framing (:mod:`.framing`) to
``_on_item``, which tells unsolicited events (a packet received, "sent", a restart banner)
from replies to the one command in flight (:meth:`SerialModem.command`): a packet that arrives
while a command waits for its answer is delivered like any other. Nothing the modem sends can
raise out of a callback; what is dropped is counted (:class:`ModemStats`,
:attr:`SerialModem.framing`).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..._backoff import Backoff
from ..arq import RadioConfig
from ..modem import ModemError, Received
from .framing import FramingStats
from .serial_port import SerialPort

__all__ = ["ModemRefused", "ModemStats", "SerialModem"]

log = logging.getLogger("ocpp_iot.transports.lora.modems")


class ModemRefused(ModemError):
    """The modem answered a command with an error status (``reply``: that status line)."""

    def __init__(self, command: bytes, reply: bytes) -> None:
        super().__init__(f"{command[:40]!r} refused: {reply!r}")
        self.command = command
        self.reply = reply


@dataclass
class ModemStats:
    """What a driver did and what it dropped (framing drops: :attr:`SerialModem.framing`)."""

    tx_packets: int = 0
    tx_bytes: int = 0
    tx_failed: int = 0  #: transmit calls that raised ModemError
    rx_packets: int = 0
    rx_bytes: int = 0
    rx_overflow: int = 0  #: packets dropped because nobody called receive() in time
    garbage_lines: int = 0  #: lines that were neither a reply nor an event
    bad_events: int = 0  #: receive events that could not be decoded
    unexpected_replies: int = 0  #: status lines with no command waiting
    refused: int = 0  #: commands the modem answered with an error
    reply_timeouts: int = 0  #: commands (or "sent" events) that never came
    restarts_seen: int = 0  #: banners / ready lines of a modem that restarted
    opens: int = 0  #: successful port opens
    open_failures: int = 0
    port_lost: int = 0  #: times the open port failed under us
    recoveries: int = 0  #: reopen-and-configure rounds after trouble
    configured: int = 0  #: successful configurations


class SerialModem(abc.ABC):
    """A LoRa modem on a serial port (module docstring). Subclasses implement
    :meth:`make_framer`, :meth:`configure`, :meth:`_transmit` and :meth:`_on_item`."""

    kind = "modem"
    max_payload: int = 255

    def __init__(
        self,
        port: str,
        radio: RadioConfig,
        *,
        baudrate: int = 115200,
        reply_timeout: float = 1.0,
        open_timeout: float = 10.0,
        reopen_delays: tuple[float, float] = (0.2, 10.0),
        keepalive: float | None = 60.0,
        max_timeouts: int = 2,
        partial_timeout: float = 1.0,
        rx_queue: int = 256,
        name: str | None = None,
    ) -> None:
        self.port = port
        self.radio = radio
        self.baudrate = baudrate
        self.reply_timeout = reply_timeout
        self.open_timeout = open_timeout
        self.reopen_delays = reopen_delays
        self.keepalive = keepalive
        self.max_timeouts = max_timeouts
        #: a partial line the modem left without its end this long is dropped
        self.partial_timeout = partial_timeout
        self.name = name or f"{self.kind} {port}"
        self.stats = ModemStats()
        self.framing = FramingStats()
        #: the largest payload ``transmit`` accepts (more than ``max_payload`` where the driver
        #: splits a packet itself)
        self.max_transmit = self.max_payload
        self._rx_queue_size = rx_queue
        self._queue: asyncio.Queue[Received | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._serial: SerialPort | None = None
        self._framer: Any = None
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._trouble_event = asyncio.Event()
        self._trouble_reason = ""
        self._pending: tuple[bytes, asyncio.Future[list[bytes]], list[bytes]] | None = None
        self._timeouts_in_row = 0
        self._last_error: BaseException | None = None
        self._last_traffic = 0.0
        self._last_restart = -1e9
        self._closed = True

    # -- the Modem protocol -------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """Open, configured and not recovering."""
        return not self._closed and self._ready.is_set()

    async def open(self) -> None:
        """Open the port and configure the radio; ``ModemError`` if that did not succeed
        within ``open_timeout`` (the driver is then closed again)."""
        if not self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._queue = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._ready = asyncio.Event()
        self._trouble_event = asyncio.Event()
        self._last_error = None
        self._task = asyncio.ensure_future(self._supervise())
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=self.open_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready in done:
            return
        ready.cancel()
        error = self._last_error
        await self.close()
        raise ModemError(
            f"{self.name}: not ready after {self.open_timeout:g} s"
            + (f" ({error})" if error else "")
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._trouble("closed")
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._disconnect()
        if self._queue is not None:
            if self._queue.full():
                self._queue.get_nowait()
            self._queue.put_nowait(None)

    async def transmit(self, payload: bytes) -> None:
        payload = bytes(payload)
        if not 1 <= len(payload) <= self.max_transmit:
            raise ModemError(f"{len(payload)} bytes: {self.name} sends 1..{self.max_transmit}")
        async with self._lock:
            if not self.is_ready:
                self.stats.tx_failed += 1
                raise ModemError(f"{self.name} is not ready ({self._trouble_reason or 'closed'})")
            try:
                await self._transmit(payload)
            except ModemError:
                self.stats.tx_failed += 1
                raise
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(payload)

    async def receive(self) -> Received:
        queue = self._queue
        if queue is None:
            raise EOFError(f"{self.name} is not open")
        item = await queue.get()
        if item is None:
            queue.put_nowait(None)  # for the next caller too
            raise EOFError(f"{self.name} is closed")
        return item

    # -- for the drivers ----------------------------------------------------------------------

    @abc.abstractmethod
    def make_framer(self) -> Any:
        """A fresh framer (an object with ``feed(data, now) -> list``), one per port open."""

    @abc.abstractmethod
    async def configure(self) -> None:
        """Bring the modem into the configured, listening state (the command lock is held)."""

    @abc.abstractmethod
    async def _transmit(self, payload: bytes) -> None:
        """Send one packet and wait until it is sent (the command lock is held)."""

    @abc.abstractmethod
    def _on_item(self, item: Any) -> None:
        """One line or frame from the framer."""

    async def probe(self) -> None:  # noqa: B027 (optional: a module that cannot be asked)
        """Check that the modem answers (the keepalive; the command lock is held)."""

    def _abort(self, exc: ModemError) -> None:  # noqa: B027 (optional)
        """Fail whatever the driver itself waits for (a "sent" event)."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    async def write(self, data: bytes) -> None:
        port = self._serial
        if port is None:
            raise ModemError(f"{self.name}: the port is not open")
        try:
            await port.write(data)
        except Exception as exc:  # SerialException, OSError, a write timeout
            self._trouble(f"writing failed: {exc}")
            raise ModemError(f"{self.name}: writing failed: {exc}") from exc

    async def command(self, text: bytes, timeout: float | None = None) -> list[bytes]:
        """Send one command line and wait for its final status; the lines before the status
        are returned. ``ModemRefused`` for an error status, ``ModemError`` for no answer
        (``max_timeouts`` in a row: the modem is reset). The caller holds the lock."""
        fut: asyncio.Future[list[bytes]] = self.loop.create_future()
        self._pending = (text, fut, [])
        try:
            await self.write(text + b"\r\n")
            try:
                lines = await asyncio.wait_for(fut, timeout or self.reply_timeout)
            except TimeoutError:
                self.note_timeout(f"no answer to {text[:24]!r}")
                raise ModemError(f"{self.name}: no answer to {text[:40]!r}") from None
        except ModemRefused:
            self.stats.refused += 1
            self._timeouts_in_row = 0
            raise
        finally:
            self._pending = None
        self._timeouts_in_row = 0
        return lines

    def note_timeout(self, what: str) -> None:
        self.stats.reply_timeouts += 1
        self._timeouts_in_row += 1
        if self._timeouts_in_row >= self.max_timeouts:
            self._trouble(f"the modem does not answer ({what})")

    def pending_command(self) -> bytes | None:
        return self._pending[0] if self._pending is not None else None

    def reply_line(self, line: bytes) -> bool:
        """A line that belongs to the command in flight (``False``: none waits)."""
        if self._pending is None or self._pending[1].done():
            return False
        self._pending[2].append(line)
        return True

    def finish(self, status: bytes, ok: bool) -> None:
        """The final status of the command in flight."""
        if self._pending is None or self._pending[1].done():
            self.stats.unexpected_replies += 1
            return
        text, fut, lines = self._pending
        if ok:
            fut.set_result(lines)
        else:
            fut.set_exception(ModemRefused(text, status))

    def deliver(self, payload: bytes, rssi: float | None, snr: float | None) -> None:
        queue = self._queue
        if queue is None or self._closed:
            return
        if queue.qsize() >= self._rx_queue_size:
            queue.get_nowait()
            self.stats.rx_overflow += 1
        queue.put_nowait(Received(payload, rssi, snr))
        self.stats.rx_packets += 1
        self.stats.rx_bytes += len(payload)

    def restarted(self, what: bytes) -> None:
        """The modem said it (re)started: configure it again if it was in use. (The lines of
        one banner, within a second, count once.)"""
        now = self.loop.time()
        if now - self._last_restart > 1.0:
            self.stats.restarts_seen += 1
        self._last_restart = now
        if self._ready.is_set():
            self._trouble(f"the modem restarted ({what[:40]!r})")

    def airtime_wait(self, size: int) -> float:
        """How long to wait for "sent" of a ``size``-byte packet: its time on air plus the
        reply timeout (real seconds; a faster simulator only answers sooner)."""
        return self.radio.airtime(min(size, 255)) + self.reply_timeout

    # -- internals ----------------------------------------------------------------------------

    def _trouble(self, reason: str) -> None:
        self._ready.clear()
        if not self._trouble_event.is_set():
            self._trouble_reason = reason
            self._trouble_event.set()
            if reason != "closed":
                log.warning("%s: %s", self.name, reason)
        exc = ModemError(f"{self.name}: {reason}")
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(exc)
        self._abort(exc)

    def _on_data(self, data: bytes) -> None:
        if self._closed or self._framer is None:
            return
        now = self.loop.time()
        self._last_traffic = now
        try:
            items: Iterable[Any] = self._framer.feed(data, now)
        except Exception:  # a framing bug must not stop the loop's callbacks
            log.exception("%s: framing failed", self.name)
            return
        for item in items:
            try:
                self._on_item(item)
            except Exception:
                self.stats.garbage_lines += 1
                log.exception("%s: could not handle %r", self.name, item)

    def _on_lost(self, exc: BaseException) -> None:
        self.stats.port_lost += 1
        self._trouble(f"the port failed: {exc}")

    async def _connect(self) -> None:
        self._framer = self.make_framer()
        port = SerialPort(
            self.port,
            baudrate=self.baudrate,
            on_data=self._on_data,
            on_lost=self._on_lost,
            loop=self.loop,
        )
        try:
            await port.open_async()
        except BaseException:
            self.stats.open_failures += 1
            port.shutdown()
            raise
        self._serial = port
        self.stats.opens += 1
        self._last_traffic = self.loop.time()

    async def _disconnect(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(Exception):
                await port.close_async()
            port.shutdown()

    async def _supervise(self) -> None:
        backoff = Backoff(*self.reopen_delays)
        first = True
        while not self._closed:
            self._trouble_event.clear()
            self._trouble_reason = ""
            self._timeouts_in_row = 0
            try:
                if not first:
                    self.stats.recoveries += 1
                first = False
                await self._connect()
                async with self._lock:
                    await self.configure()
                if self._trouble_event.is_set():
                    raise ModemError(self._trouble_reason)
                self.stats.configured += 1
                backoff.reset()
                self._ready.set()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a missing port, a refused or unanswered command
                self._last_error = exc
                log.info("%s: not ready: %s", self.name, exc)
            self._ready.clear()
            await self._disconnect()
            if self._closed:
                return
            await asyncio.sleep(backoff.next_delay())

    async def _watch(self) -> None:
        """Wait for trouble; probe the modem when it has been silent for ``keepalive``."""
        while True:
            if self.keepalive is None:
                await self._trouble_event.wait()
                return
            try:
                await asyncio.wait_for(self._trouble_event.wait(), self.keepalive)
                return
            except TimeoutError:
                pass
            if self.loop.time() - self._last_traffic < self.keepalive or self._lock.locked():
                continue
            async with self._lock:
                with contextlib.suppress(ModemError):
                    await self.probe()
