"""The ``bridge`` command line: demo, configuration file and environment, add-station."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conftest import USERS, BridgeProcess

from ocpp_iot.bridge.cli import main
from ocpp_iot.testing import Mosquitto
from ocpp_iot.transports.mqtt import MqttClient, MqttSettings


def test_demo_runs_and_exits_zero(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ocpp_iot.bridge.cli",
            "demo",
            "--duration",
            "20",
            "--stations",
            "2",
            "--pace",
            "0.01",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TransactionEvent" in out.stdout
    assert "GetVariables" in out.stdout  # the operator call at the end
    assert "recorded 2 transactions" in out.stdout
    assert not list(tmp_path.iterdir())  # it leaves nothing behind


def test_demo_cut_short_by_duration_still_exits_zero(tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "ocpp_iot.bridge.cli", "demo", "--duration", "2", "--pace", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "--duration 2 s reached" in out.stdout
    assert time.monotonic() - t0 < 30


def test_config_file_and_environment(broker: Mosquitto, tmp_path: Path, probe: Any) -> None:
    """Options come from TOML (--config / BRIDGE_CONFIG) and BRIDGE_* variables; the command
    line wins over both, the environment over the file."""
    conf = tmp_path / "bridge.toml"
    conf.write_text(
        f'[bridge]\nbroker = "{broker.url}"\nusername = "bridge"\nprefix = "wrong"\n'
        'client_id = "cfg-bridge"\nmirror = false\n'
    )
    watch = probe(["ocpp/bridge/status"], user="bridge")
    bp = BridgeProcess(
        broker,
        tmp_path,
        env={
            "BRIDGE_CONFIG": str(conf),
            "BRIDGE_PREFIX": "ocpp",
            "BRIDGE_PASSWORD": USERS["bridge"],
        },
    )
    bp.command = lambda: [  # type: ignore[method-assign]
        sys.executable,
        "-m",
        "ocpp_iot.bridge.cli",
        "serve",
        "--db",
        str(bp.db),
        "--client-id",
        "cli-bridge",
    ]
    bp.start(wait_online=False)
    try:
        assert watch.wait_for(lambda m: m.payload == b"online", 20)
        # broker and username from the file, prefix and password from the environment,
        # client id from the command line (over the file's)
        assert "as cli-bridge" in broker.log() and "cfg-bridge" not in broker.log()
    finally:
        bp.close()


def test_serve_rejects_workers_without_mqtt5() -> None:
    r = CliRunner().invoke(main, ["serve", "--workers", "2", "--mqtt-version", "3.1.1"])
    assert r.exit_code == 2 and "MQTT 5" in r.output


def test_bad_config_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("broker = [unclosed")
    r = CliRunner().invoke(main, ["serve", "--config", str(bad)])
    assert r.exit_code == 2 and "cannot read" in r.output


def test_bad_handler_spec() -> None:
    r = CliRunner().invoke(main, ["serve", "--handler", "no.such.module:Thing", "--db", ":memory:"])
    assert r.exit_code != 0


def test_add_station(broker: Mosquitto, tmp_path: Path) -> None:
    passwd = broker.directory / "passwd"
    r = CliRunner().invoke(main, ["add-station", "CP77", "--passwd-file", str(passwd)])
    assert r.exit_code == 0, r.output
    pw = r.output.split("password: ")[1].strip()
    assert passwd.read_text().count("CP77:") == 1
    assert "bridge:" in passwd.read_text()  # other users kept
    import signal

    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    c = MqttClient(MqttSettings(broker.url, client_id="CP77", username="CP77", password=pw))
    c.start()
    assert c.wait_connected(5)
    c.publish_confirmed("ocpp/CP77/up", b"x")  # the ACL pattern covers the new station
    c.stop()
    r = CliRunner().invoke(main, ["add-station", "bad/id", "--passwd-file", str(passwd)])
    assert r.exit_code != 0


def test_embedded_broker_serve(tmp_path: Path) -> None:
    """``serve --embedded-broker``: everything on MQTT 3.1.1, no mosquitto needed."""
    import asyncio

    from ocpp_iot.bridge.station import SimStation, charging_session_201
    from ocpp_iot.rpc import CallResult
    from ocpp_iot.testing import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocpp_iot.bridge.cli",
            "serve",
            "--embedded-broker",
            "--broker",
            f"mqtt://127.0.0.1:{port}",
            "--db",
            str(tmp_path / "b.sqlite3"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )

    async def scenario() -> list[Any]:
        for _ in range(100):
            try:
                st = await SimStation(
                    "CP1", f"mqtt://127.0.0.1:{port}", protocol="3.1.1", call_timeout=3.0
                ).start(timeout=0.5)
                break
            except ConnectionError:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError("embedded broker did not come up")
        try:
            return [await st.call(a, p) for a, p in charging_session_201("CP1", updates=1)]
        finally:
            await st.stop()

    try:
        answers = asyncio.run(scenario())
        assert all(isinstance(a, CallResult) for a in answers), answers
    finally:
        proc.terminate()
        err = proc.communicate(timeout=20)[1].decode()
    assert proc.returncode == 0, err
