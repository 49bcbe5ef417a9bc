"""The station's link over MQTT: :class:`MqttStationLink`, on :class:`~.aio.AsyncMqttClient`.

What it does on the wire (DESIGN.md, MQTT topics): client id and username are the station id;
a persistent session (``clean_start=False``) so that QoS 1 frames the bridge sent while the
station was away arrive after it reconnects (:class:`~.link.LinkUp` ``resumed``); frames go
out on ``{prefix}/{id}/up`` and come in on ``.../down``, QoS 1, OCPP-J text marked with the
MQTT 5 content type ``application/json``; ``online`` / ``offline`` retained on ``.../status``
(birth on every connection, will on a lost one, a last message on :meth:`close`). The logic is
:class:`~.pubsub_link.PubSubStationLink`'s, shared with the in-memory link.
"""

from __future__ import annotations

from .aio import AsyncMqttClient
from .pubsub_link import PubSubStationLink
from .settings import DEFAULT_SESSION_EXPIRY, MqttSettings

__all__ = ["MqttStationLink"]


class MqttStationLink(PubSubStationLink):
    """One station's MQTT link to the bridge, through the broker at ``url``
    (``mqtt://host[:port]`` or ``mqtts://...``).

    ``protocol`` is ``"5"`` or ``"3.1.1"`` (3.1.1 has no content type: every frame received is
    reported with ``json=False`` and told apart by its bytes). ``ca_certs``, ``certfile``,
    ``keyfile`` and ``tls_insecure`` are the TLS options, the rest the session and reconnection
    options of :class:`~.settings.MqttSettings`.
    """

    def __init__(
        self,
        station_id: str,
        url: str,
        *,
        password: str | None = None,
        prefix: str = "ocpp",
        protocol: str = "5",
        ca_certs: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        tls_insecure: bool = False,
        keepalive: int = 30,
        clean_start: bool = False,
        session_expiry: int = DEFAULT_SESSION_EXPIRY,
        connect_timeout: float = 10.0,
        reconnect_min_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
    ) -> None:
        settings = MqttSettings(
            url=url,
            password=password,
            protocol=protocol,
            ca_certs=ca_certs,
            certfile=certfile,
            keyfile=keyfile,
            tls_insecure=tls_insecure,
            keepalive=keepalive,
            clean_start=clean_start,
            session_expiry=session_expiry,
            connect_timeout=connect_timeout,
            reconnect_min_delay=reconnect_min_delay,
            reconnect_max_delay=reconnect_max_delay,
        )
        super().__init__(station_id, settings, AsyncMqttClient, prefix=prefix)
