"""Private machinery of the compact CBOR codec: value forms and the per-schema compiler.

The tables (``_cbor_tables_*.py``, generated from the official schemas) describe every object
type of a version as a list of fields in wire order. :func:`compile_version` turns them into one
encoder and one decoder function per object type, generated as straight-line Python source and
compiled once per version on first use. Encoders append CBOR-ready items (ints, bytes, str,
floats, lists, dicts) to a flat list; decoders pull them from an iterator. The wire format is
described in ``docs/codec.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Bad", "VersionCodec", "compile_version", "enc_string", "dec_string", "check_json"]


class Bad(Exception):
    """Internal: a value does not fit the schema (encoder) or the wire (decoder)."""


_M: Any = object()  # "missing" marker
_NOIMPL: Any = object()  # "no implied value" marker
MAX_DEPTH = 64  # nesting limit for free-form JSON values (and the CBOR decoder)

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
    x = int.from_bytes(b, "big")
    n, r = divmod(x.bit_length() - 1, 6)
    if r or n == 0:
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
        return x[0]
    raise Bad("number expected")


def enc_integer(v: Any, out: list[Any], st: Any = None) -> None:
    c = v.__class__
    if c is int:
        if 65535 < v < 16777216:
            out.append(v.to_bytes(3, "big"))
        elif 4294967295 < v < 72057594037927936:
            out.append(v.to_bytes((v.bit_length() + 7) >> 3, "big"))
        else:
            out.append(v)
    elif c is float and v - v == 0.0:
        out.append(v)
    else:
        raise Bad("integer expected")


def dec_integer(x: Any) -> Any:
    c = x.__class__
    if c is int or (c is float and x - x == 0.0):
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
    if c is str or c is int or c is bool or v is None:
        return v
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
# the compiler


#: A compiled payload encoder: (payload, output items, per-frame state list) -> None.
Encoder = Callable[[Any, list[Any], list[Any]], None]
#: A compiled payload decoder: (items iterator, per-frame state list) -> payload.
Decoder = Callable[[Iterator[Any], list[Any]], Any]


class VersionCodec:
    """Compiled encoders/decoders of one OCPP version."""

    def __init__(self, tables: Any) -> None:
        self.format: int = tables.FORMAT
        self.version: str = tables.VERSION
        self.actions: list[str] = [a[0] for a in tables.ACTIONS]
        self.action_code: dict[str, int] = {a: i for i, a in enumerate(self.actions)}
        self.errors: list[str] = list(tables.ERRORS)
        self.error_code: dict[str, int] = {e: i for i, e in enumerate(self.errors)}
        ns = _compile(tables.TYPES)
        # a type index of -1 (no response schema: SEND-only messages) maps to None
        self.enc_req: list[Encoder | None] = [ns.get(f"e{a[1]}") for a in tables.ACTIONS]
        self.enc_resp: list[Encoder | None] = [ns.get(f"e{a[2]}") for a in tables.ACTIONS]
        self.dec_req: list[Decoder | None] = [ns.get(f"d{a[1]}") for a in tables.ACTIONS]
        self.dec_resp: list[Decoder | None] = [ns.get(f"d{a[2]}") for a in tables.ACTIONS]


def compile_version(tables: Any) -> VersionCodec:
    return VersionCodec(tables)


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


_BASE_NS: dict[str, Any] = {
    "Bad": Bad,
    "_M": _M,
    "_NOIMPL": _NOIMPL,
    "enc_string": enc_string,
    "dec_string": dec_string,
    "enc_number": enc_number,
    "dec_number": dec_number,
    "enc_integer": enc_integer,
    "dec_integer": dec_integer,
    "enc_timestamp": enc_timestamp,
    "dec_timestamp": dec_timestamp,
    "check_json": check_json,
    "_dei": _dec_enum_item,
    "_eb": _enc_bool_item,
    "_db": _dec_bool_item,
    "next": next,
    "len": len,
}


class _Gen:
    """Generates the Python source of the encoders and decoders of one version's types."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = dict(_BASE_NS)
        self.src: list[str] = []
        self.n = 0

    def const(self, value: Any) -> str:
        self.n += 1
        name = f"_c{self.n}"
        self.ns[name] = value
        return name

    def value_codec(self, spec: Any) -> tuple[str, str]:
        """(statement template encoding ``{v}``, expression decoding one value from ``it``)."""
        if spec == "s":
            return "enc_string({v}, out)", "dec_string(next(it))"
        if spec == "n":
            return "enc_number({v}, out)", "dec_number(next(it))"
        if spec == "i":
            return "enc_integer({v}, out)", "dec_integer(next(it))"
        if spec == "t" or spec == "T":
            return "enc_timestamp({v}, out, st)", "dec_timestamp(next(it), st)"
        if spec == "a":
            return "out.append(check_json({v}))", "check_json(next(it))"
        if spec == "b":
            return "out.append(_eb({v}))", "_db(next(it))"
        kind = spec[0]
        if kind == "o":
            return f"e{spec[1]}({{v}}, out, st)", f"d{spec[1]}(it, st)"
        if kind == "e":
            vals = tuple(spec[1])
            t = self.const({v: i for i, v in enumerate(vals)})
            return f"out.append({t}[{{v}}])", f"_dei({self.const(vals)}, next(it))"
        if kind == "k":
            vals = tuple(spec[1])
            ek = self.const(_mk_enc_known({v: i for i, v in enumerate(vals)}))
            dk = self.const(_mk_dec_known(vals))
            return f"{ek}({{v}}, out, st)", f"{dk}(next(it))"
        if kind == "l":
            enc_s, dec_x = self.value_codec(spec[1])
            self.n += 1
            name = f"_l{self.n}"
            self.src += [
                f"def {name}e(v, out, st):",
                "    if v.__class__ is not list:",
                "        raise Bad('array expected')",
                "    out.append(len(v))",
                "    for x in v:",
                "        " + enc_s.format(v="x"),
                f"def {name}d(it, st):",
                "    n = next(it)",
                "    if n.__class__ is not int or not 0 <= n <= st[1]:",
                "        raise Bad('bad array length')",
                f"    return [{dec_x} for _ in range(n)]",
            ]
            return f"{name}e({{v}}, out, st)", f"{name}d(it, st)"
        raise ValueError(f"unsupported spec {spec!r}")

    def object_type(self, k: int, fields: list[Any], extras: bool) -> None:
        names = tuple(f[0] for f in fields)
        e = [
            f"def e{k}(o, out, st):",
            "    if o.__class__ is not dict:",
            "        raise Bad('object expected')",
            "    h = 0",
        ]
        # head digits -> properties: (lines, zero digit means "absent", lines run when skipped)
        dd: list[tuple[list[str], bool, list[str]]] = []
        ev: list[str] = []  # value encoding, after the head
        dv: list[str] = []  # value decoding
        mult = 1
        for j, (name, spec, req) in enumerate(fields):
            key = repr(name)
            kind = spec[0] if isinstance(spec, list) else spec
            if kind == "e":
                vals = list(spec[1])
                off = 0 if req else 1
                n = len(vals) + off
                table: dict[Any, int] = {v: (i + off) * mult for i, v in enumerate(vals)}
                if not req:
                    table[_M] = 0  # absent (a JSON null still fails: KeyError -> fallback)
                t = self.const(table)
                vt = self.const(tuple([None] * off + vals))
                if req:
                    e += [f"    h += {t}[o[{key}]]"]
                    dd.append(([f"    o[{key}] = {vt}[h % {n}]", f"    h //= {n}"], False, []))
                else:
                    e += [f"    h += {t}[o.get({key}, _M)]"]
                    lines = [f"    y = h % {n}", f"    h //= {n}", "    if y:"]
                    dd.append((lines + [f"        o[{key}] = {vt}[y]"], True, []))
                mult *= n
            elif kind == "b":
                if req:
                    e += [f"    v = o[{key}]", "    if v is True:"]
                    e += [f"        h += {mult}", "    elif v is not False:"]
                    e += ["        raise Bad('boolean expected')"]
                    dd.append(([f"    o[{key}] = h & 1 == 1", "    h >>= 1"], False, []))
                    mult *= 2
                else:
                    e += [f"    v = o.get({key}, _M)", "    if v is True:"]
                    e += [f"        h += {2 * mult}", "    elif v is False:"]
                    e += [f"        h += {mult}", "    elif v is not _M:"]
                    e += ["        raise Bad('boolean expected')"]
                    lines = [
                        "    y = h % 3",
                        "    h //= 3",
                        "    if y:",
                        f"        o[{key}] = y == 2",
                    ]
                    dd.append((lines, True, []))
                    mult *= 3
            elif kind == "T":
                # digit: required 0 explicit / 1 same as the previous timestamp of the frame;
                # optional 0 absent / 1 explicit / 2 same
                base = 0 if req else 1
                n = 2 if req else 3
                if req:
                    e += [f"    v{j} = o[{key}]"]
                else:
                    e += [
                        f"    v{j} = o.get({key}, _M)",
                        f"    if v{j} is not _M:",
                    ]
                ind = "    " if req else "        "
                e += [
                    f"{ind}if v{j} == st[2]:",
                    f"{ind}    h += {(base + 1) * mult}",
                    f"{ind}    v{j} = _M",
                ]
                if base:
                    e += [f"{ind}else:", f"{ind}    h += {mult}"]
                ev += [f"    if v{j} is not _M:", f"        enc_timestamp(v{j}, out, st)"]
                # a repeat is resolved when the head is read, as the encoder decided it when
                # it built the head: before any value of this object was written
                lines = [
                    f"    y{j} = h % {n}",
                    f"    h //= {n}",
                    f"    if y{j} == {base + 1}:",
                    "        if st[2] is None:",
                    "            raise Bad('repeated timestamp without a previous one')",
                    f"        o[{key}] = st[2]",
                ]
                dd.append((lines, not req, [f"    y{j} = 0"]))
                dv += [f"    if y{j} == {base}:", f"        o[{key}] = dec_timestamp(next(it), st)"]
                mult *= n
            elif kind == "u":
                _, sib, table, default, inner = spec
                impl = {m: u for m, u in table}
                impl[None] = default
                it = self.const(impl)
                explicit_enum = isinstance(inner, list) and inner[0] == "e"
                n = len(inner[1]) + 2 if explicit_enum else 3
                copy = "dict" if isinstance(default, dict) else ""
                # digit 0 = the implied value, 1 = absent; swapped when the sibling is absent
                e += [
                    f"    s = o.get({sib!r})",
                    f"    u{j} = o.get({key}, _M)",
                    f"    if u{j} is _M:",
                    "        if s is not None:",
                    f"            h += {mult}",
                    "    else:",
                    f"        if u{j} == {it}.get(s, _NOIMPL):",
                    f"            u{j} = _M",
                    "            if s is None:",
                    f"                h += {mult}",
                    "        else:",
                ]
                lines = [
                    f"    y = h % {n}",
                    f"    h //= {n}",
                    f"    if y < 2 and (y == 0) == ({sib!r} in o):",
                    f"        z = {it}.get(o.get({sib!r}), _NOIMPL)",
                    "        if z is _NOIMPL:",
                    "            raise Bad('no implied value')",
                    f"        o[{key}] = {copy}(z)",
                ]
                if explicit_enum:
                    vals = list(inner[1])
                    t = self.const({v: (i + 2) * mult for i, v in enumerate(vals)})
                    vt = self.const(tuple([None, None] + vals))
                    e += [f"            h += {t}[u{j}]", f"            u{j} = _M"]
                    lines += ["    if y > 1:", f"        o[{key}] = {vt}[y]"]
                else:
                    enc_s, dec_x = self.value_codec(inner)
                    e += [f"            h += {2 * mult}"]
                    ev += [f"    if u{j} is not _M:", "        " + enc_s.format(v=f"u{j}")]
                    lines += [f"    p{j} = y == 2"]
                    dv += [f"    if p{j}:", f"        o[{key}] = {dec_x}"]
                dd.append((lines, False, []))
                mult *= n
            else:
                enc_s, dec_x = self.value_codec(spec)
                if req:
                    e += [f"    v{j} = o[{key}]"]
                    ev += ["    " + enc_s.format(v=f"v{j}")]
                    dv += [f"    o[{key}] = {dec_x}"]
                else:
                    e += [f"    v{j} = o.get({key}, _M)", f"    if v{j} is not _M:"]
                    e += [f"        h += {mult}"]
                    ev += [f"    if v{j} is not _M:", "        " + enc_s.format(v=f"v{j}")]
                    dd.append(([f"    p{j} = h & 1", "    h >>= 1"], True, [f"    p{j} = 0"]))
                    dv += [f"    if p{j}:", f"        o[{key}] = {dec_x}"]
                    mult *= 2
        names_c = self.const(frozenset(names))
        if extras:
            e += [
                f"    if not o.keys() <= {names_c}:",
                f"        ex = {{a: b for a, b in o.items() if a not in {names_c}}}",
                f"        h += {mult}",
                "    else:",
                "        ex = None",
            ]
            ev += ["    if ex is not None:", "        out.append(check_json(ex))"]
            dd.append((["    px = h & 1", "    h >>= 1"], True, ["    px = 0"]))
            dv += [
                "    if px:",
                "        ex = check_json(next(it))",
                f"        if ex.__class__ is not dict or not ex or not {names_c}.isdisjoint(ex):",
                "            raise Bad('bad extra properties')",
                "        o.update(ex)",
            ]
            mult *= 2
        else:
            e += [f"    if not o.keys() <= {names_c}:", "        raise Bad('unknown property')"]
        d = [f"def d{k}(it, st):", "    o = {}"]
        if mult > 1:
            e += ["    st[1] = len(out)", "    out.append(h)"]
            d += [
                "    h = next(it, 0)",
                "    if h.__class__ is not int or h < 0:",
                "        raise Bad('object head expected')",
            ]
            # once the rest of the head is 0, digits whose 0 means "absent" need no work
            cut = len(dd)
            while cut and dd[cut - 1][1]:
                cut -= 1
            for lines, _, _ in dd[:cut]:
                d += lines
            if cut < len(dd):
                for _, _, init in dd[cut:]:
                    d += init
                d += ["    if h:"]
                for lines, _, _ in dd[cut:]:
                    d += ["    " + line for line in lines]
                d += ["        if h:", "            raise Bad('object head out of range')"]
            else:
                d += ["    if h:", "        raise Bad('object head out of range')"]
        self.src += e + ev + d + dv + ["    return o"]


def _compile(types: list[Any]) -> dict[str, Any]:
    """Generate and exec the source of one encoder ``e<i>`` and decoder ``d<i>`` per type."""
    gen = _Gen()
    for k, (_title, fields, extras) in enumerate(types):
        gen.object_type(k, fields, extras)
    code = compile("\n".join(gen.src), "<ocpp_iot.codecs.cbor tables>", "exec")
    exec(code, gen.ns)  # source generated above from the versioned tables
    return gen.ns
