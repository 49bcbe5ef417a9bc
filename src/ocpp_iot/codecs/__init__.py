"""Wire encodings of OCPP frames: OCPP-J JSON (:mod:`.ocppj`) and compact CBOR (:mod:`.cbor`)."""

from __future__ import annotations

__all__ = ["DecodeError"]


class DecodeError(ValueError):
    """Raised for any input a decoder cannot turn into a frame; the message says why.

    ``message_id`` is the frame's message id when the decoder could read it (else ``None``: a
    receiver answers with id ``"-1"``, OCPP-J 2.0.1 / 2.1 section 4.2.3). ``version`` is the
    OCPP version the frame was read as, when known. ``error_code`` is the CALLERROR code to
    answer with, spelled as ``version`` spells it (1.6 has ``FormationViolation``,
    ``OccurenceConstraintViolation`` and ``GenericError`` where 2.0.1 has
    ``RpcFrameworkError`` / ``MessageTypeNotSupported``).

    :class:`ocpp_iot.model.PayloadError` (a payload that fails its schema) is a subclass, so
    ``except DecodeError`` covers everything :func:`ocpp_iot.model.parse_frame_json` raises.
    """

    def __init__(
        self,
        reason: str,
        *,
        message_id: str | None = None,
        error_code: str = "RpcFrameworkError",
        version: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id
        self.error_code = error_code
        self.version = version
