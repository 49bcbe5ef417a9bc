"""Deployment helpers for a mosquitto in front of the bridge: ACL, password hashes, user files.

Production code (``bridge add-station`` uses it); :mod:`ocpp_iot.testing` builds its test
brokers from it, never the other way round.

Where the password file lives by default (:func:`default_passwd_file`): ``BRIDGE_PASSWD_FILE``
if set, else ``/etc/mosquitto/ocpp/passwd`` for root, else ``~/.config/ocpp-iot/passwd``. Never
a file of the checkout: ``deploy/passwd`` is an example.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ACL_TEMPLATE",
    "MOSQUITTO_USER",
    "SYSTEM_DIR",
    "WrittenFile",
    "add_user",
    "default_passwd_file",
    "hash_password",
    "passwd_line",
    "render_acl",
    "valid_station_id",
]

#: The user mosquitto switches to when started as root (its default ``user`` setting).
MOSQUITTO_USER = "mosquitto"
#: Where root's ``bridge add-station`` keeps the broker's password file and ACL.
SYSTEM_DIR = Path("/etc/mosquitto/ocpp")

#: The ACL every deployment starts from (``deploy/acl`` is this text for the prefix ``ocpp``).
#: ``%u`` is the MQTT username, which for a station is its station id.
ACL_TEMPLATE = """\
# Mosquitto ACL for ocpp-iot (topic prefix: {prefix}).
#
# Stations log in with their station id as username. Each one may publish only its own
# frames and status, and read only what the bridge sends it.
pattern write {prefix}/%u/up
pattern write {prefix}/%u/status
pattern read {prefix}/%u/down

# The bridge reads and writes every topic under the prefix (frames, mirrors, calls, status).
user bridge
topic readwrite {prefix}/#

# Operators (`bridge call`, dashboards) call stations and watch the mirror and the state.
user operator
topic write {prefix}/+/json/call
topic read {prefix}/+/json/result
topic read {prefix}/+/json/up
topic read {prefix}/+/json/down
topic read {prefix}/+/json/state
topic read {prefix}/+/status

# The LoRa gateway (`bridge lora-gateway`) speaks for the radio stations it holds keys for:
# their frames and status up, what the bridge sends them down. (Mosquitto cannot tie it to
# that set of stations; list their topics one by one instead of + to do so.)
user lora-gw
topic write {prefix}/+/up
topic write {prefix}/+/status
topic read {prefix}/+/down
"""


def render_acl(prefix: str = "ocpp") -> str:
    return ACL_TEMPLATE.format(prefix=prefix)


def hash_password(password: str, *, iterations: int = 101, salt: bytes | None = None) -> str:
    """Mosquitto 2's ``$7$`` password hash (PBKDF2-SHA512), as ``mosquitto_passwd`` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def passwd_line(username: str, password: str) -> str:
    """One line of a mosquitto password file (``user:$7$...`` and a newline)."""
    if not username or ":" in username or "\n" in username:
        raise ValueError(f"invalid MQTT username {username!r}")
    return f"{username}:{hash_password(password)}\n"


def valid_station_id(station: str) -> bool:
    """A station id is its MQTT username and one topic level: no wildcards, separators, spaces;
    ``bridge`` is the bridge's own status topic."""
    return bool(station) and station != "bridge" and not any(c in station for c in "/+#: \t\n")


def default_passwd_file() -> Path:
    """``BRIDGE_PASSWD_FILE``, else ``/etc/mosquitto/ocpp/passwd`` (root) or
    ``~/.config/ocpp-iot/passwd``."""
    env = os.environ.get("BRIDGE_PASSWD_FILE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return SYSTEM_DIR / "passwd"
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "ocpp-iot" / "passwd"


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: Path
    mode: int
    group: str | None  # the group that may read it (mosquitto's), None if world-readable
    note: str = ""


def _mosquitto_gid() -> int | None:
    try:
        return grp.getgrnam(MOSQUITTO_USER).gr_gid
    except KeyError:
        return None


def _write_readable(path: Path, text: str) -> WrittenFile:
    """Write ``text`` to ``path`` atomically so that mosquitto can read it after a reload.

    Started as root, mosquitto drops to the ``mosquitto`` user before it (re)reads its password
    file and ACL: a 0600 root-owned file locks every client out on the next SIGHUP. The file
    gets mode 0640 with group ``mosquitto`` when that group exists (and we may give it to the
    file), else 0644.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    gid = _mosquitto_gid()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        mode, group, note = 0o644, None, ""
        if gid is not None:
            try:
                os.chown(tmp, -1, gid)
                mode, group = 0o640, MOSQUITTO_USER
            except PermissionError:
                note = f"cannot give {path} to group {MOSQUITTO_USER}: made it world-readable"
        else:
            note = f"no group {MOSQUITTO_USER} on this machine: {path} is world-readable"
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return WrittenFile(path, mode, group, note)


def add_user(
    passwd_file: str | os.PathLike[str],
    username: str,
    password: str,
    *,
    acl_file: str | os.PathLike[str] | None = None,
    prefix: str = "ocpp",
) -> list[WrittenFile]:
    """Add (or replace) ``username`` in a mosquitto password file, keeping the other users.

    With ``acl_file``, also write the ACL there (:func:`render_acl`) if it does not exist yet.
    Returns what was written. Reload mosquitto (SIGHUP) afterwards.
    """
    path = Path(passwd_file)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    lines = [ln for ln in lines if ln.strip() and not ln.startswith(username + ":")]
    lines = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
    lines.append(passwd_line(username, password))
    written = [_write_readable(path, "".join(lines))]
    if acl_file is not None and not Path(acl_file).exists():
        written.append(_write_readable(Path(acl_file), render_acl(prefix)))
    return written
