"""Wire encodings of OCPP frames: OCPP-J JSON (:mod:`.ocppj`) and compact CBOR (:mod:`.cbor`)."""

from __future__ import annotations

__all__ = ["DecodeError"]


class DecodeError(ValueError):
    """Raised for any input a decoder cannot turn into a frame; the message says why.

    Where the decoder could still read the message id, ``message_id`` holds it and
    ``error_code`` the CALLERROR code a receiver should answer with (OCPP-J 2.0.1 section 4.2.3:
    an unreadable id is answered with id ``"-1"``). Otherwise ``message_id`` is ``None``.
    """

    def __init__(
        self, reason: str, *, message_id: str | None = None, error_code: str = "RpcFrameworkError"
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
        self.error_code = error_code
