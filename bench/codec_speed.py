#!/usr/bin/env python3
"""Encode + decode time per frame: our compact CBOR against json.dumps + json.loads.

Every frame of the corpus, several repetitions (rows interleaved); CPU time of this process
(``time.process_time``), min and median of the repetitions, ratios from the same run.
The goal: ours within 3x of json.dumps + json.loads of the same frame.

    python bench/codec_speed.py [--corpus ...] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codec_size import DEFAULT_CORPUS, VERSION, load  # noqa: E402

from ocpp_iot.codecs import cbor, ocppj  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    rows = load(args.corpus)
    lists = [f for _, _, f, _ in rows]
    frames = [fr for _, _, _, fr in rows]
    encoded = [cbor.encode(fr, VERSION) for fr in frames]  # also compiles the tables
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    loads = json.loads

    jsons = [dumps(f) for f in lists]

    def json_dumps() -> None:
        for f in lists:
            dumps(f)

    def json_loads() -> None:
        for t in jsons:
            loads(t)

    def json_both() -> None:
        for f in lists:
            loads(dumps(f))

    def ocppj_both() -> None:
        for fr in frames:
            ocppj.decode(ocppj.encode(fr), VERSION)

    def cbor2_both() -> None:
        for f in lists:
            cbor2.loads(cbor2.dumps(f))

    def ours_encode() -> None:
        enc = cbor.encode
        for fr in frames:
            enc(fr, VERSION)

    def ours_decode() -> None:
        dec = cbor.decode
        for b in encoded:
            dec(b)

    def ours_both() -> None:
        enc, dec = cbor.encode, cbor.decode
        for fr in frames:
            dec(enc(fr, VERSION))

    cases: list[tuple[str, Callable[[], None]]] = [
        ("json.dumps, all frames", json_dumps),
        ("json.loads, all frames", json_loads),
        ("ours: cbor.encode, all frames", ours_encode),
        ("ours: cbor.decode, all frames", ours_decode),
        ("json.loads(json.dumps(f)) frame by frame", json_both),
        ("ours: cbor.decode(cbor.encode(f)) frame by frame", ours_both),
        ("ocppj.decode(ocppj.encode(f)) frame by frame", ocppj_both),
        ("cbor2.loads(cbor2.dumps(f)) of the JSON tree", cbor2_both),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(args.repeat):  # interleaved, so load changes hit every row alike
        for name, fn in cases:
            t0 = time.process_time()  # CPU time: other load on the machine does not count
            fn()
            times[name].append((time.process_time() - t0) / len(frames) * 1e6)

    def agg(names: list[str]) -> tuple[float, float]:
        per_rep = [sum(times[n][i] for n in names) for i in range(args.repeat)]
        return min(per_rep), statistics.median(per_rep)

    json_sep = agg([cases[0][0], cases[1][0]])
    ours_sep = agg([cases[2][0], cases[3][0]])
    json_int = agg([cases[4][0]])
    ours_int = agg([cases[5][0]])
    print(
        f"# Codec speed, {time.strftime('%Y-%m-%d', time.gmtime())}, {len(frames)} frames, "
        f"{args.repeat} repetitions, CPU time, Python {sys.version.split()[0]}\n"
    )
    print("| per frame | min µs | median µs |")
    print("| --- | ---: | ---: |")
    for name, _ in cases:
        lo, med = min(times[name]), statistics.median(times[name])
        print(f"| {name} | {lo:.2f} | {med:.2f} |")
    print("\n| encode + decode vs json.dumps + json.loads | min ratio | median ratio |")
    print("| --- | ---: | ---: |")
    rows = [
        ("separate passes (encode all, decode all)", ours_sep, json_sep),
        ("frame by frame (decode(encode(f)))", ours_int, json_int),
    ]
    for label, ours, base in rows:
        print(f"| {label} | {ours[0] / base[0]:.2f}x | {ours[1] / base[1]:.2f}x |")
    print("\n| goal | value | met |\n| --- | ---: | --- |")
    for label, ours, base in rows:
        worst = max(ours[0] / base[0], ours[1] / base[1])
        met = "yes" if worst <= 3 else "NO"
        print(f"| encode + decode <= 3x json, {label} | {worst:.2f}x | {met} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
