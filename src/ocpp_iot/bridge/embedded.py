"""An in-process MQTT broker (amqtt, MQTT 3.1.1) for ``--embedded-broker`` and ``bridge demo``.

It needs no installation beyond ``pip install 'amqtt>=0.11'`` (the ``demo`` extra) and listens on
loopback. It accepts any client that gives a username, whatever the password (amqtt keeps
persistent sessions only for clients that are not anonymous), and has no ACL: a way to see the
bridge work, not a production broker.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

__all__ = ["AMQTT_MISSING", "AmqttMissing", "EmbeddedBroker", "amqtt_available", "free_port"]

#: One line telling how to get the embedded broker (amqtt), from a checkout or anywhere.
AMQTT_MISSING = (
    "the embedded broker needs amqtt: pip install 'amqtt>=0.11' "
    "(or, in the ocpp-iot checkout: pip install '.[demo]')"
)


class AmqttMissing(RuntimeError):
    """amqtt is not installed; the message says how to install it."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def amqtt_available() -> bool:
    try:
        import amqtt.broker  # noqa: F401
    except ImportError:
        return False
    return True


class EmbeddedBroker:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port()
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise AmqttMissing(AMQTT_MISSING) from None
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        return self

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
