"""Python source of the compact CBOR codec's encoders and decoders, from the codec tables.

Used by ``tools/gen_cbor_tables.py`` to write ``src/ocpp_iot/codecs/_cbor_codec_<v>.py`` at build
time, next to the tables it writes, so that the node imports compiled code (a ``.pyc``) instead
of generating and compiling ~200 KB of source on its first frame (issue 16: that step cost
210 ms and 24 MiB of RSS). The wire format is described in ``docs/codec.md``; the value forms
the generated code calls are in ``ocpp_iot.codecs._cbor_runtime``.
"""

from __future__ import annotations

from typing import Any

#: the value of the "absent" key of an optional enum's table, written as the runtime's ``_M``
MISSING: Any = object()

#: names the generated modules import from ``ocpp_iot.codecs._cbor_runtime`` (as, from)
RUNTIME_NAMES = (
    ("Bad", "Bad"),
    ("_M", "_M"),
    ("_NOIMPL", "_NOIMPL"),
    ("_db", "_dec_bool_item"),
    ("_dei", "_dec_enum_item"),
    ("_eb", "_enc_bool_item"),
    ("_mk_dec_known", "_mk_dec_known"),
    ("_mk_enc_known", "_mk_enc_known"),
    ("check_json", "check_json"),
    ("dec_integer", "dec_integer"),
    ("dec_number", "dec_number"),
    ("dec_string", "dec_string"),
    ("dec_timestamp", "dec_timestamp"),
    ("enc_integer", "enc_integer"),
    ("enc_number", "enc_number"),
    ("enc_string", "enc_string"),
    ("enc_timestamp", "enc_timestamp"),
)


def lit(value: Any) -> str:
    """A Python expression for a constant of the tables: JSON values, tuples, ``MISSING``."""
    if value is MISSING:
        return "_M"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    if isinstance(value, tuple):
        items = [lit(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, list):
        return "[" + ", ".join(lit(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in value.items()) + "}"
    raise ValueError(f"no literal for {value!r}")


class CodecSource:
    """Generates the Python source of the encoders and decoders of one version's types.

    Each object type ``k`` gets an encoder ``e<k>(o, out, st)`` and a decoder ``d<k>(it,
    st)`` (the per-frame state ``st`` is ``[previous compact timestamp, item count,
    previous timestamp string]``); arrays get helpers ``_l<n>e`` / ``_l<n>d``. Their constants
    (enum tables, known-string codecs, property name sets, implied values) are module-level
    names ``_c<n>``, one per distinct source expression.
    """

    def __init__(self) -> None:
        self.consts: dict[str, str] = {}  # source expression -> name
        self.src: list[str] = []
        self.n = 0

    def const(self, expr: str) -> str:
        name = self.consts.get(expr)
        if name is None:
            self.n += 1
            name = self.consts[expr] = f"_c{self.n}"
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
            t = self.const(lit({v: i for i, v in enumerate(vals)}))
            return f"out.append({t}[{{v}}])", f"_dei({self.const(lit(vals))}, next(it))"
        if kind == "k":
            vals = tuple(spec[1])
            ek = self.const(f"_mk_enc_known({lit({v: i for i, v in enumerate(vals)})})")
            dk = self.const(f"_mk_dec_known({lit(vals)})")
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
                    table[MISSING] = 0  # absent (a JSON null still fails: KeyError -> fallback)
                t = self.const(lit(table))
                vt = self.const(lit(tuple([None] * off + vals)))
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
                    f"{ind}if v{j}.__class__ is str and v{j} == st[2]:",
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
                it = self.const(lit(impl))
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
                    t = self.const(lit({v: (i + 2) * mult for i, v in enumerate(vals)}))
                    vt = self.const(lit(tuple([None, None] + vals)))
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
        names_c = self.const(f"frozenset({lit(names)})")
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


def module_source(types: list[Any], actions: list[Any]) -> list[str]:
    """The lines of a module defining every type's encoder and decoder, their constants, and
    ``ENC_REQ``, ``ENC_RESP``, ``DEC_REQ``, ``DEC_RESP`` indexed by action code (``None``
    where a message has no response schema: type index -1)."""
    gen = CodecSource()
    for k, (_title, fields, extras) in enumerate(types):
        gen.object_type(k, fields, extras)
    lines = ["from ocpp_iot.codecs._cbor_runtime import ("]
    lines += [
        f"    {src} as {name}," if src != name else f"    {name}," for name, src in RUNTIME_NAMES
    ]
    lines += [")", ""]
    lines += [f"{name} = {expr}" for expr, name in gen.consts.items()]
    lines += [""] + gen.src + [""]
    for table, prefix, col in (
        ("ENC_REQ", "e", 1),
        ("ENC_RESP", "e", 2),
        ("DEC_REQ", "d", 1),
        ("DEC_RESP", "d", 2),
    ):
        refs = [f"{prefix}{a[col]}" if a[col] >= 0 else "None" for a in actions]
        lines += [f"{table} = ({', '.join(refs)},)"]
    return lines
