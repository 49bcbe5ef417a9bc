"""The per-station record, its JSON value and its restoration from a published payload."""

from __future__ import annotations

import json
from typing import Any

from ...rpc import VERSIONS
from ._fields import (
    _UNKNOWN_EVSE,
    MAX_CONNECTORS,
    MAX_PENDING,
    MAX_TEXT,
    MAX_TOKENS,
    MAX_TRANSACTIONS,
    _dict,
    _int,
    _number,
    _str,
)
from ._meter import _meter
from ._time import _iso, _timestamp


class _Tx:
    __slots__ = ("id", "connector", "started", "authorized", "state", "energy", "power", "token")

    def __init__(self, tx_id: str | int | None) -> None:
        self.id = tx_id
        self.connector: int | None = None
        self.started: float | None = None
        self.authorized = False
        self.state: str | None = None
        self.energy: float | None = None
        self.power: float | None = None
        self.token: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connector": self.connector,
            "started": _iso(self.started),
            "authorized": self.authorized,
            "state": self.state,
            "energy_wh": self.energy,
            "power_w": self.power,
        }


class _Station:
    __slots__ = (
        "station",
        "status",
        "status_since",
        "version",
        "vendor",
        "model",
        "serial",
        "firmware",
        "boot_reason",
        "boot_status",
        "boot_at",
        "last_seen",
        "connectors",
        "transactions",
        "last_error",
        "up",
        "down",
        "dirty",
        "metered",
        "published_at",
        "pending",
        "tokens",
    )

    def __init__(self, station: str) -> None:
        self.station = station
        self.status = "unknown"
        self.status_since: float | None = None
        self.version: str | None = None
        self.vendor: str | None = None
        self.model: str | None = None
        self.serial: str | None = None
        self.firmware: str | None = None
        self.boot_reason: str | None = None
        self.boot_status: str | None = None
        self.boot_at: float | None = None
        self.last_seen: float | None = None
        # (connectorId,) in 1.6, (evseId, connectorId) in 2.x -> (status, error, since)
        self.connectors: dict[tuple[int, ...], tuple[str, str | None, float]] = {}
        # "<evseId>" / "<connectorId>" / "?" -> transaction
        self.transactions: dict[str, _Tx] = {}
        self.last_error: tuple[float, str] | None = None
        self.up = 0
        self.down = 0
        self.dirty = True  # a station not published yet
        self.metered = False  # only meter readings changed since the last publication
        self.published_at: float | None = None
        # message id of an unanswered CALL from the station -> what its answer needs
        self.pending: dict[str, tuple[Any, ...]] = {}
        self.tokens: dict[int, bool] = {}  # token hash -> accepted (latest answers)

    def to_json(self) -> dict[str, Any]:
        boot = None
        if self.boot_at is not None:
            boot = {
                "reason": self.boot_reason,
                "status": self.boot_status,
                "at": _iso(self.boot_at),
            }
        connectors = {
            "/".join(map(str, key)): {"status": status, "error": error, "since": _iso(since)}
            for key, (status, error, since) in sorted(self.connectors.items())
        }
        transactions = {
            key: self.transactions[key].to_json()
            for key in sorted(self.transactions, key=_tx_order)
        }
        last_error = None
        if self.last_error is not None:
            last_error = {"at": _iso(self.last_error[0]), "text": self.last_error[1]}
        return {
            "station": self.station,
            "status": self.status,
            "status_since": _iso(self.status_since),
            "version": self.version,
            "vendor": self.vendor,
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "boot": boot,
            "last_seen": _iso(self.last_seen),
            "connectors": connectors,
            "transactions": transactions,
            "last_error": last_error,
            "counts": {"up": self.up, "down": self.down},
        }

    # -- updates that mark the state changed only when a value really changes --

    def expect(self, message_id: str, context: tuple[Any, ...]) -> None:
        pending = self.pending
        if len(pending) >= MAX_PENDING and message_id not in pending:
            del pending[next(iter(pending))]  # the oldest: its answer was lost
        pending[message_id] = context

    def remember_token(self, token: int, accepted: bool) -> None:
        tokens = self.tokens
        tokens.pop(token, None)
        if len(tokens) >= MAX_TOKENS:
            del tokens[next(iter(tokens))]
        tokens[token] = accepted
        for tx in self.transactions.values():
            if tx.token == token and tx.authorized != accepted:
                tx.authorized = accepted
                self.dirty = True

    def set_connector(
        self, key: tuple[int, ...], status: str, error: str | None, now: float
    ) -> None:
        old = self.connectors.get(key)
        if old is not None:
            if old[0] == status and old[1] == error:
                return
        elif len(self.connectors) >= MAX_CONNECTORS:
            return
        self.connectors[key] = (status, error, now)
        self.dirty = True

    def find_tx(self, tx_id: str | int) -> tuple[str, _Tx] | tuple[None, None]:
        for key, tx in self.transactions.items():
            if tx.id == tx_id:
                return key, tx
        return None, None

    def place_tx(self, key: str, tx: _Tx) -> bool:
        """Put ``tx`` on EVSE/connector ``key``; one there before is stale (one per EVSE)."""
        if key not in self.transactions and len(self.transactions) >= MAX_TRANSACTIONS:
            return False
        self.transactions[key] = tx
        self.dirty = True
        return True

    def meter(self, tx: _Tx, values: Any) -> None:
        energy, power = _meter(values)
        # readings change with every sample: published at most every meter_refresh seconds
        if energy is not None and energy != tx.energy:
            tx.energy = energy
            self.metered = True
        if power is not None and power != tx.power:
            tx.power = power
            self.metered = True


def _tx_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.isdigit() else (1, key)


def _restored(station: str, value: dict[str, Any]) -> _Station:
    """A station state from a published payload, taking only well-typed documented fields."""
    st = _Station(station)
    status = value.get("status")
    if status == "online" or status == "offline":
        st.status = status
        st.status_since = _timestamp(value.get("status_since"))
    version = value.get("version")
    if version in VERSIONS:
        st.version = version
    st.vendor = _str(value.get("vendor"))
    st.model = _str(value.get("model"))
    st.serial = _str(value.get("serial"))
    st.firmware = _str(value.get("firmware"))
    boot = _dict(value.get("boot"))
    st.boot_at = _timestamp(boot.get("at"))
    if st.boot_at is not None:
        st.boot_reason, st.boot_status = _str(boot.get("reason")), _str(boot.get("status"))
    st.last_seen = _timestamp(value.get("last_seen"))
    for key, item in _dict(value.get("connectors")).items():
        if len(st.connectors) >= MAX_CONNECTORS:
            break
        if type(item) is not dict:
            continue
        numbers = tuple(int(part) for part in key.split("/") if part.isdecimal() and part.isascii())
        status_text, since = _str(item.get("status")), _timestamp(item.get("since"))
        if len(numbers) in (1, 2) and len(numbers) == key.count("/") + 1 and status_text:
            if since is not None:
                st.connectors[numbers] = (status_text, _str(item.get("error")), since)
    for key, item in _dict(value.get("transactions")).items():
        if len(st.transactions) >= MAX_TRANSACTIONS:
            break
        if type(item) is not dict or not (
            key == _UNKNOWN_EVSE or (key.isdecimal() and key.isascii())
        ):
            continue
        tx_id = item.get("id")
        if not (type(tx_id) is int or _str(tx_id) == tx_id):  # 1.6 int, 2.x string (or null)
            continue
        tx = _Tx(tx_id)
        tx.connector = _int(item.get("connector"))
        tx.started = _timestamp(item.get("started"))
        tx.authorized = item.get("authorized") is True
        tx.state = _str(item.get("state"))
        energy, power = item.get("energy_wh"), item.get("power_w")
        tx.energy = _number(energy) if type(energy) is not str else None
        tx.power = _number(power) if type(power) is not str else None
        st.transactions[key] = tx
    last_error = _dict(value.get("last_error"))
    at, text = _timestamp(last_error.get("at")), _str(last_error.get("text"), MAX_TEXT)
    if at is not None and text is not None:
        st.last_error = (at, text)
    counts = _dict(value.get("counts"))
    up, down = _int(counts.get("up")), _int(counts.get("down"))
    st.up = up if up is not None and up >= 0 else 0
    st.down = down if down is not None and down >= 0 else 0
    return st


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _encode(value: dict[str, Any]) -> bytes:
    # "replace": a lone surrogate from a station's JSON string must not make encoding fail.
    return _ENCODER.encode(value).encode("utf-8", "replace")
