"""Where a session remembers the answers it gave, so a repeated CALL gets the same answer.

A CALL arrives more than once on the links this package serves (MQTT QoS 1 redelivers after a
reconnect, a radio retransmits when its acknowledgement was lost, a station re-sends after its
own timeout). The handler must run once: the first copy is handled, later copies get the answer
given the first time (or nothing, while the first copy is still in hand).

The session only needs two operations; where the answers live is the adapter's choice: memory
(:class:`MemoryAnswerCache`, the default), the bridge's shared store, a charger's outbox.
"""

from __future__ import annotations

from typing import Final, Protocol

from ._frames import CallError, CallResult

__all__ = ["IN_HAND", "InHand", "Answer", "AnswerCache", "MemoryAnswerCache"]


class InHand:
    """The marker for a CALL whose first copy is still being handled."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "IN_HAND"


IN_HAND: Final = InHand()

#: what a cache keeps per CALL: the answer frame, or its encoded bytes (an adapter that sends
#: the very bytes again need not encode twice)
Answer = CallResult | CallError | bytes


class AnswerCache(Protocol):
    def get(self, message_id: str) -> Answer | InHand | None:
        """The answer given to ``message_id``, :data:`IN_HAND`, or ``None`` if never seen."""
        ...

    def put(self, message_id: str, value: Answer | InHand) -> None:
        """Record ``value`` for ``message_id`` (:data:`IN_HAND` when handling starts)."""
        ...


class MemoryAnswerCache:
    """The last ``limit`` answers in memory; CALLs still in hand are never forgotten."""

    __slots__ = ("limit", "_entries", "_answered")

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._entries: dict[str, Answer | InHand] = {}  # insertion ordered
        self._answered = 0

    def get(self, message_id: str) -> Answer | InHand | None:
        return self._entries.get(message_id)

    def put(self, message_id: str, value: Answer | InHand) -> None:
        old = self._entries.pop(message_id, None)
        if old is not None and old is not IN_HAND:
            self._answered -= 1
        self._entries[message_id] = value
        if value is not IN_HAND:
            self._answered += 1
            if self._answered > self.limit:
                self._forget_oldest()

    def discard(self, message_id: str) -> None:
        old = self._entries.pop(message_id, None)
        if old is not None and old is not IN_HAND:
            self._answered -= 1

    def __len__(self) -> int:
        return len(self._entries)

    def _forget_oldest(self) -> None:
        excess = self._answered - self.limit
        doomed: list[str] = []
        for key, value in self._entries.items():  # oldest first; usually the first one
            if value is not IN_HAND:
                doomed.append(key)
                if len(doomed) == excess:
                    break
        for key in doomed:
            del self._entries[key]
        self._answered -= len(doomed)
