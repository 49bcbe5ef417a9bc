"""The store's interface and the values that cross it (shared by every implementation)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

Statement = tuple[str, Sequence[Any]]
#: a received CALL: ``(station, message_id, fingerprint)``. The fingerprint (a CRC-32 of the
#: frame's bytes; None: not known) tells a repeat, the same CALL again, from another CALL that
#: reuses the id (a station whose counter started over: OCPP-J asks ids to be unique within a
#: connection only); a stored answer is a repeat's only if the fingerprints agree.
CallKey = tuple[str, str, int | None]
T = TypeVar("T")

#: ``update_station_state``'s function: the stored value (None: none) -> (new value, result)
StateUpdate = Callable[[Any | None], tuple[Any | None, T]]


class Claim(Enum):
    NEW = "new"  #: first sight of this CALL: run the handler, then ``finish_call``
    DONE = "done"  #: answered before: send the cached answer again
    BUSY = "busy"  #: another copy is being handled right now: send nothing


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claim: Claim
    response: bytes | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Finish:
    """One answered CALL to store (see :meth:`Store.finish_calls`)."""

    station: str
    message_id: str
    response: bytes
    version: str
    now: float
    state: dict[str, Any] | None = None  #: None: unchanged
    effects: Sequence[Statement] = ()
    touch_station: bool = True  #: record version and last-seen time
    fingerprint: int | None = None  #: of the CALL answered (:data:`CallKey`)
    #: may replace an answer stored for another CALL under the id: a single worker's (its
    #: look-up marks nothing); with marks the claim resets such a row, and the late answer of
    #: a claim another worker took over must not replace the newer one
    replaces: bool = True


class EffectsFailed(Exception):
    """A handler's deferred writes could not be committed (returned in place of an answer)."""


class Store(Protocol):
    """The shared-state interface of the bridge (one implementation per database).

    Every method is synchronous and may wait on a disk, a lock or a network: the bridge calls
    them through :class:`~ocpp_iot.bridge.store.AsyncStore`, never from its event loop. (A store
    may add methods that never wait, for the facade to call in the loop: ``look_up_calls``,
    ``claim_calls_now``, ``finish_calls_now``, and ``checkpoint`` for the thread; see
    :class:`~ocpp_iot.bridge.store.SqliteStore`.)
    """

    #: the database handlers may join transactions with (:func:`defer_sql`); "" if none
    path: str

    def claim_call(
        self,
        station: str,
        message_id: str,
        owner: str,
        now: float,
        *,
        mark: bool = True,
        fingerprint: int | None = None,
    ) -> ClaimResult:
        """Look a received CALL up: answered before (DONE, with the answer), in hand elsewhere
        (BUSY), or NEW, with the station's state. An answer stored for another CALL under the
        same id (the fingerprints differ, :data:`CallKey`) does not count: NEW, and the new
        answer replaces it.

        With ``mark`` the CALL is also marked in progress by ``owner``, so that other workers
        leave a repeated copy alone; a mark older than the lease counts as abandoned (its
        worker died) and is taken over. A single worker passes ``mark=False`` and keeps its
        marks in memory: one write transaction less per CALL.
        """
        ...

    def claim_calls(
        self, keys: Sequence[CallKey], owner: str, now: float, *, mark: bool = True
    ) -> list[ClaimResult]:
        """:meth:`claim_call` for several :data:`CallKey` at once, in one
        transaction: the bridge claims all the CALLs of one socket read together. Results are
        in the order of ``keys``; a key given twice is BUSY the second time when ``mark``."""
        ...

    def finish_calls(self, items: Sequence[Finish]) -> list[bytes | EffectsFailed | None]:
        """Store answers in one transaction, each with its handler's deferred writes
        (:func:`defer_sql`) and the station's new state and version.

        Returns, per item: None if it was stored; the answer stored before by another copy of
        the same CALL (then nothing of the item is written: send that answer instead); or
        :class:`EffectsFailed` if the item's deferred writes failed (nothing of it written).
        """
        ...

    def release_owner(self, owner: str) -> int:
        """Drop the in-progress marks of ``owner`` (a restarted worker clears its old life's)."""
        ...

    def station_version(self, station: str) -> str | None: ...

    def station_state(self, station: str) -> dict[str, Any]: ...

    def set_status(self, station: str, status: str, now: float) -> None: ...

    def stations(self) -> list[dict[str, Any]]:
        """Every known station: ``station``, ``version``, ``status``, ``last_seen``."""
        ...

    def update_station_state(self, station: str, key: str, fn: StateUpdate[T], now: float) -> T:
        """Read-modify-write the JSON value stored under ``(station, key)``, atomically.

        In one write transaction: read the value (None if there is none), call ``fn(value)``
        for ``(new_value, result)``, store ``new_value`` (None deletes it), commit and return
        ``result``. If ``fn`` raises, nothing is written and the exception propagates. ``fn``
        runs inside the transaction: it must be quick and must not call the store.
        """
        ...

    def scan_station_state(self, key: str) -> list[tuple[str, Any]]:
        """Every station's value under ``key``, as ``(station, value)`` sorted by station."""
        ...

    def prune(self, older_than: float) -> int:
        """Forget answered CALLs finished before ``older_than``."""
        ...

    def close(self) -> None: ...
