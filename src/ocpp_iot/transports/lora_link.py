"""The station's link over a LoRa modem: :class:`LoraStationLink`, a
:class:`~.link.StationLink` on the point-to-point link layer (:mod:`.lora`, docs/lora.md).

Each frame the runtime hands over (compact CBOR, or OCPP-J text) is one link-layer message to
the gateway, which publishes it on ``{prefix}/{id}/up``; what the gateway hears on ``.../down``
comes back the same way. What the link derives from the frame's first bytes
(:func:`frame_kind`): an answer (CALLRESULT / CALLERROR) goes before our CALLs
(``Priority.ANSWER``), and a CALL is flagged ``answer=True`` so that the gateway's REPLY with
the back end's answer acknowledges it (a CALL and its answer: two frames on air).

**Up and down on a radio.** There is no connection to lose, so the link says what it knows:

- :class:`~.link.LinkUp` once the modem is open: the link is presumed to reach the gateway
  (the station's first CALL, its BootNotification, is the first test of that);
- :class:`~.link.LinkDown` when ``down_after`` messages in a row were abandoned
  (:class:`~.lora.SendFailed`: each one retried ``max_retries`` times over a span derived from
  time on air, a minute or more at SF9), or the modem ended (its driver gave up on the port);
  up again when it is open again;
- while down, a *probe* (the one-byte message :data:`LINK_PROBE`, which the gateway
  acknowledges and never publishes) goes out every ``probe_every`` seconds, doubling up to
  ``probe_max``; the first acknowledgement of anything, or any message from the gateway,
  brings the link up again (:class:`~.link.LinkUp`, ``resumed=False``).

Frames handed over while the link is down are dropped (the runtime sends nothing then, and
resends what matters after the next LinkUp); a frame identical to one still in transit is not
queued twice (an OCPP retry of a CALL the radio is still retrying costs no airtime).

**Counters.** The endpoint's counter state and the duty-cycle ledger live in ``state_file``
(JSON, 0600): written and fsynced before the next transmission when a counter reservation
moves (``PersistState(urgent=True)``), written (no fsync) after each message received, and on
close. A state file that exists but cannot be read stops the link from starting: starting over
from counter 0 would reuse nonces under the key (the station then needs ``--rekey``). So does a
missing one, unless ``fresh_counters`` says the key has never sealed a frame (a first start; the
file is then written at once, so the next start finds it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ..codecs.ocppj import looks_like_ocppj
from ..lora_keys import key_id, read_json, write_private
from ._waiting import Inbox
from .link import FrameReceived, LinkDown, LinkEvent, LinkUp
from .lora import (
    ArqConfig,
    Delivered,
    Direction,
    DutyCycleLedger,
    Endpoint,
    Event,
    PersistState,
    Priority,
    RadioConfig,
    SendAcked,
    SendFailed,
)
from .lora.modem import Modem
from .lora_adapter import RadioAdapter

__all__ = [
    "CALL",
    "LINK_PROBE",
    "LoraStationLink",
    "frame_kind",
    "priority_of",
]

log = logging.getLogger("ocpp_iot.transports.lora")

#: The link probe: one byte no OCPP frame starts with (a compact CBOR frame's first byte has
#: format version 1 in its top bits, an OCPP-J frame starts with "[" or whitespace). The
#: gateway acknowledges it and does not publish it.
LINK_PROBE: Final = b"\x00"

#: OCPP-J message type of a CALL (a CALLRESULT is 3, CALLERROR 4, 2.1's CALLRESULTERROR 5, SEND 6)
CALL: Final = 2


def frame_kind(data: bytes) -> int | None:
    """The OCPP-J message type of an encoded frame (compact CBOR or OCPP-J text), from its
    first bytes; ``None`` if it is neither. CBOR: the first byte is ``format << 5 | uuid << 4 |
    version index * 5 + type - 2`` (docs/codec.md)."""
    if not data:
        return None
    if looks_like_ocppj(data):
        text = data[:16].lstrip(b" \t\r\n")[1:].lstrip(b" \t\r\n")
        return text[0] - 0x30 if text[:1].isdigit() else None
    first = data[0]
    if first >> 5 != 1 or first & 0x0F > 14:
        return None
    return (first & 0x0F) % 5 + 2


def priority_of(data: bytes) -> tuple[Priority, bool]:
    """(priority, answer flag) for a frame: answers first; a CALL expects its answer."""
    kind = frame_kind(data)
    if kind in (3, 4, 5):
        return Priority.ANSWER, False
    return Priority.CALL, kind == CALL


class _End:
    pass


_END: Final = _End()


class LoraStationLink:
    """One station's link to its gateway through ``modem`` (module docstring).

    ``address`` and ``key`` are the station's (``bridge add-station --lora``). ``radio`` must
    match the gateway's modulation and ``max_packet`` (default: the modem's packet size, 868.1
    MHz); ``clock`` / ``rate`` as in :class:`~.lora_adapter.RadioAdapter`.
    """

    def __init__(
        self,
        station_id: str,
        modem: Modem,
        address: int,
        key: bytes,
        *,
        radio: RadioConfig | None = None,
        arq: ArqConfig | None = None,
        state_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], float] = time.time,
        rate: float = 1.0,
        down_after: int = 1,
        probe_every: float = 30.0,
        probe_max: float = 600.0,
        rng: random.Random | None = None,
        fresh_counters: bool = False,
    ) -> None:
        if down_after < 1 or probe_every <= 0 or probe_max < probe_every:
            raise ValueError("down_after >= 1 and 0 < probe_every <= probe_max")
        self.station_id = station_id
        self.address = address
        self.key = bytes(key)
        self.radio = radio or RadioConfig(max_packet=min(modem.max_payload, 255))
        self.state_file = Path(state_file) if state_file is not None else None
        #: counter states of this station's earlier keys, by key id (kept in the state file)
        self._retired: dict[str, Any] = {}
        saved = self._load_state(fresh_counters)
        bandwidth = self.radio.bandwidth_hz
        ledger = DutyCycleLedger.from_json(saved.get("ledger"), bandwidth_hz=bandwidth)
        self.endpoint = Endpoint(Direction.UP, self.radio, arq, ledger=ledger,
                                 rng=rng or random.Random())  # fmt: skip
        self.endpoint.add_peer(address, self.key, saved.get("state"))
        if self.state_file is not None and "state" not in saved:
            self._save_state(durable=True)  # the key's first counters: found by the next start
        self.adapter = RadioAdapter(self.endpoint, modem, self._on_event, clock=clock, rate=rate,
                                    name=station_id, on_open=self._opened,
                                    on_lost=self._lost)  # fmt: skip
        self.max_frame: int | None = self.endpoint.max_message
        self.down_after = down_after
        self.probe_every = probe_every
        self.probe_max = probe_max
        self.clock = clock
        self.rate = rate
        self._events: Inbox[LinkEvent | _End] = Inbox()
        self._up = False
        self._ended = False
        self._failures = 0  #: messages abandoned in a row
        self._in_transit: dict[bytes, int] = {}  #: frames queued or in flight, with counts
        self._probing: asyncio.Task[None] | None = None
        self._probe_out = False
        #: what the link did: frames sent/received/dropped, probes, ups and downs
        self.counts: dict[str, int] = dict.fromkeys(
            ("sent", "received", "dropped_down", "deduplicated", "probes", "failed", "downs"), 0
        )

    # -- state --------------------------------------------------------------------------------

    def _load_state(self, fresh: bool) -> dict[str, Any]:
        if self.state_file is None:
            return {}
        data = read_json(self.state_file)  # ValueError for a file that exists but is unreadable
        if data is None:
            if not fresh:
                raise ValueError(
                    f"{self.station_id}: the LoRa counter state {self.state_file} is missing: "
                    "started again at 0 under the same key, the station would reuse AES-CCM "
                    "nonces. Restore the file, or re-key the station (bridge add-station --lora "
                    "--rekey), or, if this key has never been used, start with "
                    "--lora-fresh-counters"
                )
            return {}
        # The counters belong to the key (a nonce is address, direction and counter under it):
        # a new address keeps them; a new key starts over, and the old key's counters are
        # kept ("retired"), should it come back (a configuration restored from a backup)
        retired: dict[str, Any] = dict(data.get("retired") or {})
        mine, old = key_id(self.key), data.get("key_id")
        if old != mine and old is not None and data.get("state") is not None:
            retired[str(old)] = data["state"]
        if old == mine:
            state = data.get("state")
        else:
            state = retired.pop(mine, None)
            what = "its earlier counters resume" if state else "counters start over"
            log.warning("%s: %s is for another key: %s", self.station_id, self.state_file, what)
        self._retired = retired
        out = {"ledger": data.get("ledger")}
        if state is not None:
            out["state"] = state
        return out

    def _save_state(self, *, durable: bool) -> None:
        if self.state_file is None:
            return
        body = {
            "address": self.address,
            "key_id": key_id(self.key),
            "state": self.endpoint.state(self.address),
            "ledger": self.endpoint.ledger.to_json(),
        }
        if self._retired:
            body["retired"] = self._retired
        write_private(self.state_file, body, durable=durable)

    # -- StationLink ----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._ended:
            raise RuntimeError(f"the link of {self.station_id} is closed: make a new one")
        self.adapter.start()

    async def close(self, timeout: float = 5.0) -> None:
        """Let what was handed over go (while the link is up, up to ``timeout`` seconds for
        the gateway to acknowledge it), then stop and write the counter state."""
        if self._ended:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._up and (self._in_transit or not self.adapter.idle) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        self._end()
        await self.adapter.stop()
        self._save_state(durable=True)

    def kill(self) -> None:
        if self._ended:
            return
        self._end()
        self.adapter.kill()

    @property
    def up(self) -> bool:
        return self._up and not self._ended

    def send(self, data: bytes, *, json: bool = False) -> None:
        if self._ended or not self._up:
            self.counts["dropped_down"] += 1
            log.debug("%s: frame dropped, the radio link is down", self.station_id)
            return
        data = bytes(data)
        if data in self._in_transit:
            self.counts["deduplicated"] += 1
            return
        priority, answer = priority_of(data)
        self._in_transit[data] = 1
        self.counts["sent"] += 1
        try:
            self.adapter.send(self.address, data, priority=priority, answer=answer, tag=data)
        except ValueError as exc:  # longer than the link carries
            del self._in_transit[data]
            log.warning("%s: frame not sent: %s", self.station_id, exc)

    async def receive(self) -> LinkEvent:
        if self._ended:
            raise EOFError(f"the link of {self.station_id} is closed")
        event = await self._events.get()
        if isinstance(event, _End):
            self._events.put_nowait(event)
            raise EOFError(f"the link of {self.station_id} is closed")
        return event

    # -- what the radio says ------------------------------------------------------------------

    def _emit(self, event: LinkEvent) -> None:
        if not self._ended:
            self._events.put_nowait(event)

    def _end(self) -> None:
        self._ended = True
        if self._probing is not None:
            self._probing.cancel()
        self._events.put_nowait(_END)

    def _opened(self) -> None:
        self._set_up(True, "")

    def _lost(self) -> None:
        self._set_up(False, "the modem stopped")

    def _set_up(self, up: bool, reason: str) -> None:
        if up == self._up:
            return
        self._up = up
        if up:
            self._failures = 0
            if self._probing is not None:
                self._probing.cancel()
                self._probing = None
            log.info("%s: radio link up", self.station_id)
            self._emit(LinkUp(resumed=False))
        else:
            self.counts["downs"] += 1
            log.warning("%s: radio link down: %s", self.station_id, reason)
            self._emit(LinkDown(reason))
            self._probing = asyncio.ensure_future(self._probe())

    def _on_event(self, ev: Event) -> None:
        if isinstance(ev, PersistState):
            # urgent: before the frame that uses the new reservation (it is only queued yet);
            # else after a message received (a restart must not accept it again)
            self._save_state(durable=ev.urgent)
        elif isinstance(ev, Delivered):
            self.counts["received"] += 1
            self._set_up(True, "")
            self._emit(FrameReceived(ev.data, json=looks_like_ocppj(ev.data)))
        elif isinstance(ev, SendAcked):
            self._settled(ev.tag)
            self._failures = 0
            self._set_up(True, "")
        elif isinstance(ev, SendFailed):
            self._settled(ev.tag)
            self.counts["failed"] += 1
            self._failures += 1
            if self._failures >= self.down_after:
                self._set_up(False, f"{self._failures} message(s) unacknowledged by the gateway")
        # Dropped: counted by the endpoint (endpoint.stats, peer_stats)

    def _settled(self, tag: object) -> None:
        if tag is LINK_PROBE:
            self._probe_out = False
        elif isinstance(tag, bytes):
            self._in_transit.pop(tag, None)

    async def _probe(self) -> None:
        """While down: a probe now and then, until anything comes back (module docstring)."""
        wait = self.probe_every
        while not self._up and not self._ended:
            await asyncio.sleep(wait / self.rate)
            if self._up or self._ended:
                return
            if not self._probe_out and self.adapter.is_open:
                self._probe_out = True
                self.counts["probes"] += 1
                self.adapter.send(self.address, LINK_PROBE, priority=Priority.BULK,
                                  tag=LINK_PROBE)  # fmt: skip
            wait = min(wait * 2, self.probe_max)
