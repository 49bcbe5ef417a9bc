#!/usr/bin/env python3
"""Footprint of one charger: the ``ocpp`` package's ChargePoint over ``websockets`` (the baseline)
against our charger node (its half is still to be plugged in: ``measure_node`` and friends).

Baseline, OCPP 2.0.1 against a CSMS made of the same library (``ocpp.v201.ChargePoint`` with
``@on`` handlers behind ``websockets.serve``) in another process, on 127.0.0.1:

(a) ``measure_ocpp_client``: a fresh client process runs one charging hour, fast-forwarded (the
    payloads carry the hour's timestamps, nothing sleeps): BootNotification, one
    StatusNotification, Authorize, TransactionEvent Started, 60 Updated (every 60 s, energy
    register and active power), Ended, 12 Heartbeats (every 300 s), each answered. Measured: its
    resident memory (VmRSS from /proc) after the session, and the start-up time from just before
    the process is spawned to the moment the server receives its first BootNotification.
(b) ``measure_ocpp_many(n)``: n ChargePoints in one process, each its own WebSocket connection,
    each booted: (VmRSS once all are Accepted - VmRSS of the same process after its imports,
    before the first connection) / n. One-off caches filled on the first message (the
    library's JSON-schema validators) are inside the difference, divided by n.
(c) ``ocppj_bytes_per_hour``: the frames of (a)'s session as the library sent and received them
    (UUID message ids, its own JSON): bytes of the OCPP-J messages, then with WebSocket framing
    (client frames masked: 2, 4 or 10 header bytes + 4 mask; server frames 2, 4 or 10), which is
    checked against the bytes counted on the client's transport; then TCP/IP as a separate
    column: 52 bytes (IPv4 20 + TCP 20 + the timestamps option 12) per frame, each frame its own
    segment, plus one pure ACK per CALL/CALLRESULT exchange (the answer carries the ACK of the
    CALL; the next CALL is too far off to carry the ACK of the answer). Not counted: the
    WebSocket opening handshake (once per connection; printed apart), TLS, WebSocket pings,
    TCP keepalives, connection set-up and teardown.

Both ends run with ``compression=None`` (no permessage-deflate: what the formula counts) and
``ping_interval=None`` (the OCPP Heartbeat is the keepalive here); ``--deflate`` measures (a) and
(b) with websockets' default permessage-deflate instead (then the transport count shows the
compressed wire and the formula does not apply). The library's defaults otherwise: JSON-schema
validation of every message, in the default thread-pool executor.

    python bench/node_footprint.py --only-baseline [--stations 1000] [--repeat 3]

``--repeat R``: R client processes for (a), R runs of (b); min and median are printed. The lead
plugs our node in by implementing ``measure_node``, ``measure_node_many`` and
``node_bytes_per_hour`` (same return shapes as the baseline's); ``main`` then prints ours / ocpp
/ ratio / goal. The module imports only the standard library at its top, so that the client
processes it starts hold nothing but what the baseline needs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

HERE = os.path.abspath(__file__)
STATION = "CP1"
SUBPROTOCOL = "ocpp2.0.1"
HOUR = 3600
METER_INTERVAL = 60
HEARTBEAT_INTERVAL = 300
START = datetime(2026, 1, 1, 8, 0, 0, tzinfo=UTC)
TCPIP_PER_SEGMENT = 20 + 20 + 12  # IPv4, TCP, TCP timestamps option
BATCH = 100  # connections opened at once in (b): below asyncio's listen backlog of 100

# What the lead sets from the issue; None prints "-".
GOALS: dict[str, str | None] = {
    "rss": None,
    "startup": None,
    "per_station": None,
    "bytes_messages": None,
    "bytes_link": None,
    "bytes_tcpip": None,
}


# -- helpers shared by every process --------------------------------------------------------


def vm_kib(field: str = "VmRSS", pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM ...) in KiB (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


def iso(t: float) -> str:
    """The hour's timestamp ``t`` seconds after START, as the charger writes it."""
    return (START + timedelta(seconds=t)).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(kind: str, **fields: Any) -> None:
    """One JSON line to the parent."""
    sys.stdout.write(json.dumps({"kind": kind, **fields}) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ws_header(length: int, masked: bool) -> int:
    """RFC 6455 frame header bytes for a payload of ``length`` (one unfragmented frame)."""
    head = 2 if length <= 125 else 4 if length <= 0xFFFF else 10
    return head + (4 if masked else 0)


def charging_hour() -> list[tuple[float, str, dict[str, Any]]]:
    """The charger's CALLs of one charging hour, in order: (time s, action, snake_case payload).

    Deterministic (no randomness): 11 kW with a slow drift, the energy register in Wh with one
    decimal, as the ``ocpp`` package's dataclasses take them (``call.<Action>(**payload)``).
    """
    tx = "5f0c3b8e-2d6a-4c1e-9a7b-3e2f1d0c4b5a"  # a UUID, as applications of the library use
    token = {"id_token": "04A1B2C3D4E5F6", "type": "ISO14443"}
    evse = {"id": 1, "connector_id": 1}
    calls: list[tuple[float, str, dict[str, Any]]] = [
        (0.0, "BootNotification", {
            "charging_station": {"model": "Wallbox 11", "vendor_name": "ExampleVendor"},
            "reason": "PowerUp"}),
        (5.0, "StatusNotification", {
            "timestamp": iso(5), "connector_status": "Occupied", "evse_id": 1, "connector_id": 1}),
        (9.0, "Authorize", {"id_token": token}),
    ]  # fmt: skip
    energy = 0.0

    def meter(t: float, context: str, power: float | None) -> list[dict[str, Any]]:
        values: list[dict[str, Any]] = [
            {"value": round(energy, 1), "context": context,
             "measurand": "Energy.Active.Import.Register"}
        ]  # fmt: skip
        if power is not None:
            values.append({"value": power, "context": context, "measurand": "Power.Active.Import"})
        return [{"timestamp": iso(t), "sampled_value": values}]

    def event(t: float, kind: str, trigger: str, seq: int, **more: Any) -> dict[str, Any]:
        return {"event_type": kind, "timestamp": iso(t), "trigger_reason": trigger,
                "seq_no": seq, **more}  # fmt: skip

    charging = {"transaction_id": tx, "charging_state": "Charging"}
    t0 = 10.0
    calls.append((t0, "TransactionEvent", event(
        t0, "Started", "Authorized", 0, transaction_info=charging, id_token=token, evse=evse,
        meter_value=meter(t0, "Transaction.Begin", None))))  # fmt: skip
    for k in range(1, HOUR // METER_INTERVAL + 1):
        t = t0 + k * METER_INTERVAL
        power = round(11040.0 - 3.5 * k + (k % 7) * 1.25, 1)
        energy += power * METER_INTERVAL / 3600
        calls.append((t, "TransactionEvent", event(
            t, "Updated", "MeterValuePeriodic", k, transaction_info=charging,
            meter_value=meter(t, "Sample.Periodic", power))))  # fmt: skip
    t_end = t0 + HOUR + 1
    ended = {"transaction_id": tx, "stopped_reason": "EVDisconnected"}
    calls.append((t_end, "TransactionEvent", event(
        t_end, "Ended", "EVCommunicationLost", HOUR // METER_INTERVAL + 1, transaction_info=ended,
        evse=evse, meter_value=meter(t_end, "Transaction.End", None))))  # fmt: skip
    calls += [
        (float(t), "Heartbeat", {}) for t in range(HEARTBEAT_INTERVAL, HOUR + 1, HEARTBEAT_INTERVAL)
    ]
    calls.sort(key=lambda c: c[0])
    return calls


# -- the two ends (child processes) ---------------------------------------------------------


def _ws_options(deflate: bool) -> dict[str, Any]:
    opts: dict[str, Any] = {"subprotocols": [SUBPROTOCOL], "ping_interval": None}
    if not deflate:
        opts["compression"] = None
    return opts


async def _server(deflate: bool, report_boots: bool) -> None:
    """A CSMS of the ``ocpp`` package; prints ``ready`` (its port) and, if asked, each
    station's first BootNotification's arrival (time.monotonic, system-wide on Linux)."""
    import websockets
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint, call_result
    from ocpp.v201.enums import Action

    class Csms(ChargePoint):
        booted = False  # per connection: its first BootNotification is reported

        async def route_message(self, raw_msg: str) -> None:
            if report_boots and not self.booted and '"BootNotification"' in raw_msg:
                self.booted = True
                emit("boot", station=self.id, at=time.monotonic())
            await super().route_message(raw_msg)

        @on(Action.boot_notification)
        def on_boot(self, **_: Any) -> Any:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return call_result.BootNotification(
                current_time=now, interval=HEARTBEAT_INTERVAL, status="Accepted"
            )

        @on(Action.status_notification)
        def on_status(self, **_: Any) -> Any:
            return call_result.StatusNotification()

        @on(Action.authorize)
        def on_authorize(self, **_: Any) -> Any:
            return call_result.Authorize(id_token_info={"status": "Accepted"})

        @on(Action.transaction_event)
        def on_transaction_event(self, event_type: str, **_: Any) -> Any:
            if event_type == "Started":
                return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
            return call_result.TransactionEvent()

        @on(Action.heartbeat)
        def on_heartbeat(self, **_: Any) -> Any:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return call_result.Heartbeat(current_time=now)

    async def handler(ws: Any) -> None:
        cp = Csms(ws.request.path.strip("/"), ws)
        try:
            await cp.start()
        except websockets.ConnectionClosed:
            pass

    raise_fd_limit()
    loop = asyncio.get_running_loop()
    eof: asyncio.Future[None] = loop.create_future()

    def on_stdin() -> None:
        if not eof.done():
            eof.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with websockets.serve(handler, "127.0.0.1", 0, **_ws_options(deflate)) as server:
        emit("ready", port=next(iter(server.sockets)).getsockname()[1])
        await eof  # the parent closes our stdin to stop us


class _Recorder:
    """The connection as the ChargePoint sees it: records every message, both ways."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.frames: list[tuple[str, str]] = []  # ("up" | "down", text)

    async def send(self, message: str) -> None:
        self.frames.append(("up", message))
        await self.conn.send(message)

    async def recv(self) -> str:
        message: str = await self.conn.recv()
        self.frames.append(("down", message))
        return message


def _count_wire(conn: Any) -> dict[str, int]:
    """Bytes written to / read from the connection's transport from now on."""
    counts = {"up": 0, "down": 0}
    write, received = conn.transport.write, conn.data_received

    def counting_write(data: bytes) -> None:
        counts["up"] += len(data)
        write(data)

    def counting_received(data: bytes) -> None:
        counts["down"] += len(data)
        received(data)

    conn.transport.write = counting_write
    conn.data_received = counting_received
    return counts


async def _client(port: int, deflate: bool) -> None:
    """One charger: the charging hour, then its memory, the frames and the wire counts."""
    import websockets
    from ocpp.v201 import ChargePoint, call

    conn = await websockets.connect(f"ws://127.0.0.1:{port}/{STATION}", **_ws_options(deflate))
    wire = _count_wire(conn)
    rec = _Recorder(conn)
    cp = ChargePoint(STATION, rec)
    serving = asyncio.ensure_future(cp.start())
    for _, action, payload in charging_hour():
        await cp.call(getattr(call, action)(**payload), suppress=False)
    rss, hwm = vm_kib("VmRSS"), vm_kib("VmHWM")
    assert conn.request is not None and conn.response is not None
    handshake = {
        "request": len(conn.request.serialize()),
        "response": len(conn.response.serialize()),
    }
    emit("session", rss_kib=rss, hwm_kib=hwm, frames=rec.frames, wire=wire, handshake=handshake,
         deflate=deflate)  # fmt: skip
    serving.cancel()
    await conn.close()


async def _many(port: int, n: int, deflate: bool) -> None:
    """n ChargePoints in this process, each its own connection, all booted."""
    import gc

    import websockets
    from ocpp.v201 import ChargePoint, call

    raise_fd_limit()
    gc.collect()
    idle = vm_kib()
    conns: list[Any] = []
    tasks: list[asyncio.Future[Any]] = []
    boot = call.BootNotification(
        charging_station={"model": "Wallbox 11", "vendor_name": "ExampleVendor"}, reason="PowerUp"
    )

    async def one(i: int) -> None:
        conn = await websockets.connect(f"ws://127.0.0.1:{port}/CP{i}", **_ws_options(deflate))
        conns.append(conn)
        cp = ChargePoint(f"CP{i}", conn)
        tasks.append(asyncio.ensure_future(cp.start()))
        answer = await cp.call(boot, suppress=False)
        if answer.status != "Accepted":
            raise RuntimeError(f"CP{i}: BootNotification {answer.status}")

    started = time.monotonic()
    for first in range(1, n + 1, BATCH):
        await asyncio.gather(*(one(i) for i in range(first, min(first + BATCH, n + 1))))
    took = time.monotonic() - started
    gc.collect()
    emit(
        "many",
        n=n,
        idle_kib=idle,
        all_kib=vm_kib(),
        boot_s=took,
        open_fds=len(os.listdir("/proc/self/fd")),
    )
    for t in tasks:
        t.cancel()
    await asyncio.gather(*(c.close() for c in conns), return_exceptions=True)


# -- the parent: run the ends, collect ------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int

    def read(self, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise RuntimeError(f"the CSMS process said nothing for {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the CSMS process ended (exit {self.proc.poll()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(deflate: bool, report_boots: bool) -> Server:
    args = [sys.executable, HERE, "_server"] + ["--deflate"] * deflate
    args += ["--report-boots"] * report_boots
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    server = Server(proc, 0)
    ready = server.read()
    server.port = ready["port"]
    return server


def _child(args: list[str], timeout: float) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, HERE, *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


_SESSIONS: list[dict[str, Any]] = []  # (a)'s sessions, for (c)


def measure_ocpp_client(repeat: int = 3, deflate: bool = False) -> dict[str, list[float]]:
    """(a): ``{"rss_kib": [...], "startup_s": [...]}``, one value per fresh client process."""
    server = start_server(deflate, report_boots=True)
    rss: list[float] = []
    startup: list[float] = []
    try:
        for _ in range(repeat):
            args = [sys.executable, HERE, "_client", "--port", str(server.port)]
            args += ["--deflate"] * deflate
            spawned = time.monotonic()
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            boot = server.read()
            out, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"client exited {proc.returncode}:\n{err[-3000:]}")
            session = json.loads(out.splitlines()[-1])
            _SESSIONS.append(session)
            startup.append(boot["at"] - spawned)
            rss.append(session["rss_kib"])
    finally:
        server.stop()
    return {"rss_kib": rss, "startup_s": startup}


def measure_ocpp_many(n: int, repeat: int = 3, deflate: bool = False) -> dict[str, list[float]]:
    """(b): ``{"per_station_kib": [...], "idle_kib": [...], "all_kib": [...], "boot_s": [...]}``."""
    server = start_server(deflate, report_boots=False)
    out: dict[str, list[float]] = {
        "per_station_kib": [],
        "idle_kib": [],
        "all_kib": [],
        "boot_s": [],
    }
    try:
        for _ in range(repeat):
            args = ["_many", "--port", str(server.port), "--n", str(n)] + ["--deflate"] * deflate
            r = _child(args, timeout=600)
            out["per_station_kib"].append((r["all_kib"] - r["idle_kib"]) / n)
            out["idle_kib"].append(r["idle_kib"])
            out["all_kib"].append(r["all_kib"])
            out["boot_s"].append(r["boot_s"])
    finally:
        server.stop()
    return out


def ocppj_bytes_per_hour(session: dict[str, Any] | None = None) -> dict[str, Any]:
    """(c) from a recorded session (default: the first of ``measure_ocpp_client``; one is run if
    there is none): bytes of the messages, + WebSocket framing, + TCP/IP, and the checks."""
    if session is None:
        if not _SESSIONS:
            measure_ocpp_client(repeat=1)
        session = _SESSIONS[0]
    frames: list[tuple[str, str]] = [(d, t) for d, t in session["frames"]]
    messages = link = 0
    by_dir = {"up": 0, "down": 0}
    for direction, text in frames:
        size = len(text.encode())
        framed = size + ws_header(size, masked=direction == "up")
        messages += size
        link += framed
        by_dir[direction] += framed
    calls = sum(1 for d, t in frames if d == "up" and t.startswith("[2,"))
    answers = sum(1 for d, t in frames if d == "down" and t.startswith("[3,"))
    if session.get("deflate"):  # compressed: the formula does not apply, the count does
        link = session["wire"]["up"] + session["wire"]["down"]
    tcpip = link + TCPIP_PER_SEGMENT * (len(frames) + calls)
    return {
        "frames": frames,
        "calls": calls,
        "answers": answers,
        "messages": messages,
        "link": link,
        "tcpip": tcpip,
        "link_by_direction": by_dir,
        "transport_counted": session["wire"],
        "deflate": bool(session.get("deflate")),
        "handshake": session["handshake"],
    }


# -- our node (the lead's half) ---------------------------------------------------------------


def measure_node(repeat: int = 3) -> dict[str, list[float]]:
    """(a) for ``charger-node run``: ``{"rss_kib": [...], "startup_s": [...]}``."""
    raise NotImplementedError(
        "measure_node: our side is not plugged in yet: run `charger-node run` against `bridge "
        "serve` for the same charging hour and return its VmRSS and spawn-to-first-"
        "BootNotification times (use --only-baseline until then)"
    )


def measure_node_many(n: int, repeat: int = 3) -> dict[str, list[float]]:
    """(b) for ``charger-node simulate --stations n``: ``{"per_station_kib": [...]}``."""
    raise NotImplementedError(
        "measure_node_many: our side is not plugged in yet: n stations in one "
        "`charger-node simulate` process, (VmRSS booted - VmRSS after imports) / n "
        "(use --only-baseline until then)"
    )


def node_bytes_per_hour() -> dict[str, Any]:
    """(c) for the node over MQTT: ``{"messages": B, "link": B, "tcpip": B}`` for the same hour."""
    raise NotImplementedError(
        "node_bytes_per_hour: our side is not plugged in yet: the same charging hour as compact "
        "CBOR in MQTT 5 PUBLISH/PUBACK, with TCP/IP counted as for the baseline "
        "(use --only-baseline until then)"
    )


# -- the table --------------------------------------------------------------------------------


def _mm(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    return f"{fmt(min(values))} / {fmt(statistics.median(values))}"


def _rows(
    base_a: dict[str, list[float]], base_b: dict[str, list[float]], base_c: dict[str, Any], n: int
) -> list[tuple[str, str, list[float]]]:
    """(key, label, ocpp values) of the table; one value: no min/median."""
    return [
        ("rss", "client RSS after the session (MiB)", [v / 1024 for v in base_a["rss_kib"]]),
        ("startup", "start-up: spawn -> 1st BootNotification at the server (ms)",
         [v * 1000 for v in base_a["startup_s"]]),
        ("per_station", f"memory per station, {n:,} in one process (KiB)",
         base_b["per_station_kib"]),
        ("bytes_messages", "bytes per charging hour: OCPP-J messages", [base_c["messages"]]),
        ("bytes_link", "bytes per charging hour: + WebSocket framing", [base_c["link"]]),
        ("bytes_tcpip", "bytes per charging hour: + TCP/IP headers", [base_c["tcpip"]]),
    ]  # fmt: skip


def _fmt(values: Sequence[float]) -> str:
    def one(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"

    return one(values[0]) if len(values) == 1 else _mm(values, one)


def _print_table(title: str, header: list[str], rows: list[list[str]], notes: list[str]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # plain text
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        print(title)
        for r in [header, *rows]:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                            enumerate(zip(r, widths, strict=True))))  # fmt: skip
    else:
        table = Table(title=title)
        for i, h in enumerate(header):
            table.add_column(h, justify="left" if i == 0 else "right")
        for r in rows:
            table.add_row(*r)
        Console(width=140).print(table)
    for note in notes:
        print(note)


def _notes(a: dict[str, list[float]], b: dict[str, list[float]], c: dict[str, Any]) -> list[str]:
    counted = c["transport_counted"]
    computed = c["link_by_direction"]
    from importlib.metadata import version

    if c["deflate"]:
        check = "the link row is the count (permessage-deflate on)"
    else:
        check = "equal" if counted == computed else "DIFFERENT"
    return [
        f"min / median over the repeats; client and CSMS: ocpp {version('ocpp')} ChargePoint "
        f"(OCPP 2.0.1), websockets {version('websockets')}, permessage-deflate "
        f"{'on' if c['deflate'] else 'off'}, pings off",
        f"(b): idle interpreter with the imports {statistics.median(b['idle_kib']) / 1024:.1f} MiB,"
        f" all booted {statistics.median(b['all_kib']) / 1024:.1f} MiB,"
        f" booting them took {statistics.median(b['boot_s']):.1f} s",
        f"(c): {c['calls']} CALLs and {c['answers']} CALLRESULTs; WebSocket bytes computed "
        f"up {computed['up']:,} / down {computed['down']:,}, counted on the client's transport "
        f"up {counted['up']:,} / down {counted['down']:,}: {check}",
        f"(c): TCP/IP = + {TCPIP_PER_SEGMENT} B per frame and per pure ACK (one per exchange); "
        f"not counted: TLS, pings, keepalives, connection set-up; the opening handshake, once "
        f"per connection: {c['handshake']['request']} + {c['handshake']['response']} B",
        f"(a): peak RSS of the client (VmHWM) {max(s['hwm_kib'] for s in _SESSIONS) / 1024:.1f}"
        " MiB",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only-baseline", action="store_true", help="measure and print the ocpp side")
    ap.add_argument("--stations", type=int, default=1000, help="ChargePoints in one process (b)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions (min and median)")
    ap.add_argument("--deflate", action="store_true", help="permessage-deflate on (a, b)")
    args = ap.parse_args(argv)

    a = measure_ocpp_client(args.repeat, args.deflate)
    b = measure_ocpp_many(args.stations, args.repeat, args.deflate)
    c = ocppj_bytes_per_hour()
    rows = _rows(a, b, c, args.stations)
    notes = _notes(a, b, c)
    if args.only_baseline:
        _print_table(
            "baseline: the ocpp package over websockets",
            ["", "ocpp (min / median)"],
            [[label, _fmt(v)] for _, label, v in rows],
            notes,
        )
        return 0
    try:
        na = measure_node(args.repeat)
        nb = measure_node_many(args.stations, args.repeat)
        nc = node_bytes_per_hour()
    except NotImplementedError as exc:
        print(f"our side is not measured yet: {exc}", file=sys.stderr)
        return 2
    ours = {
        "rss": [v / 1024 for v in na["rss_kib"]],
        "startup": [v * 1000 for v in na["startup_s"]],
        "per_station": nb["per_station_kib"],
        "bytes_messages": [nc["messages"]],
        "bytes_link": [nc["link"]],
        "bytes_tcpip": [nc["tcpip"]],
    }
    table = []
    for key, label, theirs in rows:
        mine = ours[key]
        ratio = statistics.median(mine) / statistics.median(theirs)
        table.append([label, _fmt(mine), _fmt(theirs), f"{ratio:.2f}x", GOALS[key] or "-"])
    _print_table("charger node vs the ocpp package", ["", "ours", "ocpp", "ratio", "goal"], table,
                 notes)  # fmt: skip
    return 0


def _child_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["_server", "_client", "_many"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--deflate", action="store_true")
    ap.add_argument("--report-boots", action="store_true")
    args = ap.parse_args(argv)
    if args.mode == "_server":
        asyncio.run(_server(args.deflate, args.report_boots))
    elif args.mode == "_client":
        asyncio.run(_client(args.port, args.deflate))
    else:
        asyncio.run(_many(args.port, args.n, args.deflate))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        sys.exit(_child_main(sys.argv[1:]))
    sys.exit(main())
