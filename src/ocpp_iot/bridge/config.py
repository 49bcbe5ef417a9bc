"""The bridge service's settings (one worker's view) and what its callers may catch."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..transports.mqtt import MqttSettings

__all__ = ["BridgeConfig", "CallTimeout", "STATION_RE"]

#: a station id is one topic level: no wildcards, separators or whitespace; 48 characters at most
#: (OCPP 2.0.1 caps the charging station identity at 48)
STATION_RE = re.compile(r"^[^/+#\s]{1,48}$")


class CallTimeout(TimeoutError):
    """A station did not answer a CALL from the bridge in time."""


@dataclass
class BridgeConfig:
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    prefix: str = "ocpp"
    #: mirror every frame as OCPP-J on ``json/up`` / ``json/down``
    mirror: bool = True
    #: keep a retained JSON summary per station on ``json/state``
    state_topic: bool = True
    #: seconds between republications of an unchanged station summary (for ``last_seen``)
    state_refresh: float = 300.0
    #: seconds a station has to answer a CALL from the bridge (OCPP-J 4.1.1 timeout); a CALL
    #: queued behind another waits at most this long before it is abandoned unsent
    call_timeout: float = 30.0
    #: version used to call a station the bridge has not heard from yet
    default_version: str = "2.0.1"
    workers: int = 1
    worker_index: int = 0
    #: answered CALLs are remembered this long (seconds) for duplicate detection: longer than
    #: a bridge outage plus a station's retry interval
    dedup_retention: float = 3_600.0
    #: answers wait up to this long (seconds) to be stored together with others: one
    #: transaction for many under load, at the cost of this much latency
    commit_delay: float = 0.0
    #: threads for handler methods that are plain functions; 0 runs them in the event loop
    #: (fastest; right for handlers that do not block, wrong for ones that do)
    handler_threads: int = 0
    #: how long to wait before retrying a store operation that failed (doubles up to 30 s)
    store_retry: float = 0.5

    @property
    def shared(self) -> bool:
        return self.workers > 1

    @property
    def owner(self) -> str:
        base = self.mqtt.client_id or "ocpp-bridge"
        return f"{base}-w{self.worker_index}" if self.workers > 1 else base
