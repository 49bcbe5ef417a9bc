"""What every MQTT client of ours shares: broker URLs, settings, wills, messages, errors.

No I/O here; :mod:`.aio` (the asyncio client), :mod:`.blocking` (the helper for command-line
tools) and :mod:`.memory` (the in-memory broker for tests) all build on these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

__all__ = [
    "DEFAULT_SESSION_EXPIRY",
    "BrokerAddress",
    "Message",
    "MqttSettings",
    "PublishRefused",
    "Will",
    "parse_url",
    "topic_matches",
]

#: Session expiry the clients ask for by default (MQTT 5): one day. A station or bridge that is
#: away for less than that finds its queued QoS 1 messages waiting when it comes back.
DEFAULT_SESSION_EXPIRY = 86_400


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_url(url: str) -> BrokerAddress:
    """Parse ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (default ports 1883/8883).

    A bare ``host[:port]`` is read as ``mqtt://host[:port]``.
    """
    from .._redact import redact_url

    if "://" not in url:
        url = "mqtt://" + url
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
        raise ValueError(
            f"unsupported broker URL scheme {parts.scheme!r} (use mqtt:// or mqtts://)"
        )
    tls = scheme in ("mqtts", "ssl")
    host = parts.hostname or "localhost"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError as exc:
        raise ValueError(f"bad port in broker URL {redact_url(url)!r}") from exc
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return BrokerAddress(host, port, tls, user, password)


def _match_levels(pattern: list[str], topic: list[str]) -> bool:
    # MQTT 5 section 4.7: "#" matches the parent level and any number of child levels, "+"
    # exactly one level; topics starting with "$" are not matched by a leading wildcard.
    for i, p in enumerate(pattern):
        if p == "#":
            return True
        if i >= len(topic):
            return False
        if p != "+" and p != topic[i]:
            return False
    return len(pattern) == len(topic)


def split_shared(pattern: str) -> tuple[str | None, str]:
    """``$share/group/filter`` -> ``("group", "filter")``; other filters -> ``(None, filter)``."""
    if pattern.startswith("$share/"):
        _, group, rest = pattern.split("/", 2)
        return group, rest
    return None, pattern


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` and ``#``; ``$share/group/`` prefixes are ignored)."""
    _, pattern = split_shared(pattern)
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False  # MQTT 5 section 4.7.2
    return _match_levels(pattern.split("/"), topic.split("/"))


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(slots=True)
class MqttSettings:
    """Everything needed to connect one client. ``url`` may carry the credentials too."""

    url: str = "mqtt://localhost:1883"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    protocol: str = "5"  # "5" or "3.1.1"
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    tls_insecure: bool = False
    keepalive: int = 30
    #: False keeps the session (subscriptions and queued QoS 1 messages) across reconnects
    #: and restarts; requires a stable, non-empty ``client_id``.
    clean_start: bool = False
    session_expiry: int = DEFAULT_SESSION_EXPIRY
    #: back-off between connection attempts: each failed attempt (unreachable broker, refused
    #: CONNACK, a connection that ended within ``reconnect_stable_after`` seconds, e.g. a
    #: session taken over) doubles the ceiling, from ``reconnect_min_delay`` up to
    #: ``reconnect_max_delay``; the delay is drawn at random from the upper half of it.
    reconnect_min_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    #: a connection that stayed up this long resets the back-off
    reconnect_stable_after: float = 10.0
    #: seconds for the TCP connect and TLS handshake, and again for the CONNACK
    connect_timeout: float = 10.0
    #: MQTT 5 receive maximum: how many unacknowledged QoS 1 messages the broker may send us.
    receive_maximum: int = 1000
    #: how many of our QoS 1 publishes may await their PUBACK before paho queues the rest;
    #: 0 is no limit. paho rescans every queued message on each PUBACK when a limit is set,
    #: which cost the bridge a fifth of its throughput (docs/bridge-throughput.md). Mosquitto 2
    #: does not refuse QoS 1 publishes beyond the Receive Maximum it advertises; set this to
    #: the broker's Receive Maximum for a broker that does.
    max_inflight: int = 0
    will: Will | None = None
    #: send small packets at once (no Nagle delay: an answer and its ack would otherwise wait
    #: for the broker's delayed TCP ACK, up to 40 ms)
    tcp_nodelay: bool = True
    #: messages published (retained) right after every successful connection, e.g. a birth
    #: message ``online`` on the topic of the will.
    birth: tuple[Will, ...] = field(default_factory=tuple)

    @property
    def mqtt5(self) -> bool:
        return self.protocol in ("5", "5.0", "v5", "mqttv5")

    def credentials(self) -> tuple[str | None, str | None]:
        """(username, password): the explicit settings first, then the URL's."""
        address = parse_url(self.url)
        return (self.username or address.username, self.password or address.password)

    def check(self) -> None:
        """Raise ValueError for settings no broker would accept."""
        if self.clean_start is False and not self.client_id:
            raise ValueError("a persistent session (clean_start=False) needs a client_id")
        parse_url(self.url)


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool
    #: connection generation the message arrived on (acks of older generations are skipped)
    generation: int
    #: MQTT 5 content type property of the PUBLISH; None when absent (and always with 3.1.1)
    content_type: str | None = None


class PublishRefused(RuntimeError):
    """The broker answered a QoS 1 PUBLISH with a failure reason code (MQTT 5)."""

    def __init__(self, topic: str, reason: int, name: str) -> None:
        super().__init__(f"publish to {topic!r} refused by the broker: {reason} {name}")
        self.topic = topic
        self.reason = reason
        self.reason_name = name
