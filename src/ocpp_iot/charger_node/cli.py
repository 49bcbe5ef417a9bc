"""``charger-node``: the charger-side command.

The charger runtime (``charger-node run``: simulated EVSE, durable outbox, MQTT and LoRa
uplinks) is not built yet; until it is, this command only explains that, so that nobody
mistakes it for a working charger.
"""

from __future__ import annotations

import click


@click.group(
    help=(
        "Charger side of ocpp-iot. The runtime (`charger-node run`) is not part of this "
        "release yet; use the behaviours in ocpp_iot.behaviours with your own transport, "
        "or `bridge demo` to see simulated stations talk to the bridge."
    )
)
@click.version_option(package_name="ocpp-iot")
def main() -> None:
    """Entry point of the ``charger-node`` console script."""
