"""The simulator: radios on pseudo-terminals, one thread, one clock (docs/lora.md, "Simulator").

:class:`Simulator` creates ``radios`` simulated modems, each behind a :class:`~.pty.PtyPort`
(paths :attr:`Simulator.paths`), joined by a :class:`~.channel.Channel`, and runs them in one
daemon thread: a selector over the ptys and a timer heap. All simulator state is changed in
that thread only; the public methods (any thread) hand their work to it and wait for it.

Time: the radio clock (:meth:`Simulator.clock`, seconds) runs ``rate`` times as fast as the
wall clock (``rate=1`` is real time); time on air, timed reception, duty-cycle hours are radio
time; a transmission of T seconds on air takes T / ``rate`` wall seconds. Link layers above
the drivers must take the same clock and rate (the radio adapter's ``clock`` and ``rate``).
The serial lines themselves are instantaneous.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import queue
import random
import selectors
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar, cast

from .channel import Channel, Link, Propagation, Transmission
from .dutycycle import DutyCycleMonitor, Violation
from .emulator import Emulator
from .pty import PtyPort

__all__ = ["Simulator", "SimRadio", "EMULATORS"]

log = logging.getLogger("ocpp_iot.transports.lora.sim")
T = TypeVar("T")

#: modem name -> (emulator factory taking (radio, **options)); filled by the emulator modules
EMULATORS: dict[str, Callable[..., Emulator]] = {}


class SimRadio:
    """One simulated modem: its port, position, emulator and counters."""

    def __init__(
        self,
        sim: Simulator,
        index: int,
        kind: str,
        path: str,
        position: tuple[float, float],
        options: dict[str, Any],
    ) -> None:
        self.sim = sim
        self.index = index
        self.kind = kind
        self.name = f"{kind}-{index}"
        self.position = position
        self.port = PtyPort(path)
        self.counts: Counter[str] = Counter()
        self.on_air: deque[Transmission] = deque()
        self.muted = False
        self.emulator = EMULATORS[kind](self, **options)

    @property
    def path(self) -> str:
        return self.port.path

    def hears(self, tx: Transmission) -> bool:
        return not self.muted and self.emulator.hears(tx)

    def write(self, data: bytes) -> None:
        if not self.muted:
            self.counts["serial_out"] += len(data)
            self.port.write(data)

    def host_bytes(self, data: bytes) -> None:
        self.counts["serial_in"] += len(data)
        if not self.muted:
            self.emulator.host_bytes(data)

    def prune(self, now: float) -> None:
        while self.on_air and self.on_air[0].end < now - 120.0:
            self.on_air.popleft()


class Simulator:
    """Simulated modems on ptys (module docstring). ``modem``: one kind for all radios or one
    per radio (``"rak3172"``, ``"rylr998"``, ``"rylr896"``, ``"e32"``, ``"e22"``);
    ``options``: emulator options for every radio, ``radio_options`` per radio (merged over
    them); ``positions`` in metres (default: on a line, ``spacing`` apart)."""

    def __init__(
        self,
        modem: str | Sequence[str] = "rak3172",
        radios: int = 2,
        *,
        directory: str | None = None,
        rate: float = 1.0,
        loss: float = 0.0,
        capture_db: float | None = None,
        seed: int = 0,
        spacing: float = 100.0,
        positions: Sequence[tuple[float, float]] | None = None,
        options: dict[str, Any] | None = None,
        radio_options: Sequence[dict[str, Any]] | None = None,
        propagation: dict[str, float] | None = None,
    ) -> None:
        from . import ebyte, rak3172, reyax  # noqa: F401  (they register their emulators)

        kinds = [modem] * radios if isinstance(modem, str) else list(modem)
        for kind in kinds:
            if kind not in EMULATORS:
                raise ValueError(f"no simulated modem {kind!r}: one of {', '.join(EMULATORS)}")
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.kinds = kinds
        self.rate = rate
        self.rng = random.Random(seed)
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="lora-sim-")
        os.makedirs(self.directory, exist_ok=True)
        self._wall0 = time.time()
        self._mono0 = time.monotonic()
        self.radios: list[SimRadio] = []
        self.channel = Channel(
            self.radios,
            self.rng,
            loss=loss,
            capture_db=capture_db,
            propagation=Propagation(self.rng, **(propagation or {})),
        )
        self.duty = DutyCycleMonitor()
        #: exceptions raised inside the simulator's thread (a bug there; the tests check it)
        self.errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event]]
        self._jobs = queue.SimpleQueue()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for i, kind in enumerate(kinds):
            pos = positions[i] if positions is not None else (i * spacing, 0.0)
            opts = {**(options or {}), **(radio_options[i] if radio_options else {})}
            radio = SimRadio(self, i, kind, os.path.join(self.directory, f"{kind}-{i}"), pos, opts)
            self.radios.append(radio)
            self._watch(radio)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Simulator:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lora-sim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        for radio in self.radios:
            radio.port.close()
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- time ---------------------------------------------------------------------------------

    def clock(self) -> float:
        """Radio time in seconds (starts at the wall-clock time, runs ``rate`` times as fast)."""
        return self._wall0 + (time.monotonic() - self._mono0) * self.rate

    def after(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the simulator's thread ``delay`` radio seconds from now."""
        self._timer(time.monotonic() + max(0.0, delay) / self.rate, fn)

    def after_real(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the simulator's thread ``delay`` wall seconds from now."""
        self._timer(time.monotonic() + max(0.0, delay), fn)

    def _timer(self, deadline: float, fn: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (deadline, next(self._seq), fn))
        if threading.current_thread() is not self._thread:
            self._wake()

    # -- the public controls (any thread) -----------------------------------------------------

    @property
    def paths(self) -> list[str]:
        """The serial port of each radio (stable symlinks to ptys)."""
        return [r.path for r in self.radios]

    def radio(self, which: int | str) -> SimRadio:
        if isinstance(which, int):
            return self.radios[which]
        return next(r for r in self.radios if r.name == which or r.path == which)

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` in the simulator's thread and return its result."""
        if self._thread is None or threading.current_thread() is self._thread:
            with self._lock:
                return fn()
        box: list[Any] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError("the simulator's thread did not answer")
        if isinstance(box[0], BaseException):
            raise box[0]
        return cast(T, box[0])

    def inject(self, which: int | str, data: bytes) -> None:
        """Write raw bytes to the host of a radio (noise on its serial line)."""
        r = self.radio(which)
        self.call(lambda: r.port.write(data))

    def interleave(
        self, which: int | str, payload: bytes, rssi: float = -60.0, snr: float = 8.0
    ) -> None:
        r = self.radio(which)
        self.call(lambda: r.emulator.interleave(payload, rssi, snr))

    def mute(self, which: int | str, muted: bool = True) -> None:
        """A hung modem: it ignores the host and writes nothing (and hears nothing)."""
        r = self.radio(which)

        def go() -> None:
            r.muted = muted

        self.call(go)

    def reboot(self, which: int | str) -> None:
        r = self.radio(which)

        def go() -> None:
            r.muted = False
            r.emulator.reboot()

        self.call(go)

    def hang(self, which: int | str, seconds: float) -> None:
        """Hang now; restart (a watchdog) after ``seconds`` wall seconds."""
        self.mute(which)
        self.after_real(seconds, lambda: self.reboot(which))

    def unplug(
        self, which: int | str, seconds: float | None = None, *, reboot: bool = True
    ) -> None:
        """The port disappears; with ``seconds`` it comes back (wall seconds) at the same path,
        the modem restarted (``reboot``) as by a power cycle."""
        r = self.radio(which)

        def go() -> None:
            self._unwatch(r)
            r.port.vanish()

        self.call(go)
        if seconds is not None:
            self.after_real(seconds, lambda: self.replug(which, reboot=reboot))

    def replug(self, which: int | str, *, reboot: bool = True) -> None:
        r = self.radio(which)

        def go() -> None:
            r.port.appear()
            self._watch(r)
            if reboot:
                r.muted = False
                r.emulator.reboot()

        self.call(go)

    def set_link(self, a: int | str, b: int | str, *, both_ways: bool = True, **link: Any) -> None:
        """Fix RSSI/SNR/loss between two radios (``rssi=``, ``snr=``, ``loss=``)."""
        ra, rb = self.radio(a), self.radio(b)
        self.call(
            lambda: self.channel.set_link(ra.name, rb.name, Link(**link), both_ways=both_ways)
        )

    def set_loss(self, loss: float) -> None:
        def go() -> None:
            self.channel.loss = loss

        self.call(go)

    def counts(self) -> Counter[str]:
        return self.call(lambda: Counter(self.channel.counts))

    def transmissions(self) -> list[Transmission]:
        return self.call(lambda: list(self.channel.log))

    @property
    def violations(self) -> list[Violation]:
        return self.call(lambda: list(self.duty.violations))

    def check_duty_cycle(self) -> None:
        """``DutyCycleExceeded`` if any radio broke its sub-band's budget."""
        self.call(self.duty.check)

    # -- for the emulators (simulator thread) ------------------------------------------------

    def start_transmission(self, radio: SimRadio, **params: Any) -> Transmission:
        now = self.clock()
        radio.prune(now)
        tx = self.channel.begin(radio, now=now, **params)
        radio.counts["tx"] += 1
        self.after(tx.end - now, lambda: self._end_transmission(tx))
        return tx

    def _end_transmission(self, tx: Transmission) -> None:
        now = self.clock()

        def deliver(r: SimRadio, rssi: float, snr: float) -> bool:
            if r.emulator.family != tx.family:
                return False
            return r.emulator.received(tx, rssi, snr)

        self.channel.end(tx, now, deliver)
        self.duty.record(tx.sender.name, tx.frequency_hz, tx.bandwidth_hz, tx.start, tx.end)
        tx.sender.counts["tx_airtime_ms"] += round(tx.airtime * 1000)
        tx.sender.emulator.tx_end(tx)

    # -- the thread ---------------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:  # full (it will wake anyway) or closed
            pass

    def _watch(self, radio: SimRadio) -> None:
        if radio.port.master is not None:
            self._selector.register(radio.port.master, selectors.EVENT_READ, radio)

    def _unwatch(self, radio: SimRadio) -> None:
        if radio.port.master is not None:
            try:
                self._selector.unregister(radio.port.master)
            except (KeyError, ValueError):
                pass

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # a bug in the simulator: keep it, keep running
            self.errors.append(exc)
            log.exception("lora-sim: internal error")
            return exc

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                timeout = (self._timers[0][0] - time.monotonic()) if self._timers else 0.5
            try:
                events = self._selector.select(min(0.5, max(0.0, timeout)))
            except (OSError, ValueError):  # a pty closed under select: look again
                events = []
            with self._lock:
                for key, _ in events:
                    if key.data is None:
                        try:
                            os.read(self._wake_r, 4096)
                        except OSError:
                            pass
                        continue
                    radio: SimRadio = key.data
                    data = self._guard(radio.port.read)
                    if isinstance(data, bytes) and data:
                        self._guard(partial(radio.host_bytes, data))
                while True:
                    try:
                        fn, box, done = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    try:
                        box.append(fn())
                    except BaseException as exc:
                        box.append(exc)
                    done.set()
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn = heapq.heappop(self._timers)
                    self._guard(fn)
