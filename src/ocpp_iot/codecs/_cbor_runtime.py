"""Private machinery of the compact CBOR codec: the value forms the generated code calls.

The tables (``_cbor_tables_*.py``, generated from the official schemas) describe every object
type of a version as a list of fields in wire order. ``tools/gen_cbor_tables.py`` also turns
them, at build time, into one encoder and one decoder function per object type, straight-line
Python in ``_cbor_codec_<v>.py`` (imported per version on first use, see ``cbor.py``).
Encoders append CBOR-ready items (ints, bytes, str, floats, lists, dicts) to a flat list;
decoders pull them from an iterator. The wire format is described in ``docs/codec.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Bad", "VersionCodec", "enc_string", "dec_string", "check_json"]


class Bad(Exception):
    """Internal: a value does not fit the schema (encoder) or the wire (decoder)."""


_M: Any = object()  # "missing" marker
_NOIMPL: Any = object()  # "no implied value" marker
MAX_DEPTH = 64  # nesting limit for free-form JSON values (the CBOR decoder allows a margin more)
#: Integers of the wire must be writable as OCPP-J: Python's JSON writer refuses an int of more
#: than 4,300 digits (``sys.int_info.default_max_str_digits``), so a bignum (CBOR tags 2 and 3)
#: beyond that is refused on decode, where it costs nothing for the values OCPP uses.
_INT_BOUND = 10**4300
_INT_FLOOR = -_INT_BOUND  # (negated once: -_INT_BOUND in a test would build it every time)
#: Packed text holds 9 to 120 characters (see enc_string): 1 + 6 * 120 bits, 91 bytes.
_PACK_MAX_BYTES = 91

# ---------------------------------------------------------------------------------------------
# strings: text, decimal, UUID, hex token


_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_UUID_LOWER = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch
_UUID_UPPER = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}").fullmatch
# packed text: 6 bits a character from this alphabet, after a 1 bit marking the start
_PACK_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.-"
_PACK = frozenset(_PACK_ALPHABET)
_PACK_IDX = {ch: i for i, ch in enumerate(_PACK_ALPHABET)}


def enc_string(v: Any, out: list[Any], st: Any = None) -> None:
    """Append the compact form of a string: uint (decimal), 16-byte bstr (lower-case UUID),
    bstr with a kind byte (0 upper-case hex, 1 lower-case hex, 2 upper-case UUID), or text."""
    if v.__class__ is not str:
        raise Bad("string expected")
    n = len(v)
    if n == 36:
        if _UUID_LOWER(v):
            out.append(bytes.fromhex(v.replace("-", "")))
            return
        if _UUID_UPPER(v):
            out.append(b"\x02" + bytes.fromhex(v.replace("-", "")))
            return
    elif 0 < n <= 19 and _DIGITS.issuperset(v) and (v[0] != "0" or n == 1):
        out.append(int(v))
        return
    if n >= 4 and not n & 1 and n != 30 and _HEX.issuperset(v):  # 16-byte bstr: only UUIDs
        b = bytes.fromhex(v)
        x = b.hex()
        if x == v:
            out.append(b"\x01" + b)
            return
        if x.upper() == v:
            out.append(b"\x00" + b)
            return
    if 9 <= n <= 120 and _PACK.issuperset(v):
        packed = 1
        for ch in v:
            packed = packed << 6 | _PACK_IDX[ch]
        k = (packed.bit_length() + 7) >> 3
        out.append(b"\x03" + packed.to_bytes(16 if k == 15 else k, "big"))
        return
    out.append(v)


def _unpack(b: bytes) -> str:
    if len(b) > _PACK_MAX_BYTES:  # the encoder packs at most 120 characters
        raise Bad("bad packed text")
    x = int.from_bytes(b, "big")
    n, r = divmod(x.bit_length() - 1, 6)
    if r or n == 0 or n > 120:
        raise Bad("bad packed text")
    chars = [""] * n
    for i in range(n - 1, -1, -1):
        chars[i] = _PACK_ALPHABET[x & 63]
        x >>= 6
    return "".join(chars)


def _uuid(h: str) -> str:
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def dec_string(x: Any) -> str:
    c = x.__class__
    if c is str:
        return x  # type: ignore[no-any-return]
    if c is bytes:
        n = len(x)
        if n == 16:
            return _uuid(x.hex())
        if n >= 2:
            k = x[0]
            if k == 0:
                return x[1:].hex().upper()  # type: ignore[no-any-return]
            if k == 1:
                return x[1:].hex()  # type: ignore[no-any-return]
            if k == 2 and n == 17:
                return _uuid(x[1:].hex()).upper()
            if k == 3:
                return _unpack(x[1:])
        raise Bad("bad string form")
    if c is int and x >= 0:
        return str(x)
    raise Bad("string expected")


def _mk_enc_known(table: dict[str, int]) -> Callable[[Any, list[Any], Any], None]:
    def enc(v: Any, out: list[Any], st: Any) -> None:
        i = table.get(v) if v.__class__ is str else None
        if i is None:
            enc_string(v, out)
        else:
            out.append(-1 - i)

    return enc


def _mk_dec_known(values: tuple[str, ...]) -> Callable[[Any], str]:
    n = len(values)

    def dec(x: Any) -> str:
        if x.__class__ is int and x < 0:
            i = -1 - x
            if i < n:
                return values[i]
            raise Bad("unknown string code")
        return dec_string(x)

    return dec


# ---------------------------------------------------------------------------------------------
# numbers


_P10 = (1, 10, 100, 1000)
_LIM = 1 << 53
_LIMF = float(_LIM)


def enc_number(v: Any, out: list[Any], st: Any = None) -> None:
    """float -> int m*4+d (v == m / 10**d exactly, d <= 3) or CBOR float; int -> [int].

    ``m / 10**d`` is a correctly rounded division, so when it equals ``v`` the decoder gets the
    very same double back (and the same ``repr``); the smallest such ``d`` is the number of
    decimals of ``repr(v)``."""
    c = v.__class__
    if c is float:
        if -_LIMF < v < _LIMF:
            if v.is_integer():
                if v == 0.0 and str(v)[0] == "-":  # -0.0 keeps its sign only as a float
                    out.append(v)
                    return
                w = int(v) * 4
            else:
                for d in (1, 2, 3):
                    m = round(v * _P10[d])
                    if m / _P10[d] == v:
                        w = m * 4 + d
                        break
                else:
                    out.append(v)
                    return
            if 65535 < w < 16777216:
                out.append(w.to_bytes(3, "big"))
            elif w > 4294967295:
                out.append(w.to_bytes((w.bit_length() + 7) >> 3, "big"))
            else:
                out.append(w)
            return
        if v - v != 0.0:
            raise Bad("NaN and infinity are not JSON numbers")
        out.append(v)
    elif c is int:
        if not _INT_FLOOR < v < _INT_BOUND:  # decode refuses it: OCPP-J could not write it
            raise Bad("integer too large for OCPP-J")
        out.append([v])
    else:
        raise Bad("number expected")


def dec_number(x: Any) -> Any:
    c = x.__class__
    if c is int:
        d = x & 3
        return (x >> 2) / _P10[d] if d else float(x >> 2)
    if c is float:
        if x - x != 0.0:
            raise Bad("NaN and infinity are not JSON numbers")
        return x
    if c is bytes and 0 < len(x) <= 8:
        x = int.from_bytes(x, "big")
        d = x & 3
        return (x >> 2) / _P10[d] if d else float(x >> 2)
    if c is list and len(x) == 1 and x[0].__class__ is int:
        if _INT_FLOOR < x[0] < _INT_BOUND:
            return x[0]
        raise Bad("integer too large for OCPP-J")
    raise Bad("number expected")


def enc_integer(v: Any, out: list[Any], st: Any = None) -> None:
    c = v.__class__
    if c is int:
        if 65535 < v < 16777216:
            out.append(v.to_bytes(3, "big"))
        elif 4294967295 < v < 72057594037927936:
            out.append(v.to_bytes((v.bit_length() + 7) >> 3, "big"))
        elif _INT_FLOOR < v < _INT_BOUND:
            out.append(v)
        else:  # decode refuses it: OCPP-J could not write it
            raise Bad("integer too large for OCPP-J")
    elif c is float and v - v == 0.0:
        out.append(v)
    else:
        raise Bad("integer expected")


def dec_integer(x: Any) -> Any:
    c = x.__class__
    if c is int:
        if _INT_FLOOR < x < _INT_BOUND:
            return x
        raise Bad("integer too large for OCPP-J")
    if c is float and x - x == 0.0:
        return x
    if c is bytes and 0 < len(x) <= 8:
        return int.from_bytes(x, "big")
    raise Bad("integer expected")


# ---------------------------------------------------------------------------------------------
# timestamps (RFC 3339 date-time)

_TS = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
).fullmatch
_DIM = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_P10_9 = tuple(10**i for i in range(10))
_DELTA_LIM = 1 << 32


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


_EPOCH_2020_MS = _days_from_civil(2020, 1, 1) * 86400000
# pure memo caches of the date part (no state between frames: same input, same output)
_DAYS: dict[str, int] = {}
_DATES: dict[int, str] = {}


def _days(y: int, mo: int, d: int) -> int:
    """Days since 1970-01-01 of a valid date from 1970 on, else -1."""
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if y < 1970 or not 1 <= mo <= 12 or d < 1 or d > _DIM[mo] + (mo == 2 and leap):
        return -1
    return _days_from_civil(y, mo, d)


_SHORT_LIM = 1 << 40


def _parse_timestamp(v: str) -> tuple[int, int, int | None] | None:
    """(units, fraction digits, offset minutes or None) of a compact-able date-time, else None."""
    mt = _TS(v)
    if mt is None:
        return None
    ys, mos, ds, hs, mis, ss, frac, tz = mt.groups()
    days = _DAYS.get(v[:10])
    if days is None:
        days = _days(int(ys), int(mos), int(ds))
        if len(_DAYS) > 4096:
            _DAYS.clear()
        _DAYS[v[:10]] = days
    hh = int(hs)
    mi = int(mis)
    sec = int(ss)
    if days < 0 or hh > 23 or mi > 59 or sec > 59:
        return None
    if tz == "Z":
        off = None
    else:
        oh = int(tz[1:3])
        om = int(tz[4:6])
        if oh > 23 or om > 59 or (tz[0] == "-" and oh == 0 and om == 0):
            return None
        off = oh * 60 + om
        if tz[0] == "-":
            off = -off
    f = len(frac) if frac else 0
    units = (days * 86400 + hh * 3600 + mi * 60 + sec) * _P10_9[f]
    if f:
        units += int(frac)
    return units, f, off


def enc_timestamp(v: Any, out: list[Any], st: list[Any]) -> None:
    """Compact RFC 3339 date-time. bstr of 5 bytes: milliseconds since 2020-01-01T00:00:00Z
    (form ``...T..:..:...sssZ``); other bstr lengths: packed general form; int: delta to the
    previous compact timestamp of the frame with the same precision and offset; text: as is.
    ``st[0]`` is the previous compact timestamp (units, digits, offset), ``st[2]`` the previous
    timestamp string of the frame."""
    if v.__class__ is not str:
        raise Bad("string expected")
    st[2] = v
    units = -1
    if len(v) == 24 and v[23] == "Z" and v[19] == "." and v[13] == ":" and v[16] == ":":
        # fast path for the common YYYY-MM-DDTHH:MM:SS.sssZ, once its date is known valid
        days = _DAYS.get(v[:10], -1)
        t = v[11:13] + v[14:16] + v[17:19] + v[20:23]
        if days >= 0 and v[10] == "T" and t.isascii() and t.isdigit():
            n = int(t)
            hh = n // 10000000
            mi = n // 100000 % 100
            sec = n // 1000 % 100
            if hh < 24 and mi < 60 and sec < 60:
                units = (days * 86400 + hh * 3600 + mi * 60 + sec) * 1000 + n % 1000
                f = 3
                off = None
    if units < 0:
        parsed = _parse_timestamp(v)
        if parsed is None:
            out.append(v)
            return
        units, f, off = parsed
    prev = st[0]
    st[0] = (units, f, off)
    if prev is not None and prev[1] == f and prev[2] == off:
        delta = units - prev[0]
        if -_DELTA_LIM < delta < _DELTA_LIM:
            out.append(delta)
            return
    if f == 3 and off is None and 0 <= units - _EPOCH_2020_MS < _SHORT_LIM:
        out.append((units - _EPOCH_2020_MS).to_bytes(5, "big"))
        return
    x = units
    if off is not None:
        x = x * 4096 + off + 2048
    x = (x * 16 + f) * 2 + (off is not None)
    n = (x.bit_length() + 7) >> 3
    out.append(x.to_bytes(6 if n == 5 else n or 1, "big"))


def _date(days: int) -> str:
    if days > 2932896:  # 9999-12-31
        raise Bad("timestamp after year 9999")
    y, mo, d = _civil_from_days(days)
    date = f"{y:04d}-{mo:02d}-{d:02d}"
    if len(_DATES) > 4096:
        _DATES.clear()
    _DATES[days] = date
    return date


def dec_timestamp(x: Any, st: list[Any]) -> str:
    c = x.__class__
    if c is str:
        st[2] = x
        return x  # type: ignore[no-any-return]
    if c is int:
        prev = st[0]
        if prev is None:
            raise Bad("timestamp delta without a previous timestamp")
        units = prev[0] + x
        f = prev[1]
        off = prev[2]
    elif c is bytes:
        n = len(x)
        if n == 5:  # the short form, formatted directly
            units = int.from_bytes(x, "big") + _EPOCH_2020_MS
            secs, ms = divmod(units, 1000)
            days, sod = divmod(secs, 86400)
            date = _DATES.get(days) or _date(days)
            hh, rem = divmod(sod, 3600)
            mi, sec = divmod(rem, 60)
            st[0] = (units, 3, None)
            s = f"{date}T{hh:02d}:{mi:02d}:{sec:02d}.{ms:03d}Z"
            st[2] = s
            return s
        if 0 < n <= 12:
            v = int.from_bytes(x, "big")
            has_off = v & 1
            f = (v >> 1) & 15
            v >>= 5
            if f > 9:
                raise Bad("bad timestamp precision")
            if has_off:
                off = (v & 4095) - 2048
                v >>= 12
                if not -1439 <= off <= 1439:
                    raise Bad("bad timestamp offset")
            else:
                off = None
            units = v
        else:
            raise Bad("bad timestamp length")
    else:
        raise Bad("timestamp expected")
    if units < 0:
        raise Bad("timestamp before 1970")
    secs, fr = divmod(units, _P10_9[f])
    days, sod = divmod(secs, 86400)
    date = _DATES.get(days) or _date(days)
    hh, rem = divmod(sod, 3600)
    mi, sec = divmod(rem, 60)
    st[0] = (units, f, off)
    s = f"{date}T{hh:02d}:{mi:02d}:{sec:02d}"
    if f:
        s += f".{fr:0{f}d}"
    if off is None:
        s += "Z"
    else:
        a = -off if off < 0 else off
        s = f"{s}{'-' if off < 0 else '+'}{a // 60:02d}:{a % 60:02d}"
    st[2] = s
    return s


# ---------------------------------------------------------------------------------------------
# free-form JSON values


def check_json(v: Any, depth: int = 0) -> Any:
    """Return ``v`` if it is a JSON value (dict with str keys, list, str, int, float, bool,
    None) nested at most MAX_DEPTH deep; raise Bad otherwise. Used both ways."""
    c = v.__class__
    if c is str or c is bool or v is None:
        return v
    if c is int:
        if _INT_FLOOR < v < _INT_BOUND:
            return v
        raise Bad("integer too large for OCPP-J")
    if c is float:
        if v - v != 0.0:
            raise Bad("NaN and infinity are not JSON numbers")
        return v
    if depth >= MAX_DEPTH:
        raise Bad("JSON value nested too deeply")
    if c is dict:
        for k, x in v.items():
            if k.__class__ is not str:
                raise Bad("object key must be a string")
            check_json(x, depth + 1)
        return v
    if c is list:
        for x in v:
            check_json(x, depth + 1)
        return v
    raise Bad(f"not a JSON value: {c.__name__}")


# ---------------------------------------------------------------------------------------------
# what the generated encoders and decoders are and call


#: A compiled payload encoder: (payload, output items, per-frame state list) -> None.
Encoder = Callable[[Any, list[Any], list[Any]], None]
#: A compiled payload decoder: (items iterator, per-frame state list) -> payload.
Decoder = Callable[[Iterator[Any], list[Any]], Any]


class VersionCodec:
    """The encoders/decoders of one OCPP version, from its generated ``_cbor_codec_<v>`` module
    (``tools/gen_cbor_tables.py`` writes it at build time)."""

    def __init__(self, module: Any) -> None:
        self.format: int = module.FORMAT
        self.version: str = module.VERSION
        self.actions: list[str] = list(module.ACTIONS)
        self.action_code: dict[str, int] = {a: i for i, a in enumerate(self.actions)}
        self.errors: list[str] = list(module.ERRORS)
        self.error_code: dict[str, int] = {e: i for i, e in enumerate(self.errors)}
        # None where a message has no response schema (SEND-only messages)
        self.enc_req: tuple[Encoder | None, ...] = module.ENC_REQ
        self.enc_resp: tuple[Encoder | None, ...] = module.ENC_RESP
        self.dec_req: tuple[Decoder | None, ...] = module.DEC_REQ
        self.dec_resp: tuple[Decoder | None, ...] = module.DEC_RESP


def _dec_enum_item(values: tuple[str, ...], x: Any) -> str:
    if x.__class__ is not int or not 0 <= x < len(values):
        raise Bad("bad enum code")
    return values[x]


def _enc_bool_item(v: Any) -> bool:
    if v is True or v is False:
        return v
    raise Bad("boolean expected")


def _dec_bool_item(x: Any) -> bool:
    if x is True or x is False:
        return x
    raise Bad("boolean expected")
