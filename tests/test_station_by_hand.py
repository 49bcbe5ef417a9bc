"""docs/bridge.md's "A station by hand, from a shell": its mosquitto_pub / mosquitto_sub lines,
run as written (plus the test broker's address) against ``bridge serve``, get OCPP-J answers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import USERS

from ocpp_iot.testing import Mosquitto

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[str]:
    text = (ROOT / "docs" / "bridge.md").read_text()
    section = text.split("### A station by hand, from a shell", 1)[1].split("\n### ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the section has a shell block"
    return [
        line
        for line in block.group(1).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _argv(line: str, broker: Mosquitto) -> list[str]:
    words = shlex.split(line.replace('"$CP1_PASSWORD"', shlex.quote(USERS["CP1"])))
    host, port = broker.url.rsplit("//", 1)[1].split(":")
    return [words[0], "-h", host, "-p", port, *words[1:]]


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="needs mosquitto-clients")
def test_the_documented_shell_session_is_answered(broker: Mosquitto, bridge_process: Any) -> None:
    lines = _commands()
    assert [ln.split()[0] for ln in lines] == ["mosquitto_sub", "mosquitto_pub", "mosquitto_pub"]
    bridge_process()
    # the subscriber of the docs, told to stop after the two answers (or after 20 s)
    sub = subprocess.Popen(
        [*_argv(lines[0], broker), "-C", "2", "-W", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        # its subscription must exist before the first publish: wait until the broker logs the
        # subscriber's login, then give its SUBSCRIBE (sent right after CONNACK) a moment
        deadline = time.monotonic() + 10
        while "u'CP1'" not in broker.log() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "u'CP1'" in broker.log(), broker.log()
        time.sleep(0.3)
        for line in lines[1:]:
            done = subprocess.run(_argv(line, broker), capture_output=True, text=True, timeout=20)
            assert done.returncode == 0, done.stderr
        out, err = sub.communicate(timeout=30)
    finally:
        sub.kill()
    got = [ln.split(" ", 1) for ln in out.splitlines() if ln.strip()]
    assert [topic for topic, _ in got] == ["ocpp/CP1/down", "ocpp/CP1/down"], (out, err)
    boot, heartbeat = (json.loads(payload) for _, payload in got)
    assert boot[:2] == [3, "1"] and boot[2]["status"] == "Accepted"
    assert heartbeat[:2] == [3, "2"] and "currentTime" in heartbeat[2]
