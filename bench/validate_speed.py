#!/usr/bin/env python3
"""Per-frame cost of reading and validating OCPP frames, ours against the usual validators.

Input: every frame of ../shared/corpus/sessions-v201.jsonl as compact JSON bytes (a
CALLRESULT is validated against the response schema of the action of its CALL), and the same
frames as compact CBOR (``ocpp_iot.codecs.cbor``, what stations send on MQTT). Each row runs
over all frames; the whole set of rows is repeated (default 7 times) in one process and the
table shows the min and median per frame, and each row's median relative to ours (strict).
Times are CPU time of this process (``time.process_time``): the machine is shared, and CPU
time is much less disturbed by other jobs than wall time.

Rows:
1. ``json.loads`` alone - the floor;
2. the ``ocpp`` package as it validates each message: ``ocpp.messages.unpack`` then its cached
   Draft4 validators (``_validate_payload``, the synchronous core of ``validate_payload``);
3. ``jsonschema``: one prebuilt validator per schema (the draft the schema declares), after
   ``json.loads``;
4. ``fastjsonschema``: one compiled function per schema, after ``json.loads``;
5. ``jsonschema-rs``: one prebuilt validator per schema, after ``json.loads``;
6. ours, the paths the product uses, bytes in, typed and validated pydantic model out
   (date-times checked):
   - OCPP-J: ``ocpp_iot.model.parse_frame_json``, the one OCPP-J parser (its header rules are
     ``ocpp_iot.codecs.ocppj``'s), strict and lenient;
   - compact CBOR: ``ocpp_iot.codecs.cbor.decode``, then the model of the frame's action
     (``find_action`` + ``parse``), as the bridge does before dispatch;
   - for information: ``ocppj.decode`` + ``find_action`` + ``parse`` (OCPP-J through dicts),
     ``cbor.decode`` alone (the codec's share of the CBOR row), and the pydantic-core
     validation of the already cut-out payload bytes alone (the part of ours that the header
     handling does not add).

Usage: python bench/validate_speed.py [--reps 7] [--no-docs]
Writes the table into docs/model.md (section "Validation speed") unless --no-docs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "sessions-v201.jsonl"  # shared/ beside the checkout
DOC = ROOT / "docs" / "model.md"
BEGIN = "<!-- validate_speed:begin -->"
END = "<!-- validate_speed:end -->"


OURS = "ours, OCPP-J: parse_frame_json, strict -> typed model"


def load_frames() -> tuple[list[bytes], dict[str, str], list[str]]:
    datas: list[bytes] = []
    actions: dict[str, str] = {}
    schema_names: list[str] = []
    with CORPUS.open() as f:
        for line in f:
            frame = json.loads(line)["frame"]
            if frame[0] == 2:
                actions[frame[1]] = frame[2]
                schema_names.append(frame[2] + "Request")
            else:
                schema_names.append(actions[frame[1]] + "Response")
            datas.append(json.dumps(frame, separators=(",", ":")).encode())
    return datas, actions, schema_names


def schema_path(name: str) -> Path:
    import ocpp

    return Path(os.path.dirname(ocpp.__file__)) / "v201" / "schemas" / f"{name}.json"


def load_schema(name: str) -> dict[str, Any]:
    with open(schema_path(name), encoding="utf-8-sig") as f:
        return json.load(f)


def make_rows(
    datas: list[bytes], actions: dict[str, str], names: list[str]
) -> list[tuple[str, Callable[[], None]]]:
    loads = json.loads
    used = sorted(set(names))
    schemas = {n: load_schema(n) for n in used}

    def run_json() -> None:
        for b in datas:
            loads(b)

    # -- ocpp package --------------------------------------------------------------------------
    from ocpp import messages as om

    def run_ocpp() -> None:
        for b in datas:
            msg = om.unpack(b)
            if isinstance(msg, om.CallResult):
                msg.action = actions[msg.unique_id]
            om._validate_payload(msg, "2.0.1")

    # -- generic validators, each after json.loads ----------------------------------------------
    def after_loads(validate: dict[str, Callable[[Any], Any]]) -> Callable[[], None]:
        def run() -> None:
            for b in datas:
                fr = loads(b)
                if fr[0] == 2:
                    validate[fr[2] + "Request"](fr[3])
                else:
                    validate[actions[fr[1]] + "Response"](fr[2])

        return run

    import jsonschema

    js = {n: jsonschema.validators.validator_for(s)(s).validate for n, s in schemas.items()}

    import fastjsonschema

    fj = {n: fastjsonschema.compile(s) for n, s in schemas.items()}

    import jsonschema_rs

    rs = {n: jsonschema_rs.validator_for(s).validate for n, s in schemas.items()}

    # -- ours --------------------------------------------------------------------------------
    from ocpp_iot.codecs import cbor, ocppj
    from ocpp_iot.model import _validator, find_action, get_version, parse, parse_frame_json
    from ocpp_iot.rpc import CallResult

    get = actions.get

    def run_ours() -> None:
        for b in datas:
            parse_frame_json(b, "2.0.1", get)

    def run_ours_lenient() -> None:
        for b in datas:
            parse_frame_json(b, "2.0.1", get, lenient=True, warnings=[])

    # the CBOR frames stations send (a CALLRESULT carries its action in CBOR)
    cbor_datas = []
    for b in datas:
        frame = ocppj.decode(b, "2.0.1")
        if isinstance(frame, CallResult):
            frame = CallResult(frame.message_id, frame.payload, actions[frame.message_id])
        cbor_datas.append(cbor.encode(frame, "2.0.1"))
    cbor_decode = cbor.decode

    def run_ours_cbor() -> None:
        for b in cbor_datas:
            version, frame = cbor_decode(b)
            f: Any = frame  # a Call or a CallResult with its action
            act = find_action(version, f.action)
            cls = act.response if f.message_type == 3 else act.request
            assert cls is not None
            parse(cls, f.payload)

    def run_cbor_only() -> None:
        for b in cbor_datas:
            cbor_decode(b)

    ocppj_decode = ocppj.decode

    def run_ours_dict() -> None:
        for b in datas:
            f: Any = ocppj_decode(b, "2.0.1")
            if f.message_type == 2:
                parse(find_action("2.0.1", f.action).request, f.payload)
            else:
                response = find_action("2.0.1", actions[f.message_id]).response
                assert response is not None
                parse(response, f.payload)

    # breakdown: the pydantic-core part of ours alone (payload bytes already cut out)

    mod = get_version("2.0.1")
    pre = []
    for b, n in zip(datas, names, strict=True):
        act = mod.ACTIONS[re.sub(r"(Request|Response)$", "", n)]
        cls = act.request if n.endswith("Request") else act.response
        payload = json.dumps(json.loads(b)[-1], separators=(",", ":")).encode()
        pre.append((_validator(cls).validate_json, payload))

    def run_models_only() -> None:
        for validate, payload in pre:
            validate(payload)

    return [
        ("json.loads alone (floor)", run_json),
        ("ocpp 2.1.0 (unpack + cached Draft4Validator)", run_ocpp),
        ("json.loads + jsonschema (prebuilt)", after_loads(js)),
        ("json.loads + fastjsonschema (compiled)", after_loads(fj)),
        ("json.loads + jsonschema-rs (prebuilt)", after_loads(rs)),
        (OURS, run_ours),
        ("ours, OCPP-J: parse_frame_json, lenient -> typed model", run_ours_lenient),
        ("ours, CBOR: cbor.decode + parse -> typed model", run_ours_cbor),
        ("(breakdown) cbor.decode alone -> frame of dicts", run_cbor_only),
        ("(for information) ocppj.decode + parse(dict) -> typed model", run_ours_dict),
        ("(breakdown) pydantic-core model validation of the payload alone", run_models_only),
    ]


def measure(
    rows: list[tuple[str, Callable[[], None]]], n: int, reps: int
) -> dict[str, list[float]]:
    for _, fn in rows:  # warm up: builds validators and pydantic schemas, fills caches
        fn()
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    for _ in range(reps):
        for name, fn in rows:
            gc.collect()
            t0 = time.process_time()
            fn()
            times[name].append((time.process_time() - t0) / n * 1e6)
    return times


def table(times: dict[str, list[float]]) -> str:
    ours = statistics.median(times[OURS])
    out = [
        "| # | validator | min µs/frame | median µs/frame | median / ours |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for i, (name, ts) in enumerate(times.items(), 1):
        med = statistics.median(ts)
        out.append(f"| {i} | {name} | {min(ts):.2f} | {med:.2f} | {med / ours:.2f} |")
    return "\n".join(out)


def by_message(datas: list[bytes], actions: dict[str, str], names: list[str], reps: int) -> str:
    """Ours against json.loads + jsonschema-rs per message kind: where the difference is."""
    import jsonschema_rs

    from ocpp_iot.model import parse_frame_json

    loads = json.loads
    get = actions.get
    groups: dict[str, list[bytes]] = {}
    for b, n in zip(datas, names, strict=True):
        groups.setdefault(n, []).append(b)
    rows = []
    for name, frames in groups.items():
        validate = jsonschema_rs.validator_for(load_schema(name)).validate
        last = 3 if name.endswith("Request") else 2

        def ours(frames: list[bytes] = frames) -> None:
            for b in frames:
                parse_frame_json(b, "2.0.1", get)

        def theirs(
            frames: list[bytes] = frames, validate: Any = validate, last: int = last
        ) -> None:
            for b in frames:
                validate(loads(b)[last])

        best = []
        for fn in (ours, theirs):
            fn()
            ts = []
            for _ in range(reps):
                t0 = time.process_time()
                fn()
                ts.append((time.process_time() - t0) / len(frames) * 1e6)
            best.append(statistics.median(ts))
        size = sum(map(len, frames)) / len(frames)
        rows.append((name, len(frames), size, best[0], best[1]))
    n = len(datas)
    rows.sort(key=lambda r: -abs(r[1] * (r[3] - r[4])))
    out = [
        "| message | frames | mean bytes | ours µs | json.loads + jsonschema-rs µs | ratio "
        "| share of the per-frame difference (µs/frame) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, count, size, o, t in rows[:8]:
        out.append(
            f"| {name} | {count:,} | {size:.0f} | {o:.2f} | {t:.2f} | {o / t:.2f} "
            f"| {(o - t) * count / n:+.2f} |"
        )
    total = sum(r[1] * (r[3] - r[4]) for r in rows) / n
    out.append(f"| (all {len(rows)} kinds) | {n:,} | | | | | {total:+.2f} |")
    return "\n".join(out)


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else "# The OCPP model\n"
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in doc and END in doc:
        doc = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n## Validation speed\n\n" + block + "\n"
    DOC.write_text(doc, encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args()
    datas, actions, names = load_frames()
    rows = make_rows(datas, actions, names)
    times = measure(rows, len(datas), args.reps)
    tab = table(times)
    rs = statistics.median(times["json.loads + jsonschema-rs (prebuilt)"])
    ours = statistics.median(times[OURS])
    verdict = "met" if ours <= rs else "missed"
    import pydantic
    import pydantic_core

    when = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    meta = (
        f"Measured {when} on {platform.machine()} with nproc={os.cpu_count()} "
        f"(shared with other jobs; CPU time per frame), "
        f"Python {platform.python_version()}, pydantic {pydantic.VERSION} "
        f"(core {pydantic_core.__version__}); {len(datas)} frames of "
        f"`sessions-v201.jsonl`, {args.reps} repetitions of every row in one run.\n"
    )
    summary = (
        f"\nGoal ours <= json.loads + jsonschema-rs: **{verdict}** "
        f"(ours {ours:.2f} µs/frame vs {rs:.2f}, ratio {ours / rs:.2f}).\n"
    )
    breakdown = by_message(datas, actions, names, max(3, args.reps // 2))
    text = (
        meta
        + "\n"
        + tab
        + "\n"
        + summary
        + "\nPer message kind (median µs per frame of that kind, same run; the 8 kinds that "
        + "contribute most to the difference, then the total):\n\n"
        + breakdown
        + "\n"
    )
    print(text)
    if not args.no_docs:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
