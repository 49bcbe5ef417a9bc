"""Compact CBOR codec: schema-generated payloads of every action round-trip exactly.

Payloads come from the official schemas through hypothesis-jsonschema (arrays capped at a few
items to keep generation fast). Every run covers every 1.6 and 2.0.1 action and the core 2.1
actions with a few examples each, and a rotating slice of every action of every version with
more (``test_model_schemas.LongRun``); ``OCPP_IOT_SLOW=1`` or ``-m slow`` runs that for every
action with many.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from test_cbor import assert_round_trip, schema_mode
from test_model_schemas import LongRun, long_run

from ocpp_iot.codecs import _cbor_tables_v16, _cbor_tables_v21, _cbor_tables_v201
from ocpp_iot.rpc import Call, CallResult, Send

SCHEMAS = Path(os.path.dirname(ocpp.__file__))
TABLES = {"1.6": _cbor_tables_v16, "2.0.1": _cbor_tables_v201, "2.1": _cbor_tables_v21}
FOLDER = {"1.6": "v16", "2.0.1": "v201", "2.1": "v21"}

MESSAGE_IDS = st.one_of(
    st.integers(0, 10**22).map(str),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.from_regex(r"0[0-9]{1,8}", fullmatch=True),
    st.from_regex(r"[0-9A-F]{2,36}", fullmatch=True),
    st.text(min_size=1, max_size=36),  # OCPP-J 4.1.4: 1 to 36 characters
)


def _cap(node: Any, items: int) -> Any:
    """The schema without descriptions and ``$id``, arrays limited to ``items`` entries."""
    if isinstance(node, dict):
        out = {k: _cap(v, items) for k, v in node.items() if k not in ("description", "$id")}
        if out.get("type") == "array":
            out["maxItems"] = min(out.get("maxItems", items), items)
        return out
    if isinstance(node, list):
        return [_cap(x, items) for x in node]
    return node


@cache
def payloads(version: str, file: str, items: int) -> st.SearchStrategy[dict[str, Any]]:
    schema = json.loads((SCHEMAS / FOLDER[version] / "schemas" / file).read_text())
    return from_schema(_cap(schema, items))


def cases(version: str) -> list[tuple[str, str, str, str]]:
    """(version, action, kind, schema file) for every message of the version."""
    out = []
    for action, _req, resp in TABLES[version].ACTIONS:
        if version == "1.6":
            out.append((version, action, "call", f"{action}.json"))
        else:
            if resp >= 0:
                out.append((version, action, "call", f"{action}Request.json"))
            else:  # a message that is only ever sent: its schema has no Request suffix
                out.append((version, action, "send", f"{action}.json"))
        if resp >= 0:
            out.append((version, action, "result", f"{action}Response.json"))
    return out


ALL = cases("1.6") + cases("2.0.1") + cases("2.1")
ALL_IDS = ["-".join(c) for c in ALL]
CORE_21 = {a for a, _, _ in _cbor_tables_v21.ACTIONS[:24]}
DEFAULT = [c for c in ALL if c[0] != "2.1" or c[1] in CORE_21]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "long_case" in metafunc.fixturenames:
        cases, ids = long_run(metafunc.config).select(ALL, ALL_IDS)
        metafunc.parametrize("long_case", cases, ids=ids)


def check(
    version: str,
    action: str,
    kind: str,
    file: str,
    examples: int,
    items: int,
    run: LongRun | None = None,
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(payload=payloads(version, file, items), mid=MESSAGE_IDS)
    def run_one(payload: dict[str, Any], mid: str) -> None:
        if kind == "call":
            frame: Any = Call(mid, action, payload)
        elif kind == "send":
            frame = Send(mid, action, payload)
        else:
            frame = CallResult(mid, payload, action)
        data = assert_round_trip(frame, version)
        assert schema_mode(data), "a schema-valid payload fell back to plain CBOR"

    (run_one if run is None else run.seeded(run_one))()


@pytest.mark.parametrize(("version", "action", "kind", "file"), DEFAULT)
def test_schema_payloads_round_trip(version: str, action: str, kind: str, file: str) -> None:
    check(version, action, kind, file, examples=6 if version == "1.6" else 2, items=2)


@pytest.mark.slow
def test_schema_payloads_round_trip_long(
    long_case: tuple[str, str, str, str], request: pytest.FixtureRequest
) -> None:
    run = long_run(request.config)
    check(*long_case, examples=run.examples(10, 60), items=run.examples(2, 3), run=run)
