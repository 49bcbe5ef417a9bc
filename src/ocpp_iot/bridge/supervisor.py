"""``bridge serve``'s processes: one worker in this process, or ``--workers N`` supervised.

:func:`run_worker` builds one :class:`~.service.Bridge` from the command's options and runs it
until SIGTERM/SIGINT. :func:`supervise` starts N of them as processes on the MQTT 5 shared
subscription, restarts any that dies, and stops them all on SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from typing import Any

import click

from .settings import mqtt_settings, redacted, setup_logging

__all__ = ["build_bridge", "load_handlers", "run_worker", "supervise"]

log = logging.getLogger("ocpp_iot.bridge")


def load_handlers(
    specs: tuple[str, ...] | list[str],
    *,
    db: str,
    allow: list[str] | None,
    heartbeat_interval: int = 300,
) -> dict[str, Any]:
    """Build the version -> behaviour map from ``--handler`` specs (default: the reference).

    A spec ``package.module:Name`` names a behaviour class (instantiated without arguments,
    serving its ``version``), or a callable returning a behaviour or a version -> behaviour map.
    """
    from ..behaviours import Behaviour
    from .reference import build_reference

    if not specs:
        return build_reference(db, allow, heartbeat_interval=heartbeat_interval)
    handlers: dict[str, Any] = {}
    for spec in specs:
        module_name, sep, attr = spec.partition(":")
        if not sep:
            raise click.BadParameter(f"expected package.module:Class, got {spec!r}")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise click.BadParameter(f"cannot load {spec}: {exc}") from None
        made = obj() if callable(obj) else obj
        if isinstance(made, Behaviour):
            handlers[made.version] = made
        elif isinstance(made, Mapping):
            handlers.update(made)
        else:
            raise click.BadParameter(f"{spec} is neither a behaviour nor a version map")
    return handlers


def build_bridge(opts: Mapping[str, Any], index: int) -> Any:
    """One worker's :class:`~.service.Bridge` from the options of ``bridge serve``."""
    from .service import Bridge, BridgeConfig
    from .store import SqliteStore

    allow = list(opts["allow_token"]) or None
    handlers = load_handlers(
        opts["handlers"],
        db=opts["db"],
        allow=allow,
        heartbeat_interval=opts["heartbeat_interval"],
    )
    config = BridgeConfig(
        mqtt=mqtt_settings(opts, opts["client_id"]),
        prefix=opts["prefix"],
        mirror=opts["mirror"],
        state_topic=opts.get("state", True),
        call_timeout=opts["call_timeout"],
        dedup_retention=opts["dedup_retention"],
        commit_delay=opts["commit_delay"] / 1000.0,
        default_version=opts["default_version"],
        workers=opts["workers"],
        worker_index=index,
        handler_threads=opts["handler_threads"],
    )
    return Bridge(config, handlers, SqliteStore(opts["db"]))


def run_worker(opts: Mapping[str, Any], index: int) -> int:
    """Run one bridge worker until SIGTERM/SIGINT; returns the exit code."""
    if index:
        setup_logging(opts["log_level"], opts)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        broker = None
        if opts["embedded_broker"]:
            from ..transports.mqtt import parse_url
            from .embedded import EmbeddedBroker

            addr = parse_url(opts["broker"])
            broker = await EmbeddedBroker(addr.host, addr.port).start()
            log.info("embedded broker (amqtt, MQTT 3.1.1) listening on %s", broker.url)
        try:
            bridge = build_bridge(opts, index)
            # What exists now (modules, classes, the codecs' and models' tables: some 80,000
            # objects) lives as long as the worker: the collector's full passes need not scan it
            # every time (it made them take ~50 ms each, 12 % of the CPU at 1,000 stations).
            # And a young generation of 10,000 objects instead of 700: under load the stations'
            # frames in flight are what the older generations' passes scanned, 300 times in 10 s
            # (~1 ms per young pass now)
            gc.collect()
            gc.freeze()
            gc.set_threshold(10_000, 10, 10)
            await bridge.run(stop)
        finally:
            if broker is not None:
                await broker.stop()

    try:
        asyncio.run(run())
    except click.ClickException:
        raise
    except Exception:
        # the traceback may quote the broker URL or the password: log it redacted
        log.error("bridge worker %d failed:\n%s", index, redacted(traceback.format_exc(), opts))
        return 1
    return 0


def _worker_entry(opts: dict[str, Any], index: int) -> None:
    sys.exit(run_worker(opts, index))


def supervise(opts: dict[str, Any]) -> int:
    """Start ``--workers`` processes, restart any that dies, stop them all on SIGTERM."""
    ctx = multiprocessing.get_context("spawn")
    n = opts["workers"]
    procs: dict[int, Any] = {}
    stopping = False

    def start(i: int) -> None:
        p = ctx.Process(target=_worker_entry, args=(dict(opts), i), name=f"bridge-w{i}")
        p.start()
        procs[i] = p
        log.info("worker %d started (pid %d)", i, p.pid)

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for i in range(n):
        start(i)
    restarts: dict[int, float] = {}
    while not stopping:
        time.sleep(0.2)
        for i, p in list(procs.items()):
            if not p.is_alive() and not stopping:
                log.warning("worker %d (pid %d) exited with %s; restarting", i, p.pid, p.exitcode)
                delay = 0.5 if time.monotonic() - restarts.get(i, 0) > 10 else 5.0
                restarts[i] = time.monotonic()
                time.sleep(delay)
                start(i)
    for p in procs.values():
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGTERM)
    for p in procs.values():
        p.join(15)
        if p.is_alive():
            p.kill()
    return 0
