"""Bridge throughput and latency through a real mosquitto on loopback.

Every row of one run is measured in that run, against a fresh mosquitto started by this script
(temporary directory, free port on 127.0.0.1, ``user root``, anonymous access, MQTT 5):

closed loop (each station has one outstanding CALL, sent again as soon as its answer arrives):
  echo          one paho client on ``ocpp/+/up`` republishing every payload unchanged on
                ``ocpp/{station}/down``: the ceiling for a Python MQTT service
  ocpp-ws       the ``ocpp`` PyPI package's ``v201.ChargePoint`` with an ``@on("TransactionEvent")``
                handler served by ``websockets``, the same frames as OCPP-J over N connections
  bridge        ``bridge serve`` as a subprocess, JSON mirror off and on, 1 and 2 workers

open loop (a fixed offered rate, half the bridge's closed-loop maximum, spread evenly over the
stations): p50 / p99 latency of the bridge (1 worker, mirror off) and of the echo.

The load: pre-encoded OCPP 2.0.1 TransactionEvent CALLs (eventType Updated, one meterValue with 9
sampledValues); only the message id changes between frames (a pool per station encoded before
the timed phase, since the compact codec packs ids; OCPP-J frames get the id spliced in). The
stations' side is a few generator processes, each one paho client (or one asyncio loop of
WebSocket connections) owning a slice of the stations. The CPU each process used during the
measured window is reported, so a saturated generator shows.

    python bench/bridge_throughput.py                      # 100 and 1,000 stations, 10 s a row
    python bench/bridge_throughput.py --repeat 3 --duration 10
    python bench/bridge_throughput.py --quick              # tiny smoke run, nothing written
    python bench/bridge_throughput.py --stations 1000 --repeat 3 --compare f7fe93f

``--compare REV`` runs every bridge row twice per repetition, on ``git archive REV src`` (old) and
on the current source (new: the working tree, or ``--snapshot``'s revision), old then new, so
the machine's noise hits both alike; each source's bridge is started through its own CLI. The
tables get a ``source`` column and a section of new/old ratios.

Results (markdown tables, with the date) go to docs/bridge-throughput.md unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOC = ROOT / "docs" / "bridge-throughput.md"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
PREFIX = "ocpp"
VERSION = "2.0.1"
HOST = "127.0.0.1"
ID_LEN = 16  # message ids are f"{station:05d}-{seq:010d}"
ANALYSIS_MARKER = "<!-- analysis: kept when the tables above are regenerated -->"

# --------------------------------------------------------------------------------------------
# The load: one TransactionEvent (Updated, one meterValue, 9 sampledValues), pre-encoded.
# --------------------------------------------------------------------------------------------


def station_id(index: int) -> str:
    return f"CS{index:05d}"


def message_id(index: int, seq: int) -> str:
    return f"{index % 100000:05d}-{seq % 10**10:010d}"


def transaction_event(index: int) -> dict[str, Any]:
    """An OCPP 2.0.1 TransactionEventRequest, Updated, one meterValue with 9 sampledValues."""
    stamp = "2026-06-05T12:54:51.074Z"

    def sv(value: float, measurand: str, unit: str, phase: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"value": value, "measurand": measurand}
        if phase is not None:
            out["phase"] = phase
        out["unitOfMeasure"] = {"unit": unit}
        return out

    sampled = [
        sv(4686206.9, "Energy.Active.Import.Register", "Wh"),
        sv(12007.9, "Power.Active.Import", "W"),
        sv(23.27, "Current.Import", "A", "L1"),
        sv(225.6, "Voltage", "V", "L1-N"),
        sv(24.24, "Current.Import", "A", "L2"),
        sv(231.5, "Voltage", "V", "L2-N"),
        sv(31.82, "Current.Import", "A", "L3"),
        sv(233.2, "Voltage", "V", "L3-N"),
        {**sv(59.0, "SoC", "Percent"), "context": "Sample.Periodic"},
    ]
    return {
        "eventType": "Updated",
        "timestamp": stamp,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 2,
        "transactionInfo": {
            "transactionId": f"tx-{station_id(index)}",
            "chargingState": "Charging",
        },
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": stamp, "sampledValue": sampled}],
    }


def transaction_started(index: int) -> dict[str, Any]:
    return {
        "eventType": "Started",
        "timestamp": "2026-06-05T12:50:00.000Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {
            "transactionId": f"tx-{station_id(index)}",
            "chargingState": "Charging",
        },
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "BENCH0001", "type": "ISO14443"},
    }


def boot_notification() -> dict[str, Any]:
    return {
        "reason": "PowerUp",
        "chargingStation": {"model": "BenchBox", "vendorName": "ocpp-iot-bench"},
    }


def _cbor_encoder() -> tuple[Callable[[str, str, dict[str, Any]], bytes], str]:
    """(encode(message_id, action, payload) -> compact CBOR CALL, codec name)."""
    from ocpp_iot.rpc import Call

    try:
        from ocpp_iot.codecs import cbor  # type: ignore[attr-defined]

        def enc(mid: str, action: str, payload: dict[str, Any]) -> bytes:
            return bytes(cbor.encode(Call(mid, action, payload), VERSION))

        return enc, "ocpp_iot.codecs.cbor"
    except ImportError:
        pass
    try:
        from ocpp_iot.bridge import _wire

        def enc1(mid: str, action: str, payload: dict[str, Any]) -> bytes:
            return bytes(_wire.encode(Call(mid, action, payload), VERSION))

        return enc1, "the bridge's interim wire format (ocpp_iot.codecs.cbor not available)"
    except ImportError:
        import cbor2

        def enc2(mid: str, action: str, payload: dict[str, Any]) -> bytes:
            return cbor2.dumps([2, mid, action, payload])

        return enc2, "plain cbor2 (ocpp_iot.codecs.cbor not available)"


def _json_encoder() -> Callable[[str, str, dict[str, Any]], bytes]:
    from ocpp_iot.rpc import Call

    try:
        from ocpp_iot.codecs import ocppj

        return lambda mid, action, payload: bytes(ocppj.encode(Call(mid, action, payload)))
    except ImportError:
        return lambda mid, action, payload: json.dumps(
            [2, mid, action, payload], separators=(",", ":")
        ).encode()


@dataclass
class Template:
    """An encoded CALL split around its message id: frame = head + id + tail."""

    head: bytes
    tail: bytes
    spliced: bool  # False: the codec did not carry the id verbatim, encode each frame instead
    encode: Callable[[str], bytes]

    def frame(self, mid: str) -> bytes:
        if self.spliced:
            return self.head + mid.encode() + self.tail
        return self.encode(mid)


def make_template(
    enc: Callable[[str, str, dict[str, Any]], bytes], payload: dict[str, Any]
) -> Template:
    def encode(mid: str) -> bytes:
        return enc(mid, "TransactionEvent", payload)

    probe = message_id(12345, 6789012345)
    data = encode(probe)
    raw = probe.encode()
    if data.count(raw) == 1:
        head, _, tail = data.partition(raw)
        ok = all(
            encode(m) == head + m.encode() + tail
            for m in (message_id(0, 0), message_id(99999, 10**10 - 1), message_id(42, 4242))
        )
        if ok:
            return Template(head, tail, True, encode)
    return Template(b"", b"", False, encode)


# --------------------------------------------------------------------------------------------
# Processes: mosquitto, services, generators; CPU accounting; cleanup on every exit path.
# --------------------------------------------------------------------------------------------

_PROCS: list[subprocess.Popen[bytes]] = []
#: where the children import ``ocpp_iot`` from (the working tree, or a snapshot of a commit):
#: the current source; with ``--compare`` only the old bridge runs on another one
SRC = [ROOT / "src"]


@dataclass
class Source:
    """A source tree a bridge row runs on."""

    name: str  # short revision, or "working tree"
    src: Path  # the directory holding the ``ocpp_iot`` package
    role: str = ""  # "old" | "new" with --compare, else ""
    serve_help: str = ""  # `bridge serve --help` of this source

    @property
    def state_flag(self) -> bool:
        """Whether its CLI can turn the retained json/state summaries off."""
        return "--no-state" in self.serve_help


def child_env(src: Path | None = None) -> dict[str, str]:
    """The environment of a child: bench/ and ``src`` (default: the current source) first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), str(src or SRC[0]), env.get("PYTHONPATH", "")) if p
    )
    return env


def extract_source(rev: str) -> tuple[tempfile.TemporaryDirectory[str], str]:
    """``git archive REV src`` unpacked in a temporary directory; (directory, short revision)."""
    tmp = tempfile.TemporaryDirectory(prefix="bench-src-")
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
    return tmp, short


def _spawn(cmd: Sequence[str], **kw: Any) -> subprocess.Popen[bytes]:
    kw.setdefault("env", child_env())
    proc = subprocess.Popen(list(cmd), start_new_session=True, **kw)
    _PROCS.append(proc)
    return proc


def _stop(proc: subprocess.Popen[bytes], grace: float = 3.0) -> None:
    """Stop a process this script started, and its process group (bridge workers)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may outlive its leader (workers); SIGKILL whatever is left of it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(2)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    if proc in _PROCS:
        _PROCS.remove(proc)


def stop_all() -> None:
    for proc in list(reversed(_PROCS)):
        _stop(proc, grace=1.0)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {HOST}:{port} after {timeout} s")


@contextlib.contextmanager
def mosquitto() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A private mosquitto on a free loopback port; yields (port, process)."""
    with tempfile.TemporaryDirectory(prefix="bench-mosq-") as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listener {port} {HOST}",
                    "allow_anonymous true",
                    "user root",
                    "persistence false",
                    f"log_dest file {tmp}/mosquitto.log",
                    "log_type error",
                    "log_type warning",
                    # a closed loop keeps up to one message per station queued for the service
                    "max_queued_messages 100000",
                    "max_inflight_messages 0",
                    "set_tcp_nodelay true",
                    "",
                ]
            )
        )
        proc = _spawn(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port, 10, proc)
            yield port, proc
        finally:
            _stop(proc)


class LineReader:
    """Reads a child's stdout lines on a thread, so the parent can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix!r} line from pid {self.proc.pid} in {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"pid {self.proc.pid} exited ({self.proc.poll()}) before {prefix!r}"
                )
            if line.startswith(prefix):
                return line[len(prefix) :].strip()


def _self_cmd(role: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), role, *args]


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process and all its live descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    import psutil

    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


# --------------------------------------------------------------------------------------------
# Service roles (run as subprocesses of this script).
# --------------------------------------------------------------------------------------------


def _nodelay(client: Any) -> None:
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def role_echo(argv: list[str]) -> None:
    """Raw paho echo: every payload on ocpp/+/up back, unchanged, on ocpp/{station}/down."""
    import paho.mqtt.client as mqtt

    port = int(argv[0])
    variant = argv[1] if len(argv) > 1 else "raw"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-echo", protocol=mqtt.MQTTv5
    )
    # raw: no in-flight limit (paho then skips its per-PUBACK scan of unacknowledged messages)
    client.max_inflight_messages_set(1000 if variant == "inflight" else 0)
    publish = client.publish
    if variant == "hop":
        role_echo_hop(client, port)
        return

    def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        _nodelay(c)
        c.subscribe(f"{PREFIX}/+/up", qos=1)

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        print("ready", flush=True)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        publish(msg.topic[:-3] + "/down", msg.payload, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, port, keepalive=60)
    client.loop_forever()


def role_echo_hop(client: Any, port: int) -> None:
    """The echo with the bridge's threading: paho's network thread hands each message to an
    asyncio loop (one wake-up per burst), which publishes the answer."""
    from collections import deque

    loop = asyncio.new_event_loop()
    incoming: deque[Any] = deque()
    pending = [False]
    publish = client.publish

    def process() -> None:
        pending[0] = False
        while incoming:
            msg = incoming.popleft()
            publish(msg.topic[:-3] + "/down", msg.payload, qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        incoming.append(msg)
        if not pending[0]:
            pending[0] = True
            loop.call_soon_threadsafe(process)

    def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        _nodelay(c)
        c.subscribe(f"{PREFIX}/+/up", qos=1)

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        print("ready", flush=True)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    loop.run_forever()


def role_ws_server(argv: list[str]) -> None:
    """The ``ocpp`` package's v201 ChargePoint, answering TransactionEvent, over websockets."""
    from ocpp.routing import on
    from ocpp.v201 import ChargePoint, call_result
    from websockets.asyncio.server import serve

    port = int(argv[0])

    class BenchChargePoint(ChargePoint):  # type: ignore[misc]
        @on("TransactionEvent")  # type: ignore[misc]
        def on_transaction_event(self, **_kwargs: Any) -> Any:
            return call_result.TransactionEvent()

    async def handler(ws: Any) -> None:
        cp = BenchChargePoint(ws.request.path.strip("/"), ws)
        with contextlib.suppress(Exception):
            await cp.start()

    async def main() -> None:
        async with serve(
            handler,
            HOST,
            port,
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            ping_interval=None,
            compression=None,
            max_queue=None,
        ):
            print("ready", flush=True)
            await asyncio.Future()

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Generators (the stations' side).
# --------------------------------------------------------------------------------------------


@dataclass
class GenResult:
    n: int = 0  # round trips completed inside the measured window
    lat: list[float] = field(default_factory=list)  # their latencies, seconds
    sent: int = 0
    errors: int = 0  # answers that were not the CALLRESULT of the outstanding CALL
    checked: int = 0
    late: int = 0  # open loop: sends delayed because the station's previous CALL was unanswered
    stray: int = 0  # answers for a station with nothing outstanding
    note: str = ""


def _go_times() -> tuple[float, float, float]:
    line = sys.stdin.readline()
    go = json.loads(line)
    return float(go["start"]), float(go["measure"]), float(go["end"])


def role_gen_mqtt(argv: list[str]) -> None:
    """Stations [lo, hi) on one paho client: closed or open loop against echo or bridge."""
    import paho.mqtt.client as mqtt

    opts = json.loads(argv[0])
    port: int = opts["port"]
    lo: int = opts["lo"]
    hi: int = opts["hi"]
    mode: str = opts["mode"]  # closed | open
    rate: float = opts.get("rate", 0.0)  # open loop: CALLs per second for this generator
    check: bool = opts["check"]  # decode answers (bridge) or not (echo)
    boot: bool = opts["boot"]
    name: str = opts["name"]

    enc, codec = _cbor_encoder()
    indices = list(range(lo, hi))
    n = len(indices)
    templates = [make_template(enc, transaction_event(i)) for i in indices]
    up = [f"{PREFIX}/{station_id(i)}/up" for i in indices]
    down_index = {f"{PREFIX}/{station_id(i)}/down": k for k, i in enumerate(indices)}
    seq = [0] * n
    sent_at = [0.0] * n
    outstanding: list[str | None] = [None] * n
    deferred: list[float | None] = [None] * n
    res = GenResult()
    # The compact codec packs message ids, so its frames cannot be spliced: encode a pool of
    # frames per station up front (enough for the expected rate) and encode live only beyond it.
    pools: list[list[bytes]] = [[] for _ in indices]
    live = [0]
    if not templates[0].spliced:
        total = float(opts["warmup"]) + float(opts["duration"]) + 1.0
        if mode == "closed":
            per_station = opts["pool_rate"] * total / opts["stations"]
        else:
            per_station = rate / n * total
        size = int(per_station * 1.2) + 5
        for k, i in enumerate(indices):
            pools[k] = [templates[k].encode(message_id(i, s)) for s in range(1, size + 1)]

    decode: Callable[[bytes], Any] | None = None
    if check:
        from ocpp_iot.rpc import CallResult

        try:
            from ocpp_iot.codecs.cbor import decode as wire_decode  # type: ignore[import-not-found]
        except ImportError:
            from ocpp_iot.bridge._wire import decode as wire_decode

        def decode(data: bytes) -> bool:
            _version, frame = wire_decode(data)
            return isinstance(frame, CallResult) and frame.message_id == current_mid

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{name}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(0)
    publish = client.publish
    state = {"subacks": 0, "connected": False}
    phase = {"measure": float("inf"), "end": float("inf"), "stop": float("inf"), "warm": True}
    current_mid = ""

    def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        _nodelay(c)
        state["connected"] = True

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        state["subacks"] += 1

    def send(k: int, at: float) -> None:
        s = seq[k] = seq[k] + 1
        mid = message_id(indices[k], s)
        pool = pools[k]
        if s <= len(pool):
            data = pool[s - 1]
        else:
            data = templates[k].frame(mid)
            if not templates[k].spliced:
                live[0] += 1
        publish(up[k], data, qos=1)
        outstanding[k] = mid
        sent_at[k] = at
        res.sent += 1

    boot_frames: dict[int, bytes] = {}
    setup_seq = [0] * n

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        nonlocal current_mid
        now = time.monotonic()
        k = down_index.get(msg.topic)
        if k is None:
            return
        mid = outstanding[k]
        if mid is None:
            res.stray += 1
            return
        if decode is not None and (phase["warm"] or res.n % 8 == 0):
            current_mid = mid
            res.checked += 1
            try:
                good = decode(msg.payload)
            except Exception:
                good = False
            if not good:
                res.errors += 1
        outstanding[k] = None
        if phase["measure"] <= now < phase["end"]:
            res.n += 1
            res.lat.append(now - sent_at[k])
        if now >= phase["stop"]:
            return
        if mode == "closed":
            send(k, now)
        else:
            d = deferred[k]
            if d is not None:
                deferred[k] = None
                send(k, d)  # latency counts from when it was due

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.connect(HOST, port, keepalive=120)
    deadline = time.monotonic() + 30
    while not state["connected"]:
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise TimeoutError("generator could not connect")
    topics = list(down_index)
    chunks = [topics[i : i + 200] for i in range(0, len(topics), 200)]
    for chunk in chunks:
        client.subscribe([(t, 1) for t in chunk])
    while state["subacks"] < len(chunks):
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise TimeoutError("generator subscriptions not acknowledged")

    if boot:
        # BootNotification then TransactionEvent Started for every station (resent until answered),
        # so a stateful handler sees a plausible station before the timed Updated events.
        for action, payload_of in (
            ("BootNotification", lambda i: boot_notification()),
            ("TransactionEvent", transaction_started),
        ):
            answered: set[int] = set()

            def on_setup(_c: Any, _u: Any, msg: Any, answered: set[int] = answered) -> None:
                k = down_index.get(msg.topic)
                if k is not None and k not in answered:
                    answered.add(k)

            client.on_message = on_setup
            until = time.monotonic() + 60
            while len(answered) < n:
                for k in range(n):
                    if k not in answered:
                        setup_seq[k] += 1
                        mid = message_id(indices[k], 10**9 + setup_seq[k])
                        data = enc(mid, action, payload_of(indices[k]))
                        boot_frames[k] = data
                        publish(up[k], data, qos=1)
                resend = time.monotonic() + 3
                while len(answered) < n and time.monotonic() < resend:
                    client.loop(0.05)
                if time.monotonic() > until:
                    raise TimeoutError(f"{n - len(answered)} stations got no answer to {action}")

    client.on_message = on_message
    print(f"ready {json.dumps({'codec': codec, 'spliced': templates[0].spliced})}", flush=True)
    start, measure, end = _go_times()
    phase["measure"], phase["end"], phase["stop"] = measure, end, end
    while time.monotonic() < start:
        client.loop(min(0.05, max(0.0, start - time.monotonic())))
    loop = client.loop
    if mode == "closed":
        now = time.monotonic()
        for k in range(n):
            send(k, now)
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if phase["warm"] and now >= measure:
                phase["warm"] = False
            loop(0.01)
    else:
        period = 1.0 / rate
        j = 0
        due = start + float(opts.get("offset", 0.0)) * period
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if phase["warm"] and now >= measure:
                phase["warm"] = False
            while due <= now:
                k = j % n
                if outstanding[k] is None:
                    send(k, due)
                else:
                    deferred[k] = due
                    if measure <= due < end:
                        res.late += 1
                j += 1
                due = start + (j + float(opts.get("offset", 0.0))) * period
            loop(max(0.0, min(due - time.monotonic(), 0.01)))
    # answers still outstanding at the end of the window count as lost round trips only if the
    # window would have counted them: report them as an error if they are older than 2 s
    now = time.monotonic()
    stuck = sum(1 for k in range(n) if outstanding[k] is not None and now - sent_at[k] > 2.0)
    if stuck:
        res.note += f" {stuck} CALLs unanswered for > 2 s at the end"
    if live[0]:
        res.note += f" {live[0]} frames encoded during the run (pre-encoded pool too small)"
    print("result " + json.dumps(res.__dict__), flush=True)
    with contextlib.suppress(Exception):
        client.disconnect()


def role_gen_ws(argv: list[str]) -> None:
    """Stations [lo, hi) as WebSocket connections on one asyncio loop, closed loop."""
    from websockets.asyncio.client import connect

    opts = json.loads(argv[0])
    port: int = opts["port"]
    lo: int = opts["lo"]
    hi: int = opts["hi"]
    enc = _json_encoder()
    res = GenResult()

    async def main() -> None:
        conns = []
        for i in range(lo, hi):
            ws = await connect(
                f"ws://{HOST}:{port}/{station_id(i)}",
                subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                ping_interval=None,
                compression=None,
                open_timeout=30,
                max_queue=None,
            )
            conns.append((i, ws, make_template(enc, transaction_event(i))))
        print("ready {}", flush=True)
        loop = asyncio.get_running_loop()
        line = await loop.run_in_executor(None, sys.stdin.readline)
        go = json.loads(line)
        start, measure, end = float(go["start"]), float(go["measure"]), float(go["end"])
        await asyncio.sleep(max(0.0, start - time.monotonic()))

        async def station(i: int, ws: Any, tpl: Template) -> None:
            s = 0
            while True:
                t0 = time.monotonic()
                if t0 >= end:
                    return
                s += 1
                await ws.send(tpl.frame(message_id(i, s)).decode())
                answer = await ws.recv()
                t1 = time.monotonic()
                res.sent += 1
                if not answer.startswith("[3,"):
                    res.errors += 1
                if measure <= t1 < end:
                    res.n += 1
                    res.lat.append(t1 - t0)

        await asyncio.wait_for(
            asyncio.gather(*(station(i, ws, tpl) for i, ws, tpl in conns)),
            timeout=end - time.monotonic() + 30,
        )
        print("result " + json.dumps(res.__dict__), flush=True)
        for _i, ws, _t in conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1)

    asyncio.run(main())


# --------------------------------------------------------------------------------------------
# Rows: start a service, start the generators, measure, stop everything.
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    system: str  # echo | ocpp-ws | bridge
    stations: int
    mode: str = "closed"  # closed | open
    mirror: bool = False
    workers: int = 1
    rate: float = 0.0  # open loop offered rate
    variant: str = "raw"  # echo: raw | inflight | hop
    reference: bool = False  # the bridge's built-in reference handler instead of the bench's
    source: Source | None = None  # bridge rows: the source tree its bridge runs on

    @property
    def source_name(self) -> str:
        return self.source.name if self.source is not None else "—"

    @property
    def handler_name(self) -> str:
        return "reference" if self.reference else "bench"

    @property
    def label(self) -> str:
        if self.system == "echo":
            return {
                "raw": "paho echo (ceiling)",
                "inflight": "paho echo, paho in-flight limit 1000",
                "hop": "paho echo, paho thread handing over to an asyncio loop",
            }[self.variant]
        if self.system == "ocpp-ws":
            return "`ocpp` WebSocket (OCPP-J)"
        mirror = "mirror on" if self.mirror else "mirror off"
        label = f"bridge, {self.workers} worker{'s' if self.workers > 1 else ''}, {mirror}"
        if self.reference:
            label += ", reference handler (SQLite)"
        return label


@dataclass
class Measurement:
    row: Row
    rate: float  # round trips per second in the window
    lat: list[float]
    cpu: dict[str, float]  # percent of one core: service, broker, generators, machine
    errors: int
    late: int
    notes: list[str]
    #: bridge rows: retained ``{prefix}/+/json/state`` messages on the broker after the row
    state_topics: int | None = None


@dataclass
class Settings:
    duration: float
    warmup: float
    gen_procs: int
    bridge_cmd: list[str]
    handler: str | None
    verbose: bool
    pool_rate: float = 8000.0
    bridge_args: list[str] = field(default_factory=list)
    profile_dir: str | None = None
    profile_args: list[str] = field(default_factory=list)
    profile_systems: tuple[str, ...] = ("bridge",)


def bridge_command(port: int, row: Row, settings: Settings) -> list[str]:
    cmd = [
        *settings.bridge_cmd,
        "serve",
        "--broker",
        f"mqtt://{HOST}:{port}",
        "--workers",
        str(row.workers),
        "--mirror" if row.mirror else "--no-mirror",
        "--log-level",
        "warning",
    ]
    if not row.mirror and row.source is not None and row.source.state_flag:
        # mirror off: no JSON for operators at all, as in a bridge without the state summaries
        cmd.append("--no-state")
    if settings.handler and not row.reference:
        cmd += ["--handler", settings.handler]
    cmd += settings.bridge_args
    return cmd


def start_service(
    row: Row, port: int, settings: Settings, tmp: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start the row's service; returns (process, port the generators talk to)."""
    err = open(Path(tmp) / "service.err", "wb")  # noqa: SIM115 - closed with the process
    if row.system == "echo":
        proc = _spawn(
            _self_cmd("_echo", str(port), row.variant), stdout=subprocess.PIPE, stderr=err
        )
        LineReader(proc).expect("ready", 20)
        return proc, port
    if row.system == "ocpp-ws":
        ws_port = free_port()
        proc = _spawn(_self_cmd("_ws_server", str(ws_port)), stdout=subprocess.PIPE, stderr=err)
        LineReader(proc).expect("ready", 20)
        return proc, ws_port
    proc = _spawn(
        bridge_command(port, row, settings),
        stdout=subprocess.DEVNULL,
        stderr=err,
        cwd=tmp,  # the bridge's SQLite store and any files land in the temporary directory
        # each source's bridge imports its own ocpp_iot (the handler comes from bench/)
        env=child_env(row.source.src if row.source is not None else None),
    )
    wait_bridge_online(port, proc, 30)
    return proc, port


def wait_bridge_online(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the retained ``ocpp/bridge/status`` = online (the stations' boot retries too)."""
    import paho.mqtt.client as mqtt

    got = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.payload.strip().lower().startswith(b"online"):
            got.set()

    def on_connect(c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(f"{PREFIX}/bridge/status", qos=1)

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-watch", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = on_connect
    c.connect(HOST, port)
    c.loop_start()
    try:
        deadline = time.monotonic() + timeout
        while not got.wait(0.1):
            if proc.poll() is not None:
                raise RuntimeError(f"bridge exited with {proc.returncode}")
            if time.monotonic() > deadline:
                # no status topic: carry on, the generators' boot retries will find out
                return
        time.sleep(0.3)  # with several workers, let the others subscribe too
    finally:
        c.loop_stop()
        c.disconnect()


def retained_states(port: int, timeout: float = 10.0) -> int:
    """How many retained ``{prefix}/+/json/state`` messages the broker holds (after a row).

    Subscribing after the measured window costs the row nothing; the retained messages follow
    the SUBACK, so collecting stops once they have stopped coming for a moment.
    """
    import paho.mqtt.client as mqtt

    count = [0]
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.retain:
            count[0] += 1
        last[0] = time.monotonic()

    def on_connect(c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(f"{PREFIX}/+/json/state", qos=0)

    def on_subscribe(_c: Any, _u: Any, _mid: Any, _rc: Any, _p: Any) -> None:
        last[0] = time.monotonic()
        subscribed.set()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-state", protocol=mqtt.MQTTv5)
    c.on_message = on_message
    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.connect(HOST, port)
    c.loop_start()
    try:
        deadline = time.monotonic() + timeout
        if not subscribed.wait(timeout):
            return -1
        while time.monotonic() - last[0] < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return count[0]
    finally:
        c.loop_stop()
        c.disconnect()


def start_profiler(pid: int, row: Row, settings: Settings) -> subprocess.Popen[bytes] | None:
    """py-spy on the service (and its worker processes) for the measured window."""
    spy = shutil.which("py-spy")
    if spy is None or settings.profile_dir is None:
        print("note: py-spy not found (pip install py-spy); not profiling", file=sys.stderr)
        return None
    out = Path(settings.profile_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{row.system}-w{row.workers}-{'mirror' if row.mirror else 'nomirror'}"
    name += f"-{row.handler_name}-{row.stations}-{row.mode}.txt"
    return _spawn(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--nonblocking",
            "--rate",
            "200",
            "--format",
            "raw",
            "--duration",
            str(max(1, int(settings.duration))),
            "-o",
            str(out / name),
            *settings.profile_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_row(row: Row, settings: Settings) -> Measurement:
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-row-") as tmp, mosquitto() as (port, broker):
        service, svc_port = start_service(row, port, settings, tmp)
        gens: list[tuple[subprocess.Popen[bytes], LineReader]] = []
        try:
            procs = max(1, min(settings.gen_procs, row.stations))
            bounds = [row.stations * k // procs for k in range(procs + 1)]
            for k in range(procs):
                lo, hi = bounds[k], bounds[k + 1]
                opts: dict[str, Any] = {
                    "port": svc_port,
                    "lo": lo,
                    "hi": hi,
                    "mode": row.mode,
                    "rate": row.rate * (hi - lo) / row.stations,
                    "offset": k / procs,
                    "check": row.system == "bridge",
                    "boot": row.system == "bridge",
                    "name": f"gen{k}",
                    "warmup": settings.warmup,
                    "duration": settings.duration,
                    "stations": row.stations,
                    "pool_rate": settings.pool_rate,
                }
                role = "_gen_ws" if row.system == "ocpp-ws" else "_gen_mqtt"
                gen = _spawn(
                    _self_cmd(role, json.dumps(opts)),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=open(Path(tmp) / f"gen{k}.err", "wb"),  # noqa: SIM115
                )
                gens.append((gen, LineReader(gen)))
            for _gen, reader in gens:
                info = json.loads(reader.expect("ready", 120) or "{}")
                if not info.get("codec", "ocpp_iot.codecs.cbor").startswith("ocpp_iot"):
                    notes.append(info["codec"])
            start = time.monotonic() + 0.3
            measure = start + settings.warmup
            end = measure + settings.duration
            go = json.dumps({"start": start, "measure": measure, "end": end}) + "\n"
            for gen, _r in gens:
                assert gen.stdin is not None
                gen.stdin.write(go.encode())
                gen.stdin.flush()

            def sample() -> dict[str, float]:
                out = {
                    "service": cpu_seconds(service.pid),
                    "broker": cpu_seconds(broker.pid),
                    "machine": machine_busy(),
                }
                for k, (g, _r) in enumerate(gens):
                    out[f"gen{k}"] = cpu_seconds(g.pid)
                return out

            time.sleep(max(0.0, measure - time.monotonic()))
            c0 = sample()
            spy = None
            if settings.profile_dir and row.system in settings.profile_systems:
                spy = start_profiler(service.pid, row, settings)
            time.sleep(max(0.0, end - time.monotonic()))
            c1 = sample()
            if spy is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spy.wait(15)
                _stop(spy)
            span = settings.duration
            cpu = {k: 100.0 * (c1[k] - c0[k]) / span for k in c0}
            per_gen = [cpu.pop(f"gen{k}") for k in range(len(gens))]
            cpu["generators"] = sum(per_gen)
            cpu["generator max"] = max(per_gen)
            results = []
            for _gen, reader in gens:
                results.append(json.loads(reader.expect("result", 60)))
            states = retained_states(port) if row.system == "bridge" else None
        except Exception:
            err = Path(tmp) / "service.err"
            if err.exists() and err.stat().st_size:
                sys.stderr.write(f"--- service stderr ({row.label}):\n")
                sys.stderr.write(err.read_text(errors="replace")[-3000:] + "\n")
            for k in range(len(gens)):
                gerr = Path(tmp) / f"gen{k}.err"
                if gerr.exists() and gerr.stat().st_size:
                    sys.stderr.write(f"--- generator {k} stderr:\n")
                    sys.stderr.write(gerr.read_text(errors="replace")[-3000:] + "\n")
            raise
        finally:
            for gen, _r in gens:
                _stop(gen, grace=1.0)
            _stop(service)
        if settings.verbose:
            err = Path(tmp) / "service.err"
            if err.exists() and err.stat().st_size:
                sys.stderr.write(err.read_text(errors="replace")[-2000:] + "\n")
    n = sum(r["n"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    errors = sum(r["errors"] for r in results)
    late = sum(r["late"] for r in results)
    for r in results:
        if r["note"].strip():
            notes.append(r["note"].strip())
    if errors:
        notes.append(f"{errors} answers were not the CALLRESULT of the outstanding CALL")
    return Measurement(
        row, n / settings.duration, lat, cpu, errors, late, sorted(set(notes)), states
    )


# --------------------------------------------------------------------------------------------
# Orchestration and tables.
# --------------------------------------------------------------------------------------------


def pct(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return "n/a" if x != x else f"{1000 * x:.1f}"


def bridge_available(settings: Settings, source: Source) -> str | None:
    """None if the source's ``bridge serve`` can be run (its help kept in source), else why not."""
    try:
        out = subprocess.run(
            [*settings.bridge_cmd, "serve", "--help"],
            capture_output=True,
            timeout=60,
            text=True,
            env=child_env(source.src),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if out.returncode != 0:
        return (out.stderr.strip().splitlines() or ["bridge serve --help failed"])[-1]
    source.serve_help = out.stdout
    missing = [f for f in ("--broker", "--workers", "--no-mirror") if f not in out.stdout]
    if missing:
        return f"bridge serve has no {', '.join(missing)}"
    return None


def serve_options(help_text: str) -> list[str]:
    """The long options a ``serve --help`` lists (to compare two sources' CLIs)."""
    import re

    return sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", help_text)))


class BudgetExceeded(TimeoutError):
    """The run took longer than ``--max-seconds`` (or the automatic budget)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stations", default="100,1000", help="comma-separated station counts")
    ap.add_argument("--duration", type=float, default=10.0, help="measured seconds per row")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    ap.add_argument("--repeat", type=int, default=1, help="repetitions of the closed-loop rows")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run; writes nothing")
    ap.add_argument("--gen-procs", type=int, default=2, help="generator processes per row")
    ap.add_argument(
        "--systems",
        default="echo,ocpp-ws,bridge",
        help="which systems to run (comma-separated: echo, ocpp-ws, bridge)",
    )
    ap.add_argument("--no-open-loop", action="store_true", help="skip the open-loop rows")
    ap.add_argument(
        "--diagnostics",
        action="store_true",
        help="also run echo variants: with paho's in-flight limit, and through an asyncio loop",
    )
    ap.add_argument(
        "--bridge-rows",
        default="1off,1on,2off,2on",
        help="bridge rows: workers and mirror, e.g. '1off,2on'",
    )
    ap.add_argument(
        "--handler",
        default="bridge_throughput:BenchChargeSystem",
        help="behaviour for `bridge serve --handler` ('default' for the bridge's own)",
    )
    ap.add_argument("--bridge-cmd", default=None, help="command that runs the bridge CLI")
    ap.add_argument(
        "--bridge-args", default="", help="extra options for `bridge serve` (one string)"
    )
    ap.add_argument("--no-write", action="store_true", help=f"do not write {DOC.relative_to(ROOT)}")
    ap.add_argument("--max-seconds", type=float, default=0, help="abort after this long (0: auto)")
    ap.add_argument(
        "--reference-row",
        action="store_true",
        help="also measure the bridge with its built-in reference handler (1 worker, mirror off)",
    )
    ap.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="run py-spy on the bridge during each measured window; raw stacks go to DIR",
    )
    ap.add_argument(
        "--pool-rate",
        type=float,
        default=8000.0,
        help="closed-loop rate (/s, all stations) the pre-encoded frame pool is sized for",
    )
    ap.add_argument("--profile-args", default="", help="extra py-spy record options, e.g. '--gil'")
    ap.add_argument(
        "--snapshot",
        metavar="REV",
        default=None,
        help="run the services and generators on `git archive REV src` instead of the working "
        "tree (other people's uncommitted edits stay out of the measurement)",
    )
    ap.add_argument(
        "--compare",
        metavar="REV",
        default=None,
        help="run every bridge row (closed and open loop) on `git archive REV src` too, "
        "interleaved with the current source (working tree or --snapshot) in each repetition: "
        "old, new, old, new; the tables get a source column and new/old ratios",
    )
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    stations = [int(s) for s in args.stations.split(",") if s.strip()]
    tmp_dirs: list[tempfile.TemporaryDirectory[str]] = []
    revision = None
    if args.snapshot:
        snapshot_dir, revision = extract_source(args.snapshot)
        tmp_dirs.append(snapshot_dir)
        SRC[0] = Path(snapshot_dir.name) / "src"
    args.revision = revision
    # the current source: generators, baselines and the (new) bridge; the wire format of the
    # compact CBOR frames is the same in the old revision, so the generators speak to both
    current = Source(revision or "working tree", SRC[0], "new" if args.compare else "")
    sources = [current]
    args.compare_revision = None
    if args.compare:
        old_dir, old_rev = extract_source(args.compare)
        tmp_dirs.append(old_dir)
        if old_rev == current.name:
            print(f"error: --compare and --snapshot are both {old_rev}", file=sys.stderr)
            for d in tmp_dirs:
                d.cleanup()
            return 2
        args.compare_revision = old_rev
        sources = [Source(old_rev, Path(old_dir.name) / "src", "old"), current]
    if args.quick:
        stations, args.duration, args.warmup, args.repeat = [20], 2.0, 1.0, 1
        args.no_write = True
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    bridge_cmd = (
        args.bridge_cmd.split()
        if args.bridge_cmd
        else [sys.executable, "-c", "from ocpp_iot.bridge.cli import main; main()"]
    )
    settings = Settings(
        duration=args.duration,
        warmup=args.warmup,
        gen_procs=args.gen_procs,
        bridge_cmd=bridge_cmd,
        handler=None if args.handler == "default" else args.handler,
        verbose=args.verbose,
        profile_dir=args.profile,
        pool_rate=args.pool_rate,
        bridge_args=args.bridge_args.split(),
        profile_args=args.profile_args.split(),
    )
    notes: list[str] = []
    if "bridge" in systems:
        for source in sources:
            why = bridge_available(settings, source)
            if why and args.compare:
                print(f"error: bridge of {source.name}: {why}", file=sys.stderr)
                for d in tmp_dirs:
                    d.cleanup()
                return 2
            if why:
                notes.append(f"bridge rows skipped: {why}")
                print(f"note: bridge rows skipped: {why}", file=sys.stderr)
                systems.remove("bridge")
        if args.compare and "bridge" in systems:
            old_opts, new_opts = (set(serve_options(x.serve_help)) for x in sources)
            if old_opts != new_opts:
                notes.append(
                    "`bridge serve` options differ: only in the old: "
                    f"{', '.join(sorted(old_opts - new_opts)) or 'none'}; only in the new: "
                    f"{', '.join(sorted(new_opts - old_opts)) or 'none'}"
                )
            for x in sources:
                if not x.state_flag:
                    notes.append(
                        f"{x.name}'s `bridge serve` has no --no-state: whatever it does "
                        "for the retained json/state summaries it does with the mirror off too "
                        "(see the json/state counts)"
                    )

    closed_rows: list[Row] = []
    for n in stations:
        if "echo" in systems:
            closed_rows.append(Row("echo", n))
            if args.diagnostics:
                closed_rows.append(Row("echo", n, variant="inflight"))
                closed_rows.append(Row("echo", n, variant="hop"))
        if "ocpp-ws" in systems:
            closed_rows.append(Row("ocpp-ws", n))
        if "bridge" in systems:
            for workers in (1, 2):
                for mirror in (False, True):
                    if f"{workers}{'on' if mirror else 'off'}" in args.bridge_rows.split(","):
                        closed_rows.append(Row("bridge", n, mirror=mirror, workers=workers))
            if args.reference_row:
                closed_rows.append(Row("bridge", n, reference=True))
    bridge_sources: list[Source | None] = list(sources)
    open_repeat = args.repeat if args.compare else 1
    runs = sum(len(bridge_sources) if r.system == "bridge" else 1 for r in closed_rows)
    open_runs = len(stations) * (1 + open_repeat * len(bridge_sources))
    per_row = args.warmup + args.duration + 8
    budget = args.max_seconds or (per_row * (runs * args.repeat + open_runs) * 2 + 120)

    def on_alarm(_sig: int, _frm: Any) -> None:
        raise BudgetExceeded(f"benchmark exceeded its time budget of {budget:.0f} s")

    def on_term(sig: int, _frm: Any) -> None:
        raise KeyboardInterrupt(f"signal {sig}")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(int(budget))
    started = dt.datetime.now(dt.UTC)
    measured: list[Measurement] = []
    open_measured: list[Measurement] = []
    cut_short = False
    try:
        for rep in range(args.repeat):
            for base_row in closed_rows:
                # bridge rows once per source, old then new; baselines once
                for tree in bridge_sources if base_row.system == "bridge" else [None]:
                    row = replace(base_row, source=tree)
                    m = run_row(row, settings)
                    measured.append(m)
                    src = f" [{row.source_name}]" if args.compare and tree else ""
                    print(
                        f"[{rep + 1}/{args.repeat}] {row.label + src:48s} {row.stations:5d} "
                        f"stations: {fmt_rate(m.rate):>7s}/s  cpu service "
                        f"{m.cpu['service']:.0f}% broker {m.cpu['broker']:.0f}% generators "
                        f"{m.cpu['generators']:.0f}% machine {m.cpu['machine']:.0f}%"
                        + (f" json/state {m.state_topics}" if m.state_topics is not None else "")
                        + (f"  ({'; '.join(m.notes)})" if m.notes else ""),
                        file=sys.stderr,
                        flush=True,
                    )
        if not args.no_open_loop:
            for n in stations:
                ref = "bridge" if "bridge" in systems else "echo"
                # with --compare both sources get the same offered rate: half the old code's
                base = [
                    m.rate
                    for m in measured
                    if m.row.system == ref
                    and m.row.stations == n
                    and m.row.workers == 1
                    and not m.row.mirror
                    and not m.row.reference
                    and m.row.variant == "raw"
                    and (ref != "bridge" or m.row.source is sources[0])
                ]
                if not base:
                    continue
                offered = statistics.median(base) / 2
                for rep in range(open_repeat):
                    for system in ("bridge", "echo"):
                        if system not in systems or (system == "echo" and rep > 0):
                            continue
                        for tree in bridge_sources if system == "bridge" else [None]:
                            row = Row(system, n, mode="open", rate=offered, source=tree)
                            m = run_row(row, settings)
                            open_measured.append(m)
                            src = f" [{row.source_name}]" if args.compare and tree else ""
                            print(
                                f"[open {rep + 1}/{open_repeat}] {row.label + src:48s} {n:5d} "
                                f"stations: offered {offered:,.0f}/s got {m.rate:,.0f}/s "
                                f"p50 {fmt_ms(pct(m.lat, 0.5))} ms "
                                f"p99 {fmt_ms(pct(m.lat, 0.99))} ms",
                                file=sys.stderr,
                                flush=True,
                            )
    except BudgetExceeded as exc:
        if not measured:
            raise
        # what was measured is still shown; an incomplete run is not written
        print(f"error: {exc}; the rows not run are missing below", file=sys.stderr)
        notes.append(f"incomplete: {exc} (the rows not run are missing)")
        cut_short = True
        args.no_write = True
    finally:
        signal.alarm(0)
        stop_all()
        for d in tmp_dirs:
            d.cleanup()

    text = render(measured, open_measured, stations, args, notes, started)
    print(text)
    if cut_short:
        return 1
    if not args.no_write:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        # a hand-written analysis after the marker survives new runs
        if DOC.exists() and ANALYSIS_MARKER in (old := DOC.read_text()):
            text += "\n" + old[old.index(ANALYSIS_MARKER) :]
        DOC.write_text(text)
        print(f"written to {DOC}", file=sys.stderr)
    return 0


def render(
    measured: list[Measurement],
    open_measured: list[Measurement],
    stations: list[int],
    args: argparse.Namespace,
    notes: list[str],
    started: dt.datetime,
) -> str:
    import psutil

    out: list[str] = []
    out.append("# Bridge throughput\n")
    out.append(
        f"Measured {started:%Y-%m-%d %H:%M} UTC by `bench/bridge_throughput.py "
        f"--stations {','.join(map(str, stations))} --duration {args.duration:g} "
        f"--warmup {args.warmup:g} --repeat {args.repeat}"
        + (f" --compare {args.compare_revision}" if args.compare_revision else "")
        + "`"
        + (f" on commit {args.revision}" if args.revision else "")
        + (
            f" (old: commit {args.compare_revision}; new: "
            f"{'commit ' + args.revision if args.revision else 'the working tree'})"
            if args.compare_revision
            else ""
        )
        + f" on {psutil.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}, "
        f"{_mosquitto_version()}, one fresh broker per row on 127.0.0.1. The machine is shared: "
        "the `machine` CPU column includes other users.\n"
    )
    out.append("## Closed loop (one outstanding CALL per station, back to back)\n")
    out.append(
        "Round trips per second over the measured window: min / median of the repetitions; "
        "`vs echo` is the ratio of the medians at the same station count. CPU in % of one "
        "core during the window (median): the service (all its processes), mosquitto, the "
        "load generators (all, and the busiest), and the whole machine (of "
        f"{100 * (psutil.cpu_count() or 1)}%). The service's CPU time per round trip is the "
        "figure least disturbed by other load on the machine. `source`: the tree the "
        "bridge ran on (a short commit, or the working tree).\n"
    )
    out.append(
        "| system | source | stations | round trips/s min | median | vs echo | service CPU "
        "| service CPU per round trip | broker CPU | generators CPU (busiest) | machine CPU |"
    )
    out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    groups: dict[tuple[str, int, str], list[Measurement]] = {}
    for m in measured:
        groups.setdefault((m.row.label, m.row.stations, m.row.source_name), []).append(m)
    medians: dict[tuple[str, int, str], float] = {}
    cpu_per_rt: dict[tuple[str, int, str], float] = {}
    for key, ms in groups.items():
        medians[key] = statistics.median(m.rate for m in ms)
    all_notes = list(notes)
    for n in stations:
        echo = medians.get(("paho echo (ceiling)", n, "—"))
        for (label, sn, source), ms in groups.items():
            if sn != n:
                continue
            rates = [m.rate for m in ms]
            med = medians[(label, sn, source)]

            def cpu(k: str, ms: list[Measurement] = ms) -> float:
                return statistics.median(m.cpu[k] for m in ms)

            ratio = f"{med / echo:.0%}" if echo else "n/a"
            per_rt = statistics.median(
                10_000 * m.cpu["service"] / m.rate if m.rate else float("nan") for m in ms
            )
            cpu_per_rt[(label, sn, source)] = per_rt
            out.append(
                f"| {label} | {source} | {n:,} | {fmt_rate(min(rates))} | {fmt_rate(med)} "
                f"| {ratio} "
                f"| {cpu('service'):.0f}% | {per_rt:.0f} µs | {cpu('broker'):.0f}% "
                f"| {cpu('generators'):.0f}% ({cpu('generator max'):.0f}%) "
                f"| {cpu('machine'):.0f}% |"
            )
            for m in ms:
                for note in m.notes:
                    all_notes.append(f"{label} ({source}), {n:,} stations: {note}")
    out.append("")
    if open_measured:
        out.append("## Open loop (fixed offered rate, spread evenly over the stations)\n")
        out.append(
            "Offered rate: half the closed-loop median of the bridge (1 worker, mirror off) at "
            "the same station count (of the echo when the bridge is not measured; with "
            "`--compare`, of the old code's bridge, the same rate for both). Latency from "
            "the moment a CALL was due to the moment its answer arrived (a CALL due while the "
            "station's previous one is unanswered waits, and its wait counts).\n"
        )
        out.append(
            "| system | source | stations | offered /s | answered /s | p50 ms | p99 ms | max ms "
            "| late sends | service CPU |"
        )
        out.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for m in open_measured:
            out.append(
                f"| {m.row.label} | {m.row.source_name} | {m.row.stations:,} "
                f"| {fmt_rate(m.row.rate)} "
                f"| {fmt_rate(m.rate)} | {fmt_ms(pct(m.lat, 0.5))} | {fmt_ms(pct(m.lat, 0.99))} "
                f"| {fmt_ms(m.lat[-1] if m.lat else float('nan'))} | {m.late} "
                f"| {m.cpu['service']:.0f}% |"
            )
            for note in m.notes:
                all_notes.append(
                    f"{m.row.label} ({m.row.source_name}, open loop), {m.row.stations:,} "
                    f"stations: {note}"
                )
        out.append("")
    if args.compare_revision:
        out.extend(comparison(measured, open_measured, stations))
    # the goals are about the current source (the new one with --compare)
    old_name = args.compare_revision

    def current(d: dict[tuple[str, int, str], float]) -> dict[tuple[str, int], float]:
        return {(label, n): v for (label, n, src), v in d.items() if src != old_name}

    new_open = [m for m in open_measured if m.row.source is None or m.row.source.role != "old"]
    out.extend(summary(current(medians), current(cpu_per_rt), new_open, stations))
    out.append("## How it is measured\n")
    out.extend(
        [
            "- Load: OCPP 2.0.1 TransactionEvent CALLs (eventType Updated, one meterValue with 9 "
            "sampledValues), encoded before the timed phase: a pool of frames per station, one "
            "per message id (the compact codec packs message ids, so ids cannot be spliced into "
            "encoded bytes; with OCPP-J they are). MQTT: compact CBOR on `ocpp/{station}/up`, "
            "answers on "
            "`ocpp/{station}/down`, QoS 1, MQTT 5. WebSocket: the same frames as OCPP-J text, "
            "no permessage-deflate.",
            "- Stations: a few generator processes (`--gen-procs`, default 2), each one paho "
            "client (or one asyncio loop of WebSocket connections) owning a slice of the stations "
            "and subscribed to their `down` topics. Before the bridge rows every station sends a "
            "BootNotification and a TransactionEvent Started (not timed). Answers from the bridge "
            "are decoded and checked (all during warm-up, 1 in 8 afterwards).",
            "- Echo: one paho client subscribed to `ocpp/+/up` republishing each payload "
            "unchanged to `ocpp/{station}/down` (QoS 1, in paho's network thread, TCP_NODELAY, "
            "no in-flight limit): what a Python service on paho can do at best.",
            '- `ocpp` WebSocket: `ocpp.v201.ChargePoint` with an `@on("TransactionEvent")` '
            "handler returning `call_result.TransactionEvent()`, served by `websockets` "
            "(one process, one asyncio loop); payload validation as the package does it.",
            "- Bridge: `bridge serve --workers N --mirror/--no-mirror` as a subprocess with a "
            "trivial handler (`bench/bridge_throughput.py:BenchChargeSystem`: TransactionEvent "
            "answers `{}`), so the rows measure the bridge, not a handler's storage. With the "
            "mirror on, nobody subscribes to the `json/` topics (the broker drops those copies).",
            "- Broker: a fresh mosquitto per row (`user root`, anonymous, no persistence, "
            "`set_tcp_nodelay true`, `max_inflight_messages 0`, `max_queued_messages 100000`).",
            "- Open loop: each generator sends at a fixed rate, round-robin over its stations, so "
            "every station sends at offered rate / stations; never more than one outstanding "
            "CALL per station (a CALL that falls due while its station waits is sent on the "
            "answer and counted as late, its latency measured from when it was due).",
            "- All traffic is on 127.0.0.1; every process the script starts is stopped at the end "
            "of its row and on any error; the run has a time budget (`--max-seconds`).",
            "- `--compare REV`: every bridge row (closed loop, each worker/mirror variant, and "
            "the open loop) runs on `git archive REV src` (old) and on the current source (new: "
            "the working tree, or `--snapshot`'s commit), old then new in each repetition, each "
            "through its own `bridge serve` (PYTHONPATH at that tree's `src`); the generators, "
            "the echo and the `ocpp` WebSocket rows use the current source (the compact CBOR "
            "frames are the same in both) and run once per repetition. A source whose "
            "`bridge serve` offers `--no-state` gets it on its mirror-off rows.",
            "",
        ]
    )
    out.extend(how_to_run())
    if all_notes:
        out.append("## Notes from this run\n")
        out.extend(f"- {x}" for x in sorted(set(all_notes)))
        out.append("")
    return "\n".join(out) + "\n"


def comparison(
    measured: list[Measurement], open_measured: list[Measurement], stations: list[int]
) -> list[str]:
    """New/old ratios per bridge variant: the repetitions paired (old and new of one repetition
    ran back to back), so min and median are of the per-repetition ratios."""
    out = ["## Old and new code (same run)\n"]
    out.append(
        "Per bridge variant: new/old throughput, the ratio of the new code's round trips/s to "
        "the old code's in the same repetition (they ran back to back), min and median over "
        "the repetitions; the open-loop p99 is the median of the repetitions' p99 at the same "
        "offered rate. `json/state`: retained `ocpp/+/json/state` summaries on the broker "
        "after each row (median), i.e. whether that code publishes them.\n"
    )

    def side(ms: list[Measurement], role: str) -> list[Measurement]:
        return [m for m in ms if m.row.source is not None and m.row.source.role == role]

    def states(ms: list[Measurement]) -> str:
        counts = [m.state_topics for m in ms if m.state_topics is not None]
        return f"{statistics.median(counts):.0f}" if counts else "n/a"

    verdicts: list[str] = []
    for n in stations:
        labels: list[str] = []
        for m in measured:
            if m.row.system == "bridge" and m.row.stations == n and m.row.label not in labels:
                labels.append(m.row.label)
        for label in labels:
            ms = [m for m in measured if m.row.label == label and m.row.stations == n]
            old, new = side(ms, "old"), side(ms, "new")
            ratios = [b.rate / a.rate for a, b in zip(old, new, strict=False) if a.rate]
            text = f"- {label}, {n:,} stations: new/old throughput: "
            if ratios:
                text += f"min {min(ratios):.2f}, median {statistics.median(ratios):.2f}"
            else:
                text += "n/a"
            om = [m for m in open_measured if m.row.label == label and m.row.stations == n]
            o_old, o_new = side(om, "old"), side(om, "new")
            p_old = p_new = float("nan")
            if o_old and o_new:
                p_old = statistics.median(pct(m.lat, 0.99) for m in o_old)
                p_new = statistics.median(pct(m.lat, 0.99) for m in o_new)
                text += f"; open-loop p99 old {fmt_ms(p_old)} ms, new {fmt_ms(p_new)} ms"
            text += f" (json/state: old {states(old)}, new {states(new)})"
            out.append(text)
            if ratios:
                med = statistics.median(ratios)
                verdicts.append(
                    f"- {label}, {n:,} stations: throughput {med:.2f}x the old code: goal "
                    f">= 0.95x **{'met' if med >= 0.95 else 'missed'}**"
                    + (
                        f"; open-loop p99 {fmt_ms(p_new)} ms vs {fmt_ms(p_old)} ms: goal not "
                        f"worse **{'met' if p_new <= p_old else 'missed'}**"
                        if p_old == p_old and p_new == p_new
                        else ""
                    )
                    + "."
                )
    out.append("")
    if verdicts:
        out.append("Against issue 14's check (median of the repetitions):\n")
        out.extend(verdicts)
        out.append("")
    return out


def summary(
    medians: dict[tuple[str, int], float],
    cpu_per_rt: dict[tuple[str, int], float],
    open_measured: list[Measurement],
    stations: list[int],
) -> list[str]:
    out: list[str] = ["## Goals\n"]
    b1 = "bridge, 1 worker, mirror off"
    for n in stations:
        echo = medians.get(("paho echo (ceiling)", n))
        bridge = medians.get((b1, n))
        ws = medians.get(("`ocpp` WebSocket (OCPP-J)", n))
        if echo and bridge:
            ok = bridge >= 0.75 * echo
            extra = f"; {bridge / ws:.1f}x the `ocpp` WebSocket server" if ws else ""
            out.append(
                f"- {n:,} stations: bridge {fmt_rate(bridge)}/s = {bridge / echo:.0%} of the echo "
                f"ceiling ({fmt_rate(echo)}/s){extra}: goal >= 75% "
                f"**{'met' if ok else 'missed'}**."
            )
            c_b = cpu_per_rt.get((b1, n))
            c_e = cpu_per_rt.get(("paho echo (ceiling)", n))
            if c_b and c_e:
                out.append(
                    f"  CPU per round trip: bridge {c_b:.0f} µs, echo {c_e:.0f} µs "
                    f"({c_b / c_e:.1f}x)."
                )
        on = medians.get(("bridge, 1 worker, mirror on", n))
        if bridge and on:
            out.append(
                f"- {n:,} stations: the JSON mirror costs {1 - on / bridge:.0%} of the throughput "
                f"({fmt_rate(bridge)}/s off, {fmt_rate(on)}/s on, 1 worker)."
            )
        two = medians.get(("bridge, 2 workers, mirror off", n))
        if bridge and two:
            out.append(
                f"- {n:,} stations: a second worker gives {two / bridge:.2f}x "
                f"({fmt_rate(two)}/s, mirror off) on these 2 shared cores."
            )
    open_1000 = [m for m in open_measured if m.row.system == "bridge" and m.row.stations == 1000]
    if open_1000:
        # several repetitions (--compare): the median of their p99s
        p99 = statistics.median(pct(m.lat, 0.99) for m in open_1000)
        out.append(
            f"- open loop, 1,000 stations at {fmt_rate(open_1000[0].row.rate)}/s: p99 "
            f"{fmt_ms(p99)} ms: goal < 50 ms **{'met' if p99 < 0.05 else 'missed'}**."
        )
    big = max(stations) if stations else 0
    bridge = medians.get((b1, big))
    c_b = cpu_per_rt.get((b1, big))
    if bridge:
        full = (
            f"; with a core of its own, 60 s / {c_b:.0f} µs = {fmt_rate(60e6 / c_b)}" if c_b else ""
        )
        out.append(
            f"- Stations one worker serves at a 60 s sampling interval: {fmt_rate(bridge)}/s x 60 "
            f"= **{fmt_rate(bridge * 60)}** (closed-loop maximum at {big:,} stations, measured "
            f"here on a shared machine{full}). Caveat: that is the worker flat out with nothing "
            "but TransactionEvents arriving evenly; real stations also send heartbeats and "
            "status notifications, reconnect in bursts (a boot storm after an outage), and a real "
            "handler does work of its own (the reference handler's row shows SQLite's cost): "
            "plan for about half."
        )
    out.append("")
    return out


def how_to_run() -> list[str]:
    return [
        "## How to run it\n",
        "```",
        "python bench/bridge_throughput.py --quick                     # smoke run, writes nothing",
        "python bench/bridge_throughput.py --repeat 3                  # these tables, "
        "100 and 1,000 stations",
        "python bench/bridge_throughput.py --stations 1000 --repeat 3 --snapshot HEAD "
        "--compare REV",
        "```\n",
        "`--snapshot REV` runs everything on `git archive REV src` instead of the working tree "
        "(uncommitted edits stay out). `--compare REV` adds the old code: each bridge row runs "
        "on REV and on the current source in every repetition, interleaved (old, new, old, "
        "new), and a section of new/old ratios follows the tables. `--no-write` keeps this file "
        "as it is; `--bridge-rows 1off,2off` picks the bridge variants; `--systems bridge` "
        "leaves the baselines out; `--no-open-loop` the open-loop rows.\n",
    ]


def _mosquitto_version() -> str:
    try:
        out = subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True, timeout=10)
        first = (out.stdout or out.stderr).splitlines()[0]
        return first.strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "mosquitto"


def __getattr__(name: str) -> Any:
    """``BenchChargeSystem``, built on first access (``bridge serve --handler`` imports it).

    A trivial 2.0.1 charge system: TransactionEvent answers an empty response, BootNotification
    accepts; it measures the bridge, not a handler's storage.
    """
    if name != "BenchChargeSystem":
        raise AttributeError(name)
    from ocpp_iot.behaviours.v201 import BasicChargeSystem  # type: ignore[attr-defined]

    class BenchChargeSystem(BasicChargeSystem):  # type: ignore[misc, valid-type]
        def boot_notification(self, request: Any, ctx: Any) -> Any:
            return {
                "currentTime": "2026-06-05T12:50:00.000Z",
                "interval": 300,
                "status": "Accepted",
            }

        def transaction_event(self, request: Any, ctx: Any) -> Any:
            return {}

        def authorize(self, request: Any, ctx: Any) -> Any:
            return {"idTokenInfo": {"status": "Accepted"}}

        def heartbeat(self, request: Any, ctx: Any) -> Any:
            return {"currentTime": "2026-06-05T12:50:00.000Z"}

        def status_notification(self, request: Any, ctx: Any) -> Any:
            return {}

    globals()["BenchChargeSystem"] = BenchChargeSystem
    return BenchChargeSystem


ROLES: dict[str, Callable[[list[str]], None]] = {
    "_echo": role_echo,
    "_ws_server": role_ws_server,
    "_gen_mqtt": role_gen_mqtt,
    "_gen_ws": role_gen_ws,
}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        # children die with their parent's process group; keep them quiet on SIGTERM
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        ROLES[sys.argv[1]](sys.argv[2:])
    else:
        sys.exit(main())
