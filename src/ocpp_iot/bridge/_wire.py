"""The wire codecs the bridge uses: compact CBOR on ``up``/``down``, OCPP-J on the mirrors."""

from __future__ import annotations

from ..codecs import DecodeError, cbor, ocppj

__all__ = ["DecodeError", "decode", "encode", "json_encode", "json_decode"]

#: ``encode(frame, version) -> bytes`` (compact CBOR, the version in its header)
encode = cbor.encode
#: ``decode(data) -> (version, frame)``; raises :class:`DecodeError`
decode = cbor.decode
json_encode = ocppj.encode
json_decode = ocppj.decode
