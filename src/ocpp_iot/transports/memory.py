"""An MQTT broker in memory, for testing code that uses :class:`~.aio.AsyncMqttClient`
without a mosquitto.

>>> broker = MemoryBroker()                                         # doctest: +SKIP
>>> client = broker.client(MqttSettings(client_id="bridge"), on_message, manual_ack=True)
>>> client.subscribe("$share/bridge/ocpp/+/up")
>>> await client.start(5)                                          # True

The clients have the API of :class:`~.aio.AsyncMqttClient` (same methods, same meaning). What
the broker honours: topic filters (``+``, ``#``), shared subscriptions (``$share/group/filter``,
round robin within a group over its connected members), retained messages (sent on every
subscribe, as mosquitto does), wills (on :meth:`MemoryClient.kill`, :meth:`MemoryBroker.
disconnect` and a session taken over), QoS 0 and 1 with manual acks and the receive maximum,
persistent sessions (``clean_start=False``: what was delivered but not acknowledged comes
again with ``dup=True`` on the next connection, after it what was queued while away), MQTT 5
content types, and optionally passwords and an ACL.

What differs from a real broker: everything happens in the event loop of the clients (no
sockets, no threads), deliveries are scheduled with ``loop.call_soon`` (never inside
``publish``), sessions never expire, QoS 0 messages are not queued for offline sessions, and a
client whose session is taken over does not reconnect (a real one backs off and tries again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from ._backoff import Backoff, refusal_advice
from ._state import ClientState, Starting
from ._waiting import Flag, Inbox
from .settings import (
    Message,
    MqttSettings,
    PublishRefused,
    Will,
    parse_url,
    split_shared,
    topic_matches,
)

__all__ = ["Acl", "MemoryBroker", "MemoryClient", "mosquitto_acl"]

log = logging.getLogger("ocpp_iot.transports.memory")

#: ``acl(username, client_id, access, topic) -> allowed``; access is "read" or "write"
Acl = Callable[[str | None, str, Literal["read", "write"], str], bool]

_NOT_AUTHORIZED = 135  # MQTT 5 reason code (CONNACK and PUBACK)
_BAD_CREDENTIALS = 134


def mosquitto_acl(text: str) -> Acl:
    """An :data:`Acl` from mosquitto ACL file lines: ``user NAME``, ``topic [read|write|
    readwrite] FILTER`` (for that user, or for everyone before any ``user`` line) and
    ``pattern [...] FILTER`` (everyone, with ``%u`` the username and ``%c`` the client id)."""
    rules: list[tuple[str | None, bool, str, str]] = []  # (user, is pattern, access, filter)
    user: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 2)
        if words[0] == "user" and len(words) >= 2:
            user = line.split(None, 1)[1]
            continue
        if words[0] not in ("topic", "pattern"):
            continue
        if len(words) == 3 and words[1] in ("read", "write", "readwrite", "deny"):
            access, filt = words[1], words[2]
        else:
            access, filt = "readwrite", line.split(None, 1)[1]
        pattern = words[0] == "pattern"
        rules.append((None if pattern else user, pattern, access, filt))

    def allowed(
        username: str | None, client_id: str, access: Literal["read", "write"], topic: str
    ) -> bool:
        for rule_user, pattern, rule_access, filt in rules:
            if pattern:
                if username is None:
                    continue
                filt = filt.replace("%u", username).replace("%c", client_id)
            elif rule_user is not None and rule_user != username:
                continue
            if rule_access in (access, "readwrite") and topic_matches(filt, topic):
                return True
        return False

    return allowed


@dataclass(slots=True)
class _Delivery:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    content_type: str | None
    dup: bool = False


@dataclass(eq=False)
class _Session:
    client_id: str
    username: str | None
    subscriptions: dict[str, int] = field(default_factory=dict)
    queue: deque[_Delivery] = field(default_factory=deque)
    inflight: OrderedDict[int, _Delivery] = field(default_factory=OrderedDict)
    client: MemoryClient | None = None
    persistent: bool = True
    next_mid: int = 0
    flush_scheduled: bool = False

    def mid(self) -> int:
        while True:
            self.next_mid = self.next_mid % 65535 + 1
            if self.next_mid not in self.inflight:
                return self.next_mid


class MemoryBroker:
    """The broker: create clients with :meth:`client`."""

    def __init__(self, *, users: Mapping[str, str] | None = None, acl: Acl | None = None) -> None:
        #: username -> password; None accepts everyone
        self.users = dict(users) if users is not None else None
        self.acl = acl
        self.retained: dict[str, _Delivery] = {}
        self._sessions: dict[str, _Session] = {}
        self._round_robin: dict[tuple[str, str], int] = {}
        #: every connection accepted, by client id (for tests)
        self.connects: list[str] = []

    def client(
        self,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        manual_ack: bool = False,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> MemoryClient:
        return MemoryClient(
            self,
            settings,
            on_message,
            manual_ack=manual_ack,
            on_connect=on_connect,
            on_disconnect=on_disconnect,
        )

    def disconnect(self, client_id: str, *, reconnect: bool = True) -> bool:
        """Drop the connection of ``client_id`` as a network failure would: its will is
        published; the client reconnects by itself (unless ``reconnect`` is False).
        False if no such client is connected."""
        session = self._sessions.get(client_id)
        if session is None or session.client is None:
            return False
        client = session.client
        self._drop(session, will=True)
        if reconnect:
            client._reconnect_soon()
        return True

    def connected_clients(self) -> list[str]:
        return [cid for cid, s in self._sessions.items() if s.client is not None]

    def session_queue(self, client_id: str) -> int:
        """Messages waiting for ``client_id`` (queued and unacknowledged)."""
        s = self._sessions.get(client_id)
        return 0 if s is None else len(s.queue) + len(s.inflight)

    # -- what the clients call -----------------------------------------------------------------

    def _connect(self, client: MemoryClient) -> tuple[int, bool]:
        """(reason code, session present)."""
        s = client.settings
        username, password = s.credentials()
        if self.users is not None and (
            username is None or self.users.get(username) != (password or "")
        ):
            return (_NOT_AUTHORIZED if username in self.users else _BAD_CREDENTIALS), False
        cid = s.client_id or f"auto-{id(client):x}"
        old = self._sessions.get(cid)
        if old is not None and old.client is not None:
            taken = old.client
            self._drop(old, will=True)
            taken._taken_over()
            old = self._sessions.get(cid)
        present = old is not None and not s.clean_start
        if old is None or s.clean_start:
            session = _Session(cid, username)
            self._sessions[cid] = session
        else:
            session = old
            session.username = username
            # delivered but not acknowledged: again first, marked as a duplicate
            again = [
                _Delivery(d.topic, d.payload, d.qos, d.retain, d.content_type, True)
                for d in session.inflight.values()
            ]
            session.inflight.clear()
            session.queue.extendleft(reversed(again))
        session.persistent = not s.clean_start
        session.client = client
        client._session = session
        self.connects.append(cid)
        return 0, present

    def _subscribe(self, session: _Session, topic: str, qos: int) -> None:
        session.subscriptions[topic] = qos
        group, filt = split_shared(topic)
        if group is not None:  # MQTT 5 section 4.8.2: no retained messages for shared ones
            return
        for t, d in self.retained.items():
            if topic_matches(filt, t) and self._may(session, "read", t):
                self._enqueue(
                    session, _Delivery(t, d.payload, min(qos, d.qos), True, d.content_type)
                )

    def _publish(
        self,
        session: _Session,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        content_type: str | None,
    ) -> int:
        """Route one message; returns the PUBACK reason code."""
        if not self._may(session, "write", topic):
            return _NOT_AUTHORIZED
        if retain:
            if payload:
                self.retained[topic] = _Delivery(topic, payload, qos, True, content_type)
            else:
                self.retained.pop(topic, None)
        groups: dict[tuple[str, str], list[tuple[_Session, int]]] = {}
        for target in list(self._sessions.values()):
            best = -1
            for filt, sub_qos in target.subscriptions.items():
                group, plain = split_shared(filt)
                if not topic_matches(plain, topic):
                    continue
                if group is None:
                    best = max(best, sub_qos)
                else:
                    groups.setdefault((group, plain), []).append((target, sub_qos))
            if best >= 0:
                self._deliver(target, topic, payload, min(qos, best), content_type)
        for key, members in groups.items():
            online = [m for m in members if m[0].client is not None] or members
            n = self._round_robin.get(key, 0)
            self._round_robin[key] = n + 1
            target, sub_qos = online[n % len(online)]
            self._deliver(target, topic, payload, min(qos, sub_qos), content_type)
        return 0

    def _deliver(
        self, target: _Session, topic: str, payload: bytes, qos: int, content_type: str | None
    ) -> None:
        if not self._may(target, "read", topic):
            return
        if target.client is None and qos == 0:
            return  # not queued for an offline session (mosquitto's queue_qos0_messages false)
        self._enqueue(target, _Delivery(topic, payload, qos, False, content_type))

    def _enqueue(self, session: _Session, d: _Delivery) -> None:
        session.queue.append(d)
        self._schedule(session)

    def _schedule(self, session: _Session) -> None:
        client = session.client
        if client is None or session.flush_scheduled or client._loop is None:
            return
        session.flush_scheduled = True
        client._loop.call_soon(self._flush, session)

    def _flush(self, session: _Session) -> None:
        session.flush_scheduled = False
        while session.queue:
            client = session.client
            if client is None:
                return
            if client._manual_ack and len(session.inflight) >= client._receive_maximum:
                return  # the rest when acks make room
            d = session.queue.popleft()
            mid = session.mid() if d.qos else 0
            if d.qos and client._manual_ack:
                session.inflight[mid] = d
            client._deliver(
                Message(
                    d.topic,
                    d.payload,
                    d.qos,
                    d.retain,
                    mid,
                    d.dup,
                    client.generation,
                    d.content_type if client.settings.mqtt5 else None,
                )
            )

    def _ack(self, session: _Session, mid: int) -> None:
        if session.inflight.pop(mid, None) is not None and session.queue:
            self._schedule(session)

    def _drop(self, session: _Session, *, will: bool) -> None:
        client = session.client
        if client is None:
            return
        session.client = None
        session.flush_scheduled = False
        if not session.persistent:
            del self._sessions[session.client_id]
        w = client.settings.will
        if will and w is not None:
            self._publish(session, w.topic, w.payload, w.qos, w.retain, None)
        client._dropped()

    def _may(self, session: _Session, access: Literal["read", "write"], topic: str) -> bool:
        return self.acl is None or self.acl(session.username, session.client_id, access, topic)


class MemoryClient(ClientState):
    """A client of :class:`MemoryBroker` with the API of :class:`~.aio.AsyncMqttClient`."""

    def __init__(
        self,
        broker: MemoryBroker,
        settings: MqttSettings,
        on_message: Callable[[Message], None] | None = None,
        *,
        manual_ack: bool = False,
        on_connect: Callable[[bool], None] | None = None,
        on_disconnect: Callable[[], None] | None = None,
    ) -> None:
        settings.check()
        self.broker = broker
        self.settings = settings
        self.address = parse_url(settings.url)
        self._on_message = on_message
        self._manual_ack = manual_ack
        self._on_connect_cb = on_connect
        self._on_disconnect_cb = on_disconnect
        self._receive_maximum = max(1, settings.receive_maximum)
        self._queue: Inbox[Message] = Inbox()
        self._subscriptions: dict[str, int] = {}
        self._outbox: list[tuple[str, bytes, int, bool, str | None, asyncio.Future[int] | None]]
        self._outbox = []
        self._session: _Session | None = None
        self._connected = Flag()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._generation = 0
        self._stopping = False
        self._backoff = Backoff(settings.reconnect_min_delay, settings.reconnect_max_delay)
        self._retry: asyncio.Handle | None = None
        self.taken_over = False
        self.connect_attempts = 0
        self.last_connect_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Starting:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.call_soon(self._try_connect)
        return Starting(self, timeout)

    async def stop(self, final: Iterable[Will] = (), timeout: float = 5.0) -> None:
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        session = self._session
        if session is not None and session.client is self:
            if not self.taken_over:
                for m in final:
                    self.broker._publish(session, m.topic, m.payload, m.qos, m.retain, None)
            self.broker._drop(session, will=False)
        await asyncio.sleep(0)

    def kill(self) -> None:
        self._stopping = True
        if self._retry is not None:
            self._retry.cancel()
        session = self._session
        if session is not None and session.client is self:
            self.broker._drop(session, will=True)

    # -- operations -----------------------------------------------------------------------------

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subscriptions[topic] = qos
        if self._connected.is_set() and self._session is not None:
            self.broker._subscribe(self._session, topic, qos)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
    ) -> None:
        self._send(topic, payload, qos, retain, content_type, None)

    async def publish_confirmed(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        retain: bool = False,
        *,
        content_type: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        assert self._loop is not None, "start() first"
        fut: asyncio.Future[int] = self._loop.create_future()
        self._send(topic, payload, qos, retain, content_type, fut)
        try:
            code = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"no PUBACK for {topic!r} within {timeout} s") from None
        if code >= 0x80:
            raise PublishRefused(topic, code, "Not authorized")

    def ack(self, msg: Message) -> None:
        if not self._manual_ack or msg.qos == 0 or msg.generation != self._generation:
            return
        if self._session is not None and self._session.client is self:
            self.broker._ack(self._session, msg.mid)

    # -- inside ---------------------------------------------------------------------------------

    def _send(
        self,
        topic: str,
        payload: bytes | str,
        qos: int,
        retain: bool,
        content_type: str | None,
        fut: asyncio.Future[int] | None,
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        ct = content_type if self.settings.mqtt5 else None
        session = self._session
        if self._connected.is_set() and session is not None:
            code = self.broker._publish(session, topic, data, qos, retain, ct)
            if fut is not None:
                fut.set_result(code)
        elif qos > 0:  # sent once connected, as paho does
            self._outbox.append((topic, data, qos, retain, ct, fut))
        elif fut is not None:
            fut.set_result(0)

    def _try_connect(self) -> None:
        self._retry = None
        if self._stopping or self._connected.is_set():
            return
        self.connect_attempts += 1
        code, present = self.broker._connect(self)
        if code:
            delay = self._backoff.next_delay()
            self.last_connect_error = (
                f"the memory broker refused client id {self.settings.client_id!r}: "
                f"{refusal_advice(code, self.settings.client_id)}"
            )
            log.warning("%s; next attempt in %.1f s", self.last_connect_error, delay)
            assert self._loop is not None
            self._retry = self._loop.call_later(delay, self._try_connect)
            return
        self._backoff.reset()
        self._generation += 1
        self.taken_over = False
        session = self._session
        assert session is not None
        self._connected.set()
        for topic, qos in self._subscriptions.items():
            self.broker._subscribe(session, topic, qos)
        for b in self.settings.birth:
            self.broker._publish(session, b.topic, b.payload, b.qos, b.retain, None)
        outbox, self._outbox = self._outbox, []
        for topic, data, qos, retain, ct, fut in outbox:
            code = self.broker._publish(session, topic, data, qos, retain, ct)
            if fut is not None and not fut.done():
                fut.set_result(code)
        self.broker._schedule(session)
        if self._on_connect_cb is not None:
            self._on_connect_cb(present)

    def _reconnect_soon(self) -> None:
        if self._loop is not None and not self._stopping:
            self._retry = self._loop.call_soon(self._try_connect)

    def _taken_over(self) -> None:
        self.taken_over = True
        self._stopping = True  # see the module's docstring
        log.warning(
            "another client with id %r took over the session: is a second bridge running?",
            self.settings.client_id,
        )

    def _dropped(self) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        if was and self._on_disconnect_cb is not None:
            self._on_disconnect_cb()

    def _deliver(self, msg: Message) -> None:
        cb = self._on_message
        if cb is None:
            self._queue.put_nowait(msg)
            return
        try:
            cb(msg)
        except Exception:
            log.exception("error in MQTT message handler for %s", msg.topic)
