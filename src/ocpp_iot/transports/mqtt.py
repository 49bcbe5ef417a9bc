"""MQTT for ocpp-iot, over paho-mqtt 2: one import for everything MQTT.

- :class:`AsyncMqttClient` (:mod:`.aio`): the client for services, driven by the asyncio loop.
- :class:`MqttClient` (:mod:`.blocking`): a blocking helper for command-line tools and tests.
- :class:`~.memory.MemoryBroker` (:mod:`.memory`): an in-memory broker whose clients have the
  API of :class:`AsyncMqttClient`, for tests without mosquitto.
- settings, messages and errors (:mod:`.settings`).

They know about URLs (``mqtt://`` and ``mqtts://``), credentials, TLS, MQTT 3.1.1 and 5,
persistent sessions, reconnection with back-off and wills; nothing about OCPP.
See docs/transports.md.
"""

from __future__ import annotations

import paho.mqtt.client as _paho
from paho.mqtt.enums import MQTTErrorCode

from .aio import AsyncMqttClient, LoopMqttClient, Starting
from .blocking import MqttClient
from .settings import (
    DEFAULT_SESSION_EXPIRY,
    BrokerAddress,
    Message,
    MqttSettings,
    PublishRefused,
    Will,
    parse_url,
    topic_matches,
)

__all__ = [
    "DEFAULT_SESSION_EXPIRY",
    "AsyncMqttClient",
    "BrokerAddress",
    "LoopMqttClient",
    "Message",
    "MqttClient",
    "MqttSettings",
    "PublishRefused",
    "Starting",
    "Will",
    "error_name",
    "parse_url",
    "topic_matches",
]


def error_name(rc: MQTTErrorCode | int) -> str:
    return _paho.error_string(int(rc))
