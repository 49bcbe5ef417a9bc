"""One process at a time on a data folder: ``node.lock`` in it, held with ``flock``.

Two processes on one station's files would hand out the same message ids and run the same
transactions twice; a process that moves a station's queue out of another's store must not do
it under that process. ``charger-node run`` holds its data folder's lock while it runs,
``charger-node simulate`` the lock of the folder of its shared store; moving a queue takes the
lock of the folder it leaves for the time of the move. The kernel drops a ``flock`` when its
holder dies, so a killed process leaves nothing to clean up; the file keeps the last holder's
pid, for the error message only.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["DataDirInUse", "DirLock", "LOCK_NAME"]

LOCK_NAME = "node.lock"


class DataDirInUse(OSError):
    """The folder's lock is held by another process (or another holder in this one)."""

    def __init__(self, folder: Path, holder: str) -> None:
        self.folder = folder
        self.holder = holder
        who = f"process {holder}" if holder else "another process"
        super().__init__(f"{folder} is in use by {who} (its {LOCK_NAME} is locked)")


class DirLock:
    """The lock of ``folder`` (created if missing); :meth:`acquire` never waits."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirLock:
        """Take the lock or raise :class:`DataDirInUse` at once."""
        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DataDirInUse(self.folder, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
