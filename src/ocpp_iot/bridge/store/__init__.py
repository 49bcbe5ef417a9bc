"""What bridge workers share: answered CALLs, per-station state (the queue of calls to a station
among it: see :mod:`ocpp_iot.bridge.outbound`).

Every bridge worker may receive any station's next frame (MQTT 5 shared subscription), so
everything that must survive a frame changing hands, or the bridge restarting, lives behind the
:class:`Store` interface. Each method is one short transaction; none holds a lock across a
network round trip or a handler call. :class:`SqliteStore` implements it for one machine (SQLite
in WAL mode, shared by the worker processes); a PostgreSQL store for workers on several machines
implements the same methods with the same statements (see ``docs/bridge.md``). The event loop
uses a store through :class:`AsyncStore`, which runs it on a thread of its own.

- ``_types``: the interface and its values; ``effects``: handlers' deferred writes;
  ``sqlite``: the SQLite store, with ``_finish`` (storing answers) and ``_errors`` (which
  SQLite errors are the database's); ``facade``: the asynchronous facade.
"""

from ._types import (
    CallKey,
    Claim,
    ClaimResult,
    EffectsFailed,
    Finish,
    Statement,
    StateUpdate,
    Store,
)
from .effects import collect_effects, defer_sql
from .facade import AsyncStore, StoreClosed, answered_now, store_future
from .sqlite import SqliteStore

__all__ = [
    "AsyncStore",
    "CallKey",
    "Claim",
    "ClaimResult",
    "EffectsFailed",
    "Finish",
    "SqliteStore",
    "StateUpdate",
    "Statement",
    "Store",
    "StoreClosed",
    "answered_now",
    "collect_effects",
    "defer_sql",
    "store_future",
]
