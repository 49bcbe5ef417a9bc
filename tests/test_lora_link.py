"""The charger's LoRa link (LoraStationLink), its radio loop and the in-memory radio.

A station link on a :class:`MemoryChannel` against a bare gateway endpoint (a RadioAdapter on
the other modem), the radio running 20 to 50 times faster than real time: what the frame's
first bytes decide (priority, ANS), up and down on a radio (down after an abandoned message,
probes, up on the first acknowledgement), counter state written before the frame that needs
it and resumed after a restart, and the radio's own behaviour (loss, collisions, half-duplex).
Also the provisioning file (ocpp_iot.lora_keys) and the node's ``link="lora"`` configuration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bridge_memory_helpers import until

from ocpp_iot.codecs import cbor, ocppj
from ocpp_iot.lora_keys import load_stations, parse_key, provision, read_key_file
from ocpp_iot.rpc import Call, CallError, CallResult, ErrorCode, Send
from ocpp_iot.transports.link import FrameReceived, LinkDown, LinkEvent, LinkUp
from ocpp_iot.transports.lora import (
    ArqConfig,
    Delivered,
    Direction,
    Endpoint,
    Event,
    Priority,
    RadioConfig,
    peek,
)
from ocpp_iot.transports.lora.memory_radio import Air, MemoryChannel, MemoryModem, scaled_clock
from ocpp_iot.transports.lora_adapter import RadioAdapter
from ocpp_iot.transports.lora_link import LINK_PROBE, LoraStationLink, frame_kind, priority_of

UP_HZ, DOWN_HZ = 868_100_000, 869_525_000
KEY = bytes(range(16))
ADDRESS = 0x1234


def radio(hz: int, **kw: Any) -> RadioConfig:
    return RadioConfig(sf=7, max_packet=kw.pop("max_packet", 255), frequency_hz=hz, **kw)


class Gateway:
    """The gateway's side as a bare endpoint on its modem: records what it is delivered."""

    def __init__(
        self,
        ch: MemoryChannel,
        *,
        state: dict[str, Any] | None = None,
        arq: ArqConfig | None = None,
    ) -> None:
        self.endpoint = Endpoint(Direction.DOWN, radio(DOWN_HZ), arq)
        self.endpoint.add_peer(ADDRESS, KEY, state)
        self.modem = ch.modems.get("gw") or ch.modem("gw", tx_hz=DOWN_HZ, rx_hz=UP_HZ)
        self.got: list[bytes] = []
        self.on_delivered: Callable[[bytes], None] | None = None
        self.adapter = RadioAdapter(self.endpoint, self.modem, self._event, clock=ch.clock,
                                    rate=ch.rate, name="gw")  # fmt: skip

    def _event(self, ev: Event) -> None:
        if isinstance(ev, Delivered):
            self.got.append(ev.data)
            if self.on_delivered is not None:
                self.on_delivered(ev.data)

    def send(self, data: bytes, priority: Priority = Priority.CALL, answer: bool = False) -> None:
        self.adapter.send(ADDRESS, data, priority=priority, answer=answer)

    @property
    def stats(self) -> Any:
        return self.endpoint.peer_stats(ADDRESS)


def channel(rate: float = 20.0, **kw: Any) -> MemoryChannel:
    return MemoryChannel(radio(UP_HZ), clock=scaled_clock(rate), rate=rate, **kw)


def station(ch: MemoryChannel, tmp: Path | None, **kw: Any) -> LoraStationLink:
    modem = ch.modems.get("st") or ch.modem("st", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
    state = kw.pop("state_file", tmp / "lora-state.json" if tmp is not None else None)
    fresh = kw.pop("fresh_counters", True)  # a new key (the refusal is tested on its own)
    return LoraStationLink("CP1", modem, ADDRESS, KEY, radio=radio(UP_HZ), state_file=state,
                           clock=ch.clock, rate=ch.rate, fresh_counters=fresh,
                           **kw)  # fmt: skip


async def next_event(link: LoraStationLink, timeout: float = 5.0) -> LinkEvent:
    return await asyncio.wait_for(link.receive(), timeout)


def call(mid: str = "1") -> bytes:
    return cbor.encode(Call(mid, "Heartbeat", {}), "2.0.1")


# -- what a frame's first bytes say ------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1", "2.1"])
def test_frame_kind_reads_cbor_and_ocppj_frames(version: str) -> None:
    frames: list[tuple[Any, int]] = [
        (Call("a", "Heartbeat", {}), 2),
        (Call("5f4e6c1a-1b2c-4d3e-8f90-0123456789ab", "Heartbeat", {}), 2),  # a UUID id
        (CallResult("a", {"currentTime": "2026-01-01T00:00:00Z"}, "Heartbeat"), 3),
        (CallError("a", ErrorCode.INTERNAL_ERROR, "x", {}), 4),
    ]
    if version == "2.1":
        frames.append((Send("a", "NotifyPeriodicEventStream", {"id": 1, "pending": 0,
                                                               "basetime": "2026-01-01T00:00:00Z",
                                                               "data": []}), 6))  # fmt: skip
    for frame, kind in frames:
        assert frame_kind(cbor.encode(frame, version)) == kind, frame
        assert frame_kind(ocppj.encode(frame)) == kind, frame
        assert frame_kind(b"\n " + ocppj.encode(frame)) == kind
    assert frame_kind(b"") is None and frame_kind(LINK_PROBE) is None
    assert frame_kind(b"\xff\x00") is None and frame_kind(b"[x") is None
    assert priority_of(call()) == (Priority.CALL, True)
    answer = cbor.encode(CallResult("1", {"currentTime": "2026-01-01T00:00:00Z"}, "Heartbeat"),
                         "2.0.1")  # fmt: skip
    assert priority_of(answer) == (Priority.ANSWER, False)
    assert priority_of(b"\x00junk") == (Priority.CALL, False)


# -- the link ------------------------------------------------------------------------------------


def test_a_call_and_its_answer_are_two_frames_on_air(tmp_path: Path) -> None:
    async def scenario() -> None:
        ch = channel()
        # a long answer wait makes the CALL's timeout long: no retransmission on a busy machine
        slow = ArqConfig(answer_wait=20.0)
        gw = Gateway(ch, arq=slow)
        answer = cbor.encode(CallResult("1", {"currentTime": "2026-01-01T00:00:00Z"},
                                        "Heartbeat"), "2.0.1")  # fmt: skip
        gw.on_delivered = lambda data: gw.send(answer, Priority.ANSWER)
        gw.adapter.start()
        link = station(ch, tmp_path, arq=slow)
        assert link.max_frame == link.endpoint.max_message and not link.up
        await link.open()
        assert await next_event(link) == LinkUp(resumed=False) and link.up
        link.send(call())
        got = await next_event(link)
        assert got == FrameReceived(answer, json=False)
        assert gw.got == [call()]
        assert len(ch.sent) == 2  # the CALL, then the REPLY that acknowledged it
        text = ocppj.encode(Call("2", "Heartbeat", {}))
        link.send(text, json=True)
        await until(lambda: text in gw.got, "the OCPP-J frame at the gateway")
        assert isinstance(await next_event(link), FrameReceived)
        await link.close()
        with pytest.raises(EOFError):
            await link.receive()
        await gw.adapter.stop()
        saved = json.loads((tmp_path / "lora-state.json").read_text())
        assert saved["address"] == ADDRESS and saved["state"]["send"]["next"] == 2
        assert stat.S_IMODE(os.stat(tmp_path / "lora-state.json").st_mode) == 0o600

    asyncio.run(scenario())


def test_down_after_an_abandoned_message_probes_and_up_on_the_first_ack(tmp_path: Path) -> None:
    async def scenario() -> None:
        ch = channel(rate=50)
        link = station(ch, tmp_path, arq=ArqConfig(max_retries=1), probe_every=2.0)
        await link.open()
        assert isinstance(await next_event(link), LinkUp)
        link.send(call())  # no gateway on the air: retried once, then abandoned
        down = await next_event(link, 10)
        assert isinstance(down, LinkDown) and "unacknowledged" in down.reason and not link.up
        link.send(call("2"))  # dropped while down: the runtime resends after the next LinkUp
        assert link.counts["dropped_down"] == 1
        await until(lambda: link.counts["probes"] >= 1, "a probe")
        gw = Gateway(ch)
        gw.adapter.start()
        assert isinstance(await next_event(link, 10), LinkUp)
        # probes only (one, or more if an acknowledgement came late), the dropped frame never
        assert set(gw.got) == {LINK_PROBE}
        link.send(call("3"))
        await until(lambda: call("3") in gw.got, "a frame after the link came back")
        await link.close(timeout=0.1)
        await gw.adapter.stop()

    asyncio.run(scenario())


def test_the_counter_reservation_is_on_disk_before_its_frame_goes(tmp_path: Path) -> None:
    """PersistState(urgent) is written before the next Transmit: whenever a frame is on air,
    the state file already reserves past its counter; a restarted link resumes beyond every
    counter used, and the gateway takes its frames as fresh (not replays)."""
    state = tmp_path / "lora-state.json"
    seen: list[tuple[int, int]] = []  # (counter of a frame on air, reserved on disk then)

    def tap(air: Air) -> None:
        if air.frequency_hz == UP_HZ:
            reserved = json.loads(state.read_text())["state"]["send"]["reserved"]
            seen.append((peek(air.data).counter16, reserved))

    async def scenario() -> None:
        ch = channel(rate=50)
        ch.taps.append(tap)
        gw = Gateway(ch)
        gw.adapter.start()
        link = station(ch, tmp_path)
        await link.open()
        await next_event(link)
        for i in range(70):  # past one 64-counter block
            link.send(b"\x21" + i.to_bytes(2, "big"))  # not a CALL: a bare ACK each
            await until(lambda: not link._in_transit, "the acknowledgement")
        link.kill()  # a power cut: no last write
        assert len(gw.got) == 70 and all(c < r for c, r in seen) and len(seen) >= 70
        before = (gw.stats.duplicates, gw.stats.too_old, gw.stats.jumps)  # (retransmissions)
        again = station(ch, tmp_path)
        await again.open()
        await next_event(again)
        again.send(b"\x21\xff\xff")
        await until(lambda: b"\x21\xff\xff" in gw.got, "the restarted station's frame")
        assert (gw.stats.duplicates, gw.stats.too_old, gw.stats.jumps) == before
        assert seen[-1][0] == 128  # resumed at the reservation: past every counter used
        await again.close()
        await gw.adapter.stop()

    asyncio.run(scenario())


def test_a_failed_reservation_write_keeps_every_frame_off_the_air_until_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The urgent write of a new reservation fails (a full disk): the frames sealed past the
    reservation on disk do not go on air, retransmissions included, until a later attempt
    writes it. Else a restart would resume at the old reservation and seal other frames with
    the counters already on air (one AES-CCM nonce, two plaintexts)."""
    import ocpp_iot.transports.lora_link as lora_link

    state = tmp_path / "lora-state.json"
    on_air: list[tuple[int, int]] = []  # (counter of an uplink frame, reserved on disk then)
    disk_full = False
    real_write = lora_link.write_private

    def write(path: Any, data: Any, *, durable: bool) -> None:
        if disk_full:
            raise OSError(28, "No space left on device")
        real_write(path, data, durable=durable)

    def tap(air: Air) -> None:
        if air.frequency_hz == UP_HZ:
            reserved = json.loads(state.read_text())["state"]["send"]["reserved"]
            on_air.append((peek(air.data).counter16, reserved))

    monkeypatch.setattr(lora_link, "write_private", write)

    async def scenario() -> None:
        nonlocal disk_full
        ch = channel(rate=50)
        ch.taps.append(tap)
        gw = Gateway(ch)
        gw.adapter.start()
        link = station(ch, tmp_path, arq=ArqConfig(max_retries=20))
        link.adapter.reopen_delays = (0.2, 0.2)  # wall seconds between write attempts
        await link.open()
        await next_event(link)
        for i in range(64):  # counters 0..63: the first reservation, on disk
            link.send(b"\x21" + i.to_bytes(2, "big"))
            await until(lambda: not link._in_transit, "the acknowledgement")
        disk_full = True
        link.send(b"\x21\xaa\xaa")  # counter 64: a new reservation, which cannot be written
        await until(lambda: link.adapter.withholding, "the failed write")
        await until(lambda: link.adapter.counts["withheld"] >= 2, "a retransmission held back")
        assert b"\x21\xaa\xaa" not in gw.got and max(c for c, _ in on_air) == 63
        disk_full = False  # the next attempt writes it, and the frame goes
        await until(lambda: b"\x21\xaa\xaa" in gw.got, "the frame after the write", timeout=10)
        assert not link.adapter.withholding
        assert all(c < r for c, r in on_air) and max(c for c, _ in on_air) >= 64
        await link.close()
        await gw.adapter.stop()

    asyncio.run(scenario())


def test_only_a_durable_write_ends_the_withholding() -> None:
    """fsync fails (EIO) while plain writes still work: the urgent (fsynced) write of the
    reservation fails, the non-urgent one after a received message succeeds. That one is in
    the page cache only, a power cut undoes it: frames stay off the air until the fsynced
    write succeeds."""
    from ocpp_iot.transports.lora import PersistState, Transmit
    from ocpp_iot.transports.lora.frame import FrameType

    fsync_works = False
    written: list[bool] = []

    def on_event(ev: Event) -> None:
        if isinstance(ev, PersistState):
            if ev.urgent and not fsync_works:
                raise OSError(5, "Input/output error")
            written.append(ev.urgent)

    ch = MemoryChannel(radio(UP_HZ))
    endpoint = Endpoint(Direction.UP, radio(UP_HZ))
    endpoint.add_peer(ADDRESS, KEY)
    adapter = RadioAdapter(endpoint, ch.modem("m", tx_hz=UP_HZ, rx_hz=DOWN_HZ), on_event,
                           reopen_delays=(0.0, 0.0))  # fmt: skip
    frame = Transmit(b"x" * 20, 0.05, UP_HZ, ADDRESS, FrameType.DATA, False)
    adapter._handle([PersistState(ADDRESS, urgent=True), frame])
    assert adapter.withholding and adapter.idle and adapter.counts["withheld"] == 1
    adapter._handle([PersistState(ADDRESS, urgent=False), frame])  # written, not fsynced
    assert written == [False] and adapter.withholding and adapter.idle
    adapter._write_withheld()  # the retry: fsync still fails
    assert adapter.withholding
    fsync_works = True
    adapter._write_withheld()
    assert not adapter.withholding and written == [False, True]
    adapter._handle([frame])
    assert not adapter.idle  # queued for the modem now


def test_the_counters_belong_to_the_key_not_the_address(tmp_path: Path) -> None:
    """A nonce is address, direction and counter under the key. A new address keeps the
    key's counters; a new key starts over and the old key's counters stay in the file, so
    that the old key, back again (a configuration restored), resumes rather than repeats."""
    ch = MemoryChannel(radio(UP_HZ))
    state = tmp_path / "lora-state.json"

    def link(address: int, key: bytes) -> LoraStationLink:
        modem = ch.modem(f"m{len(ch.modems)}", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
        return LoraStationLink("CP1", modem, address, key, radio=radio(UP_HZ),
                               state_file=state, fresh_counters=True)  # fmt: skip

    def take(lk: LoraStationLink, n: int) -> list[int]:
        send = lk.endpoint._peers[lk.address].counters.send
        got = [send.take()[0] for _ in range(n)]
        lk._save_state(durable=True)
        return got

    first = take(link(ADDRESS, KEY), 70)
    moved = take(link(ADDRESS + 1, KEY), 1)  # the same key at another address
    assert moved[0] > max(first)
    other = bytes(range(1, 17))
    assert take(link(ADDRESS, other), 1) == [0]  # a new key: its own counters from 0
    back = take(link(ADDRESS, KEY), 1)  # the first key again
    assert back[0] > moved[0]
    assert take(link(ADDRESS, other), 1)[0] > 0  # and the second one resumes too


def test_a_station_that_lost_its_state_is_refused(tmp_path: Path) -> None:
    """The control case: a station without its state file starts at counter 0 again; a
    gateway that has seen its counters up to 500 drops its frames as too old (never delivers
    them), and the station's link goes down."""

    async def scenario() -> None:
        ch = channel(rate=50)
        gw = Gateway(ch, state={"receive": {"highest": 500, "seen": "1"}})
        gw.adapter.start()
        lost = station(ch, tmp_path, arq=ArqConfig(max_retries=1))
        await lost.open()
        await next_event(lost)
        lost.send(b"\x21\x07")
        assert isinstance(await next_event(lost, 10), LinkDown)
        assert gw.got == [] and gw.stats.too_old >= 1
        await lost.close()
        await gw.adapter.stop()

    asyncio.run(scenario())


def test_an_unreadable_state_file_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "lora-state.json").write_text("{not json")
    ch = MemoryChannel(radio(UP_HZ))
    with pytest.raises(ValueError, match="not JSON"):
        station(ch, tmp_path)
    # state of another key: counters start over (the ledger is kept)
    (tmp_path / "lora-state.json").write_text(json.dumps({
        "address": ADDRESS, "key_id": "other", "state": {"send": {"next": 999, "reserved": 999}},
        "ledger": {}}))  # fmt: skip
    link = station(ch, tmp_path)
    assert link.endpoint.state(ADDRESS)["send"]["next"] == 0


def test_a_frame_still_in_transit_is_not_queued_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        ch = channel()
        gw = Gateway(ch)
        gw.adapter.start()
        link = station(ch, tmp_path)
        await link.open()
        await next_event(link)
        data = b"\x21\x01"
        link.send(data)
        link.send(data)  # an OCPP retry while the radio still carries the first
        assert link.counts["deduplicated"] == 1
        await until(lambda: not link._in_transit, "the acknowledgement")
        link.send(data)  # once acknowledged, the same bytes are a new message
        await until(lambda: gw.got == [data, data], "the second message")
        await link.close()
        await gw.adapter.stop()

    asyncio.run(scenario())


def test_modem_failures_are_retried(tmp_path: Path) -> None:
    """An open that fails (the port is missing) is retried; a packet the modem refuses is
    resent by the link layer like a lost one."""

    async def scenario() -> None:
        ch = channel(rate=50)
        gw = Gateway(ch)
        gw.adapter.start()
        modem = ch.modem("st", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
        modem.fail_opens, modem.fail_transmits = 2, 1
        link = station(ch, tmp_path)
        link.adapter.reopen_delays = (0.01, 0.02)
        await link.open()
        assert isinstance(await next_event(link), LinkUp)
        assert link.adapter.counts["open_failures"] == 2
        link.send(b"\x21\x02")
        await until(lambda: gw.got == [b"\x21\x02"], "the frame after the modem refused it")
        assert link.adapter.counts["transmit_errors"] == 1
        await modem.close()  # the modem ends underneath the link: down, reopened, up
        assert isinstance(await next_event(link), LinkDown)
        assert isinstance(await next_event(link), LinkUp) and modem.opens == 2
        await link.close()
        await gw.adapter.stop()

    asyncio.run(scenario())


# -- the in-memory radio -------------------------------------------------------------------------


def test_memory_radio_loss_collisions_and_half_duplex() -> None:
    async def scenario() -> None:
        ch = MemoryChannel(radio(UP_HZ), rate=50, seed=1)
        a = ch.modem("a", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
        b = ch.modem("b", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
        gw = ch.modem("gw", tx_hz=DOWN_HZ, rx_hz=UP_HZ)
        for m in (a, b, gw):
            await m.open()
        await a.transmit(b"hello")
        assert (await asyncio.wait_for(gw.receive(), 1)).payload == b"hello"
        assert b._rx.empty()  # b listens on the gateway's frequency, not on the stations'
        await asyncio.gather(a.transmit(b"one"), b.transmit(b"two"))  # overlapping: both lost
        assert ch.collided == 2 and gw._rx.empty()  # each lost at the gateway
        # half-duplex: a radio on air hears nothing (the gateway, and station a)
        await asyncio.gather(gw.transmit(b"x" * 100), a.transmit(b"during"))
        assert ch.deaf == 2 and gw._rx.empty() and a._rx.empty()
        assert (await asyncio.wait_for(b.receive(), 1)).payload == b"x" * 100
        with pytest.raises(Exception, match="1..255"):
            await a.transmit(b"")
        await a.close()
        with pytest.raises(EOFError):
            await a.receive()
        lossy = MemoryChannel(radio(UP_HZ), rate=1000, loss=0.5, seed=2)
        tx = lossy.modem("tx", tx_hz=UP_HZ, rx_hz=DOWN_HZ)
        rx = lossy.modem("rx", tx_hz=DOWN_HZ, rx_hz=UP_HZ)
        await tx.open()
        await rx.open()
        for _ in range(200):
            await tx.transmit(b"p")
        assert 60 < lossy.lost < 140 and lossy.lost + lossy.delivered == 200
        assert lossy.busiest_hour("tx", UP_HZ, UP_HZ) == pytest.approx(200 * lossy.airtime(1))

    asyncio.run(scenario())


def test_memory_modem_is_a_modem() -> None:
    from ocpp_iot.transports.lora.modem import Modem

    assert isinstance(MemoryChannel().modem("m", tx_hz=UP_HZ, rx_hz=DOWN_HZ), Modem)
    assert isinstance(MemoryModem, type)


# -- provisioning --------------------------------------------------------------------------------


def test_provisioning_gives_unique_addresses_and_random_keys(tmp_path: Path) -> None:
    path = tmp_path / "gw" / "stations.json"
    a = provision(path, "CP1")
    b = provision(path, "CP2")
    c = provision(path, "CP3", address=77)
    assert len({a.address, b.address, c.address}) == 3 and c.address == 77
    assert len({a.key, b.key, c.key}) == 3 and all(len(s.key) == 16 for s in (a, b, c))
    assert 1 <= a.address <= 0xFFFE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_stations(path) == {"CP1": a, "CP2": b, "CP3": c}
    with pytest.raises(ValueError, match="provisioned already"):
        provision(path, "CP1")
    with pytest.raises(ValueError, match="belongs to CP3"):
        provision(path, "CP4", address=77)
    new = provision(path, "CP1", rekey=True)
    assert new.address == a.address and new.key != a.key
    body = json.loads(path.read_text())
    body["stations"].append({"id": "CP9", "address": 77, "key": "00" * 16})
    path.write_text(json.dumps(body))
    with pytest.raises(ValueError, match="share address 77"):
        load_stations(path)
    assert load_stations(tmp_path / "none.json") == {}


def test_keys_parse_from_hex_and_key_files(tmp_path: Path) -> None:
    assert parse_key("00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f") == KEY
    assert parse_key("0x" + KEY.hex().upper()) == KEY
    for bad in ("abc", "00" * 15, "zz" * 16):
        with pytest.raises(ValueError, match="32 hex digits"):
            parse_key(bad)
    f = tmp_path / "key"
    f.write_text("# CP1's LoRa key\n" + KEY.hex() + "\n")
    assert read_key_file(f) == KEY


def test_node_config_picks_the_lora_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ocpp_iot.transports.lora_setup as setup
    from ocpp_iot.charger_node.node import Node, NodeConfig, make_link

    ch = MemoryChannel(radio(UP_HZ))
    built: list[Any] = []

    def fake_modem(settings: setup.ModemSettings) -> MemoryModem:
        built.append(settings)
        return ch.modem(f"m{len(built)}", tx_hz=settings.tx_hz, rx_hz=settings.rx_hz,
                        max_payload=settings.packet)  # fmt: skip

    monkeypatch.setattr(setup, "make_modem", fake_modem)
    cfg = NodeConfig("CP1", data_dir=tmp_path, link="lora", lora_port="/dev/ttyUSB0",
                     lora_modem="e32", lora_address=5, lora_key=KEY.hex(), lora_sf=10)  # fmt: skip
    with pytest.raises(ValueError, match="counter state .* is missing"):
        make_link(cfg)  # a link alone cannot tell a first start from a lost state file
    link = make_link(Node(cfg).cfg)  # the node can: nothing in data_dir
    assert isinstance(link, LoraStationLink) and link.address == 5 and link.key == KEY
    assert link.radio.max_packet == 55 and link.radio.sf == 10 and link.max_frame == 2686
    assert built[0].port == "/dev/ttyUSB0" and built[0].rx_hz == DOWN_HZ
    assert link.state_file == tmp_path / "lora-state.json"
    for bad in (
        {"lora_port": None},
        {"lora_key": None},
        {"lora_key": "abc"},
        {"lora_frequency": 868_650_000},  # in no duty-cycled sub-band
        {"lora_modem": "sx1262"},
        {"lora_max_packet": 240},  # more than an E32 sends
    ):
        args = {"link": "lora", "lora_port": "p", "lora_modem": "e32", "lora_address": 5,
                "lora_key": KEY.hex(), **bad}  # fmt: skip
        with pytest.raises(ValueError):
            NodeConfig("CP1", data_dir=tmp_path, **args)
    with pytest.raises(ValueError, match="mqtt or lora"):
        NodeConfig("CP1", data_dir=tmp_path, link="pigeon")


def test_a_missing_counter_state_is_refused_unless_the_key_is_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without lora-state.json the link would seal frames from counter 0 again under a key
    that sealed frames before (AES-CCM nonce reuse, whatever the gateway then does with
    them). A node's first start (nothing in data_dir) starts at 0 and writes the file at
    once; a node that ran before and lost the file is refused; --lora-fresh-counters says
    the key is new."""
    import ocpp_iot.transports.lora_setup as setup
    from ocpp_iot.charger_node.node import Node, NodeConfig, make_link

    ch = MemoryChannel(radio(UP_HZ))
    monkeypatch.setattr(setup, "make_modem", lambda s: ch.modem(f"m{len(ch.modems)}",
                        tx_hz=s.tx_hz, rx_hz=s.rx_hz))  # fmt: skip
    cfg = NodeConfig("CP1", data_dir=tmp_path / "node", link="lora", lora_port="p",
                     lora_address=5, lora_key=KEY.hex())  # fmt: skip
    state = tmp_path / "node" / "lora-state.json"
    first = Node(cfg)
    assert first.cfg.lora_fresh_counters and not state.exists()
    make_link(first.cfg)
    saved = json.loads(state.read_text())  # written before any frame
    assert saved["state"]["send"] == {"next": 0, "reserved": 0} and saved["address"] == 5
    assert not Node(cfg).cfg.lora_fresh_counters  # the state file is there: not a first start
    make_link(cfg)  # and it is used
    (tmp_path / "node" / "outbox.db").write_bytes(b"")  # the node ran; then the file is lost
    state.unlink()
    again = Node(cfg)
    assert not again.cfg.lora_fresh_counters
    with pytest.raises(ValueError, match="re-key the station"):
        make_link(again.cfg)
    assert not state.exists()
    told = dataclasses.replace(cfg, lora_fresh_counters=True)
    assert isinstance(make_link(Node(told).cfg), LoraStationLink) and state.exists()
    # the command line says the same, before anything starts
    from click.testing import CliRunner

    from ocpp_iot.charger_node.cli import main

    state.unlink()
    args = ["run", "--station-id", "CP1", "--data-dir", str(tmp_path / "node"), "--link", "lora",
            "--lora-port", "p", "--lora-address", "5", "--lora-key", KEY.hex()]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and "--lora-fresh-counters" in result.output


def test_a_lora_node_waits_for_its_calls_as_long_as_the_radio_may_take(tmp_path: Path) -> None:
    """OCPP's MessageTimeout (30 s) is shorter than the radio's ten retry rounds: a LoRa node's
    device model starts at the link's span (node.lora_message_timeout), an explicit value or
    an MQTT node keeps its own."""
    from ocpp_iot.charger_node.node import NodeConfig, device_model_defaults, lora_message_timeout
    from ocpp_iot.transports.lora.arq import give_up_after

    name = "OCPPCommCtrlr.MessageTimeout[Default]"
    lora: dict[str, Any] = {"link": "lora", "lora_port": "p", "lora_address": 5,
                            "lora_key": KEY.hex()}  # fmt: skip
    spans = []
    for sf in (7, 9, 12):
        cfg = NodeConfig("CP1", data_dir=tmp_path, lora_sf=sf, **lora)
        span = give_up_after(RadioConfig(sf=sf, max_packet=255), ArqConfig())
        assert lora_message_timeout(cfg) == math.ceil(span)
        assert device_model_defaults(cfg) == {name: str(math.ceil(span))}
        spans.append(span)
    assert 300 < spans[0] < spans[1] < spans[2] < 3600  # 360 s, 478 s, 1558 s
    mine = NodeConfig("CP1", data_dir=tmp_path, variables={name: "90"}, **lora)
    assert device_model_defaults(mine) == {name: "90"}
    assert device_model_defaults(NodeConfig("CP1", data_dir=tmp_path)) == {}
