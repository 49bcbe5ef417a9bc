"""Wire encodings of OCPP frames: OCPP-J JSON (:mod:`.ocppj`) and compact CBOR (:mod:`.cbor`)."""

from __future__ import annotations

__all__ = ["DecodeError"]


class DecodeError(ValueError):
    """Raised for any input a decoder cannot turn into a frame; the message says why."""
