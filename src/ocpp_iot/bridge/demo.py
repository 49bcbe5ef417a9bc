"""``bridge demo``: an embedded broker, the bridge and a few simulated stations, shown live.

Nothing to install or configure: amqtt (MQTT 3.1.1) runs in-process, the bridge hosts the
reference charge system on a temporary SQLite file, and each station is a charger node
(:class:`~ocpp_iot.charger_node.node.Node`, its own MQTT connection, a simulated EVSE driven by a
short scenario): it boots, reports its connector, and for each session an EV plugs in, a token
is shown, it charges with meter values every second or so, and leaves (OCPP 2.0.1
TransactionEvents). Every frame is printed as it crosses the broker with its compact size next
to its OCPP-J size; at the end the bridge calls one station (GetVariables) the way an operator
would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from ..codecs import cbor
from ..rpc import Call, CallError, CallResult, Frame
from . import _wire
from .demo_stations import Sessions, demo_nodes
from .embedded import EmbeddedBroker
from .reference import build_reference
from .service import Bridge, BridgeConfig
from .store import SqliteStore

__all__ = ["run_demo"]

_COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "red"]


class _Traffic:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0 = time.monotonic()
        self.frames = 0
        self.compact = 0
        self.json = 0
        self.errors = 0
        self.by_action: dict[str, list[int]] = {}

    def __call__(self, direction: str, station: str, frame: Frame, data: bytes) -> None:
        text = _wire.json_encode(frame)
        self.frames += 1
        self.compact += len(data)
        self.json += len(text)
        if isinstance(frame, Call):
            what = f"CALL {frame.action}"
            action = frame.action
        elif isinstance(frame, CallResult):
            what = f"RESULT {frame.action or ''}"
            action = f"{frame.action or '?'} (result)"
        elif isinstance(frame, CallError):
            what = f"ERROR {frame.error_code}"
            action = "CALLERROR"
            self.errors += 1
        else:
            what = type(frame).__name__
            action = what
        stats = self.by_action.setdefault(action, [0, 0, 0])
        stats[0] += 1
        stats[1] += len(data)
        stats[2] += len(text)
        colour = _COLOURS[hash(station) % len(_COLOURS)]
        arrow = "->" if direction == "up" else "<-"
        saved = 100.0 * (1 - len(data) / len(text)) if text else 0.0
        line = Text.assemble(
            (f"{time.monotonic() - self.t0:6.2f}s ", "dim"),
            (f"{station:>6}", colour),
            f" {arrow} ",
            (f"{what:<28}", "bold"),
            f" {len(data):4d} B vs {len(text):4d} B JSON (",
            (f"-{saved:.0f}%", "green"),
            ")  ",
            (text.decode(), "dim"),
        )
        # one line per frame: the JSON is cut at the terminal's edge, never wrapped mid-word
        self.console.print(line, highlight=False, no_wrap=True, overflow="ellipsis", crop=True)

    def summary(self) -> Table:
        table = Table(title="Bytes on the wire: compact CBOR vs OCPP-J")
        for col in ("frames", "CBOR bytes", "OCPP-J bytes", "saved"):
            table.add_column(col, justify="right")
        table.add_column("message", justify="left")
        for action, (n, c, j) in sorted(self.by_action.items()):
            table.add_row(str(n), str(c), str(j), f"{100 * (1 - c / j):.0f}%" if j else "-", action)
        if self.json:
            table.add_row(
                str(self.frames),
                str(self.compact),
                str(self.json),
                f"{100 * (1 - self.compact / self.json):.0f}%",
                "[bold]all[/]",
            )
        return table


async def run_demo(
    *,
    stations: int = 3,
    sessions: int = 1,
    updates: int = 3,
    duration: float = 60.0,
    pace: float = 0.3,
    console: Console | None = None,
) -> bool:
    """Run the demo; True if it ran without errors (sessions cut short by ``duration`` are
    fine). ``pace``: seconds between the steps of a session (plug-in, token, unplug); meter
    values come every ``max(1, ceil(pace))`` s (TxUpdatedInterval is whole seconds)."""
    console = console or Console()
    traffic = _Traffic(console)
    t_end = time.monotonic() + duration
    console.rule("[bold]ocpp-iot bridge demo")
    broker = await EmbeddedBroker().start()
    console.print(f"embedded MQTT broker (amqtt, MQTT 3.1.1) on {broker.url}")
    stop = asyncio.Event()
    ok = True
    with tempfile.TemporaryDirectory(prefix="ocpp-demo-") as tmp:
        db = str(Path(tmp) / "bridge.sqlite3")
        ids = [f"CP{i + 1}" for i in range(stations)]
        handlers = build_reference(db, [f"TOKEN-{s}" for s in ids], versions=("2.0.1",))
        config = BridgeConfig(prefix="ocpp", mirror=True, call_timeout=10.0, handler_threads=0)
        config.mqtt.url = broker.url
        config.mqtt.username = "bridge"
        config.mqtt.protocol = "3.1.1"
        config.mqtt.client_id = "ocpp-bridge-demo"
        bridge = Bridge(config, handlers, SqliteStore(db))
        bridge_task = asyncio.create_task(bridge.run(stop))
        done = Sessions(ids, sessions)

        def seen(direction: str, station: str, frame: Frame) -> None:
            # the node sends compact CBOR: these are its bytes (the bridge's, on the way down)
            traffic(direction, station, frame, cbor.encode(frame, "2.0.1"))
            done(direction, station, frame)
            if direction == "down" and isinstance(frame, CallError):
                console.print(f"[red]{station}: the bridge answered {frame}[/]")

        nodes = demo_nodes(
            ids,
            broker.url,
            Path(tmp) / "nodes",
            sessions=sessions,
            updates=updates,
            pace=pace,
            on_frame=seen,
        )
        runs: list[asyncio.Task[None]] = []
        try:
            await _serving(bridge, bridge_task)
            console.print(f"bridge up; starting {stations} simulated stations (charger nodes)...")
            console.print(
                "[dim]legend: -> a frame from the station to the bridge (ocpp/<id>/up), "
                "<- from the bridge to the station (ocpp/<id>/down); B: its compact CBOR size "
                "vs OCPP-J JSON[/]\n",
                highlight=False,
            )
            runs = [asyncio.create_task(n.run()) for n in nodes]
            waiter = asyncio.create_task(done.all_done.wait())
            remaining = max(0.5, t_end - time.monotonic())
            first = asyncio.FIRST_COMPLETED
            await asyncio.wait([waiter, *runs], timeout=remaining, return_when=first)
            waiter.cancel()
            if done.all_done.is_set() and time.monotonic() < t_end:
                console.print("\n[bold]operator -> CP1: GetVariables (through the bridge)[/]")
                try:
                    answer = await asyncio.wait_for(
                        bridge.call_station(
                            ids[0],
                            "GetVariables",
                            {
                                "getVariableData": [
                                    {
                                        "component": {"name": "OCPPCommCtrlr"},
                                        "variable": {"name": "HeartbeatInterval"},
                                    }
                                ]
                            },
                        ),
                        max(0.5, t_end - time.monotonic()),
                    )
                    console.print("answer:")  # indented: short lines, never wrapped
                    console.print(JSON(_wire.json_encode(answer).decode(), indent=2))
                except TimeoutError:
                    console.print("[yellow]no answer before the demo's end[/]")
            elif not any(t.done() for t in runs):
                console.print(f"\n[yellow]--duration {duration:g} s reached[/]")
        finally:
            for n in nodes:
                n.stop()  # a session in progress stays so (as at a power cut): the files go
            if runs:
                await asyncio.wait(runs, timeout=10)
            for n, t in zip(nodes, runs, strict=False):
                if not t.done():
                    t.cancel()
                elif not t.cancelled() and t.exception() is not None:
                    ok = False
                    console.print(f"[red]{n.cfg.station_id} failed: {t.exception()!r}[/]")
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(bridge_task, 10)
            # what the bridge published as it left (the stations' json/state, now offline) may
            # still be in the broker's queue: it is dropped with the broker, which would say so
            quiet = logging.getLogger("amqtt.broker")
            level = quiet.level
            quiet.setLevel(logging.ERROR)
            try:
                await broker.stop()
            finally:
                quiet.setLevel(level)
        rows = _recorded(db)
    console.print()
    console.print(traffic.summary())
    if rows:
        console.print(
            f"reference charge system recorded {rows[0]} transactions and {rows[1]} meter values"
        )
    return ok


async def _serving(bridge: Bridge, task: asyncio.Task[None]) -> None:
    """Wait until the bridge's subscriptions are in place, so that the stations' first frames
    reach it: a QoS 1 publish after them is acknowledged once the broker has handled them."""
    while bridge.client is None:  # made once the bridge has read its retained states back
        if task.done():
            task.result()  # raises what stopped the bridge
            raise RuntimeError("the bridge stopped")
        await asyncio.sleep(0.01)
    if not await bridge.client.wait_connected(10):
        raise RuntimeError("the bridge did not connect to the embedded broker")
    await bridge.client.publish_confirmed("demo/ready", b"", 1, timeout=10)


def _recorded(db: str) -> tuple[int, int] | None:
    import sqlite3

    try:
        con = sqlite3.connect(db)
        try:
            tx = con.execute("SELECT COUNT(*) FROM ref_transactions").fetchone()[0]
            mv = con.execute("SELECT COUNT(*) FROM ref_meter_values").fetchone()[0]
        finally:
            con.close()
        return int(tx), int(mv)
    except Exception:
        return None


def main(**kwargs: Any) -> bool:  # pragma: no cover - convenience for python -m
    return asyncio.run(run_demo(**kwargs))
