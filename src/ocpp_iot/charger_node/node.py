"""One charger node: a station's configuration turned into its parts, run until told to stop.

:class:`NodeConfig` is what ``charger-node run`` reads (TOML, ``CHARGER_NODE_*`` variables,
flags). :class:`Node` makes the station's files in ``data_dir`` (``outbox.db``, the durable
queue and counters; ``device-model.json``, the persisted variables; ``status.json``, what
``charger-node status`` shows), the EVSE (simulated, or the user's own class), the station
machine and the link, and runs them. A Reset restarts all but the hardware, as a reboot would,
and boots again with reason RemoteReset (ScheduledReset after a Reset OnIdle that waited for
the transactions to end).

The link is MQTT (``link="mqtt"``) or a LoRa modem to a ``bridge lora-gateway``
(``link="lora"``: :class:`~ocpp_iot.transports.lora_link.LoraStationLink`, its counters in
``lora-state.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rpc import Frame
from ..transports.link import StationLink
from .device_model import DeviceModel, JsonFileStore
from .device_model_access import MESSAGE_TIMEOUT
from .dir_lock import DirLock
from .evse import Evse, check_evse
from .outbox import Outbox, OutboxStore, ReplayPace
from .registration import boot_reason_after
from .runtime import Encoding, StationRuntime, steady_clock
from .simulated import SimulatedEvse
from .station import BootInfo, StationMachine
from .tx_records import METER_KEY, TX_KEY, V16_DEFAULTS

if TYPE_CHECKING:
    from ..transports.lora_setup import ModemSettings

__all__ = ["Node", "NodeConfig", "make_link", "queue_depth", "read_status"]

log = logging.getLogger(__name__)

VERSIONS = ("1.6", "2.0.1", "2.1")


@dataclass(slots=True)
class NodeConfig:
    """Everything one station needs. ``evse``: ``"simulated"`` or ``"package.module:Class"``
    (called with ``connectors``); ``scenario``: a scenario file for the simulation."""

    station_id: str
    broker: str = "mqtt://localhost:1883"
    password: str | None = None
    version: str = "2.0.1"
    connectors: int = 1
    data_dir: Path = Path("/var/lib/charger-node")
    encoding: Encoding = "cbor"
    prefix: str = "ocpp"
    protocol: str = "5"
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    keepalive: int = 60
    #: the MQTT link's longest wait between reconnection attempts, seconds
    reconnect_max_delay: float = 30.0
    evse: str = "simulated"
    seed: int | str | None = None
    scenario: str | None = None
    model: str = "ocpp-iot node"
    vendor: str = "ocpp-iot"
    serial_number: str | None = None
    firmware_version: str | None = None
    #: device-model values to start from (path -> value), e.g. a shorter meter interval
    variables: dict[str, str] = field(default_factory=dict)
    #: replay pacing after an offline period: messages a minute, and the burst
    replay_per_minute: float = 60.0
    replay_burst: int = 20
    max_queue: int = 5000
    #: "mqtt", or "lora": a LoRa modem on a serial port to a `bridge lora-gateway`
    link: str = "mqtt"
    lora_port: str | None = None
    lora_modem: str = "rak3172"
    #: the station's address and key (`bridge add-station --lora` prints them): the key as 32
    #: hex digits, or a file holding them
    lora_address: int | None = None
    lora_key: str | None = None
    lora_key_file: str | None = None
    lora_sf: int = 9
    lora_bandwidth: int = 125000
    lora_coding_rate: int = 1
    #: preamble symbols (as the gateway's; an RYLR896 takes 4..7)
    lora_preamble: int = 8
    #: where the station transmits, and where it listens (the gateway's frequency)
    lora_frequency: int = 868_100_000
    lora_gateway_frequency: int = 869_525_000
    lora_power: int = 14
    #: the packet size of the deployment (the smaller of the two modems'); None: the modem's
    lora_max_packet: int | None = None
    #: start the radio's frame counters at 0 without a counter state file: only for a key that
    #: has never been used (a node's first start, with nothing in data_dir, needs no flag)
    lora_fresh_counters: bool = False

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ValueError(f"version must be one of {', '.join(VERSIONS)}, not {self.version!r}")
        if self.connectors < 1:
            raise ValueError("connectors must be at least 1")
        if self.encoding not in ("cbor", "json"):
            raise ValueError(f"encoding must be cbor or json, not {self.encoding!r}")
        self.data_dir = Path(self.data_dir)
        if self.link not in ("mqtt", "lora"):
            raise ValueError(f"link must be mqtt or lora, not {self.link!r}")
        if self.link == "lora":
            if not self.lora_port or self.lora_address is None:
                raise ValueError("a LoRa link needs the modem's port and the station's address")
            lora_settings(self)
            lora_key(self)


# -- the link -----------------------------------------------------------------------------------


def lora_settings(cfg: NodeConfig) -> ModemSettings:
    """The station's modem settings (``ValueError`` for impossible ones)."""
    from ..transports.lora_setup import ModemSettings

    return ModemSettings(
        cfg.lora_modem, cfg.lora_port or "", tx_hz=cfg.lora_frequency,
        rx_hz=cfg.lora_gateway_frequency, sf=cfg.lora_sf, bandwidth_hz=cfg.lora_bandwidth,
        coding_rate=cfg.lora_coding_rate, preamble=cfg.lora_preamble, power_dbm=cfg.lora_power,
        max_packet=cfg.lora_max_packet,
    )  # fmt: skip


def lora_key(cfg: NodeConfig) -> bytes:
    """The station's key, from ``lora_key`` or ``lora_key_file`` (exactly one of them)."""
    from ..lora_keys import parse_key, read_key_file

    if (cfg.lora_key is None) == (cfg.lora_key_file is None):
        raise ValueError("a LoRa link needs the station's key: lora_key or lora_key_file")
    try:
        return parse_key(cfg.lora_key) if cfg.lora_key else read_key_file(cfg.lora_key_file or "")
    except OSError as exc:
        raise ValueError(f"cannot read the LoRa key file: {exc}") from None


def device_model_defaults(cfg: NodeConfig) -> dict[str, str]:
    """The device model's starting values: ``cfg.variables``, and on a LoRa link a
    MessageTimeout as long as the radio may take to deliver a CALL (OCPP's 30 s is a fraction
    of it: the station would give up on CALLs the radio still delivers, ignore their late
    answers and send them again), unless ``cfg.variables`` names one."""
    defaults = (V16_DEFAULTS if cfg.version == "1.6" else {}) | dict(cfg.variables)
    if cfg.link == "lora" and MESSAGE_TIMEOUT not in defaults:
        defaults[MESSAGE_TIMEOUT] = str(lora_message_timeout(cfg))
    return defaults


def lora_message_timeout(cfg: NodeConfig) -> int:
    """Seconds a CALL may take on ``cfg``'s radio before its link gives it up (arq
    ``give_up_after``), within the variable's range (at most an hour)."""
    from ..transports.lora import ArqConfig
    from ..transports.lora.arq import give_up_after

    return min(3600, math.ceil(give_up_after(lora_settings(cfg).radio(), ArqConfig())))


def make_lora_link(
    cfg: NodeConfig, *, clock: Callable[[], float] = time.time, rate: float = 1.0
) -> StationLink:
    """The LoRa link of ``cfg``; ``clock`` / ``rate``: radio time (a simulator's, in tests)."""
    from ..transports.lora_link import LoraStationLink
    from ..transports.lora_setup import make_modem

    settings = lora_settings(cfg)
    assert cfg.lora_address is not None
    modem = make_modem(settings)
    radio = settings.radio()
    if modem.max_payload < radio.max_packet:  # what the driver really carries in one packet
        radio = dataclasses.replace(radio, max_packet=modem.max_payload)
    return LoraStationLink(
        cfg.station_id, modem, cfg.lora_address, lora_key(cfg), radio=radio,
        state_file=cfg.data_dir / "lora-state.json", clock=clock, rate=rate,
        fresh_counters=cfg.lora_fresh_counters,
    )  # fmt: skip


def _first_start(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds none of the files a node that ran before has written."""
    names = ("outbox.db", "device-model.json", "status.json", "lora-state.json")
    return not any((data_dir / n).exists() for n in names)


def make_link(cfg: NodeConfig) -> StationLink:
    if cfg.link == "lora":
        return make_lora_link(cfg)
    from ..transports.mqtt_link import MqttStationLink

    return MqttStationLink(
        cfg.station_id,
        cfg.broker,
        password=cfg.password,
        prefix=cfg.prefix,
        protocol=cfg.protocol,
        ca_certs=cfg.ca_certs,
        certfile=cfg.certfile,
        keyfile=cfg.keyfile,
        keepalive=cfg.keepalive,
        reconnect_max_delay=cfg.reconnect_max_delay,
    )


def read_status(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What a running (or the last) node wrote to ``status.json``; ``None`` if nothing."""
    try:
        data = json.loads((Path(data_dir) / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def queue_depth(data_dir: str | os.PathLike[str]) -> int | None:
    """Messages in the station's outbox now (read-only, beside a running node): in the store
    ``status.json`` names, else ``data_dir/outbox.db``; ``None`` if there is none yet."""
    where = (read_status(data_dir) or {}).get("outbox") or {}
    path = Path(where.get("path") or Path(data_dir) / "outbox.db")
    if not path.exists():
        return None
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        ) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE station = ?", (where.get("station", ""),)
            ).fetchone()
    except sqlite3.Error:  # e.g. a file of an older layout, not opened by a node yet
        return None
    return int(row[0])


class Node:
    """One station, built from ``cfg``. ``link_factory`` makes its link (default: MQTT);
    ``on_frame`` sees every frame the runtime sends or receives (:class:`StationRuntime`);
    ``clock`` / ``rate``: the station's time and how many of its seconds pass per wall second
    (a test on the radio simulator's clock). ``outbox_store``: keep the outbox there, under
    the station's id, instead of in ``data_dir/outbox.db`` (a file there is adopted into it:
    :meth:`OutboxStore.adopt`); the caller closes it."""

    def __init__(
        self,
        cfg: NodeConfig,
        *,
        link_factory: Callable[[NodeConfig], StationLink] = make_link,
        evse: Evse | None = None,
        clock: Callable[[], float] | None = None,
        rate: float = 1.0,
        status_every: float = 10.0,
        on_frame: Callable[[str, Frame], None] | None = None,
        outbox_store: OutboxStore | None = None,
    ) -> None:
        self.cfg = cfg
        self.link_factory = link_factory
        self.on_frame = on_frame
        self.clock = clock if clock is not None else steady_clock()
        self.rate = rate
        self.status_every = status_every
        if cfg.link == "lora" and not cfg.lora_fresh_counters and _first_start(cfg.data_dir):
            # nothing of a node in data_dir: the key's counters start at 0 (the link writes its
            # state file at once); a state file missing later is refused (lora_link.py)
            cfg = self.cfg = dataclasses.replace(cfg, lora_fresh_counters=True)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.outbox_store = outbox_store
        last = read_status(cfg.data_dir) or {}  # what the last run left, read once
        self._gather_queue(last)
        self.evse = evse if evse is not None else self._make_evse(last)
        self.runtime: StationRuntime | None = None
        self.restarts = 0
        self._stopping: str | None = None
        # status.json every status_every seconds: a timer callback, not a Task with its frame
        self._status_timer: asyncio.TimerHandle | None = None

    # -- parts --------------------------------------------------------------------------------

    def _gather_queue(self, last: dict[str, Any]) -> None:
        """Bring the station's queue into the store it uses now if the last run kept it in
        another: its own ``outbox.db`` when ``simulate`` now runs it in the shared store, or
        ``simulate``'s shared store (``last``, its ``status.json``, names it under this station's
        id) when
        ``run`` now runs it on its own. Each move holds the lock of the folder it empties
        (:mod:`.dir_lock`): a queue in use by a running process stays where it is, and this
        station does not start (:class:`~.dir_lock.DataDirInUse`)."""
        cfg, store = self.cfg, self.outbox_store
        own = cfg.data_dir / "outbox.db"
        if store is not None and own.exists():
            with DirLock(cfg.data_dir):
                self._move_queue(store, cfg.station_id, own, "")
        where = last.get("outbox") or {}
        if where.get("station") != cfg.station_id or not where.get("path"):
            return  # the last run kept it in its own file, or never ran
        shared = Path(where["path"])
        here = store.path if store is not None else own
        if not shared.exists() or shared.resolve() == here.resolve():
            return
        with DirLock(shared.parent):
            if store is not None:
                self._move_queue(store, cfg.station_id, shared, cfg.station_id)
            else:
                with OutboxStore(own) as mine:  # a file of its own: its station is ""
                    self._move_queue(mine, "", shared, cfg.station_id)

    def _move_queue(
        self, store: OutboxStore, station: str, source: Path, source_station: str
    ) -> None:
        moved = store.adopt(source, station, source_station=source_station)
        log.info("%s: moved %d queued messages from %s into %s",
                 self.cfg.station_id, moved, source, store.path)  # fmt: skip

    def _make_evse(self, last: dict[str, Any]) -> Evse:
        cfg = self.cfg
        if cfg.evse == "simulated":
            start_wh = self._simulated_registers(last) or None
            seed = cfg.seed if cfg.seed is not None else cfg.station_id
            return SimulatedEvse(
                cfg.connectors,
                seed=seed,
                scenario=cfg.scenario,
                start_wh=start_wh,
            )
        module_name, _, attr = cfg.evse.partition(":")
        if not attr:
            raise ValueError(
                f"evse must be 'simulated' or 'package.module:Class', not {cfg.evse!r}"
            )
        cls = getattr(importlib.import_module(module_name), attr)
        return check_evse(cls(cfg.connectors))

    def _simulated_registers(self, last: dict[str, Any]) -> dict[int, float]:
        """Where the simulated meters go on from after a restart: the highest register known
        for each connector: status.json's (``last``, written every few seconds), the register
        at the last stop and the last reading of a transaction in progress (both kept in the
        outbox with the messages that carry them, so a kill loses neither). A real meter keeps
        its own."""
        registers: dict[int, float] = {}

        def see(connector: Any, wh: Any) -> None:
            if isinstance(wh, int | float):
                n = int(connector)
                registers[n] = max(registers.get(n, 0.0), float(wh))

        for k, v in (last.get("registers") or {}).items():
            see(k, v)
        if self.outbox_store is not None or (self.cfg.data_dir / "outbox.db").exists():
            with self._open_outbox() as outbox:
                for key, rec in outbox.kept(METER_KEY).items():
                    see(key[len(METER_KEY) :], rec.get("wh"))
                for rec in outbox.kept(TX_KEY).values():
                    see(rec.get("connector", 0), rec.get("last_wh"))
        return registers

    def _make_machine(self) -> StationMachine:
        cfg = self.cfg
        per_evse = [1] * len(self.evse.connectors)
        model = DeviceModel(
            model=cfg.model,
            vendor_name=cfg.vendor,
            serial_number=cfg.serial_number,
            firmware_version=cfg.firmware_version,
            evses=per_evse,
            store=JsonFileStore(cfg.data_dir / "device-model.json"),
            defaults=device_model_defaults(cfg) or None,
        )
        outbox = self._open_outbox()
        boot = BootInfo(cfg.model, cfg.vendor, cfg.serial_number, cfg.firmware_version)
        pace = ReplayPace(per_minute=cfg.replay_per_minute, burst=cfg.replay_burst)
        return StationMachine(cfg.station_id, cfg.version, self.evse, model, outbox, boot=boot,
                              pace=pace)  # fmt: skip

    def _open_outbox(self) -> Outbox:
        max_messages = self.cfg.max_queue
        if self.outbox_store is not None:
            return Outbox(self.outbox_store, station=self.cfg.station_id, max_messages=max_messages)
        return Outbox(self.cfg.data_dir / "outbox.db", max_messages=max_messages)

    # -- running ------------------------------------------------------------------------------

    def stop(self, how: str = "stop") -> None:
        """``"stop"``: leave now (transactions stay in progress, as at a power cut, and are
        ended as PowerLoss at the next start); ``"drain"``: end them first."""
        self._stopping = how
        if self.runtime is not None:
            self.runtime.stop(how)

    async def run(self) -> None:
        """Run until :meth:`stop`; a Reset restarts everything but the hardware."""
        reason = "PowerUp"
        while True:
            machine = self._make_machine()
            self.runtime = StationRuntime(
                machine,
                self.link_factory(self.cfg),
                encoding=self.cfg.encoding,
                clock=self.clock,
                rate=self.rate,
                on_frame=self.on_frame,
            )
            if self._stopping is not None:
                self.runtime.stop(self._stopping)
            self._write_status_often()
            try:
                reset = await self.runtime.run(reason)
            finally:
                if self._status_timer is not None:
                    self._status_timer.cancel()
                self.write_status()
                machine.outbox.close()
            if reset is None or self._stopping is not None:
                return
            self.restarts += 1
            log.info("%s: reset (%s): restarting", self.cfg.station_id, reset)
            reason = boot_reason_after(reset)

    def _write_status_often(self) -> None:
        try:
            self.write_status()
        except OSError as exc:  # a full disk must not stop the station; the next try may work
            log.warning("%s: could not write status.json: %s", self.cfg.station_id, exc)
        loop = asyncio.get_running_loop()
        self._status_timer = loop.call_later(self.status_every, self._write_status_often)

    def write_status(self) -> None:
        if self.runtime is None:
            return
        status = self.runtime.machine.status(self.clock())
        status["written_at"] = self.clock()
        status["pid"] = os.getpid()
        outbox = self.runtime.machine.outbox
        status["outbox"] = {"path": str(outbox.store.path.resolve()), "station": outbox.station}
        if isinstance(self.evse, SimulatedEvse):
            status["registers"] = {str(k): v for k, v in self.evse.registers().items()}
        path = self.cfg.data_dir / "status.json"
        tmp = path.with_name("status.json.tmp")
        tmp.write_text(json.dumps(status, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # no fsync: losing the last status is harmless

    def config_summary(self) -> dict[str, Any]:
        d = asdict(self.cfg)
        d["password"] = "***" if self.cfg.password else None
        d["lora_key"] = "***" if self.cfg.lora_key else None
        d["data_dir"] = str(self.cfg.data_dir)
        return d
