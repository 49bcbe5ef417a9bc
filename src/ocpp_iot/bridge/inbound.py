"""Stations' CALLs and SENDs: claim, answer, store, send, acknowledge — in arrival order.

Every frame a station publishes on ``up`` becomes one work item that goes through the same
steps whatever runs the handler:

1. **claim**: the CALLs of one socket read (more under load) are looked up in the store in one
   call (:class:`~ocpp_iot.bridge.store.AsyncStore`: in the loop when the store can answer
   without waiting, else on its database thread): answered before (a repeat after a restart,
   or answered by another worker), in hand elsewhere, or new. The
   result primes the station's :class:`~ocpp_iot.rpc.Session`, whose answer cache then decides
   (rule: a repeated CALL gets the first answer, the handler runs once);
2. **answer**: the backend answers a new CALL, in the loop or awaited (``backend.runs_now``);
3. **finish** (:mod:`.answers`): answers are stored with the handlers' deferred writes, one
   transaction for all that are ready, and only then sent and acknowledged to the broker, in
   arrival order per station (a CALLERROR for an unreadable frame waits its turn like any
   answer).

Nothing is acknowledged before it is handled: when the store fails, the items are kept (not
acknowledged) and retried with back-off; if the bridge dies meanwhile, the broker delivers them
again (persistent session) and the store turns repeats into resends of the stored answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..rpc import (
    IN_HAND,
    Call,
    CallError,
    CallReceived,
    DuplicateCall,
    InHand,
    MemoryAnswerCache,
    Send,
    Session,
)
from ..rpc import Answer as CachedAnswer
from ..transports.mqtt import Message
from .answers import Answers, Backoff
from .backend import Outcome
from .store import CallKey, Claim, ClaimResult, answered_now, store_future

if TYPE_CHECKING:
    from .service import Bridge

__all__ = ["Inbound", "StationCache"]

log = logging.getLogger("ocpp_iot.bridge")

_RETRY_MAX = 30.0


class StationCache(MemoryAnswerCache):
    """One station's answer cache for its :class:`Session`: the last few answers in memory,
    with the fingerprints of the CALLs they answer (:data:`~.store.CallKey`), and what the
    store said about the CALLs of the batch in hand (primed before the session sees them)."""

    __slots__ = ("primed", "_fingerprints")

    def __init__(self, remember: int = 8) -> None:
        super().__init__(remember)
        self.primed: dict[str, CachedAnswer | InHand | None] = {}
        self._fingerprints: dict[str, int] = {}

    def admit(self, message_id: str, fingerprint: int | None) -> None:
        """A CALL ``message_id`` arrived with ``fingerprint`` (before the store is asked, and
        again right before the session sees it): an answer remembered for another CALL under
        that id (a station whose ids started over), or one whose fingerprint is no longer
        kept here, is forgotten, so that the store decides or the session takes the CALL for
        new. While a copy is in hand nothing changes: this one is admitted again once that
        one is answered, then as what it is."""
        if fingerprint is None:
            return
        value = self._entries.get(message_id)
        if value is IN_HAND:
            return
        known = self._fingerprints.pop(message_id, None)
        if value is not None and known != fingerprint:
            self.discard(message_id)
        self._fingerprints[message_id] = fingerprint  # the newest last
        if len(self._fingerprints) > 4 * self.limit:  # the oldest goes (its answer is gone)
            del self._fingerprints[next(iter(self._fingerprints))]

    def get(self, message_id: str) -> CachedAnswer | InHand | None:
        value = self._entries.get(message_id)
        if value is None and self.primed:
            value = self.primed.pop(message_id, None)
        return value

    def known(self, message_id: str) -> CachedAnswer | InHand | None:
        """What this worker remembers of ``message_id`` itself (not what the store said)."""
        return self._entries.get(message_id)


@dataclass(slots=True)
class Item:
    """One frame from a station on its way through the bridge."""

    station: str
    msg: Message
    version: str
    frame: Call | Send | None
    as_json: bool = False
    #: the answer decided before any handler (a CALLERROR for an unreadable frame)
    reject: CallError | None = None
    claim: ClaimResult | None = None
    #: of the CALL's bytes (:data:`~.store.CallKey`): a repeat has the same
    fingerprint: int | None = None


@dataclass(slots=True)
class _Lookup:
    """A store lookup in progress: the items whose CALLs it covers, in order."""

    owners: list[Item]
    future: asyncio.Future[list[ClaimResult]]


@dataclass
class _StationWork:
    queue: deque[Item] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Inbound:
    """The inbound half of one bridge worker (see the module docstring)."""

    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.config = bridge.config
        self.store = bridge.store
        self.backend = bridge.backend
        self.sessions: dict[str, Session] = {}
        self._incoming: list[Item] = []
        self._take_handle: asyncio.Handle | None = None  # _take is due
        self._consumer: asyncio.Task[None] | None = None  # a claim awaited: later items wait
        self._busy: dict[str, _StationWork] = {}
        self._claim_retry = Backoff(self.config.store_retry, self.config.store_retry)
        self.answers = Answers(self)

    # -- entry --------------------------------------------------------------------------------

    def session(self, station: str, version: str) -> Session:
        s = self.sessions.get(station)
        if s is None or s.version != version:
            s = self.sessions[station] = Session(
                version, call_timeout=self.config.call_timeout, cache=StationCache()
            )
        return s

    def submit(self, item: Item) -> None:
        """Take a CALL, a SEND or a rejected frame (from the loop thread). The frames of one
        socket read are claimed together, right after it (a callback, not a task: when the
        store answers in the loop nothing is awaited)."""
        self._incoming.append(item)
        if self._take_handle is None and self._consumer is None:
            self._take_handle = asyncio.get_running_loop().call_soon(self._take)

    async def drain(self, timeout: float) -> None:
        """Finish what is in hand (shutdown): claimed items, station queues, pending stores."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (
            self._incoming or self._consumer or self._busy or not self.answers.idle
        ):
            await asyncio.sleep(0.01)

    # -- 1. claim -----------------------------------------------------------------------------

    def _take(self) -> None:
        """Claim what came in: in this callback while the store answers at once, else (the
        database thread answers, or the store failed) in :meth:`_consume`, which later items
        wait for."""
        self._take_handle = None
        while self._incoming and self._consumer is None:
            items, self._incoming = self._incoming, []
            lookup = self._look_up(items)
            if lookup is not None and not answered_now(lookup.future):
                self._consumer = asyncio.ensure_future(self._consume(items, lookup))
                return
            self._claimed(items, lookup)

    async def _consume(self, items: list[Item], lookup: _Lookup) -> None:
        try:
            while True:
                try:
                    await lookup.future
                    break
                except Exception as exc:
                    wait = self._claim_retry.next()
                    log.error(
                        "could not look up %d CALLs in the store (%s); not acknowledged, "
                        "retrying in %.1f s",
                        len(lookup.owners),
                        exc,
                        wait,
                    )
                    await asyncio.sleep(wait)
                    again = self._look_up(items)
                    assert again is not None  # the same items need the same keys
                    lookup = again
            if self._claim_retry.failures:
                log.warning("the store answers again: claims resumed")
                self._claim_retry.reset()
            self._claimed(items, lookup)
        finally:
            self._consumer = None
            if self._incoming and self._take_handle is None:  # arrived meanwhile
                self._take_handle = asyncio.get_running_loop().call_soon(self._take)

    def _look_up(self, items: list[Item]) -> _Lookup | None:
        """Ask the store about the items' CALLs not answered here lately (None: no such CALL)."""
        keys: list[CallKey] = []
        owners: list[Item] = []
        for item in items:
            frame = item.frame
            if isinstance(frame, Call) and item.reject is None:
                cache = self.session(item.station, item.version).cache
                assert isinstance(cache, StationCache)
                cache.admit(frame.message_id, item.fingerprint)
                if cache.known(frame.message_id) is None:
                    keys.append((item.station, frame.message_id, item.fingerprint))
                    owners.append(item)
        if not keys:
            return None
        now, mark = time.time(), self.config.shared
        future = store_future(
            lambda: self.store.claim_calls(keys, self.bridge.owner, now, mark=mark)
        )
        return _Lookup(owners, future)

    def _claimed(self, items: list[Item], lookup: _Lookup | None) -> None:
        """Prime the sessions with what the store said, then start the items in order."""
        if lookup is not None:
            for item, claim in zip(lookup.owners, lookup.future.result(), strict=True):
                assert isinstance(item.frame, Call)
                item.claim = claim
                cache = self.sessions[item.station].cache
                assert isinstance(cache, StationCache)
                if claim.claim is Claim.DONE:
                    cache.primed[item.frame.message_id] = claim.response
                elif claim.claim is Claim.BUSY:
                    cache.primed[item.frame.message_id] = IN_HAND
        for item in items:
            self._start(item)

    # -- 2. answer ----------------------------------------------------------------------------

    def _start(self, item: Item) -> None:
        work = self._busy.get(item.station)
        if work is not None:  # the station's earlier frames first
            work.queue.append(item)
            return
        try:
            needs_await = self._step(item, now_only=True)
        except Exception:
            self._failed(item)
            return
        if needs_await:
            work = self._busy[item.station] = _StationWork(deque([item]))
            work.task = asyncio.ensure_future(self._station(item.station, work))

    def _step(self, item: Item, *, now_only: bool) -> bool:
        """Do what can be done for ``item`` without awaiting; True if it needs an await."""
        frame = item.frame
        if item.reject is not None or frame is None:
            self.answers.queue_error(item, item.reject, None)
            return False
        if isinstance(frame, Send):
            if now_only and not self.backend.runs_now(item.version, frame.action):
                return True
            outcome = self.backend.answer_now(item.station, item.version, frame, {})
            self._send_done(item, outcome)
            return False
        session = self.session(item.station, item.version)
        cache = session.cache
        assert isinstance(cache, StationCache)
        cache.admit(frame.message_id, item.fingerprint)  # a copy in hand before may be answered
        event = session.receive(frame, time.time())
        if isinstance(event, DuplicateCall):
            self.bridge.stats["duplicates"] += 1
            if event.response is None:
                log.info("repeated CALL %s from %s is in hand", frame.message_id, item.station)
                # in hand at another worker (a repeat of a CALL in hand here waits behind it in
                # the station's queue, and is answered from the cache once it is done)
                self.bridge.ack(item.msg)
            else:
                log.info(
                    "repeated CALL %s from %s: the stored answer", frame.message_id, item.station
                )
                data = event.response if isinstance(event.response, bytes) else None
                self.answers.queue_raw(item, data, event.response)
            return False
        assert isinstance(event, CallReceived)
        if now_only and not self.backend.runs_now(item.version, frame.action):
            return True  # the session marked it in hand: repeats wait for this answer
        state, before = self._state_of(item)
        outcome = self.backend.answer_now(item.station, item.version, frame, state)
        self.answers.answered(item, outcome, state, before)
        return False

    async def _station(self, station: str, work: _StationWork) -> None:
        """Handle a station's frames one after another while one of them needs an await."""
        try:
            first = True
            while work.queue:
                item = work.queue.popleft()
                try:
                    if first or self._step(item, now_only=True):
                        await self._await_item(item)
                except Exception:
                    self._failed(item)
                first = False
        finally:
            del self._busy[station]

    async def _await_item(self, item: Item) -> None:
        frame = item.frame
        assert frame is not None
        if isinstance(frame, Send):
            self._send_done(item, await self.backend.answer(item.station, item.version, frame, {}))
            return
        state, before = self._state_of(item)
        outcome = await self.backend.answer(item.station, item.version, frame, state)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.answers.answered(item, outcome, state, before, done)
        await done  # the station's next frame waits until this answer is stored and sent

    def _state_of(self, item: Item) -> tuple[dict[str, Any], str]:
        self.bridge.stats["calls"] += 1
        state = self.answers.state_of(item.station)
        if state is None:
            state = item.claim.state if item.claim else {}
        return state, json.dumps(state, sort_keys=True) if state else ""

    def _send_done(self, item: Item, outcome: Outcome) -> None:
        if outcome.answer is not None:
            assert item.frame is not None
            log.warning(
                "SEND %s from %s failed: %s", item.frame.action, item.station, outcome.answer
            )
        self.bridge.ack(item.msg)

    def _failed(self, item: Item) -> None:
        """Our own code failed on ``item``: log, leave it unacknowledged (redelivered on the
        next connection) and forget it was in hand, so the redelivery is handled."""
        frame = item.frame
        mid = frame.message_id if frame is not None else "?"
        log.exception("failed to handle %s from %s; left unacknowledged", mid, item.station)
        self.forget(item.station, mid)

    def forget(self, station: str, message_id: str) -> None:
        """Forget what the station's session remembers of ``message_id`` (so that a copy
        delivered again is handled, not taken for a repeat)."""
        session = self.sessions.get(station)
        if session is not None and isinstance(session.cache, StationCache):
            session.cache.discard(message_id)
