"""The wire codecs the bridge uses: compact CBOR on ``up``/``down``, OCPP-J on the mirrors."""

from __future__ import annotations

from ..codecs import DecodeError, ocppj
from ..rpc import Frame

try:  # pragma: no cover - depends on which parts have landed
    from ..codecs import cbor as _cbor
except ImportError:  # pragma: no cover
    _cbor = None  # type: ignore[assignment]

_VERSION_BYTES = {"1.6": 0x16, "2.0.1": 0x20, "2.1": 0x21}
_BYTE_VERSIONS = {v: k for k, v in _VERSION_BYTES.items()}

__all__ = ["DecodeError", "decode", "encode", "json_encode", "json_decode"]


def encode(frame: Frame, version: str) -> bytes:
    if _cbor is not None:
        return _cbor.encode(frame, version)
    return bytes([_VERSION_BYTES[version]]) + ocppj.encode(frame)  # temporary shim


def decode(data: bytes) -> tuple[str, Frame]:
    if _cbor is not None:
        return _cbor.decode(data)
    if not data or data[0] not in _BYTE_VERSIONS:  # temporary shim
        raise DecodeError("unknown version byte")
    version = _BYTE_VERSIONS[data[0]]
    return version, ocppj.decode(data[1:], version)


json_encode = ocppj.encode
json_decode = ocppj.decode
