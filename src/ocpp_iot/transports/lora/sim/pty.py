"""A pseudo-terminal that stands in for a modem's USB serial port, at a path that stays.

The simulator owns the master side; the driver opens the slave with pyserial exactly as it
opens ``/dev/ttyUSB0``. The path handed out is a symbolic link to the slave (``/dev/pts/N``),
so that the port can *disappear* (:meth:`PtyPort.vanish`: master and slave closed, the link
removed; the driver's reads fail as when a USB adapter re-enumerates) and come back at the same
path (:meth:`PtyPort.appear`: a new pty, the link pointed at it).

The slave is put in raw mode at once and the simulator keeps one descriptor of it open, so
nothing is echoed or translated before the driver opens it and the master never sees a hang-up
when the driver closes and reopens. The master is non-blocking: output nobody reads is dropped
(counted in :attr:`PtyPort.overruns`), as a UART drops bytes when the host is not listening.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tty

__all__ = ["PtyPort"]


class PtyPort:
    """One simulated serial port at ``path`` (a symlink this object maintains)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.master: int | None = None
        self._slave: int | None = None
        #: bytes written for the host that were dropped (nobody reading, buffer full)
        self.overruns = 0
        self.appear()

    @property
    def present(self) -> bool:
        return self.master is not None

    @property
    def device(self) -> str | None:
        """The pty slave the link points at now."""
        return os.ttyname(self._slave) if self._slave is not None else None

    def appear(self) -> None:
        """Create a new pty and point the link at it (no-op if present)."""
        if self.master is not None:
            return
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self._slave = master, slave
        tmp = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def vanish(self) -> None:
        """Close the pty and remove the link: the port is gone."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for fd in (self.master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self._slave = None

    close = vanish

    def read(self) -> bytes:
        """What the host wrote (``b""``: nothing now, or the port is gone)."""
        if self.master is None:
            return b""
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:  # no slave open: cannot happen while we hold one
                return b""
            raise

    def write(self, data: bytes) -> None:
        """Bytes for the host; what does not fit is dropped."""
        if self.master is None or not data:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                self.overruns += len(view)
                return
            except OSError:
                self.overruns += len(view)
                return
            view = view[n:]
