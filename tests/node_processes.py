"""Helpers for the charger-node end-to-end and fault tests: ``charger-node run`` / ``simulate``
processes, the bridge's reference records (``ref_events``) read back, and the invariants every
run must keep (each event handled once, seqNo 0..n in order, one Started and one Ended).

Waits poll a condition with a deadline (:func:`wait_until`), never a fixed sleep.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ocpp_iot.charger_node.node import queue_depth

T = TypeVar("T")

#: ``charger-node`` as a command (the console script's entry point, in this interpreter).
CHARGER_NODE = [
    sys.executable,
    "-c",
    "import sys; from ocpp_iot.charger_node.cli import main; sys.exit(main())",
]
#: ``bridge`` as a command.
BRIDGE = [sys.executable, "-m", "ocpp_iot.bridge.cli"]
VERSIONS = ("1.6", "2.0.1", "2.1")


def wait_until(
    pred: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    every: float = 0.1,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll ``pred`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() >= deadline:
            extra = f"\n{details()}" if details is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(every)


def station_users(ids: Iterable[str]) -> dict[str, str]:
    """Broker users (station id -> password) for ``ids``."""
    return {sid: f"pw-{sid}" for sid in ids}


def write_password_file(path: Path, users: Mapping[str, str]) -> Path:
    path.write_text("".join(f"{sid}:{pw}\n" for sid, pw in users.items()))
    return path


def write_scenario(path: Path, steps: Sequence[Any], **top: Any) -> Path:
    """A scenario file (JSON, which ``charger-node`` reads as well as TOML)."""
    path.write_text(json.dumps({"steps": list(steps), **top}))
    return path


# -- processes ------------------------------------------------------------------------------


class NodeProcess:
    """A ``charger-node`` command (or another ``program``, e.g. :data:`BRIDGE`) in a
    subprocess (its own process group), logging to a file."""

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        program: Sequence[str] = CHARGER_NODE,
    ):
        self.program = list(program)
        self.args = list(args)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> NodeProcess:
        assert not self.running, "already running"
        with open(self.log_path, "ab") as log:
            log.write(f"---- start {self.starts} ----\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*self.program, *self.args],
                stdout=log,
                stderr=log,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL (a power cut, as far as the node can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.args[0]!r} did not exit within {timeout:g} s:\n{self.log()[-4000:]}"
            ) from None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def common_args(
    broker_url: str,
    version: str,
    *,
    scenario: Path | None = None,
    variables: Mapping[str, object] | None = None,
    seed: str | None = None,
    log_level: str = "INFO",
) -> list[str]:
    args = ["--broker", broker_url, "--version", version, "--log-level", log_level]
    if scenario is not None:
        args += ["--scenario", str(scenario)]
    for path, value in (variables or {}).items():
        args += ["--var", f"{path}={value}"]
    if seed is not None:
        args += ["--seed", seed]
    return args


def run_node(
    broker_url: str, station: str, password: str, data_dir: Path, version: str, **kw: Any
) -> NodeProcess:
    """``charger-node run`` for one station (not started); the password goes in the
    environment, as the docs advise."""
    args = ["run", "--station-id", station, "--data-dir", str(data_dir)]
    args += common_args(broker_url, version, **kw)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{station}.log"
    return NodeProcess(args, log, env={"CHARGER_NODE_PASSWORD": password})


def simulate(
    broker_url: str,
    stations: int,
    password_file: Path,
    data_dir: Path,
    version: str,
    *,
    id_prefix: str = "CP",
    duration: float | None = None,
    **kw: Any,
) -> NodeProcess:
    """``charger-node simulate`` (not started)."""
    args = ["simulate", "--stations", str(stations), "--id-prefix", id_prefix]
    args += ["--password-file", str(password_file), "--data-dir", str(data_dir)]
    if duration is not None:
        args += ["--duration", str(duration)]
    args += common_args(broker_url, version, **kw)
    data_dir.mkdir(parents=True, exist_ok=True)
    return NodeProcess(args, data_dir / "simulate.log")


def outbox_depth(data_dir: Path) -> int:
    """Messages in the station's durable outbox now (0 if it has none yet)."""
    return queue_depth(data_dir) or 0


# -- the bridge's records ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One row of ``ref_events``: one run of the reference charge system's handler."""

    row: int
    station: str
    message_id: str
    version: str
    action: str
    transaction_id: str | None
    seq_no: int | None
    event_type: str | None
    payload: dict[str, Any]

    @property
    def timestamp(self) -> float | None:
        ts = self.payload.get("timestamp")
        if ts is None and self.payload.get("meterValue"):  # 1.6 MeterValues
            ts = self.payload["meterValue"][-1].get("timestamp")
        return None if ts is None else parse_time(ts)

    @property
    def offline(self) -> bool:
        return bool(self.payload.get("offline", False))

    def energy_wh(self) -> float | None:
        """The energy register this event carries (Started/Ended/Updated, 1.6 meterStart /
        meterStop / MeterValues), or None."""
        if self.action == "StartTransaction":
            return float(self.payload["meterStart"])
        if self.action == "StopTransaction":
            return float(self.payload["meterStop"])
        return register(self.payload.get("meterValue") or [])

    def power_w(self) -> float | None:
        return sample(self.payload.get("meterValue") or [], "Power.Active.Import")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def sample(meter_values: list[dict[str, Any]], measurand: str) -> float | None:
    """The last sampled value of ``measurand`` (without a phase) in OCPP meter values."""
    found = None
    for mv in meter_values:
        for sv in mv.get("sampledValue", []):
            name = sv.get("measurand", "Energy.Active.Import.Register")
            if name == measurand and sv.get("phase") is None:
                found = float(sv["value"])
    return found


def register(meter_values: list[dict[str, Any]]) -> float | None:
    return sample(meter_values, "Energy.Active.Import.Register")


def ref_events(db: Path, station: str | None = None) -> list[Event]:
    """``ref_events`` in the order the handler ran (empty if the table is not there yet)."""
    if not db.exists():
        return []
    sql = (
        "SELECT id, station, message_id, version, action, transaction_id, seq_no, event_type,"
        " payload FROM ref_events"
    )
    args: tuple[Any, ...] = ()
    if station is not None:
        sql += " WHERE station=?"
        args = (station,)
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    return [Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in rows]


TxKey = tuple[str, str]  # (station, transaction id)


def transactions(events: Iterable[Event]) -> dict[TxKey, list[Event]]:
    """Every transaction's events in arrival order: 2.x TransactionEvents, 1.6 StartTransaction
    / MeterValues with a transactionId / StopTransaction (keyed by the back end's id)."""
    out: dict[TxKey, list[Event]] = defaultdict(list)
    for e in events:
        if e.transaction_id is None:
            continue
        if e.action in ("TransactionEvent", "StartTransaction", "StopTransaction", "MeterValues"):
            out[(e.station, e.transaction_id)].append(e)
    return dict(out)


def started(tx: Sequence[Event]) -> Event:
    return next(e for e in tx if e.event_type == "Started")


def ended(tx: Sequence[Event]) -> Event:
    return next(e for e in tx if e.event_type == "Ended")


def tx_energy(tx: Sequence[Event]) -> float:
    """Ended register minus Started register."""
    start, end = started(tx).energy_wh(), ended(tx).energy_wh()
    assert start is not None and end is not None
    return end - start


# -- invariants -------------------------------------------------------------------------------


def check_exactly_once(events: Sequence[Event]) -> list[str]:
    """Each CALL a station sent ran the handler once: no (station, message id) twice, and no
    (station, transaction, seqNo) twice."""
    problems = []
    seen: dict[tuple[str, str], Event] = {}
    for e in events:
        key = (e.station, e.message_id)
        if key in seen:
            problems.append(f"{e.station}: message {e.message_id} ({e.action}) handled twice")
        seen[key] = e
    seq: set[tuple[str, str, int]] = set()
    for e in events:
        if e.action == "TransactionEvent" and e.transaction_id is not None:
            k = (e.station, e.transaction_id, e.seq_no if e.seq_no is not None else -1)
            if k in seq:
                problems.append(f"{e.station}: tx {e.transaction_id} seqNo {e.seq_no} twice")
            seq.add(k)
    return problems


def check_transactions(events: Sequence[Event], *, complete: bool = True) -> list[str]:
    """Per transaction: 2.x seqNo 0, 1, ... n in arrival order without gaps, Started first
    (seqNo 0), exactly one Started and (``complete``) one Ended, last; 1.6 one StartTransaction,
    one StopTransaction, MeterValues with the transaction's id between them, none sent with
    the placeholder id -1."""
    problems = []
    for (station, tx_id), evs in sorted(transactions(events).items()):
        name = f"{station} tx {tx_id}"
        if tx_id == "-1":
            problems.append(f"{name}: {len(evs)} message(s) sent without the back end's id")
            continue
        kinds = [e.event_type or e.action for e in evs]
        n_start = sum(e.event_type == "Started" for e in evs)
        n_end = sum(e.event_type == "Ended" for e in evs)
        if n_start != 1:
            problems.append(f"{name}: {n_start} Started: {kinds}")
        if n_end > 1 or (complete and n_end != 1):
            problems.append(f"{name}: {n_end} Ended: {kinds}")
        if evs[0].event_type != "Started":
            problems.append(f"{name}: first is {kinds[0]}: {kinds}")
        if n_end and evs[-1].event_type != "Ended":
            problems.append(f"{name}: Ended is not last: {kinds}")
        if evs[0].version != "1.6":
            seqs = [e.seq_no for e in evs]
            if seqs != list(range(len(evs))):
                problems.append(f"{name}: seqNo in arrival order {seqs}")
        else:
            others = {e.action for e in evs} - {"StartTransaction", "StopTransaction"}
            if others - {"MeterValues"}:
                problems.append(f"{name}: unexpected {sorted(others)}")
    return problems


def check_registers(
    tx: Sequence[Event], *, tolerance_wh: float = 0.15, lower_bound: bool = True
) -> list[str]:
    """The register never goes down within a transaction, and between two readings it grew by
    what the power says (energy is the integral of power; the power is constant between
    readings, and in 2.x a change of it comes with a reading: ``lower_bound``; 1.6 says a
    change with a StatusNotification, so there only the upper bound holds). 1.6's meterStart
    and meterStop are whole Wh (truncated): give it ``tolerance_wh=1``."""
    problems = []
    points = [(e.timestamp, e.energy_wh(), e.power_w(), e) for e in tx]
    readings = [(t, wh, p) for t, wh, p, _ in points if t is not None and wh is not None]
    for (t0, wh0, p0), (t1, wh1, p1) in zip(readings, readings[1:], strict=False):
        if wh1 < wh0 - (tolerance_wh if tolerance_wh >= 1 else 1e-6):
            problems.append(f"register went down {wh0} -> {wh1} at {t1}")
        # between t0 and t1 the power was p0's (or the one after it, when the reading at t0
        # is the first with the relay closed); bounds from the two readings' powers
        powers = [p for p in (p0, p1) if p is not None]
        if not powers:
            continue
        lo, hi = min(powers) * (t1 - t0) / 3600, max(powers) * (t1 - t0) / 3600
        grew = wh1 - wh0
        if not ((lo if lower_bound else 0.0) - tolerance_wh <= grew <= hi + tolerance_wh):
            problems.append(
                f"{grew:.2f} Wh in {t1 - t0:.3f} s at {powers} W (expected {lo:.2f}-{hi:.2f})"
            )
    return problems


def check_offline_flags(
    events: Sequence[Event], down_at: float, up_at: float, *, slack: float = 0.5
) -> list[str]:
    """2.x: events timestamped before ``down_at`` are not offline, events between the link's
    loss and ``up_at`` (when it could come back at the earliest) are; per station the flags in
    time order go online, offline, online (one outage)."""
    problems = []
    by_station: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e.action == "TransactionEvent":
            by_station[e.station].append(e)
    for station, evs in sorted(by_station.items()):
        evs = sorted(evs, key=lambda e: (e.timestamp or 0.0, e.row))
        for e in evs:
            t = e.timestamp
            assert t is not None
            if t < down_at - slack and e.offline:
                problems.append(f"{station} tx {e.transaction_id} #{e.seq_no} offline before")
            if down_at + slack < t < up_at and not e.offline:
                problems.append(
                    f"{station} tx {e.transaction_id} #{e.seq_no} not offline at "
                    f"{t - down_at:.1f} s into the outage"
                )
        flags = [e.offline for e in evs]
        changes = sum(a != b for a, b in zip(flags, flags[1:], strict=False))
        if changes > 2:
            problems.append(f"{station}: offline flags in time order {flags}")
    return problems


def summary(events: Sequence[Event], station: str | None = None, limit: int = 80) -> str:
    """The events of one station (or all) as short lines, for failure messages."""
    lines = [
        f"{e.row} {e.station} {e.message_id} {e.action} tx={e.transaction_id} "
        f"seq={e.seq_no} {e.event_type or ''} {'offline' if e.offline else ''}"
        for e in events
        if station is None or e.station == station
    ]
    return "\n".join(lines[-limit:])
