"""The rules and values behind the charger's durable outbox (``outbox.py``): what a message
is, when to retry, how fast to replay, how to spell a short transaction id, what an entry holds.
No clock (``now`` is passed in); the only storage code is the stored form at the end (row
codec, the seqNo counter), which runs inside ``Outbox``'s transactions (the schema is in
``outbox_store.py``).

Spec rules implemented here (facts from OCPP 1.6 and 2.0.1 part 2; the sentences are ours):

- *Which messages are transaction-related* (1.6, "Transaction-Related Messages" in the core
  profile's introduction: StartTransaction, StopTransaction and MeterValues that belong to a
  transaction; 2.x: every TransactionEvent). They are the ones the station must deliver in
  order, even across restarts.
- *Retries* (1.6: ``TransactionMessageAttempts`` / ``TransactionMessageRetryInterval``; 2.0.1
  E13: ``OCPPCommCtrlr.MessageAttempts[TransactionEvent]`` /
  ``MessageAttemptInterval[TransactionEvent]``): when the back end did not process the message
  (a CALLERROR, or no answer on a working link), wait the interval multiplied by the number of
  transmissions made so far, then send it again; once the configured number of transmissions
  has failed, give the message up and go on with the next one. The schedule is linear, not
  exponential. A transmission lost because the link was down is not an attempt.
- *Pacing the replay*: no spec number; a token bucket whose rate and burst the runtime chooses,
  so hours of queued meter values do not arrive as one burst on a link billed by the byte.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

__all__ = [
    "START",
    "UPDATE",
    "END",
    "OTHER",
    "Kind",
    "classify",
    "payload_transaction_id",
    "RetryPolicy",
    "ReplayPace",
    "to_base36",
    "is_sample",
    "Entry",
    "Stored",
    "OutboxStats",
]

Kind = Literal["start", "update", "end", "other"]
#: first message of a transaction (2.x TransactionEvent Started, 1.6 StartTransaction)
START: Final = "start"
#: an intermediate one (2.x Updated, 1.6 MeterValues with a transaction): the only kind that a
#: full queue may drop (2.0.1 E04)
UPDATE: Final = "update"
#: the last one (2.x Ended, 1.6 StopTransaction): never dropped, it carries the final register
END: Final = "end"
#: not transaction-related (queued only with ``QueueAllMessages``)
OTHER: Final = "other"

_EVENT_KINDS: Final[dict[str, Kind]] = {"Started": START, "Updated": UPDATE, "Ended": END}


def classify(action: str, payload: dict[str, Any], transaction_id: str | None) -> Kind:
    """The kind of ``action`` for the outbox; ``ValueError`` for a TransactionEvent without a
    known ``eventType``."""
    if action == "TransactionEvent":
        try:
            return _EVENT_KINDS[payload["eventType"]]
        except (KeyError, TypeError):
            event = payload.get("eventType")
            raise ValueError(f"TransactionEvent with eventType {event!r}") from None
    if action == "StartTransaction":
        return START
    if action == "StopTransaction":
        return END
    if action == "MeterValues" and (transaction_id is not None or "transactionId" in payload):
        return UPDATE  # 1.6: meter values of a transaction are transaction-related
    return OTHER


#: the triggers of a 2.x Updated that brings only meter readings (TriggerReasonEnumType)
_SAMPLE_TRIGGERS: Final = frozenset({"MeterValuePeriodic", "MeterValueClock"})


def is_sample(action: str, payload: dict[str, Any]) -> bool:
    """Whether an intermediate message only samples the meter: 1.6 MeterValues, a 2.x Updated
    of a meter trigger without an idToken. A full queue drops these before the Updated that
    tells something else (the token of a transaction begun at the cable, a charging state)."""
    if action != "TransactionEvent":
        return True
    return payload.get("triggerReason") in _SAMPLE_TRIGGERS and "idToken" not in payload


def payload_transaction_id(action: str, payload: dict[str, Any]) -> str | None:
    """The transaction id a 2.x TransactionEvent names (``transactionInfo.transactionId``)."""
    if action != "TransactionEvent":
        return None
    info = payload.get("transactionInfo")
    value = info.get("transactionId") if isinstance(info, dict) else None
    return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts``: transmissions in all, the first included (1 = never retried);
    ``interval``: seconds, multiplied by the transmissions made so far before the next one."""

    attempts: int = 3
    interval: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.interval < 0:
            raise ValueError("attempts must be >= 1 and interval >= 0")

    def delay(self, attempts_made: int) -> float:
        """Seconds to wait after the ``attempts_made``-th failed transmission (1.6 and 2.0.1
        E13: interval x number of preceding transmissions)."""
        return self.interval * attempts_made

    def exhausted(self, attempts_made: int) -> bool:
        """Whether the message is given up after ``attempts_made`` failed transmissions."""
        return attempts_made >= self.attempts


@dataclass(slots=True)
class ReplayPace:
    """A token bucket for the replay after a long offline period: at most ``burst`` messages at
    once, then ``per_minute`` a minute. Sans-clock: every call passes ``now`` (seconds, any
    monotonic origin); the bucket starts full."""

    per_minute: float
    burst: int = 10
    _tokens: float = field(default=-1.0, repr=False)
    _last: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.per_minute <= 0 or self.burst < 1:
            raise ValueError("per_minute must be > 0 and burst >= 1")

    def _refill(self, now: float) -> None:
        if self._tokens < 0:  # first use: full
            self._tokens, self._last = float(self.burst), now
            return
        elapsed = max(0.0, now - self._last)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.per_minute / 60.0)
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one: ``True`` means the next message may go now."""
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until :meth:`take` will succeed (0 if it would now)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return 0.0 if missing <= 0 else missing * 60.0 / self.per_minute


_DIGITS: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


def to_base36(value: int) -> str:
    """``value`` (>= 0) in base 36, lower case: the station's short transaction ids ("1", "a",
    "10", ...), at most 6 characters for the first two billion transactions."""
    if value < 0:
        raise ValueError("negative")
    out = []
    while True:
        value, digit = divmod(value, 36)
        out.append(_DIGITS[digit])
        if not value:
            return "".join(reversed(out))


@dataclass(frozen=True, slots=True)
class Entry:
    """One queued message. ``payload`` is the JSON value to send (with its ``seqNo`` in 2.x)."""

    position: int  #: queue order
    message_id: str
    action: str
    payload: dict[str, Any]
    kind: Kind
    transaction_id: str | None
    attempts: int  #: failed transmissions so far (link losses not counted)
    next_attempt: float  #: not due before this time
    created: float
    discarded: bool = False  #: set on what ``Outbox.failed`` returns when it gave up


class Stored(NamedTuple):
    """What ``Outbox.put`` did: the stored entry, and what was dropped to make room."""

    entry: Entry
    dropped: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    dropped: int  #: over the station's life (persisted)
    discarded: int  #: given up after the last attempt, over the station's life
    durable_commits: int  #: since open, synchronous=FULL: one WAL fsync each
    lazy_commits: int  #: since open, synchronous=NORMAL: no fsync
    checkpoints: int  #: since open, that moved pages

    @property
    def fsyncs(self) -> int:
        """Estimated fsyncs since open (measured on Linux): one per durable commit, three per
        checkpoint (the WAL before, the database after, the WAL header when it is reused)."""
        return self.durable_commits + 3 * self.checkpoints


# -- the stored form (outbox.py) -------------------------------------------------------------

COLUMNS = "pos, message_id, action, kind, transaction_id, payload, attempts, next_attempt, created"


def dumps_payload(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def entry_from_row(row: tuple[Any, ...]) -> Entry:
    pos, message_id, action, kind, transaction_id, payload, attempts, next_attempt, created = row
    body = json.loads(payload)
    return Entry(
        pos, message_id, action, body, kind, transaction_id, attempts, next_attempt, created
    )


def bump_seq_no(db: sqlite3.Connection, station: str, transaction_id: str, kind: Kind) -> int:
    """The next 2.x seqNo of ``transaction_id``, inside ``Outbox.put``'s transaction: 0 for the
    transaction's first message, +1 for each next one (TransactionEventRequest.seqNo); the
    counter is forgotten after Ended. A second Started is a ``ValueError`` (ids are unique)."""
    key = (station, transaction_id)
    row = db.execute(
        "SELECT next FROM seq_no WHERE station = ? AND transaction_id = ?", key
    ).fetchone()
    if row is not None and kind == START:
        raise ValueError(f"transaction {transaction_id!r} was started before")
    seq_no = int(row[0]) if row else 0
    if kind == END:
        db.execute("DELETE FROM seq_no WHERE station = ? AND transaction_id = ?", key)
    else:
        db.execute(
            "INSERT INTO seq_no (station, transaction_id, next) VALUES (?, ?, ?)"
            " ON CONFLICT(station, transaction_id) DO UPDATE SET next = excluded.next",
            (*key, seq_no + 1),
        )
    return seq_no
