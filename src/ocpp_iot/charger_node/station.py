"""The station machine: OCPP's side of one charging station, sans-IO.

It joins the OCPP-J session rules (:class:`~ocpp_iot.rpc.Session`: one outstanding CALL, ids,
timeouts, repeats), the durable :class:`~.outbox.Outbox`, the :class:`~.device_model.DeviceModel`
and the hardware (:class:`~.evse.Evse`). Frames and time go in, frames to transmit come out:

    machine.start(now)                  # once
    machine.link_up(now) / link_down(now)
    machine.receive(frame, now)         # a decoded frame from the back end
    machine.tick(now)                   # hardware events and timers; at next_wakeup() at latest
    for frame in machine.take_frames(): ...transmit...

``now`` is seconds since the epoch on the node's clock (the outbox keeps retry times across
restarts). Timestamps in messages are on the back end's clock: ``now`` plus the offset learnt
from ``currentTime`` (BootNotification and Heartbeat answers).

Rules (OCPP 2.0.1 part 2 unless said; 1.6 section 4 has the same ones):

- B01-B03, G02: registration and heartbeats as :mod:`.registration` says.
- G01, B04: connector statuses as :mod:`.connector_status` says (all after Accepted, and after
  an offline period longer than ``OfflineThreshold``; else the changes).
- E04 / E13 (1.6: transaction-related messages): transaction messages come from the outbox,
  in order, one at a time, after the non-queued CALLs in hand, as :mod:`.delivery` says; with
  QueueAllMessages (2.x) the station's other messages made while offline wait there too.
- A new OCPP-J connection on every link-up (a fresh :class:`Session`), but the answer cache is
  kept, so a CALL the broker redelivers after the reconnect is answered again, not run twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..rpc import (
    Call,
    CallAnswered,
    CallError,
    CallReceived,
    CallResult,
    CallTimedOut,
    DuplicateCall,
    Frame,
    MemoryAnswerCache,
    SendReceived,
    Session,
)
from .aligned import AlignedSchedule
from .connector_status import StatusReporter
from .delivery import Delivery
from .device_model import DeviceModel
from .device_model_access import MESSAGE_TIMEOUT
from .device_model_values import Change
from .evse import Evse, ScheduledEvse
from .messages import Messages
from .messages_v2 import MessagesV2
from .messages_v16 import MessagesV16
from .outbox import Outbox, ReplayPace
from .outbox_policy import START, UPDATE
from .registration import BootInfo, Registration, RegistrationState
from .transactions import TX_KEY, Transactions

__all__ = ["StationMachine", "BootInfo"]

if TYPE_CHECKING:
    from ..behaviours import Behaviour

log = logging.getLogger(__name__)

_AUTH_KEY = "auth:"  #: kept in the outbox: the Authorization Cache, token -> status
#: how long a non-queued CALL (Authorize, StatusNotification ...) may wait for the slot
_PATIENCE = 120.0
#: what QueueAllMessages does not queue while offline (see StationMachine._queue_offline)
_NOT_QUEUED = frozenset({"BootNotification", "Heartbeat", "Authorize"})


def _requested(tag: Any) -> bool:
    """Whether a CALL answers the back end's request (a TriggerMessage, GetBaseReport)."""
    return isinstance(tag, tuple) and tag[:1] in (("trigger",), ("report",))


class StationMachine:
    """One charging station's OCPP logic (see the module docstring)."""

    def __init__(
        self,
        station_id: str,
        version: str,
        evse: Evse,
        model: DeviceModel,
        outbox: Outbox,
        *,
        boot: BootInfo | None = None,
        charger: Callable[[StationMachine], Behaviour] | None = None,
        pace: ReplayPace | None = None,
    ) -> None:
        self.station_id = station_id
        self.version = version
        self.evse = evse
        self.model = model
        self.outbox = outbox
        self.boot_info = boot or BootInfo()
        self.messages: Messages = MessagesV16() if version == "1.6" else MessagesV2(version)
        self.tx = Transactions(evse, model, self.messages, self)
        self.statuses = StatusReporter(self.tx, model, self.messages, self.call)
        self.aligned = AlignedSchedule()
        self.aligned_ended = AlignedSchedule()  # the Ended's own clock-aligned samples
        #: whether a CALL fits the link's largest frame in its encoding, set by the runtime
        #: (``None``: no limit); the machine never encodes
        self.frame_fits: Callable[[str, dict[str, Any]], bool] | None = None
        self.pace = pace or ReplayPace(per_minute=60.0, burst=20)
        self.delivery = Delivery(outbox, model, self.messages, self.pace)
        self._charger_factory = charger
        self._charger: Behaviour | None = None
        self.reg = Registration(station_id, self.messages, self.boot_info)
        self.last_contact: float | None = None  #: when the back end last answered
        self.restart_due: str | None = None  #: a reset to carry out now (the runtime restarts)
        self.reset_on_idle: str | None = None
        self.stopping = False
        self.now = 0.0  #: the ``now`` of the call being handled (for the charger behaviour)
        self._scheduled = isinstance(evse, ScheduledEvse)
        self._cache = MemoryAnswerCache(64)
        self._session: Session | None = None
        self._out: list[Frame] = []
        self._after: list[Callable[[], None]] = []
        self._offline_since: float | None = None
        model.add_listener(self._model_changed)

    # -- the runtime's interface --------------------------------------------------------------

    def start(self, now: float, boot_reason: str = "PowerUp") -> None:
        """Start up: end what a previous run left in progress, and get ready to boot."""
        self.now = now
        self.reg.reason = boot_reason
        self._offline_since = now
        self.delivery.start()
        self.tx.start_up(self.outbox.kept(TX_KEY), now)
        saved = self.outbox.kept(_AUTH_KEY).items()
        self.tx.auth.load({k[len(_AUTH_KEY) :]: v["s"] for k, v in saved})

    def link_up(self, now: float) -> None:
        self.now = now
        if self._session is not None:
            # a new connection without a link-down first (a reconnect the link reported only
            # as up): what was in flight on the old one is lost, as on a link-down
            self.link_down(now)
        cfg_timeout = float(self.model.message_timeout)
        self._session = Session(
            self.version,
            call_timeout=cfg_timeout,
            id_factory=self.outbox.next_message_id,
            cache=self._cache,
        )
        offline_for = now - self._offline_since if self._offline_since is not None else 0.0
        self._offline_since = None
        log.info("%s: link up (offline %.0f s)", self.station_id, offline_for)
        if self.registration == "accepted":
            self._report_status(now, everything=offline_for > self.model.offline_threshold)
            self.tx.reachable(now)
        self._pump(now)

    def _model_changed(self, change: Change) -> None:
        """A MessageTimeout the back end sets times the CALLs at once (B05: Accepted means
        applied), not from the next connection."""
        if change.path == MESSAGE_TIMEOUT and self._session is not None:
            self._session.call_timeout = float(self.model.message_timeout)

    def link_down(self, now: float) -> None:
        self.now = now
        session, self._session = self._session, None
        if self._offline_since is None:
            self._offline_since = now
        log.info("%s: link down", self.station_id)
        if session is None:
            return
        for pending in session.outbound.items:
            self._abandoned(pending.tag, now, lost=True)
        self.delivery.link_lost()

    @property
    def online(self) -> bool:
        return self._session is not None

    @property
    def registration(self) -> RegistrationState:
        """none, pending, accepted or rejected (B01-B03)."""
        return self.reg.state

    @property
    def clock_offset(self) -> float:
        """The back end's clock minus ours, learnt from ``currentTime``."""
        return self.reg.clock_offset

    def receive(self, frame: Frame, now: float) -> None:
        self.now = now
        if self._session is None:
            return
        event = self._session.receive(frame, now)
        if isinstance(event, CallReceived):
            self._answer(event.call)
        elif isinstance(event, DuplicateCall):
            if isinstance(event.response, CallResult | CallError):
                self._out.append(event.response)
        elif isinstance(event, CallAnswered):
            self.last_contact = now
            self._answered(event.tag, event.response, now)
        elif isinstance(event, SendReceived):
            log.info("%s: SEND %s ignored", self.station_id, event.send.action)
        self._pump(now)

    def tick(self, now: float) -> None:
        self.now = now
        for ev in self.evse.events(now):
            self.tx.on_event(ev, now)
        self.tx.tick(now)
        if self.aligned.due(now, self.clock_offset, self.model.aligned_data_interval):
            self._sample_aligned(now)
        if self.aligned_ended.due(now, self.clock_offset, self.tx.ended_aligned_interval()):
            self.tx.clock_aligned_for_end(now)
        if self._session is not None:
            for timed_out in self._session.expire(now):
                self._abandoned(timed_out.tag, now, lost=False, timed_out=timed_out)
        if self.reset_on_idle is not None and not self.tx.active():
            self.restart_due, self.reset_on_idle = self.reset_on_idle, None
        self._report_status(now)
        self._pump(now)

    def take_frames(self) -> list[Frame]:
        out, self._out = self._out, []
        return out

    def next_wakeup(self, now: float) -> float:
        """When :meth:`tick` must run next at the latest."""
        times = [now + 1.0]  # hardware without a schedule is polled every second
        if self._scheduled:
            planned = self.evse.next_event_at()  # type: ignore[attr-defined]
            times = [planned] if planned is not None else [now + 3600.0]
        due = self.tx.next_due()
        if due is not None:
            times.append(due)
        for schedule, interval in (
            (self.aligned, self.model.aligned_data_interval),
            (self.aligned_ended, self.tx.ended_aligned_interval()),
        ):
            aligned = schedule.next_at(self.clock_offset, interval)
            if aligned is not None:
                times.append(aligned)
        session = self._session
        if session is not None:
            deadline = session.deadline()
            if deadline is not None:
                times.append(deadline)
            # what falls due while a CALL is outstanding waits for its answer or its timeout
            # (the deadline): OCPP-J 4.1.1 allows one at a time, so waking for it earlier spins
            if len(session.outbound) == 0:
                times.append(self._next_call_at(now))
        return max(now, min(times))

    def _sample_aligned(self, now: float) -> None:
        """J01: the clock-aligned sample; in a transaction it is a queued event, elsewhere a
        MeterValues that goes if online and accepted (or waits, with QueueAllMessages)."""
        t, measurands = self.csms_time(now), self.model.aligned_measurands
        for connector, reading in self.tx.clock_aligned(now):
            self.call(*self.messages.meter_values(
                connector, reading, t, measurands, None, "Sample.Clock"))  # fmt: skip

    def _next_call_at(self, now: float) -> float:
        """When :meth:`_next_call` has something to send (the CALL slot being free)."""
        if not self.reg.accepted:
            return self.reg.due
        at = self.reg.heartbeat_due(self.model.heartbeat_interval)
        head = self.delivery.next_at(now)
        return at if head is None else min(at, head)

    def stop_transactions(self, now: float) -> None:
        """End every transaction in progress and start no new one (``simulate --duration``,
        a clean shutdown): :attr:`settled` then comes once the last messages are answered."""
        self.stopping = True
        self.tx.accepting = False
        self.now = now
        self.tx.stop_all(now, "stop_authorized", "local")
        self._pump(now)

    @property
    def settled(self) -> bool:
        """Nothing in progress and nothing left to deliver."""
        return not self.tx.active() and self.outbox.depth() == 0

    def csms_time(self, now: float) -> float:
        return self.reg.csms_time(now)

    def status(self, now: float) -> dict[str, Any]:
        """A summary for ``charger-node status`` and the logs."""
        return {
            "station": self.station_id,
            "version": self.version,
            "online": self.online,
            "registration": self.registration,
            "last_contact": self.last_contact,
            "queue_depth": self.outbox.depth(),
            "transactions": [
                {
                    "id": t.view.local_id,
                    "connector": t.view.connector.number,
                    "started_at": t.started_at,
                    "energy_wh": round(t.last_wh - t.view.start_wh, 1),
                }
                for t in self.tx.active()
            ],  # fmt: skip
            "connectors": self.statuses.values(),
            #: a Reset OnIdle answered Scheduled: it comes once the last transaction has ended
            "reset_scheduled": self.reset_on_idle is not None,
        }

    # -- the Port that Transactions and the charger behaviour use -----------------------------

    def call(self, action: str, payload: dict[str, Any], tag: Any = None) -> bool:
        """Send a CALL that is not kept across restarts; dropped unless online and accepted
        (returns whether it was queued for sending). While Pending (B02) BootNotification
        goes, and what the back end asked for: a TriggerMessage's message, GetBaseReport's
        NotifyReport (tags ``("trigger", ...)`` and ``("report", ...)``)."""
        if self._session is None:
            return self._queue_offline(action, payload, tag)
        if self.registration != "accepted" and action != "BootNotification":
            if not (self.registration == "pending" and _requested(tag)):
                log.debug("%s: not registered, %s not sent", self.station_id, action)
                return False
        call = self._session.call(action, payload, self.now, patience=_PATIENCE, tag=tag)
        if call is not None:
            self._sent(call, self.now)
        return True

    def _queue_offline(self, action: str, payload: dict[str, Any], tag: Any) -> bool:
        """QueueAllMessages (2.0.1 OCPPCommCtrlr; E04.FR.02 keeps transaction messages in any
        case): while offline after being Accepted, a message of the station's own waits in the
        outbox, in order with the transaction messages (a StatusNotification with the time of
        the change), instead of being dropped. Not the ones whose moment has passed once the
        link is back (BootNotification, Heartbeat, Authorize: the driver waits now), nor what
        the back end asked for."""
        if (
            not self.outbox.queue_all_messages
            or not self.reg.accepted
            or action in _NOT_QUEUED
            or _requested(tag)
        ):
            log.debug("%s: offline, %s not sent", self.station_id, action)
            return False
        self.outbox.put(action, payload, now=self.now)
        log.debug("%s: offline, %s queued (QueueAllMessages)", self.station_id, action)
        return True

    def keep(self, key: str, value: dict[str, Any] | None) -> None:
        self.outbox.keep(key, value)

    def remember_token(self, id_token: str, status: str | None) -> None:
        """The Authorization Cache's entry for ``id_token``, kept in the outbox file (a lazy
        commit: a power cut may forget the last change; only changes are written)."""
        self.outbox.keep(_AUTH_KEY + id_token, None if status is None else {"s": status})

    def queue(
        self,
        action: str,
        payload: dict[str, Any],
        tx_id: str,
        now: float,
        keep: Mapping[str, dict[str, Any] | None],
    ) -> None:
        self.outbox.put(action, payload, transaction_id=tx_id, now=now, keep=keep)

    def new_transaction_id(self) -> str:
        return self.outbox.next_transaction_id()

    def fits(self, action: str, payload: dict[str, Any]) -> bool:
        return self.frame_fits is None or self.frame_fits(action, payload)

    def after_answer(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the answer to the CALL being handled is queued for sending
        (a TriggerMessage's message, a NotifyReport, a remote start follow the answer)."""
        self._after.append(action)

    # -- internals ----------------------------------------------------------------------------

    @property
    def charger(self) -> Behaviour:
        """The behaviour answering the back end's CALLs, made on the first one: the typed models
        (pydantic) are loaded only when the back end asks something, not to boot and charge."""
        if self._charger is None:
            factory = self._charger_factory
            if factory is None:
                from .charger import default_charger

                factory = default_charger
            self._charger = factory(self)
        return self._charger

    def _answer(self, call: Call) -> None:
        from ..behaviours import Context, dispatch

        assert self._session is not None
        ctx = Context(self.station_id, call.message_id, self.version)
        answer = dispatch(self.charger, call, ctx)
        assert isinstance(answer, CallResult | CallError)
        self._out.append(self._session.respond(answer))
        after, self._after = self._after, []
        if isinstance(answer, CallResult):  # a CALLERROR told the back end nothing happens
            for action in after:
                action()

    def _answered(self, tag: Any, response: CallResult | CallError, now: float) -> None:
        kind = tag[0] if isinstance(tag, tuple) else tag
        ok = isinstance(response, CallResult)
        payload = response.payload if isinstance(response, CallResult) else {}
        if kind == "outbox":
            entry = tag[1]
            if not ok:
                assert isinstance(response, CallError)
                self.delivery.failed(entry, now, response.error_code, new_id=True)
                return
            self.delivery.answered(entry, payload)
            # the token's status comes with the answer to whichever event carried the token:
            # the Started, or an Updated when the transaction began at the cable (E06.FR.04)
            if entry.kind in (START, UPDATE) and entry.transaction_id is not None:
                self.tx.tx_answered(entry.transaction_id, payload, now, first=entry.kind == START)
        elif kind == "boot":
            self._boot_answered(payload if ok else None, now)
        elif kind == "authorize":
            self.tx.authorize_answered(tag, payload if ok else None, now)
        elif kind in ("heartbeat", "trigger") and "currentTime" in payload:
            self.reg.set_clock(payload["currentTime"], now)

    def _abandoned(
        self, tag: Any, now: float, *, lost: bool, timed_out: CallTimedOut | None = None
    ) -> None:
        kind = tag[0] if isinstance(tag, tuple) else tag
        if kind == "outbox" and not lost and timed_out is not None and timed_out.sent:
            self.delivery.failed(tag[1], now, "no answer", new_id=False)
        elif kind == "boot":
            if lost:
                self.reg.boot_lost()
            else:
                self._boot_answered(None, now)
        elif kind == "authorize":
            self.tx.authorize_answered(tag, None, now)
        elif kind == "status":
            self.statuses.abandoned(tag)

    def _boot_answered(self, payload: dict[str, Any] | None, now: float) -> None:
        if payload is not None:
            self.last_contact = now
        if self.reg.answered(payload, now) != "accepted":
            return
        assert payload is not None
        interval = payload.get("interval")
        if isinstance(interval, int) and interval > 0:
            self.model.set_value("OCPPCommCtrlr.HeartbeatInterval", str(interval))
        self._report_status(now, everything=True)
        self.tx.reachable(now)

    def _report_status(self, now: float, *, everything: bool = False) -> None:
        # offline, a change is reported only to be queued (QueueAllMessages); else it waits
        online = self._session is not None
        if self.reg.accepted and (online or self.outbox.queue_all_messages):
            self.statuses.report(self.csms_time(now), everything=everything)

    def _pump(self, now: float) -> None:
        """Transmit what may go now: the CALL slot is the session's (OCPP-J 4.1.1). The CALLs in
        hand (status, authorization, reports) go first, then the outbox, then a heartbeat."""
        session = self._session
        if session is None or not session.can_call(now):
            return
        call = session.take_next(now)
        if call is None and len(session.outbound) == 0:
            call = self._next_call(session, now)
        if call is not None:
            self._sent(call, now)

    def _next_call(self, session: Session, now: float) -> Call | None:
        if not self.reg.accepted:
            if now < self.reg.due:
                return None
            self.reg.boot_sent(now, session.call_timeout)  # the answer or timeout sets it
            return session.call(*self.reg.boot(), now, tag="boot")
        taken = self.delivery.take(now)
        if taken is not None:
            entry, mid = taken
            return session.call(
                entry.action, entry.payload, now, message_id=mid, tag=("outbox", entry)
            )
        if now >= self.reg.heartbeat_due(self.model.heartbeat_interval):
            return session.call(*self.messages.heartbeat(), now, tag="heartbeat")
        return None

    def _sent(self, call: Call, now: float) -> None:
        self.reg.last_sent = now
        self._out.append(call)
