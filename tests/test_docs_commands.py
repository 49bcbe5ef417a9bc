"""The shell commands of README.md and docs/bridge.md work as written.

Every ``bridge ...`` line of their ``sh`` code blocks must parse with click; the ``--help``
forms run; and the setup of docs/bridge.md ("Run it with mosquitto": add-station, serve) runs
against a test mosquitto, with the docs' ``bridge call`` lines answered by a simulated station.
Only the broker's address is changed (``localhost:1883`` -> the test broker's free port) and
the password file goes to a temporary directory (``BRIDGE_PASSWD_FILE``).
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT

from ocpp_iot.bridge.cli import main
from ocpp_iot.testing import Mosquitto, find_mosquitto
from ocpp_iot.transports.mqtt import MqttClient, MqttSettings

DOCS = [ROOT / "README.md", ROOT / "docs" / "bridge.md"]
_FENCE = re.compile(r"^\s*```\s*(\w*)")
_SEPARATORS = {"&&", "||", ";", "|"}
_PROGRAMS = {"bridge", "ocpp-bridge"}


@dataclass(frozen=True)
class DocCommand:
    source: str  # file:line
    env: dict[str, str] = field(hash=False)
    args: tuple[str, ...]  # after the program name

    def __str__(self) -> str:
        return f"{self.source}: bridge {shlex.join(self.args)}"


def _shell_blocks(path: Path) -> Iterator[tuple[int, list[str]]]:
    lang: str | None = None
    start, lines = 0, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = _FENCE.match(line)
        if m and lang is None:
            lang, start, lines = m.group(1), n + 1, []
        elif m:
            if lang in ("sh", "bash", "shell"):
                yield start, lines
            lang = None
        elif lang is not None:
            lines.append(line)


def _segments(words: list[str]) -> Iterator[list[str]]:
    part: list[str] = []
    for w in words:
        if w in _SEPARATORS:
            yield part
            part = []
        else:
            part.append(w)
    yield part


def doc_commands(path: Path) -> list[DocCommand]:
    """The ``bridge`` / ``ocpp-bridge`` / ``python -m ocpp_iot.bridge`` command lines."""
    found = []
    for start, lines in _shell_blocks(path):
        buf, first = "", start
        for n, line in enumerate(lines, start):
            if not buf:
                first = n
            buf = f"{buf}\n{line}" if buf else line
            if buf.endswith("\\"):  # continued on the next line
                buf = buf[:-1]
                continue
            try:
                words = shlex.split(buf, comments=True)
            except ValueError:  # a quote that closes on a later line
                continue
            buf = ""
            for seg in _segments(words):
                env: dict[str, str] = {}
                while seg and seg[0] == "sudo":
                    seg = seg[1:]
                while seg and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", seg[0]):
                    key, _, value = seg[0].partition("=")
                    env[key] = value
                    seg = seg[1:]
                if seg[:1] and seg[0] in _PROGRAMS:
                    args = seg[1:]
                elif seg[:3] == ["python", "-m", "ocpp_iot.bridge"]:
                    args = seg[3:]
                else:
                    continue
                found.append(DocCommand(f"{path.name}:{first}", env, tuple(args)))
    return found


ALL = [c for p in DOCS for c in doc_commands(p)]


def test_the_docs_have_bridge_commands() -> None:
    subcommands = {c.args[0] for c in ALL if c.args}
    assert {"serve", "call", "add-station", "demo"} <= subcommands, subcommands
    assert len(ALL) >= 12


def _parse(args: tuple[str, ...], env: dict[str, str]) -> None:
    """Parse like ``bridge ARGS`` would (options, types, choices), without running it."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        try:
            ctx = main.make_context("bridge", list(args))
            with ctx:
                protected = getattr(ctx, "_protected_args", None)
                if protected is None:  # click < 8.2
                    protected = ctx.protected_args
                rest = [*protected, *ctx.args]
                if rest:
                    name, cmd, sub = main.resolve_command(ctx, rest)
                    assert cmd is not None and name is not None
                    cmd.make_context(name, sub, parent=ctx)
        except click.exceptions.Exit as exc:  # --help, --version
            assert exc.exit_code == 0


@pytest.mark.parametrize("command", ALL, ids=str)
def test_every_bridge_command_of_the_docs_parses(command: DocCommand) -> None:
    try:
        _parse(command.args, command.env)
    except click.ClickException as exc:
        pytest.fail(f"{command}: {exc.format_message()}")


def test_no_install_command_that_cannot_work() -> None:
    for path in DOCS:
        text = path.read_text()
        assert "install 'ocpp-iot[demo]'" not in text and 'install "ocpp-iot[demo]"' not in text


@pytest.mark.parametrize("command", [c for c in ALL if "--help" in c.args], ids=str)
def test_help_forms_run(command: DocCommand) -> None:
    r = CliRunner().invoke(main, list(command.args), env=command.env)
    assert r.exit_code == 0 and "Usage:" in r.output, r.output


def _online(url: str, password: str) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    c = MqttClient(
        MqttSettings(
            url, client_id="docs-watch", username="operator", password=password, clean_start=True
        ),
        lambda m: got.put(m.payload),
    )
    c.subscribe("ocpp/bridge/status", 1)
    c.start()
    try:
        while got.get(timeout=20) != b"online":
            pass
    finally:
        c.stop()


def test_the_setup_of_docs_bridge_md_runs(tmp_path: Path) -> None:
    """docs/bridge.md's "Run it with mosquitto", then every ``bridge call`` of both files, to a
    charger node (``ocpp_iot.charger_node``) logged in as CP1."""
    from bridge_memory_helpers import until

    from ocpp_iot.charger_node.node import Node, NodeConfig
    from ocpp_iot.charger_node.simulated import SimulatedEvse, Traffic

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    guide = doc_commands(ROOT / "docs" / "bridge.md")
    passwd = tmp_path / "etc" / "passwd"
    # the files add-station writes (as root by default in /etc/ocpp-iot) stay in tmp_path
    env = {"BRIDGE_PASSWD_FILE": str(passwd),
           "BRIDGE_LORA_STATIONS": str(tmp_path / "etc" / "lora-stations.json")}  # fmt: skip
    passwords: dict[str, str] = {}
    for c in guide:
        if c.args[0] == "add-station" and "--help" not in c.args:
            r = CliRunner().invoke(main, list(c.args), env={**env, **c.env})
            assert r.exit_code == 0, f"{c}: {r.output}"
            args = list(c.args)
            pw = args[args.index("--password") + 1] if "--password" in args else None
            printed = re.search(r"^password: (\S+)$", r.output, re.M)
            passwords[c.args[1]] = pw or (printed.group(1) if printed else "")
            if "--lora" in c.args:  # a radio station: a key in the stations file, no MQTT user
                assert re.search(r"^lora key: [0-9a-f]{32}\b", r.output, re.M), r.output
    assert {"bridge", "operator", "CP1"} <= set(passwords)
    with Mosquitto(directory=tmp_path / "mosquitto", passwd_file=passwd) as broker:
        hostport = broker.url.removeprefix("mqtt://")
        serve = next(c for c in guide if c.args[0] == "serve" and "--allow-token" in c.args)
        args = [a.replace("localhost:1883", hostport) for a in serve.args]
        bridge = subprocess.Popen(
            [sys.executable, "-m", "ocpp_iot.bridge", *args],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **serve.env},
        )
        try:
            _online(broker.url, passwords["operator"])
            calls = [c for p in DOCS for c in doc_commands(p) if c.args[0] == "call"]
            assert len(calls) >= 3

            cfg = NodeConfig(
                "CP1", broker=broker.url, password=passwords["CP1"], data_dir=tmp_path / "node"
            )
            idle = SimulatedEvse(1, seed="CP1", traffic=Traffic(mean_gap_s=1e9))  # no EV comes
            node = Node(cfg, evse=idle)

            def booted(restarts: int) -> bool:
                rt = node.runtime  # (each Reset restarts the node: a new one)
                accepted = rt is not None and rt.machine.registration == "accepted"
                return accepted and node.restarts == restarts

            async def scenario() -> list[subprocess.CompletedProcess[str]]:
                running = asyncio.create_task(node.run())
                out: list[subprocess.CompletedProcess[str]] = []
                try:
                    for c in calls:
                        resets = sum(r.returncode == 0 and "Reset" in r.args for r in out)
                        await until(partial(booted, resets), f"CP1 booted, {resets} resets", 15)
                        out.append(
                            await asyncio.to_thread(
                                subprocess.run,
                                [sys.executable, "-m", "ocpp_iot.bridge", *c.args],
                                capture_output=True,
                                text=True,
                                timeout=60,
                                env={**os.environ, "BRIDGE_BROKER": broker.url, **c.env},
                            )
                        )
                    return out
                finally:
                    node.stop()
                    await asyncio.wait_for(running, 10)

            results = asyncio.run(scenario())
            for c, r in zip(calls, results, strict=True):
                assert r.returncode == 0, f"{c}: {r.returncode} {r.stdout} {r.stderr}"
                assert r.stdout.startswith("[3,"), f"{c}: {r.stdout}"
            assert node.restarts == sum("Reset" in c.args for c in calls)  # each one reached it
        finally:
            bridge.terminate()
            err = bridge.communicate(timeout=20)[1].decode(errors="replace")
        assert bridge.returncode == 0, err
