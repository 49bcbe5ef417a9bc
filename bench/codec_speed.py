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
    texts = [ocppj.encode(fr) for fr in frames]
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    loads = json.loads

    def json_both() -> None:
        for f in lists:
            loads(dumps(f))

    def ocppj_both() -> None:
        for fr in frames:
            ocppj.decode(ocppj.encode(fr), VERSION)

    def cbor2_both() -> None:
        for f in lists:
            cbor2.loads(cbor2.dumps(f))

    def ours_both() -> None:
        enc, dec = cbor.encode, cbor.decode
        for fr in frames:
            dec(enc(fr, VERSION))

    def ours_encode() -> None:
        enc = cbor.encode
        for fr in frames:
            enc(fr, VERSION)

    def ours_decode() -> None:
        dec = cbor.decode
        for b in encoded:
            dec(b)

    def ocppj_decode() -> None:
        for t in texts:
            ocppj.decode(t, VERSION)

    cases: list[tuple[str, Callable[[], None]]] = [
        ("json.dumps + json.loads (baseline)", json_both),
        ("ocppj.encode + ocppj.decode", ocppj_both),
        ("cbor2.dumps + cbor2.loads of the JSON tree", cbor2_both),
        ("ours: cbor.encode + cbor.decode", ours_both),
        ("ours: cbor.encode only", ours_encode),
        ("ours: cbor.decode only", ours_decode),
    ]
    times: dict[str, list[float]] = {name: [] for name, _ in cases}
    for _ in range(args.repeat):  # interleaved, so load changes hit every row alike
        for name, fn in cases:
            t0 = time.process_time()  # CPU time: other load on the machine does not count
            fn()
            times[name].append((time.process_time() - t0) / len(frames) * 1e6)
    base_min = min(times[cases[0][0]])
    base_med = statistics.median(times[cases[0][0]])
    print(
        f"# Codec speed, {time.strftime('%Y-%m-%d', time.gmtime())}, {len(frames)} frames, "
        f"{args.repeat} repetitions, Python {sys.version.split()[0]}\n"
    )
    print("| per frame | min µs | median µs | min ratio | median ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, _ in cases:
        lo, med = min(times[name]), statistics.median(times[name])
        print(f"| {name} | {lo:.2f} | {med:.2f} | {lo / base_min:.2f}x | {med / base_med:.2f}x |")
    ratio = min(times[cases[3][0]]) / base_min
    ratio_med = statistics.median(times[cases[3][0]]) / base_med
    ok = "yes" if max(ratio, ratio_med) <= 3 else "NO"
    print("\n| goal | value | met |\n| --- | ---: | --- |")
    print(f"| encode + decode <= 3x json | {ratio:.2f}x min, {ratio_med:.2f}x median | {ok} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
