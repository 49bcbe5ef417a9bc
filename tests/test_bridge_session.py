"""A whole 2.0.1 session through the bridge, calls to stations, mirror, status, dedup."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import until
from conftest import USERS, Probe, rows, running_bridge, station
from raw_station import RawStation, charging_session_201

from ocpp_iot.behaviours import Context, v201
from ocpp_iot.bridge import _wire
from ocpp_iot.bridge.service import CallTimeout
from ocpp_iot.bridge.store import SqliteStore
from ocpp_iot.rpc import Call, CallError, CallResult
from ocpp_iot.testing import Mosquitto
from ocpp_iot.transports.mqtt import Message

BRIDGE_STATUS = "ocpp/bridge/status"


def bridge_left(m: Message) -> bool:
    """The bridge's clean stop: its last message. mosquitto passes one client's messages on in
    the order it sent them, so everything the bridge published comes before this one."""
    return m.topic == BRIDGE_STATUS and m.payload == b"offline"


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_whole_session_201(broker: Mosquitto, tmp_path: Path, protocol: str) -> None:
    mirror = Probe(
        broker.url,
        "operator",
        ["ocpp/CP1/json/up", "ocpp/CP1/json/down", BRIDGE_STATUS],
        protocol=protocol,
    )

    async def scenario() -> list[tuple[str, Any]]:
        async with running_bridge(broker, tmp_path, allow=["TOKEN-1"], protocol=protocol):
            async with station(broker, "CP1", protocol=protocol) as st:
                answers = []
                for action, payload in charging_session_201(
                    "CP1", updates=4, transaction_id="tx-1"
                ):
                    answers.append((action, await st.call(action, payload)))
                answers.append(
                    (
                        "Authorize",
                        await st.call(
                            "Authorize", {"idToken": {"idToken": "STOLEN", "type": "ISO14443"}}
                        ),
                    )
                )
                return answers

    answers = asyncio.run(scenario())
    assert all(isinstance(a, CallResult) for _, a in answers), answers
    by_action = [(a, r.payload) for a, r in answers]
    assert by_action[0][0] == "BootNotification" and by_action[0][1]["status"] == "Accepted"
    assert by_action[2] == ("Authorize", {"idTokenInfo": {"status": "Accepted"}})
    assert by_action[-1] == ("Authorize", {"idTokenInfo": {"status": "Invalid"}})
    assert by_action[-2][0] == "Heartbeat" and "currentTime" in by_action[-2][1]

    db = tmp_path / "bridge.sqlite3"
    events = rows(
        db, "SELECT seq_no, event_type FROM ref_events WHERE action='TransactionEvent' ORDER BY id"
    )
    assert events == [
        (0, "Started"),
        (1, "Updated"),
        (2, "Updated"),
        (3, "Updated"),
        (4, "Updated"),
        (5, "Ended"),
    ]
    tx = rows(
        db, "SELECT id_token, ended IS NOT NULL, stopped_reason, energy_wh FROM ref_transactions"
    )
    assert tx == [("TOKEN-1", 1, "EVDisconnected", 4 * 1850.0)]
    assert rows(db, "SELECT COUNT(*) FROM ref_meter_values")[0][0] == 6 * 2
    assert rows(db, "SELECT version FROM bridge_stations WHERE station='CP1'") == [("2.0.1",)]

    # The mirror carried every frame both ways as OCPP-J.
    seen = mirror.until(bridge_left)
    ups = [json.loads(m.payload) for m in seen if m.topic.endswith("/json/up")]
    downs = [json.loads(m.payload) for m in seen if m.topic.endswith("/json/down")]
    assert [f[2] for f in ups] == [a for a, _ in answers]
    assert [f[0] for f in downs] == [3] * len(answers)
    assert [f[1] for f in downs] == [f[1] for f in ups]
    mirror.close()


def test_operator_calls_through_json_topic(broker: Mosquitto, tmp_path: Path) -> None:
    results = Probe(broker.url, "operator", ["ocpp/CP1/json/result"])

    async def scenario() -> tuple[list[Call], list[Message]]:
        async with running_bridge(broker, tmp_path):
            async with station(broker, "CP1") as st:
                await st.call("BootNotification", charging_session_201("CP1")[0][1])
                # two calls back to back: the second waits for the first (one outstanding)
                results.client.publish(
                    "ocpp/CP1/json/call", json.dumps([2, "op-1", "Reset", {"type": "Immediate"}])
                )
                results.client.publish(
                    "ocpp/CP1/json/call",
                    json.dumps(
                        [
                            2,
                            "op-2",
                            "GetVariables",
                            {
                                "getVariableData": [
                                    {
                                        "component": {"name": "OCPPCommCtrlr"},
                                        "variable": {"name": "HeartbeatInterval"},
                                    },
                                    {
                                        "component": {"name": "Nope"},
                                        "variable": {"name": "Nothing"},
                                    },
                                ]
                            },
                        ]
                    ),
                )
                results.client.publish("ocpp/CP1/json/call", b"not json")
                got = [await asyncio.to_thread(results.get, 10) for _ in range(3)]
                return st.received_calls, got

    calls, got = asyncio.run(scenario())
    assert [c.action for c in calls] == ["Reset", "GetVariables"]
    frames = {json.loads(m.payload)[1]: json.loads(m.payload) for m in got}
    assert frames["op-1"] == [3, "op-1", {"status": "Accepted"}]
    res = frames["op-2"][2]["getVariableResult"]
    assert res[0]["attributeStatus"] == "Accepted" and res[0]["attributeValue"] == "300"
    assert res[1]["attributeStatus"] == "UnknownVariable"
    assert frames["-1"][0] == 4  # the unreadable operator call is answered with an error
    results.close()


def test_bridge_call_command(broker: Mosquitto, tmp_path: Path) -> None:
    """``bridge call`` against the charger node (``ocpp_iot.charger_node``): its answers are
    printed, a CALLERROR exits 1, a bad payload 2. The node really restarts on the Reset."""
    from ocpp_iot.charger_node.node import Node, NodeConfig
    from ocpp_iot.charger_node.simulated import SimulatedEvse, Traffic

    def cli(*args: str, timeout: str = "10") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ocpp_iot.bridge.cli",
                "call",
                "--broker",
                broker.url,
                "--username",
                "operator",
                "--password",
                USERS["operator"],
                "--timeout",
                timeout,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    received: list[Call] = []

    def seen(direction: str, frame: Any) -> None:
        if direction == "down" and isinstance(frame, Call):
            received.append(frame)

    cfg = NodeConfig(
        "CP1", broker=broker.url, password=USERS["CP1"], data_dir=tmp_path / "node", model="M-1"
    )
    idle = SimulatedEvse(1, seed="CP1", traffic=Traffic(mean_gap_s=1e9))  # no EV comes
    node = Node(cfg, evse=idle, on_frame=seen)

    def booted(restarts: int) -> bool:
        rt = node.runtime  # (a Reset makes a new one)
        accepted = rt is not None and rt.machine.registration == "accepted"
        return accepted and node.restarts == restarts

    async def scenario() -> list[subprocess.CompletedProcess[str]]:
        async with running_bridge(broker, tmp_path, call_timeout=3.0):
            running = asyncio.create_task(node.run())
            try:
                await until(lambda: booted(0), "the node's boot", 10)
                reset = await asyncio.to_thread(cli, "CP1", "Reset", '{"type": "OnIdle"}')
                await until(lambda: booted(1), "the node's boot after the reset", 10)
                out = [
                    reset,
                    await asyncio.to_thread(
                        cli,
                        "CP1",
                        "GetVariables",
                        '{"getVariableData": [{"component": {"name": "ChargingStation"},'
                        ' "variable": {"name": "Model"}}]}',
                    ),
                    # the node keeps no local list: a CALLERROR
                    await asyncio.to_thread(cli, "CP1", "GetLocalListVersion", "{}"),
                    # (a queued CALL nobody answers, exit code 3: test_bridge_cli's
                    # test_call_end_to_end_exit_codes)
                    await asyncio.to_thread(cli, "CP1", "Reset", "[1, 2]"),
                ]
                assert [c.action for c in received] == [
                    "Reset",
                    "GetVariables",
                    "GetLocalListVersion",
                ]
                return out
            finally:
                node.stop()
                await asyncio.wait_for(running, 10)

    reset, getvar, nolist, bad = asyncio.run(scenario())
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)[2] == {"status": "Accepted"}
    assert getvar.returncode == 0, getvar.stderr
    assert json.loads(getvar.stdout)[2]["getVariableResult"][0]["attributeValue"] == "M-1"
    assert nolist.returncode == 1, nolist.stderr
    # GetLocalListVersion is a 2.0.1 action the node does not handle (OCPP-J 4.3)
    assert json.loads(nolist.stdout)[2] == "NotSupported"
    assert bad.returncode == 2 and "JSON object" in bad.stderr  # usage error


def test_repeated_call_runs_the_handler_once(broker: Mosquitto, tmp_path: Path) -> None:
    downs = Probe(broker.url, "bridge", ["ocpp/CP1/down", BRIDGE_STATUS])
    seen: list[Message] = []

    def answered(m: Message) -> bool:
        return m.topic == "ocpp/CP1/down"

    async def scenario() -> None:
        async with running_bridge(broker, tmp_path):
            async with station(broker, "CP1") as st:
                frame = Call("dup-1", "TransactionEvent", charging_session_201("CP1")[3][1])
                data = _wire.encode(frame, "2.0.1")
                for _ in range(3):  # as QoS 1 redelivery or a station's retry would
                    st.client.publish("ocpp/CP1/up", data, 1)
                    seen.extend(await asyncio.to_thread(downs.until, answered))

    asyncio.run(scenario())
    seen.extend(downs.until(bridge_left))  # and no other answer before the bridge left
    answers = [m.payload for m in seen if answered(m)]
    assert len(answers) == 3 and len(set(answers)) == 1
    assert _wire.decode(answers[0])[1].message_id == "dup-1"
    n = rows(
        tmp_path / "bridge.sqlite3", "SELECT COUNT(*) FROM ref_events WHERE message_id='dup-1'"
    )
    assert n == [(1,)]
    downs.close()


class CountingSystem(v201.ChargeSystem):
    """Counts TransactionEvent handler runs per (station, message id), in arrival order."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[tuple[str, str]] = []

    def transaction_event(self, request: Any, ctx: Context) -> dict[str, Any]:
        self.runs.append((ctx.station_id, ctx.message_id))
        return {}


@pytest.mark.parametrize("workers", [1, 2])
def test_burst_with_repeats_after_a_restart(
    broker: Mosquitto, tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frames that piled up while the bridge was away arrive in a few socket reads and are
    claimed together: every CALL runs its handler once, in each station's order, repeats
    included in the same read are not run again, and every CALL is answered."""
    handler = CountingSystem()
    te = charging_session_201("X")[3][1]
    sent: dict[str, list[str]] = {}
    downs = Probe(broker.url, "bridge", ["ocpp/+/down", BRIDGE_STATUS])
    config: dict[str, Any] = {"workers": workers} if workers > 1 else {}
    batches: list[int] = []
    claim_calls = SqliteStore.claim_calls

    def counted(self: SqliteStore, keys: Any, *args: Any, **kw: Any) -> Any:
        batches.append(len(keys))
        return claim_calls(self, keys, *args, **kw)

    monkeypatch.setattr(SqliteStore, "claim_calls", counted)
    look_up_calls = SqliteStore.look_up_calls

    def counted_look_up(self: SqliteStore, keys: Any) -> Any:  # one worker claims by reading
        batches.append(len(keys))
        return look_up_calls(self, keys)

    monkeypatch.setattr(SqliteStore, "look_up_calls", counted_look_up)
    claim_calls_now = SqliteStore.claim_calls_now

    def counted_now(self: SqliteStore, keys: Any, *args: Any) -> Any:  # workers mark in the loop
        batches.append(len(keys))
        return claim_calls_now(self, keys, *args)

    monkeypatch.setattr(SqliteStore, "claim_calls_now", counted_now)

    async def scenario() -> None:
        async with running_bridge(broker, tmp_path, {"2.0.1": handler}, **config):
            pass  # the bridge's persistent session now exists; it goes away
        stations = [f"CP{i}" for i in range(1, 6)]
        for sid in stations:
            async with station(broker, sid) as st:
                raw = st.client
                for n in range(6):
                    mid = f"{sid}-{n}"
                    data = _wire.encode(Call(mid, "TransactionEvent", te), "2.0.1")
                    await raw.publish_confirmed(f"ocpp/{sid}/up", data)
                    if n % 2:  # a repeat, right after
                        await raw.publish_confirmed(f"ocpp/{sid}/up", data)
                    sent.setdefault(sid, []).append(mid)
        published = sum(len(v) + len(v) // 2 for v in sent.values())  # with the repeats
        async with running_bridge(broker, tmp_path, {"2.0.1": handler}, **config) as bridge:
            # every frame (repeats too) reached it; those in hand are finished on the way out
            await until(lambda: bridge.stats["up"] >= published, "every frame", 10)

    asyncio.run(scenario())
    offline = 0

    def second_stop(m: Message) -> bool:
        nonlocal offline
        offline += bridge_left(m)
        return offline == 2

    seen = downs.until(second_stop)
    answered = {_wire.decode(m.payload)[1].message_id for m in seen if m.topic != BRIDGE_STATUS}
    downs.close()
    assert sorted(handler.runs) == sorted((sid, m) for sid, ms in sent.items() for m in ms)
    for sid, mids in sent.items():
        assert [m for s, m in handler.runs if s == sid] == mids  # in the station's order
    assert answered == {m for ms in sent.values() for m in ms}
    assert max(batches) > 1  # some CALLs were claimed together


class AcceptingSystem(v201.BasicChargeSystem):
    """Answers every basic action at once; the systems below override what they test."""

    async def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"currentTime": "2026-01-01T00:00:00Z", "interval": 60, "status": "Accepted"}

    def heartbeat(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"currentTime": "2026-01-01T00:00:00Z"}

    def authorize(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"idTokenInfo": {"status": "Accepted"}}

    def status_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {}

    def transaction_event(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {}


class SlowSystem(AcceptingSystem):
    """CP2's boot (async) and CP3's heartbeat (blocking, in a thread) wait until ``release`` is
    set (10 s at most); everyone else is answered at once."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.waiting: list[str] = []  # the slow handlers that started

    async def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        if ctx.station_id == "CP2":
            self.waiting.append("CP2")
            await asyncio.to_thread(self.release.wait, 10)
        return {"currentTime": "2026-01-01T00:00:00Z", "interval": 60, "status": "Accepted"}

    def heartbeat(self, request: Any, ctx: Context) -> dict[str, Any]:
        if ctx.station_id == "CP3":
            self.waiting.append("CP3")
            self.release.wait(10)
        return {"currentTime": "2026-01-01T00:00:00Z"}


def test_slow_handler_does_not_stall_other_stations(broker: Mosquitto, tmp_path: Path) -> None:
    boot = charging_session_201("X")[0][1]
    system = SlowSystem()

    async def quick_calls(cp1: RawStation) -> None:
        for _ in range(5):
            assert isinstance(await cp1.call("Heartbeat", {}), CallResult)
            assert isinstance(await cp1.call("BootNotification", boot), CallResult)

    async def scenario() -> None:
        async with running_bridge(broker, tmp_path, {"2.0.1": system}, handler_threads=4):
            async with (
                station(broker, "CP1") as cp1,
                station(broker, "CP2") as cp2,
                station(broker, "CP3") as cp3,
            ):
                slow = [
                    asyncio.create_task(cp2.call("BootNotification", boot)),
                    asyncio.create_task(cp3.call("Heartbeat", {})),
                ]
                try:
                    await until(lambda: len(system.waiting) == 2, "both slow handlers to start")
                    # CP1 is served while both slow handlers are still held (a stalled loop or
                    # a single handler thread would hold CP1's answers until the release)
                    await asyncio.wait_for(quick_calls(cp1), 5)
                    assert not any(t.done() for t in slow)
                finally:
                    system.release.set()
                for t in slow:
                    assert isinstance(await t, CallResult)

    asyncio.run(scenario())


class CallingSystem(AcceptingSystem):
    """On boot, asks the station for a variable (async) before accepting it."""

    async def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        assert ctx.send_call is not None  # the bridge sets it
        answer = await ctx.send_call(
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Identity"}}
                ]
            },
        )
        assert isinstance(answer, CallResult)
        ctx.state["identity"] = answer.payload["getVariableResult"][0]["attributeValue"]
        return {"currentTime": "2026-01-01T00:00:00Z", "interval": 60, "status": "Accepted"}

    def heartbeat(self, request: Any, ctx: Context) -> dict[str, Any]:
        # a blocking handler method calls through the same context (it runs in a thread)
        answer = ctx.call("Reset", {"type": "OnIdle"})
        assert isinstance(answer, CallResult)
        ctx.state["reset"] = answer.payload["status"]
        return {"currentTime": "2026-01-01T00:00:00Z"}


def test_handler_calls_the_station_through_its_context(broker: Mosquitto, tmp_path: Path) -> None:
    async def scenario() -> tuple[Any, Any, dict[str, Any]]:
        async with running_bridge(
            broker, tmp_path, {"2.0.1": CallingSystem()}, handler_threads=2
        ) as bridge:
            async with station(broker, "CP1") as st:
                boot = await st.call("BootNotification", charging_session_201("CP1")[0][1])
                hb = await st.call("Heartbeat", {})
                assert [c.action for c in st.received_calls] == ["GetVariables", "Reset"]
                return boot, hb, await bridge.store.station_state("CP1")

    boot, hb, state = asyncio.run(scenario())
    assert isinstance(boot, CallResult) and boot.payload["status"] == "Accepted"
    assert isinstance(hb, CallResult)
    assert state == {"identity": "sim", "reset": "Accepted"}


def test_status_topics_and_no_mirror(broker: Mosquitto, tmp_path: Path) -> None:
    watch = Probe(
        broker.url, "operator", ["ocpp/bridge/status", "ocpp/CP1/json/up", "ocpp/CP1/json/down"]
    )

    async def scenario() -> list[str]:
        async with running_bridge(broker, tmp_path, mirror=False) as bridge:
            async with station(broker, "CP1") as st:
                assert isinstance(await st.call("Heartbeat", {}), CallResult)
            statuses: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while statuses != ["offline"] and loop.time() < deadline:  # CP1's goodbye, stored
                await asyncio.sleep(0.01)
                statuses = [s["status"] for s in await bridge.store.stations()]
            return statuses

    statuses = asyncio.run(scenario())
    assert statuses == ["offline"]  # CP1 said goodbye
    seen = watch.until(bridge_left)
    assert [m.payload for m in seen if m.topic == "ocpp/bridge/status"] == [b"online", b"offline"]
    assert not [m for m in seen if "/json/" in m.topic]
    late = Probe(broker.url, "operator", ["ocpp/bridge/status"])
    m = late.get()
    assert (m.payload, m.retain) == (b"offline", True)
    late.close()
    watch.close()


def test_station_speaking_another_version(broker: Mosquitto, tmp_path: Path) -> None:
    """The version comes from each frame's header: a 1.6 station is answered in 1.6."""

    async def scenario() -> list[Any]:
        async with running_bridge(broker, tmp_path):
            async with station(broker, "CP4", version="1.6") as st:
                out = [
                    await st.call(
                        "BootNotification", {"chargePointModel": "M", "chargePointVendor": "V"}
                    ),
                    await st.call(
                        "StartTransaction",
                        {
                            "connectorId": 1,
                            "idTag": "T1",
                            "meterStart": 0,
                            "timestamp": "2026-01-01T00:00:00Z",
                        },
                    ),
                    await st.call(
                        "BootNotification",
                        {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
                    ),
                ]
                return out

    boot, start, wrong = asyncio.run(scenario())
    assert isinstance(boot, CallResult) and boot.payload["status"] == "Accepted"
    assert isinstance(start, CallResult) and start.payload["transactionId"] == 1
    assert isinstance(wrong, CallError)
    assert wrong.error_code in (
        "FormationViolation",
        "OccurenceConstraintViolation",
        "PropertyConstraintViolation",
        "TypeConstraintViolation",
    )


def test_workers_share_calls_to_stations(broker: Mosquitto, bridge_process: Any) -> None:
    """With two workers a station's answer to a handler's CALL may reach the other worker; it is
    forwarded to the one that waits. Operator calls work the same way."""
    from conftest import ROOT

    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    bp = bridge_process(
        "--workers",
        "2",
        "--handler",
        "test_bridge_session:CallingSystem",
        "--handler-threads",
        "2",
        env=env,
    )
    results = Probe(broker.url, "operator", ["ocpp/CP1/json/result"])

    async def scenario() -> list[Any]:
        async with station(broker, "CP1") as st:
            out = []
            for _ in range(6):
                out.append(await st.call("BootNotification", charging_session_201("CP1")[0][1]))
                out.append(await st.call("Heartbeat", {}))
            for i in range(4):
                results.client.publish(
                    "ocpp/CP1/json/call", json.dumps([2, f"op-{i}", "Reset", {"type": "OnIdle"}])
                )
            got: list[Any] = []
            while len(got) < 4:  # (the handler's own calls are reported there too)
                frame = json.loads((await asyncio.to_thread(results.get, 10)).payload)
                if frame[1].startswith("op-"):
                    got.append(frame)
            assert sorted(g[1] for g in got) == ["op-0", "op-1", "op-2", "op-3"]
            assert all(g[0] == 3 for g in got)
            return out

    answers = asyncio.run(scenario())
    assert all(isinstance(a, CallResult) for a in answers), (answers, bp.log())
    results.close()
    assert bp.terminate() == 0


class TimeoutSystem(AcceptingSystem):
    """Asks the station to reset before accepting its boot; gives up after the call timeout."""

    async def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        assert ctx.send_call is not None  # the bridge sets it
        try:
            answer = await ctx.send_call("Reset", {"type": "OnIdle"})
            status = "Accepted" if isinstance(answer, CallResult) else "Pending"
        except CallTimeout:
            status = "Rejected"
        return {"currentTime": "2026-01-01T00:00:00Z", "interval": 60, "status": status}


class GivingUpSystem(TimeoutSystem):
    """Says when the bridge gave up on its Reset (``gave_up``)."""

    def __init__(self) -> None:
        super().__init__()
        self.gave_up = asyncio.Event()

    async def boot_notification(self, request: Any, ctx: Context) -> dict[str, Any]:
        answer = await super().boot_notification(request, ctx)
        if answer["status"] == "Rejected":
            self.gave_up.set()
        return answer


def test_handler_call_times_out(broker: Mosquitto, tmp_path: Path) -> None:
    system = GivingUpSystem()

    class SlowCharger(v201.Charger):
        async def reset(self, request: Any, ctx: Context) -> dict[str, Any]:
            # answers only once the bridge gave up waiting (10 s at most): a late answer
            await asyncio.wait_for(system.gave_up.wait(), 10)
            return {"status": "Accepted"}

    async def scenario() -> Any:
        async with running_bridge(broker, tmp_path, {"2.0.1": system}, call_timeout=0.3):
            async with station(broker, "CP1", charger=SlowCharger(), call_timeout=10.0) as st:
                boot = await st.call("BootNotification", charging_session_201("CP1")[0][1])
                # the late answer to the abandoned Reset is ignored; the station is served on
                hb = await st.call("Heartbeat", {})
                assert isinstance(hb, CallResult)
                return boot

    boot = asyncio.run(scenario())
    assert isinstance(boot, CallResult) and boot.payload["status"] == "Rejected"


def test_acl_keeps_a_station_from_speaking_for_another(broker: Mosquitto, tmp_path: Path) -> None:
    from ocpp_iot.transports.mqtt import PublishRefused

    async def scenario() -> tuple[int, int]:
        async with running_bridge(broker, tmp_path) as bridge:
            async with station(broker, "CP1") as cp1:
                assert isinstance(await cp1.call("Heartbeat", {}), CallResult)
                before = bridge.stats["up"]
                forged = _wire.encode(
                    Call("forged-1", "BootNotification", charging_session_201("CP2")[0][1]),
                    "2.0.1",
                )
                raw = cp1.client
                for topic in ("ocpp/CP2/up", "ocpp/CP2/status", "ocpp/CP2/json/call"):
                    try:
                        await raw.publish_confirmed(topic, forged)
                    except PublishRefused as exc:
                        assert exc.reason == 135, topic
                    else:
                        raise AssertionError(f"the broker accepted CP1's publish on {topic}")
                # a frame published after them reached the bridge: the forged ones would have
                # reached it first (mosquitto passes one client's messages on in order)
                assert isinstance(await cp1.call("Heartbeat", {}), CallResult)
                return before, bridge.stats["up"]

    before, after = asyncio.run(scenario())
    assert after == before + 1  # the bridge never saw the forged frames
    db = tmp_path / "bridge.sqlite3"
    assert rows(db, "SELECT COUNT(*) FROM ref_events WHERE message_id='forged-1'") == [(0,)]
    assert rows(db, "SELECT station FROM bridge_stations WHERE station='CP2'") == []


def test_session_over_tls(tls_broker: tuple[Mosquitto, str, str], tmp_path: Path) -> None:
    """mqtts:// with a CA, the bridge driven by its event loop (TLS records and all)."""
    broker, url, ca = tls_broker

    async def scenario() -> list[Any]:
        async with running_bridge(broker, tmp_path, url=url, ca_certs=ca) as bridge:
            assert bridge.client is not None and bridge.client.connected
            st = RawStation.mqtt("CP1", url, password=USERS["CP1"], ca_certs=ca, call_timeout=5.0)
            async with st:
                return [await st.call(a, p) for a, p in charging_session_201("CP1", updates=2)]

    answers = asyncio.run(scenario())
    assert len(answers) == 8 and all(isinstance(a, CallResult) for a in answers)
