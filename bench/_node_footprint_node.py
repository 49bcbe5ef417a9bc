"""The child processes of ``bench/node_footprint.py`` for our charger node (the parent's docstring
says what is measured; this module only runs the stations and reports JSON lines).

``session``: one station built as ``charger-node run`` builds it (``NodeConfig``, the node's own
machine and MQTT link), driven on a virtual clock: whenever no CALL of ours is waiting for its
answer and no frame has arrived, the clock jumps to the machine's ``next_wakeup``; otherwise the
driver waits for the bridge's real answer over MQTT. The charging hour of the scenario runs in
seconds. It records every frame as sent and received (compact CBOR) with its virtual time, every
byte the MQTT client wrote to and read from its socket, and VmRSS at the end.

``many``: n stations in one process, built as ``charger-node simulate`` builds them (one
``Node`` each, its own MQTT connection and data folder), each run until booted.

``parts``: the same n stations built part by part, with VmRSS (and, with ``--trace``, the
Python heap as ``tracemalloc`` sees it) after each part: where the memory per station goes.

``paho``: n bare paho clients and nothing else (no asyncio, no station): the floor that one
paho-mqtt client per station puts under the memory per station.

``gmqtt``: the same with n gmqtt clients on asyncio: what the other maintained MQTT 5 client
would put there instead.

Run as ``python bench/_node_footprint_node.py MODE ...``; ``bench/`` is then on ``sys.path``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from node_footprint import emit, raise_fd_limit, vm_kib

VERSION = "2.0.1"
HEARTBEAT_GUARD = 4  # heartbeats the session may see after the hour before it gives up


class VirtualClock:
    """Seconds since the epoch, starting at the real time, moved only by :meth:`jump`."""

    def __init__(self) -> None:
        self.t = time.time()
        self.jumps = 0

    def __call__(self) -> float:
        return self.t

    def jump(self, to: float) -> None:
        if to > self.t:
            self.t = to
            self.jumps += 1


def _count_socket(paho_client: Any) -> dict[str, Any]:
    """Record every byte paho writes to / reads from its socket (its ``_sock_send`` and
    ``_sock_recv``: the buffered reader of ``FastPaho`` hands paho exactly the bytes read)."""
    wire: dict[str, Any] = {"up": bytearray(), "down": bytearray(), "writes": 0}
    send, recv = paho_client._sock_send, paho_client._sock_recv

    def counting_send(buf: bytes | bytearray) -> int:
        n: int = send(buf)
        wire["up"] += bytes(buf[:n])
        wire["writes"] += 1
        return n

    def counting_recv(size: int) -> bytes:
        data: bytes = recv(size)
        wire["down"] += data
        return data

    paho_client._sock_send = counting_send
    paho_client._sock_recv = counting_recv
    return wire


async def session(broker: str, data_dir: str, scenario: str, station: str) -> None:
    import ocpp_iot.charger_node.cli  # noqa: F401  # what a `charger-node run` process holds
    from ocpp_iot.charger_node.node import Node, NodeConfig
    from ocpp_iot.charger_node.runtime import decode_frame, encode_frame
    from ocpp_iot.rpc import Call, CallError, CallResult
    from ocpp_iot.transports.link import FrameReceived, LinkDown, LinkUp

    modules_before = set(sys.modules)
    rss_imports = vm_kib()
    clock = VirtualClock()
    # the values `charger-node run --station-id CP1 --broker URL --data-dir D --version 2.0.1
    # --scenario F` gives NodeConfig (the rest are the command's defaults, NodeConfig's too)
    cfg = NodeConfig(
        station_id=station,
        broker=broker,
        version=VERSION,
        data_dir=Path(data_dir),
        scenario=scenario,
    )
    node = Node(cfg, clock=clock)
    machine = node._make_machine()  # what Node.run builds for each (re)start
    link = node.link_factory(cfg)
    wire = _count_socket(link.client._client)  # type: ignore[attr-defined]
    frames: list[tuple[str, float, str, str]] = []  # (up|down, t, kind, CBOR hex)
    t0 = clock()
    state = {"outstanding": 0, "heartbeats": 0, "heartbeat_answered": False}

    def kind(frame: Any) -> str:
        if isinstance(frame, Call):
            return f"CALL {frame.action}"
        return "CALLRESULT" if isinstance(frame, CallResult) else type(frame).__name__

    def flush() -> None:
        for frame in machine.take_frames():
            if not link.up:
                raise RuntimeError("the link went down during the session")
            data = encode_frame(frame, VERSION, cfg.encoding)
            frames.append(("up", clock() - t0, kind(frame), data.hex()))
            if isinstance(frame, Call):
                state["outstanding"] += 1
                if frame.action == "Heartbeat":
                    state["heartbeats"] += 1
            link.send(data, json=cfg.encoding == "json")

    def on_event(event: object) -> None:
        now = clock()
        if isinstance(event, LinkUp):
            machine.link_up(now)
        elif isinstance(event, LinkDown):
            raise RuntimeError(f"the link went down during the session: {event}")
        elif isinstance(event, FrameReceived):
            frame = decode_frame(event.data, VERSION, json=event.json)
            frames.append(("down", now - t0, kind(frame), bytes(event.data).hex()))
            if isinstance(frame, CallResult | CallError):
                state["outstanding"] -= 1
                if state["heartbeats"]:
                    state["heartbeat_answered"] = True
            machine.receive(frame, now)
        flush()

    machine.start(clock(), "PowerUp")
    await link.open()
    receiving: asyncio.Future[Any] = asyncio.ensure_future(link.receive())
    started = time.monotonic()
    while not state["heartbeat_answered"]:
        now = clock()
        machine.tick(now)
        flush()
        if state["heartbeat_answered"]:
            break
        if state["heartbeats"] > HEARTBEAT_GUARD:
            raise RuntimeError("heartbeats without answers")
        if state["outstanding"] > 0 or not machine.online:
            # a real answer (or the connection) is on its way: wait for it in real time
            done, _ = await asyncio.wait({receiving}, timeout=30)
            if not done:
                raise RuntimeError(f"no answer from the bridge within 30 s: {frames[-1][:3]}")
        else:
            await asyncio.sleep(0)  # whatever the socket already holds is read first
            if not receiving.done():
                clock.jump(machine.next_wakeup(now))
                continue
        on_event(receiving.result())
        receiving = asyncio.ensure_future(link.receive())
    took = time.monotonic() - started
    rss, hwm = vm_kib("VmRSS"), vm_kib("VmHWM")
    new_modules = sorted(set(sys.modules) - modules_before)
    receiving.cancel()
    await link.close()
    machine.outbox.close()
    from importlib.metadata import version

    emit(
        "session",
        rss_kib=rss,
        hwm_kib=hwm,
        rss_imports_kib=rss_imports,
        frames=frames,
        wire={"up": wire["up"].hex(), "down": wire["down"].hex(), "writes": wire["writes"]},
        keepalive=cfg.keepalive,
        topic_up=f"{cfg.prefix}/{station}/up",
        topic_down=f"{cfg.prefix}/{station}/down",
        took_s=took,
        jumps=clock.jumps,
        pydantic_loaded="pydantic" in sys.modules,
        modules_after_imports=len(new_modules),
        new_top_packages=sorted({m.split(".")[0] for m in new_modules}),
        versions={p: version(p) for p in ("paho-mqtt", "cbor2")},
    )


# -- n stations in one process ------------------------------------------------------------------


def _template(broker: str, data_dir: str) -> Any:
    from ocpp_iot.charger_node.node import NodeConfig

    # `charger-node simulate --broker URL --data-dir D --version 2.0.1`: random traffic
    return NodeConfig(station_id="CP1", broker=broker, version=VERSION, data_dir=Path(data_dir))


def _station_configs(template: Any, n: int) -> list[Any]:
    from ocpp_iot.charger_node.simulate import station_ids

    # as run_simulation makes them: the template with the id, its own folder and seed
    return [
        replace(template, station_id=s, data_dir=Path(template.data_dir) / s, seed=s)
        for s in station_ids(n)
    ]


async def _wait_booted(booted: Any, n: int, timeout: float = 900.0) -> float:
    """Until ``booted()`` counts n (polled: the stations run on their own)."""
    started = time.monotonic()
    while booted() < n:
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"only {booted()} of {n} stations booted in {timeout:.0f} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def many(broker: str, data_dir: str, n: int) -> None:
    raise_fd_limit()
    import ocpp_iot.charger_node.cli  # noqa: F401  # what `charger-node simulate` has imported
    from ocpp_iot.charger_node.node import Node
    from ocpp_iot.charger_node.simulate import open_shared_outbox

    gc.collect()
    idle = vm_kib()
    answers: dict[str, int] = {}

    def counter(station: str) -> Any:
        def on_frame(direction: str, frame: Any) -> None:
            if direction == "down":
                answers[station] = answers.get(station, 0) + 1

        return on_frame

    store = open_shared_outbox(data_dir)  # as run_simulation keeps the outboxes
    nodes = [Node(cfg, on_frame=counter(cfg.station_id), outbox_store=store)
             for cfg in _station_configs(_template(broker, data_dir), n)]  # fmt: skip
    tasks = [asyncio.ensure_future(node.run()) for node in nodes]

    def booted() -> int:
        # registration accepted and the answers to BootNotification and StatusNotification in
        return sum(
            1
            for node in nodes
            if node.runtime is not None
            and node.runtime.machine.registration == "accepted"
            and answers.get(node.cfg.station_id, 0) >= 2
        )

    took = await _wait_booted(booted, n)
    gc.collect()
    all_kib = vm_kib()
    in_tx = sum(1 for node in nodes if node.runtime and node.runtime.machine.tx.active())
    emit("many", n=n, idle_kib=idle, all_kib=all_kib, boot_s=took, in_transaction=in_tx,
         open_fds=len(os.listdir("/proc/self/fd")))  # fmt: skip
    for node in nodes:
        node.stop("stop")
    await asyncio.wait(tasks, timeout=60)
    store.close()


async def parts(broker: str, data_dir: str, n: int, trace: bool) -> None:
    """The stations of :func:`many`, part by part (Node._make_machine's steps, spelt out)."""
    raise_fd_limit()
    import ocpp_iot.charger_node.cli  # noqa: F401
    from ocpp_iot.charger_node.device_model import DeviceModel, JsonFileStore
    from ocpp_iot.charger_node.node import Node, make_link
    from ocpp_iot.charger_node.outbox import Outbox, ReplayPace
    from ocpp_iot.charger_node.runtime import StationRuntime
    from ocpp_iot.charger_node.simulate import open_shared_outbox
    from ocpp_iot.charger_node.station import BootInfo, StationMachine

    if trace:
        import tracemalloc

        tracemalloc.start()
    gc.collect()
    steps: list[dict[str, Any]] = []

    def step(name: str) -> None:
        gc.collect()
        py = tracemalloc.get_traced_memory()[0] if trace else None
        steps.append({"step": name, "rss_kib": vm_kib(), "py_bytes": py})

    step("imports")
    cfgs = _station_configs(_template(broker, data_dir), n)
    nodes = [Node(cfg) for cfg in cfgs]
    step("Node + SimulatedEvse")
    store = open_shared_outbox(data_dir)
    outboxes = [Outbox(store, station=c.station_id, max_messages=c.max_queue) for c in cfgs]
    step("Outbox (one shared SQLite store)")
    models = [
        DeviceModel(model=c.model, vendor_name=c.vendor, serial_number=c.serial_number,
                    firmware_version=c.firmware_version, evses=[1] * len(node.evse.connectors),
                    store=JsonFileStore(c.data_dir / "device-model.json"),
                    defaults=c.variables or None)
        for c, node in zip(cfgs, nodes, strict=True)
    ]  # fmt: skip
    step("DeviceModel")
    machines = [
        StationMachine(c.station_id, c.version, node.evse, model, outbox,
                       boot=BootInfo(c.model, c.vendor, c.serial_number, c.firmware_version),
                       pace=ReplayPace(per_minute=c.replay_per_minute, burst=c.replay_burst))
        for c, node, model, outbox in zip(cfgs, nodes, models, outboxes, strict=True)
    ]  # fmt: skip
    step("StationMachine")
    links = [make_link(c) for c in cfgs]
    step("MqttStationLink (paho client, not connected)")
    runtimes = [
        StationRuntime(m, link, encoding=c.encoding)
        for m, link, c in zip(machines, links, cfgs, strict=True)
    ]
    modules_before = set(sys.modules)
    tasks = [asyncio.ensure_future(r.run("PowerUp")) for r in runtimes]

    def booted() -> int:
        return sum(1 for r in runtimes if r.machine.registration == "accepted"
                   and r.frames_in >= 2)  # fmt: skip

    await _wait_booted(booted, n)
    step("connected and booted")
    new_modules = sorted(set(sys.modules) - modules_before)
    top: list[tuple[str, int]] = []
    if trace:
        snap = tracemalloc.take_snapshot()
        stats = snap.statistics("filename")
        root = str(Path(sys.prefix))
        for s in stats[:15]:
            name = s.traceback[0].filename.replace(root, "<venv>")
            top.append((name.split("site-packages/")[-1], s.size))
    emit("parts", n=n, steps=steps, top=top, modules_loaded_running=new_modules)
    for r in runtimes:
        r.stop("stop")
    await asyncio.wait(tasks, timeout=60)
    store.close()


def codec() -> None:
    """What the first frame costs: the import of what ``charger-node run`` imports, then the
    2.0.1 CBOR codec, imported on first use (``_cbor_codec_v201``, generated at build time),
    timed, with VmRSS; and what glibc's ``malloc_trim`` would give back afterwards."""
    started = time.perf_counter()
    import ocpp_iot.charger_node.cli  # noqa: F401
    from ocpp_iot.codecs import cbor
    from ocpp_iot.rpc import Call

    imported = time.perf_counter()
    before = vm_kib()
    cbor.encode(Call("1", "Heartbeat", {}), VERSION)
    built = time.perf_counter()
    after, hwm = vm_kib(), vm_kib("VmHWM")
    trimmed = None
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        trimmed = vm_kib()
    except (OSError, AttributeError):
        pass
    emit("codec", import_s=imported - started, build_s=built - imported, rss_before_kib=before,
         rss_after_kib=after, hwm_kib=hwm, rss_trimmed_kib=trimmed)  # fmt: skip


def _meter(trace: bool) -> Callable[[], float]:
    """What :func:`paho` and :func:`gmqtt_clients` read before and after their clients (KiB):
    the Python heap by tracemalloc, started now, with ``trace``; else VmRSS. After a collection
    either way."""
    if trace:
        import tracemalloc

        tracemalloc.start()

    def measure() -> float:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] / 1024 if trace else vm_kib()

    return measure


def paho(broker: str, n: int, trace: bool) -> None:
    """n paho clients as our MQTT link configures them (MQTT 5, a retained will, a persistent
    session) and nothing else, connected and subscribed, driven by one ``selectors`` loop:
    VmRSS per client after ``Client()`` and after the SUBACK, each less a first client's (with
    ``trace``, the Python heap by tracemalloc instead)."""
    import selectors
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    raise_fd_limit()
    url = urlsplit(broker)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 86400
    acked: set[int] = set()

    def make(i: int) -> Any:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"P{i}", protocol=mqtt.MQTTv5)
        c.will_set(f"ocpp/P{i}/status", b"offline", qos=1, retain=True)
        c.on_connect = lambda c, _u, _f, _rc, _p: acked.add(id(c))
        c.on_subscribe = lambda c, _u, _m, _r, _p: acked.add(-id(c))
        return c

    def pump(clients: list[Any], done: Any, timeout: float = 300.0) -> None:
        sel = selectors.DefaultSelector()
        for c in clients:
            sel.register(c.socket(), selectors.EVENT_READ, c)
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError("the paho clients did not all connect")
            for c in clients:
                if c.want_write():
                    c.loop_write()
            for key, _ in sel.select(0.05):
                key.data.loop_read()
        sel.close()

    first = make(0)  # what the first client loads (lazy imports, caches) stays outside
    first.connect(host, port, keepalive=60, clean_start=False, properties=props)
    pump([first], lambda: id(first) in acked)
    measure = _meter(trace)
    before = measure()
    clients = [make(i) for i in range(1, n + 1)]
    built = measure()
    for c in clients:
        c.connect(host, port, keepalive=60, clean_start=False, properties=props)
    pump(clients, lambda: all(id(c) in acked for c in clients))
    for i, c in enumerate(clients, 1):
        c.subscribe(f"ocpp/P{i}/down", qos=1)
    pump(clients, lambda: all(-id(c) in acked for c in clients))
    connected = measure()
    emit("paho", n=n, built_kib=(built - before) / n, connected_kib=(connected - before) / n)
    for c in [first, *clients]:
        c.disconnect()
        c.loop_write()


def gmqtt_clients(broker: str, n: int, trace: bool) -> None:
    """n gmqtt clients (the maintained asyncio-native MQTT 5 client: the alternative to paho
    the guide asks to measure before one is hand-written), configured as :func:`paho`'s (MQTT
    5, a retained will, a persistent session), connected and subscribed on one asyncio loop;
    reported as :func:`paho` reports."""
    from urllib.parse import urlsplit

    import gmqtt

    raise_fd_limit()
    url = urlsplit(broker)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    subscribed: set[int] = set()

    def make(i: int) -> Any:
        will = gmqtt.Message(f"ocpp/G{i}/status", b"offline", qos=1, retain=True)
        c = gmqtt.Client(f"G{i}", clean_session=False, session_expiry_interval=86400,
                         will_message=will)  # fmt: skip
        c.on_subscribe = lambda c, _mid, _qos, _p: subscribed.add(id(c))
        return c

    async def connect(clients: list[Any], first: int, timeout: float = 300.0) -> None:
        """``first``: the number of ``clients[0]`` (client ``G{i}`` subscribes to its own
        ``ocpp/G{i}/down``, as :func:`paho`'s do)."""
        await asyncio.gather(*(c.connect(host, port, keepalive=60) for c in clients))
        for i, c in enumerate(clients, first):
            c.subscribe(f"ocpp/G{i}/down", qos=1)
        deadline = time.monotonic() + timeout
        while not all(id(c) in subscribed for c in clients):
            if time.monotonic() > deadline:
                raise TimeoutError("the gmqtt clients did not all subscribe")
            await asyncio.sleep(0.05)

    async def run() -> None:
        first = make(0)  # what the first client loads stays outside, as for paho
        await connect([first], 0)
        measure = _meter(trace)
        before = measure()
        clients = [make(i) for i in range(1, n + 1)]
        built = measure()
        await connect(clients, 1)
        connected = measure()
        emit("gmqtt", n=n, built_kib=(built - before) / n, connected_kib=(connected - before) / n,
             version=gmqtt.__version__)  # fmt: skip
        await asyncio.gather(*(c.disconnect() for c in [first, *clients]))

    asyncio.run(run())


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["session", "many", "parts", "codec", "paho", "gmqtt"])
    ap.add_argument("--broker", default="")
    ap.add_argument("--data-dir", default="")
    ap.add_argument("--scenario", default=None)
    ap.add_argument("--station", default="CP1")
    ap.add_argument("--n", type=int, default=1)
    ap.add_argument("--trace", action="store_true")
    args = ap.parse_args(argv)
    if args.mode == "session":
        asyncio.run(session(args.broker, args.data_dir, args.scenario, args.station))
    elif args.mode == "codec":
        codec()
    elif args.mode == "many":
        asyncio.run(many(args.broker, args.data_dir, args.n))
    elif args.mode == "paho":
        paho(args.broker, args.n, args.trace)
    elif args.mode == "gmqtt":
        gmqtt_clients(args.broker, args.n, args.trace)
    else:
        asyncio.run(parts(args.broker, args.data_dir, args.n, args.trace))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
