"""The station's Authorization Cache and its local decisions, sans-IO.

Rules (OCPP 2.0.1 part 2 C01, C10, C12, C15; 1.6 section 3.5 and the Authorize / Local
Authorization configuration keys):

- C10 (1.6 3.5.1): the statuses the back end gave for tokens (Authorize answers, and the
  idTokenInfo of a transaction's first answer) are kept while ``AuthCacheCtrlr.Enabled``
  (1.6 ``AuthorizationCacheEnabled``) and survive a restart: they are stored through the
  ``store`` callable (the station machine writes them to its outbox file, only when a status
  changes); ClearCache empties it.
- C12 (1.6 ``LocalPreAuthorize``): a token the cache says is Accepted starts at once, without
  waiting for the back end.
- C15 (1.6 ``LocalAuthorizeOffline`` / ``AllowOfflineTxForUnknownId``): when the back end
  cannot be asked (offline, or not registered yet), a token the cache says is Accepted is
  accepted with ``LocalAuthorizeOffline``; any other only with ``OfflineTxForUnknownIdEnabled``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .device_model import DeviceModel

__all__ = ["AuthCache"]

#: the most tokens kept; the oldest is forgotten first
MAX_TOKENS = 1000

Store = Callable[[str, str | None], None]  # (token, status or None to forget it)


class AuthCache:
    """Token -> last status from the back end, with the local decisions made from it."""

    def __init__(self, model: DeviceModel, store: Store | None = None) -> None:
        self.model = model
        self.store = store
        self._tokens: dict[str, str] = {}  # insertion ordered: oldest first

    def load(self, saved: Mapping[str, Any]) -> None:
        """What ``store`` saved before a restart: token -> status."""
        self._tokens = {str(k): str(v) for k, v in saved.items()}

    def get(self, token: str) -> str | None:
        return self._tokens.get(token) if self.model.auth_cache_enabled else None

    def put(self, token: str, status: str) -> None:
        if not self.model.auth_cache_enabled or self._tokens.get(token) == status:
            return
        self._tokens.pop(token, None)
        self._tokens[token] = status
        self._save(token, status)
        while len(self._tokens) > MAX_TOKENS:
            oldest = next(iter(self._tokens))
            del self._tokens[oldest]
            self._save(oldest, None)

    def clear(self) -> None:
        """ClearCache (C11; 1.6 5.4)."""
        for token in list(self._tokens):
            self._save(token, None)
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)

    def pre_authorized(self, token: str) -> bool:
        """C12: start without asking the back end."""
        return self.model.local_pre_authorize and self.get(token) == "Accepted"

    def accepted_locally(self, token: str) -> bool:
        """C15: the back end cannot be asked: accept it here?"""
        m = self.model
        status = self.get(token) if m.local_authorize_offline else None
        if status is not None:  # known: what the back end said last
            return status == "Accepted"
        return m.offline_tx_for_unknown_id

    def _save(self, token: str, status: str | None) -> None:
        if self.store is not None:
            self.store(token, status)
