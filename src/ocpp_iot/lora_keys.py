"""LoRa station provisioning: each radio station's 16-bit address and 128-bit key, and the files
that keep them (docs/lora.md, "Gateway").

The gateway's *stations file* (``bridge add-station --lora`` writes it, ``bridge lora-gateway
--stations`` reads it) is JSON, mode 0600 (it holds every station's key)::

    {"format": 1, "stations": [{"id": "CP7", "address": 4660, "key": "<32 hex digits>"}]}

A station's node gets its own address and key once, printed by ``add-station --lora``, and keeps
the key in its configuration or a key file (32 hex digits, whitespace ignored). Addresses are
unique per file and drawn at random from 1..65534 (0 and 65535 are left out: they read as
"none" and "all" to people), so that two gateways in range of each other rarely share one.
Keys come from :func:`secrets.token_bytes`; a new key (``--rekey``) resets both ends' counters.

Also :func:`write_private` and :func:`read_json`: the atomic, durable JSON files the LoRa link
and the gateway keep their counter state in (a counter reused under one key breaks AES-CCM, so
a state file that exists but cannot be read is an error, never a fresh start).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .deploy import valid_station_id

__all__ = [
    "GATEWAY_STATE_NAME",
    "KEY_BYTES",
    "LoraStation",
    "default_stations_file",
    "gateway_state_file",
    "key_id",
    "load_stations",
    "parse_key",
    "provision",
    "read_json",
    "read_key_file",
    "save_stations",
    "write_private",
]

KEY_BYTES = 16
FORMAT = 1
#: the gateway's counter state file, next to the stations file unless told otherwise
GATEWAY_STATE_NAME = "lora-gateway-state.json"
#: addresses handed out (0 and 0xFFFF are never given)
ADDRESSES = range(1, 0xFFFF)


def parse_key(text: str) -> bytes:
    """A 128-bit key from 32 hex digits (spaces, newlines and a ``0x`` prefix ignored)."""
    digits = "".join(text.split())
    digits = digits[2:] if digits[:2].lower() == "0x" else digits
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise ValueError("a LoRa key is 32 hex digits") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"a LoRa key is 32 hex digits (16 bytes), not {len(key)} bytes")
    return key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The key in a key file (32 hex digits; ``#`` comment lines skipped)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return parse_key(" ".join(ln for ln in lines if not ln.lstrip().startswith("#")))


def key_id(key: bytes) -> str:
    """A short fingerprint of a key (not the key): tells state of an old key from the current."""
    return hashlib.sha256(b"ocpp-iot lora key id\0" + key).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class LoraStation:
    station_id: str
    address: int
    key: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF:
            raise ValueError(f"address {self.address} is not 16 bits")
        if len(self.key) != KEY_BYTES:
            raise ValueError("a LoRa key is 16 bytes")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.station_id, "address": self.address, "key": self.key.hex()}


def default_stations_file() -> Path:
    """``BRIDGE_LORA_STATIONS``, else ``/etc/ocpp-iot/lora-stations.json`` (root) or
    ``~/.config/ocpp-iot/lora-stations.json``."""
    env = os.environ.get("BRIDGE_LORA_STATIONS")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/etc/ocpp-iot/lora-stations.json")
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "ocpp-iot" / "lora-stations.json"


def gateway_state_file(stations_file: Path, given: str | None = None) -> Path:
    """The gateway's counter state file: ``given`` (its ``--state-file``), else
    ``BRIDGE_LORA_STATE_FILE``, else :data:`GATEWAY_STATE_NAME` beside ``stations_file``."""
    given = given or os.environ.get("BRIDGE_LORA_STATE_FILE")
    return Path(given) if given else stations_file.with_name(GATEWAY_STATE_NAME)


def load_stations(path: str | os.PathLike[str]) -> dict[str, LoraStation]:
    """The provisioned stations by id (``{}`` if the file does not exist); ``ValueError``
    naming the problem for a file that is not a stations file, or repeats an id or address."""
    data = read_json(path)
    if data is None:
        return {}
    if data.get("format") != FORMAT or not isinstance(data.get("stations"), list):
        raise ValueError(f"{path}: not a LoRa stations file (format {FORMAT})")
    out: dict[str, LoraStation] = {}
    addresses: dict[int, str] = {}
    for n, item in enumerate(data["stations"]):
        try:
            st = LoraStation(str(item["id"]), int(item["address"]), parse_key(str(item["key"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: station #{n + 1}: {exc}") from None
        if not valid_station_id(st.station_id):  # its topics: ocpp/{id}/up, .../status
            raise ValueError(f"{path}: station #{n + 1}: invalid station id {st.station_id!r}")
        if st.station_id in out:
            raise ValueError(f"{path}: station {st.station_id} appears twice")
        if st.address in addresses:
            raise ValueError(
                f"{path}: {st.station_id} and {addresses[st.address]} share address {st.address}"
            )
        out[st.station_id] = st
        addresses[st.address] = st.station_id
    return out


def save_stations(path: str | os.PathLike[str], stations: Mapping[str, LoraStation]) -> None:
    """Write the stations file atomically, mode 0600."""
    body = {"format": FORMAT, "stations": [s.to_json() for s in stations.values()]}
    write_private(path, body, durable=True)


def provision(
    path: str | os.PathLike[str],
    station_id: str,
    *,
    address: int | None = None,
    rekey: bool = False,
) -> LoraStation:
    """Add ``station_id`` to the stations file with a fresh random key and a free address
    (``address`` to choose it); ``rekey``: give a station already there a new key (same
    address, counters start over on both ends). ``ValueError`` if it exists (without
    ``rekey``) or the address is taken."""
    if not valid_station_id(station_id):
        raise ValueError(f"invalid station id {station_id!r}")
    stations = load_stations(path)
    old = stations.get(station_id)
    if old is not None and not rekey:
        raise ValueError(f"{station_id} is provisioned already (--rekey gives it a new key)")
    if old is None and rekey:
        raise ValueError(f"{station_id} is not provisioned: nothing to re-key")
    taken = {s.address: s.station_id for s in stations.values() if s.station_id != station_id}
    if address is None:
        address = old.address if old is not None else _free_address(taken)
    elif address in taken:
        raise ValueError(f"address {address} belongs to {taken[address]}")
    station = LoraStation(station_id, address, secrets.token_bytes(KEY_BYTES))
    stations[station_id] = station
    save_stations(path, stations)
    return station


def _free_address(taken: Mapping[int, str]) -> int:
    if len(taken) >= len(ADDRESSES):
        raise ValueError("every LoRa address is taken")
    while True:
        candidate = ADDRESSES[secrets.randbelow(len(ADDRESSES))]
        if candidate not in taken:
            return candidate


# -- small private JSON files ------------------------------------------------------------------


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` if there is no file. ``ValueError`` if the file
    exists but is no JSON object (never silently "no state": see the module docstring)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no JSON object")
    return data


def write_private(path: str | os.PathLike[str], data: Any, *, durable: bool) -> None:
    """Replace ``path`` with ``data`` as JSON, mode 0600, atomically (a temporary file renamed
    over it: a crash leaves the old file or the new one). ``durable``: fsync the file and its
    folder before returning (a power cut cannot undo it)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:  # mkstemp: already 0600
            json.dump(data, fh, separators=(",", ":"))
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
