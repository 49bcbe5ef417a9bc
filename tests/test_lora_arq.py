"""Acknowledgements, retransmission, timeouts, priorities and duty cycle, through Endpoints on a
seeded lossy channel (virtual time: nothing sleeps)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_iot.transports.lora import (
    ArqConfig,
    Delivered,
    Direction,
    Endpoint,
    Event,
    FrameType,
    PersistState,
    Priority,
    RadioConfig,
    Transmit,
    ack_timeout,
    peek,
    time_on_air,
)
from ocpp_iot.transports.lora.arq import ack_frame_size, retry_delay
from ocpp_iot.transports.lora.frame import Frame, seal
from ocpp_iot.transports.lora.virtual_channel import Air, VirtualChannel

Channel = VirtualChannel[Endpoint]

UPLINK, DOWNLINK = 868_100_000, 869_525_000  # 1 % and 10 % sub-bands


def key(k: int) -> bytes:
    return bytes([k]) * 16


def network(
    stations: int = 1,
    *,
    loss: float = 0.0,
    sf: int = 9,
    max_packet: int = 58,
    seed: int = 1,
    arq: ArqConfig | None = None,
    answer_delay: float = 0.3,
) -> Channel:
    """A gateway and ``stations`` stations (addresses 1..n) with an OCPP-like application:
    a message starting with ``C`` is a CALL, answered ``answer_delay`` later with ``R`` + its
    id at ANSWER priority."""
    gw = Endpoint(
        Direction.DOWN,
        RadioConfig(sf, max_packet=max_packet, frequency_hz=DOWNLINK),
        arq,
        rng=random.Random(seed),
    )
    eps: dict[str, Endpoint] = {"gw": gw}
    for k in range(1, stations + 1):
        st = Endpoint(
            Direction.UP,
            RadioConfig(sf, max_packet=max_packet, frequency_hz=UPLINK),
            arq,
            rng=random.Random(seed * 100 + k),
        )
        st.add_peer(k, key(k))
        gw.add_peer(k, key(k))
        eps[f"st{k}"] = st

    def app(name: str, ev: Event) -> None:
        if isinstance(ev, Delivered) and ev.data[:1] == b"C":
            peer = ev.address
            answer = b"R" + ev.data[1:9]
            ch.later(answer_delay, lambda: ch.send(name, peer, answer, priority=Priority.ANSWER))

    ch = Channel(eps, loss=loss, seed=seed, on_event=app)
    return ch


def call(station: int, n: int, size: int = 30) -> bytes:
    head = b"C%03d%04d" % (station, n)
    return head + bytes([n % 251]) * max(0, size - len(head))


def all_done(ch: Channel, expected: dict[str, int]) -> bool:
    return all(len(ch.acked[n]) + len(ch.failed[n]) >= k for n, k in expected.items())


# -- timeouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("sf", [7, 9, 12])
def test_timeouts_are_derived_from_time_on_air_never_fixed(sf: int) -> None:
    radio, arq = RadioConfig(sf, max_packet=255), ArqConfig()
    ack = time_on_air(ack_frame_size(), sf)
    assert ack_timeout(radio, arq, answer=False) > ack
    assert ack_timeout(radio, arq, answer=True) > arq.answer_wait + time_on_air(255, sf)
    # an SF12 frame is ~1 s for a bare ACK and ~9 s for a full packet: the timeouts follow
    if sf == 12:
        assert ack_timeout(radio, arq, answer=False) > time_on_air(ack_frame_size(), 12) > 0.9
        assert ack_timeout(radio, arq, answer=True) > 9.0


@pytest.mark.parametrize("sf", [7, 12])
def test_the_first_retransmission_waits_for_the_frame_and_its_ack(sf: int) -> None:
    st = Endpoint(Direction.UP, RadioConfig(sf, frequency_hz=UPLINK), rng=random.Random(3))
    st.add_peer(1, key(1))
    events = st.send(1, b"x" * 40, 100.0)
    tx = [e for e in events if isinstance(e, Transmit)]
    assert len(tx) == 1 and tx[0].airtime == time_on_air(len(tx[0].data), sf)
    retry_at = st.next_deadline()
    assert retry_at is not None
    assert retry_at - 100.0 >= tx[0].airtime + time_on_air(ack_frame_size(), sf)
    assert st.poll(retry_at - 1e-6) == []  # nothing before
    again = [e for e in st.poll(retry_at) if isinstance(e, Transmit)]
    assert again and again[0].data == tx[0].data and again[0].retransmission  # same frame


def test_back_off_is_random_from_the_rng_given_and_grows() -> None:
    rng = random.Random(7)
    delays = [retry_delay(1.0, k, 4, rng) for k in range(8)]
    assert all(1.0 <= d <= 1.0 + 2 ** min(k, 4) for k, d in enumerate(delays))
    again = random.Random(7)
    assert delays == [retry_delay(1.0, k, 4, again) for k in range(8)]  # seeded: repeatable
    other = random.Random(8)
    assert delays != [retry_delay(1.0, k, 4, other) for k in range(8)]


# -- acknowledgements: piggyback, hold, count -----------------------------------------------------


def test_an_answer_within_answer_wait_acknowledges_the_call_no_bare_ack() -> None:
    ch = network(loss=0.0, answer_delay=0.3)
    calls = [call(1, i) for i in range(10)]
    for c in calls:
        ch.send("st1", 1, c, answer=True)
    ch.run(3600, stop=lambda: all_done(ch, {"st1": 10}) and len(ch.delivered["st1"]) == 10)
    gw, st = ch.links["gw"].peer_stats(1), ch.links["st1"].peer_stats(1)
    assert [d for _, d in ch.delivered["gw"]] == calls
    assert [d for _, d in ch.delivered["st1"]] == [b"R" + c[1:9] for c in calls]
    assert gw.control_frames == 0 and gw.piggybacked == 10  # every CALL acked by its answer
    assert st.retransmissions == 0 and gw.retransmissions == 0
    # and the answers went as REPLYs, which nothing acknowledges: 20 frames for 10 exchanges
    assert st.control_frames == 0 and len(ch.sent) == 20
    assert {peek(a.data).type for a in ch.sent if a.sender == "gw"} == {FrameType.REPLY}


def test_a_lost_reply_is_asked_for_again_by_the_repeated_call() -> None:
    ch = network(loss=0.0, answer_delay=0.3)
    dropped: list[bytes] = []
    deliver = ch._arrive

    def lose_first_reply(air: Air) -> None:
        if air.sender == "gw" and not dropped:
            dropped.append(air.data)  # the first REPLY never arrives
            return
        deliver(air)

    ch._arrive = lose_first_reply  # type: ignore[method-assign]
    ch.send("st1", 1, call(1, 1), answer=True)
    ch.run(3600, stop=lambda: len(ch.delivered["st1"]) == 1 and all_done(ch, {"st1": 1}))
    assert [d for _, d in ch.delivered["st1"]] == [b"R" + call(1, 1)[1:9]]
    assert [d for _, d in ch.delivered["gw"]] == [call(1, 1)]  # the CALL once
    st, gw = ch.links["st1"].peer_stats(1), ch.links["gw"].peer_stats(1)
    assert st.retransmissions == 1 and gw.retransmissions == 1  # the CALL, then the REPLY
    resent = [a.data for a in ch.sent if a.sender == "gw"]
    assert resent == [dropped[0], dropped[0]]  # the very same frame
    assert gw.control_frames == st.control_frames == 0


def test_a_late_answer_gets_a_bare_ack_at_answer_wait_and_no_retransmission() -> None:
    ch = network(loss=0.0, answer_delay=5.0)  # slower than answer_wait (2 s)
    ch.send("st1", 1, call(1, 1), answer=True)
    ch.run(3600, stop=lambda: len(ch.delivered["st1"]) == 1)
    gw, st = ch.links["gw"].peer_stats(1), ch.links["st1"].peer_stats(1)
    assert gw.control_frames == 1 and gw.piggybacked == 0
    assert st.retransmissions == 0 and ch.acked["st1"] == [None]


def test_every_acknowledgement_s_airtime_is_counted() -> None:
    ch = network(loss=0.2, seed=4)
    for i in range(12):
        ch.send("st1", 1, call(1, i, size=120), answer=i % 2 == 0)
    ch.run(7200, stop=lambda: all_done(ch, {"st1": 12}))
    for name, address in (("gw", 1), ("st1", 1)):
        control = sum(
            a.end - a.start
            for a in ch.sent
            if a.sender == name and peek(a.data).type in (FrameType.ACK, FrameType.CTRL)
        )
        assert ch.links[name].peer_stats(address).control_airtime == pytest.approx(control)


# -- the goal: delivered exactly once, in order, under loss ----------------------------------


@pytest.mark.parametrize("loss", [0.1, 0.2])
def test_everything_is_delivered_exactly_once_in_order_at_20_percent_loss(loss: float) -> None:
    ch = network(loss=loss, seed=11)
    rng = random.Random(5)
    calls = [call(1, i, size=rng.choice([20, 40, 90, 200])) for i in range(40)]  # some fragmented
    for c in calls:
        ch.send("st1", 1, c, answer=True, priority=Priority.CALL)
    downs = [call(0, 1000 + i, size=60) for i in range(6)]
    for d in downs:  # the back end calls the station too (its answers go back up)
        ch.send("gw", 1, d, answer=True, priority=Priority.CALL)
    ch.run(
        4 * 3600,
        stop=lambda: (
            all_done(ch, {"st1": 40, "gw": 6 + 40})
            and len(ch.delivered["st1"]) == 46
            and len(ch.delivered["gw"]) == 46
        ),
    )
    up = [d for _, d in ch.delivered["gw"]]
    down = [d for _, d in ch.delivered["st1"]]
    assert [d for d in up if d[:1] == b"C"] == calls  # every CALL once, in order
    assert sorted(d for d in up if d[:1] == b"R") == sorted(b"R" + d[1:9] for d in downs)
    assert [d for d in down if d[:1] == b"R"] == [b"R" + c[1:9] for c in calls]
    assert [d for d in down if d[:1] == b"C"] == downs
    assert ch.failed == {"gw": [], "st1": []}
    assert ch.lost > 0 and ch.links["st1"].peer_stats(1).retransmissions > 0
    for name in ("gw", "st1"):  # checked by the channel, not by the ledger under test
        budget = 360.0 if name == "gw" else 36.0
        assert all(v <= budget + 1e-6 for v in ch.worst_hour(name).values())


def test_ten_stations_share_a_channel_for_an_hour_with_collisions_and_loss() -> None:
    """The issue's field check at the link layer: 10 stations on one uplink channel, 20 % loss,
    collisions, one simulated hour of a CALL a minute each (some fragmented), answered by the
    back end: every CALL delivered once and in order, every answer back, no budget exceeded."""
    stations = 10
    ch = network(stations=stations, loss=0.2, seed=21, sf=7)
    rng = random.Random(8)
    sent: dict[int, list[bytes]] = {k: [] for k in range(1, stations + 1)}

    def every_minute(k: int, i: int) -> None:
        c = call(k, i, size=rng.choice([30, 45, 60, 120]))
        sent[k].append(c)
        ch.send(f"st{k}", k, c, answer=True)
        if i < 59:
            ch.later(60.0, lambda: every_minute(k, i + 1))

    for k in range(1, stations + 1):
        phase = rng.uniform(0, 60)
        ch.later(phase, lambda k=k: every_minute(k, 0))
    expected = {f"st{k}": 60 for k in range(1, stations + 1)}
    ch.run(2 * 3600, stop=lambda: all_done(ch, expected))
    for k in range(1, stations + 1):
        got = [d for a, d in ch.delivered["gw"] if a == k and d[:1] == b"C"]
        assert got == sent[k] and len(got) == 60
        assert [d for _, d in ch.delivered[f"st{k}"]] == [b"R" + c[1:9] for c in sent[k]]
        assert ch.failed[f"st{k}"] == []
    assert ch.collided > 0 and ch.lost > 0  # stations did talk over each other
    for name in ch.links:
        budget = 360.0 if name == "gw" else 36.0
        assert all(v <= budget + 1e-6 for v in ch.worst_hour(name).values())


# -- priorities and the duty cycle ------------------------------------------------------------


def test_answers_go_before_queued_meter_values() -> None:
    ch = network(loss=0.0)

    def station_app(name: str, ev: Event) -> None:
        if name == "st1" and isinstance(ev, Delivered) and ev.data[:1] == b"C":
            for i in range(4):  # meter values queued first (the first one goes at once) ...
                ch.send("st1", 1, b"M%04d" % i + bytes(30), priority=Priority.BULK)
            ch.send("st1", 1, b"R" + ev.data[1:9], priority=Priority.ANSWER)  # ... then this

    ch.on_event = station_app
    ch.send("gw", 1, call(0, 1), answer=True)
    ch.run(3600, stop=lambda: len(ch.delivered["gw"]) == 5)
    order = [d[:1] for _, d in ch.delivered["gw"]]
    assert order == [b"M", b"R", b"M", b"M", b"M"]  # behind the one in flight only


def test_the_queue_waits_for_the_duty_cycle_rather_than_break_it() -> None:
    ch = network(loss=0.0, sf=12, max_packet=255)
    messages = [b"M%04d" % i + bytes(35) for i in range(30)]  # 40 bytes: ~1.8 s each at SF12
    per = time_on_air(40 + 11, 12)
    assert 30 * per > 36.0  # more than one hour's 1 % budget
    for m in messages:
        ch.send("st1", 1, m, priority=Priority.BULK)
    ch.run(3 * 3600, stop=lambda: all_done(ch, {"st1": 30}))
    assert [d for _, d in ch.delivered["gw"]] == messages
    assert ch.now > 3600.0  # it had to wait for the oldest frames to leave the hour
    assert ch.worst_hour("st1")["868.0-868.6"] <= 36.0 + 1e-6
    assert ch.links["st1"].stats.duty_waits > 0


def test_with_the_whole_budget_spent_nothing_spins_and_acks_go_first_when_it_returns() -> None:
    st, gw = one_station()
    for i in range(36):  # the station's hour is spent: 36 one-second frames, 100 s apart
        st.ledger.record(UPLINK, 1.0, i * 100.0)
    now = 3550.0
    st.send(1, b"meter" * 4, now, priority=Priority.BULK)  # waits: data budget spent
    down = frames(gw.send(1, b"a CALL", now, answer=False))[0]
    events = st.receive(down, now + 0.5)  # owes an ACK: the control reserve is spent too
    assert not frames(events)
    deadline = st.next_deadline()
    assert deadline is not None and deadline > now + 0.5  # a real wait, not a spin
    assert st.poll(deadline - 1e-3) == []
    out = frames(st.poll(deadline))
    assert [peek(f).type for f in out] == [FrameType.ACK]  # the acknowledgement first
    later = st.next_deadline()
    assert later is not None and later > deadline


# -- replay, forgery, garbage, restarts through the endpoint -------------------------------------


def one_station() -> tuple[Endpoint, Endpoint]:
    st = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK), rng=random.Random(1))
    gw = Endpoint(Direction.DOWN, RadioConfig(9, frequency_hz=DOWNLINK), rng=random.Random(2))
    st.add_peer(1, key(1))
    gw.add_peer(1, key(1))
    return st, gw


def frames(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Transmit)]


def test_replayed_forged_and_garbage_frames_are_dropped_and_counted() -> None:
    st, gw = one_station()
    raw = frames(st.send(1, b"hello", 0.0))[0]
    first = gw.receive(raw, 1.0)
    assert [e.data for e in first if isinstance(e, Delivered)] == [b"hello"]
    replies = frames(first)  # its ACK, sent at once
    assert len(replies) == 1 and peek(replies[0]).type is FrameType.ACK
    # the same frame again (a retransmission, or a replay): acknowledged, not delivered
    for t in range(2, 30):
        again = gw.receive(raw, float(t))
        assert not [e for e in again if isinstance(e, Delivered)]
        gw.poll(float(t) + 0.5)
    s = gw.peer_stats(1)
    assert s.duplicates == 28 and s.delivered == 1
    assert s.reacks_suppressed > 0 and s.control_frames <= 1 + ArqConfig().reack_limit
    forged = bytearray(raw)
    forged[6] ^= 1
    gw.receive(bytes(forged), 40.0)
    assert s.bad_mic == 1
    other = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK))
    other.add_peer(1, key(9))  # the right address, the wrong key
    gw.receive(frames(other.send(1, b"x", 41.0))[0], 42.0)
    assert s.bad_mic == 2
    for junk in (b"", b"\x00", bytes(8), bytes(300), random.Random(1).randbytes(40)):
        assert all(not isinstance(e, Delivered) for e in gw.receive(junk, 50.0))
    assert gw.stats.truncated + gw.stats.malformed + gw.stats.unknown_peer + s.bad_mic >= 6
    stranger = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK))
    stranger.add_peer(77, key(77))
    gw.receive(frames(stranger.send(77, b"x", 60.0))[0], 61.0)
    assert gw.stats.unknown_peer >= 1


def test_frames_below_the_window_are_too_old() -> None:
    st, gw = one_station()
    old = frames(st.send(1, b"first", 0.0))[0]
    t = 1.0
    st.receive(frames(gw.receive(old, t))[0], t)  # delivered; its ACK back
    for i in range(ArqConfig().window + 5):  # move the window on
        t += 10
        raw = frames(st.send(1, b"m%d" % i, t))[0]
        st.receive(frames(gw.receive(raw, t))[0], t)
    events = gw.receive(old, t + 1)
    assert gw.peer_stats(1).too_old == 1 and not any(isinstance(e, Delivered) for e in events)


def test_a_message_older_than_one_delivered_is_dropped_also_after_a_restart() -> None:
    """A recording of a message the station gave up on (never delivered, so its counter is
    unseen in the window) played after a newer one was delivered would arrive out of order:
    dropped as stale, by a restarted gateway too (the newest delivered base is persisted)."""

    def up(counter: int, data: bytes) -> bytes:
        return seal(Frame(FrameType.DATA, Direction.UP, 1, counter, data), key(1))

    def delivered(events: list[Event]) -> list[bytes]:
        return [e.data for e in events if isinstance(e, Delivered)]

    _, gw = one_station()
    assert delivered(gw.receive(up(10, b"newer"), 1.0)) == [b"newer"]
    assert delivered(gw.receive(up(5, b"given up"), 2.0)) == []
    assert gw.peer_stats(1).stale == 1 and gw.state(1)["receive"]["delivered"] == 10
    again = restarted(gw, json.loads(json.dumps(gw.state(1))))
    assert delivered(again.receive(up(7, b"given up too"), 3.0)) == []
    assert again.peer_stats(1).stale == 1
    assert delivered(again.receive(up(11, b"next"), 4.0)) == [b"next"]


def test_a_reply_resent_after_a_newer_message_is_still_delivered() -> None:
    """The gateway's REPLY (counter r) is lost; its own CALL (r + 1) reaches the station; the
    station repeats its CALL and the gateway resends the REPLY with counter r. That REPLY is
    below a message delivered, but it is not stale: the answer must be delivered."""
    node, gw = one_station()
    air: list[tuple[float, Endpoint, bytes]] = []
    got: list[bytes] = []
    lost = [False]

    def handle(src: Endpoint, events: list[Event], now: float) -> None:
        for ev in events:
            if isinstance(ev, Transmit):
                if src is gw and ev.type is FrameType.REPLY and not lost[0]:
                    lost[0] = True  # the first REPLY never arrives
                    continue
                air.append((now + ev.airtime, node if src is gw else gw, ev.data))
            elif isinstance(ev, Delivered):
                if src is node:
                    got.append(ev.data)
                elif ev.data == b"N-CALL":  # the back end answers, then calls the station
                    handle(gw, gw.send(1, b"G-ANSWER", now, priority=Priority.ANSWER), now)
                    handle(gw, gw.send(1, b"G-CALL", now, answer=True), now)

    now = 0.0
    handle(node, node.send(1, b"N-CALL", now, answer=True), now)
    while now < 120 and b"G-ANSWER" not in got:
        now += 0.01
        for item in [x for x in air if x[0] <= now]:
            air.remove(item)
            handle(item[1], item[1].receive(item[2], now), now)
        handle(node, node.poll(now), now)
        handle(gw, gw.poll(now), now)
    assert lost[0] and got[:1] == [b"G-CALL"] and b"G-ANSWER" in got
    assert node.peer_stats(1).stale == 0


def exchange(st: Endpoint, gw: Endpoint, data: bytes, t: float) -> list[bytes]:
    """Send ``data`` up on a perfect channel; what the gateway delivered."""
    ch = Channel({"st": st, "gw": gw}, now=t)
    ch.send("st", 1, data)
    ch.run(t + 3600, stop=lambda: len(ch.acked["st"]) + len(ch.failed["st"]) == 1)
    return [d for _, d in ch.delivered["gw"]]


def test_a_restarted_station_is_not_taken_for_a_replay() -> None:
    saved: dict[str, dict[str, object]] = {}

    def persisting(ep: Endpoint, name: str, events: list[Event]) -> list[Event]:
        for e in events:
            if isinstance(e, PersistState):
                saved[name] = json.loads(json.dumps(ep.state(1)))
        return events

    st, gw = one_station()
    t = 0.0
    for round_ in range(4):
        for i in range(5):
            t += 30
            ch = Channel({"st": st, "gw": gw}, now=t)
            ch.on_event = lambda n, ev, ch=ch: persisting(ch.links[n], n, [ev])
            ch.send("st", 1, b"r%d-%d" % (round_, i))
            ch.run(t + 600, stop=lambda ch=ch: len(ch.acked["st"]) == 1)
            assert [d for _, d in ch.delivered["gw"]] == [b"r%d-%d" % (round_, i)]
            t = ch.now
        # a power cut: both come back from what they persisted when told to
        st = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK), rng=random.Random(t))
        st.add_peer(1, key(1), saved["st"])
        if round_ % 2:
            gw2 = Endpoint(Direction.DOWN, RadioConfig(9, frequency_hz=DOWNLINK))
            gw2.add_peer(1, key(1), saved["gw"])
            gw = gw2
    s = gw.peer_stats(1)
    assert s.duplicates == s.too_old == s.jumps == s.bad_mic == 0


def restarted(ep: Endpoint, state: dict[str, object]) -> Endpoint:
    """``ep`` after a crash: a new endpoint of the same side from the state it persisted."""
    again = Endpoint(ep.direction, ep.radio, ep.arq, rng=random.Random(5))
    again.add_peer(1, key(1), state)
    return again


@pytest.mark.parametrize(
    ("who", "size", "answer"),
    [("gw", 40, True), ("gw", 600, False), ("st", 40, True), ("st", 600, False)],
    ids=["gateway-whole-call", "gateway-fragmented", "station-whole-call", "station-fragmented"],
)
def test_a_repeat_of_a_message_delivered_before_a_restart_is_acknowledged(
    who: str, size: int, answer: bool
) -> None:
    """The receiver delivers a message, persists its state and dies before its ACK (or REPLY)
    goes; restarted from that state, it takes the sender's retransmission for the duplicate it
    is and acknowledges it at once: not delivered again, and the sender is through within one
    retry instead of retrying for minutes and giving up."""
    st, gw = one_station()
    eps = {"st": st, "gw": gw}
    sender, receiver = ("st", "gw") if who == "gw" else ("gw", "st")
    message = bytes(i % 251 for i in range(size))
    first = eps[sender].send(1, message, 0.0, answer=answer)
    positions = 1 if size < 200 else 3  # 255-byte packets: 242 bytes a fragment
    assert len(frames(first)) == 1
    t = 0.0
    delivered = []
    while True:  # every position (the first round) reaches the receiver
        for raw in frames(first):
            t += eps[sender].radio.airtime(len(raw))
            got = eps[receiver].receive(raw, t)
            delivered += [e.data for e in got if isinstance(e, Delivered)]
        deadline = eps[sender].next_deadline()
        assert deadline is not None
        if delivered:
            break
        first = eps[sender].poll(max(t, deadline))
    assert delivered == [message]
    assert eps[sender].peer_stats(1).data_frames == positions
    state = json.loads(json.dumps(eps[receiver].state(1)))  # what it persisted on delivery
    eps[receiver] = restarted(eps[receiver], state)  # ... then died before acknowledging
    ch = Channel(dict(eps), now=t)
    ch.run(t + 3600, stop=lambda: bool(ch.acked[sender] or ch.failed[sender]))
    assert ch.acked[sender] == [None] and not ch.failed[sender]
    assert ch.delivered[receiver] == []  # once in all
    s = eps[receiver].peer_stats(1)
    assert s.duplicates >= 1 and s.reacked_after_restart == 1
    # through at the first retransmission: one ack timeout and its back-off, not ten
    timeout = ack_timeout(eps[sender].radio, eps[sender].arq, answer, positions)
    assert ch.now - t < 2 * timeout + 5.0
    assert eps[sender].peer_stats(1).retransmissions <= 1


def test_after_a_restart_only_the_latest_message_is_acknowledged_again_and_so_often() -> None:
    """A restarted gateway acknowledges the station's repeated latest message; replays of
    the messages before it, recorded from the air, stay unanswered (a stop-and-wait sender
    repeats only its latest), and the latest is acknowledged again at most ``reack_limit``
    times."""
    st, gw = one_station()
    sent: list[bytes] = []
    t = 0.0
    for i in range(5):
        raw = frames(st.send(1, b"m%d" % i, t))[0]
        sent.append(raw)
        st.receive(frames(gw.receive(raw, t + 0.5))[0], t + 1.0)  # delivered and acked
        t += 10
    gw2 = restarted(gw, json.loads(json.dumps(gw.state(1))))
    acks = 0
    for raw in [sent[4], *sent[:4], sent[2]]:
        t += 10
        events = gw2.receive(raw, t) + gw2.poll(t + 1)
        assert not any(isinstance(e, Delivered) for e in events)
        acks += len(frames(events))
    assert acks == 1  # the latest only
    for _ in range(30):
        t += 10
        acks += len(frames(gw2.receive(sent[4], t) + gw2.poll(t + 1)))
    s = gw2.peer_stats(1)
    assert acks == ArqConfig().reack_limit and s.reacks_suppressed > 0
    assert s.duplicates == 36 and s.delivered == 0 and s.reacked_after_restart == 1


def test_a_jump_beyond_max_gap_is_confirmed_by_the_live_station_first() -> None:
    st, gw = one_station()
    assert exchange(st, gw, b"before", 0.0) == [b"before"]
    state = st.state(1)
    state["send"] = {"next": state["send"]["next"] + 5000, "reserved": 0}  # far ahead
    st2 = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK), rng=random.Random(9))
    st2.add_peer(1, key(1), state)
    assert exchange(st2, gw, b"after", 100.0) == [b"after"]  # delivered once, after the check
    s = gw.peer_stats(1)
    assert s.jumps >= 1 and s.resyncs == 1 and s.delivered == 2


def test_both_sides_jumped_confirm_each_other() -> None:
    st, gw = one_station()
    assert exchange(st, gw, b"one", 0.0) == [b"one"]
    moved = []
    for ep, direction, freq in ((st, Direction.UP, UPLINK), (gw, Direction.DOWN, DOWNLINK)):
        state = ep.state(1)
        state["send"] = {"next": state["send"]["next"] + 7000, "reserved": 0}
        again = Endpoint(direction, RadioConfig(9, frequency_hz=freq), rng=random.Random(4))
        again.add_peer(1, key(1), state)
        moved.append(again)
    st2, gw2 = moved
    assert exchange(st2, gw2, b"two", 100.0) == [b"two"]
    assert gw2.peer_stats(1).resyncs == 1 and st2.peer_stats(1).resyncs == 1


def test_a_replayed_jump_without_the_live_station_stays_held() -> None:
    st, gw = one_station()
    assert exchange(st, gw, b"one", 0.0) == [b"one"]
    state = st.state(1)
    state["send"] = {"next": state["send"]["next"] + 5000, "reserved": 0}
    ahead = Endpoint(Direction.UP, RadioConfig(9, frequency_hz=UPLINK))
    ahead.add_peer(1, key(1), state)
    raw = frames(ahead.send(1, b"captured", 50.0))[0]
    events = gw.receive(raw, 60.0)  # nobody answers the gateway's RESYNC_REQUEST
    assert not any(isinstance(e, Delivered) for e in events)
    ctrl = [f for f in frames(events) if peek(f).type is FrameType.CTRL]
    assert len(ctrl) == 1
    for t in (70.0, 80.0, 200.0):
        assert not any(isinstance(e, Delivered) for e in gw.receive(raw, t))
    assert gw.peer_stats(1).delivered == 1 and gw.peer_stats(1).resyncs == 0


@settings(max_examples=80, deadline=None)
@given(
    junk=st.lists(st.binary(max_size=260), max_size=6),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=4),
)
def test_garbage_and_mangled_frames_never_break_the_endpoint(
    junk: list[bytes], flips: list[tuple[int, int]]
) -> None:
    st_, gw = one_station()
    genuine = frames(st_.send(1, b"genuine" * 20, 0.0))[0]
    raw = bytearray(genuine)
    for i, x in flips:
        if i < len(raw):
            raw[i] ^= x
    for t, packet in enumerate([*junk, bytes(raw)]):
        for e in gw.receive(packet, float(t)) + gw.poll(float(t) + 0.5):
            # only the genuine frame is ever delivered (a forgery passes with p = 2**-32)
            assert not isinstance(e, Delivered) or packet == genuine
    assert gw.next_deadline() is None or gw.next_deadline() >= 0.0


def test_a_packet_longer_on_air_than_the_sub_band_allows_is_refused_at_the_start() -> None:
    """At SF12, a 255-byte packet takes 9 s on air; the 0.1 % sub-band at 863-865 MHz allows
    3.6 s an hour, 10 % of it kept for acknowledgements. Accepted, the ledger refused the first
    full frame on every poll (a ValueError out of poll: the link wedged)."""
    slow = RadioConfig(12, max_packet=255, frequency_hz=863_500_000)
    with pytest.raises(ValueError, match="smaller max packet or spreading factor"):
        Endpoint(Direction.UP, slow)
    fits = RadioConfig(12, max_packet=51, frequency_hz=863_500_000)  # 2.5 s: within 3.24 s
    ep = Endpoint(Direction.UP, fits)
    ep.add_peer(1, key(1))
    first = frames(ep.send(1, bytes(200), 0.0))
    assert len(first) == 1 and len(first[0]) <= 51
    assert ep.next_deadline() is not None  # the rest waits for the budget, without raising
    ep.poll(10.0)
