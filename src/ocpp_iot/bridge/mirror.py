"""What operators see of the traffic: the OCPP-J mirror, the station summaries and statuses.

- ``{prefix}/{id}/json/up`` and ``.../json/down``: every frame as OCPP-J text (QoS 0), for MQTT
  Explorer and other tools that cannot read CBOR;
- ``{prefix}/{id}/json/state``: a retained JSON summary per station (:mod:`.view`);
- ``{prefix}/{id}/status``: the station's retained ``online``/``offline`` (its MQTT will and
  birth); the bridge sets it back to ``online`` when a station marked offline is evidently
  talking (a birth lost in a broker restart).

None of this may break the real traffic: failures are logged at DEBUG and dropped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..rpc import Frame
from . import _wire
from .view import StationView

if TYPE_CHECKING:
    from .service import Bridge

__all__ = ["Mirror", "Observer"]

log = logging.getLogger("ocpp_iot.bridge")
traffic_log = logging.getLogger("ocpp_iot.bridge.traffic")

#: ``observer(direction, station, frame, data)``: a hook for the demo and the tests
Observer = Callable[[str, str, Frame, bytes], None]


class Mirror:
    def __init__(self, bridge: Bridge, observer: Observer | None = None) -> None:
        self.bridge = bridge
        self.config = bridge.config
        self.observer = observer
        # With several workers each sees only some of a station's frames (shared subscription),
        # so a summary built by one of them would be partial: the state topic needs one worker.
        keep_state = self.config.state_topic and not self.config.shared
        if self.config.state_topic and self.config.shared:
            log.warning("json/state is kept by a single bridge worker only: off with --workers")
        self.view = StationView(self.config.state_refresh) if keep_state else None
        self.statuses: dict[str, str] = {}

    def restore(self, station: str, payload: bytes) -> None:
        """A retained ``json/state`` (ours, from before a restart): start from it, so vendor,
        model and transactions are not forgotten until the station boots again."""
        if self.view is not None and payload:
            self.view.restore(station, payload)

    def up(self, station: str, version: str, frame: Frame, data: bytes) -> None:
        if self.observer is not None or traffic_log.isEnabledFor(logging.DEBUG):
            self._trace("up", station, frame, data)
        if self.config.mirror:
            self._mirror(station, "json/up", frame)
        if self.view is not None:
            self._state(self.view.observe(station, version, "up", frame, time.time()), station)
        if self.statuses.get(station) == "offline":
            self.statuses[station] = "online"
            self.bridge.publish(self.bridge.topic(station, "status"), b"online", retain=True)

    def down(self, station: str, version: str, frame: Frame, data: bytes) -> None:
        self.bridge.stats["down"] += 1
        if self.observer is not None or traffic_log.isEnabledFor(logging.DEBUG):
            self._trace("down", station, frame, data)
        if self.config.mirror:
            self._mirror(station, "json/down", frame)
        if self.view is not None:
            self._state(self.view.observe(station, version, "down", frame, time.time()), station)

    def status(self, station: str, status: str) -> None:
        self.statuses[station] = status
        if self.view is not None:
            self._state(self.view.status(station, status, time.time()), station)

    def error(self, station: str, text: str) -> None:
        if self.view is not None:
            self._state(self.view.error(station, text, time.time()), station)

    def _state(self, payload: bytes | None, station: str) -> None:
        if payload is not None:
            self.bridge.publish(self.bridge.topic(station, "json/state"), payload, retain=True)

    def _mirror(self, station: str, kind: str, frame: Frame) -> None:
        try:
            self.bridge.publish(self.bridge.topic(station, kind), _wire.json_encode(frame), qos=0)
        except Exception as exc:
            log.debug("mirror failed: %s", exc)

    def _trace(self, direction: str, station: str, frame: Frame, data: bytes) -> None:
        if traffic_log.isEnabledFor(logging.DEBUG):
            traffic_log.debug("%s %s %s", station, direction, _wire.json_encode(frame).decode())
        if self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer(direction, station, frame, data)
