"""A scriptable raw station for the bridge's protocol tests (not a simulated charger: that is
``ocpp_iot.charger_node``).

:class:`RawStation` sends the CALLs a test gives it and waits for their answers, and answers the
bridge's CALLs through a behaviour. The station's side of MQTT (client id and username the
station id, will and birth on ``status``, the persistent session, one ordered stream of link
events) is the station link's (:class:`~ocpp_iot.transports.pubsub_link.PubSubStationLink`), and
the OCPP-J rules (message ids, one outstanding CALL, a repeated CALL answered from the cache)
are the :class:`~ocpp_iot.rpc.Session`'s; what is here is the glue and the test data
(:func:`charging_session_201`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any, Final

from ocpp_iot.behaviours import Behaviour, Context, dispatch_async, v201
from ocpp_iot.bridge.reference import utc_now
from ocpp_iot.codecs import DecodeError, cbor, ocppj
from ocpp_iot.rpc import (
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    DuplicateCall,
    ErrorCode,
    Frame,
    Session,
    error_code_for,
)
from ocpp_iot.transports.base import PubSubClient
from ocpp_iot.transports.link import FrameReceived, LinkDown, LinkUp
from ocpp_iot.transports.memory import MemoryBroker
from ocpp_iot.transports.memory_link import MemoryStationLink
from ocpp_iot.transports.mqtt_link import MqttStationLink
from ocpp_iot.transports.pubsub_link import PubSubStationLink

__all__ = ["MODEL", "RawStation", "TinyCharger", "charging_session_201"]

log = logging.getLogger("tests.raw_station")

#: the model in :func:`charging_session_201`'s boot and :class:`TinyCharger`'s device model
MODEL: Final = "RawStation"

Observer = Callable[[str, str, Frame, bytes], None]


class TinyCharger(v201.Charger):
    """What the bridge tests ask a 2.0.1 station: Reset (accepted) and GetVariables from a dict;
    every other action is NotSupported (the behaviour's default)."""

    def __init__(self, variables: dict[tuple[str, str], str] | None = None) -> None:
        super().__init__()
        self.values: dict[tuple[str, str], str] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("SecurityCtrlr", "Identity"): "sim",
            ("ChargingStation", "Model"): MODEL,
            **(variables or {}),
        }

    def reset(self, request: Any, ctx: Context) -> dict[str, Any]:
        return {"status": "Accepted"}

    def get_variables(self, request: Any, ctx: Context) -> dict[str, Any]:
        results = []
        for item in request.to_payload()["getVariableData"]:
            comp, var = item["component"], item["variable"]
            value = self.values.get((comp["name"], var["name"]))
            res: dict[str, Any] = {"component": comp, "variable": var}
            if value is None:
                res["attributeStatus"] = "UnknownVariable"
            else:
                res["attributeStatus"] = "Accepted"
                res["attributeValue"] = value
            results.append(res)
        return {"getVariableResult": results}


class _Default:
    """The ``charger`` argument left out: :class:`TinyCharger` in 2.0.1, none otherwise."""


_DEFAULT: Final = _Default()


class RawStation:
    """One station on ``link``. Use ``async with RawStation.mqtt(...) as st: await st.call(...)``.

    ``charger`` answers the bridge's CALLs (``None``: every CALL gets NotSupported);
    ``observer(direction, station, frame, data)`` sees each frame sent (``"up"``) and received
    (``"down"``); ``call_timeout`` is how long :meth:`call` waits before repeating its CALL with
    the same id, ``attempts`` how often it sends it (0: until answered).
    """

    def __init__(
        self,
        link: PubSubStationLink,
        *,
        version: str = "2.0.1",
        charger: Behaviour | None | _Default = _DEFAULT,
        call_timeout: float = 10.0,
        attempts: int = 0,
        observer: Observer | None = None,
    ) -> None:
        self.link = link
        self.station_id = link.station_id
        self.version = version
        self.call_timeout = call_timeout
        self.attempts = attempts
        self.observer = observer
        if isinstance(charger, _Default):
            charger = TinyCharger() if version == "2.0.1" else None
        self.charger: Behaviour | None = charger
        # ids start at random so that runs against one bridge store do not collide
        self.session = Session(
            version, call_timeout=call_timeout, first_id=random.randrange(1, 1 << 20), remember=64
        )
        self.received_calls: list[Call] = []
        self._pending: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._lock = asyncio.Lock()
        self._up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def mqtt(
        cls,
        station_id: str,
        url: str,
        *,
        password: str | None = None,
        protocol: str = "5",
        clean_start: bool = False,
        ca_certs: str | None = None,
        prefix: str = "ocpp",
        **kw: Any,
    ) -> RawStation:
        """A station on an :class:`MqttStationLink` to the broker at ``url``."""
        link = MqttStationLink(
            station_id,
            url,
            password=password,
            protocol=protocol,
            clean_start=clean_start,
            ca_certs=ca_certs,
            prefix=prefix,
        )
        return cls(link, **kw)

    @classmethod
    def memory(cls, broker: MemoryBroker, station_id: str, **kw: Any) -> RawStation:
        """A station on a :class:`MemoryStationLink` through ``broker``."""
        return cls(MemoryStationLink(broker, station_id), **kw)

    @property
    def client(self) -> PubSubClient:
        """The link's client, for frames a test publishes by hand (any topic, any bytes)."""
        return self.link.client

    async def start(self, timeout: float = 10.0) -> RawStation:
        """Open the link and wait for it to be up; ``ConnectionError`` if it is not in time."""
        await self.link.open()
        self._task = asyncio.create_task(self._receive())
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise ConnectionError(f"{self.station_id} did not connect in {timeout:g} s") from None
        return self

    async def stop(self) -> None:
        await self.link.close()  # offline on status; receive() ends
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)

    async def __aenter__(self) -> RawStation:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def new_message_id(self) -> str:
        return self.session.new_message_id()

    def _send(self, frame: Frame, data: bytes | None = None) -> None:
        data = data if data is not None else cbor.encode(frame, self.version)
        if self.observer is not None:
            self.observer("up", self.station_id, frame, data)
        self.link.send(data)

    async def call(
        self, action: str, payload: dict[str, Any], *, message_id: str | None = None
    ) -> CallResult | CallError:
        """Send a CALL and wait for its answer, repeating it (same id) on each timeout."""
        async with self._lock:  # the session refuses a second outstanding CALL (OCPP-J 4.1.1)
            mid = message_id or self.new_message_id()
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[CallResult | CallError] = loop.create_future()
            self._pending[mid] = fut
            try:
                attempt = 0
                while True:
                    attempt += 1
                    self.session.expire(loop.time())  # the attempt before, if it timed out
                    self._send(self.session.send_call(action, payload, loop.time(), message_id=mid))
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), self.call_timeout)
                    except TimeoutError:
                        if self.attempts and attempt >= self.attempts:
                            raise
                        log.info("%s: no answer to %s %s, repeating", self.station_id, action, mid)
            finally:
                self._pending.pop(mid, None)
                deadline = self.session.deadline()  # free the slot for the next CALL
                if deadline is not None:
                    self.session.expire(max(loop.time(), deadline))

    async def _receive(self) -> None:
        while True:
            try:
                event = await self.link.receive()
            except EOFError:
                return
            if isinstance(event, LinkUp):
                self._up.set()
            elif isinstance(event, LinkDown):
                self._up.clear()
            elif isinstance(event, FrameReceived):
                await self._frame(event)

    async def _frame(self, event: FrameReceived) -> None:
        try:
            if event.json or event.data[:1] == b"[":  # answered in kind to OCPP-J text
                frame = ocppj.decode(event.data, self.version)
            else:
                frame = cbor.decode(event.data)[1]
        except DecodeError as exc:
            log.warning("%s: undecodable frame from the bridge: %s", self.station_id, exc)
            return
        if self.observer is not None:
            self.observer("down", self.station_id, frame, event.data)
        got = self.session.receive(frame, asyncio.get_running_loop().time())
        if isinstance(got, CallAnswered):
            fut = self._pending.get(got.call.message_id)
            if fut is not None and not fut.done():
                fut.set_result(got.response)
        elif isinstance(got, CallReceived):
            await self._answer(got.call)
        elif isinstance(got, DuplicateCall) and isinstance(got.response, bytes):
            self.link.send(got.response)  # a repeated CALL: the same answer again

    async def _answer(self, call: Call) -> None:
        self.received_calls.append(call)
        if self.charger is None:  # a known action this station does not handle (OCPP-J 4.3)
            answer: CallResult | CallError = CallError(
                call.message_id,
                error_code_for(ErrorCode.NOT_SUPPORTED, self.version),
                "this station answers no CALLs",
                {},
            )
        else:
            result = await dispatch_async(
                self.charger, call, Context(self.station_id, call.message_id, self.version)
            )
            assert result is not None
            answer = result
        data = cbor.encode(answer, self.version)
        self.session.respond(answer, stored=data)
        self._send(answer, data)


def charging_session_201(
    station: str,
    *,
    id_token: str = "TOKEN-1",
    updates: int = 3,
    transaction_id: str | None = None,
    start_wh: float = 0.0,
) -> list[tuple[str, dict[str, Any]]]:
    """The CALLs of one 2.0.1 charging session: boot, status, authorize, transaction (Started,
    ``updates`` Updated of 1,850 Wh each at 11 kW, Ended), heartbeat."""
    tx = transaction_id or f"{station}-{random.randrange(1 << 30):08x}"
    token = {"idToken": id_token, "type": "ISO14443"}
    evse = {"id": 1, "connectorId": 1}

    def mv(wh: float, power: float) -> list[dict[str, Any]]:
        return [
            {
                "timestamp": utc_now(),
                "sampledValue": [
                    {
                        "value": round(wh, 1),
                        "measurand": "Energy.Active.Import.Register",
                        "unitOfMeasure": {"unit": "Wh"},
                    },
                    {
                        "value": round(power, 1),
                        "measurand": "Power.Active.Import",
                        "unitOfMeasure": {"unit": "W"},
                    },
                ],
            }
        ]

    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "BootNotification",
            {"chargingStation": {"model": MODEL, "vendorName": "ocpp-iot"}, "reason": "PowerUp"},
        ),
        (
            "StatusNotification",
            {"timestamp": utc_now(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
        ),
        ("Authorize", {"idToken": token}),
        (
            "TransactionEvent",
            {
                "eventType": "Started",
                "timestamp": utc_now(),
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
                "evse": evse,
                "idToken": token,
                "meterValue": mv(start_wh, 0.0),
            },
        ),
    ]
    wh = start_wh
    for i in range(updates):
        wh += 1850.0
        calls.append(
            (
                "TransactionEvent",
                {
                    "eventType": "Updated",
                    "timestamp": utc_now(),
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": i + 1,
                    "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
                    "meterValue": mv(wh, 11000.0),
                },
            )
        )
    calls += [
        (
            "TransactionEvent",
            {
                "eventType": "Ended",
                "timestamp": utc_now(),
                "triggerReason": "EVDeparted",
                "seqNo": updates + 1,
                "transactionInfo": {"transactionId": tx, "stoppedReason": "EVDisconnected"},
                "meterValue": mv(wh, 0.0),
            },
        ),
        ("Heartbeat", {}),
    ]
    return calls
