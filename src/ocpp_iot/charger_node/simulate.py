"""``charger-node simulate``: N simulated stations in one process, each a full :class:`~.node.Node`
with its own link (its own MQTT connection and credentials, as real chargers have), its own
files under ``data_dir/{id}`` and its own seeded simulation. Their outboxes share one SQLite
file, ``data_dir/outbox.db`` (rows keyed by station id; a connection per station would cost
about 90 KiB each), committed without fsync: a killed process loses nothing, a power cut of
the simulating machine may undo its last commits (:mod:`.outbox_store`).

With ``duration``, the run ends after that many seconds: every station ends its transactions in
progress and the run returns once their last messages are answered (or ``drain_timeout`` runs
out: then the stations that did not finish are named and the result says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ..transports.link import StationLink
from .dir_lock import DirLock
from .node import Node, NodeConfig, make_link
from .outbox_store import OutboxStore

__all__ = [
    "SimulationResult",
    "open_shared_outbox",
    "read_password_file",
    "run_simulation",
    "station_ids",
]

log = logging.getLogger(__name__)


def station_ids(count: int, prefix: str = "CP") -> list[str]:
    """``{prefix}{n}`` for n = 1..count (the DESIGN.md contract)."""
    if count < 1:
        raise ValueError("stations must be at least 1")
    return [f"{prefix}{n}" for n in range(1, count + 1)]


def read_password_file(path: str | Path) -> dict[str, str]:
    """``id:password`` lines (blank lines and ``#`` comments skipped); ``ValueError`` naming the
    line for anything else."""
    out: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        station, sep, password = line.partition(":")
        if not sep or not station:
            raise ValueError(f"{path}:{number}: expected 'id:password'")
        out[station] = password
    return out


def open_shared_outbox(data_dir: str | Path) -> OutboxStore:
    """The one outbox store of a simulation: ``data_dir/outbox.db``, shared, not power safe."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return OutboxStore(Path(data_dir) / "outbox.db", shared=True, power_safe=False)


@dataclass
class SimulationResult:
    stations: int
    drained: bool  #: every station ended its transactions and delivered everything
    unfinished: list[str]
    restarts: int


async def run_simulation(
    template: NodeConfig,
    ids: list[str],
    *,
    passwords: Mapping[str, str] | None = None,
    duration: float | None = None,
    drain_timeout: float = 120.0,
    stop: asyncio.Event | None = None,
    link_factory: Callable[[NodeConfig], StationLink] = make_link,
) -> SimulationResult:
    """Run one :class:`Node` per id (``template`` with the id, its password, its own folder and
    seed) until ``duration`` passes or ``stop`` is set, then drain them."""
    with DirLock(template.data_dir):  # the shared store's folder: one simulation at a time
        store = open_shared_outbox(template.data_dir)
        try:
            return await _simulate(template, ids, store, passwords, duration, drain_timeout,
                                   stop, link_factory)  # fmt: skip
        finally:
            store.close()


async def _simulate(
    template: NodeConfig,
    ids: list[str],
    store: OutboxStore,
    passwords: Mapping[str, str] | None,
    duration: float | None,
    drain_timeout: float,
    stop: asyncio.Event | None,
    link_factory: Callable[[NodeConfig], StationLink],
) -> SimulationResult:
    nodes = []
    for station in ids:
        cfg = replace(
            template,
            station_id=station,
            password=(passwords or {}).get(station, template.password),
            data_dir=Path(template.data_dir) / station,
            seed=f"{template.seed}-{station}" if template.seed is not None else station,
        )
        nodes.append(Node(cfg, link_factory=link_factory, outbox_store=store))
    tasks = [asyncio.ensure_future(n.run()) for n in nodes]
    log.info("simulating %d stations (OCPP %s)", len(nodes), template.version)
    stop = stop or asyncio.Event()
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([waiter, *tasks], timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    for n in nodes:
        n.stop("drain")
    _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
    unfinished = [n.cfg.station_id for n, t in zip(nodes, tasks, strict=True) if t in pending]
    for n, t in zip(nodes, tasks, strict=True):
        if t in pending:
            n.stop("stop")
    if pending:
        await asyncio.wait(pending, timeout=10.0)
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            log.error("a station failed: %r", t.exception())
            unfinished.append("?")
        with contextlib.suppress(BaseException):
            t.cancel()
    # let the cancelled ones finish before the shared outbox closes under them (no timeout:
    # a cancelled station only unwinds its finally blocks)
    await asyncio.wait(tasks)
    return SimulationResult(len(nodes), not unfinished, unfinished, sum(n.restarts for n in nodes))
