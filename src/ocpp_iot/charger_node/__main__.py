"""``python -m ocpp_iot.charger_node``: the ``charger-node`` command."""

from .cli import main

main(prog_name="charger-node")
