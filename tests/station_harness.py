"""A test bench for the charger's sans-IO station machine (``charger_node.station``).

One :class:`Bench` holds a :class:`StationMachine` with its outbox and device model in
``tmp_path``, an EVSE (the project's :class:`SimulatedEvse` or the :class:`ScriptedEvse` below),
and a back end (:class:`Csms`: an ``rpc.Session`` answering from the reference charge system, a
script, or defaults), joined in-process on a fake clock. Every frame on the way, in both
directions, goes through OCPP-J and compact CBOR and back, and its payload is validated with
the generated models (``ocpp_iot.model.<v>.ACTIONS``): a payload the schema refuses fails the
test where it was made.

The loop is the runtime's (``charger_node.runtime``): tick, exchange frames, sleep until
``next_wakeup``; the bench jumps the clock instead of sleeping, and checks that the machine never
asks to be woken in the past and does not spin at one instant.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp_iot.behaviours import Behaviour, Context, dispatch
from ocpp_iot.charger_node.device_model import DeviceModel, JsonFileStore
from ocpp_iot.charger_node.evse import (
    Connector,
    EvResumed,
    EvseEvent,
    EvSuspended,
    Fault,
    FaultCleared,
    MeterReading,
    Plugged,
    TokenPresented,
    Unplugged,
)
from ocpp_iot.charger_node.messages import iso
from ocpp_iot.charger_node.outbox import Outbox, ReplayPace
from ocpp_iot.charger_node.station import StationMachine
from ocpp_iot.charger_node.tx_records import V16_DEFAULTS
from ocpp_iot.codecs import cbor, ocppj
from ocpp_iot.model import get_version, parse
from ocpp_iot.rpc import (
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    DuplicateCall,
    Frame,
    Session,
)

#: the bench's epoch: 2026-09-21T14:13:20Z
T0 = 1_790_000_000.0
VERSIONS = ("1.6", "2.0.1", "2.1")
V2 = ("2.0.1", "2.1")


class SpinError(AssertionError):
    """The machine asked to be woken at the same instant again and again (a busy loop)."""


# -- the wire ------------------------------------------------------------------------------------


def wire(frame: Frame, version: str) -> Frame:
    """``frame`` as it arrives at the other end: OCPP-J and compact CBOR round trips (both must
    be lossless), the payload checked against its schema. Returns the CBOR-decoded frame (what
    the runtime and the bridge read), with a CallResult's action."""
    text = ocppj.encode(frame)
    plain = ocppj.decode(text, version)
    action = frame.action if isinstance(frame, CallResult) else None
    if isinstance(plain, CallResult):
        plain = CallResult(plain.message_id, plain.payload, action)
    got_version, compact = cbor.decode(cbor.encode(plain, version))
    assert got_version == version
    # the same JSON value (CBOR writes the keys in schema order)
    assert json.loads(ocppj.encode(compact)) == json.loads(text), f"CBOR changed {frame}"
    actions = get_version(version).ACTIONS
    if isinstance(compact, Call):
        spec = actions[compact.action]
        parse(spec.request, compact.payload)  # raises PayloadError: the test fails here
    elif isinstance(compact, CallResult):
        assert compact.action is not None
        response = actions[compact.action].response
        assert response is not None
        parse(response, compact.payload)
    return compact


# -- a scripted EVSE -----------------------------------------------------------------------------


class ScriptedEvse:
    """An EVSE that does what the test plans (``at(t, "plug")``), with an exact meter: the
    register grows by ``power_w`` while a cable is in, the relay closed, no fault and the EV not
    suspended. A :class:`~ocpp_iot.charger_node.evse.ScheduledEvse`."""

    def __init__(
        self,
        connectors: int = 1,
        *,
        start_wh: float = 1_000_000.0,
        power_w: float = 11_000.0,
        one_evse: bool = False,
    ) -> None:
        # one EVSE a connector; ``one_evse``: all of them on EVSE 1 (connector ids 1..N)
        self._connectors = tuple(
            Connector(n, 1, n) if one_evse else Connector(n, n) for n in range(1, connectors + 1)
        )
        numbers = [c.number for c in self._connectors]
        self.register = {n: start_wh + 100_000.0 * (n - 1) for n in numbers}
        self.power_w = {n: power_w for n in numbers}
        self.relay = dict.fromkeys(numbers, False)
        self.cable = dict.fromkeys(numbers, False)  #: a cable is in
        self.suspended = dict.fromkeys(numbers, False)
        self.fault: dict[int, str | None] = dict.fromkeys(numbers, None)
        self.available = dict.fromkeys(numbers, True)
        self.unlocked: list[int] = []
        self.relay_log: list[tuple[float, int, bool]] = []
        self._last = dict.fromkeys(numbers, 0.0)
        self._planned: list[tuple[float, int, EvseEvent]] = []
        self._seq = itertools.count()

    # planning

    def at(self, t: float, what: str, connector: int = 1, token: str = "T1") -> None:
        """Plan ``what`` (plug, unplug, token, fault, clear, suspend, resume) at time ``t``."""
        event: EvseEvent
        if what == "plug":
            event = Plugged(connector, t)
        elif what == "unplug":
            event = Unplugged(connector, t)
        elif what == "token":
            event = TokenPresented(connector, t, token)
        elif what == "fault":
            event = Fault(connector, t, "GroundFailure", "test")
        elif what == "clear":
            event = FaultCleared(connector, t)
        elif what == "suspend":
            event = EvSuspended(connector, t)
        elif what == "resume":
            event = EvResumed(connector, t)
        else:
            raise ValueError(what)
        heapq.heappush(self._planned, (t, next(self._seq), event))

    # the Evse interface

    @property
    def connectors(self) -> Sequence[Connector]:
        return self._connectors

    def _drawing(self, n: int) -> bool:
        return self.relay[n] and self.cable[n] and not self.suspended[n] and not self.fault[n]

    def _advance(self, n: int, t: float) -> None:
        if t > self._last[n]:
            if self._drawing(n):
                self.register[n] += self.power_w[n] * (t - self._last[n]) / 3600.0
            self._last[n] = t

    def events(self, now: float) -> list[EvseEvent]:
        out: list[EvseEvent] = []
        while self._planned and self._planned[0][0] <= now:
            t, _, event = heapq.heappop(self._planned)
            for n in self.cable:
                self._advance(n, t)
            n = event.connector
            if isinstance(event, Plugged):
                self.cable[n] = True
            elif isinstance(event, Unplugged):
                self.cable[n] = self.suspended[n] = False
            elif isinstance(event, Fault):
                self.fault[n] = event.code
            elif isinstance(event, FaultCleared):
                self.fault[n] = None
            elif isinstance(event, EvSuspended):
                self.suspended[n] = True
            elif isinstance(event, EvResumed):
                self.suspended[n] = False
            out.append(event)
        return out

    def meter(self, connector: int, now: float) -> MeterReading:
        self._advance(connector, now)
        p = self.power_w[connector] if self._drawing(connector) else 0.0
        amps = (p / 3 / 230.0,) * 3
        return MeterReading(now, self.register[connector], p, amps, (230.0,) * 3)

    def set_relay(self, connector: int, closed: bool, now: float) -> None:
        self._advance(connector, now)
        if self.relay[connector] != closed:
            self.relay_log.append((now, connector, closed))
        self.relay[connector] = closed

    def unlock(self, connector: int, now: float) -> bool:
        self.unlocked.append(connector)
        return not self.relay[connector]

    def set_available(self, connector: int, available: bool, now: float) -> None:
        self.available[connector] = available

    def next_event_at(self) -> float | None:
        return self._planned[0][0] if self._planned else None

    def plugged(self, connector: int) -> bool:
        """Whether a cable is in now (as SimulatedEvse says it too)."""
        return self.cable[connector]


# -- the back end --------------------------------------------------------------------------------

#: what a script returns to answer nothing: the CALL reached the back end, no answer leaves
NO_ANSWER = object()

Script = Callable[[Call, float], Any]  # -> payload dict, CallError, NO_ANSWER or None (default)


@dataclass
class Csms:
    """The back end of one station: an ``rpc.Session`` (its answer cache is kept across link
    losses, as the bridge's store is), answering with ``script[action]`` if there is one, else
    the ``behaviour`` (the reference charge system), else a schema-valid default."""

    version: str
    behaviour: Behaviour | None = None
    script: dict[str, Script] = field(default_factory=dict)
    #: BootNotification statuses to answer, one per boot; Accepted when used up
    boot_statuses: list[str] = field(default_factory=list)
    boot_interval: int = 300
    #: currentTime = the bench's now + this
    clock_offset: float = 0.0
    #: tokens answered Invalid (all others Accepted)
    invalid_tokens: set[str] = field(default_factory=set)
    session: Session = field(init=False)
    #: every CALL that reached the back end (repeats too), with the time
    received: list[tuple[float, Call]] = field(default_factory=list)
    #: the CALLs whose handler ran (a repeat answered from the cache is not here)
    handled: list[tuple[float, Call]] = field(default_factory=list)
    #: the station's answers to our CALLs, by message id
    answers: dict[str, CallResult | CallError] = field(default_factory=dict)
    #: a frame from the station that this returns True for is lost on the way up
    lose_up: Callable[[Frame], bool] | None = None
    #: an answer of ours that this returns True for is lost on the way down
    lose_down: Callable[[Frame], bool] | None = None
    _tx_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def __post_init__(self) -> None:
        self.session = Session(self.version, call_timeout=60.0)

    # what the bench calls

    def handle(self, call: Call, now: float) -> CallResult | CallError | None:
        self.received.append((now, call))
        event = self.session.receive(call, now)
        if isinstance(event, DuplicateCall):
            response = event.response
            assert response is None or isinstance(response, CallResult | CallError)
            return response
        assert isinstance(event, CallReceived)
        self.handled.append((now, call))
        answer = self._answer(call, now)
        if answer is NO_ANSWER:
            return None
        assert isinstance(answer, CallResult | CallError)
        return self.session.respond(answer)

    def answered(self, frame: CallResult | CallError, now: float) -> None:
        event = self.session.receive(frame, now)
        if isinstance(event, CallAnswered):
            self.answers[frame.message_id] = event.response

    # answers

    def _answer(self, call: Call, now: float) -> object:
        script = self.script.get(call.action)
        if script is not None:
            got = script(call, now)
            if got is NO_ANSWER:
                return NO_ANSWER
            if isinstance(got, CallError):
                return got
            if isinstance(got, dict):
                return CallResult(call.message_id, got, call.action)
        if self.behaviour is not None:
            ctx = Context("CP1", call.message_id, self.version)
            answer = dispatch(self.behaviour, call, ctx)
            if isinstance(answer, CallResult):
                return answer
            assert isinstance(answer, CallError)
            if answer.error_code != "NotSupported":
                return answer
        return CallResult(call.message_id, self.default(call, now), call.action)

    def current_time(self, now: float) -> str:
        return iso(now + self.clock_offset)

    def token_status(self, token: str | None) -> str:
        return "Invalid" if token in self.invalid_tokens else "Accepted"

    def default(self, call: Call, now: float) -> dict[str, Any]:
        a, p = call.action, call.payload
        if a == "BootNotification":
            status = self.boot_statuses.pop(0) if self.boot_statuses else "Accepted"
            return {
                "currentTime": self.current_time(now),
                "interval": self.boot_interval,
                "status": status,
            }
        if a == "Heartbeat":
            return {"currentTime": self.current_time(now)}
        if self.version == "1.6":
            if a == "Authorize":
                return {"idTagInfo": {"status": self.token_status(p["idTag"])}}
            if a == "StartTransaction":
                return {
                    "idTagInfo": {"status": self.token_status(p["idTag"])},
                    "transactionId": next(self._tx_ids),
                }
            return {}
        if a == "Authorize":
            return {"idTokenInfo": {"status": self.token_status(p["idToken"]["idToken"])}}
        if a == "TransactionEvent" and "idToken" in p:
            return {"idTokenInfo": {"status": self.token_status(p["idToken"]["idToken"])}}
        return {}

    # looking at what arrived

    def calls(self, *actions: str, repeats: bool = False) -> list[Call]:
        """The CALLs of ``actions`` (all if none) whose handler ran (or every copy)."""
        source = self.received if repeats else self.handled
        return [c for _, c in source if not actions or c.action in actions]

    def timed(self, *actions: str) -> list[tuple[float, Call]]:
        return [(t, c) for t, c in self.handled if not actions or c.action in actions]


# -- the bench -----------------------------------------------------------------------------------


def tmpfs_data_dir(tmp_path: Path) -> Path:
    """Where the station's files go: a tmpfs folder when there is one (``/dev/shm``: SQLite's
    and the device model's fsyncs cost nothing there, which keeps these tests fast; what a power
    cut does to the files is the outbox tests' subject), else ``tmp_path``."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        return tmp_path
    path = Path(tempfile.mkdtemp(prefix="station-bench-", dir=shm))
    (tmp_path / "data-dir").write_text(str(path))  # where to look after a failure
    return path


class Bench:
    """A station machine joined to a :class:`Csms` on a fake clock (see the module docstring).

    ``variables`` are device-model defaults (``{"SampledDataCtrlr.TxUpdatedInterval": "60"}``).
    ``latency``: seconds an answer of the back end takes to arrive (0: at once).
    """

    def __init__(
        self,
        tmp_path: Path,
        version: str,
        *,
        evse: Any = None,
        connectors: int = 1,
        csms: Csms | None = None,
        variables: dict[str, str] | None = None,
        max_queue: int = 5000,
        pace: ReplayPace | None = None,
        latency: float = 0.0,
        now: float = T0,
        charger: Callable[[StationMachine], Behaviour] | None = None,
    ) -> None:
        self.dir = tmpfs_data_dir(tmp_path)
        self.version = version
        self.evse = evse if evse is not None else ScriptedEvse(connectors)
        self.csms = csms if csms is not None else Csms(version)
        self.variables = dict(variables or {})
        self.max_queue = max_queue
        self.pace = pace or ReplayPace(per_minute=600.0, burst=50)
        self.latency = latency
        self.charger = charger
        self.now = now
        self.up = False
        self.ticks = 0
        self.restarts = 0
        #: every frame the station put on the link while it was up: (time, frame)
        self.sent: list[tuple[float, Frame]] = []
        self._down: list[tuple[float, int, Frame]] = []  # answers on their way to the station
        self._seq = itertools.count()
        self.machine = self._build()
        if self.dir != tmp_path:
            weakref.finalize(self, shutil.rmtree, self.dir, True)

    # -- building --------------------------------------------------------------------------------

    def _build(self) -> StationMachine:
        evse_ids = [c.evse_id for c in self.evse.connectors]
        self.model = DeviceModel(
            evses=[evse_ids.count(e) for e in sorted(set(evse_ids))],  # connectors per EVSE
            store=JsonFileStore(self.dir / "device-model.json"),
            defaults=(V16_DEFAULTS if self.version == "1.6" else {}) | (self.variables or {}),
        )
        self.outbox = Outbox(self.dir / "outbox.db", max_messages=self.max_queue)
        return StationMachine(
            "CP1", self.version, self.evse, self.model, self.outbox, pace=self.pace,
            charger=self.charger,
        )  # fmt: skip

    def start(self, *, link: bool = True, boot_reason: str = "PowerUp") -> Bench:
        self.machine.start(self.now, boot_reason)
        if link:
            self.link_up()
        self.settle()
        return self

    def kill(self, *, link: bool = True, evse: Any = None) -> None:
        """A power cut or SIGKILL: the machine, outbox and model are dropped without closing
        anything, then made again from the same files and started (boot reason PowerUp)."""
        self.up = False
        self._down.clear()
        del self.machine, self.outbox, self.model
        gc.collect()
        if evse is not None:
            self.evse = evse
        self.restarts += 1
        self.machine = self._build()
        self.start(link=link)

    def restart(self, reason: str = "RemoteReset") -> None:
        """What the node does on a Reset: close, make everything again, boot with ``reason``."""
        self.up = False
        self._down.clear()
        self.outbox.close()
        self.restarts += 1
        self.machine = self._build()
        self.start(boot_reason=reason)

    # -- the link --------------------------------------------------------------------------------

    def link_up(self) -> None:
        self.up = True
        self.machine.link_up(self.now)
        self.settle()

    def link_down(self) -> None:
        self.up = False
        self._down.clear()  # what was on its way is lost
        self.machine.link_down(self.now)
        self.settle()

    # -- running ---------------------------------------------------------------------------------

    def settle(self) -> None:
        """Tick at ``now`` and exchange frames until nothing moves (the runtime's loop at one
        instant: it ticks after every frame)."""
        for _ in range(10_000):
            self.ticks += 1
            self.machine.tick(self.now)
            if not self._exchange():
                return
        raise SpinError("frames kept flowing at one instant")

    def _exchange(self) -> bool:
        moved = False
        while self._down and self._down[0][0] <= self.now:
            _, _, frame = heapq.heappop(self._down)
            moved = True
            if self.up:
                self.machine.receive(frame, self.now)
                self.machine.tick(self.now)
        frames = self.machine.take_frames()
        for frame in frames:
            moved = True
            if not self.up:
                continue  # the runtime drops what the link cannot carry
            frame = wire(frame, self.version)
            self.sent.append((self.now, frame))
            lose = self.csms.lose_up
            if lose is not None and lose(frame):
                continue
            if isinstance(frame, Call):
                answer = self.csms.handle(frame, self.now)
                if answer is not None:
                    self._to_station(answer)
            elif isinstance(frame, CallResult | CallError):
                self.csms.answered(frame, self.now)
        return moved

    def _to_station(self, frame: Frame) -> None:
        lose = self.csms.lose_down
        if lose is not None and lose(frame):
            return
        frame = wire(frame, self.version)
        heapq.heappush(self._down, (self.now + self.latency, next(self._seq), frame))

    def wakeup(self) -> float:
        at = self.machine.next_wakeup(self.now)
        assert at >= self.now, f"next_wakeup {at} is in the past (now {self.now})"
        if self._down:
            at = min(at, self._down[0][0])
        return at

    def run(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, end: float, *, max_ticks: int = 200_000) -> None:
        """Run the loop until ``end``: the clock jumps to each wake-up the machine asks for."""
        same = 0
        start_ticks = self.ticks
        while True:
            self.settle()
            if self.ticks - start_ticks > max_ticks:
                raise SpinError(f"more than {max_ticks} ticks before {end}")
            at = self.wakeup()
            if at >= end:
                self.now = end
                self.settle()
                return
            same = same + 1 if at == self.now else 0
            if same > 5:
                raise SpinError(f"next_wakeup keeps answering now ({self.now})")
            self.now = at

    def run_until_sent(self, wanted: Callable[[Call], bool], *, limit: float = 3600.0) -> Call:
        """Run until the station sends a CALL that ``wanted`` accepts; stop right there (its
        answer, with a latency, is still on its way)."""
        seen = len(self.sent)
        end = self.now + limit
        while self.now < end:
            self.settle()
            for _, frame in self.sent[seen:]:
                if isinstance(frame, Call) and wanted(frame):
                    return frame
            seen = len(self.sent)
            self.now = min(self.wakeup(), end)
        raise AssertionError("not sent in time")

    def call(self, action: str, payload: dict[str, Any]) -> CallResult | CallError:
        """A CALL from the back end; returns the station's answer (which must come at once)."""
        call = self.csms.session.send_call(action, payload, self.now)
        frame = wire(call, self.version)
        assert self.up, "the link is down"
        self.machine.receive(frame, self.now)
        self.settle()
        answer = self.csms.answers.get(call.message_id)
        assert answer is not None, f"no answer to {action}"
        return answer

    # -- looking at what was sent ----------------------------------------------------------------

    def calls(self, *actions: str) -> list[Call]:
        """Every CALL the station sent (repeats too), of ``actions`` (all if none)."""
        return [
            f for _, f in self.sent if isinstance(f, Call) and (not actions or f.action in actions)
        ]

    def timed_calls(self, *actions: str) -> list[tuple[float, Call]]:
        return [
            (t, f)
            for t, f in self.sent
            if isinstance(f, Call) and (not actions or f.action in actions)
        ]


# -- reading transaction messages ----------------------------------------------------------------

TX_ACTIONS = ("TransactionEvent", "StartTransaction", "MeterValues", "StopTransaction")


def register_of(call: Call) -> float | None:
    """The energy register a transaction message carries (Wh), if any."""
    p = call.payload
    if call.action == "StartTransaction":
        return float(p["meterStart"])
    if call.action == "StopTransaction":
        return float(p["meterStop"])
    for mv in p.get("meterValue", []):
        for sv in mv["sampledValue"]:
            if (
                sv.get("measurand", "Energy.Active.Import.Register")
                == "Energy.Active.Import.Register"
            ):
                return float(sv["value"])
    return None


def event_type(call: Call) -> str:
    """Started / Updated / Ended for either version's transaction messages."""
    if call.action == "TransactionEvent":
        return str(call.payload["eventType"])
    return {"StartTransaction": "Started", "StopTransaction": "Ended"}.get(call.action, "Updated")


def tx_messages(calls: Sequence[Call]) -> list[Call]:
    """The transaction-related messages among ``calls`` (1.6 MeterValues of a transaction)."""
    return [
        c
        for c in calls
        if c.action in TX_ACTIONS and (c.action != "MeterValues" or "transactionId" in c.payload)
    ]


def stop_reason(call: Call) -> str | None:
    if call.action == "StopTransaction":
        reason = call.payload.get("reason")
    else:
        reason = call.payload.get("transactionInfo", {}).get("stoppedReason")
    return None if reason is None else str(reason)
