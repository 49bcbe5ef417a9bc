"""``charger-node``: the charger side of ocpp-iot (``run``, ``status``, ``simulate``).

Options come from the command line, then ``CHARGER_NODE_*`` variables (the option's name in
capitals: ``CHARGER_NODE_BROKER``, ``CHARGER_NODE_PASSWORD``; listed in ``--help``), then the
TOML file of ``--config`` / ``CHARGER_NODE_CONFIG`` (options at the top level or in ``[node]``;
``-`` and ``_`` alike; device-model values as ``var = ["SampledDataCtrlr.TxUpdatedInterval=60"]``).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..bridge.settings import LEVELS, config_option, setup_logging, show_envvars
from ..lora_options import Frequency, modem_options
from .dir_lock import DataDirInUse, DirLock
from .node import VERSIONS, Node, NodeConfig, make_link, queue_depth, read_status
from .simulate import read_password_file, run_simulation, station_ids

__all__ = ["main"]

ENV = "CHARGER_NODE"


def _variables(values: tuple[str, ...] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or ():
        path, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected PATH=VALUE, got {item!r}", param_hint="--var")
        out[path.strip()] = value.strip()
    return out


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--broker", default="mqtt://localhost:1883", envvar=f"{ENV}_BROKER",
                     help="broker URL: mqtt://host:port, or mqtts://host:port for TLS"),
        click.option("--password", default=None, envvar=f"{ENV}_PASSWORD",
                     help="the station's MQTT password (prefer the variable to the command "
                     "line, which other users of the machine can read)"),
        click.option("--version", type=click.Choice(VERSIONS), default="2.0.1",
                     envvar=f"{ENV}_VERSION", help="OCPP version the station speaks"),
        click.option("--connectors", type=click.IntRange(1, 64), default=1,
                     envvar=f"{ENV}_CONNECTORS", help="connectors (each its own EVSE in 2.x)"),
        click.option("--encoding", type=click.Choice(["cbor", "json"]), default="cbor",
                     envvar=f"{ENV}_ENCODING",
                     help="compact CBOR (a fraction of the bytes) or OCPP-J text"),
        click.option("--prefix", default="ocpp", envvar=f"{ENV}_PREFIX", help="topic prefix"),
        click.option("--mqtt-version", "protocol", type=click.Choice(["5", "3.1.1"]), default="5",
                     envvar=f"{ENV}_MQTT_VERSION", help="MQTT protocol version"),
        click.option("--ca-certs", default=None, envvar=f"{ENV}_CA_CERTS",
                     help="CA file for mqtts:// (default: the system's)"),
        click.option("--certfile", default=None, envvar=f"{ENV}_CERTFILE",
                     help="client certificate for mqtts://"),
        click.option("--keyfile", default=None, envvar=f"{ENV}_KEYFILE",
                     help="client key for mqtts://"),
        click.option("--seed", default=None, envvar=f"{ENV}_SEED",
                     help="seed of the simulation (default: the station id): runs repeat"),
        click.option("--scenario", type=click.Path(exists=True, dir_okay=False), default=None,
                     envvar=f"{ENV}_SCENARIO",
                     help="scenario file (TOML/JSON) for the simulated EVSE; default: random "
                     "traffic"),
        click.option("--var", multiple=True, envvar=f"{ENV}_VAR",
                     help="device-model value to start from, PATH=VALUE, e.g. "
                     "SampledDataCtrlr.TxUpdatedInterval=60 (repeatable)"),
        click.option("--keepalive", type=click.IntRange(5, 65535), default=60,
                     envvar=f"{ENV}_KEEPALIVE",
                     help="MQTT keepalive, seconds: an idle link pings the broker this often "
                     "(160 B with TCP/IP each; longer costs fewer bytes, notices a dead link "
                     "later)"),
        click.option("--reconnect-max-delay", type=click.FloatRange(1.0, 3600.0), default=30.0,
                     envvar=f"{ENV}_RECONNECT_MAX_DELAY",
                     help="longest wait between reconnection attempts, seconds (the back-off "
                     "doubles from 0.5 s, with jitter)"),
        click.option("--replay-per-minute", type=float, default=60.0,
                     envvar=f"{ENV}_REPLAY_PER_MINUTE",
                     help="queued messages sent a minute after an offline period (after a "
                     "burst of 20)"),
        click.option("--max-queue", type=click.IntRange(1, 1_000_000), default=5000,
                     envvar=f"{ENV}_MAX_QUEUE",
                     help="messages the outbox holds while offline; when full, intermediate "
                     "meter samples are dropped first, Started and Ended never"),
        click.option("--log-level", type=LEVELS, default="INFO", envvar=f"{ENV}_LOG_LEVEL"),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return config_option(f, envvar=f"{ENV}_CONFIG", table="node")


def _lora(f: Callable[..., Any]) -> Callable[..., Any]:
    """``run``'s link choice and the LoRa options (docs/lora.md, "Gateway")."""
    from .node import NodeConfig

    D = NodeConfig("defaults")  # a slotted dataclass: its defaults are on an instance

    options = [
        click.option("--link", type=click.Choice(["mqtt", "lora"]), default="mqtt",
                     envvar=f"{ENV}_LINK",
                     help="mqtt: the broker; lora: a LoRa modem to a `bridge lora-gateway`"),
        click.option("--lora-address", type=click.IntRange(0, 0xFFFF), default=None,
                     envvar=f"{ENV}_LORA_ADDRESS",
                     help="the station's address (`bridge add-station --lora` prints it)"),
        click.option("--lora-key", default=None, envvar=f"{ENV}_LORA_KEY",
                     help="the station's key, 32 hex digits (prefer the variable or "
                     "--lora-key-file to the command line)"),
        click.option("--lora-key-file", type=click.Path(dir_okay=False), default=None,
                     envvar=f"{ENV}_LORA_KEY_FILE", help="a file holding the key"),
        click.option("--lora-fresh-counters", is_flag=True, default=False,
                     envvar=f"{ENV}_LORA_FRESH_COUNTERS",
                     help="start the frame counters at 0 though data-dir has run a node "
                     "before and lora-state.json is missing: only for a key never used"),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return modem_options(
        flag_prefix="--lora-", env_prefix=f"{ENV}_LORA_", port_required=False, peer="the gateway's",
        transmit=Frequency("frequency", D.lora_frequency,
                           "where the station transmits, Hz (1 % sub-band 868.0-868.6 MHz)"),
        listen=Frequency("gateway-frequency", D.lora_gateway_frequency,
                         "where it listens: the gateway's frequency, Hz"),
    )(f)  # fmt: skip


def _lora_config(opts: dict[str, Any]) -> dict[str, Any]:
    """The LoRa options of ``run`` as NodeConfig fields (taken out of ``opts``)."""
    out = {name: opts.pop(name) for name in [k for k in opts if k.startswith("lora_")]}
    out["link"] = opts.pop("link")
    out["lora_bandwidth"] = int(out["lora_bandwidth"])
    return out


def _config(station_id: str, data_dir: str, opts: dict[str, Any], **extra: Any) -> NodeConfig:
    try:
        return NodeConfig(
            station_id=station_id,
            broker=opts["broker"],
            password=opts["password"],
            version=opts["version"],
            connectors=opts["connectors"],
            data_dir=Path(data_dir),
            encoding=opts["encoding"],
            prefix=opts["prefix"],
            protocol=opts["protocol"],
            ca_certs=opts["ca_certs"],
            certfile=opts["certfile"],
            keyfile=opts["keyfile"],
            seed=opts["seed"],
            scenario=opts["scenario"],
            variables=_variables(opts["var"]),
            replay_per_minute=opts["replay_per_minute"],
            max_queue=opts["max_queue"],
            keepalive=opts["keepalive"],
            reconnect_max_delay=opts["reconnect_max_delay"],
            **extra,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


async def _until_signal(run: Callable[[asyncio.Event], Any]) -> Any:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return await run(stop)


@click.group(context_settings={"auto_envvar_prefix": ENV, "show_default": True})
@click.version_option(package_name="ocpp-iot")
def main() -> None:
    """The charger side of ocpp-iot: OCPP 1.6 / 2.0.1 / 2.1 over MQTT for a charger or a
    Raspberry Pi beside one, with a durable outbox for what must not be lost."""


@main.command()
@click.option(
    "--station-id",
    required=True,
    envvar=f"{ENV}_STATION_ID",
    help="the station's identity (also its MQTT client id and username)",
)
@click.option(
    "--data-dir",
    default="/var/lib/charger-node",
    envvar=f"{ENV}_DATA_DIR",
    type=click.Path(file_okay=False),
    help="where the outbox, device model and status live",
)
@click.option(
    "--evse",
    default="simulated",
    envvar=f"{ENV}_EVSE",
    help="'simulated', or your hardware class as package.module:Class",
)
@click.option(
    "--model",
    "station_model",
    default="ocpp-iot node",
    envvar=f"{ENV}_MODEL",
    help="chargePointModel / chargingStation.model",
)
@click.option("--vendor", default="ocpp-iot", envvar=f"{ENV}_VENDOR")
@click.option("--serial-number", default=None, envvar=f"{ENV}_SERIAL_NUMBER")
@_lora
@_common
def run(station_id: str, data_dir: str, evse: str, station_model: str, vendor: str,
        serial_number: str | None, **opts: Any) -> None:  # fmt: skip
    """Run one station until SIGTERM (transactions in progress are ended at the next start, as
    after a power cut; the outbox keeps everything not yet answered)."""
    lora = _lora_config(opts)
    setup_logging(opts["log_level"], opts)
    cfg = _config(station_id, data_dir, opts, evse=evse, model=station_model, vendor=vendor,
                  serial_number=serial_number, **lora)  # fmt: skip
    lock = DirLock(cfg.data_dir)  # held until the process ends
    try:
        lock.acquire()
        node = Node(cfg)
        if cfg.link == "lora":
            make_link(node.cfg)  # the modem's driver and the counter state: checked first
    except (OSError, ValueError, ImportError, TypeError) as exc:
        raise click.ClickException(f"cannot start the station: {exc}") from None

    async def go(stop: asyncio.Event) -> None:
        task = asyncio.ensure_future(node.run())
        waiter = asyncio.ensure_future(stop.wait())
        await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        node.stop("stop")
        waiter.cancel()
        await task

    asyncio.run(_until_signal(go))


@main.command()
@click.option(
    "--stations",
    type=click.IntRange(1, 100_000),
    default=10,
    envvar=f"{ENV}_STATIONS",
    help="how many stations",
)
@click.option(
    "--id-prefix",
    default="CP",
    envvar=f"{ENV}_ID_PREFIX",
    help="station ids are {prefix}1, {prefix}2, ...",
)
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    envvar=f"{ENV}_PASSWORD_FILE",
    help="id:password lines, one per station (else --password for all)",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    envvar=f"{ENV}_DURATION",
    help="seconds to run; then end the transactions in progress and exit 0 once "
    "their last events are answered (default: until SIGTERM)",
)
@click.option(
    "--drain-timeout",
    type=float,
    default=120.0,
    envvar=f"{ENV}_DRAIN_TIMEOUT",
    help="seconds to wait for the last events after --duration or SIGTERM",
)
@click.option(
    "--data-dir",
    default="./charger-node-sim",
    envvar=f"{ENV}_DATA_DIR",
    type=click.Path(file_okay=False),
    help="each station's files go in DATA_DIR/{id}",
)
@_common
def simulate(stations: int, id_prefix: str, password_file: str | None, duration: float | None,
             drain_timeout: float, data_dir: str, **opts: Any) -> None:  # fmt: skip
    """Run N simulated stations in one process, each with its own MQTT connection."""
    setup_logging(opts["log_level"], opts)
    ids = station_ids(stations, id_prefix)
    try:
        passwords = read_password_file(password_file) if password_file else None
    except (OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if passwords is not None:
        missing = [i for i in ids if i not in passwords]
        if missing and opts["password"] is None:
            raise click.ClickException(
                f"{password_file} has no password for {', '.join(missing[:5])}"
                + (" ..." if len(missing) > 5 else "")
            )
    template = _config(ids[0], data_dir, opts)

    async def go(stop: asyncio.Event) -> Any:
        return await run_simulation(
            template, ids, passwords=passwords, duration=duration, drain_timeout=drain_timeout,
            stop=stop,
        )  # fmt: skip

    try:
        result = asyncio.run(_until_signal(go))
    except DataDirInUse as exc:  # the simulation's folder, or a station's run elsewhere
        raise click.ClickException(f"cannot start the simulation: {exc}") from None
    if not result.drained:
        click.echo(f"not drained: {', '.join(result.unfinished[:20])}", err=True)
        sys.exit(1)


@main.command()
@click.option(
    "--data-dir",
    default="/var/lib/charger-node",
    envvar=f"{ENV}_DATA_DIR",
    type=click.Path(file_okay=False),
    help="the station's data folder",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def status(data_dir: str, as_json: bool) -> None:
    """Queue depth, last contact and transactions of the station whose files are in DATA_DIR."""
    info = read_status(data_dir)
    if info is None:
        raise click.ClickException(f"no status.json in {data_dir}: has the station run there?")
    depth = queue_depth(data_dir)
    if depth is not None:  # the queue as it is now, not as last written
        info["queue_depth"] = depth
    age = time.time() - float(info.get("written_at", 0))
    info["status_age_s"] = round(age, 1)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    last = info.get("last_contact")
    click.echo(f"station       {info.get('station')} (OCPP {info.get('version')})")
    click.echo(f"link          {'online' if info.get('online') else 'offline'}, "
               f"{info.get('registration')}")  # fmt: skip
    contact = "never" if last is None else f"{time.time() - float(last):.0f} s ago"
    click.echo(f"last contact  {contact}")
    click.echo(f"queue depth   {info['queue_depth']}")
    txs = info.get("transactions") or []
    for tx in txs:
        click.echo(f"transaction   {tx['id']} on connector {tx['connector']}, "
                   f"{tx['energy_wh']} Wh so far")  # fmt: skip
    if not txs:
        click.echo("transaction   none")
    click.echo(f"connectors    {', '.join(f'{k}: {v}' for k, v in info['connectors'].items())}")
    if info.get("reset_scheduled"):
        click.echo("reset         scheduled (Reset OnIdle): once the last transaction has ended")
    click.echo(f"(written {age:.0f} s ago by pid {info.get('pid')})")


show_envvars(main.commands.values())
