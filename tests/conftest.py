"""Fixtures for the MQTT and bridge tests: a real mosquitto, bridge processes, MQTT probes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The bridge, MQTT and mosquitto modules are imported where a fixture or helper needs them, so
# that the model, codec and rpc tests (which share this conftest) do not import the bridge.
if TYPE_CHECKING:
    from raw_station import RawStation

    from ocpp_iot.bridge.service import Bridge
    from ocpp_iot.testing import Mosquitto
    from ocpp_iot.transports.mqtt import Message

ROOT = Path(__file__).resolve().parent.parent

#: Every test broker knows these users (station usernames are station ids).
USERS: dict[str, str] = {
    "bridge": "bridge-pw",
    "operator": "operator-pw",
    **{f"CP{i}": f"pw-CP{i}" for i in range(1, 10)},
}


def password(user: str) -> str:
    return USERS[user]


def pytest_report_header(config: pytest.Config) -> str:
    """Which slice of the long property tests this run takes, and how to repeat it."""
    from test_model_schemas import long_run_header

    return long_run_header(config)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh mosquitto with the project's config, ACL and the users above."""
    from ocpp_iot.testing import Mosquitto, find_mosquitto

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    m = Mosquitto(USERS, directory=tmp_path / "mosquitto")
    m.start()
    try:
        yield m
    finally:
        m.close()


def _openssl(d: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)


def make_certs(d: Path) -> None:
    """A test CA and a server certificate for 127.0.0.1 (needs the openssl command)."""
    run = functools.partial(_openssl, d)
    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ocpp-iot test CA",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    )


def make_client_cert(d: Path, name: str) -> tuple[str, str]:
    """A client certificate for ``name`` signed by the test CA of :func:`make_certs`."""
    run = functools.partial(_openssl, d)
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
    )
    run(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
    )
    return str(d / f"{name}.pem"), str(d / f"{name}.key")


@contextlib.contextmanager
def _tls_mosquitto(
    tmp_path: Path, *, require_certificate: bool
) -> Iterator[tuple[Mosquitto, str, Path]]:
    """mosquitto with a TLS listener too, certificates from :func:`make_certs`:
    (broker, its mqtts:// URL, the directory of the certificates)."""
    import shutil

    from ocpp_iot.testing import Mosquitto, find_mosquitto, free_port

    if find_mosquitto() is None or shutil.which("openssl") is None:
        pytest.skip("needs mosquitto and openssl")
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    port = free_port()
    extra = (
        f"listener {port} 127.0.0.1\n"
        f"cafile {certs / 'ca.pem'}\ncertfile {certs / 'server.pem'}\n"
        f"keyfile {certs / 'server.key'}\n"
    )
    if require_certificate:
        extra += "require_certificate true\n"
    m = Mosquitto(USERS, directory=tmp_path / "mosquitto-tls", extra_config=extra)
    m.start()
    try:
        yield m, f"mqtts://127.0.0.1:{port}", certs
    finally:
        m.close()


@pytest.fixture
def mtls_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """mosquitto whose TLS listener requires a client certificate signed by the test CA
    (and still a username and password): (its mqtts:// URL, the directory of the certs)."""
    with _tls_mosquitto(tmp_path, require_certificate=True) as (_, url, certs):
        yield url, certs


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Mosquitto, str, str]]:
    """mosquitto with a TLS listener too: (broker, its mqtts:// URL, the CA file)."""
    with _tls_mosquitto(tmp_path, require_certificate=False) as (m, url, certs):
        yield m, url, str(certs / "ca.pem")


#: A topic the test broker's ACL gives no user: a QoS 1 publish there reaches nobody, yet the
#: broker acknowledges it (PUBACK, with reason 135 "not authorized" in MQTT 5).
BARRIER_TOPIC = "test-barrier/ready"


def subscribed(client: Any) -> None:
    """Return once the broker has the subscriptions ``client`` (a connected ``MqttClient``)
    sent on connecting, and has sent their retained messages. The SUBSCRIBE went out before this
    PUBLISH on the same connection and mosquitto handles a client's packets in order, so its
    PUBACK follows the SUBACK (a wait on an event instead of a fixed sleep)."""
    from ocpp_iot.transports.mqtt import PublishRefused

    with contextlib.suppress(PublishRefused):
        client.publish_confirmed(BARRIER_TOPIC, b"", 1, timeout=10)


async def subscribed_async(client: Any) -> None:
    """:func:`subscribed` for an ``AsyncMqttClient`` (e.g. ``bridge.client``)."""
    from ocpp_iot.transports.mqtt import PublishRefused

    with contextlib.suppress(PublishRefused):
        await client.publish_confirmed(BARRIER_TOPIC, b"", 1, timeout=10)


class Probe:
    """An MQTT client collecting messages of some topics into a queue (for assertions)."""

    def __init__(
        self, url: str, user: str, topics: list[str], *, protocol: str = "5", client_id: str = ""
    ) -> None:
        from ocpp_iot.transports.mqtt import MqttClient, MqttSettings

        self.messages: queue.Queue[Message] = queue.Queue()
        self.client = MqttClient(
            MqttSettings(
                url,
                client_id=client_id or f"probe-{user}-{os.getpid()}-{time.monotonic_ns()}",
                username=user,
                password=USERS.get(user),
                protocol=protocol,
                clean_start=True,
            ),
            self.messages.put,
        )
        for t in topics:
            self.client.subscribe(t, 1)
        self.client.start()
        assert self.client.wait_connected(10), "probe could not connect"
        subscribed(self.client)

    def get(self, timeout: float = 5.0) -> Message:
        return self.messages.get(timeout=timeout)

    def drain(self, wait: float = 0.3) -> list[Message]:
        out = []
        deadline = time.monotonic() + wait
        while True:
            try:
                out.append(self.messages.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                return out

    def wait_for(self, pred: Any, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message")
            try:
                m = self.messages.get(timeout=left)
            except queue.Empty:
                raise TimeoutError("no matching message") from None
            if pred(m):
                return m

    def until(self, pred: Any, timeout: float = 10.0) -> list[Message]:
        """Every message up to and including the first that matches ``pred``."""
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while not out or not pred(out[-1]):
            left = deadline - time.monotonic()
            try:
                out.append(self.messages.get(timeout=max(left, 0.0)))
            except queue.Empty:
                raise TimeoutError(f"no matching message; got {out}") from None
        return out

    def take(self, n: int, timeout: float = 10.0) -> list[Message]:
        """The next ``n`` messages (fails if they do not all come within ``timeout``)."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            try:
                got.append(self.messages.get(timeout=max(deadline - time.monotonic(), 0.0)))
            except queue.Empty:
                raise TimeoutError(f"{len(got)} of {n} messages: {got}") from None
        return got

    def close(self) -> None:
        self.client.stop()


class BridgeProcess:
    """``bridge serve`` in a subprocess (its own process group), against a test broker."""

    def __init__(
        self, broker: Mosquitto, workdir: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.broker = broker
        self.workdir = workdir
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "bridge.log"
        self.db = workdir / "bridge.sqlite3"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ocpp_iot.bridge.cli",
            "serve",
            "--broker",
            self.broker.url,
            "--username",
            "bridge",
            "--password",
            USERS["bridge"],
            "--db",
            str(self.db),
            "--log-level",
            "INFO",
            *self.args,
        ]

    def workers(self) -> int:
        return int(self.args[self.args.index("--workers") + 1]) if "--workers" in self.args else 1

    def status_topics(self, topic: str = "ocpp/bridge/status") -> set[str]:
        """Where the workers say online: worker 0 on ``topic``, worker i on ``topic/wi``."""
        return {topic, *(f"{topic}/w{i}" for i in range(1, self.workers()))}

    def start(self, wait_online: bool = True, timeout: float = 20.0) -> BridgeProcess:
        # watching before the process starts, its workers' births arrive live (not retained):
        # a retained "online" of a process killed a moment ago cannot pass for them
        watch = (
            Probe(self.broker.url, "bridge", sorted(self.status_topics())) if wait_online else None
        )
        try:
            self._spawn()
            if watch is not None:
                self._wait_births(watch, timeout, live=True)
        finally:
            if watch is not None:
                watch.close()
        return self

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.workdir,
            stdout=log,
            stderr=log,
            env=self.env,
            start_new_session=True,
        )
        log.close()

    def wait_online(self, timeout: float = 20.0, topic: str = "ocpp/bridge/status") -> None:
        """Wait until every worker said ``online`` (retained or live) on its status topic."""
        probe = Probe(self.broker.url, "bridge", sorted(self.status_topics(topic)))
        try:
            self._wait_births(probe, timeout, topic=topic)
        finally:
            probe.close()

    def _wait_births(
        self, probe: Probe, timeout: float, *, live: bool = False, topic: str = "ocpp/bridge/status"
    ) -> None:
        # A worker publishes its birth after its SUBSCRIBE on the same connection, and mosquitto
        # handles a client's packets in order: once a worker is online, it is subscribed.
        waiting = self.status_topics(topic)
        deadline = time.monotonic() + timeout
        while waiting:
            try:
                m = probe.get(max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                raise AssertionError(
                    f"bridge did not come online ({sorted(waiting)}):\n{self.log()}"
                ) from None
            if m.payload == b"online" and not (live and m.retain):
                waiting.discard(m.topic)

    def worker_pids(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        # multiprocessing's spawn start method may add a resource tracker: keep the workers
        return [
            p for p in pids if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
        ]

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


@pytest.fixture
def bridge_process(broker: Mosquitto, tmp_path: Path) -> Iterator[Any]:
    """Factory: ``bridge_process(*serve_args)`` starts ``bridge serve`` and waits for online."""
    made: list[BridgeProcess] = []

    def make(*args: str, start: bool = True, env: dict[str, str] | None = None) -> BridgeProcess:
        bp = BridgeProcess(broker, tmp_path, *args, env=env)
        made.append(bp)
        return bp.start() if start else bp

    yield make
    for bp in made:
        bp.close()


@pytest.fixture
def probe(broker: Mosquitto) -> Iterator[Any]:
    made: list[Probe] = []

    def make(topics: list[str], user: str = "operator", **kw: Any) -> Probe:
        p = Probe(broker.url, user, topics, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# -- in-process bridge ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_bridge(
    broker: Mosquitto,
    tmp_path: Path,
    handlers: dict[str, Any] | None = None,
    *,
    allow: list[str] | None = None,
    protocol: str = "5",
    url: str | None = None,
    ca_certs: str | None = None,
    **config: Any,
) -> AsyncIterator[Bridge]:
    from ocpp_iot.bridge.reference import build_reference
    from ocpp_iot.bridge.service import Bridge, BridgeConfig
    from ocpp_iot.bridge.store import SqliteStore
    from ocpp_iot.transports.mqtt import MqttSettings

    db = str(tmp_path / "bridge.sqlite3")
    if handlers is None:
        handlers = build_reference(db, allow)
    cfg = BridgeConfig(
        mqtt=MqttSettings(
            url or broker.url,
            ca_certs=ca_certs,
            client_id="test-bridge",
            username="bridge",
            password=USERS["bridge"],
            protocol=protocol,
        ),
        **config,
    )
    bridge = Bridge(cfg, handlers, SqliteStore(db))
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))

    async def ready() -> None:
        while bridge.client is None:  # it exists once the store released earlier claims
            if task.done():
                task.result()  # raises what stopped the bridge
                raise AssertionError("the bridge stopped")
            await asyncio.sleep(0.005)
        assert await bridge.client.wait_connected(10), "the bridge did not connect"
        await subscribed_async(bridge.client)  # its subscriptions are in place

    await asyncio.wait_for(ready(), 15)
    try:
        yield bridge
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


def station(broker: Mosquitto, sid: str, **kw: Any) -> RawStation:
    """A raw station (tests/raw_station.py) logged in as ``sid``; ``kw``: RawStation.mqtt's."""
    from raw_station import RawStation

    kw.setdefault("call_timeout", 5.0)
    return RawStation.mqtt(sid, broker.url, password=USERS[sid], **kw)


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()
