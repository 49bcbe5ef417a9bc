"""Property tests: schema-generated payloads (hypothesis-jsonschema) against the models.

For every schema file of every version, payloads drawn from the official schema are checked
with the official schema itself (``jsonschema``, the draft it declares, date-time format
checked) and then must be accepted by the generated model and round-trip exactly, from Python
values (:func:`parse`) and from JSON text (:func:`parse_json`, :func:`parse_frame_json`).

Every run: a few examples per schema, arrays and plain strings kept short, for every schema.
The long tests (marked ``slow``: strings up to their maxLength, arrays up to 5 entries, many
more examples) run in every run too, on a rotating slice: see :class:`LongRun`, which the CBOR
property and fuzz tests share. ``OCPP_IOT_SLOW=1`` or ``-m slow`` runs all of them in full.
"""

from __future__ import annotations

import datetime
import functools
import importlib
import inspect
import json
import os
import re
import subprocess
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_model_support import all_schemas, inlined, model_for, oracle_accepts, same_json

from ocpp_iot.model import PayloadError, parse, parse_frame_json, parse_json
from ocpp_iot.model._base import URI_PATTERN, OcppModel

SCHEMAS = all_schemas()
IDS = [f"{v}-{s}" for v, s in SCHEMAS]

# ---------------------------------------------------------------------------------------------
# The long property tests: a rotating slice in every run, all of them on request
# ---------------------------------------------------------------------------------------------

_C = TypeVar("_C")
#: Into how many slices the long cases are cut by default: each run takes one, so every case
#: runs at least once in this many consecutive commits (measured: one slice adds ~100 s).
DEFAULT_SLICES = 8


@dataclass(frozen=True)
class LongRun:
    """Which long property cases this run takes, how many examples, and from which seed.

    By default one slice ``k`` of ``n`` of the cases (``k`` and the hypothesis seed from the
    commit being tested, or from the date outside a git checkout) with fewer examples than the
    full run: every run covers a different slice, and the pytest header says how to repeat it
    (``OCPP_IOT_SHARD=k/n OCPP_IOT_SEED=s``). ``OCPP_IOT_SLOW=1``, or a ``-m`` expression that
    selects ``slow``, takes every case with the full example counts.
    """

    full: bool
    k: int
    n: int
    seed: int
    source: str

    def select(self, cases: Sequence[_C], ids: Sequence[str]) -> tuple[list[_C], list[str]]:
        """The cases of this run, and their ids; a case's slice depends on its id alone."""
        chosen = [
            (c, i)
            for c, i in zip(cases, ids, strict=True)
            if self.full or zlib.crc32(i.encode()) % self.n == self.k
        ]
        return [c for c, _ in chosen], [i for _, i in chosen]

    def examples(self, ci: int, full: int) -> int:
        return full if self.full else ci

    def seeded(self, test: Callable[..., None]) -> Callable[..., None]:
        """``test`` with this run's hypothesis seed (so a sliced run repeats exactly)."""
        return test if self.full else seed(self.seed)(test)

    def header(self) -> str:
        if self.full:
            return "long property tests: all cases, full example counts (OCPP_IOT_SLOW / -m slow)"
        return (
            f"long property tests: slice {self.k}/{self.n}, seed {self.seed} ({self.source}); "
            f"repeat with OCPP_IOT_SHARD={self.k}/{self.n} OCPP_IOT_SEED={self.seed}, "
            "run all with OCPP_IOT_SLOW=1"
        )


def _selects_slow(markexpr: str) -> bool:
    """Whether a ``-m`` expression asks for the slow tests (``slow``, ``slow and ...``), as
    opposed to leaving them out (``not slow``)."""
    return bool(re.search(r"(?<!not )\bslow\b", markexpr)) and "not slow" not in markexpr


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


@functools.cache
def _long_run(markexpr: str) -> LongRun:
    full = os.environ.get("OCPP_IOT_SLOW", "") not in ("", "0") or _selects_slow(markexpr)
    sha = _commit()
    if sha is not None:
        base, source = int(sha[:12], 16), f"commit {sha[:12]}"
    else:
        day = datetime.date.today()
        base, source = day.toordinal(), f"date {day.isoformat()}"
    n, k = DEFAULT_SLICES, base % DEFAULT_SLICES
    if shard := os.environ.get("OCPP_IOT_SHARD"):
        m = re.fullmatch(r"(\d+)/(\d+)", shard.strip())
        if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
            raise pytest.UsageError(f"OCPP_IOT_SHARD={shard!r}: expected k/n with 0 <= k < n")
        k, n, source = int(m.group(1)), int(m.group(2)), "OCPP_IOT_SHARD"
    seed_value = base % 2**32
    if env_seed := os.environ.get("OCPP_IOT_SEED"):
        seed_value, source = int(env_seed, 0), source + ", OCPP_IOT_SEED"
    return LongRun(full, k, n, seed_value, source)


def long_run(config: pytest.Config) -> LongRun:
    """This run's choice (the same for every module that asks)."""
    return _long_run(str(config.getoption("markexpr", "") or ""))


def long_run_header(config: pytest.Config) -> str:
    """The line for ``pytest_report_header`` in conftest.py."""
    return long_run(config).header()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "long_schema" in metafunc.fixturenames:
        cases, ids = long_run(metafunc.config).select(SCHEMAS, IDS)
        metafunc.parametrize("long_schema", cases, ids=ids)


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
def _strategy(version: str, stem: str, capped: bool, items: int = 5) -> st.SearchStrategy[Any]:
    """capped: arrays <= 2 items, strings <= 12 characters (short tests); else arrays <=
    ``items`` entries and strings as long as the schema allows (long tests: 2 in a sliced run,
    5 in the full one: 2.1's nested charging profiles take 7x longer at 5 than at 2)."""
    from hypothesis_jsonschema import from_schema

    schema = inlined(version, stem)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return from_schema(_capped(schema, 2, 12) if capped else _capped(schema, items, None))


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


def _assert_round_trips(
    version: str, stem: str, n: int, capped: bool, run: LongRun | None = None
) -> None:
    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=run is None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_strategy(version, stem, capped, 5 if run is None or run.full else 2))
    def inner(payload: Any) -> None:
        _check(version, stem, payload)

    (inner if run is None else run.seeded(inner))()


@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_schema_payloads_round_trip(version: str, stem: str) -> None:
    _assert_round_trips(version, stem, 3, capped=True)


@pytest.mark.slow
def test_schema_payloads_round_trip_many(
    long_schema: tuple[str, str], request: pytest.FixtureRequest
) -> None:
    run = long_run(request.config)
    version, stem = long_schema
    _assert_round_trips(version, stem, run.examples(12, 150), capped=False, run=run)


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


def _uri_not_absolute(schema: Any, value: Any) -> bool:
    """Whether ``value`` holds, where ``schema`` says ``format: uri``, a string that is not an
    absolute URI. The oracle checks ``uri`` only with the optional ``rfc3987`` package and so
    accepts any string; the models always check the minimal form (docs/model.md, "uri")."""
    if not isinstance(schema, dict):
        return False
    if schema.get("format") == "uri" and isinstance(value, str):
        return re.fullmatch(URI_PATTERN, value) is None
    if isinstance(value, dict):
        props = schema.get("properties", {})
        return any(_uri_not_absolute(props.get(k), v) for k, v in value.items())
    if isinstance(value, list):
        return any(_uri_not_absolute(schema.get("items"), v) for v in value)
    return False


def _assert_mutations_agree(version: str, stem: str, n: int, run: LongRun | None = None) -> None:
    cls = model_for(version, stem)
    schema = inlined(version, stem)

    @settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=run is None,
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
        if _int_field_given_whole_float(mutated) or _uri_not_absolute(schema, mutated):
            return
        expected = oracle_accepts(version, stem, mutated)
        try:
            parse(cls, mutated)
            got = True
        except PayloadError:
            got = False
        assert got == expected, (mutated, expected)

    (inner if run is None else run.seeded(inner))()


@pytest.mark.parametrize(("version", "stem"), SCHEMAS, ids=IDS)
def test_mutated_payloads_agree_with_oracle(version: str, stem: str) -> None:
    _assert_mutations_agree(version, stem, 3)


@pytest.mark.slow
def test_mutated_payloads_agree_with_oracle_many(
    long_schema: tuple[str, str], request: pytest.FixtureRequest
) -> None:
    run = long_run(request.config)
    version, stem = long_schema
    _assert_mutations_agree(version, stem, run.examples(12, 200), run=run)


def _generated_classes() -> list[type[OcppModel]]:
    out = []
    for package in ("v16", "v201", "v21"):
        for name in ("datatypes", "messages", "lenient"):
            module = importlib.import_module(f"ocpp_iot.model.{package}.{name}")
            out += [
                c
                for c in vars(module).values()
                if inspect.isclass(c)
                and issubclass(c, OcppModel)
                and c.__module__ == module.__name__
            ]
    return out


def test_every_optional_field_refuses_an_explicit_null() -> None:
    """Optional fields are ``X | None`` to a type checker (``Omittable``), but no OCPP schema
    lists ``"null"`` as a type: a key that is present with ``null`` is an error, strict and
    lenient alike (except where the schema gives no type at all). Every optional field of
    every generated class: pydantic reports each field's error, so one validation per class
    covers all of its fields."""
    classes = _generated_classes()
    assert len(classes) > 1000
    fields = 0
    for cls in classes:
        optional = [
            f.alias or n
            for n, f in cls.model_fields.items()
            # a property without "type" (DataTransfer's data) takes any JSON value, null too
            if not f.is_required() and f.annotation is not Any
        ]
        if not optional:
            continue
        fields += len(optional)
        try:
            cls.model_validate({alias: None for alias in optional})
            refused: set[Any] = set()
        except ValidationError as exc:
            refused = {e["loc"][0] for e in exc.errors() if e["loc"]}
        assert set(optional) <= refused, (cls, set(optional) - refused)
    assert fields > 2000
