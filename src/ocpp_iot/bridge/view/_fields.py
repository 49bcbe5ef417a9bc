"""Limits and total field readers: a value of the wrong type gives ``None``, never an exception."""

from __future__ import annotations

import math
from typing import Any

MAX_CONNECTORS = 64
MAX_TRANSACTIONS = 16
MAX_PENDING = 16
MAX_TOKENS = 8
MAX_FIELD = 64
MAX_TEXT = 256

_UNKNOWN_EVSE = "?"  # transaction key while its EVSE is not known


def _str(value: Any, limit: int = MAX_FIELD) -> str | None:
    if type(value) is not str:
        return None
    return value if len(value) <= limit else value[:limit]


def _int(value: Any) -> int | None:
    # bool is an int subclass; JSON true is not a connector number.
    return value if type(value) is int else None


def _dict(value: Any) -> dict[str, Any]:
    return value if type(value) is dict else {}


def _number(value: Any) -> float | None:
    """A finite number from a 2.x number or a 1.6 decimal string (SignedData gives None)."""
    if type(value) is int or type(value) is float:
        x = float(value)
    elif type(value) is str and len(value) <= 32:
        try:
            x = float(value)
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _token_key(id_token: Any, kind: Any = None) -> int | None:
    """An in-memory stand-in for an id token, to match an Authorize answer to a transaction.

    Only this hash is kept (and never published); the token itself is personal data.
    """
    if type(id_token) is not str:
        return None
    return hash((id_token, kind if type(kind) is str else None))
