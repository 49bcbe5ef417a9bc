"""``bridge lora-gateway``: LoRa radio stations on the broker, as if each had its own MQTT link.

One :class:`LoraGateway` is one LoRa modem and one MQTT client of its own (username
``lora-gw`` by default; the ACL lets it write ``{prefix}/+/up`` and ``.../status`` and read
``.../down``, see :mod:`ocpp_iot.deploy`). For every station of its stations file
(:mod:`ocpp_iot.lora_keys`):

- each message the radio delivers from the station (once, in order: the link layer's ARQ) is
  published on ``{prefix}/{id}/up``, QoS 1 (OCPP-J text marked ``application/json``);
- what arrives on ``{prefix}/{id}/down`` goes out by radio (answers before CALLs, a CALL
  flagged so that the station's answer acknowledges it), at most ``max_queue`` messages
  waiting per station (more are dropped and counted: the back end's timeouts cover them);
- ``{prefix}/{id}/status`` (retained) says ``online`` from the first authentic frame heard
  from it, ``offline`` once nothing was heard for ``offline_after`` seconds or a message to it
  was abandoned unacknowledged; the statuses are published again on every (re)connection to
  the broker, and ``offline`` for every station when the gateway stops cleanly. (One MQTT will
  cannot speak for many stations: a gateway that dies leaves their last status until it is
  back, then ``offline_after`` corrects it.)

So ``bridge serve`` serves them exactly like MQTT stations. Link probes (:data:`~ocpp_iot.
transports.lora_link.LINK_PROBE`) count as heard and are not published. Frames of unknown
addresses, forged, replayed or wrongly keyed are dropped and counted (``endpoint.stats``,
``endpoint.peer_stats(address)``).

Downlinks spend the gateway's own duty-cycle budget: it transmits on 869.525 MHz (the 10 %
sub-band 869.4-869.65 MHz) and listens on the stations' 868.1 MHz (docs/lora.md, "Gateway").

What it persists in ``state_file`` (JSON, 0600): per station (with its address and a key
fingerprint, so a re-keyed station starts over) the endpoint's counter state, and the
duty-cycle ledger, fsynced before a frame that uses a new counter reservation, written after
each message received, and on stop. A state file that exists but cannot be read stops the
gateway from starting (counters from 0 would reuse nonces).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..codecs.ocppj import looks_like_ocppj
from ..lora_keys import (
    LoraStation,
    gateway_state_file,
    key_id,
    load_stations,
    read_json,
    write_private,
)
from ..transports.aio import AsyncMqttClient
from ..transports.base import PubSubClient
from ..transports.lora import (
    ArqConfig,
    Delivered,
    Direction,
    Dropped,
    DutyCycleLedger,
    Endpoint,
    Event,
    PersistState,
    Priority,
    RadioConfig,
    SendAcked,
    SendCounter,
    SendFailed,
)
from ..transports.lora.modem import Modem
from ..transports.lora_adapter import RadioAdapter
from ..transports.lora_link import CALL, LINK_PROBE, frame_kind, priority_of
from ..transports.lora_setup import ModemSettings
from ..transports.pubsub_link import JSON_CONTENT_TYPE, ClientFactory
from ..transports.settings import Message, MqttSettings, Will

__all__ = [
    "GATEWAY_FREQUENCY",
    "STATION_FREQUENCY",
    "GatewayConfig",
    "LoraGateway",
    "gateway_from_options",
    "run_gateway",
]

log = logging.getLogger("ocpp_iot.bridge.lora")

#: the default frequency plan (docs/lora.md, "Gateway"): stations transmit in the 1 % sub-band
#: 868.0-868.6 MHz, the gateway in the 10 % sub-band 869.4-869.65 MHz
STATION_FREQUENCY = 868_100_000
GATEWAY_FREQUENCY = 869_525_000


@dataclass
class GatewayConfig:
    #: broker, credentials and session (client id: the username, else ``lora-gw``)
    mqtt: MqttSettings
    stations_file: Path
    state_file: Path
    prefix: str = "ocpp"
    #: modulation, packet size and where the gateway transmits (the stations use the same
    #: modulation and packet size, and transmit on ``STATION_FREQUENCY`` unless told otherwise)
    radio: RadioConfig = field(default_factory=lambda: RadioConfig(frequency_hz=GATEWAY_FREQUENCY))
    arq: ArqConfig = field(default_factory=ArqConfig)
    offline_after: float = 900.0
    max_queue: int = 16
    #: seconds a clean stop waits for the answers to the CALLs it published and for what it
    #: queued for the radio to go (wall-clock seconds)
    drain_timeout: float = 5.0
    #: start without a counter state file though stations are provisioned: only when no
    #: gateway has ever used their keys (``bridge add-station --lora`` writes the first file)
    fresh_counters: bool = False


class LoraGateway:
    """The gateway (module docstring). ``client_factory`` builds the MQTT client
    (:class:`~ocpp_iot.transports.aio.AsyncMqttClient`, or a MemoryBroker's ``client``)."""

    def __init__(
        self,
        config: GatewayConfig,
        modem: Modem,
        *,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.time,
        rate: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.prefix = config.prefix
        self.clock = clock
        self.rate = rate
        found = read_json(config.state_file)  # ValueError: unreadable state, refuse
        stations = load_stations(config.stations_file)
        if found is None and stations and not config.fresh_counters:
            raise ValueError(
                f"the counter state {config.state_file} is missing for {len(stations)} "
                "provisioned station(s): started again at 0 under the same keys, the gateway "
                "would reuse AES-CCM nonces. Restore the file, or re-key the stations (bridge "
                "add-station --lora --rekey), or, if no gateway has used these keys, start "
                "once with --fresh-counters"
            )
        saved = found or {}
        self._saved: dict[str, Any] = dict(saved.get("stations") or {})
        ledger = DutyCycleLedger.from_json(saved.get("ledger"),
                                           bandwidth_hz=config.radio.bandwidth_hz)  # fmt: skip
        self.endpoint = Endpoint(Direction.DOWN, config.radio, config.arq, ledger=ledger,
                                 rng=rng or random.Random())  # fmt: skip
        self.stations: dict[str, LoraStation] = {}
        self.by_address: dict[int, str] = {}
        self.status: dict[str, str] = {}
        self.last_heard: dict[str, float] = {}
        self.queued: collections.Counter[str] = collections.Counter()
        #: CALLs published for a station whose answer has not come down yet
        self.awaiting: collections.Counter[str] = collections.Counter()
        #: up, down, probes, down_dropped (queue full, too long, unknown station), dropped
        #: (frames the radio refused: see endpoint.stats for why), failed (downlinks abandoned)
        self.stats: collections.Counter[str] = collections.Counter()
        user = config.mqtt.username or "lora-gw"
        settings = dataclasses.replace(config.mqtt, client_id=config.mqtt.client_id or user)
        factory: ClientFactory = client_factory or AsyncMqttClient
        self.client: PubSubClient = factory(settings, self._message, on_connect=self._connected)
        self.adapter = RadioAdapter(self.endpoint, modem, self._on_event, clock=clock, rate=rate,
                                    name="lora-gateway")  # fmt: skip
        self._started = clock()
        self._add_stations(stations)
        if found is None:
            self._save_state(durable=True)  # the next start finds it

    # -- stations -------------------------------------------------------------------------------

    def topic(self, station: str, kind: str) -> str:
        return f"{self.prefix}/{station}/{kind}"

    def _add_stations(self, stations: dict[str, LoraStation]) -> None:
        changed = [st for st in stations.values() if self.stations.get(st.station_id) != st]
        # first the old peers of re-provisioned stations go, with what they still had to send
        # (under the old key or address they would retransmit for nothing and never settle
        # their queue slots), their counters kept under their key; then the new peers come:
        # two stations may swap addresses
        for st in changed:
            old = self.stations.get(st.station_id)
            if old is None:
                continue
            self._retire(old)
            self.by_address.pop(old.address, None)
            lost = self.endpoint.remove_peer(old.address)
            self.queued[st.station_id] = self.awaiting[st.station_id] = 0
            log.warning("%s: re-provisioned (address %d): %d downlink message(s) dropped",
                        st.station_id, st.address, lost)  # fmt: skip
        for st in changed:
            holder = self.by_address.get(st.address)
            if holder is not None and holder not in stations:  # removed from the file
                log.warning("%s: address %d now belongs to %s: no longer served", holder,
                            st.address, st.station_id)  # fmt: skip
                self._retire(self.stations.pop(holder))
            self.endpoint.add_peer(st.address, st.key, self._state_of(st))
            self.stations[st.station_id] = st
            self.by_address[st.address] = st.station_id
            self.client.subscribe(self.topic(st.station_id, "down"), 1)

    # The counters belong to a key, not to a station id or an address: a nonce is address,
    # direction and counter under the key, so a key that comes back to an address it used
    # (stations that swap addresses and swap back, a stations file restored from a backup, a
    # renamed station) must resume its counters, never start them at 0 again. Only a new key
    # starts over. The state file keeps every key's counters, under "<id>@<key id>" once the
    # key is no longer a station's.

    def _retire(self, st: LoraStation) -> None:
        """Keep ``st``'s counters (its peer is about to go) under its key."""
        kid = key_id(st.key)
        entry = {"address": st.address, "key_id": kid, "state": self.endpoint.state(st.address)}
        self._saved[f"{st.station_id}@{kid}"] = entry

    def _state_of(self, st: LoraStation) -> dict[str, Any] | None:
        """The saved counters of ``st``'s key (the furthest, if several copies), taken out of
        the saved entries; ``None`` for a new key."""
        kid = key_id(st.key)
        mine = self._saved.pop(st.station_id, None)
        if mine is not None and mine.get("key_id") != kid:  # the station's earlier key
            self._saved[f"{st.station_id}@{mine.get('key_id')}"] = mine
            mine = None
        found = [mine] if mine is not None else []
        for name in [n for n, e in self._saved.items() if e.get("key_id") == kid]:
            found.append(self._saved.pop(name))
        states: list[dict[str, Any]] = [e["state"] for e in found if e.get("state")]
        if not states:
            return None
        # where each copy's sender would resume
        return max(states, key=lambda state: SendCounter.from_json(state.get("send")).next)

    def reload_stations(self) -> None:
        """Read the stations file again (``bridge add-station --lora`` while running; SIGHUP):
        new stations are served, re-keyed ones start over; removed ones stay until a restart."""
        stations = load_stations(self.config.stations_file)
        gone = sorted(set(self.stations) - set(stations))
        if gone:
            log.warning("no longer in %s, still served until a restart: %s",
                        self.config.stations_file, ", ".join(gone))  # fmt: skip
        self._add_stations(stations)
        self._save_state(durable=True)

    def _save_state(self, *, durable: bool) -> None:
        stations = dict(self._saved)  # stations of the file no longer provisioned: kept
        for sid, st in self.stations.items():
            stations[sid] = {
                "address": st.address,
                "key_id": key_id(st.key),
                "state": self.endpoint.state(st.address),
            }
        body = {"format": 1, "stations": stations, "ledger": self.endpoint.ledger.to_json()}
        write_private(self.config.state_file, body, durable=durable)

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then say the stations are offline and write the state."""
        self.client.start()
        self.adapter.start()
        log.info("LoRa gateway: %d station(s), transmitting on %.3f MHz", len(self.stations),
                 self.config.radio.frequency_hz / 1e6)  # fmt: skip
        watch = asyncio.ensure_future(self._watch())
        try:
            await stop.wait()
            await self._drain()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await self.adapter.stop()
            self._save_state(durable=True)
            final = [Will(self.topic(s, "status"), b"offline", 1, True) for s in self.stations]
            await self.client.stop(final, 5.0)

    async def _drain(self) -> None:
        """Before a clean stop: let the answers to the CALLs we published come down and go by
        radio, with what else was queued (bounded by ``drain_timeout``). What the gateway holds
        in memory is lost when it stops (an answer taken from the broker but not sent yet; the
        broker keeps those it has not handed over for the persistent session), and a restarted
        gateway acknowledges a repeated message delivered before it with a bare ACK instead of
        the REPLY it would have sent (peer.py): more frames on air."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        while loop.time() < deadline and (
            any(n > 0 for n in self.queued.values())
            or any(n > 0 for n in self.awaiting.values())
            or not self.adapter.idle
        ):
            await asyncio.sleep(0.01)

    async def _watch(self) -> None:
        """Mark stations offline that have not been heard for ``offline_after``."""
        period = max(min(self.config.offline_after / 4, 60.0), 0.01)
        while True:
            await asyncio.sleep(period / self.rate)
            now = self.clock()
            for sid in self.stations:
                heard = self.last_heard.get(sid, self._started)
                if now - heard > self.config.offline_after and self.status.get(sid) != "offline":
                    self._set_status(sid, "offline", "silent")

    def _set_status(self, sid: str, status: str, why: str = "") -> None:
        if self.status.get(sid) == status:
            return
        self.status[sid] = status
        log.info("%s: %s%s", sid, status, f" ({why})" if why else "")
        self.client.publish(self.topic(sid, "status"), status.encode(), 1, True)

    def _heard(self, sid: str) -> None:
        self.last_heard[sid] = self.clock()
        self._set_status(sid, "online")

    def _connected(self, session_present: bool) -> None:
        for sid, status in self.status.items():  # a broker restart may have lost them
            self.client.publish(self.topic(sid, "status"), status.encode(), 1, True)

    # -- broker -> radio ----------------------------------------------------------------------

    def _message(self, msg: Message) -> None:
        parts = msg.topic.split("/")
        sid = parts[-2] if len(parts) >= 3 and parts[-1] == "down" else ""
        st = self.stations.get(sid)
        if st is None or msg.topic != self.topic(sid, "down"):
            self.stats["down_dropped"] += 1
            log.debug("ignored a message on %s", msg.topic)
            return
        if self.queued[sid] >= self.config.max_queue:
            self.stats["down_dropped"] += 1
            log.warning("%s: %d messages wait for the radio already: one dropped", sid,
                        self.queued[sid])  # fmt: skip
            return
        priority, answer = priority_of(msg.payload)
        if priority is Priority.ANSWER and self.awaiting[sid] > 0:
            self.awaiting[sid] -= 1
        try:
            self.adapter.send(st.address, msg.payload, priority=priority, answer=answer, tag=sid)
        except ValueError as exc:
            self.stats["down_dropped"] += 1
            log.warning("%s: not sent by radio: %s", sid, exc)
            return
        self.queued[sid] += 1

    # -- radio -> broker ----------------------------------------------------------------------

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, PersistState):
            self._save_state(durable=ev.urgent)  # urgent: before the next frame goes
            return
        if isinstance(ev, Dropped):
            self.stats["dropped"] += 1
            log.debug("radio frame dropped (station address %s): %s", ev.address, ev.reason)
            return
        sid = self.by_address.get(ev.address)
        if sid is None:  # a station removed from the file (still a peer of the endpoint)
            return
        if isinstance(ev, Delivered):
            self._heard(sid)
            if ev.data == LINK_PROBE:
                self.stats["probes"] += 1
                return
            self.stats["up"] += 1
            if frame_kind(ev.data) == CALL:
                self.awaiting[sid] += 1
            json = looks_like_ocppj(ev.data)
            self.client.publish(self.topic(sid, "up"), ev.data, 1, False,
                                content_type=JSON_CONTENT_TYPE if json else None)  # fmt: skip
        elif isinstance(ev, SendAcked):
            self.queued[ev.tag] -= 1
            self.stats["down"] += 1
            if ev.confirmed:
                self._heard(sid)
        elif isinstance(ev, SendFailed):
            self.queued[ev.tag] -= 1
            self.stats["failed"] += 1
            self._set_status(sid, "offline", "a message to it went unacknowledged")


# -- the command ----------------------------------------------------------------------------------


def gateway_from_options(
    opts: dict[str, Any], *, make_modem: Callable[[ModemSettings], Modem] | None = None
) -> LoraGateway:
    """The gateway ``bridge lora-gateway`` runs, from its options (``ValueError`` for
    impossible ones)."""
    from ..lora_keys import default_stations_file
    from ..transports import lora_setup
    from .settings import mqtt_settings

    settings = ModemSettings(
        opts["modem"], opts["port"], tx_hz=opts["frequency"], rx_hz=opts["station_frequency"],
        sf=opts["sf"], bandwidth_hz=int(opts["bandwidth"]), coding_rate=opts["coding_rate"],
        preamble=opts.get("preamble", 8),
        power_dbm=opts["power"], max_packet=opts["max_packet"],
    )  # fmt: skip
    modem = (make_modem or lora_setup.make_modem)(settings)
    radio = settings.radio()
    if modem.max_payload < radio.max_packet:
        radio = dataclasses.replace(radio, max_packet=modem.max_payload)
    stations = Path(opts["stations"]) if opts["stations"] else default_stations_file()
    if not stations.exists():
        raise ValueError(f"no stations file {stations}: provision with bridge add-station --lora")
    state = gateway_state_file(stations, opts["state_file"])
    mqtt = mqtt_settings(opts, opts["client_id"] or opts["username"] or "lora-gw")
    config = GatewayConfig(mqtt, stations, state, prefix=opts["prefix"], radio=radio,
                           offline_after=opts["offline_after"],
                           fresh_counters=opts.get("fresh_counters", False))  # fmt: skip
    return LoraGateway(config, modem)


def run_gateway(gateway: LoraGateway) -> None:
    """Run until SIGTERM / SIGINT; SIGHUP reads the stations file again."""

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, _reload, gateway)
        await gateway.run(stop)

    asyncio.run(go())


def _reload(gateway: LoraGateway) -> None:
    try:
        gateway.reload_stations()
    except (OSError, ValueError) as exc:
        log.error("stations file not reloaded: %s", exc)
