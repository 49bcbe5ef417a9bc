"""``python -m ocpp_iot.transports.lora.sim``: simulated LoRa modems on pseudo-terminals.

Prints one serial port path per radio (or one JSON line with ``--json``), then runs until
interrupted (or ``--duration`` seconds), then prints what happened on the channel and every
duty-cycle violation the simulator found (exit status 3 with ``--strict`` if there was one).
Point the drivers, ``charger-node`` or the gateway at the paths as at ``/dev/ttyUSB0``::

    python -m ocpp_iot.transports.lora.sim --modem rak3172 --radios 3 --loss 0.1 --seed 7
    python -m ocpp_iot.transports.lora.sim --modem e22 --radios 2 -o rssi_byte=true -o sf=7
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .core import EMULATORS, Simulator

__all__ = ["main"]


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    try:
        return int(text, 0)  # 0x12 too
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _parser() -> argparse.ArgumentParser:
    from . import ebyte, rak3172, reyax  # noqa: F401  (register the modems)

    p = argparse.ArgumentParser(
        prog="python -m ocpp_iot.transports.lora.sim",
        description="Simulated LoRa modems on pseudo-terminals, joined by a simulated channel.",
    )
    p.add_argument("--modem", default="rak3172", choices=sorted(EMULATORS))
    p.add_argument("--radios", type=int, default=2, help="how many (default 2)")
    p.add_argument("--dir", help="where the port links go (default: a new temporary directory)")
    p.add_argument(
        "--rate", type=float, default=1.0, help="radio seconds per wall second (default 1)"
    )
    p.add_argument("--loss", type=float, default=0.0, help="random loss per receiver (0..1)")
    p.add_argument("--capture-db", type=float, help="capture effect threshold (default: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--spacing", type=float, default=100.0, help="metres between radios")
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a modem option for every radio (e.g. work_mode=0, rssi_byte=true, sf=7)",
    )
    p.add_argument("--duration", type=float, help="stop after this many wall seconds")
    p.add_argument("--json", action="store_true", help="print the ports as one JSON line")
    p.add_argument("--strict", action="store_true", help="exit 3 on a duty-cycle violation")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options: dict[str, Any] = {}
    for item in args.option:
        key, eq, value = item.partition("=")
        if not eq:
            print(f"--option {item!r}: expected KEY=VALUE", file=sys.stderr)
            return 2
        options[key.strip()] = _value(value.strip())
    try:
        sim = Simulator(
            args.modem,
            args.radios,
            directory=args.dir,
            rate=args.rate,
            loss=args.loss,
            capture_db=args.capture_db,
            seed=args.seed,
            spacing=args.spacing,
            options=options,
        )
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with sim:
        if args.json:
            info = {"modem": args.modem, "rate": args.rate, "ports": sim.paths}
            print(json.dumps(info), flush=True)
        else:
            for path in sim.paths:
                print(path, flush=True)
        stop.wait(args.duration)
        counts = sim.counts()
        violations = sim.violations
        per_radio = sim.call(lambda: {r.name: dict(r.counts) for r in sim.radios})
    report = {"channel": dict(counts), "radios": per_radio, "violations": len(violations)}
    print(json.dumps(report), file=sys.stderr)
    for v in violations[:20]:
        print(f"duty cycle: {v}", file=sys.stderr)
    return 3 if args.strict and violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
