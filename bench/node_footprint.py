#!/usr/bin/env python3
"""Footprint of one charger: the ``ocpp`` package's ChargePoint over ``websockets`` (the baseline)
against our charger node over MQTT (``measure_node`` and friends, below the baseline's half).

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

Our node, OCPP 2.0.1 as compact CBOR over MQTT 5 against ``bridge serve`` (its reference charge
system) through mosquitto, both on 127.0.0.1, a fresh broker and bridge per run (anonymous: the
bench needs no per-station credentials), the children in ``_node_footprint_node.py``:

(a) ``measure_node``: start-up from spawning a real ``charger-node run`` to a subscriber's receipt
    of its first BootNotification; VmRSS after the same charging hour, run by a child that
    builds the station as ``charger-node run`` does and fast-forwards it on a virtual clock.
(b) ``measure_node_many(n)``: n stations in one process as ``charger-node simulate`` builds them,
    each booted: (VmRSS all booted - VmRSS after the imports) / n. ``node_breakdown`` builds
    them part by part to show where that memory goes (RSS, and the Python heap by tracemalloc),
    with n bare paho clients as the floor one client per station puts under it, and n gmqtt
    clients (the asyncio-native MQTT 5 client, if installed) as the alternative to paho.
(c) ``node_bytes_per_hour``: (a)'s frames as the node sent and received them, MQTT 5 framing
    computed and checked against the packets parsed out of the station's socket, TCP/IP.

Before our half, ``byte_compile_ours`` writes the ``ocpp_iot`` package's ``.pyc`` files, as
installing it does (the baseline's packages are installed and load compiled code; a checkout
with ``PYTHONDONTWRITEBYTECODE`` set would compile every module from source in every process).

Each function's docstring says exactly what it measures.

    python bench/node_footprint.py [--stations 1000] [--repeat 3] [--no-breakdown]
    python bench/node_footprint.py --only-baseline [--stations 1000] [--repeat 3]

``--repeat R``: R client processes for (a), R runs of (b); min and median are printed; ``main``
prints ours / ocpp / ratio / goal (``GOALS``, from issue 16) and whether it is met. The module
imports only the standard library at its top, so that the client processes it starts hold
nothing but what the baseline needs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
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
    "rss": "<= 1.0x",  # issue 16: resident memory and start-up both <= 1.0x that client
    "startup": "<= 1.0x",
    "per_station": "<= 0.5x",  # memory per station of `simulate` at 1,000 stations
    "bytes_messages": None,  # bytes on the wire: no numeric goal, the ratio is shown
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


# -- our node ----------------------------------------------------------------------------------

NODE_CHILD = os.path.join(os.path.dirname(HERE), "_node_footprint_node.py")
PUBACK = 4  # MQTT 5 PUBACK, reason Success left out (3.4.2.1): fixed header 2 + packet id 2
PING = 2 + 2  # PINGREQ + PINGRESP
#: the charging hour of the baseline as a scenario of the simulated EVSE: plug at 5 s, token
#: at 9 s, 11 kWh at 11 kW (an hour), unplugged a second after the EV is full
SCENARIO = """steps = [
  { at = 5, plug = 1, charge_kwh = 11, power_kw = 11 },
  { after = 4, token = "04A1B2C3D4E5F6" },
  { unplug = 1, after_full = 1 },
]
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str:
    """A console script of this environment (``charger-node``, ``bridge``), else on PATH."""
    import shutil

    here = os.path.join(os.path.dirname(sys.executable), name)
    found = here if os.access(here, os.X_OK) else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (pip install -e .)")
    return found


class Watcher:
    """An MQTT 5 subscriber on the broker: the arrival (time.monotonic, taken in paho's network
    thread on receipt) and count of messages per topic."""

    def __init__(self, port: int, topics: Sequence[str]) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.cond = threading.Condition()
        self.first: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.payload: dict[str, bytes] = {}

        def on_connect(c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
            c.subscribe([(t, 0) for t in topics])

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            at = time.monotonic()
            with self.cond:
                self.first.setdefault(msg.topic, at)
                self.payload.setdefault(msg.topic, bytes(msg.payload))
                self.count[msg.topic] = self.count.get(msg.topic, 0) + 1
                self.cond.notify_all()

        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def wait(self, test: Callable[[], bool], timeout: float, what: str) -> None:
        with self.cond:
            if not self.cond.wait_for(test, timeout):
                raise RuntimeError(f"waited {timeout:.0f} s for {what}")

    def reset(self) -> None:
        with self.cond:
            self.first.clear()
            self.count.clear()
            self.payload.clear()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Backend:
    """mosquitto (anonymous, loopback, no persistence) and ``bridge serve`` with its reference
    charge system and a fresh database, in a temporary directory. A fresh one per station run:
    the bridge remembers the (station, message id) pairs it answered, and a fresh node counts
    its message ids from the start again."""

    def __init__(self) -> None:
        import shutil
        import tempfile

        from ocpp_iot.testing.mosquitto import find_mosquitto

        exe = find_mosquitto()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        raise_fd_limit()  # mosquitto and the children inherit it: n connections, n databases
        self.dir = tempfile.mkdtemp(prefix="node-footprint-")
        self._rmtree = shutil.rmtree
        self.port = _free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        conf = os.path.join(self.dir, "mosquitto.conf")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
            "max_queued_messages 100000",
            "set_tcp_nodelay true",
            f"log_dest file {self.dir}/mosquitto.log",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")  # else mosquitto drops to a user that cannot write here
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")  # fmt: skip
        self.procs: list[subprocess.Popen[bytes]] = []
        self.watcher: Watcher | None = None
        try:
            self._spawn([exe, "-c", conf])
            self._wait_port()
            self.watcher = Watcher(self.port, ["ocpp/+/up", "ocpp/+/down", "ocpp/bridge/status"])
            err = open(os.path.join(self.dir, "bridge.err"), "wb")  # noqa: SIM115
            self._spawn([_tool("bridge"), "serve", "--broker", self.url, "--db",
                         os.path.join(self.dir, "bridge.sqlite3"), "--log-level", "warning"],
                        stderr=err, cwd=self.dir)  # fmt: skip
            self.watcher.wait(lambda: self._bridge_online(), 60, "the bridge's online status")
        except BaseException:
            self.close()
            raise

    def _bridge_online(self) -> bool:
        assert self.watcher is not None
        return self.watcher.payload.get("ocpp/bridge/status", b"").startswith(b"online")

    def _spawn(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(cmd, **kw)
        self.procs.append(proc)
        return proc

    def _wait_port(self, timeout: float = 10.0) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        for proc in reversed(self.procs):  # the bridge first, then the broker
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        self._rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: what byte_compile_ours found, for the notes
COMPILED = "not done"


def byte_compile_ours() -> None:
    """Write the ``.pyc`` files of the ``ocpp_iot`` package, as ``pip install`` of its wheel
    does: the baseline's packages are installed that way and load compiled code, while an
    editable checkout (with ``PYTHONDONTWRITEBYTECODE`` set, as on the build machine) would
    compile every module from source in every process. Stale ones are rewritten, fresh ones
    kept (``compileall``'s own check)."""
    global COMPILED
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("ocpp_iot")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ocpp_iot is not importable")
    root = list(spec.submodule_search_locations)[0]
    ok = compileall.compile_dir(root, quiet=1)
    COMPILED = f"{'done' if ok else 'FAILED'} for {root}"
    if not ok:
        raise RuntimeError(f"compileall failed for {root}")


def _node_child(args: list[str], timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, NODE_CHILD, *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


_NODE_SESSIONS: list[dict[str, Any]] = []  # (a)'s sessions, for (c)
_NODE_RUN_RSS: list[float] = []  # VmRSS of the real `charger-node run` once booted


def _startup_once(b: Backend) -> float:
    """Spawn a real ``charger-node run``; seconds to its first frame on ``ocpp/CP1/up``."""
    assert b.watcher is not None
    w = b.watcher
    up, down = f"ocpp/{STATION}/up", f"ocpp/{STATION}/down"
    w.reset()
    cmd = [_tool("charger-node"), "run", "--station-id", STATION, "--broker", b.url,
           "--data-dir", b.path("run-data"), "--version", "2.0.1"]  # fmt: skip
    spawned = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        w.wait(lambda: up in w.first, 60, "the first BootNotification")
        # a station's first frame is its BootNotification: check it is
        from ocpp_iot.codecs import cbor

        _, frame = cbor.decode(w.payload[up])
        if getattr(frame, "action", None) != "BootNotification":
            raise RuntimeError(f"the first frame on {up} is {frame!r}")
        # its memory once booted: the answers to BootNotification and StatusNotification in
        w.wait(lambda: w.count.get(down, 0) >= 2, 60, "the answers to the boot")
        _NODE_RUN_RSS.append(vm_kib("VmRSS", proc.pid))
        return w.first[up] - spawned
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        if proc.returncode not in (0, -15):
            print(err.decode(errors="replace")[-2000:], file=sys.stderr)


def measure_node(repeat: int = 3) -> dict[str, list[float]]:
    """(a) for our node: ``{"rss_kib": [...], "startup_s": [...]}``, one value per process.

    Start-up: from just before a real ``charger-node run --station-id CP1 --broker URL
    --data-dir D --version 2.0.1`` is spawned (a fresh data folder, random simulated traffic) to
    the moment a subscriber on the broker receives its first frame on ``ocpp/CP1/up`` (checked
    to be the BootNotification). The subscriber's receipt is one broker hop later than the
    baseline's server-side read, so it slightly favours the baseline.

    RSS: a child process (``_node_footprint_node.py session``) imports what ``charger-node run``
    imports, builds the station as ``charger-node run`` does (``NodeConfig`` with the scenario
    file of the baseline's hour, ``Node``'s machine and ``MqttStationLink``; device-model
    defaults, so ``SampledDataCtrlr.TxUpdatedInterval`` = 60 s), and drives it on a virtual
    clock against ``bridge serve`` over mosquitto: the clock jumps to the machine's next
    wake-up whenever none of its CALLs is waiting for an answer, and real answers are awaited
    over MQTT. The session is the hour (BootNotification, StatusNotifications, Authorize,
    TransactionEvent Started / 60 Updated / Ended) and then the station's first Heartbeat (300
    s after its last CALL), whose exchange is kept apart for (c). VmRSS is read once that
    Heartbeat is answered, before the link is closed. A fresh mosquitto and bridge per run.
    """
    rss: list[float] = []
    startup: list[float] = []
    for _ in range(repeat):
        with Backend() as b:
            startup.append(_startup_once(b))
        with Backend() as b:
            scenario = b.path("hour.toml")
            with open(scenario, "w") as f:
                f.write(SCENARIO)
            args = ["session", "--broker", b.url, "--data-dir", b.path("session-data")]
            session = _node_child([*args, "--scenario", scenario], 300)
            _NODE_SESSIONS.append(session)
            rss.append(session["rss_kib"])
    return {"rss_kib": rss, "startup_s": startup}


def measure_node_many(n: int, repeat: int = 3) -> dict[str, list[float]]:
    """(b) for ``charger-node simulate``: ``{"per_station_kib": [...], "idle_kib": [...],
    "all_kib": [...], "boot_s": [...]}``.

    A child process imports what ``charger-node simulate`` imports (VmRSS then, after a
    ``gc.collect()``: ``idle``), makes n ``Node`` objects as ``simulate`` does (ids CP1..CPn,
    each its own data folder, seed and ``MqttStationLink``, random traffic), runs them, and
    reads VmRSS (after a ``gc.collect()``: ``all``) once every station's registration is
    Accepted and its BootNotification and StatusNotification are answered by ``bridge serve``.
    Per station: (all - idle) / n; what the first station loads on the way (modules imported
    lazily, caches) is inside the difference, divided by n, as in the baseline.
    """
    out: dict[str, list[float]] = {"per_station_kib": [], "idle_kib": [], "all_kib": [],
                                   "boot_s": [], "in_transaction": []}  # fmt: skip
    for _ in range(repeat):
        with Backend() as b:
            r = _node_child(["many", "--broker", b.url, "--data-dir", b.path("sim"),
                             "--n", str(n)], 1200)  # fmt: skip
        out["per_station_kib"].append((r["all_kib"] - r["idle_kib"]) / n)
        for key in ("idle_kib", "all_kib", "boot_s", "in_transaction"):
            out[key].append(r[key])
    return out


def node_breakdown(n: int) -> dict[str, Any]:
    """Where (b)'s memory goes: the stations built part by part, VmRSS after each part (one
    run), and the Python heap per part with tracemalloc (a second run: tracing costs memory);
    and, as a floor, n bare paho clients connected and subscribed (``paho``), and n gmqtt
    clients the same way (``gmqtt``, if installed: the other maintained MQTT 5 client)."""
    out: dict[str, Any] = {}
    for trace in (False, True):
        with Backend() as b:
            args = ["parts", "--broker", b.url, "--data-dir", b.path("sim"), "--n", str(n)]
            out["traced" if trace else "plain"] = _node_child(args + ["--trace"] * trace, 1200)
    for client in ("paho", "gmqtt"):
        if client == "gmqtt" and importlib.util.find_spec("gmqtt") is None:
            continue  # the bench extra installs it; the notes say it was not measured
        for trace in (False, True):
            with Backend() as b:
                args = [client, "--broker", b.url, "--n", str(n)] + ["--trace"] * trace
                out[f"{client}_traced" if trace else client] = _node_child(args, 600)
    return out


def _varint(n: int) -> int:
    """Bytes of an MQTT variable byte integer (1.5.5)."""
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2097152 else 4


def mqtt5_publish(topic: str, payload: int) -> int:
    """Bytes of an MQTT 5 QoS 1 PUBLISH without properties (3.3): fixed header 1 + remaining
    length; topic 2 + len, packet id 2, properties length 1 (0), payload."""
    remaining = 2 + len(topic.encode()) + 2 + _varint(0) + payload
    return 1 + _varint(remaining) + remaining


def parse_mqtt(data: bytes) -> list[dict[str, Any]]:
    """The MQTT 5 control packets of one direction of a connection, in order: type, size, and
    for a PUBLISH its topic, packet id, properties length and payload (hex)."""
    packets: list[dict[str, Any]] = []
    pos = 0
    names = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 8: "SUBSCRIBE",
             9: "SUBACK", 12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT"}  # fmt: skip
    while pos < len(data):
        first = data[pos]
        length, mult, i = 0, 1, pos + 1
        while True:
            byte = data[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        end = i + length
        if end > len(data):
            raise ValueError(f"a packet runs past the recorded bytes at {pos}")
        p: dict[str, Any] = {"type": names.get(first >> 4, str(first >> 4)), "size": end - pos}
        if first >> 4 == 3:
            qos = (first >> 1) & 3
            tlen = int.from_bytes(data[i : i + 2], "big")
            p["topic"] = data[i + 2 : i + 2 + tlen].decode()
            j = i + 2 + tlen + (2 if qos else 0)
            plen, mult, k = 0, 1, j
            while True:
                byte = data[k]
                plen += (byte & 0x7F) * mult
                mult *= 128
                k += 1
                if not byte & 0x80:
                    break
            p["mid"] = int.from_bytes(data[j - 2 : j], "big") if qos else 0
            p["properties"] = plen
            p["payload"] = data[k + plen : end].hex()
        elif first >> 4 == 4:
            p["mid"] = int.from_bytes(data[i : i + 2], "big")
        packets.append(p)
        pos = end
    return packets


def _tcpip(link: int, frames: int, calls: int, pings: int) -> int:
    """TCP/IP on top of the MQTT bytes: 52 B per segment; each PUBLISH and each PUBACK its own
    segment, one pure ACK per exchange (the broker's ACK of our last PUBACK), a ping 3 segments
    (PINGREQ, PINGRESP, the ACK of the PINGRESP)."""
    return link + TCPIP_PER_SEGMENT * (2 * frames + calls + 3 * pings)


def node_bytes_per_hour(session: dict[str, Any] | None = None) -> dict[str, Any]:
    """(c) for the node over MQTT 5, from a session of :func:`measure_node` (default: the
    first; one is run if there is none): ``{"messages", "link", "tcpip"}`` as sent in the hour,
    the same with 12 Heartbeat exchanges added (``*_hb``), and the checks.

    Messages: the compact CBOR frames as the node sent and received them (up to, not including,
    its first Heartbeat: the hour has none, the node skips Heartbeats while other CALLs go out,
    OCPP 2.0.1 G02). Link: + MQTT 5 framing computed from the frames: every frame one QoS 1
    PUBLISH (:func:`mqtt5_publish` on ``ocpp/CP1/up`` or ``/down``) and one PUBACK (4 B) the
    other way; plus PINGREQ/PINGRESP (2 + 2 B) per ``keepalive`` (the node's default 60 s)
    without a packet either way, counted on the session's virtual timeline. The computed bytes
    are checked against the packets parsed out of the bytes the station's MQTT client wrote to
    and read from its socket (each PUBLISH's payload must be the frame's bytes); the packets of
    the connection itself (CONNECT, SUBSCRIBE, the retained online/offline, DISCONNECT ...) are
    printed apart. TCP/IP as :func:`_tcpip` says. Heartbeats added: 12 times the Heartbeat CALL
    and answer the session recorded after the hour (as the baseline sends them every 300 s).
    """
    if session is None:
        if not _NODE_SESSIONS:
            measure_node(repeat=1)
        session = _NODE_SESSIONS[0]
    frames = [(d, t, k, bytes.fromhex(h)) for d, t, k, h in session["frames"]]
    first_hb = next(i for i, f in enumerate(frames) if f[2] == "CALL Heartbeat")
    hour, hb = frames[:first_hb], frames[first_hb:]
    topic = {"up": session["topic_up"], "down": session["topic_down"]}
    keepalive = session["keepalive"]

    def framing(fs: Sequence[tuple[str, float, str, bytes]]) -> dict[str, int]:
        out = {"up": 0, "down": 0}
        for d, _, _, data in fs:
            out[d] += mqtt5_publish(topic[d], len(data))
            out["down" if d == "up" else "up"] += PUBACK
        return out

    times = [t for _, t, _, _ in hour]
    pings = sum(int((b - a) // keepalive) for a, b in zip(times, times[1:], strict=False)
                if b - a > keepalive)  # fmt: skip
    by_dir = framing(hour)
    messages = sum(len(f[3]) for f in hour)
    link = by_dir["up"] + by_dir["down"] + pings * PING
    calls = sum(1 for f in hour if f[0] == "up" and f[2].startswith("CALL "))
    answers = sum(1 for f in hour if f[0] == "down" and not f[2].startswith("CALL "))
    hb_messages = sum(len(f[3]) for f in hb)
    hb_framing = framing(hb)
    hb_link = hb_framing["up"] + hb_framing["down"]

    # the check: the packets parsed out of the socket's bytes, each PUBLISH matched to a frame
    # (in order, payload equal) and each PUBACK to a PUBLISH (by packet id)
    wire = {d: parse_mqtt(bytes.fromhex(session["wire"][d])) for d in ("up", "down")}
    counted = {"up": 0, "down": 0}
    connection: dict[str, int] = {}
    mismatches = 0
    part_of: dict[tuple[str, int], str] = {}  # (direction, packet id) -> hour | heartbeat
    for d in ("up", "down"):
        ours = [f for f in frames if f[0] == d]
        n_hour = sum(1 for f in hour if f[0] == d)
        i = 0
        for p in wire[d]:
            if p["type"] == "PUBLISH" and p["topic"] == topic[d]:
                if i >= len(ours) or p["payload"] != ours[i][3].hex() or p["properties"]:
                    mismatches += 1
                part_of[(d, p["mid"])] = "hour" if i < n_hour else "heartbeat"
                i += 1
        mismatches += i != len(ours)
    for d in ("up", "down"):
        other = "down" if d == "up" else "up"
        for p in wire[d]:
            if p["type"] == "PUBLISH" and p["topic"] == topic[d]:
                part = part_of[(d, p["mid"])]
            elif p["type"] == "PUBACK":
                part = part_of.get((other, p["mid"]), "connection")
            else:
                part = "connection"
            if part == "hour":
                counted[d] += p["size"]
            elif part == "connection":
                key = f"{d} {p['type']}" + (f" {p['topic']}" if "topic" in p else "")
                connection[key] = connection.get(key, 0) + p["size"]
    total_wire = {d: len(bytes.fromhex(session["wire"][d])) for d in ("up", "down")}
    return {
        "frames": hour,
        "calls": calls,
        "answers": answers,
        "actions": _actions(hour),
        "messages": messages,
        "link": link,
        "tcpip": _tcpip(link, len(hour), calls, pings),
        "pings": pings,
        "keepalive": keepalive,
        "link_by_direction": by_dir,
        "socket_counted": counted,
        "socket_total": total_wire,
        "socket_writes": session["wire"]["writes"],
        "socket_packets": len(wire["up"]),
        "mismatches": mismatches,
        "connection": connection,
        "heartbeat": {"call": len(hb[0][3]), "answer": len(hb[1][3]), "link": hb_link},
        "messages_hb": messages + 12 * hb_messages,
        "link_hb": link + 12 * hb_link,
        "tcpip_hb": _tcpip(link + 12 * hb_link, len(hour) + 24, calls + 12, pings),
    }


def _actions(frames: Sequence[tuple[str, float, str, bytes]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, _, k, _ in frames:
        if d == "up" and k.startswith("CALL "):
            out[k[5:]] = out.get(k[5:], 0) + 1
    return out


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
    ap.add_argument(
        "--no-breakdown",
        action="store_true",
        help="skip where our memory per station goes (two more runs of (b))",
    )
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
    byte_compile_ours()
    na = measure_node(args.repeat)
    nb = measure_node_many(args.stations, args.repeat)
    nc = node_bytes_per_hour()
    codec = _node_child(["codec"], 120)
    parts = None if args.no_breakdown else node_breakdown(args.stations)
    ours = {
        "rss": [v / 1024 for v in na["rss_kib"]],
        "startup": [v * 1000 for v in na["startup_s"]],
        "per_station": nb["per_station_kib"],
        "bytes_messages": [nc["messages"]],
        "bytes_link": [nc["link"]],
        "bytes_tcpip": [nc["tcpip"]],
        "bytes_messages_hb": [nc["messages_hb"]],
        "bytes_link_hb": [nc["link_hb"]],
        "bytes_tcpip_hb": [nc["tcpip_hb"]],
    }
    theirs = {key: values for key, _, values in rows}
    labels = _node_labels(args.stations)
    table = []
    for key, label in labels.items():
        mine, base = ours[key], theirs[key.removesuffix("_hb")]
        ratio = statistics.median(mine) / statistics.median(base)
        goal = GOALS.get(key)
        met = "-" if goal is None else "yes" if ratio <= float(goal.strip("<=x ")) else "no"
        table.append([label, _fmt(mine), _fmt(base), f"{ratio:.2f}x", goal or "-", met])
    _print_table("charger node vs the ocpp package", ["", "ours", "ocpp", "ratio", "goal", "met"],
                 table, notes + _node_notes(na, nb, nc, codec))  # fmt: skip
    if parts is not None:
        allowed = float(GOALS["per_station"].strip("<=x "))
        _print_breakdown(parts, codec, allowed * statistics.median(theirs["per_station"]))
    return 0


def _node_labels(n: int) -> dict[str, str]:
    return {
        "rss": "client RSS after the session (MiB)",
        "startup": "start-up: spawn -> 1st BootNotification received (ms)",
        "per_station": f"memory per station, {n:,} in one process (KiB)",
        "bytes_messages": "bytes per charging hour: messages (ours CBOR, ocpp OCPP-J)",
        "bytes_link": "bytes per charging hour: + MQTT 5 / WebSocket framing",
        "bytes_tcpip": "bytes per charging hour: + TCP/IP headers",
        "bytes_messages_hb": "same, 12 Heartbeats added to ours: messages",
        "bytes_link_hb": "same, 12 Heartbeats added to ours: + MQTT 5 framing",
        "bytes_tcpip_hb": "same, 12 Heartbeats added to ours: + TCP/IP headers",
    }


def _node_notes(
    a: dict[str, list[float]], b: dict[str, list[float]], c: dict[str, Any], codec: dict[str, Any]
) -> list[str]:
    from importlib.metadata import version

    s = _NODE_SESSIONS[0]
    med = statistics.median
    mib = 1024
    mosq = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.split("\n")[0]
    actions = ", ".join(f"{k} {v}" for k, v in c["actions"].items())
    counted, computed = c["socket_counted"], c["link_by_direction"]
    check = "equal" if counted == computed and not c["mismatches"] else "DIFFERENT"
    conn = c["connection"]
    hb = c["heartbeat"]
    per_ping = PING + 3 * TCPIP_PER_SEGMENT
    return [
        f"ours: ocpp-iot {version('ocpp-iot')} charger node, OCPP 2.0.1, compact CBOR, MQTT 5 "
        f"QoS 1 (paho-mqtt {s['versions']['paho-mqtt']}, cbor2 {s['versions']['cbor2']}), "
        f"keepalive {c['keepalive']} s (the node's default); {mosq.strip()} on loopback, "
        "anonymous (the bench needs no per-station credentials); `bridge serve` with its "
        "reference charge system (Heartbeat interval 300 s), a fresh broker and bridge per run",
        f"(a) ours: RSS after the imports of `charger-node run` "
        f"{med([x['rss_imports_kib'] for x in _NODE_SESSIONS]) / mib:.1f} MiB, peak (VmHWM) "
        f"{max(x['hwm_kib'] for x in _NODE_SESSIONS) / mib:.1f} MiB; the real `charger-node run` "
        f"once booted: {_mm([v / mib for v in _NODE_RUN_RSS], lambda v: f'{v:.1f}')} MiB; "
        f"the hour ran in {med([x['took_s'] for x in _NODE_SESSIONS]):.1f} s "
        f"({s['jumps']} clock jumps); pydantic loaded: {s['pydantic_loaded']}",
        f"(a) ours: importing what `charger-node run` imports takes {codec['import_s'] * 1000:.0f}"
        f" ms (ocpp_iot byte-compiled first, as installing the package does: {COMPILED}); the "
        f"first frame then imports the 2.0.1 CBOR codec (generated at build time, "
        f"_cbor_codec_v201) in {codec['build_s'] * 1000:.1f} ms, RSS "
        f"+{(codec['rss_after_kib'] - codec['rss_before_kib']) / mib:.1f} MiB (peak "
        f"+{(codec['hwm_kib'] - codec['rss_before_kib']) / mib:.1f} MiB); malloc_trim "
        + (
            f"would give back {(codec['rss_after_kib'] - codec['rss_trimmed_kib']) / mib:.1f} MiB"
            if codec["rss_trimmed_kib"] is not None
            else "is not available"
        ),
        f"(b) ours: idle interpreter with the imports {med(b['idle_kib']) / mib:.1f} MiB, all "
        f"booted {med(b['all_kib']) / mib:.1f} MiB, booting them took {med(b['boot_s']):.1f} s; "
        f"random traffic (simulate's default): {max(b['in_transaction']):.0f} station(s) had "
        "begun a transaction when measured",
        f"(c) ours: {c['calls']} CALLs and {c['answers']} CALLRESULTs ({actions}); the baseline "
        "sends BootNotification 1, StatusNotification 1, Authorize 1, TransactionEvent 62, "
        "Heartbeat 12. Ours reports the connector at boot and after the unplug too (2 more "
        "StatusNotifications) and sends no Heartbeat in the hour: one is due 300 s after the "
        "last CALL, and a CALL goes out every 60 s (OCPP 2.0.1 G02 allows it)",
        f"(c) ours: MQTT 5 bytes computed up {computed['up']:,} / down {computed['down']:,}, "
        f"counted on the station's socket (its packets parsed, each PUBLISH's payload the "
        f"frame's bytes) up {counted['up']:,} / down {counted['down']:,}: {check}; a PUBLISH on "
        f"{s['topic_up']} is 1 + remaining-length varint + 2 + {len(s['topic_up'])} (topic) + 2 "
        f"(packet id) + 1 (no properties) + payload, a PUBACK {PUBACK} B",
        f"(c) ours: PINGREQ/PINGRESP in the hour: {c['pings']} (no {c['keepalive']} s without a "
        f"packet); an idle station pings every {c['keepalive']} s: {PING} B of MQTT, {per_ping} B"
        f" with TCP/IP, {per_ping * 3600 // c['keepalive']:,} B an idle hour",
        f"(c) ours: TCP/IP = + {TCPIP_PER_SEGMENT} B per segment: each PUBLISH and each PUBACK "
        "its own segment, + one pure ACK per exchange (5 segments per CALL and answer, "
        f"WebSocket 3); the node wrote {c['socket_writes']} times to its socket for its "
        f"{c['socket_packets']} MQTT packets (TCP_NODELAY: a write is a segment). Not "
        "counted: TLS, TCP set-up, and the connection's MQTT packets, "
        f"{sum(conn.values())} B once per connection: "
        + ", ".join(f"{k} {v}" for k, v in conn.items()),
        f"(c) ours: a Heartbeat (measured after the hour): CALL {hb['call']} B + CALLRESULT "
        f"{hb['answer']} B of CBOR, {hb['link']} B with MQTT; the 'added' rows add 12 of them "
        f"(+ {2 * TCPIP_PER_SEGMENT + TCPIP_PER_SEGMENT * 3} B of TCP/IP each)",
    ]


def _print_breakdown(parts: dict[str, Any], codec: dict[str, Any], budget: float) -> None:
    """``budget``: the memory per station the goal allows (KiB), for the paho floor's share."""
    plain, traced = parts["plain"], parts["traced"]
    bare, bare_py = parts["paho"], parts["paho_traced"]
    n = plain["n"]
    rows = []
    steps = list(zip(plain["steps"], traced["steps"], strict=True))
    for (prev, prev_t), (cur, cur_t) in zip(steps, steps[1:], strict=False):
        rss = (cur["rss_kib"] - prev["rss_kib"]) / n
        py = (cur_t["py_bytes"] - prev_t["py_bytes"]) / n / 1024
        rows.append([cur["step"], f"{rss:.1f}", f"{py:.1f}"])
    total = (plain["steps"][-1]["rss_kib"] - plain["steps"][0]["rss_kib"]) / n
    total_py = (traced["steps"][-1]["py_bytes"] - traced["steps"][0]["py_bytes"]) / n / 1024
    rows.append(["all", f"{total:.1f}", f"{total_py:.1f}"])
    top = ", ".join(f"{name.rsplit('/', 1)[-1]} {size / n / 1024:.1f}"
                    for name, size in traced["top"][:8])  # fmt: skip
    _print_table(
        f"where our memory per station goes: {n:,} stations built part by part in one process",
        ["part", "RSS KiB/station", "Python heap KiB/station"],
        rows,
        [
            "RSS: one run without tracing; Python heap: a second run with tracemalloc (what "
            "Python objects hold; the rest of the RSS is C memory: SQLite, sockets, the "
            "allocators' free space)",
            f"Python heap by file at the end, KiB/station: {top}",
            "'connected and booted' holds the one-off import of the 2.0.1 CBOR codec on the "
            f"first frame: {(codec['rss_after_kib'] - codec['rss_before_kib']) / n:.1f} "
            f"KiB/station of RSS at {n:,} stations",
            "loaded once the stations ran: " + ", ".join(plain["modules_loaded_running"]),
            f"floor: {n:,} bare paho clients in one process (MQTT 5, retained will, persistent "
            f"session; no asyncio, no station), RSS (Python heap) KiB/client: "
            f"{bare['built_kib']:.1f} ({bare_py['built_kib']:.1f}) after Client(), "
            f"{bare['connected_kib']:.1f} ({bare_py['connected_kib']:.1f}) connected and "
            f"subscribed: {bare['connected_kib'] / budget:.0%} "
            f"({bare_py['connected_kib'] / budget:.0%}) of the goal's {budget:.1f} KiB/station",
            _gmqtt_note(parts, n, budget),
        ],
    )


def _gmqtt_note(parts: dict[str, Any], n: int, budget: float) -> str:
    """The alternative client measured as the paho floor is (or why it was not)."""
    if "gmqtt" not in parts:
        return "gmqtt (the other maintained MQTT 5 client) not measured: not installed"
    g, g_py = parts["gmqtt"], parts["gmqtt_traced"]
    return (
        f"instead of paho: {n:,} gmqtt {g['version']} clients (asyncio, the same options), "
        f"RSS (Python heap) KiB/client: {g['built_kib']:.1f} ({g_py['built_kib']:.1f}) after "
        f"Client(), {g['connected_kib']:.1f} ({g_py['connected_kib']:.1f}) connected and "
        f"subscribed: {g['connected_kib'] / budget:.0%} of the goal's {budget:.1f} KiB/station"
    )


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
