"""A minimal simulated charging station on MQTT (for the demo, the tests and trials).

It speaks compact CBOR on ``{prefix}/{id}/up`` and ``.../down`` like a real station of this
project: a persistent MQTT session with its id as client id and username, a retained
``online`` on ``{prefix}/{id}/status`` with ``offline`` as its will, one outstanding CALL at a
time (repeated with the same message id if no answer comes), and a small 2.0.1 charger
behaviour that answers Reset, UnlockConnector, GetVariables and SetVariables. The full
simulated charger is ``charger-node``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from .._redact import redact_url
from ..behaviours import Behaviour, Context, dispatch_async
from ..rpc import (
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
from ..transports.mqtt import AsyncMqttClient, Message, MqttSettings, Will
from . import _wire
from ._clock import utc_now

__all__ = ["SimStation", "sim_charger", "charging_session_201"]

log = logging.getLogger("ocpp_iot.bridge.station")


def sim_charger(variables: dict[tuple[str, str], str] | None = None) -> Behaviour:
    """A 2.0.1 charger that accepts resets and serves variables from a dict."""
    from ..behaviours import v201

    values: dict[tuple[str, str], str] = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
        ("SecurityCtrlr", "Identity"): "sim",
        ("ChargingStation", "Model"): "SimStation",
    }
    values.update(variables or {})

    class SimCharger(v201.Charger):
        inline = True
        resets: list[str] = []

        def reset(self, request: Any, ctx: Context) -> dict[str, Any]:
            p = request.to_payload()
            self.resets.append(p.get("type", ""))
            return {"status": "Accepted"}

        def unlock_connector(self, request: Any, ctx: Context) -> dict[str, Any]:
            return {"status": "Unlocked"}

        def get_variables(self, request: Any, ctx: Context) -> dict[str, Any]:
            results = []
            for item in request.to_payload()["getVariableData"]:
                comp, var = item["component"], item["variable"]
                key = (comp["name"], var["name"])
                res: dict[str, Any] = {"component": comp, "variable": var}
                if key in values:
                    res["attributeStatus"] = "Accepted"
                    res["attributeValue"] = values[key]
                else:
                    res["attributeStatus"] = "UnknownVariable"
                results.append(res)
            return {"getVariableResult": results}

        def set_variables(self, request: Any, ctx: Context) -> dict[str, Any]:
            results = []
            for item in request.to_payload()["setVariableData"]:
                comp, var = item["component"], item["variable"]
                values[(comp["name"], var["name"])] = item["attributeValue"]
                results.append({"attributeStatus": "Accepted", "component": comp, "variable": var})
            return {"setVariableResult": results}

    return SimCharger()


class SimStation:
    """One simulated station. Use ``async with SimStation(...) as st: await st.call(...)``."""

    def __init__(
        self,
        station_id: str,
        url: str,
        *,
        password: str | None = None,
        prefix: str = "ocpp",
        version: str = "2.0.1",
        protocol: str = "5",
        charger: Behaviour | None = None,
        call_timeout: float = 10.0,
        attempts: int = 0,
        clean_start: bool = False,
        observer: Callable[[str, str, Frame, bytes], None] | None = None,
    ) -> None:
        self.station_id = station_id
        self.prefix = prefix
        self.version = version
        self.call_timeout = call_timeout
        self.attempts = attempts  # 0: repeat until answered
        self.observer = observer
        self.charger = charger
        self.settings = MqttSettings(
            url=url,
            client_id=station_id,
            username=station_id,
            password=password,
            protocol=protocol,
            clean_start=clean_start,
            will=Will(f"{prefix}/{station_id}/status", b"offline", 1, True),
            birth=(Will(f"{prefix}/{station_id}/status", b"online", 1, True),),
        )
        # the OCPP-J rules (ids, one outstanding CALL, repeats answered from the cache) are the
        # session's; ids start at random so that runs against one bridge store do not collide
        self.session = Session(
            version, call_timeout=call_timeout, first_id=random.randrange(1, 1 << 20), remember=64
        )
        self._pending: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._client: AsyncMqttClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.received_calls: list[Call] = []

    @property
    def up(self) -> str:
        return f"{self.prefix}/{self.station_id}/up"

    @property
    def down(self) -> str:
        return f"{self.prefix}/{self.station_id}/down"

    async def start(self, timeout: float = 10.0) -> SimStation:
        self._lock = asyncio.Lock()
        self._client = AsyncMqttClient(self.settings)
        self._client.subscribe(self.down, 1)
        if self.charger is None and self.version == "2.0.1":
            self.charger = sim_charger()
        ok = await self._client.start(timeout)
        if not ok:
            await self._client.stop()  # or it goes on connecting, and takes our next session
            raise ConnectionError(
                f"{self.station_id} could not connect to {redact_url(self.settings.url)}"
            )
        self._task = asyncio.create_task(self._receive())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.stop([Will(f"{self.prefix}/{self.station_id}/status", b"offline")])

    async def __aenter__(self) -> SimStation:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def new_message_id(self) -> str:
        return self.session.new_message_id()

    def _publish(self, frame: Frame) -> None:
        data = _wire.encode(frame, self.version)
        if self.observer is not None:
            self.observer("up", self.station_id, frame, data)
        assert self._client is not None
        self._client.publish(self.up, data, 1)

    async def call(
        self, action: str, payload: dict[str, Any], *, message_id: str | None = None
    ) -> CallResult | CallError:
        """Send a CALL and wait for its answer, repeating it (same id) on each timeout."""
        assert self._lock is not None
        async with self._lock:  # our side of OCPP-J 4.1.1: the session refuses a second one
            mid = message_id or self.new_message_id()
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[CallResult | CallError] = loop.create_future()
            self._pending[mid] = fut
            try:
                attempt = 0
                while True:
                    attempt += 1
                    self.session.expire(loop.time())  # the previous attempt, if it timed out
                    self._publish(
                        self.session.send_call(action, payload, loop.time(), message_id=mid)
                    )
                    try:
                        return await asyncio.wait_for(asyncio.shield(fut), self.call_timeout)
                    except TimeoutError:
                        if self.attempts and attempt >= self.attempts:
                            raise
                        log.info("%s: no answer to %s %s, repeating", self.station_id, action, mid)
            finally:
                self._pending.pop(mid, None)
                self._abandon(loop.time())

    def _abandon(self, now: float) -> None:
        """Give up our outstanding CALL (its wait timed out or was cancelled) before its
        deadline on the session's clock, so that the slot is free for the next one."""
        deadline = self.session.deadline()
        if deadline is not None:
            self.session.expire(max(now, deadline))

    async def _receive(self) -> None:
        assert self._client is not None
        while True:
            msg: Message = await self._client.get()
            try:
                version, frame = _wire.decode(msg.payload)
            except _wire.DecodeError as exc:
                log.warning("%s: undecodable frame from the bridge: %s", self.station_id, exc)
                continue
            if self.observer is not None:
                self.observer("down", self.station_id, frame, msg.payload)
            event = self.session.receive(frame, asyncio.get_running_loop().time())
            if isinstance(event, CallAnswered):
                fut = self._pending.get(event.call.message_id)
                if fut is not None and not fut.done():
                    fut.set_result(event.response)
            elif isinstance(event, CallReceived):
                await self._answer(event.call, version)
            elif isinstance(event, DuplicateCall) and isinstance(event.response, bytes):
                assert self._client is not None  # a repeated CALL: the same answer again
                self._client.publish(self.up, event.response, 1)

    async def _answer(self, call: Call, version: str) -> None:
        self.received_calls.append(call)
        if self.charger is None:  # a known action this station does not handle (OCPP-J 4.3)
            answer: CallResult | CallError = CallError(
                call.message_id,
                error_code_for(ErrorCode.NOT_SUPPORTED, version),
                "this station answers no CALLs",
                {},
            )
        else:
            ctx = Context(self.station_id, call.message_id, version)
            result = await dispatch_async(self.charger, call, ctx)
            assert result is not None
            answer = result
        data = _wire.encode(answer, self.version)
        self.session.respond(answer, stored=data)
        if self.observer is not None:
            self.observer("up", self.station_id, answer, data)
        assert self._client is not None
        self._client.publish(self.up, data, 1)


def charging_session_201(
    station: str,
    *,
    id_token: str = "TOKEN-1",
    updates: int = 3,
    transaction_id: str | None = None,
    start_wh: float = 0.0,
) -> list[tuple[str, dict[str, Any]]]:
    """The CALLs of one 2.0.1 charging session: boot, status, authorize, transaction, heartbeat."""
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
            {
                "chargingStation": {"model": "SimStation", "vendorName": "ocpp-iot"},
                "reason": "PowerUp",
            },
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
