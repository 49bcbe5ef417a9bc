"""Compact, lossless, schema-aware CBOR encoding of OCPP-J frames (for LoRa and metered links).

A frame is one header byte (format version, UUID-id flag, OCPP version, message type), the 16
bytes of a lower-case UUID message id if the flag says so, then a CBOR sequence: the message id
(otherwise), the action code and the payload flattened into CBOR items by
per-schema encoders generated from the official JSON schemas (``tools/gen_cbor_tables.py``).
Field names are replaced by positions, enum strings by digits of one small integer per object,
UUIDs by 16 bytes, timestamps by packed integers, decimal readings by scaled integers. The full
format is in ``docs/codec.md``.

- Lossless: ``decode(encode(f, v)) == (v, f)`` as JSON values for every schema-valid frame
  (object keys come back in wire order, not necessarily the order they were sent in).
- Stateless: each frame decodes on its own.
- A payload that does not fit its schema (unknown property, enum value or type, or an action
  the version does not define) is still encoded exactly, as plain CBOR of the JSON value; a
  value that is not JSON at all (NaN, bytes, non-string keys, ...) raises :class:`ValueError`.
- :func:`decode` raises :class:`~ocpp_iot.codecs.DecodeError` for any malformed input.
"""

from __future__ import annotations

import functools
import importlib
import io
import re
from typing import Any

import cbor2

from ocpp_iot.codecs import DecodeError
from ocpp_iot.codecs._cbor_runtime import (
    _UUID_LOWER,
    MAX_DEPTH,
    Bad,
    VersionCodec,
    check_json,
    dec_string,
    enc_string,
)
from ocpp_iot.codecs.ocppj import MAX_MESSAGE_ID_LENGTH
from ocpp_iot.rpc import (
    Call,
    CallError,
    CallResult,
    CallResultError,
    ErrorCode,
    Frame,
    Send,
    error_code_for,
)

__all__ = ["FORMAT_VERSION", "MAX_FRAME_SIZE", "encode", "decode", "header"]

#: Wire format version (top three bits of the first byte). 0 is never used.
FORMAT_VERSION = 1
#: Largest frame :func:`decode` accepts (and :func:`encode` produces), in bytes.
MAX_FRAME_SIZE = 65536

_VERSIONS = ("1.6", "2.0.1", "2.1")
_TABLE_MODULES = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
_CODECS: dict[str, VersionCodec] = {}
_ARRAY_HEAD = (1, 2, 3, 5)  # CBOR array header length for < 24, < 256, < 65536, more items


def _codec(version: str) -> VersionCodec:
    codec = _CODECS.get(version)
    if codec is None:
        if version not in _TABLE_MODULES:
            raise ValueError(f"unknown OCPP version {version!r}")
        # one version's generated encoders and decoders, imported only when that version is
        # used: a 2.0.1 node never loads the 1.6 and 2.1 ones (issue 16, footprint)
        module = importlib.import_module(f"ocpp_iot.codecs._cbor_codec_{_TABLE_MODULES[version]}")
        if module.FORMAT != FORMAT_VERSION:
            raise RuntimeError("CBOR codec was generated for another format version")
        codec = _CODECS[version] = VersionCodec(module)
    return codec


def header(version: str, message_type: int, uuid_id: bool = False) -> int:
    """The first byte of a frame: format version << 5 | UUID id flag << 4 | version index * 5 +
    message type - 2."""
    return FORMAT_VERSION << 5 | uuid_id << 4 | (_VERSIONS.index(version) * 5 + message_type - 2)


_TYPE_OF: dict[type, int] = {Call: 2, CallResult: 3, CallError: 4, CallResultError: 5, Send: 6}
# version -> message type -> (header byte, header byte with the UUID flag)
_HEADERS = {
    v: {t: (bytes((header(v, t),)), bytes((header(v, t, True),))) for t in range(2, 7)}
    for v in _VERSIONS
}

# header low nibble -> (version, message type); None where the version has no such type
_KINDS: list[tuple[str, int] | None] = [None] * 16
for _vi, _v in enumerate(_VERSIONS):
    for _mt in range(2, 7 if _v == "2.1" else 5):
        _KINDS[_vi * 5 + _mt - 2] = (_v, _mt)


_SCHEMA_MISFIT = (
    Bad,
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    OverflowError,
    RecursionError,
)


def _fallback(out: list[Any], head: Any, payload: Any) -> None:
    """Append the action item ``head`` and the payload as plain CBOR of its JSON value."""
    if payload.__class__ is not dict:
        raise ValueError("payload must be a JSON object (dict)")
    try:
        out += (head, check_json(payload))
    except (Bad, RecursionError) as exc:
        raise ValueError(f"payload is not a JSON value: {exc}") from None


def encode(frame: Frame, version: str) -> bytes:
    """Encode an OCPP-J frame of OCPP ``version`` ("1.6", "2.0.1" or "2.1")."""
    codec = _CODECS.get(version) or _codec(version)
    mt = _TYPE_OF.get(frame.__class__)
    if mt is None:
        raise ValueError(f"not an OCPP frame: {frame!r}")
    if mt > 4 and version != "2.1":
        raise ValueError(f"{frame.__class__.__name__} frames exist in OCPP 2.1 only")
    mid = frame.message_id
    if mid.__class__ is not str or not 0 < len(mid) <= MAX_MESSAGE_ID_LENGTH:
        # decode refuses it, as OCPP-J does (4.1.4): a frame the peer could not read
        raise ValueError(f"message id must be a string of 1 to {MAX_MESSAGE_ID_LENGTH} characters")
    out: list[Any] = []
    if len(mid) == 36 and _UUID_LOWER(mid):
        first = bytes.fromhex(mid.replace("-", ""))
    else:
        first = None
        enc_string(mid, out)
    # The message type was found from the class above; the attributes are read without
    # isinstance() narrowing (hot path), so through an untyped view of the frame.
    f: Any = frame
    if mt != 4 and mt != 5:
        action = f.action
        payload = f.payload
        code = codec.action_code.get(action) if action.__class__ is str else None
        if code is not None:
            n = len(out)
            out.append(code)
            st: list[Any] = [None, -1, None]
            enc = (codec.enc_resp if mt == 3 else codec.enc_req)[code]
            try:
                if enc is None:  # no schema for this direction (SEND-only action's response)
                    raise Bad("no schema")
                enc(payload, out, st)
                if st[1] == len(out) - 1 and out[-1] == 0:
                    out.pop()  # a trailing object head 0 is implied
            except _SCHEMA_MISFIT:
                del out[n:]
                _fallback(out, -1 - code, payload)
        elif action.__class__ is str:
            _fallback(out, action, payload)
        elif action is None and mt == 3:
            raise ValueError("a CallResult needs its action to be encoded")
        else:
            raise ValueError("action must be a string")
    else:
        code = f.error_code
        desc = f.error_description
        if code.__class__ is not str or desc.__class__ is not str:
            raise ValueError("error code and description must be strings")
        i = codec.error_code.get(code)
        out.append(code if i is None else i)
        try:
            details = check_json(f.error_details)
        except (Bad, RecursionError) as exc:
            raise ValueError(f"error details are not a JSON value: {exc}") from None
        if details != {} or details.__class__ is not dict:
            out += (desc, details)
        elif desc:
            out.append(desc)
    n = len(out)
    try:
        body = cbor2.dumps(out)
    except Exception as exc:  # e.g. a lone surrogate in a str: not encodable as UTF-8
        raise ValueError(f"frame is not encodable: {exc}") from None
    skip = 1 if n < 24 else _ARRAY_HEAD[(n >= 24) + (n >= 256) + (n >= 65536)]
    if first is not None:
        data = _HEADERS[version][mt][1] + first + body[skip:]
    else:
        data = _HEADERS[version][mt][0] + body[skip:]
    if len(data) > MAX_FRAME_SIZE:
        raise ValueError(f"encoded frame exceeds {MAX_FRAME_SIZE} bytes")
    return data


#: The CBOR decoder's nesting limit: a free-form JSON value may be MAX_DEPTH deep (check_json
#: enforces that) below the wrapper array and the schema's own arrays around it.
_CBOR_MAX_DEPTH = MAX_DEPTH + 16

#: The only CBOR tags a frame may hold: bignums (RFC 8949 section 3.4.3), which cbor2 writes
#: for integers beyond 64 bits. The codec writes no other tag, and several that cbor2 decodes
#: cost far more than their bytes: value sharing (28/29) makes 278 bytes stand for a tree of
#: 2**60 nodes or a cycle, string references (25/256) a 49 KB frame a 178 MB string, a decimal
#: fraction (4) of a 64 KB mantissa takes a second, a MIME message (36) or regex (35) is parsed.
_ALLOWED_TAGS = (2, 3)
#: every tag cbor2 (5.x and 6) decodes itself, less the bignums
_CBOR2_TAGS = (0, 1, 4, 5, 25, 28, 29, 30, 35, 36, 37, 52, 54, 100, 256, 258, 260, 261, 1004,
               43000, 55799)  # fmt: skip


def _refused(tag: int) -> DecodeError:
    return DecodeError(f"malformed CBOR: tag {tag} (only bignums, tags 2 and 3, are allowed)")


def _refuse_tag(tag: int, *args: Any) -> Any:  # cbor2 then passes (value, immutable)
    raise _refused(tag)


def _refuse_unknown_tag(*args: Any) -> Any:
    """cbor2's tag_hook: 5.x passes (decoder, tag), 6 (tag, immutable)."""
    tag = next(a for a in args if isinstance(a, cbor2.CBORTag))
    raise _refused(tag.tag)


# cbor2 6 takes, per call, a decoder for each tag it knows and a hook for the others: they
# refuse them at no cost (the tag's content, already decoded, is thrown away). cbor2 5.x takes
# neither per call, and a frame that may hold a tag is read head by head before cbor2 sees it.
_SEMANTIC: dict[int, Any] | None = {t: functools.partial(_refuse_tag, t) for t in _CBOR2_TAGS}
try:
    cbor2.loads(b"\x80", semantic_decoders=_SEMANTIC, tag_hook=_refuse_unknown_tag)
except TypeError:  # cbor2 5.x
    _SEMANTIC = None
#: a tag head's first byte (major type 6, argument below 28) is one of 0xc0..0xdb: frames
#: without one (most) are not read head by head
_MAYBE_TAG = None if _SEMANTIC else re.compile(rb"[\xc0-\xdb]").search


def _first_refused_tag(buf: bytes) -> int | None:
    """The first tag of the CBOR items in ``buf`` not in _ALLOWED_TAGS, or None (for cbor2
    5.x, see above). The scan reads the heads one after another (RFC 8949 section 3: initial
    byte, then 0, 1, 2, 4 or 8 argument bytes) and skips string contents; nesting does not
    matter. Broken input ends the scan: cbor2 then says why."""
    i, n = 0, len(buf)
    while i < n:
        ib = buf[i]
        major, ai = ib >> 5, ib & 31
        i += 1
        if ai < 24:
            arg = ai
        elif ai < 28:
            k = 1 << (ai - 24)
            arg = int.from_bytes(buf[i : i + k], "big")
            i += k
        elif ai == 31:  # indefinite length or break: the chunks/items follow as heads
            continue
        else:
            return None
        if major == 6:
            if arg not in _ALLOWED_TAGS:
                return arg
        elif major == 2 or major == 3:
            i += arg
    return None


def _items(data: bytes, start: int) -> list[Any]:
    """The CBOR sequence from ``start`` as a list (wrapped in an indefinite-length array)."""
    body = data[start:]
    buf = b"\x9f" + body + b"\xff"
    if _MAYBE_TAG is not None and _MAYBE_TAG(body):
        tag = _first_refused_tag(body)
        if tag is not None:
            raise _refused(tag)
    try:
        if b"\xff" not in body:
            # no 0xff byte: no break can end the array early, so loads sees every byte
            # (keywords spelled out: a **dict costs 0.7 us a call, a third of loads itself)
            if _SEMANTIC is not None:
                items = cbor2.loads(buf, max_depth=_CBOR_MAX_DEPTH, semantic_decoders=_SEMANTIC,
                                    tag_hook=_refuse_unknown_tag)  # fmt: skip
            else:
                items = cbor2.loads(buf, max_depth=_CBOR_MAX_DEPTH)
        else:
            fp = io.BytesIO(buf)
            if _SEMANTIC is not None:
                dec = cbor2.CBORDecoder(fp, max_depth=_CBOR_MAX_DEPTH,
                                        semantic_decoders=_SEMANTIC,
                                        tag_hook=_refuse_unknown_tag)  # fmt: skip
            else:
                dec = cbor2.CBORDecoder(fp, max_depth=_CBOR_MAX_DEPTH)
            items = dec.decode()
            if fp.tell() != len(buf):
                raise DecodeError("malformed CBOR: stray break or trailing bytes")
    except DecodeError:
        raise
    except Exception as exc:  # cbor2 raises several types for broken input
        if isinstance(exc.__cause__, DecodeError):  # a tag refused, wrapped by cbor2
            raise exc.__cause__ from None
        raise DecodeError(f"malformed CBOR: {exc}") from None
    if items.__class__ is not list:
        raise DecodeError("malformed CBOR")
    return items


def decode(data: bytes) -> tuple[str, Frame]:
    """Decode one frame; return ``(version, frame)``. Raises DecodeError for bad input."""
    if data.__class__ is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError("frame must be bytes")
        data = bytes(data)
    size = len(data)
    if size < 2 or size > MAX_FRAME_SIZE:
        raise DecodeError(f"frame of {size} bytes: too short or larger than {MAX_FRAME_SIZE}")
    hdr = data[0]
    if hdr >> 5 != FORMAT_VERSION:
        raise DecodeError(f"unknown codec format {hdr >> 5}")
    kind = _KINDS[hdr & 15]
    if kind is None:
        raise DecodeError(f"unknown OCPP version / message type code {hdr & 15}")
    version, mt = kind
    try:
        if hdr & 16:
            if size < 18:
                raise DecodeError("frame too short")
            items = _items(data, 17)
            h = data[1:17].hex()
            mid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            start = 0
        else:
            items = _items(data, 1)
            if not items:
                raise DecodeError("frame truncated")
            mid = dec_string(items[0])
            if not 0 < len(mid) <= MAX_MESSAGE_ID_LENGTH:  # as ocppj.from_list: OCPP-J 4.1.4
                raise DecodeError(f"message id must be 1 to {MAX_MESSAGE_ID_LENGTH} characters")
            start = 1
    except DecodeError as exc:  # the id is unreadable: RpcFrameworkError, as 1.6 spells it
        exc.version = version
        exc.error_code = error_code_for(exc.error_code, version)
        raise
    except Exception as exc:  # any failure on hostile input is still a DecodeError
        raise _decode_error(exc, None, mt, version) from None
    try:
        return version, _frame(_CODECS.get(version) or _codec(version), mt, mid, items, start)
    except Exception as exc:
        # The message id was readable (its length checked above): say so, so that a receiver
        # can answer a CALL with a CALLERROR carrying its id (OCPP-J 2.0.1 section 4.2.3)
        # instead of id "-1".
        raise _decode_error(exc, mid, mt, version) from None


def _decode_error(exc: Exception, mid: str | None, mt: int, version: str) -> DecodeError:
    """The DecodeError of a frame whose header (and so ``version``) was read.

    A CALL or SEND with a readable id is answered with its id: ``NotImplemented`` for an action
    code beyond the version's table (OCPP-J part 4 section 4.3: not known by the receiver),
    ``FormatViolation`` for anything else wrong in it; otherwise ``RpcFrameworkError``. Codes
    are spelled as ``version`` spells them (1.6: ``FormationViolation``, ``GenericError``).
    """
    if isinstance(exc, DecodeError):
        reason = exc.reason
    elif isinstance(exc, Bad):
        reason = str(exc)
    elif isinstance(exc, StopIteration):
        reason = "frame truncated: fewer items than the schema needs"
    else:
        reason = f"malformed frame: {type(exc).__name__}: {exc}"
    if mid is None or mt not in (2, 6):
        code = ErrorCode.RPC_FRAMEWORK_ERROR
    elif isinstance(exc, DecodeError) and exc.error_code == ErrorCode.NOT_IMPLEMENTED:
        code = ErrorCode.NOT_IMPLEMENTED
    else:
        code = ErrorCode.FORMAT_VIOLATION
    return DecodeError(
        reason, message_id=mid, error_code=error_code_for(code, version), version=version
    )


def _frame(codec: VersionCodec, mt: int, mid: str, items: list[Any], start: int) -> Frame:
    """The frame from its message id and its items; ``items[start]`` is the action/code."""
    n = len(items) - start
    if n < 1:
        raise DecodeError("frame truncated")
    if mt == 4 or mt == 5:
        code = items[start]
        if code.__class__ is int:
            if not 0 <= code < len(codec.errors):
                raise DecodeError("unknown error code")
            code = codec.errors[code]
        elif code.__class__ is not str:
            raise DecodeError("error code expected")
        desc = items[start + 1] if n > 1 else ""
        details = check_json(items[start + 2]) if n > 2 else {}
        if desc.__class__ is not str or n > 3:
            raise DecodeError("bad error frame")
        cls = CallError if mt == 4 else CallResultError
        return cls(mid, code, desc, details)
    act = items[start]
    c = act.__class__
    if c is int and act >= 0:
        if act >= len(codec.actions):
            raise DecodeError(f"unknown action code {act}", error_code=ErrorCode.NOT_IMPLEMENTED)
        it = iter(items)
        for _ in range(start + 1):
            next(it)
        payload = (codec.dec_resp if mt == 3 else codec.dec_req)[act](it, [None, n, None])
        if next(it, it) is not it:
            raise DecodeError("trailing items after the payload")
        action = codec.actions[act]
    else:
        if n != 2:
            raise DecodeError("bad raw payload frame")
        if c is int:
            if -1 - act >= len(codec.actions):
                raise DecodeError("bad raw payload frame")
            action = codec.actions[-1 - act]
        elif c is str:
            action = act
        else:
            raise DecodeError("action code expected")
        payload = check_json(items[start + 1])
        if payload.__class__ is not dict:
            raise DecodeError("payload must be an object")
    if mt == 2:
        return Call(mid, action, payload)
    if mt == 3:
        return CallResult(mid, payload, action)
    return Send(mid, action, payload)
