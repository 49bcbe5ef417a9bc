"""The station's link on the in-memory broker: :class:`MemoryStationLink`, for tests.

The same topics, identity, will, birth, persistent session and events as
:class:`~.mqtt_link.MqttStationLink` (both are :class:`~.pubsub_link.PubSubStationLink`), on a
:class:`~.memory.MemoryClient`: a charger node runs against a bridge on the same
:class:`~.memory.MemoryBroker` without a mosquitto. ``broker.disconnect(station_id)`` is a
network failure (the will goes out, the link reports :class:`~.link.LinkDown`, reconnects and
reports :class:`~.link.LinkUp` with ``resumed=True``).
"""

from __future__ import annotations

from .memory import MemoryBroker
from .pubsub_link import PubSubStationLink
from .settings import MqttSettings

__all__ = ["MemoryStationLink"]


class MemoryStationLink(PubSubStationLink):
    """One station's link through ``broker`` (its ``users``, if set, must know the station)."""

    def __init__(
        self,
        broker: MemoryBroker,
        station_id: str,
        *,
        password: str | None = None,
        prefix: str = "ocpp",
        protocol: str = "5",
        clean_start: bool = False,
    ) -> None:
        self.broker = broker
        settings = MqttSettings(
            url="mqtt://memory", password=password, protocol=protocol, clean_start=clean_start
        )
        super().__init__(station_id, settings, broker.client, prefix=prefix)
