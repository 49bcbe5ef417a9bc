"""``bridge call``: one CALL to a station through the bridge, from a shell.

Before anything is sent: the station's retained ``{prefix}/{id}/status`` and
``{prefix}/{id}/json/state`` say whether it ever connected, whether it is online and which OCPP
version it speaks; the CALL is validated against that version (an action the version does not
define, or a payload that fails its schema, never goes down a slow link). Then the CALL goes to
``{prefix}/{id}/json/call`` and the answer comes back on ``{prefix}/{id}/json/result``.
"""

from __future__ import annotations

import enum
import json
import queue
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from .. import model
from ..codecs import ocppj
from ..rpc import Call
from ._validate import validate_call as _validate
from .settings import mqtt_settings, redacted

__all__ = ["EXIT_CODES_HELP", "ExitCode", "Presence", "run_call", "validate_call"]

DEFAULT_VERSION = "2.0.1"
#: How long to wait for the retained status/state of the station before calling it unknown.
PRESENCE_WAIT = 1.0


class ExitCode(enum.IntEnum):
    OK = 0  # the station answered with a CALLRESULT
    CALLERROR = 1  # the station (or the bridge for it) answered with a CALLERROR
    USAGE = 2  # click's code for a bad command line
    NO_ANSWER = 3  # nothing came back within --timeout
    INVALID = 4  # refused before sending: unknown action or payload failing the schema
    NOT_CONNECTED = 5  # the station never connected or is offline (and no --queue)
    BROKER = 6  # cannot connect to the broker, or it refused our CALL (ACL)


#: The table of exit codes, for ``bridge call --help`` and docs/bridge.md.
EXIT_CODES_HELP = """\
\b
Exit status:
  0  the station answered with a CALLRESULT (printed)
  1  the station, or the bridge for it, answered with a CALLERROR (printed)
  2  usage error (bad option or argument, PAYLOAD not a JSON object)
  3  no answer within --timeout
  4  not sent: the action is unknown to the station's OCPP version, or the
     payload fails its schema (the CALLERROR the station would send is printed)
  5  not sent: the station never connected, or is offline (--queue sends anyway)
  6  the broker cannot be reached, refused our login, or refused the CALL"""


def validate_call(action: str, payload: Any, version: str, message_id: str) -> list[Any] | None:
    """The OCPP-J CALLERROR frame the station would answer this CALL with, or None if valid
    (the bridge's own check, :func:`ocpp_iot.bridge._validate.validate_call`)."""
    error = _validate(version, Call(message_id, action, payload))
    return None if error is None else ocppj.to_list(error)


@dataclass(slots=True)
class Presence:
    """What the broker's retained messages say about a station."""

    status: str | None = None  # "online" / "offline" from {prefix}/{id}/status
    state: dict[str, Any] | None = None  # the bridge's {prefix}/{id}/json/state
    bridge: str | None = None  # {prefix}/bridge/status

    @property
    def known(self) -> bool:
        return self.status is not None or self.state is not None

    @property
    def online(self) -> bool:
        if self.state is not None and self.state.get("status") in ("online", "offline"):
            return bool(self.state["status"] == "online")
        return self.status == "online"

    @property
    def version(self) -> str | None:
        v = (self.state or {}).get("version")
        return v if isinstance(v, str) and v in model.VERSION_MODULES else None

    def offline_since(self) -> str:
        state = self.state or {}
        since = state.get("status_since") or state.get("last_seen")
        return f"offline since {since}" if since else "offline"


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _wait_connected(client: Any, timeout: float) -> bool:
    """Connected within ``timeout``; False at once when the broker refuses the login."""
    end = time.monotonic() + timeout
    while not client.wait_connected(min(0.1, max(0.0, end - time.monotonic()))):
        refused = client.last_connect_error not in (None, "connection failed")
        if refused or time.monotonic() >= end:
            return False
    return True


def run_call(
    station: str,
    action: str,
    payload: dict[str, Any],
    opts: Mapping[str, Any],
    *,
    timeout: float,
    version: str | None = None,
    queue_if_absent: bool = False,
) -> ExitCode:
    """Do one ``bridge call``: print the answer (stdout) or what went wrong (stderr)."""
    from ..transports.mqtt import MqttClient, PublishRefused

    prefix = opts["prefix"]
    message_id = secrets.token_hex(8)
    topics = {
        f"{prefix}/{station}/json/result": "result",
        f"{prefix}/{station}/status": "status",
        f"{prefix}/{station}/json/state": "state",
        f"{prefix}/bridge/status": "bridge",
    }
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()

    def on_message(msg: Any) -> None:
        kind = topics.get(msg.topic)
        if kind is not None:
            inbox.put((kind, msg.payload))

    settings = mqtt_settings(opts, f"bridge-call-{secrets.token_hex(4)}", clean=True)
    client = MqttClient(settings, on_message)
    for topic in topics:  # sent in one SUBSCRIBE on connecting: when the retained status or
        client.subscribe(topic, 1)  # state arrives, the result topic is subscribed too
    client.start()
    deadline = time.monotonic() + timeout
    presence = Presence()
    answer: list[Any] | None = None

    def take(kind: str, data: bytes) -> None:
        nonlocal answer
        if kind == "status":
            presence.status = data.decode(errors="replace")
        elif kind == "bridge":
            presence.bridge = data.decode(errors="replace")
        elif kind == "state":
            try:
                state = json.loads(data)
            except ValueError:
                return
            if isinstance(state, dict):
                presence.state = state
        elif kind == "result":
            try:
                frame = json.loads(data)
            except ValueError:
                return
            if isinstance(frame, list) and len(frame) >= 3 and frame[1] == message_id:
                answer = frame

    try:
        if not _wait_connected(client, min(timeout, 10.0)):
            why = client.last_connect_error or "no answer"
            _echo_err(redacted(f"cannot connect to {opts['broker']}: {why}", opts))
            return ExitCode.BROKER
        # retained status and state arrive right after the SUBACKs; the state says it all
        presence_end = time.monotonic() + PRESENCE_WAIT
        while presence.state is None:
            try:
                take(*inbox.get(timeout=max(0.0, presence_end - time.monotonic())))
            except queue.Empty:
                break
        use_version = version or presence.version or DEFAULT_VERSION
        error = validate_call(action, payload, use_version, message_id)
        if error is not None:
            click.echo(json.dumps(error))
            _echo_err(f"not sent to {station}: {error[2]}: {error[3]}")
            return ExitCode.INVALID
        if not presence.known or not presence.online:
            what = (
                f"station {station} is unknown (it never connected)"
                if not presence.known
                else f"station {station} is {presence.offline_since()}"
            )
            if not queue_if_absent:
                _echo_err(f"{what}: not sent (--queue sends it anyway)")
                return ExitCode.NOT_CONNECTED
            _echo_err(f"{what}: sending anyway (--queue)")
        try:
            client.publish_confirmed(
                f"{prefix}/{station}/json/call", json.dumps([2, message_id, action, payload])
            )
        except PublishRefused as exc:
            user = settings.username or "the URL's user"
            _echo_err(
                f"the broker refused the CALL ({exc.reason} {exc.reason_name}): may {user} "
                f"publish on {prefix}/+/json/call? (the shipped ACL lets 'operator' do it)"
            )
            return ExitCode.BROKER
        while answer is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                take(*inbox.get(timeout=left))
            except queue.Empty:
                break
        if answer is None:
            hint = (
                f" (the bridge is {presence.bridge or 'not running'}: {prefix}/bridge/status)"
                if presence.bridge != "online"
                else ""
            )
            _echo_err(f"no answer from {station} within {timeout:g} s{hint}")
            return ExitCode.NO_ANSWER
        click.echo(json.dumps(answer))
        return ExitCode.OK if answer[0] == 3 else ExitCode.CALLERROR
    finally:
        client.stop()
