"""Property tests: schema-generated payloads (hypothesis-jsonschema) against the models.

For every schema file of every version, payloads drawn from the official schema are checked
with the official schema itself (``jsonschema``, the draft it declares, date-time format
checked) and then must be accepted by the generated model and round-trip exactly, from Python
values (:func:`parse`) and from JSON text (:func:`parse_json`, :func:`parse_frame_json`).

Default run: a few examples per schema, arrays and plain strings kept short. ``-m slow``: many
more, strings up to their maxLength, arrays up to 5 entries.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_model_support import all_schemas, inlined, model_for, oracle_accepts, same_json

from ocpp_iot.model import PayloadError, parse, parse_frame_json, parse_json

SCHEMAS = all_schemas()
IDS = [f"{v}-{s}" for v, s in SCHEMAS]


def _capped(node: Any, items: int, chars: int | None) -> Any:
    """The schema with arrays limited to ``items`` entries and plain strings to ``chars``
    characters: every payload it allows is valid under the original, and the big 2.x schemas
    (nested arrays of up to 1024 entries) generate in reasonable time."""
    if isinstance(node, list):
        return [_capped(x, items, chars) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _capped(v, items, chars) for k, v in node.items()}
    if out.get("type") == "array":
        out["maxItems"] = max(out.get("minItems", 0), min(out.get("maxItems", items), items))
    plain = "format" not in out and "enum" not in out
    if chars is not None and out.get("type") == "string" and plain:
        out["maxLength"] = min(out.get("maxLength", chars), chars)
    return out


@functools.cache
def _strategy(version: str, stem: str, capped: bool) -> st.SearchStrategy[Any]:
    """capped: arrays <= 2 items, strings <= 12 characters (default run); else arrays <= 5
    items and strings as long as the schema allows (slow run)."""
    from hypothesis_jsonschema import from_schema

    schema = inlined(version, stem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_schema(_capped(schema, 2, 12) if capped else _capped(schema, 5, None))


def _check(version: str, stem: str, payload: Any) -> None:
    if not oracle_accepts(version, stem, payload):
        # hypothesis-jsonschema and the oracle disagree (float multipleOf rounding, exotic
        # date-times): nothing to check against.
        return
    cls = model_for(version, stem)
    try:
        m = parse(cls, payload)
    except PayloadError as exc:  # pragma: no cover - the failure message is the point
        raise AssertionError(f"schema-valid payload rejected: {exc} {payload!r}") from exc
    assert same_json(m.to_payload(), payload), (payload, m.to_payload())
    text = json.dumps(payload, ensure_ascii=False)
    m2 = parse_json(cls, text.encode("utf-8", "surrogatepass"))
    assert same_json(m2.to_payload(), payload)
    assert m2 == m
    # as a whole frame
    action = model_for(version, stem).__name__
    if stem.endswith("Response"):
        name = stem[: -len("Response")]
        frame = f'[3,"m1",{text}]'.encode("utf-8", "surrogatepass")
        tf = parse_frame_json(frame, version, {"m1": name}.get)
    else:
        name = action[: -len("Request")]
        mtype = 6 if (version, name) == ("2.1", "NotifyPeriodicEventStream") else 2
        frame = f'[{mtype},"m1","{name}",{text}]'.encode("utf-8", "surrogatepass")
        tf = parse_frame_json(frame, version)
    assert same_json(tf.model.to_payload(), payload)


def _assert_round_trips(version: str, stem: str, n: int, capped: bool) -> None:
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=n <= 5,
        suppress_health_check=list(HealthCheck),
    )
    @given(_strategy(version, stem, capped))
    def inner(payload: Any) -> None:
        _check(version, stem, payload)

    inner()


@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_schema_payloads_round_trip(version: str, stem: str) -> None:
    _assert_round_trips(version, stem, 3, capped=True)


@pytest.mark.slow
@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_schema_payloads_round_trip_many(version: str, stem: str) -> None:
    _assert_round_trips(version, stem, 150, capped=False)


_JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["NoSuchValue", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00Z", ""]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, path + (i,))
    return out


def _int_field_given_whole_float(payload: Any) -> bool:
    """Draft 6 counts 5.0 as an integer; the models deliberately do not (docs/model.md)."""
    if isinstance(payload, float):
        return payload.is_integer()
    if isinstance(payload, dict):
        return any(_int_field_given_whole_float(v) for v in payload.values())
    if isinstance(payload, list):
        return any(_int_field_given_whole_float(v) for v in payload)
    return False


def _assert_mutations_agree(version: str, stem: str, n: int) -> None:
    cls = model_for(version, stem)

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=n <= 5,
        suppress_health_check=list(HealthCheck),
    )
    @given(_strategy(version, stem, True), st.data())
    def inner(payload: Any, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(_paths(payload)))
        how = data.draw(st.sampled_from(["replace", "delete", "add"]))
        mutated = json.loads(json.dumps(payload))
        parent = mutated
        for k in path[:-1]:
            parent = parent[k]
        if how == "add" or not path:
            target = parent[path[-1]] if path else mutated
            if not isinstance(target, dict):
                return
            target["zz" + data.draw(st.text(max_size=3))] = data.draw(_JSON_VALUES)
        elif how == "delete":
            if isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent.pop(path[-1])
        else:
            parent[path[-1]] = data.draw(_JSON_VALUES)
        if _int_field_given_whole_float(mutated):
            return
        expected = oracle_accepts(version, stem, mutated)
        try:
            parse(cls, mutated)
            got = True
        except PayloadError:
            got = False
        assert got == expected, (mutated, expected)

    inner()


@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_mutated_payloads_agree_with_oracle(version: str, stem: str) -> None:
    _assert_mutations_agree(version, stem, 3)


@pytest.mark.slow
@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_mutated_payloads_agree_with_oracle_many(version: str, stem: str) -> None:
    _assert_mutations_agree(version, stem, 200)
