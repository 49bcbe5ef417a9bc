"""Start a real Mosquitto with the project's configuration, for tests, benchmarks and trials.

>>> with Mosquitto(users={"bridge": "pw", "CP1": "pw1"}) as broker:   # doctest: +SKIP
...     print(broker.url)                    # mqtt://127.0.0.1:<free port>
...     broker.restart()                     # stop (saving its persistence) and start again

The broker runs on a free loopback port in a temporary directory with persistence on,
``allow_anonymous false``, a password file and the ACL of ``deploy/acl`` (rendered for the
topic prefix). Station usernames are station ids.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from ..bridge.embedded import free_port
from ..deploy import ACL_TEMPLATE, hash_password, passwd_line, render_acl

__all__ = [
    "ACL_TEMPLATE",
    "Mosquitto",
    "MosquittoNotFound",
    "find_mosquitto",
    "free_port",
    "hash_password",
    "passwd_line",
    "render_acl",
]


class MosquittoNotFound(RuntimeError):
    pass


def find_mosquitto() -> str | None:
    """Path of the mosquitto executable (PATH, then the usual sbin locations), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in (
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
        "/opt/homebrew/sbin/mosquitto",
    ):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


class Mosquitto:
    """A mosquitto process on a free loopback port, in a temporary directory.

    ``users`` maps usernames to passwords (add more later with :meth:`add_user`, which makes
    the broker reload). ``restart`` keeps the port and the persistence database, so persistent
    sessions and their queued messages survive it.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        prefix: str = "ocpp",
        port: int | None = None,
        directory: str | os.PathLike[str] | None = None,
        executable: str | None = None,
        extra_config: str = "",
        verbose: bool = False,
        passwd_file: str | os.PathLike[str] | None = None,
    ) -> None:
        exe = executable or find_mosquitto()
        if exe is None:
            raise MosquittoNotFound("mosquitto is not installed (apt-get install mosquitto)")
        self.executable = exe
        self.prefix = prefix
        self.port = port or free_port()
        self.users: dict[str, str] = dict(users or {})
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="ocpp-mosquitto-"))
        self.extra_config = extra_config
        self.verbose = verbose
        #: an existing password file to use instead of one written from ``users``
        self.passwd_file = Path(passwd_file) if passwd_file is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    # -- files -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_files(self) -> None:
        d = self.directory
        (d / "data").mkdir(parents=True, exist_ok=True)
        if self.passwd_file is not None:
            (d / "passwd").write_text(self.passwd_file.read_text())
        else:
            (d / "passwd").write_text("".join(passwd_line(u, p) for u, p in self.users.items()))
        (d / "acl").write_text(render_acl(self.prefix))
        for name in ("passwd", "acl"):
            os.chmod(d / name, 0o600)
        lines = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to a user that cannot read d
        lines += [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {d / 'data'}/",
            "autosave_interval 1",
            "allow_anonymous false",
            f"password_file {d / 'passwd'}",
            f"acl_file {d / 'acl'}",
            "max_inflight_messages 1000",
            "max_queued_messages 100000",
            "max_keepalive 600",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if self.verbose:
            lines.append("log_type all")
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_config)

    def add_user(self, username: str, password: str) -> None:
        """Add (or change) a user; a running broker reloads its password file."""
        self.users[username] = password
        self._write_files()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)
            time.sleep(0.2)

    # -- process -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self._write_files()
        self.proc = subprocess.Popen(
            [self.executable, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {err}{self.log()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"mosquitto did not listen on port {self.port}: {self.log()}")

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the broker: SIGTERM (it saves its persistence database) or SIGKILL."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def restart(self, *, down_for: float = 0.0, kill: bool = False) -> None:
        self.stop(kill=kill)
        if down_for:
            time.sleep(down_for)
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
