"""The simulated modems byte for byte, through a plain pyserial port (no driver): what each
answers to what, its errors, and the simulator's ports and command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import serial  # type: ignore[import-untyped]

from ocpp_iot.transports.lora.modems import ebyte_frame
from ocpp_iot.transports.lora.sim import PtyPort, Simulator


def port(path: str) -> Any:
    return serial.serial_for_url(path, baudrate=115200, timeout=0.02)


def talk(p: Any, data: bytes, expect: bytes, timeout: float = 2.0) -> bytes:
    """Write ``data``; read until ``expect`` has been seen; return all that came."""
    p.write(data)
    got = b""
    end = time.monotonic() + timeout
    while expect not in got:
        if time.monotonic() > end:
            raise AssertionError(f"no {expect!r} in {got!r}")
        got += p.read(4096)
    return got


def test_rak3172_answers_and_refuses_like_rui3() -> None:
    with Simulator("rak3172", 2, rate=1, options={"work_mode": 0}) as sim:
        a, b = port(sim.paths[0]), port(sim.paths[1])
        assert talk(a, b"AT\r\n", b"OK\r\n") == b"\r\nOK\r\n"
        assert talk(a, b"AT+NWM=?\r\n", b"OK\r\n") == b"AT+NWM=0\r\n\r\nOK\r\n"
        assert talk(a, b"AT+P2P=868100000:7:125:0:8:14\r\n", b"\r\n") == b"\r\nOK\r\n"
        assert b"AT_PARAM_ERROR" in talk(a, b"AT+P2P=868100000:7:126:0:8:14\r\n", b"ERROR")
        assert b"AT_PARAM_ERROR" in talk(a, b"AT+PSEND=ABC\r\n", b"ERROR")  # odd length
        assert b"AT_COMMAND_NOT_FOUND" in talk(a, b"AT+WHAT\r\n", b"FOUND\r\n")
        assert b"AT_ERROR" in talk(a, b"hello\r\n", b"ERROR\r\n")
        talk(a, b"AT+PRECV=65534\r\n", b"OK\r\n")
        assert b"AT_BUSY_ERROR" in talk(a, b"AT+PSEND=00\r\n", b"ERROR")  # listen-only mode
        assert b"AT_BUSY_ERROR" in talk(a, b"AT+PFREQ=868300000\r\n", b"ERROR")
        talk(a, b"AT+PRECV=0\r\n", b"OK\r\n")
        timed = talk(a, b"AT+PRECV=20\r\n", b"TIMEOUT\r\n")  # 20 ms of reception, then that
        assert timed == b"\r\nOK\r\n+EVT:RXP2P RECEIVE TIMEOUT\r\n"
        talk(b, b"AT+P2P=868100000:7:125:0:8:14\r\nAT+PRECV=65533\r\n", b"OK\r\n\r\nOK\r\n")
        sent = talk(a, b"AT+PSEND=00FF0D0A\r\n", b"DONE\r\n")
        assert sent == b"\r\nOK\r\n+EVT:TXP2P DONE\r\n"
        assert talk(b, b"", b"\r\n").startswith(b"+EVT:RXP2P:-")
        banner = talk(b, b"ATZ\r\n", b"Mode: LoRa P2P.\r\n")
        assert banner.endswith(b"Current Work Mode: LoRa P2P.\r\n")
        assert not sim.errors


def test_rylr998_takes_exactly_length_bytes_of_data_and_answers_its_errors() -> None:
    with Simulator("rylr998", 2, rate=100) as sim:
        a, b = port(sim.paths[0]), port(sim.paths[1])
        assert talk(a, b"AT\r\n", b"\r\n") == b"+OK\r\n"
        assert talk(a, b"AT+BAND?\r\n", b"\r\n") == b"+BAND=915000000\r\n"
        assert talk(a, b"AT+ADDRESS=7\r\n", b"\r\n") == b"+OK\r\n"
        assert talk(a, b"AT+NETWORKID=5\r\n", b"\r\n") == b"+OK\r\n"
        assert talk(a, b"AT+PARAMETER=9,7,1,8\r\n", b"\r\n") == b"+ERR=18\r\n"  # not 12
        assert talk(a, b"AT+NETWORKID=18\r\n", b"\r\n") == b"+OK\r\n"
        assert talk(a, b"AT\n", b"\r\n") == b"+ERR=1\r\n"
        assert talk(a, b"hello\r\n", b"\r\n") == b"+ERR=2\r\n"
        assert talk(a, b"AT+FOO\r\n", b"\r\n") == b"+ERR=4\r\n"
        assert talk(a, b"AT+SEND=0,3,ab\r\n", b"\r\n") == b"+ERR=5\r\n"
        assert talk(a, b"AT+SEND=0,241," + bytes(241) + b"\r\n", b"\r\n") == b"+ERR=13\r\n"
        data = b"\r\n,\x00+OK\r\n"
        assert talk(a, b"AT+SEND=0,%d," % len(data) + data + b"\r\n", b"\r\n") == b"+OK\r\n"
        got = talk(b, b"", b"\r\n", 1.0)
        while not got.endswith(b"\r\n") or got.count(b",") < 4 + data.count(b","):
            got += b.read(4096)
        assert got.startswith(b"+RCV=7,%d," % len(data) + data + b",-")
        assert talk(a, b"AT+RESET\r\n", b"+READY\r\n") == b"+RESET\r\n+READY\r\n"
        assert talk(a, b"AT+ADDRESS?\r\n", b"\r\n") == b"+ADDRESS=7\r\n"  # kept across it


def test_e22_fixed_point_packets_rssi_byte_and_aux() -> None:
    opts = {"rssi_byte": True, "sub_packet": 32}
    radio_options = [{"address": 1}, {"address": 2}, {"address": 3}]
    with Simulator("e22", 3, rate=1000, options=opts, radio_options=radio_options) as sim:
        a, b, c = (port(p) for p in sim.paths)
        data = bytes(range(70))
        a.write(b"\x00\x02\x12" + data)  # to address 2 on channel 18 (868.125 MHz)
        got = talk(b, b"", bytes([6]))  # 32 + 1 + 32 + 1 + 6 + 1 bytes
        while len(got) < 73:
            got += b.read(4096)
        assert got[:32] == data[:32] and got[33:65] == data[32:64] and got[66:72] == data[64:]
        assert all(150 < x < 256 for x in (got[32], got[65], got[72]))  # -(256 - b) dBm
        assert c.read(4096) == b""  # address 3: not for it
        assert sim.call(lambda: sim.radios[0].emulator.aux())
        txs = sim.transmissions()
        assert [len(t.payload) for t in txs] == [32, 32, 6]
        assert {t.frequency_hz for t in txs} == {868_125_000}
        a.write(b"\xff\xff\x12" + ebyte_frame(b"to all"))
        assert talk(c, b"", b"to all")


def test_a_pty_port_vanishes_and_comes_back_at_the_same_path(tmp_path: Any) -> None:
    link = str(tmp_path / "ttyUSB0")
    p = PtyPort(link)
    try:
        first = os.path.realpath(link)
        host = port(link)
        p.write(b"hello")
        assert host.read(5) == b"hello"
        host.write(b"back")
        time.sleep(0.02)
        assert p.read() == b"back"
        p.vanish()
        assert not os.path.exists(link)
        try:
            host.read(1)
            raised = False
        except serial.SerialException:
            raised = True
        assert raised
        host.close()
        p.appear()
        assert os.path.exists(link) and os.path.realpath(link).startswith("/dev/pts/")
        again = port(link)
        p.write(b"x" * 1_000_000)  # nobody reads all that: the rest is dropped, not blocking
        assert p.overruns > 0
        again.close()
        assert first.startswith("/dev/pts/")
    finally:
        p.vanish()


def test_the_command_prints_the_ports_and_the_channel_report(tmp_path: Any) -> None:
    cmd = [sys.executable, "-m", "ocpp_iot.transports.lora.sim", "--modem", "rylr998",
           "--radios", "3", "--json", "--duration", "3", "--dir", str(tmp_path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["modem"] == "rylr998" and len(info["ports"]) == 3
        a = port(info["ports"][0])
        assert talk(a, b"AT+SEND=0,2,hi\r\n", b"+OK\r\n") == b"+OK\r\n"  # at 915 MHz: not EU
        for p in info["ports"]:
            talk(port(p), b"AT+BAND=868100000\r\n", b"+OK\r\n")
        talk(a, b"AT+SEND=0,2,hi\r\n", b"+OK\r\n")
        a.close()
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    report = json.loads(err.decode().splitlines()[0])
    assert report["channel"]["delivered"] == 4 and report["violations"] == 1
    assert "outside the duty-cycled sub-bands" in err.decode()
    bad = subprocess.run([*cmd[:3], "--option", "nonsense"], capture_output=True, timeout=30)
    assert bad.returncode == 2
