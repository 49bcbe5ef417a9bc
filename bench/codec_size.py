#!/usr/bin/env python3
"""Bytes per frame of OCPP-J, cbor2, zstd + dictionary, permessage-deflate and our compact CBOR.

Frames of the odd-numbered sessions of the corpus are measured; the zstd dictionary is trained on
the even-numbered sessions. Two runs: message ids as recorded (UUIDs) and renumbered per session
as short decimal strings. Also the LoRa time on air (SF9, 125 kHz, CR 4/5) of a session.

    python bench/codec_size.py [--corpus ../shared/corpus/sessions-v201.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import zlib
from pathlib import Path
from typing import Any

import cbor2
import zstandard

from ocpp_iot.codecs import cbor
from ocpp_iot.rpc import Call, CallError, CallResult, Frame

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "sessions-v201.jsonl"
VERSION = "2.0.1"
LORA_MAX_PAYLOAD_SF9 = 222


def compact_json(frame: list[Any]) -> bytes:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False).encode()


def load(path: Path, renumber: bool = False) -> list[tuple[int, str, list[Any], Frame]]:
    """(session, direction, OCPP-J frame list, rpc frame) for every corpus line."""
    rows = []
    action_of: dict[str, str] = {}
    ids: dict[tuple[int, str], str] = {}
    counters: dict[int, int] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        session, direction, f = rec["session"], rec["dir"], rec["frame"]
        if renumber:
            f = list(f)
            if f[0] == 2:
                counters[session] = counters.get(session, 0) + 1
                ids[(session, f[1])] = str(counters[session])
            f[1] = ids[(session, f[1])]
        if f[0] == 2:
            action_of[f"{session}/{f[1]}"] = f[2]
            frame: Frame = Call(f[1], f[2], f[3])
        elif f[0] == 3:
            frame = CallResult(f[1], f[2], action_of[f"{session}/{f[1]}"])
        else:
            frame = CallError(f[1], f[2], f[3], f[4])
        rows.append((session, direction, f, frame))
    return rows


def stats(sizes: list[int]) -> tuple[float, int, int]:
    s = sorted(sizes)
    return sum(s) / len(s), s[math.ceil(0.95 * len(s)) - 1], s[-1]


def lora_airtime_ms(payload: int, sf: int = 9, bw: float = 125e3, cr: int = 1) -> float:
    """Semtech SX127x time on air: explicit header, CRC on, preamble 8, no LDRO at SF9/125k."""
    t_sym = (2**sf) / bw
    de = 1 if t_sym > 0.016 else 0
    ih, crc, preamble = 0, 1, 8
    num = 8 * payload - 4 * sf + 28 + 16 * crc - 20 * ih
    n_payload = 8 + max(math.ceil(num / (4 * (sf - 2 * de))) * (cr + 4), 0)
    return ((preamble + 4.25) + n_payload) * t_sym * 1000


def measure(rows: list[tuple[int, str, list[Any], Frame]]) -> dict[str, list[int]]:
    train = [compact_json(f) for s, _, f, _ in rows if s % 2 == 0]
    test = [(s, d, f, fr) for s, d, f, fr in rows if s % 2 == 1]
    zdict = zstandard.train_dictionary(16384, train)
    zd = zstandard.ZstdCompressor(level=19, dict_data=zdict)
    zc = zstandard.ZstdCompressor(
        level=19,
        dict_data=zdict,
        write_checksum=False,
        write_content_size=False,
        write_dict_id=False,
    )
    deflaters: dict[tuple[int, str], Any] = {}
    out: dict[str, list[int]] = {k: [] for k in LABELS}
    for s, d, f, fr in test:
        j = compact_json(f)
        out["ocppj"].append(len(j))
        out["cbor2"].append(len(cbor2.dumps(f)))
        out["zstd"].append(len(zd.compress(j)))
        out["zstd_lean"].append(len(zc.compress(j)))
        comp = deflaters.get((s, d))
        if comp is None:
            comp = deflaters[(s, d)] = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
        out["deflate"].append(len(comp.compress(j) + comp.flush(zlib.Z_SYNC_FLUSH)) - 4)
        out["ours"].append(len(cbor.encode(fr, VERSION)))
    out["_session"] = [s for s, _, _, _ in test]
    return out


LABELS = {
    "ocppj": "OCPP-J compact JSON",
    "cbor2": "cbor2 of the JSON tree",
    "zstd": "JSON + zstd-19, 16 KiB dictionary (per frame)",
    "zstd_lean": "same, frame without dictionary id and content size",
    "deflate": "JSON + permessage-deflate (context takeover)",
    "ours": "ocpp_iot compact CBOR",
}


def table(title: str, res: dict[str, list[int]]) -> str:
    zmean = stats(res["zstd"])[0]
    lines = [
        f"**{title}** ({len(res['ours'])} frames of the odd-numbered sessions)",
        "",
        "| encoding | mean B/frame | p95 | max | mean vs zstd+dict |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in LABELS.items():
        mean, p95, mx = stats(res[key])
        lines.append(f"| {label} | {mean:.1f} | {p95} | {mx} | {mean / zmean:.2f}x |")
    return "\n".join(lines)


def lora_table(res: dict[str, list[int]]) -> str:
    sessions = sorted(set(res["_session"]))
    lines = [
        "**LoRa time on air per session** (SF9, BW 125 kHz, CR 4/5, explicit header, CRC on, "
        f"preamble 8; one packet a frame; {len(sessions)} sessions)",
        "",
        "| encoding | mean s/session | max s/session | total s | frames > 222 B (SF9 max) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("ocppj", "ours"):
        per: dict[int, float] = {}
        for s, n in zip(res["_session"], res[key], strict=True):
            per[s] = per.get(s, 0.0) + lora_airtime_ms(n)
        over = sum(1 for n in res[key] if n > LORA_MAX_PAYLOAD_SF9)
        vals = list(per.values())
        mean_s = sum(vals) / len(vals) / 1000
        total = sum(vals) / 1000
        lines.append(
            f"| {LABELS[key]} | {mean_s:.2f} | {max(vals) / 1000:.2f} | {total:.0f} | {over} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args(argv)
    print(f"# Codec size, {time.strftime('%Y-%m-%d', time.gmtime())}, corpus {args.corpus.name}\n")
    recorded = measure(load(args.corpus))
    print(table("Message ids as recorded (UUIDs)", recorded) + "\n")
    renumbered = measure(load(args.corpus, renumber=True))
    print(table("Message ids renumbered per session (1, 2, ...)", renumbered) + "\n")
    print(lora_table(recorded) + "\n")
    mean, p95, mx = stats(recorded["ours"])
    goals = [
        ("mean <= 0.55x zstd+dict, recorded", _ratio(recorded), 0.55),
        ("mean <= 0.55x zstd+dict, renumbered", _ratio(renumbered), 0.55),
        ("(stricter) mean <= 0.55x lean-frame zstd, recorded", _ratio(recorded, "zstd_lean"), 0.55),
        (
            "(stricter) mean <= 0.55x lean-frame zstd, renumbered",
            _ratio(renumbered, "zstd_lean"),
            0.55,
        ),
        ("p95 <= 96 B, recorded", p95, 96),
        ("max <= 160 B, recorded", mx, 160),
    ]
    print("| goal | value | met |\n| --- | ---: | --- |")
    for name, value, limit in goals:
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"| {name} | {shown} | {'yes' if value <= limit else 'NO'} |")
    return 0


def _ratio(res: dict[str, list[int]], rival: str = "zstd") -> float:
    return stats(res["ours"])[0] / stats(res[rival])[0]


if __name__ == "__main__":
    raise SystemExit(main())
