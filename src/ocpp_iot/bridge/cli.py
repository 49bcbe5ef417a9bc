"""``bridge``: serve OCPP stations over MQTT, call them, try it all with ``bridge demo``.

Every option of ``serve`` and ``call`` can come from the command line, from an environment
variable (``BRIDGE_`` + the option name in capitals, e.g. ``BRIDGE_BROKER``, shown in
``--help``) or from a TOML file given with ``--config`` (keys are the option names with
underscores: ``broker = "mqtts://..."``, ``allow_token = ["TOKEN-1"]``), in that order of
precedence.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import multiprocessing
import os
import secrets
import signal
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from ..transports.mqtt import MqttSettings

__all__ = ["main", "load_handlers"]

log = logging.getLogger("ocpp_iot.bridge")

_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return value
    try:
        with open(value, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"cannot read {value}: {exc}", ctx, param) from None
    section = data.get("bridge", data)
    if not isinstance(section, dict):
        raise click.BadParameter(f"{value}: expected a table of options", ctx, param)
    defaults = {k.replace("-", "_"): v for k, v in section.items() if not isinstance(v, dict)}
    # "[tls]" / "[reference]" sub-tables are flattened: tls.ca_certs -> ca_certs
    for sub in section.values():
        if isinstance(sub, dict):
            defaults.update({k.replace("-", "_"): v for k, v in sub.items()})
    if "allow_tokens" in defaults:
        defaults["allow_token"] = defaults.pop("allow_tokens")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _config_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        envvar="BRIDGE_CONFIG",
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML file with option values (command line and environment take precedence).",
    )(f)


def _mqtt_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option(
            "--broker",
            default="mqtt://localhost:1883",
            show_default=True,
            envvar="BRIDGE_BROKER",
            help="mqtt://host:port or mqtts://host:port",
        ),
        click.option("--username", default="bridge", show_default=True, envvar="BRIDGE_USERNAME"),
        click.option("--password", default=None, envvar="BRIDGE_PASSWORD"),
        click.option(
            "--mqtt-version",
            type=click.Choice(["5", "3.1.1"]),
            default="5",
            show_default=True,
            envvar="BRIDGE_MQTT_VERSION",
        ),
        click.option(
            "--ca-certs",
            type=click.Path(dir_okay=False),
            default=None,
            envvar="BRIDGE_CA_CERTS",
            help="CA bundle for mqtts://",
        ),
        click.option(
            "--certfile",
            type=click.Path(dir_okay=False),
            default=None,
            envvar="BRIDGE_CERTFILE",
            help="client certificate (PEM)",
        ),
        click.option(
            "--keyfile",
            type=click.Path(dir_okay=False),
            default=None,
            envvar="BRIDGE_KEYFILE",
            help="client key (PEM)",
        ),
        click.option(
            "--tls-insecure",
            is_flag=True,
            default=False,
            envvar="BRIDGE_TLS_INSECURE",
            help="do not verify the broker's certificate (testing only)",
        ),
        click.option(
            "--prefix",
            default="ocpp",
            show_default=True,
            envvar="BRIDGE_PREFIX",
            help="topic prefix",
        ),
        click.option(
            "--log-level",
            type=_LEVELS,
            default="INFO",
            show_default=True,
            envvar="BRIDGE_LOG_LEVEL",
        ),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return _config_option(f)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _mqtt_settings(opts: Mapping[str, Any], client_id: str, clean: bool = False) -> MqttSettings:
    return MqttSettings(
        url=opts["broker"],
        client_id=client_id,
        username=opts["username"],
        password=opts["password"],
        protocol=opts["mqtt_version"],
        ca_certs=opts["ca_certs"],
        certfile=opts["certfile"],
        keyfile=opts["keyfile"],
        tls_insecure=opts["tls_insecure"],
        clean_start=clean,
        session_expiry=int(opts.get("session_expiry") or 86_400),
    )


# -- handlers ---------------------------------------------------------------------------------


def load_handlers(
    specs: tuple[str, ...] | list[str],
    *,
    db: str,
    allow: list[str] | None,
    heartbeat_interval: int = 300,
) -> dict[str, Any]:
    """Build the version -> behaviour map from ``--handler`` specs (default: the reference).

    A spec ``package.module:Name`` names a behaviour class (instantiated without arguments,
    serving its ``version``), or a callable returning a behaviour or a version -> behaviour map.
    """
    from ..behaviours import Behaviour
    from .reference import build_reference

    if not specs:
        return build_reference(db, allow, heartbeat_interval=heartbeat_interval)
    handlers: dict[str, Any] = {}
    for spec in specs:
        module_name, sep, attr = spec.partition(":")
        if not sep:
            raise click.BadParameter(f"expected package.module:Class, got {spec!r}")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise click.BadParameter(f"cannot load {spec}: {exc}") from None
        made = obj() if callable(obj) else obj
        if isinstance(made, Behaviour):
            handlers[made.version] = made
        elif isinstance(made, Mapping):
            handlers.update(made)
        else:
            raise click.BadParameter(f"{spec} is neither a behaviour nor a version map")
    return handlers


# -- the command group ------------------------------------------------------------------------


@click.group(context_settings={"auto_envvar_prefix": "BRIDGE", "show_default": True})
@click.version_option(package_name="ocpp-iot")
def main() -> None:
    """OCPP over MQTT: the bridge between stations and a charge system."""


@main.command()
@_mqtt_options
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
@click.option("--heartbeat-interval", type=int, default=300, envvar="BRIDGE_HEARTBEAT_INTERVAL")
@click.option(
    "--mirror/--no-mirror",
    default=True,
    envvar="BRIDGE_MIRROR",
    help="publish every frame as OCPP-J on {prefix}/{station}/json/up|down",
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
def serve(**opts: Any) -> None:
    """Serve stations: answer their CALLs, mirror traffic, call them on request."""
    _setup_logging(opts["log_level"])
    if opts["embedded_broker"]:
        if opts["workers"] > 1:
            raise click.UsageError("--embedded-broker is MQTT 3.1.1 only: use one worker")
        opts["mqtt_version"] = "3.1.1"
    if opts["workers"] > 1 and opts["mqtt_version"] != "5":
        raise click.UsageError("--workers needs MQTT 5 (shared subscriptions)")
    if opts["workers"] == 1:
        code = _run_worker(opts, 0)
        sys.exit(code)
    sys.exit(_supervise(opts))


def _build_bridge(opts: Mapping[str, Any], index: int) -> Any:
    from .service import Bridge, BridgeConfig
    from .store import SqliteStore

    allow = list(opts["allow_token"]) or None
    handlers = load_handlers(
        opts["handlers"],
        db=opts["db"],
        allow=allow,
        heartbeat_interval=opts["heartbeat_interval"],
    )
    config = BridgeConfig(
        mqtt=_mqtt_settings(opts, opts["client_id"]),
        prefix=opts["prefix"],
        mirror=opts["mirror"],
        call_timeout=opts["call_timeout"],
        dedup_retention=opts["dedup_retention"],
        commit_delay=opts["commit_delay"] / 1000.0,
        default_version=opts["default_version"],
        workers=opts["workers"],
        worker_index=index,
        handler_threads=opts["handler_threads"],
    )
    return Bridge(config, handlers, SqliteStore(opts["db"]))


def _run_worker(opts: Mapping[str, Any], index: int) -> int:
    """Run one bridge worker until SIGTERM/SIGINT; returns the exit code."""
    if index:
        _setup_logging(opts["log_level"])

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        broker = None
        if opts["embedded_broker"]:
            from ..transports.mqtt import parse_url
            from .embedded import EmbeddedBroker

            addr = parse_url(opts["broker"])
            broker = await EmbeddedBroker(addr.host, addr.port).start()
            log.info("embedded broker (amqtt, MQTT 3.1.1) listening on %s", broker.url)
        try:
            bridge = _build_bridge(opts, index)
            await bridge.run(stop)
        finally:
            if broker is not None:
                await broker.stop()

    try:
        asyncio.run(run())
    except click.ClickException:
        raise
    except Exception:
        log.exception("bridge worker %d failed", index)
        return 1
    return 0


def _worker_entry(opts: dict[str, Any], index: int) -> None:
    sys.exit(_run_worker(opts, index))


def _supervise(opts: dict[str, Any]) -> int:
    """Start ``--workers`` processes, restart any that dies, stop them all on SIGTERM."""
    ctx = multiprocessing.get_context("spawn")
    n = opts["workers"]
    procs: dict[int, Any] = {}
    stopping = False

    def start(i: int) -> None:
        p = ctx.Process(target=_worker_entry, args=(dict(opts), i), name=f"bridge-w{i}")
        p.start()
        procs[i] = p
        log.info("worker %d started (pid %d)", i, p.pid)

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(n):
        start(i)
    restarts: dict[int, float] = {}
    while not stopping:
        time.sleep(0.2)
        for i, p in list(procs.items()):
            if not p.is_alive() and not stopping:
                log.warning("worker %d (pid %d) exited with %s; restarting", i, p.pid, p.exitcode)
                delay = 0.5 if time.monotonic() - restarts.get(i, 0) > 10 else 5.0
                restarts[i] = time.monotonic()
                time.sleep(delay)
                start(i)
    for p in procs.values():
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs.values():
        p.join(15)
        if p.is_alive():
            p.kill()
    return 0


# -- bridge call ------------------------------------------------------------------------------


@main.command()
@_mqtt_options
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
def call(station: str, action: str, payload: str, timeout: float, **opts: Any) -> None:
    """Call STATION: send ACTION with PAYLOAD (JSON) through the bridge, print the answer.

    Exit status: 0 for a CALLRESULT, 1 for a CALLERROR, 2 if no answer came in time.
    """
    _setup_logging(opts["log_level"] if opts["log_level"].upper() != "INFO" else "WARNING")
    try:
        body = json.loads(payload)
    except ValueError as exc:
        raise click.BadParameter(f"PAYLOAD is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise click.BadParameter("PAYLOAD must be a JSON object")
    result = call_station(station, action, body, opts, timeout)
    if result is None:
        click.echo(f"no answer from {station} within {timeout:g} s", err=True)
        sys.exit(2)
    click.echo(json.dumps(result))
    sys.exit(0 if result[0] == 3 else 1)


def call_station(
    station: str, action: str, payload: dict[str, Any], opts: Mapping[str, Any], timeout: float
) -> list[Any] | None:
    """Publish a CALL on ``{prefix}/{station}/json/call`` and wait for its json/result."""
    import queue

    from ..transports.mqtt import MqttClient

    prefix = opts["prefix"]
    message_id = secrets.token_hex(8)
    answers: queue.Queue[list[Any]] = queue.Queue()

    def on_message(msg: Any) -> None:
        try:
            frame = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(frame, list) and len(frame) >= 3 and frame[1] == message_id:
            answers.put(frame)

    settings = _mqtt_settings(opts, f"bridge-call-{secrets.token_hex(4)}", clean=True)
    client = MqttClient(settings, on_message)
    client.subscribe(f"{prefix}/{station}/json/result", 1)
    client.start()
    deadline = time.monotonic() + timeout
    try:
        if not client.wait_connected(min(timeout, 10.0)):
            raise click.ClickException(
                f"cannot connect to {opts['broker']}: {client.last_connect_error or 'no answer'}"
            )
        time.sleep(0.05)  # let the SUBACK arrive before the answer could
        client.publish_confirmed(
            f"{prefix}/{station}/json/call", json.dumps([2, message_id, action, payload])
        )
        try:
            return answers.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            return None
    finally:
        client.stop()


# -- add-station ------------------------------------------------------------------------------


@main.command("add-station")
@click.argument("station")
@click.option(
    "--passwd-file",
    type=click.Path(dir_okay=False),
    default="deploy/passwd",
    show_default=True,
    help="mosquitto password file to add the station to",
)
@click.option("--password", default=None, help="default: a new random password (printed)")
def add_station(station: str, passwd_file: str, password: str | None) -> None:
    """Add STATION (its id is its MQTT username) to a mosquitto password file.

    The ACL's pattern lines already give it its own topics; reload mosquitto (SIGHUP) after.
    """
    from ..testing.mosquitto import passwd_line

    if station == "bridge" or any(c in station for c in "/+#: \t"):
        raise click.BadParameter(f"invalid station id {station!r}")
    pw = password or secrets.token_urlsafe(18)
    path = Path(passwd_file)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    lines = [ln for ln in lines if not ln.startswith(station + ":")]
    lines.append(passwd_line(station, pw))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))
    os.chmod(path, 0o600)
    click.echo(f"added {station} to {path}; reload mosquitto (kill -HUP) to apply")
    if password is None:
        click.echo(f"password: {pw}")


# -- demo -------------------------------------------------------------------------------------


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
@click.option("--pace", type=float, default=0.3, help="seconds between a station's messages")
@click.option("--log-level", type=_LEVELS, default="WARNING")
def demo(
    stations: int, sessions: int, updates: int, duration: float, pace: float, log_level: str
) -> None:
    """Embedded broker + bridge + simulated stations, traffic shown live; exits by itself."""
    _setup_logging(log_level)
    from .demo import run_demo

    ok = asyncio.run(
        run_demo(
            stations=stations, sessions=sessions, updates=updates, duration=duration, pace=pace
        )
    )
    sys.exit(0 if ok else 1)


for _command in (serve, call):  # list each option's environment variable in --help
    for _param in _command.params:
        if isinstance(_param, click.Option) and _param.envvar:
            _param.show_envvar = True


if __name__ == "__main__":  # pragma: no cover
    main()
