#!/usr/bin/env python3
"""Generate the compact CBOR codec tables from the official OCPP JSON schemas.

Reads the schemas shipped in the PyPI package ``ocpp`` (``v16/schemas``, ``v201/schemas``,
``v21/schemas``) and writes two modules per OCPP version: the tables,
``src/ocpp_iot/codecs/_cbor_tables_<v>.py``, and the codec compiled from them,
``src/ocpp_iot/codecs/_cbor_codec_<v>.py``: one encoder and one decoder function per object type
(source from ``tools/cbor_codegen.py``), imported by the codec per version on first use. Only
structure is taken from the schemas (property
names, types, ``required``, ``enum`` values, ``format: date-time``, ``additionalProperties``);
no description text. The layout rules (field order on the wire, action code order) are in this
file and documented in ``docs/codec.md``.

    python tools/gen_cbor_tables.py           # write the tables and the codec modules
    python tools/gen_cbor_tables.py --check   # exit 1 if the committed ones differ
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from cbor_codegen import module_source

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "src" / "ocpp_iot" / "codecs"

#: Wire format version written in the top three bits of every frame's first byte. Bump it
#: whenever a rule below or the schemas (the ``ocpp`` package version) change the tables.
FORMAT_VERSION = 1

VERSIONS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}

# Action codes 0..23 fit in one CBOR byte. The actions of a minimal charging session come
# first (OCPP 1.6 "Core" feature profile; for 2.x the messages of a basic charger and charging
# station management system), the rest follow in alphabetical order.
CORE_ACTIONS = {
    "1.6": [
        "Authorize",
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "StartTransaction",
        "StopTransaction",
        "MeterValues",
        "DataTransfer",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "GetConfiguration",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "Reset",
        "UnlockConnector",
    ],
    "2.x": [
        "Authorize",
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "TransactionEvent",
        "MeterValues",
        "DataTransfer",
        "ChangeAvailability",
        "ClearCache",
        "GetVariables",
        "SetVariables",
        "GetBaseReport",
        "NotifyReport",
        "NotifyEvent",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "GetTransactionStatus",
        "Reset",
        "UnlockConnector",
        "TriggerMessage",
        "FirmwareStatusNotification",
        "UpdateFirmware",
        "SecurityEventNotification",
    ],
}

# Standardised units of measure: the enum of the OCPP 1.6 sampled value ``unit`` field. In 2.x
# the unit is a free string; these strings get one-byte codes there.
UNIT_SCHEMA = ("v16", "MeterValues.json")

# The unit a measurand is expressed in (OCPP 2.0.1 part 2, measurands and units of measure),
# by measurand name prefix. A sampled value whose unit is the one its measurand implies sends
# no unit at all. Measurands without an entry always send their unit explicitly.
IMPLIED_UNIT_PREFIXES = (
    ("Current.", "A"),
    ("Energy.Active.", "Wh"),
    ("Energy.Reactive.", "varh"),
    ("Power.Active.", "W"),
    ("Power.Offered", "W"),
    ("Power.Import.", "W"),
    ("Power.Export.", "W"),
    ("Power.Reactive.", "var"),
    ("SoC", "Percent"),
    ("Voltage", "V"),
    ("Temperature", "Celsius"),
)
# A sampled value without a measurand is an active import energy register reading.
DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# Sampled values: these fields lead the object head, in this order (see docs/codec.md).
SAMPLED_VALUE_LEAD = ("measurand", "phase", "unitOfMeasure", "unit")


def schema_dir() -> Path:
    import ocpp  # the official schemas ship inside this package

    return Path(os.path.dirname(ocpp.__file__))


def ocpp_package_version() -> str:
    from importlib.metadata import version

    return version("ocpp")


def implied_unit(measurand: str) -> str | None:
    for prefix, unit in IMPLIED_UNIT_PREFIXES:
        if measurand.startswith(prefix) if prefix.endswith(".") else measurand == prefix:
            return unit
    return None


class Builder:
    """Turns the schemas of one OCPP version into deduplicated object types and field specs."""

    def __init__(self, units: tuple[str, ...]) -> None:
        self.types: list[tuple[str, tuple[Any, ...], bool]] = []
        self.index: dict[str, int] = {}
        self.units = units

    def resolve(self, node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/definitions/"):
                raise ValueError(f"unsupported $ref {ref}")
            node = root["definitions"][ref.split("/")[-1]]
        return node

    def spec(
        self, node: dict[str, Any], root: dict[str, Any], name: str, prop: str, top: bool = False
    ) -> Any:
        node = self.resolve(node, root)
        typ = node.get("type")
        if "enum" in node:
            return ["e", list(node["enum"])]
        if typ == "string":
            if node.get("format") == "date-time":
                # below the message root a timestamp may repeat the frame's previous one
                return "t" if top else "T"
            if prop == "unit":
                return ["k", list(self.units)]
            return "s"
        if typ == "integer":
            return "i"
        if typ == "number":
            return "n"
        if typ == "boolean":
            return "b"
        if typ == "array" and isinstance(node.get("items"), dict):
            return ["l", self.spec(node["items"], root, name, prop)]
        if typ == "object" and "properties" in node:
            title = node.get("javaType") or name + "." + prop
            return ["o", self.object(node, root, title)]
        return "a"  # any JSON value, sent as plain CBOR

    def object(
        self, node: dict[str, Any], root: dict[str, Any], title: str, top: bool = False
    ) -> int:
        props = node.get("properties", {})
        required = set(node.get("required", ()))
        fields = []
        for prop, sub in props.items():
            fields.append([prop, self.spec(sub, root, title, prop, top), prop in required])
        names = [f[0] for f in fields]
        if "value" in names and "measurand" in names and "phase" in names:
            self.imply_unit(fields)
        fields = order_fields(fields)
        extras = node.get("additionalProperties", True) is not False
        key = json.dumps([title, fields, extras], sort_keys=True)
        if key not in self.index:
            self.index[key] = len(self.types)
            self.types.append((title, tuple(map(tuple, fields)), extras))
        return self.index[key]

    def imply_unit(self, fields: list[list[Any]]) -> None:
        by_name = {f[0]: f for f in fields}
        measurands = by_name["measurand"][1][1]
        pairs = [[m, implied_unit(m)] for m in measurands if implied_unit(m) is not None]
        default = implied_unit(DEFAULT_MEASURAND)
        for prop in ("unitOfMeasure", "unit"):
            if prop in by_name and not by_name[prop][2]:
                inner = by_name[prop][1]
                # 2.x: the implied value is the object {"unit": u}; 1.6: the enum string u.
                wrap = inner[0] == "o"
                table = [[m, {"unit": u} if wrap else u] for m, u in pairs]
                by_name[prop][1] = [
                    "u",
                    "measurand",
                    table,
                    {"unit": default} if wrap else default,
                    inner,
                ]


def is_digit(spec: Any) -> bool:
    return isinstance(spec, list) and spec[0] in ("e", "u") or spec in ("b", "T")


def order_fields(fields: list[list[Any]]) -> list[list[Any]]:
    """Wire order: lead fields of sampled values, required then optional small-integer fields
    (enums, booleans), required then optional value fields; customData last."""

    def key(item: tuple[int, list[Any]]) -> tuple[int, int, int]:
        i, (prop, spec, req) = item
        if prop == "customData":
            return (9, 0, i)
        lead = SAMPLED_VALUE_LEAD.index(prop) if prop in SAMPLED_VALUE_LEAD else 99
        if any(f[0] == "measurand" for f in fields) and lead < 99:
            return (0, lead, i)
        cls = (1 if req else 2) if is_digit(spec) else (3 if req else 4)
        return (cls, 0, i)

    return [f for _, f in sorted(enumerate(fields), key=key)]


def build(version: str) -> dict[str, Any]:
    base = schema_dir()
    units_schema = json.loads((base / UNIT_SCHEMA[0] / "schemas" / UNIT_SCHEMA[1]).read_text())
    sv = units_schema["properties"]["meterValue"]["items"]["properties"]["sampledValue"]
    units = tuple(sv["items"]["properties"]["unit"]["enum"])
    folder = base / VERSIONS[version] / "schemas"
    files = sorted(p.name for p in folder.glob("*.json"))
    actions: dict[str, tuple[str, str]] = {}
    for fname in files:
        stem = fname[: -len(".json")]
        if stem.endswith("Response"):
            continue
        action = stem[: -len("Request")] if stem.endswith("Request") else stem
        # 2.x: a schema without Request suffix is a message that is only ever sent (SEND)
        resp = action + "Response.json"
        actions[action] = (fname, resp if (folder / resp).exists() else "")
    core = CORE_ACTIONS["1.6" if version == "1.6" else "2.x"]
    order = [a for a in core if a in actions] + sorted(a for a in actions if a not in core)
    builder = Builder(units)
    roots = []
    for action in order:
        req_file, resp_file = actions[action]
        pair = []
        for fname in (req_file, resp_file):
            if not fname:
                pair.append(-1)  # no response schema
                continue
            schema = json.loads((folder / fname).read_text())
            pair.append(builder.object(schema, schema, fname[: -len(".json")], top=True))
        roots.append((action, pair[0], pair[1]))
    from ocpp_iot.rpc import ERROR_CODES

    return {
        "format": FORMAT_VERSION,
        "version": version,
        "actions": roots,
        "errors": sorted(ERROR_CODES[version]),
        "types": builder.types,
    }


def digest(table: dict[str, Any]) -> str:
    body = json.dumps(
        [table["actions"], table["errors"], [list(t) for t in table["types"]]],
        separators=(",", ":"),
        sort_keys=False,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def render(version: str, table: dict[str, Any]) -> str:
    lines = [
        f'"""Compact CBOR codec tables for OCPP {version}. GENERATED, do not edit.',
        "",
        "Generated by tools/gen_cbor_tables.py from the official JSON schemas in the PyPI package",
        f"ocpp {ocpp_package_version()} (ocpp/{VERSIONS[version]}/schemas). Layout: docs/codec.md.",
        '"""',
        "",
        "# fmt: off",
        "# ruff: noqa: E501",
        f"FORMAT = {table['format']}",
        f"VERSION = {version!r}",
        f"DIGEST = {digest(table)!r}",
        "# (action, request type, response type or -1); the action code is the row index",
        "ACTIONS = [",
    ]
    lines += [f"    {json.dumps(list(a))}," for a in table["actions"]]
    lines += [
        "]",
        f"ERRORS = {json.dumps(table['errors'])}",
        "# (name, fields (property, spec, required) in wire order, extra properties allowed)",
        "TYPES = [",
    ]
    for t in table["types"]:
        lines.append(f"    {json.dumps(list(t), separators=(',', ':'))},")
    lines += ["]", ""]
    text = "\n".join(lines)
    return text.replace("true", "True").replace("false", "False").replace("null", "None")


def render_codec(version: str, table: dict[str, Any]) -> str:
    """The codec module of one version: the tables' types as encoder and decoder functions."""
    short = VERSIONS[version]
    lines = [
        f'"""Compact CBOR codec for OCPP {version}: encoders and decoders. GENERATED, do not edit.',
        "",
        "Generated by tools/gen_cbor_tables.py (source from tools/cbor_codegen.py) from the tables",
        f"in _cbor_tables_{short}.py (DIGEST below), which it generates from the official JSON",
        f"schemas in the PyPI package ocpp {ocpp_package_version()} (ocpp/{short}/schemas).",
        "Built ahead of time so that the first frame imports compiled code instead of generating",
        "and compiling it. Layout: docs/codec.md.",
        '"""',
        "",
        "# fmt: off",
        "# ruff: noqa",
        "# mypy: ignore-errors",
        f"FORMAT = {table['format']}",
        f"VERSION = {version!r}",
        f"DIGEST = {digest(table)!r}",
        "# the action names by action code, the error codes by error code",
        f"ACTIONS = {tuple(a[0] for a in table['actions'])!r}",
        f"ERRORS = {tuple(table['errors'])!r}",
        "",
    ]
    lines += module_source(table["types"], table["actions"])
    return "\n".join(lines) + "\n"


def outputs() -> list[tuple[Path, str]]:
    """Every generated file and its text."""
    files = []
    for version, short in VERSIONS.items():
        table = build(version)
        files.append((OUT_DIR / f"_cbor_tables_{short}.py", render(version, table)))
        files.append((OUT_DIR / f"_cbor_codec_{short}.py", render_codec(version, table)))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files differ")
    args = parser.parse_args(argv)
    drift = []
    for path, text in outputs():
        if args.check:
            if not path.exists() or path.read_text() != text:
                drift.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if drift:
        print("out of date, re-run tools/gen_cbor_tables.py: " + ", ".join(drift))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
