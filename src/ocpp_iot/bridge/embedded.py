"""An in-process MQTT broker (amqtt, MQTT 3.1.1) for ``--embedded-broker`` and ``bridge demo``.

It needs no installation beyond ``pip install amqtt`` (the ``demo`` extra) and listens on
loopback. It accepts any client that gives a username, whatever the password (amqtt keeps
persistent sessions only for clients that are not anonymous), and has no ACL: a way to see the
bridge work, not a production broker.
"""

from __future__ import annotations

import logging
from typing import Any

from ..testing.mosquitto import free_port

__all__ = ["EmbeddedBroker"]


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
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "the embedded broker needs amqtt: pip install 'ocpp-iot[demo]'"
            ) from exc
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
