"""Deployment: the shipped mosquitto.conf, ``bridge add-station`` and ``ocpp_iot.deploy``.

The broker tests start mosquitto as root with the shipped ``mosquitto.conf`` (only the port and
the two directories moved into a temporary layout made as the docs say), so mosquitto drops to
its own user exactly as in a deployment.
"""

from __future__ import annotations

import ast
import configparser
import grp
import os
import pwd
import queue
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from ocpp_iot import deploy
from ocpp_iot.bridge.cli import main
from ocpp_iot.testing import find_mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ocpp_iot"


# -- import boundary ------------------------------------------------------------------------


def _imports_of_testing(path: Path) -> list[str]:
    """Import statements of ``path`` that reach ``ocpp_iot.testing`` (absolute or relative)."""
    tree = ast.parse(path.read_text(), str(path))
    package = ["ocpp_iot", *path.relative_to(SRC).parent.parts]
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            names = [module] + [f"{module}.{a.name}" for a in node.names]
        if any(n == "ocpp_iot.testing" or n.startswith("ocpp_iot.testing.") for n in names):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_production_module_imports_testing() -> None:
    offenders = [
        hit
        for path in sorted(SRC.rglob("*.py"))
        if "testing" not in path.relative_to(SRC).parts
        for hit in _imports_of_testing(path)
    ]
    assert offenders == []


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    bridge = SRC / "bridge"
    probe = bridge / "_probe_imports_testing.py"
    try:
        probe.write_text(
            "from ..testing.mosquitto import free_port\n"
            "from .. import testing\n"
            "import ocpp_iot.testing\n"
            "from ocpp_iot.deploy import render_acl\n"
        )
        assert len(_imports_of_testing(probe)) == 3
    finally:
        probe.unlink()


# -- files ----------------------------------------------------------------------------------


def test_deploy_acl_is_the_rendered_template() -> None:
    assert (ROOT / "deploy" / "acl").read_text() == deploy.render_acl("ocpp")
    assert "topic read ocpp/+/json/state" in deploy.render_acl("ocpp")


def test_add_user_keeps_others_replaces_and_stays_readable(tmp_path: Path) -> None:
    passwd = tmp_path / "etc" / "passwd"
    deploy.add_user(passwd, "bridge", "b1")
    deploy.add_user(passwd, "CP1", "c1")
    written = deploy.add_user(passwd, "CP1", "c2", acl_file=tmp_path / "etc" / "acl")
    lines = passwd.read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["bridge", "CP1"]
    mode = stat.S_IMODE(passwd.stat().st_mode)
    try:
        gid = grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        gid = None
    if gid is not None and os.geteuid() == 0:
        assert (mode, passwd.stat().st_gid) == (0o640, gid)
        assert written[0].group == "mosquitto" and not written[0].note
    else:
        assert mode in (0o640, 0o644)
    assert (tmp_path / "etc" / "acl").read_text() == deploy.render_acl("ocpp")
    # an existing ACL is left alone
    (tmp_path / "etc" / "acl").write_text("# mine\n")
    deploy.add_user(passwd, "CP2", "c3", acl_file=tmp_path / "etc" / "acl")
    assert (tmp_path / "etc" / "acl").read_text() == "# mine\n"


def test_default_passwd_file_is_outside_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BRIDGE_PASSWD_FILE", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert deploy.default_passwd_file() == Path("/etc/mosquitto/ocpp/passwd")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert deploy.default_passwd_file() == tmp_path / ".config" / "ocpp-iot" / "passwd"
    monkeypatch.setenv("BRIDGE_PASSWD_FILE", str(tmp_path / "p"))
    assert deploy.default_passwd_file() == tmp_path / "p"


def test_add_station_default_never_touches_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    before = (ROOT / "deploy" / "passwd").read_bytes()
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("BRIDGE_PASSWD_FILE", str(tmp_path / "passwd"))
    r = CliRunner().invoke(main, ["add-station", "CP42"])
    assert r.exit_code == 0, r.output
    assert "CP42:" in (tmp_path / "passwd").read_text()
    assert (ROOT / "deploy" / "passwd").read_bytes() == before
    for bad in ("bad/id", "CP 1", "CP+", ""):
        r = CliRunner().invoke(main, ["add-station", bad])
        assert r.exit_code == 2, (bad, r.output)


# -- the shipped mosquitto.conf, started as root -------------------------------------------


def _needs_root_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root: mosquitto drops to its own user only when started as root")
    try:
        pwd.getpwnam(deploy.MOSQUITTO_USER)
    except KeyError:
        pytest.skip("no mosquitto user on this machine")


@dataclass
class ShippedBroker:
    port: int
    etc: Path
    var: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"mosquitto did not listen: {log.read_text()}")


@pytest.fixture
def shipped_broker() -> Iterator[ShippedBroker]:
    """mosquitto as root from the shipped mosquitto.conf, set up as docs/bridge.md says:
    ``bridge add-station bridge`` (the password file and ACL), ``install -d -o mosquitto``
    for the persistence directory. Users: bridge (pw ``bridge-pw``)."""
    _needs_root_mosquitto()
    # a world-traversable place, like /etc and /var (pytest's tmp_path is root-only)
    top = Path(tempfile.mkdtemp(prefix="ocpp-shipped-"))
    os.chmod(top, 0o755)
    try:
        shutil.copy(ROOT / "mosquitto.conf", top / "mosquitto.conf")
        shutil.copytree(ROOT / "deploy", top / "deploy")
        etc, var = top / "etc-mosquitto-ocpp", top / "var-lib-mosquitto"
        r = CliRunner().invoke(
            main,
            [
                "add-station",
                "bridge",
                "--password",
                "bridge-pw",
                "--passwd-file",
                str(etc / "passwd"),
            ],
        )
        assert r.exit_code == 0, r.output
        os.chmod(etc, 0o755)
        var.mkdir()  # install -d -o mosquitto
        m = pwd.getpwnam(deploy.MOSQUITTO_USER)
        os.chown(var, m.pw_uid, m.pw_gid)
        port = free_port()
        conf = (top / "mosquitto.conf").read_text()
        for old, new in (
            ("listener 1883\n", f"listener {port} 127.0.0.1\n"),
            ("/etc/mosquitto/ocpp/", f"{etc}/"),
            ("/var/lib/mosquitto/", f"{var}/"),
        ):
            assert old in conf, f"mosquitto.conf no longer has {old!r}"
            conf = conf.replace(old, new)
        assert "\nuser " not in conf  # it drops to the default user, mosquitto
        (top / "mosquitto.conf").write_text(conf)
        log = top / "stderr.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [find_mosquitto() or "mosquitto", "-c", "mosquitto.conf"],
                cwd=top,
                stdout=fh,
                stderr=fh,
            )
        try:
            _wait_listening(port, proc, log)
            yield ShippedBroker(port, etc, var, log, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _login(port: int, user: str, password: str) -> int:
    """The CONNACK reason code mosquitto answers ``user``/``password`` with (0: accepted)."""
    answers: queue.Queue[int] = queue.Queue()
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}", protocol=paho.MQTTv5)
    c.username_pw_set(user, password)
    c.on_connect = lambda cl, ud, fl, rc, pr: answers.put(rc.value)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        return answers.get(timeout=5)
    finally:
        c.disconnect()
        c.loop_stop()


def test_add_station_then_reload_as_the_mosquitto_user(shipped_broker: ShippedBroker) -> None:
    b = shipped_broker
    assert _login(b.port, "bridge", "bridge-pw") == 0
    assert _login(b.port, "CP77", "pw77") != 0
    r = CliRunner().invoke(
        main, ["add-station", "CP77", "--password", "pw77", "--passwd-file", str(b.etc / "passwd")]
    )
    assert r.exit_code == 0, r.output
    b.proc.send_signal(signal.SIGHUP)  # reload: mosquitto reads the file as user mosquitto
    deadline = time.monotonic() + 10
    while _login(b.port, "CP77", "pw77") != 0:
        assert time.monotonic() < deadline, b.stderr()
    assert _login(b.port, "bridge", "bridge-pw") == 0  # existing users still get in
    assert "Error" not in b.stderr(), b.stderr()


def test_persistence_saves_as_the_mosquitto_user(shipped_broker: ShippedBroker) -> None:
    b = shipped_broker
    assert _login(b.port, "bridge", "bridge-pw") == 0
    b.proc.send_signal(signal.SIGTERM)  # mosquitto saves its database on the way out
    assert b.proc.wait(10) == 0
    log = b.stderr()
    assert "Saving in-memory database" in log, log
    assert "Permission denied" not in log and "Error" not in log, log
    assert (b.var / "mosquitto.db").stat().st_uid == pwd.getpwnam("mosquitto").pw_uid


# -- deploy/charger-node.service and the node.toml of docs/raspberry-pi.md -------------------

UNIT = ROOT / "deploy" / "charger-node.service"


def _unit() -> configparser.ConfigParser:
    """The unit as INI (systemd's syntax is close enough for these keys; names keep their case)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text(), str(UNIT))
    return parser


def _doc_node_toml() -> str:
    """The first ``toml`` block of docs/raspberry-pi.md: the sample /etc/charger-node/node.toml."""
    text = (ROOT / "docs" / "raspberry-pi.md").read_text()
    start = text.index("```toml\n") + len("```toml\n")
    return text[start : text.index("```", start)]


def _run_recorded(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """``charger-node ARGS`` with the station replaced by a recorder: (result, its NodeConfig)."""
    import ocpp_iot.charger_node.cli as node_cli

    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, cfg: Any) -> None:
            seen["cfg"] = cfg

        async def run(self) -> None:
            return None

        def stop(self, how: str = "stop") -> None:
            pass

    monkeypatch.setattr(node_cli, "Node", Recorder)
    result = CliRunner().invoke(node_cli.main, args, env={"CHARGER_NODE_CONFIG": None})
    return result, seen.get("cfg")


def test_charger_node_unit_starts_the_console_script_with_the_documented_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _unit()["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == "/opt/charger-node/venv/bin/charger-node"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[Path(argv[0]).name] == "ocpp_iot.charger_node.cli:main"
    assert argv[1:] == ["run", "--config", "/etc/charger-node/node.toml"]
    # the unit's own arguments, with docs/raspberry-pi.md's node.toml in place of /etc's
    conf = tmp_path / "node.toml"
    conf.write_text(_doc_node_toml())
    result, cfg = _run_recorded([argv[1], "--config", str(conf)], monkeypatch)
    assert result.exit_code == 0, result.output
    got = (cfg.station_id, cfg.version, cfg.connectors, cfg.encoding)
    assert got == ("CP7", "2.0.1", 1, "cbor")
    assert cfg.broker == "mqtts://bridge.example.net:8883" and cfg.password
    # data_dir is the directory systemd makes for the service and lets it write
    assert cfg.data_dir == Path("/var/lib") / service["StateDirectory"]
    assert str(cfg.data_dir) in service["ReadWritePaths"].split()


def test_charger_node_unit_restarts_stops_and_is_confined() -> None:
    unit = _unit()
    service = unit["Service"]
    assert service["User"] == service["Group"] == "charger-node"
    assert service["Restart"] == "always" and unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert service["KillSignal"] == "SIGTERM" and int(service["TimeoutStopSec"]) > 0
    assert "network-online.target" in unit["Unit"]["After"].split()
    assert "network-online.target" in unit["Unit"]["Wants"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert service["NoNewPrivileges"] == service["PrivateTmp"] == "yes"
    assert service["ProtectSystem"] == "strict"
    # a serial modem or GPIO must stay reachable: any DeviceAllow= (ProtectClock= implies one)
    # or PrivateDevices= would close them
    assert not {"DeviceAllow", "ProtectClock", "PrivateDevices"} & set(service)


def test_charger_node_unit_does_not_restart_after_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RestartPreventExitStatus=2 assumes that a bad node.toml ends ``run`` with status 2."""
    assert _unit()["Service"]["RestartPreventExitStatus"].split() == ["2"]
    conf = tmp_path / "node.toml"
    conf.write_text(_doc_node_toml().replace("broker =", "brokr ="))
    result, cfg = _run_recorded(["run", "--config", str(conf)], monkeypatch)
    assert result.exit_code == 2 and "brokr" in result.output and cfg is None


def test_charger_node_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify wants the program to exist: the venv is not installed here
    text = UNIT.read_text().replace("/opt/charger-node/venv/bin/charger-node", "/bin/true")
    (tmp_path / UNIT.name).write_text(text)
    proc = subprocess.run(
        [analyze, "verify", str(tmp_path / UNIT.name)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "charger-node.service" not in proc.stderr, proc.stderr
