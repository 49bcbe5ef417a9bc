"""What the modem drivers read from a serial line, cut into pieces (sans-IO: bytes and ``now``
in, lines or frames out; no port, no clock of its own).

- :class:`LineBuffer`: lines ending in LF (a CR before it dropped), binary-safe; a partial
  line left without its end for ``stale_after`` seconds is dropped when the next bytes come
  (a modem that was reset in the middle of a line), and so is a line longer than
  ``max_line`` (garbage that never ends). Subclasses may declare records whose length a
  header gives (REYAX ``+RCV=``, whose data may hold any byte, LF and CR included).
- :class:`EbyteDeframer`: the frames the Ebyte driver adds to a transparent byte stream
  (``length (1) | payload | CRC-16 (2)``), cut into the module's sub-packets, each followed by
  the module's RSSI byte when that is enabled; resynchronises byte by byte on a bad CRC.
- :func:`crc16`: CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection,
  no final XOR; check value ``crc16(b"123456789") == 0x29B1``).

Every piece of input is either returned or counted (:class:`FramingStats`); nothing raises.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FramingStats", "LineBuffer", "EbyteDeframer", "crc16", "ebyte_frame"]


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | bytearray | memoryview, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``."""
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc


@dataclass
class FramingStats:
    """What the framing dropped, by reason."""

    garbage_bytes: int = 0  #: bytes that belonged to nothing (noise, a resync)
    stale_partials: int = 0  #: partial lines/frames dropped after a silence
    overlong: int = 0  #: lines longer than the limit, dropped
    crc_errors: int = 0  #: Ebyte frame candidates whose CRC did not match


class LineBuffer:
    """Splits a byte stream into lines (module docstring). ``feed`` returns complete lines
    without their line end; empty lines are skipped."""

    def __init__(
        self,
        *,
        max_line: int = 2048,
        stale_after: float = 1.0,
        stats: FramingStats | None = None,
    ) -> None:
        self.max_line = max_line
        self.stale_after = stale_after
        self.stats = stats if stats is not None else FramingStats()
        self._buf = bytearray()
        self._last = 0.0

    @property
    def pending(self) -> int:
        """Bytes held back (a partial line)."""
        return len(self._buf)

    def record_length(self, buf: bytearray) -> int | None:
        """For subclasses: at a line start, the length of a length-delimited record there
        (through its LF), ``-1`` if more bytes are needed to tell, ``None`` for an ordinary
        line. Called with a non-empty buffer."""
        return None

    def skip_junk(self, buf: bytearray) -> int:
        """For subclasses: how many bytes at a line start cannot begin a line (dropped)."""
        return 0

    def feed(self, data: bytes, now: float) -> list[bytes]:
        buf = self._buf
        if buf and now - self._last > self.stale_after:
            self.stats.stale_partials += 1
            self.stats.garbage_bytes += len(buf)
            buf.clear()
        self._last = now
        buf += data
        out: list[bytes] = []
        while buf:
            junk = self.skip_junk(buf)
            if junk:
                self.stats.garbage_bytes += junk
                del buf[:junk]
                continue
            n = self.record_length(buf)
            if n is not None and n < 0:
                break  # a record whose end has not come yet
            if n is None:
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > self.max_line:
                        self.stats.overlong += 1
                        self.stats.garbage_bytes += len(buf)
                        buf.clear()
                    break
                n = end + 1
            line = bytes(buf[:n])
            del buf[:n]
            line = line[:-1] if line.endswith(b"\n") else line
            line = line[:-1] if line.endswith(b"\r") else line
            if line:
                out.append(line)
        return out


def ebyte_frame(payload: bytes) -> bytes:
    """``length | payload | CRC-16`` (big-endian CRC over length and payload)."""
    if not 1 <= len(payload) <= 255:
        raise ValueError(f"an Ebyte frame carries 1..255 bytes, not {len(payload)}")
    body = bytes([len(payload)]) + payload
    return body + crc16(body).to_bytes(2, "big")


class EbyteDeframer:
    """Frames out of an Ebyte module's received byte stream (module docstring).

    ``sub_packet``: the module's packet size (it cuts a longer write into packets of that
    size and the receiving module outputs each packet as it arrives); ``rssi_byte``: the
    module appends one RSSI byte after each packet it outputs. ``feed`` returns ``(payload,
    rssi_raw)`` pairs, ``rssi_raw`` the RSSI byte of the frame's last packet (``None``
    without RSSI bytes)."""

    def __init__(
        self,
        sub_packet: int,
        *,
        rssi_byte: bool = False,
        max_payload: int = 255,
        stale_after: float = 1.0,
        stats: FramingStats | None = None,
    ) -> None:
        if sub_packet < 4:
            raise ValueError("sub-packets must hold at least a length, a byte and a CRC")
        self.sub_packet = sub_packet
        self.rssi_byte = rssi_byte
        self.max_payload = max_payload
        self.stale_after = stale_after
        self.stats = stats if stats is not None else FramingStats()
        self._buf = bytearray()
        self._last = 0.0

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _span(self, n: int) -> int:
        """Bytes on the line for a frame of ``n`` bytes (with the RSSI bytes)."""
        if not self.rssi_byte:
            return n
        return n + -(-n // self.sub_packet)

    def _extract(self, n: int, start: int = 0) -> tuple[bytes, int | None]:
        if not self.rssi_byte:
            return bytes(self._buf[start : start + n]), None
        s, parts, rssi, pos, left = self.sub_packet, [], None, start, n
        while left > 0:
            k = min(s, left)
            parts.append(self._buf[pos : pos + k])
            rssi = self._buf[pos + k]
            pos += k + 1
            left -= k
        return b"".join(parts), rssi

    def _complete_frame_after_start(self) -> int:
        """The offset (> 0) of the first complete frame with a good CRC in the buffer, or 0."""
        buf = self._buf
        for j in range(1, len(buf) - 3):
            length = buf[j]
            if not 1 <= length <= self.max_payload:
                continue
            n = length + 3
            if len(buf) - j < self._span(n):
                continue
            frame, _ = self._extract(n, j)
            if crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big"):
                return j
        return 0

    def feed(self, data: bytes, now: float) -> list[tuple[bytes, int | None]]:
        buf = self._buf
        if buf and now - self._last > self.stale_after:
            self.stats.stale_partials += 1
            self.stats.garbage_bytes += len(buf)
            buf.clear()
        self._last = now
        buf += data
        out: list[tuple[bytes, int | None]] = []
        while buf:
            length = buf[0]
            if not 1 <= length <= self.max_payload:
                self.stats.garbage_bytes += 1
                del buf[0]
                continue
            n = length + 3
            span = self._span(n)
            if len(buf) < span:
                # incomplete, or a garbage byte posing as a length: if a whole frame with a
                # good CRC follows it, the bytes before that frame were garbage
                skip = self._complete_frame_after_start()
                if skip:
                    self.stats.garbage_bytes += skip
                    del buf[:skip]
                    continue
                break
            frame, rssi = self._extract(n)
            if crc16(frame[:-2]) == int.from_bytes(frame[-2:], "big"):
                out.append((frame[1:-2], rssi))
                del buf[:span]
            else:
                self.stats.crc_errors += 1
                self.stats.garbage_bytes += 1
                del buf[0]
        return out
