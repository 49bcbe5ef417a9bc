"""Our CALLs to the peer: one outstanding, the rest queued behind it, each with a deadline.

OCPP-J part 4 section 4.1.1 ("Synchronicity"): a side SHALL NOT send a CALL until every CALL it
sent before has been answered (CALLRESULT or CALLERROR with its id) or has timed out; the timeout
counts from sending and is the implementation's choice. So:

- ``add`` queues a CALL and hands it back for transmission when the slot is free;
- the outstanding CALL ends with its answer (``answered``) or ``call_timeout`` seconds after it
  was sent (``expire``); then the next queued CALL is due (``take_next``);
- a queued CALL also has the caller's patience (``expires``): one that is still queued then is
  abandoned by ``expire`` and never sent (nobody waits for its answer any more).

The queue is plain data that round-trips through JSON (``to_json`` / ``from_json``), so a bridge
with several workers can keep one queue per station in a shared store and apply these same rules
inside a database transaction. No I/O, no clock: ``now`` is passed in (seconds; the bridge uses
wall-clock time because several processes compare it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._frames import Call

__all__ = ["Pending", "OutboundQueue"]


@dataclass(slots=True)
class Pending:
    """One CALL of ours: queued (``sent_at is None``) or outstanding."""

    call: Call
    #: abandoned at this time if still queued
    expires: float
    sent_at: float | None = None
    #: the adapter's own JSON-able data about who waits for the answer (opaque here)
    tag: Any = None

    def to_json(self) -> list[Any]:
        c = self.call
        return [c.message_id, c.action, c.payload, self.expires, self.sent_at, self.tag]

    @classmethod
    def from_json(cls, value: list[Any]) -> Pending:
        message_id, action, payload, expires, sent_at, tag = value
        return cls(Call(message_id, action, payload), expires, sent_at, tag)


class OutboundQueue:
    """The CALLs we send one side of one OCPP-J connection, in order, one at a time."""

    __slots__ = ("call_timeout", "items", "next_id", "_id_factory")

    def __init__(
        self,
        call_timeout: float = 30.0,
        *,
        first_id: int = 1,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.call_timeout = call_timeout
        #: items[0] is the outstanding CALL when its ``sent_at`` is set
        self.items: list[Pending] = []
        self.next_id = first_id
        self._id_factory = id_factory

    # -- ids ----------------------------------------------------------------------------------

    def new_message_id(self) -> str:
        """A message id unique on this connection (OCPP-J 4.1.4): short decimal strings by
        default ("1", "2", ...), which keep compact frames small."""
        if self._id_factory is not None:
            return self._id_factory()
        message_id = str(self.next_id)
        self.next_id += 1
        return message_id

    # -- state --------------------------------------------------------------------------------

    @property
    def outstanding(self) -> Pending | None:
        if self.items and self.items[0].sent_at is not None:
            return self.items[0]
        return None

    def deadline(self) -> float | None:
        """The next time ``expire`` has something to do, or ``None``."""
        times = [
            p.sent_at + self.call_timeout if p.sent_at is not None else p.expires
            for p in self.items
        ]
        return min(times) if times else None

    def can_send(self, now: float) -> bool:
        """Whether a CALL may go out now: none outstanding, or the outstanding one timed out."""
        out = self.outstanding
        return out is None or now - (out.sent_at or 0.0) >= self.call_timeout

    def __len__(self) -> int:
        return len(self.items)

    # -- transitions --------------------------------------------------------------------------

    def add(
        self, call: Call, now: float, *, patience: float | None = None, tag: Any = None
    ) -> Call | None:
        """Queue ``call``; return it if it should be transmitted right away (slot free and
        nothing queued before it). ``patience`` (default: the call timeout) is how long it may
        wait in the queue before it is abandoned unsent."""
        wait = self.call_timeout if patience is None else patience
        self.items.append(Pending(call, now + wait, None, tag))
        if len(self.items) == 1:
            return self.take_next(now)
        return None

    def answered(self, message_id: str) -> Pending | None:
        """The peer answered ``message_id``: the outstanding CALL if the id is its (removed from
        the queue), else ``None`` (a late answer to a timed-out CALL, or a stray one)."""
        out = self.outstanding
        if out is None or out.call.message_id != message_id:
            return None
        del self.items[0]
        return out

    def withdraw(self, message_id: str) -> Pending | None:
        """Take a queued CALL back before it is sent (its caller stopped waiting); one already
        sent stays: it is outstanding until answered or timed out (4.1.1)."""
        for i, p in enumerate(self.items):
            if p.call.message_id == message_id and p.sent_at is None:
                del self.items[i]
                return p
        return None

    def expire(self, now: float) -> list[Pending]:
        """Abandon the outstanding CALL if it timed out and queued CALLs past their patience;
        return them (oldest first)."""
        gone: list[Pending] = []
        keep: list[Pending] = []
        for p in self.items:
            if p.sent_at is not None:
                dead = now - p.sent_at >= self.call_timeout
            else:
                dead = now >= p.expires
            (gone if dead else keep).append(p)
        if gone:
            self.items = keep
        return gone

    def take_next(self, now: float) -> Call | None:
        """Mark the next queued CALL sent and return it, if the slot is free; else ``None``.

        Queued CALLs past their patience are never returned: call :meth:`expire` to collect
        them (an expired head is skipped here, so the slot is not blocked by it)."""
        if not self.items or self.outstanding is not None:
            return None
        for i, p in enumerate(self.items):
            if now < p.expires:
                if i:  # move the first live CALL to the head; expire() reports the rest
                    del self.items[i]
                    self.items.insert(0, p)
                p.sent_at = now
                return p.call
        return None

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any] | None:
        """The queue as a JSON value; ``None`` when it is empty and fresh."""
        if not self.items and self.next_id == 1:
            return None
        return {"next_id": self.next_id, "items": [p.to_json() for p in self.items]}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None, call_timeout: float = 30.0) -> OutboundQueue:
        q = cls(call_timeout)
        if value:
            q.next_id = int(value.get("next_id", 1))
            q.items = [Pending.from_json(v) for v in value.get("items", ())]
        return q
