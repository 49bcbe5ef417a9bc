"""The ``bridge`` command line: demo, configuration file and environment, add-station."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT, USERS, BridgeProcess

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
        env={**os.environ, "COLUMNS": "160"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "TransactionEvent" in out.stdout
    assert "GetVariables" in out.stdout  # the operator call at the end
    assert "recorded 2 transactions" in out.stdout
    assert not list(tmp_path.iterdir())  # it leaves nothing behind
    lines = out.stdout.splitlines()
    # one line per frame, cut at the terminal's width, never wrapped into the next line
    assert max(len(ln) for ln in lines) <= 160
    frames = [ln for ln in lines if " B JSON (" in ln]
    assert len(frames) >= 20 and all("[" in ln for ln in frames)
    legend = next(ln for ln in lines if ln.startswith("legend:"))
    assert "-> a frame from the station" in legend and "<- from the bridge" in legend


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

    from raw_station import RawStation, charging_session_201

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
                st = await RawStation.mqtt(
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


# -- configuration: every documented form ---------------------------------------------------


def _serve_opts(monkeypatch: Any, *args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``bridge serve`` up to the worker and return the options it would get."""
    import ocpp_iot.bridge.cli as cli

    got: dict[str, Any] = {}

    def fake_worker(opts: dict[str, Any], index: int) -> int:
        got.update(opts)
        return 0

    monkeypatch.setattr(cli, "run_worker", fake_worker)
    r = CliRunner().invoke(main, ["serve", *args], env=env or {})
    return r, got


CONFIG_FORMS = {
    "top level": 'broker = "mqtt://h:1"\nallow_token = ["A", "B"]\nca_certs = "ca.pem"\n',
    "bridge table": '[bridge]\nbroker = "mqtt://h:1"\nallow_token = ["A", "B"]\n'
    '[bridge.tls]\nca_certs = "ca.pem"\n',
    "tls and reference tables": 'broker = "mqtt://h:1"\n[tls]\nca_certs = "ca.pem"\n'
    '[reference]\nallow_tokens = ["A", "B"]\n',
    "bridge table, top-level tls": '[bridge]\nbroker = "mqtt://h:1"\nallow_tokens = ["A", "B"]\n'
    '[tls]\nca-certs = "ca.pem"\n',
}


@pytest.mark.parametrize("form", sorted(CONFIG_FORMS))
def test_config_file_forms(monkeypatch: Any, tmp_path: Path, form: str) -> None:
    conf = tmp_path / "bridge.toml"
    conf.write_text(CONFIG_FORMS[form])
    r, opts = _serve_opts(monkeypatch, "--config", str(conf))
    assert r.exit_code == 0, r.output
    assert opts["broker"] == "mqtt://h:1"
    assert list(opts["allow_token"]) == ["A", "B"]
    assert opts["ca_certs"] == "ca.pem"


def test_config_precedence_and_types(monkeypatch: Any, tmp_path: Path) -> None:
    conf = tmp_path / "bridge.toml"
    conf.write_text(
        '[bridge]\nbroker = "mqtt://file:1"\nprefix = "file"\nworkers = 1\nmirror = false\n'
        'commit-delay = 2.5\nlog_level = "debug"\n'
    )
    r, opts = _serve_opts(
        monkeypatch,
        "--prefix",
        "cli",
        env={"BRIDGE_CONFIG": str(conf), "BRIDGE_PREFIX": "env", "BRIDGE_BROKER": "mqtt://env:2"},
    )
    assert r.exit_code == 0, r.output
    assert (opts["prefix"], opts["broker"]) == ("cli", "mqtt://env:2")
    assert opts["mirror"] is False and opts["commit_delay"] == 2.5
    assert opts["log_level"].upper() == "DEBUG"


def test_every_option_has_its_documented_variable() -> None:
    """BRIDGE_ + the option's name in capitals (call --timeout: BRIDGE_CALL_TIMEOUT_CLI, as
    serve's --call-timeout has BRIDGE_CALL_TIMEOUT)."""
    docs = (ROOT / "docs" / "bridge.md").read_text()
    for name in ("serve", "call"):
        command = main.commands[name]
        for p in command.params:
            if not isinstance(p, click.Option) or p.name is None:
                continue
            want = "BRIDGE_CALL_TIMEOUT_CLI" if p.name == "timeout" else f"BRIDGE_{p.name.upper()}"
            if p.name == "handlers":
                want = "BRIDGE_HANDLER"
            if p.name == "queue_if_absent":
                want = "BRIDGE_QUEUE"
            assert p.envvar == want, (name, p.name)
            if name == "serve":
                assert f"`{want}`" in docs or want.startswith("BRIDGE_CA"), want


def test_unknown_config_key_names_the_key_the_file_and_the_nearest(tmp_path: Path) -> None:
    conf = tmp_path / "bridge.toml"
    for text, key, near in (
        ('brokr = "mqtt://h"\n', "brokr", "broker"),
        ('[bridge]\nallow_tokn = ["A"]\n', "bridge.allow_tokn", "allow_token"),
        ('[bridge.tls]\nca_cert = "x"\n', "bridge.tls.ca_cert", "ca_certs"),
        ("[bridge]\nfoo = 1\n", "bridge.foo", None),
    ):
        conf.write_text(text)
        r = CliRunner().invoke(main, ["serve", "--config", str(conf)])
        assert r.exit_code == 2, r.output
        assert str(conf) in r.output and f"unknown option '{key}'" in r.output, r.output
        if near:
            assert f"did you mean '{near}'?" in r.output, r.output


def test_one_config_file_serves_serve_and_call(monkeypatch: Any, tmp_path: Path) -> None:
    """serve-only keys (db, workers) do not make ``bridge call --config`` fail, and vice versa."""
    import ocpp_iot.bridge.cli as cli

    conf = tmp_path / "bridge.toml"
    conf.write_text('broker = "mqtt://h:1"\ndb = "x.sqlite3"\ntimeout = 3\n')
    seen: dict[str, Any] = {}
    monkeypatch.setattr(cli, "run_call", lambda *a, **kw: seen.update(kw, opts=a[3]) or 0)
    r = CliRunner().invoke(main, ["call", "--config", str(conf), "CP1", "Reset"])
    assert r.exit_code == 0, r.output
    assert seen["timeout"] == 3 and seen["opts"]["broker"] == "mqtt://h:1"
    r, opts = _serve_opts(monkeypatch, "--config", str(conf))
    assert r.exit_code == 0 and opts["db"] == "x.sqlite3"


def test_unknown_bridge_variable_is_a_warning(monkeypatch: Any) -> None:
    r, opts = _serve_opts(monkeypatch, env={"BRIDGE_BROKR": "mqtt://x", "BRIDGE_DB": "y"})
    assert r.exit_code == 0, r.output
    assert "BRIDGE_BROKR is set but is no bridge option (did you mean 'BRIDGE_BROKER'?)" in (
        r.output
    )
    assert "BRIDGE_DB" not in r.output


# -- help texts, command names, demo without amqtt -----------------------------------------


def test_help_texts() -> None:
    out = CliRunner().invoke(main, ["serve", "--help"], terminal_width=200).output
    for opt in ("--username", "--password", "--mqtt-version", "--heartbeat-interval"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(opt))
        assert len(line.split(None, 2)) == 3 and "[env var" not in line.split(None, 2)[1], line
    assert "mqtt://user:pass@host:port" in out and "mqtts://" in out
    call_help = CliRunner().invoke(main, ["call", "--help"], terminal_width=200).output
    for code in range(7):
        assert re.search(rf"\n +{code}  \S", call_help), call_help


def test_other_command_names() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert 'ocpp-bridge = "ocpp_iot.bridge.cli:main"' in text
    assert 'bridge = "ocpp_iot.bridge.cli:main"' in text
    out = subprocess.run(
        [sys.executable, "-m", "ocpp_iot.bridge", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "python -m ocpp_iot.bridge" in out.stdout
    assert "add-station" in out.stdout


_NO_AMQTT = "import sys; sys.modules['amqtt'] = None; from ocpp_iot.bridge.cli import main; main()"


@pytest.mark.parametrize("args", [["demo"], ["serve", "--embedded-broker", "--db", ":memory:"]])
def test_without_amqtt_one_line_that_says_what_to_install(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _NO_AMQTT, *args], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, out.stderr
    assert "pip install 'amqtt>=0.11'" in lines[0] and "pip install '.[demo]'" in lines[0]
    assert "ocpp-iot[demo]" not in lines[0]


def test_serve_never_logs_the_password(tmp_path: Path) -> None:
    """A broker URL with user:pass@ (and --password): the secrets never reach the log."""
    from ocpp_iot.testing import free_port

    port = free_port()  # nobody listens: the client logs its attempts
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ocpp_iot.bridge",
            "serve",
            "--broker",
            f"mqtt://bridge:url-secret-1@127.0.0.1:{port}",
            "--db",
            str(tmp_path / "b.sqlite3"),
            "--log-level",
            "DEBUG",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "BRIDGE_PASSWORD": "opt-secret-2"},
    )
    seen: list[str] = []
    guard = threading.Timer(30, proc.terminate)  # ends the read below if no such line comes
    guard.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if f"{port}" in line and len(seen) >= 2:
                break
    finally:
        guard.cancel()
        proc.terminate()
        rest = proc.communicate(timeout=20)[0]
    log = "".join(seen) + rest
    assert f"{port}" in log
    assert "url-secret-1" not in log and "opt-secret-2" not in log, log


# -- bridge call: validation, presence, exit codes -----------------------------------------


def bridge_call(
    url: str, *args: str, user: str = "operator", password: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ocpp_iot.bridge",
            "call",
            "--broker",
            url,
            "--username",
            user,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BRIDGE_PASSWORD": password or USERS[user]},
    )


def test_call_end_to_end_exit_codes(broker: Mosquitto, tmp_path: Path, probe: Any) -> None:
    import asyncio

    from conftest import running_bridge, station
    from raw_station import charging_session_201

    calls = probe(["ocpp/+/json/call"], user="bridge")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return bridge_call(broker.url, *args)

    took: dict[str, float] = {}

    async def scenario() -> dict[str, subprocess.CompletedProcess[str]]:
        async with running_bridge(broker, tmp_path, call_timeout=3.0):
            async with station(broker, "CP1") as st:
                await st.call("BootNotification", charging_session_201("CP1")[0][1])
                out: dict[str, subprocess.CompletedProcess[str]] = {}
                for name, args in (
                    ("ok", ("CP1", "Reset", '{"type": "OnIdle"}')),
                    ("station error", ("CP1", "ClearCache")),
                    ("typo", ("CP1", "Rest", '{"type": "OnIdle"}')),
                    ("bad payload", ("CP1", "Reset", '{"type": "Sometime"}')),
                    ("wrong way", ("CP1", "BootNotification", "{}")),
                    ("usage", ("CP1", "Reset", "[1, 2]")),
                    ("unknown", ("CP9", "Reset", '{"type": "OnIdle"}')),
                    ("queued", ("CP9", "Reset", '{"type": "OnIdle"}', "--queue", "--timeout", "1")),
                ):
                    t0 = time.monotonic()
                    out[name] = await asyncio.to_thread(cli, *args)
                    took[name] = time.monotonic() - t0
                assert [c.action for c in st.received_calls] == ["Reset", "ClearCache"]
                return out

    out = asyncio.run(scenario())
    codes = {name: r.returncode for name, r in out.items()}
    assert codes == {
        "ok": 0,
        "station error": 1,
        "typo": 4,
        "bad payload": 4,
        "wrong way": 4,
        "usage": 2,
        "unknown": 5,
        "queued": 3,
    }, {n: r.stderr for n, r in out.items()}
    assert json.loads(out["ok"].stdout)[2] == {"status": "Accepted"}
    assert json.loads(out["typo"].stdout)[2] == "NotImplemented"
    assert json.loads(out["bad payload"].stdout)[2] == "PropertyConstraintViolation"
    assert json.loads(out["wrong way"].stdout)[2] == "NotSupported"
    assert "station CP9 is unknown (it never connected)" in out["unknown"].stderr
    assert took["unknown"] < 8  # at once, not after --timeout (35 s)
    assert "no answer from CP9 within 1 s" in out["queued"].stderr
    # what reached the broker: the valid calls only, the queued one last
    sent = []
    while not sent or sent[-1].topic != "ocpp/CP9/json/call":  # the queued call came last
        sent.append(calls.get(5))
    assert [(m.topic, json.loads(m.payload)[2:]) for m in sent] == [
        ("ocpp/CP1/json/call", ["Reset", {"type": "OnIdle"}]),
        ("ocpp/CP1/json/call", ["ClearCache", {}]),
        ("ocpp/CP9/json/call", ["Reset", {"type": "OnIdle"}]),
    ]


def test_call_offline_station_and_version_from_state(broker: Mosquitto, probe: Any) -> None:
    admin = probe([], user="bridge")
    admin.client.publish("ocpp/CP2/status", b"offline", qos=1, retain=True)
    state = {
        "station": "CP2",
        "status": "offline",
        "version": "1.6",
        "status_since": "2026-12-01T10:00:00Z",
    }
    admin.client.publish("ocpp/CP2/json/state", json.dumps(state).encode(), qos=1, retain=True)
    admin.client.publish("ocpp/CP3/status", b"online", qos=1, retain=True)
    # wait until both are retained: a reader sees them
    seen = probe(["ocpp/CP2/json/state", "ocpp/CP3/status"])
    seen.get(5), seen.get(5)
    r = bridge_call(broker.url, "CP2", "Reset", '{"type": "Hard"}')  # valid in 1.6
    assert r.returncode == 5, r.stderr
    assert "station CP2 is offline since 2026-12-01T10:00:00Z" in r.stderr
    r = bridge_call(broker.url, "CP2", "Reset", "{}")  # 1.6 spelling of the violation
    assert r.returncode == 4 and json.loads(r.stdout)[2] == "OccurenceConstraintViolation"
    r = bridge_call(broker.url, "CP2", "Reset", '{"type": "Immediate"}')  # a 2.0.1 value
    assert r.returncode == 4 and json.loads(r.stdout)[2] == "PropertyConstraintViolation"
    # online by its status topic only, no bridge running: sent, no answer, and we say why
    r = bridge_call(broker.url, "CP3", "Reset", '{"type": "Immediate"}', "--timeout", "0.5")
    assert r.returncode == 3 and "the bridge is not running" in r.stderr, r.stderr


def test_call_broker_errors_say_why_and_hide_the_password(broker: Mosquitto) -> None:
    t0 = time.monotonic()
    r = bridge_call(broker.url, "CP1", "Reset", '{"type": "OnIdle"}', password="not-the-pw-42")
    assert r.returncode == 6, r.stderr
    assert time.monotonic() - t0 < 8  # a refused login is final: no 10 s of retries
    assert "cannot connect" in r.stderr and "not-the-pw-42" not in r.stderr + r.stdout
    # a station's login may not call stations: the broker refuses the publish (MQTT 5)
    r = bridge_call(broker.url, "CP1", "Reset", '{"type": "OnIdle"}', "--queue", user="CP1")
    assert r.returncode == 6 and "refused the CALL" in r.stderr, r.stderr


@pytest.mark.parametrize("command", ["serve", "call"])
def test_bad_broker_url_is_a_usage_error_without_the_password(command: str) -> None:
    args = [command, "--broker", "mqtt://u:pw-sekrit@host:notaport"]
    r = CliRunner().invoke(main, [*args, *(["CP1", "Reset"] if command == "call" else [])])
    assert r.exit_code == 2, r.output
    assert "bad port" in r.output and "pw-sekrit" not in r.output, r.output


def test_the_user_of_the_broker_url_wins_over_the_default(monkeypatch: Any) -> None:
    """No --username: the settings leave the user to the URL (MqttSettings: the URL may carry
    the credentials); an explicit --username still wins."""
    r, opts = _serve_opts(monkeypatch, "--broker", "mqtt://alice:pw@h:1")
    assert r.exit_code == 0, r.output
    assert opts["username"] is None and opts["password"] is None
    r, opts = _serve_opts(monkeypatch, "--broker", "mqtt://alice:pw@h:1", "--username", "bob")
    assert opts["username"] == "bob"
