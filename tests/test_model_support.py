"""Helpers shared by the tests of ocpp_iot.model (no tests here): schemas, oracle, payloads."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import ocpp

VERSION_DIRS = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}
_DROP = {"description", "javaType", "comment", "$id", "$schema", "definitions", "title"}


def schema_dir(version: str) -> Path:
    return Path(os.path.dirname(ocpp.__file__)) / VERSION_DIRS[version] / "schemas"


@cache
def raw_schema(version: str, stem: str) -> dict[str, Any]:
    with open(schema_dir(version) / f"{stem}.json", encoding="utf-8-sig") as f:
        return json.load(f)


def all_schemas() -> list[tuple[str, str]]:
    """(version, schema file stem) for every schema file of every version."""
    return [(v, p.name[:-5]) for v in VERSION_DIRS for p in sorted(schema_dir(v).glob("*.json"))]


def model_for(version: str, stem: str) -> type:
    """The generated model class of a schema file."""
    from ocpp_iot.model import get_version

    mod = get_version(version)
    if stem.endswith("Response"):
        return mod.ACTIONS[stem[: -len("Response")]].response
    name = stem[: -len("Request")] if stem.endswith("Request") else stem
    return mod.ACTIONS[name].request


@cache
def inlined(version: str, stem: str) -> dict[str, Any]:
    """The schema with every ``$ref`` replaced by its definition (hypothesis-jsonschema does not
    resolve the 2.1 ``urn:`` ids), annotations dropped."""
    s = raw_schema(version, stem)
    defs = s.get("definitions", {})

    def r(n: Any) -> Any:
        if isinstance(n, dict):
            if "$ref" in n:
                return r(defs[n["$ref"].split("/")[-1]])
            return {k: r(v) for k, v in n.items() if k not in _DROP}
        if isinstance(n, list):
            return [r(x) for x in n]
        return n

    return r(s)


@cache
def oracle(version: str, stem: str) -> jsonschema.protocols.Validator:
    """The official schema as a jsonschema validator of the draft it declares, with formats."""
    s = raw_schema(version, stem)
    cls = jsonschema.validators.validator_for(s)
    return cls(s, format_checker=cls.FORMAT_CHECKER)


def oracle_accepts(version: str, stem: str, payload: Any) -> bool:
    return oracle(version, stem).is_valid(payload)


@cache
def fast_oracle(version: str, stem: str) -> Callable[[Any], bool]:
    """The official schema's verdict, from jsonschema-rs when it is installed (formats checked),
    else from :func:`oracle`. The two agreed on each of the 15,632 payloads the mutation test of
    test_model.py asks about (jsonschema-rs 0.61: 0.1 s instead of 30 s); the property tests keep
    :func:`oracle_accepts`, whose differences (format "uri" unchecked) they document."""
    try:
        import jsonschema_rs
    except ImportError:
        plain: Callable[[Any], bool] = oracle(version, stem).is_valid
        return plain
    validator = jsonschema_rs.validator_for(raw_schema(version, stem), validate_formats=True)
    is_valid: Callable[[Any], bool] = validator.is_valid
    return is_valid


def same_json(a: Any, b: Any) -> bool:
    """Equal JSON values with equal types all the way down (1 != 1.0 != True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def minimal(node: dict[str, Any], *, full: bool = False) -> Any:
    """A small valid instance of an inlined schema node (required fields only unless full)."""
    if "enum" in node:
        return node["enum"][0]
    t = node.get("type")
    if t == "object":
        props = node.get("properties", {})
        keys = props if full else node.get("required", [])
        return {k: minimal(props[k], full=full) for k in keys}
    if t == "array":
        n = max(node.get("minItems", 0), 1 if full else 0)
        return [minimal(node["items"], full=full) for _ in range(n)]
    if t == "string":
        fmt = node.get("format")
        if fmt == "date-time":
            return "2024-02-29T23:59:59.5+01:00"
        if fmt == "uri":
            return "https://example.com/fw.bin"
        return "a" * max(node.get("minLength", 1), 1)
    if t == "integer":
        return int(node.get("minimum", 0))
    if t == "number":
        lo = node.get("minimum", 0)
        return float(lo) + 0.5 if "maximum" not in node or node["maximum"] >= lo + 0.5 else lo
    if t == "boolean":
        return True
    return "x"


def leaf_paths(node: dict[str, Any], payload: Any, path: tuple = ()) -> list[tuple]:
    """(path, schema node) of every value present in payload, depth first, schema order."""
    out = [(path, node)]
    t = node.get("type")
    if t == "object" and isinstance(payload, dict):
        for k, sub in node.get("properties", {}).items():
            if k in payload:
                out += leaf_paths(sub, payload[k], path + (k,))
    elif t == "array" and isinstance(payload, list):
        for i, x in enumerate(payload):
            out += leaf_paths(node["items"], x, path + (i,))
    return out


def set_at(payload: Any, path: tuple, value: Any) -> Any:
    p = copy.deepcopy(payload)
    cur = p
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return p


def del_at(payload: Any, path: tuple) -> Any:
    p = copy.deepcopy(payload)
    cur = p
    for k in path[:-1]:
        cur = cur[k]
    del cur[path[-1]]
    return p
