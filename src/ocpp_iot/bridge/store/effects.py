"""Handlers' writes to the bridge's own database, committed with the bridge's answer.

The bridge opens a collection (:func:`collect_effects`, a :class:`~contextvars.ContextVar`) in
the thread that runs the handler — the event loop, or a handler thread that was given a copy of
the loop's context — and the handler adds statements to it (:func:`defer_sql`). The statements
then travel to the database thread inside :attr:`Finish.effects`; the database thread itself
never looks at the collection.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from ._types import Statement


@dataclass
class _Effects:
    path: str
    statements: list[Statement] = field(default_factory=list)
    real_path: str | None = None  #: ``path`` with symbolic links resolved, once needed


_EFFECTS: ContextVar[_Effects | None] = ContextVar("ocpp_iot_bridge_effects", default=None)


def defer_sql(db_path: str, statements: Sequence[Statement]) -> bool:
    """Commit ``statements`` together with the bridge's answer to the CALL being handled.

    A handler that writes to the bridge's own database (the reference charge system does)
    calls this instead of committing itself: the statements then run in the same transaction
    that stores the answer for duplicate detection, so a crash leaves either both or neither,
    and a CALL delivered again after a crash is handled again from a clean slate. Returns
    False (write yourself) outside a bridge CALL or for another database.
    """
    eff = _EFFECTS.get()
    if eff is None or not eff.path:
        return False
    if db_path != eff.path:  # the same string needs no look at the file system
        if eff.real_path is None:
            eff.real_path = os.path.realpath(eff.path)
        if os.path.realpath(db_path) != eff.real_path:
            return False
    eff.statements.extend(statements)
    return True


class collect_effects:  # noqa: N801 - used as a function: ``with collect_effects(path) as e``
    """Collect what handlers :func:`defer_sql` while the block runs (the bridge uses this).

    A class rather than a ``@contextmanager`` generator: the bridge opens one per CALL, and
    the generator's machinery cost more than the rest of it together."""

    __slots__ = ("_effects", "_token")

    def __init__(self, db_path: str) -> None:
        self._effects = _Effects(db_path)
        self._token: Token[_Effects | None] | None = None

    def __enter__(self) -> list[Statement]:
        self._token = _EFFECTS.set(self._effects)
        return self._effects.statements

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _EFFECTS.reset(self._token)
        self._token = None
