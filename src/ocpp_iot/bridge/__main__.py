"""``python -m ocpp_iot.bridge``: the ``bridge`` command, whatever PATH finds first."""

from .cli import main

main(prog_name="python -m ocpp_iot.bridge")
