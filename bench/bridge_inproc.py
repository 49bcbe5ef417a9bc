"""The bridge's own cost per round trip, in one process, on the in-memory broker.

No mosquitto, no sockets: N stations (memory clients) each send a TransactionEvent Updated
(9 sampled values, as in bench/bridge_throughput.py) and wait for its answer, closed loop; the
table gives round trips per second and the process's CPU per round trip, for variants of the
bridge's configuration, so a change in the bridge's logic shows without the broker's and the
network's noise. It does not replace bridge_throughput.py (real broker, real clients).

    python bench/bridge_inproc.py [--stations 200] [--duration 5] [--repeat 3]

Variants: ``facade`` (the store on its database thread, as shipped) vs ``inline`` (the same
store called in the loop: what the facade costs), with and without the mirror and json/state.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from ocpp_iot.bridge import _wire  # noqa: E402
from ocpp_iot.bridge.reference import build_reference  # noqa: E402
from ocpp_iot.bridge.service import Bridge, BridgeConfig  # noqa: E402
from ocpp_iot.bridge.store import AsyncStore, SqliteStore  # noqa: E402
from ocpp_iot.rpc import Call  # noqa: E402
from ocpp_iot.transports.memory import MemoryBroker  # noqa: E402
from ocpp_iot.transports.mqtt import MqttSettings  # noqa: E402


def transaction_event(seq: int) -> dict[str, Any]:
    sampled = [
        {"value": 1234.5 + seq, "measurand": "Energy.Active.Import.Register"},
        {"value": 7200.0, "measurand": "Power.Active.Import"},
        *[
            {"value": 16.0 + i, "measurand": "Current.Import", "phase": p}
            for i, p in enumerate(("L1", "L2", "L3"))
        ],
        *[
            {"value": 230.0 + i, "measurand": "Voltage", "phase": p}
            for i, p in enumerate(("L1-N", "L2-N", "L3-N"))
        ],
        {"value": 55.0, "measurand": "SoC"},
    ]
    return {
        "eventType": "Updated",
        "timestamp": "2026-06-05T12:53:51.074Z",
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
        "meterValue": [{"timestamp": "2026-06-05T12:53:51.074Z", "sampledValue": sampled}],
    }


class InlineStore(AsyncStore):
    """The store called in the loop, futures already done: what the facade's thread costs."""

    def __init__(self, store: SqliteStore) -> None:  # no thread
        self.store = store
        self.path = store.path
        self._version_ttl = 0.0  # no version cache either
        self._closed = False

    def call(self, fn: Any, /, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def close(self) -> asyncio.Future[None]:
        return self.call(self.store.close)


async def run_variant(
    stations: int, duration: float, *, inline: bool, mirror: bool, state: bool
) -> tuple[float, float]:
    d = tempfile.mkdtemp(prefix="inproc-")
    db = os.path.join(d, "bridge.sqlite3")
    broker = MemoryBroker()
    sync_store = SqliteStore(db)
    store: AsyncStore = InlineStore(sync_store) if inline else AsyncStore(sync_store)
    cfg = BridgeConfig(
        mqtt=MqttSettings(client_id="bench-bridge"), mirror=mirror, state_topic=state
    )
    bridge = Bridge(cfg, build_reference(db), store, client_factory=broker.client)
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    while bridge.client is None or not bridge.client.connected:
        await asyncio.sleep(0.01)
    count = 0
    running = True

    async def station(i: int) -> None:
        nonlocal count
        sid = f"CP{i}"
        c = broker.client(MqttSettings(client_id=sid))
        c.subscribe(f"ocpp/{sid}/down")
        await c.start(5)
        seq = 0
        while running:
            seq += 1
            c.publish(
                f"ocpp/{sid}/up",
                _wire.encode(Call(str(seq), "TransactionEvent", transaction_event(seq)), "2.0.1"),
            )
            await c.get()
            count += 1
        await c.stop()

    tasks = [asyncio.create_task(station(i)) for i in range(stations)]
    await asyncio.sleep(1.0)  # warm up
    n0, c0, t0 = count, time.process_time(), time.perf_counter()
    await asyncio.sleep(duration)
    n1, c1, t1 = count, time.process_time(), time.perf_counter()
    running = False
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.set()
    await task
    done = n1 - n0
    return done / (t1 - t0), (c1 - c0) / done * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=200)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    variants = [
        ("facade, mirror off, state off", dict(inline=False, mirror=False, state=False)),
        ("inline, mirror off, state off", dict(inline=True, mirror=False, state=False)),
        ("facade, mirror off, state on", dict(inline=False, mirror=False, state=True)),
        ("facade, mirror on, state on", dict(inline=False, mirror=True, state=True)),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    for rep in range(args.repeat):
        for name, kw in variants:  # interleaved, so that machine noise hits all alike
            rate, cpu = asyncio.run(run_variant(args.stations, args.duration, **kw))
            results[name].append((rate, cpu))
            print(f"[{rep + 1}/{args.repeat}] {name}: {rate:,.0f}/s, {cpu:.0f} µs CPU", flush=True)
    print(
        f"\n{args.stations} stations, {args.duration:g} s x {args.repeat}, one process, "
        "in-memory broker (CPU: the whole process per round trip: bridge + stations + broker)\n"
    )
    print("| variant | round trips/s min | median | CPU µs/round trip min | median |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _ in variants:
        rates = [r for r, _ in results[name]]
        cpus = [c for _, c in results[name]]
        print(
            f"| {name} | {min(rates):,.0f} | {statistics.median(rates):,.0f} | "
            f"{min(cpus):.0f} | {statistics.median(cpus):.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
