"""One serial port for an asyncio driver: pyserial, a reader thread, writes off the loop.

pyserial is blocking. A thread per port reads (``read`` with a short timeout, so that it sees
a stop request) and hands each chunk to the event loop with ``call_soon_threadsafe``; writes
run on a one-thread executor of the port's own, so they keep their order and never block the
loop (a 500-byte command takes 43 ms at 115200 baud). When the port fails (a USB adapter
re-enumerated, a pseudo-terminal closed: pyserial raises ``SerialException`` or ``OSError``)
the reader calls ``on_lost`` once, on the loop, and ends; the driver reopens. All callbacks
run in the loop's thread.

Any pyserial URL works (``/dev/ttyUSB0``, a pty path, ``rfc2217://``, ``socket://``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import serial  # type: ignore[import-untyped]  # pyserial ships no type information

__all__ = ["SerialPort"]


class SerialPort:
    """An open serial port (see module docstring). ``open`` and ``close`` block: call them
    through :meth:`open_async` / :meth:`close_async` from the loop."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int,
        on_data: Callable[[bytes], None],
        on_lost: Callable[[BaseException], None],
        loop: asyncio.AbstractEventLoop,
        read_timeout: float = 0.05,
        write_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.baudrate = baudrate
        self._on_data = on_data
        self._on_lost = on_lost
        self._loop = loop
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._port: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lora-write")

    @property
    def is_open(self) -> bool:
        return self._port is not None and not self._stop.is_set()

    # -- lifecycle (blocking) ---------------------------------------------------------------

    def open(self) -> None:
        """Open the port and start the reader (``SerialException``/``OSError`` if missing)."""
        port = serial.serial_for_url(
            self.url,
            baudrate=self.baudrate,
            timeout=self._read_timeout,
            write_timeout=self._write_timeout,
        )
        self._port = port
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._read_loop, args=(port,), name=f"lora-read {self.url}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        port, self._port = self._port, None
        thread, self._thread = self._thread, None
        if port is not None:
            cancel = getattr(port, "cancel_read", None)
            if cancel is not None:
                try:
                    cancel()
                except Exception:  # a port already gone
                    pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        if port is not None:
            try:
                port.close()
            except Exception:  # closing a vanished device may fail: it is closed anyway
                pass

    async def open_async(self) -> None:
        await self._loop.run_in_executor(self._writer, self.open)

    async def close_async(self) -> None:
        await self._loop.run_in_executor(self._writer, self.close)

    def shutdown(self) -> None:
        """Close, and end the writer thread (the port object cannot be used again)."""
        self.close()
        self._writer.shutdown(wait=False)

    # -- I/O --------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` (``SerialException``/``OSError`` if the port fails)."""
        port = self._port
        if port is None or self._stop.is_set():
            raise serial.SerialException(f"{self.url} is not open")
        await self._loop.run_in_executor(self._writer, port.write, data)

    def _read_loop(self, port: Any) -> None:
        while not self._stop.is_set():
            try:
                data = port.read(port.in_waiting or 1)
            except Exception as exc:  # SerialException, OSError, or pyserial's own slips
                if not self._stop.is_set():
                    self._call(self._lost, exc)
                return
            if data:
                self._call(self._on_data, bytes(data))

    def _lost(self, exc: BaseException) -> None:
        if self._port is not None and not self._stop.is_set():
            self._stop.set()
            self._on_lost(exc)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stop.set()
