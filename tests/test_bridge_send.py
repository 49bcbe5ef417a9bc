"""OCPP 2.1 SEND frames (message type 6) through the bridge: the handler runs once, with a
typed request; nothing goes back on the station's ``down`` topic, valid or not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import Probe, running_bridge, station

from ocpp_iot.behaviours import v21
from ocpp_iot.bridge import _wire
from ocpp_iot.model.v21 import NotifyPeriodicEventStreamRequest
from ocpp_iot.rpc import CallResult, Send
from ocpp_iot.testing import Mosquitto

STREAM = {
    "id": 7,
    "pending": 0,
    "basetime": "2026-06-05T12:00:00Z",
    "data": [{"t": 0, "v": "230.1"}, {"t": 1.5, "v": "230.4"}],
}


class SyncSystem(v21.ChargeSystem):
    def __init__(self) -> None:
        super().__init__()
        self.got: list[tuple[str, Any]] = []

    def heartbeat(self, request: Any, ctx: Any) -> Any:
        from ocpp_iot.model.v21 import HeartbeatResponse

        return HeartbeatResponse(current_time="2026-06-05T12:00:00Z")

    def notify_periodic_event_stream(self, request: Any, ctx: Any) -> None:
        self.got.append((ctx.station_id, request))


class AsyncSystem(SyncSystem):
    async def notify_periodic_event_stream(self, request: Any, ctx: Any) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.got.append((ctx.station_id, request))


@pytest.mark.parametrize("system", [SyncSystem, AsyncSystem])
def test_send_reaches_the_handler_once_and_gets_no_answer(
    broker: Mosquitto, tmp_path: Path, system: type[SyncSystem]
) -> None:
    handler = system()
    downs = Probe(broker.url, "bridge", ["ocpp/CP1/down"])

    async def scenario() -> None:
        async with running_bridge(broker, tmp_path, {"2.1": handler}):
            async with station(broker, "CP1", version="2.1") as cp1:
                first = await cp1.call("Heartbeat", {})
                assert isinstance(first, CallResult)
                raw = cp1.client
                await raw.publish_confirmed(
                    "ocpp/CP1/up",
                    _wire.encode(Send("s-1", "NotifyPeriodicEventStream", STREAM), "2.1"),
                )
                bad = dict(STREAM, data=[])  # minItems 1
                await raw.publish_confirmed(
                    "ocpp/CP1/up",
                    _wire.encode(Send("s-2", "NotifyPeriodicEventStream", bad), "2.1"),
                )
                # the station is still served; the bridge answers a station's frames in their
                # order, so an answer to either SEND would come down before this one
                last = await cp1.call("Heartbeat", {})
                assert isinstance(last, CallResult)
                downs_seen = await asyncio.to_thread(
                    downs.until, lambda m: _wire.decode(m.payload)[1].message_id == last.message_id
                )
                # a SEND is never answered, not even when invalid
                ids = [_wire.decode(m.payload)[1].message_id for m in downs_seen]
                assert ids == [first.message_id, last.message_id]

    asyncio.run(scenario())
    downs.close()
    assert len(handler.got) == 1
    sid, request = handler.got[0]
    assert sid == "CP1"
    assert isinstance(request, NotifyPeriodicEventStreamRequest)
    assert request.id == 7 and [d.v for d in request.data] == ["230.1", "230.4"]
