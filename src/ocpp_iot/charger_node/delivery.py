"""Delivering a station's durable outbox, sans-IO: which transaction message goes next and with
which message id, and what its answer or its failure does. The station machine (:mod:`.station`)
asks :class:`Delivery` when the CALL slot is free.

Rules (OCPP 2.0.1 part 2 E04 / E13; 1.6 "Transaction-Related Messages"):

- one message at a time, in the outbox's order, paced (:class:`~.outbox.ReplayPace`) so that a
  long offline period does not become a flood;
- a message resent because the link failed keeps its message id (the back end answers the
  repeat from its store: its handler runs once); so does a retry after a timeout (the back end
  may have handled it);
- a retry after a CALLERROR is a new CALL with a new message id (OCPP-J 4.1.4): a back end that
  keeps its answers by message id, as the bridge does, would answer the old id with the old
  CALLERROR. The id in use is kept in the outbox (lazily: lost in a power cut, the retry goes
  with the old id and costs one attempt more);
- E13 (1.6: TransactionMessageAttempts / RetryInterval) and QueueAllMessages come from the
  device model, and apply as soon as the back end changes them;
- 1.6: StartTransaction.conf's transactionId is written into the messages of that transaction
  queued behind it, and into the record of the transaction in progress.
"""

from __future__ import annotations

from typing import Any

from .device_model import Change, DeviceModel
from .messages import Messages
from .outbox import Entry, Outbox, ReplayPace, RetryPolicy
from .outbox_policy import START
from .transactions import TX_KEY

__all__ = ["Delivery"]

RETRY_KEY = "retry-id:"  #: kept in the outbox: the message id of a message's next retry
_SETTINGS = frozenset({
    "OCPPCommCtrlr.MessageAttempts[TransactionEvent]",
    "OCPPCommCtrlr.MessageAttemptInterval[TransactionEvent]",
    "OCPPCommCtrlr.QueueAllMessages",
})  # fmt: skip


class Delivery:
    """The outbox's side of one station's OCPP-J connection."""

    def __init__(
        self, outbox: Outbox, model: DeviceModel, messages: Messages, pace: ReplayPace
    ) -> None:
        self.outbox = outbox
        self.model = model
        self.messages = messages
        self.pace = pace
        #: outbox message id -> the message id its retry goes with (after a CALLERROR)
        self._retry_ids: dict[str, str] = {}
        model.add_listener(self._model_changed)

    def start(self) -> None:
        self._apply_settings()
        kept = self.outbox.kept(RETRY_KEY)
        if not kept:
            return
        queued = {e.message_id for e in self.outbox.entries()}
        for key, value in kept.items():
            message_id = key[len(RETRY_KEY) :]
            if message_id in queued:
                self._retry_ids[message_id] = str(value["id"])
            else:  # answered, given up or dropped before it was forgotten
                self.outbox.keep(key, None)

    def take(self, now: float) -> tuple[Entry, str] | None:
        """The message to send now and its message id (marked in flight), if one may go."""
        entry = self.outbox.due(now)
        if entry is None or not self.pace.take(now):
            return None
        self.outbox.sent(entry.message_id, now)
        return entry, self._retry_ids.get(entry.message_id, entry.message_id)

    def next_at(self, now: float) -> float | None:
        """When :meth:`take` may have something (``None``: nothing queued, or one in flight)."""
        head = self.outbox.next_attempt_at(now)
        return None if head is None else max(head, now + self.pace.wait(now))

    def answered(self, entry: Entry, payload: dict[str, Any]) -> None:
        """A CALLRESULT for ``entry``: it is delivered. 1.6: the back end's transactionId goes
        into the queued messages first, then the StartTransaction is deleted; a power cut
        between the two sends it again (the back end answers the repeat), where the other order
        would lose the id and leave the -1 placeholder in them."""
        if entry.kind == START and entry.transaction_id is not None:
            _, csms_id = self.messages.start_answer(payload)  # 2.x: None
            if csms_id is not None:
                self._bind(entry.transaction_id, csms_id)
        self.outbox.answered(entry.message_id)
        self._forget(entry.message_id)

    def failed(self, entry: Entry, now: float, reason: str, *, new_id: bool) -> None:
        """A failed attempt (E13): a CALLERROR (``new_id``) or no answer in time."""
        current = self.outbox.failed(entry.message_id, now, reason)
        if current is None or current.discarded:
            self._forget(entry.message_id)
        elif new_id:
            wire_id = self.outbox.next_message_id()
            self._retry_ids[entry.message_id] = wire_id
            self.outbox.keep(RETRY_KEY + entry.message_id, {"id": wire_id})

    def link_lost(self) -> None:
        """The message in flight, if any, goes again with its id once the link is back."""
        self.outbox.link_lost()

    # -- internals ----------------------------------------------------------------------------

    def _forget(self, message_id: str) -> None:
        if self._retry_ids.pop(message_id, None) is not None:
            self.outbox.keep(RETRY_KEY + message_id, None)

    def _bind(self, tx_id: str, csms_id: int) -> None:
        """1.6: rewrite the queued messages of ``tx_id`` and its kept record (both durable).
        The id comes from the answer: the transaction may have ended by now (queued offline,
        or ended as PowerLoss by a restart)."""
        self.outbox.bind_transaction(tx_id, {"transactionId": csms_id})
        kept = self.outbox.kept(TX_KEY + tx_id).get(TX_KEY + tx_id)
        if kept is not None:
            self.outbox.keep(TX_KEY + tx_id, {**kept, "csms_id": csms_id}, durable=True)

    def _model_changed(self, change: Change) -> None:
        if change.path in _SETTINGS:
            self._apply_settings()

    def _apply_settings(self) -> None:
        m = self.model
        self.outbox.retry = RetryPolicy(
            max(1, m.message_attempts_tx), float(m.message_attempt_interval_tx)
        )
        self.outbox.queue_all_messages = m.queue_all_messages
