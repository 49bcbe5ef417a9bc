"""``bridge``: serve OCPP stations over MQTT, call them, try it all with ``bridge demo``.

Also installed as ``ocpp-bridge`` and runnable as ``python -m ocpp_iot.bridge``: on Debian and
Raspberry Pi OS, iproute2's ``/usr/sbin/bridge`` shadows ``bridge`` when PATH puts it first.
Where options come from (command line, ``BRIDGE_*``, ``--config``): :mod:`.settings`; the
worker processes: :mod:`.supervisor`; ``bridge call``: :mod:`.callcmd`; the password file of
``add-station``: :mod:`ocpp_iot.deploy` (with ``--lora``, the stations file:
:mod:`ocpp_iot.lora_keys`); ``lora-gateway``: :mod:`.lora_gateway`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from .callcmd import EXIT_CODES_HELP, run_call
from .lora_gateway_cli import add_lora_station, lora_gateway
from .settings import (
    LEVELS,
    environment_warnings,
    mqtt_options,
    setup_logging,
    show_envvars,
    url_user_wins,
)
from .supervisor import load_handlers, run_worker, supervise

__all__ = ["main", "load_handlers"]


@click.group(context_settings={"auto_envvar_prefix": "BRIDGE", "show_default": True})
@click.version_option(package_name="ocpp-iot")
def main() -> None:
    """OCPP over MQTT: the bridge between stations and a charge system.

    Also installed as ocpp-bridge, and runnable as python -m ocpp_iot.bridge (iproute2 ships
    another bridge command on Debian and Raspberry Pi OS).
    """
    group = click.get_current_context().command
    assert isinstance(group, click.Group)
    for warning in environment_warnings(group):
        click.echo(warning, err=True)


@main.command()
@mqtt_options(username="bridge")
@click.option(
    "--client-id",
    default="ocpp-bridge",
    envvar="BRIDGE_CLIENT_ID",
    help="MQTT client id (workers add -w0, -w1, ...); keep it stable",
)
@click.option(
    "--session-expiry",
    type=int,
    default=86_400,
    envvar="BRIDGE_SESSION_EXPIRY",
    help="seconds the broker keeps our session and queued frames while we are away",
)
@click.option(
    "--handler",
    "handlers",
    multiple=True,
    envvar="BRIDGE_HANDLER",
    help="behaviour to host, package.module:Class (repeat per version); "
    "default: the built-in reference charge system",
)
@click.option(
    "--db",
    default="bridge.sqlite3",
    envvar="BRIDGE_DB",
    help="SQLite file of the shared store (and of the reference charge system)",
)
@click.option(
    "--allow-token",
    multiple=True,
    envvar="BRIDGE_ALLOW_TOKEN",
    help="id token the reference charge system accepts (repeat); none: accept all",
)
@click.option(
    "--heartbeat-interval",
    type=int,
    default=300,
    envvar="BRIDGE_HEARTBEAT_INTERVAL",
    help="seconds between Heartbeats: the interval the reference charge system gives "
    "stations in its BootNotification answer",
)
@click.option(
    "--mirror/--no-mirror",
    default=True,
    envvar="BRIDGE_MIRROR",
    help="publish every frame as OCPP-J on {prefix}/{station}/json/up|down",
)
@click.option(
    "--state/--no-state",
    default=True,
    envvar="BRIDGE_STATE",
    help="keep a retained JSON summary per station on {prefix}/{station}/json/state "
    "(status, version, vendor/model, connectors, transactions, last error; one worker only)",
)
@click.option(
    "--call-timeout",
    type=float,
    default=30.0,
    envvar="BRIDGE_CALL_TIMEOUT",
    help="seconds a station has to answer a CALL",
)
@click.option(
    "--dedup-retention",
    type=float,
    default=3600.0,
    envvar="BRIDGE_DEDUP_RETENTION",
    help="seconds an answered CALL is remembered to answer repeats of it",
)
@click.option(
    "--commit-delay",
    type=click.FloatRange(0, 1000),
    default=0.0,
    envvar="BRIDGE_COMMIT_DELAY",
    help="milliseconds an answer may wait to be stored in one transaction with others",
)
@click.option(
    "--default-version",
    type=click.Choice(["1.6", "2.0.1", "2.1"]),
    default="2.0.1",
    envvar="BRIDGE_DEFAULT_VERSION",
    help="OCPP version for calling a station not heard from yet",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    envvar="BRIDGE_WORKERS",
    help="worker processes on an MQTT 5 shared subscription",
)
@click.option(
    "--handler-threads",
    type=click.IntRange(0, 256),
    default=0,
    envvar="BRIDGE_HANDLER_THREADS",
    help="run handler methods that are plain functions in this many threads (for handlers "
    "that block: database or HTTP calls); 0 runs them in the event loop, which is fastest",
)
@click.option(
    "--embedded-broker",
    is_flag=True,
    default=False,
    envvar="BRIDGE_EMBEDDED_BROKER",
    help="run an in-process amqtt broker (MQTT 3.1.1, no ACL) at --broker's port",
)
@click.pass_context
def serve(ctx: click.Context, /, **opts: Any) -> None:
    """Serve stations: answer their CALLs, mirror traffic, call them on request."""
    url_user_wins(ctx, opts)
    setup_logging(opts["log_level"], opts)
    if opts["embedded_broker"]:
        from .embedded import AMQTT_MISSING, amqtt_available

        if not amqtt_available():
            raise click.ClickException(AMQTT_MISSING)
        if opts["workers"] > 1:
            raise click.UsageError("--embedded-broker is MQTT 3.1.1 only: use one worker")
        opts["mqtt_version"] = "3.1.1"
    if opts["workers"] > 1 and opts["mqtt_version"] != "5":
        raise click.UsageError("--workers needs MQTT 5 (shared subscriptions)")
    if opts["workers"] == 1:
        sys.exit(run_worker(opts, 0))
    sys.exit(supervise(opts))


@main.command(epilog=EXIT_CODES_HELP)
@mqtt_options(username="operator")
@click.argument("station")
@click.argument("action")
@click.argument("payload", default="{}")
@click.option(
    "--timeout",
    type=float,
    default=35.0,
    envvar="BRIDGE_CALL_TIMEOUT_CLI",
    help="seconds to wait for the answer",
)
@click.option(
    "--version",
    "--ocpp-version",
    "ocpp_version",
    type=click.Choice(["1.6", "2.0.1", "2.1"]),
    default=None,
    envvar="BRIDGE_OCPP_VERSION",
    help="OCPP version to validate the CALL against  [default: the station's, from its "
    "retained {prefix}/{station}/json/state, else 2.0.1]",
)
@click.option(
    "--queue",
    "queue_if_absent",
    is_flag=True,
    default=False,
    envvar="BRIDGE_QUEUE",
    help="send even if the station never connected or is offline, and wait for the answer",
)
@click.pass_context
def call(
    ctx: click.Context,
    /,
    station: str,
    action: str,
    payload: str,
    timeout: float,
    ocpp_version: str | None,
    queue_if_absent: bool,
    **opts: Any,
) -> None:
    """Call STATION: send ACTION with PAYLOAD (a JSON object) through the bridge, print the
    answer (OCPP-J) on stdout.

    The CALL is checked against the station's OCPP version before it is sent; a station that
    never connected or is offline is reported at once. Log in as a user the ACL lets publish
    {prefix}/+/json/call: 'operator' (the default) or 'bridge'.
    """
    url_user_wins(ctx, opts)
    setup_logging("WARNING" if opts["log_level"].upper() == "INFO" else opts["log_level"], opts)
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(f"PAYLOAD is not JSON: {exc}", param_hint="PAYLOAD") from None
    if not isinstance(body, dict):
        raise click.BadParameter("PAYLOAD must be a JSON object", param_hint="PAYLOAD")
    code = run_call(
        station,
        action,
        body,
        opts,
        timeout=timeout,
        version=ocpp_version,
        queue_if_absent=queue_if_absent,
    )
    sys.exit(int(code))


@main.command("add-station")
@click.argument("station")
@click.option(
    "--passwd-file",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BRIDGE_PASSWD_FILE",
    show_default=False,
    help="mosquitto password file to add the station to  [default: "
    "/etc/mosquitto/ocpp/passwd as root, else ~/.config/ocpp-iot/passwd]",
)
@click.option(
    "--acl-file",
    type=click.Path(dir_okay=False),
    default=None,
    show_default=False,
    help="also write the ACL here if it does not exist yet  [default: acl next to the "
    "password file]",
)
@click.option("--prefix", default="ocpp", help="topic prefix of the ACL written")
@click.option("--password", default=None, help="default: a new random password (printed)")
@click.option(
    "--lora",
    is_flag=True,
    default=False,
    help="a LoRa station: give it a radio address and a new 128-bit key in the gateway's "
    "stations file (printed once, for the station's node) instead of an MQTT user",
)
@click.option(
    "--stations-file",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BRIDGE_LORA_STATIONS",
    show_default=False,
    help="with --lora: the gateway's stations file  [default: /etc/ocpp-iot/lora-stations.json "
    "as root, else ~/.config/ocpp-iot/lora-stations.json]",
)
@click.option(
    "--lora-address",
    type=click.IntRange(1, 0xFFFE),
    default=None,
    help="with --lora: this address  [default: a free one at random]",
)
@click.option("--rekey", is_flag=True, default=False, help="with --lora: a new key, same address")
def add_station(
    station: str,
    passwd_file: str | None,
    acl_file: str | None,
    prefix: str,
    password: str | None,
    lora: bool,
    stations_file: str | None,
    lora_address: int | None,
    rekey: bool,
) -> None:
    """Add STATION (its id is its MQTT username) to a mosquitto password file.

    The file stays readable by mosquitto after it drops from root to its own user (mode 0640,
    group mosquitto). The ACL's pattern lines already give the station its own topics; reload
    mosquitto (SIGHUP) after. Also adds the bridge's, operators' and the LoRa gateway's users:
    add-station bridge, add-station lora-gw.

    With --lora, STATION is a radio station served by bridge lora-gateway: it gets an address
    and a key in the gateway's stations file (mode 0600), no MQTT user.
    """
    from .. import deploy

    # bridge: its own MQTT user, but never a station's topics (a LoRa station's are)
    if (lora or station != "bridge") and not deploy.valid_station_id(station):
        raise click.BadParameter(f"invalid station id {station!r}", param_hint="STATION")
    if lora:
        add_lora_station(station, stations_file, lora_address, rekey)
        return
    path = Path(passwd_file) if passwd_file else deploy.default_passwd_file()
    acl = Path(acl_file) if acl_file else path.with_name("acl")
    pw = password or secrets.token_urlsafe(18)
    try:
        written = deploy.add_user(path, station, pw, acl_file=acl, prefix=prefix)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    for w in written:
        if w.note:
            click.echo(f"note: {w.note}", err=True)
    click.echo(f"added {station} to {path}; reload mosquitto (kill -HUP its pid) to apply")
    if len(written) > 1:
        click.echo(f"wrote the ACL to {acl}")
    if password is None:
        click.echo(f"password: {pw}")


@main.command()
@click.option("--stations", type=click.IntRange(1, 50), default=3, help="simulated stations")
@click.option(
    "--sessions", type=click.IntRange(1, 100), default=1, help="charging sessions per station"
)
@click.option(
    "--updates", type=click.IntRange(0, 100), default=3, help="meter-value updates per session"
)
@click.option(
    "--duration",
    type=float,
    default=60.0,
    help="stop after this many seconds even if sessions are not done",
)
@click.option(
    "--pace",
    type=float,
    default=0.3,
    help="seconds between the steps of a session (plug-in, token, unplug); meter values come "
    "every pace s, rounded up to whole seconds",
)
@click.option("--log-level", type=LEVELS, default="WARNING")
def demo(
    stations: int, sessions: int, updates: int, duration: float, pace: float, log_level: str
) -> None:
    """Embedded broker + bridge + simulated stations, traffic shown live; exits by itself."""
    from .embedded import AMQTT_MISSING, amqtt_available

    if not amqtt_available():
        click.echo(f"bridge demo: {AMQTT_MISSING}", err=True)
        sys.exit(1)
    setup_logging(log_level)
    from .demo import run_demo

    ok = asyncio.run(
        run_demo(
            stations=stations, sessions=sessions, updates=updates, duration=duration, pace=pace
        )
    )
    sys.exit(0 if ok else 1)


main.add_command(lora_gateway)
show_envvars([serve, call, add_station, lora_gateway])


if __name__ == "__main__":  # pragma: no cover
    main()
