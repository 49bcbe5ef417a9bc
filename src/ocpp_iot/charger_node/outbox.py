"""The charger's durable outbox: transaction messages that must reach the back end, in order,
across link losses, restarts and power cuts; and the station's short persisted counters.

What it guarantees (issue 16; OCPP 1.6 "Transaction-Related Messages", 2.0.1 E04 / E13):

- :meth:`Outbox.put` stores a transaction message, its 2.x ``seqNo`` bump and its message id in
  one SQLite transaction that is durable when ``put`` returns; only then may the frame leave.
- The queue is replayed in order, one message at a time (:meth:`Outbox.due`; ``rpc.Session``
  enforces the single outstanding CALL, the outbox gives the order).
- Only a CALLRESULT deletes a message (:meth:`Outbox.answered`). A CALLERROR or a timeout on a
  working link is a failed attempt (:meth:`Outbox.failed`): retried after interval x attempts,
  given up after the configured number (``RetryPolicy``). A message lost because the link went
  down is sent again with the same message id and is not an attempt (:meth:`Outbox.link_lost`):
  the bridge answers the repeat from its store, so the back end's handler runs once.
- A full queue drops intermediate messages first, the 1st, 3rd, 5th ... of the queue (2.0.1
  E04), never Started/Ended (1.6 StartTransaction/StopTransaction); then queued
  non-transaction messages; what is dropped is returned, counted and logged.

Durability on a Raspberry Pi, where power loss is the normal way to stop
------------------------------------------------------------------------

The database is in WAL mode. At ``synchronous=NORMAL`` or ``FULL`` a power cut never corrupts a
WAL database; the level only decides whether the *last* commits survive. With NORMAL a commit
is not fsynced: a power cut may undo the last commits. That is not acceptable for
:meth:`put`: once the frame has left, an undone commit would lose a message the back end has
seen, hand its message id and ``seqNo`` out again (the bridge would then answer the new message
from its store with the old answer: the message is lost silently). So every commit that must
precede a send is made with ``synchronous=FULL`` (one fsync of the WAL): transaction messages,
message-id blocks, transaction ids. Everything whose loss only repeats work is made with NORMAL
and costs no fsync: :meth:`answered` (an undone delete resends the message with its id and the
bridge answers it from its store), :meth:`failed` (an undone attempt count retries once more),
queued non-transaction messages. :meth:`sent` and :meth:`link_lost` do not write at all.
Automatic checkpoints are off; :meth:`checkpoint` runs every ``checkpoint_every`` commits and on
close, so pages rewritten by many commits reach the database file once.

One charging hour at a 60 s meter interval in 2.0.1 (Started, 60 Updated, Ended, each answered;
``test_fsyncs_per_charging_hour``): 63 durable commits (62 messages, 1 transaction id), 62 lazy
ones. Measured with ``strace -c`` on Linux, SQLite 3.40: 63 ``fdatasync`` calls an hour for the
commits (0 for the lazy ones), 3 per checkpoint (one every two hours by default), 11 for open
and close: about 65 an hour, one a minute; with FULL for every commit it is 125. About 760 KiB
an hour reach the WAL (4 KiB pages). ``stats().fsyncs`` is that estimate.

Not thread-safe; one process owns the file. ``now`` is always passed in (seconds, wall clock:
retry times are stored and compared after a restart; a clock that steps back does not delay a
retry by more than its interval).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from .outbox_policy import (
    COLUMNS,
    OTHER,
    START,
    UPDATE,
    Entry,
    OutboxStats,
    ReplayPace,
    RetryPolicy,
    Stored,
    bump_seq_no,
    classify,
    dumps_payload,
    entry_from_row,
    is_sample,
    payload_transaction_id,
    to_base36,
)
from .outbox_store import PAGE_SIZE, OutboxStore
from .station_log import StationLog

__all__ = [
    "Outbox",
    "OutboxStore",
    "PAGE_SIZE",
    "Entry",
    "Stored",
    "OutboxStats",
    "RetryPolicy",
    "ReplayPace",
]

log = logging.getLogger(__name__)


class Outbox:
    """The durable queue of one station: in a SQLite file of its own (``where`` a path: created
    if missing, closed with the outbox) or in a shared :class:`~.outbox_store.OutboxStore`
    under the name ``station`` (the store outlives the outbox)."""

    def __init__(
        self,
        where: str | Path | OutboxStore,
        *,
        station: str = "",
        max_messages: int = 5000,
        retry: RetryPolicy | None = None,
        queue_all_messages: bool = False,
        drop_batch: int | None = None,
        id_block: int = 100,
        checkpoint_every: int = 256,
    ) -> None:
        if max_messages < 1 or id_block < 1:
            raise ValueError("max_messages and id_block must be >= 1")
        self.max_messages = max_messages
        #: 1.6 TransactionMessageAttempts/RetryInterval, 2.x MessageAttempts/Interval
        #: [TransactionEvent]; replace it when the back end changes them
        self.retry = retry if retry is not None else RetryPolicy()
        #: QueueAllMessages: non-transaction messages may be queued too (kind ``other``)
        self.queue_all_messages = queue_all_messages
        #: how many intermediate messages one thinning pass may drop (batched: one commit)
        self.drop_batch = drop_batch if drop_batch is not None else max(1, max_messages // 10)
        self._id_block = id_block
        self._owns_store = not isinstance(where, OutboxStore)
        self.store = (
            where if isinstance(where, OutboxStore)
            else OutboxStore(where, checkpoint_every=checkpoint_every)
        )  # fmt: skip
        self._db = self.store.db
        #: the rows' station column ("" in a file of the station's own)
        self.station = station
        # the unused rest of the last reserved block is skipped: never reused
        self._next_mid = self._mid_limit = self._counter("message_id", 1)
        self._in_flight: str | None = None
        self._durable = self._lazy = 0

    def close(self) -> None:
        """Close the file if it is the outbox's own (a shared store stays open)."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def checkpoint(self) -> None:
        """Move the WAL's pages into the database file."""
        self.store.checkpoint()

    def next_message_id(self) -> str:
        """A message id for a CALL that is not queued here: a decimal counter ("1", "2", ...;
        OCPP-J 4.1.4), never reused over the station's life (a UUID would cost 16 bytes a frame).
        Pass it as ``OutboundQueue(id_factory=...)``. Ids are reserved in blocks of ``id_block``,
        one durable commit a block, so every id in a frame was reserved durably first; a restart
        skips the unused rest of the block."""
        mid, limit = self._next_mid, self._mid_limit
        if mid >= limit:
            with self._transaction(durable=True):
                limit = self._reserve(mid)
            self._mid_limit = limit
        self._next_mid = mid + 1
        return str(mid)

    def next_transaction_id(self) -> str:
        """A new transaction id, base 36 ("1" ... "z", "10", ...), unique over the station's
        life (2.0.1 E01: the station makes it; 1.6: the station's local reference, the
        back end's own id arrives in StartTransaction.conf)."""
        with self._transaction(durable=True):
            n = self._counter("transaction_id", 1)
            self._set_counter("transaction_id", n + 1)
        return to_base36(n)

    def put(
        self,
        action: str,
        payload: dict[str, Any],
        *,
        transaction_id: str | None = None,
        now: float,
        keep: Mapping[str, dict[str, Any] | None] | None = None,
    ) -> Stored:
        """Store a message for sending; durable on return for transaction messages.

        2.x TransactionEvent: ``transaction_id`` defaults to ``transactionInfo.transactionId``
        and ``seqNo`` is set here (0 for the transaction's first message, +1 for each next one,
        kept across restarts). The caller's dict is not changed: send ``entry.payload``.
        Non-transaction messages need ``queue_all_messages`` (``ValueError`` otherwise).
        ``keep``: ``{key: value}`` for :meth:`kept`, written in the same transaction (``None``
        as a value deletes its key): the station machine's record of a transaction in progress
        changes atomically with the message that starts, samples or ends it."""
        named = payload_transaction_id(action, payload)
        if transaction_id is None:
            transaction_id = named
        elif named is not None and named != transaction_id:
            raise ValueError(f"transaction_id {transaction_id!r} but payload names {named!r}")
        kind = classify(action, payload, transaction_id)
        if kind == OTHER and not self.queue_all_messages:
            raise ValueError(f"{action} is not transaction-related and QueueAllMessages is off")
        if kind != OTHER and transaction_id is None:
            raise ValueError(f"{action} needs a transaction_id")
        body = dict(payload)
        mid, limit = self._next_mid, self._mid_limit
        # a new id block must be durable before an id from it is used; so must a transaction
        # message before it is sent
        durable = kind != OTHER or mid >= limit
        with self._transaction(durable=durable):
            if mid >= limit:
                limit = self._reserve(mid)
            if action == "TransactionEvent":
                body["seqNo"] = bump_seq_no(self._db, self.station, cast(str, transaction_id), kind)
            cur = self._db.execute(
                f"INSERT INTO outbox (station, {COLUMNS}) VALUES (?, NULL, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    self.station,
                    str(mid),
                    action,
                    kind,
                    transaction_id,
                    dumps_payload(body),
                    now,
                    now,
                ),  # fmt: skip
            )
            pos = cast(int, cur.lastrowid)
            for key, value in (keep or {}).items():
                self._keep(key, value)
            depth = self.depth()
            dropped = (
                self._make_room(depth - self.max_messages, pos) if depth > self.max_messages else ()
            )
        self._next_mid, self._mid_limit = mid + 1, limit
        if dropped:
            names = ", ".join(f"{e.action}#{e.message_id}" for e in dropped)
            self.log.warning("outbox full (%d): dropped %s", self.max_messages, names)
        entry = Entry(pos, str(mid), action, body, kind, transaction_id, 0, now, now)
        return Stored(entry, dropped)

    @property
    def log(self) -> StationLog:
        """This module's log, the station's id before each message (made when a line is
        written: a logger adapter kept per station would cost each of ``simulate``'s
        stations memory for lines that are rare)."""
        return StationLog(log, self.station)

    def head(self) -> Entry | None:
        """The oldest message, whether due or not."""
        found = self._select("1 ORDER BY pos LIMIT 1")
        return found[0] if found else None

    def due(self, now: float) -> Entry | None:
        """The message to send now: the oldest one, unless it is in flight or waiting out its
        retry interval (order is kept: nothing overtakes it)."""
        if self._in_flight is not None:
            return None
        entry = self.head()
        if entry is None:
            return None
        return entry if self._due_at(entry, now) <= now else None

    def next_attempt_at(self, now: float) -> float | None:
        """When the head becomes due (for the runtime's timer): ``now`` if :meth:`due` would
        give it now; ``None`` if empty or in flight."""
        entry = None if self._in_flight is not None else self.head()
        return self._due_at(entry, now) if entry else None

    def _due_at(self, entry: Entry, now: float) -> float:
        # a clock stepped back (a Pi without a real-time clock, across a restart) must not hold
        # a retry for longer than its interval: stamped further ahead than that, it is due now
        if entry.next_attempt - now > self.retry.delay(entry.attempts):
            return now
        return entry.next_attempt

    def sent(self, message_id: str, now: float) -> bool:
        """The head went out: nothing is due until it is answered, failed or the link is lost.
        Not written (after a restart the head is sent again, same id). ``False``: not the head."""
        entry = self.head()
        if entry is None or entry.message_id != message_id:
            return False
        self._in_flight = message_id
        return True

    def answered(self, message_id: str) -> Entry | None:
        """A CALLRESULT for ``message_id``: delete it (lazy commit). ``None`` if unknown."""
        entry = self._find(message_id)
        if entry is None:
            return None
        with self._transaction(durable=False):
            self._db.execute("DELETE FROM outbox WHERE pos = ?", (entry.position,))
        if self._in_flight == message_id:
            self._in_flight = None
        return entry

    def failed(self, message_id: str, now: float, reason: str = "") -> Entry | None:
        """A CALLERROR, or no answer on a working link: one more failed attempt. Returns the
        entry as it is now; ``discarded`` set if that was the last attempt (1.6 / 2.0.1 E13:
        the message is given up, the next one goes). ``None`` if unknown."""
        entry = self._find(message_id)
        if entry is None:
            return None
        if self._in_flight == message_id:
            self._in_flight = None
        attempts = entry.attempts + 1
        if self.retry.exhausted(attempts):
            with self._transaction(durable=False):
                self._db.execute("DELETE FROM outbox WHERE pos = ?", (entry.position,))
                self._set_counter("discarded", self._counter("discarded", 0) + 1)
            msg = "outbox gave up %s #%s after %d attempts: %s"
            self.log.warning(msg, entry.action, message_id, attempts, reason)
            return replace(entry, attempts=attempts, discarded=True)
        next_attempt = now + self.retry.delay(attempts)
        with self._transaction(durable=False):
            self._db.execute(
                "UPDATE outbox SET attempts = ?, next_attempt = ? WHERE pos = ?",
                (attempts, next_attempt, entry.position),
            )
        return replace(entry, attempts=attempts, next_attempt=next_attempt)

    def link_lost(self) -> None:
        """The link went down with a message in flight: it is due again at once, same message
        id, same attempt count (the bridge answers a repeat from its store)."""
        self._in_flight = None

    def bind_transaction(self, transaction_id: str, fields: dict[str, Any]) -> int:
        """Merge ``fields`` into the payload of the queued messages of ``transaction_id`` after
        its start (durable commit); return how many. For 1.6, where the back end's
        ``transactionId`` arrives in StartTransaction.conf after MeterValues/StopTransaction
        may have been queued with a placeholder."""
        rows = self._select("transaction_id = ? AND kind != ? ORDER BY pos", transaction_id, START)
        if not rows:
            return 0
        with self._transaction(durable=True):
            self._db.executemany(
                "UPDATE outbox SET payload = ? WHERE pos = ?",
                [(dumps_payload({**e.payload, **fields}), e.position) for e in rows],
            )
        return len(rows)

    def keep(self, key: str, value: dict[str, Any] | None, *, durable: bool = False) -> None:
        """Remember ``value`` under ``key`` across restarts (``None`` forgets it)."""
        with self._transaction(durable=durable):
            self._keep(key, value)

    def kept(self, prefix: str = "") -> dict[str, dict[str, Any]]:
        """What :meth:`keep` (or ``put(keep=...)``) remembers, for keys starting ``prefix``."""
        rows = self._db.execute(
            "SELECT key, value FROM kept WHERE station = ? AND substr(key, 1, ?) = ?",
            (self.station, len(prefix), prefix),
        )
        return {key: json.loads(value) for key, value in rows}

    def _keep(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM kept WHERE station = ? AND key = ?", (self.station, key))
        else:
            self._db.execute(
                "INSERT INTO kept (station, key, value) VALUES (?, ?, ?)"
                " ON CONFLICT(station, key) DO UPDATE SET value = excluded.value",
                (self.station, key, dumps_payload(value)),
            )

    def depth(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM outbox WHERE station = ?", (self.station,))
        return cast(int, row.fetchone()[0])

    def entries(self) -> list[Entry]:
        """Every queued message, oldest first (the replay order)."""
        return self._select("1 ORDER BY pos")

    def messages_in_queue(self, transaction_id: str | None = None) -> bool:
        """GetTransactionStatus ``messagesInQueue``: transaction messages still queued for
        ``transaction_id``, or for any transaction when it is ``None``."""
        sql = "SELECT 1 FROM outbox WHERE station = ? AND kind != 'other'"
        args: tuple[str, ...] = (self.station,)
        if transaction_id is not None:
            sql, args = sql + " AND transaction_id = ?", (*args, transaction_id)
        return self._db.execute(sql + " LIMIT 1", args).fetchone() is not None

    def stats(self) -> OutboxStats:
        dropped, discarded = self._counter("dropped", 0), self._counter("discarded", 0)
        return OutboxStats(
            self.depth(),
            dropped,
            discarded,
            self._durable,
            self._lazy,
            self.store.checkpoints,
        )

    @contextmanager
    def _transaction(self, *, durable: bool) -> Iterator[None]:
        with self.store.transaction(durable=durable):
            yield
        if durable and self.store.power_safe:
            self._durable += 1
        else:
            self._lazy += 1

    def _counter(self, name: str, default: int) -> int:
        row = self._db.execute(
            "SELECT value FROM counters WHERE station = ? AND name = ?", (self.station, name)
        ).fetchone()
        return int(row[0]) if row else default

    def _set_counter(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO counters (station, name, value) VALUES (?, ?, ?)"
            " ON CONFLICT(station, name) DO UPDATE SET value = excluded.value",
            (self.station, name, value),
        )

    def _reserve(self, mid: int) -> int:
        """Reserve the message ids ``mid`` .. ``mid + id_block - 1`` (in a durable commit)."""
        limit = mid + self._id_block
        self._set_counter("message_id", limit)
        return limit

    def _make_room(self, excess: int, new_pos: int) -> tuple[Entry, ...]:
        """Drop to make room (inside put's transaction): intermediate messages first, the 1st,
        3rd, 5th ... oldest first (2.0.1 E04), up to ``drop_batch`` of them in one pass so the
        oldest stretch thins out while recent readings stay dense, and the others (2nd, 4th
        ...) if the queue is over by more than those. Meter samples go first (``is_sample``),
        then the Updated that tell something else, oldest first. Then the oldest queued
        non-transaction messages. Never Started/Ended, the message in flight or the new one.
        If that is not enough the queue stays over its limit (Started/Ended are never lost)."""
        where = "kind = ? AND pos != ? AND message_id != ? ORDER BY pos"
        keep = (new_pos, self._in_flight or "")
        updated = self._select(where, UPDATE, *keep)
        samples = [e for e in updated if is_sample(e.action, e.payload)]
        telling = [e for e in updated if not is_sample(e.action, e.payload)]
        victims = samples[0::2][: max(excess, self.drop_batch)]
        if len(victims) < excess:  # over by more than every other one: the rest of them next
            victims += samples[1::2][: excess - len(victims)]
        if len(victims) < excess:
            victims += telling[: excess - len(victims)]
        if len(victims) < excess:
            victims += self._select(where + " LIMIT ?", OTHER, *keep, excess - len(victims))
        if not victims:
            self.log.warning(
                "outbox over its limit of %d: nothing may be dropped", self.max_messages
            )
            return ()
        self._db.executemany("DELETE FROM outbox WHERE pos = ?", [(e.position,) for e in victims])
        self._set_counter("dropped", self._counter("dropped", 0) + len(victims))
        return tuple(victims)

    def _select(self, where: str, *args: object) -> list[Entry]:
        rows = self._db.execute(
            f"SELECT {COLUMNS} FROM outbox WHERE station = ? AND {where}", (self.station, *args)
        )
        return [entry_from_row(r) for r in rows]

    def _find(self, message_id: str) -> Entry | None:
        # no index on message_id: the queue is bounded and a scan avoids one more b-tree write
        # per commit on the SD card
        found = self._select("message_id = ? ORDER BY pos LIMIT 1", message_id)
        return found[0] if found else None
