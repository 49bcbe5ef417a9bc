"""StationView: the bridge's entry points, which dispatch frames to the handlers."""

from __future__ import annotations

import json
from typing import Any

from ...rpc import VERSIONS, Call, CallError, CallResult, CallResultError, Send
from ._common import _authorize_answer, _boot_answer
from ._fields import MAX_TEXT, _str
from ._record import _encode, _restored, _Station
from ._v2 import _CALLS_2, _token_answer
from ._v16 import _CALLS_16, _start_transaction_answer

#: Seconds after which a frame republishes the state only to refresh ``last_seen``.
DEFAULT_REFRESH = 300.0
#: seconds between publications when only meter readings (energy, power) changed
DEFAULT_METER_REFRESH = 60.0

_ANSWERS = {
    "BootNotification": _boot_answer,
    "Authorize": _authorize_answer,
    "TransactionEvent": _token_answer,
    "StartTransaction": _start_transaction_answer,
}


class StationView:
    """The retained JSON state of every station the bridge sees (see the module docstring).

    ``refresh``: seconds after the last publication of a station when a frame republishes it
    even though only ``last_seen`` and ``counts`` changed; ``meter_refresh``: the same when only
    meter readings changed. ``faults`` counts the exceptions the
    view swallowed rather than break the bridge (a bug in the view when not 0; worth a metric).
    """

    __slots__ = ("_stations", "_refresh", "_meter_refresh", "faults")

    def __init__(
        self, refresh: float = DEFAULT_REFRESH, meter_refresh: float = DEFAULT_METER_REFRESH
    ) -> None:
        self._stations: dict[str, _Station] = {}
        self._refresh = float(refresh)
        self._meter_refresh = float(meter_refresh)
        self.faults = 0

    def __len__(self) -> int:
        return len(self._stations)

    def __contains__(self, station: object) -> bool:
        return station in self._stations

    def stations(self) -> list[str]:
        """The ids of the stations the view holds."""
        return list(self._stations)

    def observe(
        self,
        station: str,
        version: str,
        direction: str,
        frame: Any,
        now: float,
        action: str | None = None,
    ) -> bytes | None:
        """Account for one frame ``direction`` "up" (from the station) or "down" (to it).

        ``action``: for a CallResult or CallError, the action of the CALL it answers, when the
        caller knows it (otherwise ``frame.action``, otherwise what the view remembers of the CALL).
        """
        try:
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            if version != st.version and version in VERSIONS:
                st.version = version
                st.dirty = True
            kind = type(frame)
            if direction == "up":
                st.up += 1
                st.last_seen = now
                if st.status == "unknown":  # the station speaks, so it is connected
                    st.status, st.status_since = "online", now
                    st.dirty = True
                if kind is Call or kind is Send:
                    payload = frame.payload
                    if type(payload) is dict:
                        handler = (_CALLS_16 if version == "1.6" else _CALLS_2).get(frame.action)
                        if handler is not None:
                            handler(st, payload, now, frame.message_id)
                elif kind is CallError or kind is CallResultError:
                    self._call_error(st, frame, "up", now, action)
            else:
                st.down += 1
                if kind is CallResult:
                    ctx = st.pending.pop(frame.message_id, None) if st.pending else None
                    name = action or frame.action or (ctx[0] if ctx else None)
                    answer = _ANSWERS.get(name) if name else None
                    if answer is not None and type(frame.payload) is dict:
                        answer(st, frame.payload, ctx, now)
                elif kind is CallError or kind is CallResultError:
                    self._call_error(st, frame, "down", now, action)
            return self._due(st, now)
        except Exception:  # a view must never break the bridge
            self.faults += 1
            return None

    def status(self, station: str, status: str, now: float) -> bytes | None:
        """The station's MQTT status (birth "online", will "offline") changed or was repeated."""
        try:
            if status != "online" and status != "offline":
                return None
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            if status != st.status:
                st.status, st.status_since = status, now
                st.dirty = True
            if status == "online":
                st.last_seen = now
            return self._due(st, now)
        except Exception:
            self.faults += 1
            return None

    def error(self, station: str, text: str, now: float) -> bytes | None:
        """Something went wrong with a station (an undecodable frame, ...): set ``last_error``.

        The caller redacts ``text``; it is cut to 256 characters.
        """
        try:
            st = self._stations.get(station)
            if st is None:
                st = self._stations[station] = _Station(station)
            st.last_error = (now, str(text)[:MAX_TEXT])
            st.dirty = True
            return self._due(st, now)
        except Exception:
            self.faults += 1
            return None

    def snapshot(self, station: str) -> dict[str, Any]:
        """The state of ``station`` as the JSON value (a fresh dict); "unknown" if never seen."""
        st = self._stations.get(station)
        return (st or _Station(station)).to_json()

    def payload(self, station: str) -> bytes:
        """The bytes :meth:`observe` would publish for ``station`` now (nothing is marked)."""
        return _encode(self.snapshot(station))

    def forget(self, station: str) -> None:
        """Drop a removed station (the caller also clears its retained topic)."""
        self._stations.pop(station, None)

    def restore(self, station: str, data: bytes | str) -> bool:
        """Start from a state this view published before a restart (the retained message).

        Without it, a restarted bridge would republish every station with vendor, model, boot and
        transactions unknown until the station boots again. Only fields of the documented shape
        and types are taken; anything else is left out. A station the view already holds keeps
        what it has (frames seen since the start are newer). Returns whether the state was used.
        The next frame or status of the station publishes, as for a new station.
        """
        try:
            if station in self._stations:
                return False
            value = json.loads(data)
            if type(value) is not dict or value.get("station") != station:
                return False
            self._stations[station] = _restored(station, value)
            return True
        except Exception:  # unreadable JSON included: start afresh instead
            return False

    # -- internals --

    def _call_error(
        self, st: _Station, frame: Any, direction: str, now: float, action: str | None
    ) -> None:
        ctx = st.pending.pop(frame.message_id, None) if direction == "down" else None
        name = _str(action) or (ctx[0] if ctx else None)
        kind = "CALLRESULTERROR" if type(frame) is CallResultError else "CALLERROR"
        code = _str(frame.error_code) or "?"
        where = f" for {name}" if name else ""
        who = f"station sent {kind}" if direction == "up" else f"{kind} sent to station"
        text = f"{who} {code}{where}"
        description = _str(frame.error_description, MAX_TEXT)
        if description:
            text = f"{text}: {description}"
        st.last_error = (now, text[:MAX_TEXT])
        st.dirty = True

    def _due(self, st: _Station, now: float) -> bytes | None:
        published = st.published_at
        if not st.dirty and published is not None:
            since = now - published
            wait = self._meter_refresh if st.metered else self._refresh
            if 0.0 <= since < wait:
                return None
        data = _encode(st.to_json())
        st.dirty = st.metered = False
        st.published_at = now
        return data
