"""``bridge lora-gateway`` (:mod:`.lora_gateway`), and what ``bridge add-station --lora`` does
(:mod:`ocpp_iot.lora_keys`): the LoRa side of the bridge command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..lora_options import Frequency, modem_options
from .settings import mqtt_options, setup_logging, url_user_wins

__all__ = ["add_lora_station", "lora_gateway"]


def add_lora_station(
    station: str, stations_file: str | None, address: int | None, rekey: bool
) -> None:
    from .. import lora_keys

    path = Path(stations_file) if stations_file else lora_keys.default_stations_file()
    try:
        first = not lora_keys.load_stations(path)  # no station yet: no gateway used a key
        st = lora_keys.provision(path, station, address=address, rekey=rekey)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(f"{'re-keyed' if rekey else 'added'} {station} in {path} (LoRa address "
               f"{st.address}); reload the gateway (kill -HUP its pid) to apply")  # fmt: skip
    click.echo(
        f"for the station: charger-node run --station-id {station} --link lora "
        f"--lora-address {st.address} --lora-key-file KEYFILE (or CHARGER_NODE_LORA_KEY)"
    )
    click.echo(f"lora key: {st.key.hex()}  (shown this once: put it in the station's KEYFILE)")
    state = lora_keys.gateway_state_file(path)  # where the gateway reads it
    if state.exists():
        return
    if not first:  # stations were provisioned: a gateway may have used their keys
        click.echo(f"warning: the gateway's counter state {state} is missing: the gateway "
                   "refuses to start without it (restore it, or re-key the stations)",
                   err=True)  # fmt: skip
        return
    try:  # a gateway that finds no state file refuses to start (nonces)
        lora_keys.write_private(state, {"format": 1, "stations": {}}, durable=True)
    except OSError as exc:
        raise click.ClickException(f"cannot write {state}: {exc.strerror or exc}") from None
    click.echo(f"wrote the gateway's first counter state {state}")


@click.command("lora-gateway")
@mqtt_options(username="lora-gw")
@click.option(
    "--stations",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BRIDGE_LORA_STATIONS",
    show_default=False,
    help="the stations file of add-station --lora  [default: /etc/ocpp-iot/"
    "lora-stations.json as root, else ~/.config/ocpp-iot/lora-stations.json]",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="BRIDGE_LORA_STATE_FILE",
    show_default=False,
    help="the stations' frame counters  [default: lora-gateway-state.json next to "
    "the stations file]",
)
@modem_options(
    flag_prefix="--",
    env_prefix="BRIDGE_LORA_",
    port_required=True,
    peer="the stations'",
    transmit=Frequency(
        "frequency",
        869_525_000,
        "where the gateway transmits, Hz (the 10 % sub-band 869.4-869.65 MHz)",
    ),
    listen=Frequency(
        "station-frequency", 868_100_000, "where it listens: the stations' frequency, Hz"
    ),
)
@click.option(
    "--fresh-counters",
    is_flag=True,
    default=False,
    envvar="BRIDGE_LORA_FRESH_COUNTERS",
    help="start though the state file is missing: every station's counters at 0. Only when "
    "no gateway has used these keys (add-station --lora writes the first state file)",
)
@click.option(
    "--offline-after",
    type=float,
    default=900.0,
    envvar="BRIDGE_LORA_OFFLINE_AFTER",
    help="seconds without a frame from a station before its status says offline",
)
@click.option(
    "--client-id",
    default=None,
    envvar="BRIDGE_LORA_CLIENT_ID",
    show_default=False,
    help="MQTT client id  [default: the username]",
)
@click.option(
    "--session-expiry",
    type=int,
    default=300,
    envvar="BRIDGE_LORA_SESSION_EXPIRY",
    help="seconds the broker keeps the frames for our stations while we are away",
)
@click.pass_context
def lora_gateway(ctx: click.Context, /, **opts: Any) -> None:
    """Carry LoRa stations' frames to the broker and back: each provisioned station's radio
    frames on {prefix}/{station}/up, what comes on .../down by radio, its status on
    .../status, so that bridge serve serves it like an MQTT station. SIGHUP reads the
    stations file again."""
    from .lora_gateway import gateway_from_options, run_gateway

    url_user_wins(ctx, opts)
    setup_logging(opts["log_level"], opts)
    try:
        gateway = gateway_from_options(opts)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot start the gateway: {exc}") from None
    run_gateway(gateway)
