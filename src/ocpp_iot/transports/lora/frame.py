"""The radio frame: a small clear header, the encrypted payload, a 4-byte MIC (docs/lora.md).

Layout (big-endian; the byte-by-byte table is in docs/lora.md)::

    FHDR    1   version (2 bits, = 1) | type (2) | direction (1) | FRAG | ACKF | ANS
    ADDR    2   the station's address (both directions name the station)
    FCNT    2   the low 16 bits of the sender's 32-bit frame counter
    FRAG    2   (FRAG set) index (6 bits) | data fragments - 1 (6) | parity fragments (4)
    ACK     2   (ACKF set) the low 16 bits of the base counter of the peer's message acked
    PAYLOAD n   AES-CCM ciphertext of the plaintext
    MIC     4   AES-CCM tag over the header (associated data) and the plaintext

Types: DATA (a message or one position of it), ACK (empty, ACKF set), REPLY (a whole answer
that acknowledges the CALL in its ACK field and is never acknowledged itself), CTRL (a code
and its arguments: RESYNC_REQUEST, RESYNC_CONFIRM, NACK).

Crypto: AES-128-CCM (NIST SP 800-38C, RFC 3610) with a 4-byte tag and a 7-byte nonce
``ADDR | direction | full 32-bit counter``; the key is per station. A nonce never repeats under
one key as long as each direction's counter never repeats (see :mod:`.replay`): a receiver
rebuilds the full counter from the 16 bits on air (:func:`reconstruct_counter`), and a wrong
guess fails the MIC like a forgery does.

Decoding raises :class:`FrameError` (a ``ValueError``) and nothing else: truncated, malformed,
unknown version, bad MIC (forged, corrupted, wrong key).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

__all__ = [
    "VERSION",
    "MAX_PACKET",
    "MIC_SIZE",
    "KEY_SIZE",
    "MAX_POSITIONS",
    "MAX_PARITY",
    "COUNTER_LIMIT",
    "FrameType",
    "Direction",
    "Control",
    "Fragment",
    "Header",
    "Frame",
    "FrameError",
    "TruncatedFrame",
    "MalformedFrame",
    "UnsupportedVersion",
    "BadMic",
    "overhead",
    "peek",
    "seal",
    "open_frame",
    "decode",
    "reconstruct_counter",
]

VERSION = 1
#: a LoRa packet carries at most 255 bytes (the SX127x/SX126x payload length register)
MAX_PACKET = 255
MIC_SIZE = 4
KEY_SIZE = 16
_BASE_HEADER = 5
#: a fragmented message has at most 64 positions (data + parity): the index is 6 bits
MAX_POSITIONS = 64
#: at most 15 parity fragments (4 bits)
MAX_PARITY = 15
#: counters are 32 bits; a sender that reaches this must be given a new key
COUNTER_LIMIT = 1 << 32


class FrameType(IntEnum):
    DATA = 0  #: a fragment (or all) of a message: plaintext = message bytes
    ACK = 1  #: a bare acknowledgement: ACKF set, empty plaintext
    #: a whole message that answers the ANS message its ACK field acknowledges; it is itself
    #: never acknowledged: a retransmission of that message asks for it again
    REPLY = 2
    CTRL = 3  #: control: plaintext = code (1) | arguments (see :class:`Control`)


class Direction(IntEnum):
    UP = 0  #: station -> gateway
    DOWN = 1  #: gateway -> station


class Control(IntEnum):
    """CTRL codes and their arguments."""

    #: counter (4): "I hold your frame with this counter: confirm you are live"
    RESYNC_REQUEST = 1
    #: counter (4): "live": the full counter of the RESYNC_REQUEST frame answered
    RESYNC_CONFIRM = 2
    #: base16 (2) | bitmap (1..8, bit i of byte i // 8: position i received): "this much of
    #: your message arrived" (a selective negative acknowledgement)
    NACK = 3


class FrameError(ValueError):
    """A radio frame that is not accepted (the base of every decoding error here)."""


class TruncatedFrame(FrameError):
    """Shorter than its header and MIC require."""


class MalformedFrame(FrameError):
    """Its fields contradict each other or this format (lengths, flags, fragment numbers)."""


class UnsupportedVersion(MalformedFrame):
    """A header version this implementation does not speak."""


class BadMic(FrameError):
    """The MIC does not verify: forged, corrupted, sealed with another key, or its counter was
    reconstructed wrong (a sender that jumped further than 2**15)."""


@dataclass(frozen=True, slots=True)
class Fragment:
    """Position ``index`` of a message sent as ``data`` data fragments and ``parity`` XOR
    parity fragments (positions ``data .. data + parity - 1``)."""

    index: int
    data: int
    parity: int = 0

    @property
    def positions(self) -> int:
        return self.data + self.parity

    def check(self) -> None:
        if not (1 <= self.data <= MAX_POSITIONS and 0 <= self.parity <= MAX_PARITY):
            raise MalformedFrame(f"fragment counts {self.data}+{self.parity} out of range")
        if self.data + self.parity > MAX_POSITIONS or self.data + self.parity < 2:
            raise MalformedFrame(f"{self.data}+{self.parity} positions: not 2..{MAX_POSITIONS}")
        if not 0 <= self.index < self.positions:
            raise MalformedFrame(f"fragment index {self.index} of {self.positions}")


@dataclass(frozen=True, slots=True)
class Header:
    """The clear part of a frame, as read from the air (``counter16``: low bits only)."""

    type: FrameType
    direction: Direction
    address: int
    counter16: int
    fragment: Fragment | None
    ack: int | None
    answer: bool
    size: int  #: header length in bytes (the associated data)


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame in the clear. ``counter`` is the full 32-bit counter; ``ack`` the low 16 bits
    of the peer message acknowledged; ``answer``: the peer's application will answer this
    message, so its acknowledgement may wait for (and ride on) that answer."""

    type: FrameType
    direction: Direction
    address: int
    counter: int
    payload: bytes = b""
    fragment: Fragment | None = None
    ack: int | None = None
    answer: bool = False


def overhead(fragmented: bool, ack: bool = True) -> int:
    """Bytes a frame adds to its plaintext (header + MIC)."""
    return _BASE_HEADER + 2 * fragmented + 2 * ack + MIC_SIZE


def _nonce(address: int, direction: int, counter: int) -> bytes:
    # 7 bytes, the shortest CCM nonce: leaves a 8-byte length field (no practical limit)
    return address.to_bytes(2, "big") + bytes((direction,)) + counter.to_bytes(4, "big")


def _cipher(key: bytes) -> AESCCM:
    if len(key) != KEY_SIZE:
        raise ValueError(f"a station key is {KEY_SIZE} bytes, not {len(key)}")
    return AESCCM(key, tag_length=MIC_SIZE)


def _check_plaintext(type_: FrameType, payload: bytes, has_ack: bool) -> None:
    if type_ in (FrameType.DATA, FrameType.REPLY) and not payload:
        raise MalformedFrame(f"a {type_.name} frame carries at least one byte")
    if type_ in (FrameType.ACK, FrameType.REPLY) and not has_ack:
        raise MalformedFrame(f"a {type_.name} frame has an ACK field")
    if type_ is FrameType.ACK and payload:
        raise MalformedFrame("an ACK frame has no payload")
    if type_ is FrameType.CTRL:
        code = payload[0] if payload else 0
        if code in (Control.RESYNC_REQUEST, Control.RESYNC_CONFIRM) and len(payload) == 5:
            return
        if code == Control.NACK and 4 <= len(payload) <= 3 + MAX_POSITIONS // 8:
            return
        raise MalformedFrame("a CTRL frame with an unknown code or the wrong arguments")


def _header_bytes(frame: Frame) -> bytes:
    if not 0 <= frame.address <= 0xFFFF:
        raise ValueError(f"address {frame.address} is not 16 bits")
    if not 0 <= frame.counter < COUNTER_LIMIT:
        raise ValueError(f"counter {frame.counter} is not 32 bits")
    data_only = frame.type is FrameType.DATA
    if (frame.fragment is not None or frame.answer) and not data_only:
        raise ValueError("only DATA frames carry fragment fields or the ANS flag")
    if frame.ack is not None and frame.type is FrameType.CTRL:
        raise ValueError("CTRL frames carry no ACK field")
    fhdr = (
        VERSION << 6
        | frame.type << 4
        | frame.direction << 3
        | (frame.fragment is not None) << 2
        | (frame.ack is not None) << 1
        | int(frame.answer)
    )
    out = bytearray((fhdr,))
    out += frame.address.to_bytes(2, "big") + (frame.counter & 0xFFFF).to_bytes(2, "big")
    if frame.fragment is not None:
        f = frame.fragment
        f.check()
        out += (f.index << 10 | (f.data - 1) << 4 | f.parity).to_bytes(2, "big")
    if frame.ack is not None:
        out += (frame.ack & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


def seal(frame: Frame, key: bytes) -> bytes:
    """The frame as sent on air: header, ciphertext, MIC. ``ValueError`` if it cannot be."""
    try:
        _check_plaintext(frame.type, frame.payload, frame.ack is not None)
    except MalformedFrame as exc:
        raise ValueError(str(exc)) from None
    header = _header_bytes(frame)
    if len(header) + len(frame.payload) + MIC_SIZE > MAX_PACKET:
        raise ValueError(f"{len(frame.payload)} bytes do not fit one {MAX_PACKET}-byte packet")
    nonce = _nonce(frame.address, frame.direction, frame.counter)
    return header + _cipher(key).encrypt(nonce, frame.payload, header)


def peek(raw: bytes) -> Header:
    """Read the clear header (to find the station and its key) without verifying anything."""
    if len(raw) > MAX_PACKET:
        raise MalformedFrame(f"{len(raw)} bytes: longer than a LoRa packet")
    if len(raw) < _BASE_HEADER + MIC_SIZE:
        raise TruncatedFrame(f"{len(raw)} bytes: shorter than a header and a MIC")
    fhdr = raw[0]
    if fhdr >> 6 != VERSION:
        raise UnsupportedVersion(f"frame version {fhdr >> 6}")
    type_ = FrameType(fhdr >> 4 & 3)
    direction = Direction(fhdr >> 3 & 1)
    has_frag, has_ack, answer = bool(fhdr & 4), bool(fhdr & 2), bool(fhdr & 1)
    if (has_frag or answer) and type_ is not FrameType.DATA:
        raise MalformedFrame(f"a {type_.name} frame with DATA-only flags")
    if has_ack and type_ is FrameType.CTRL:
        raise MalformedFrame("a CTRL frame with an ACK field")
    size = _BASE_HEADER + 2 * has_frag + 2 * has_ack
    if len(raw) < size + MIC_SIZE:
        raise TruncatedFrame(f"{len(raw)} bytes: shorter than its {size}-byte header and MIC")
    pos = _BASE_HEADER
    fragment = None
    if has_frag:
        word = int.from_bytes(raw[pos : pos + 2], "big")
        fragment = Fragment(word >> 10, (word >> 4 & 0x3F) + 1, word & 0xF)
        fragment.check()
        pos += 2
    ack = int.from_bytes(raw[pos : pos + 2], "big") if has_ack else None
    return Header(
        type=type_,
        direction=direction,
        address=int.from_bytes(raw[1:3], "big"),
        counter16=int.from_bytes(raw[3:5], "big"),
        fragment=fragment,
        ack=ack,
        answer=answer,
        size=size,
    )


def open_frame(raw: bytes, header: Header, key: bytes, counter: int) -> Frame:
    """Verify and decrypt ``raw`` (whose header :func:`peek` read) as sent with the full
    ``counter``. ``BadMic`` if it does not verify; ``MalformedFrame`` if it does but its
    plaintext breaks the format (a peer's bug)."""
    if not 0 <= counter < COUNTER_LIMIT or counter & 0xFFFF != header.counter16:
        raise BadMic(f"counter {counter} cannot be that of this frame")
    aad = raw[: header.size]
    nonce = _nonce(header.address, header.direction, counter)
    try:
        payload = _cipher(key).decrypt(nonce, raw[header.size :], aad)
    except InvalidTag:
        raise BadMic("MIC does not verify") from None
    _check_plaintext(header.type, payload, header.ack is not None)
    return Frame(
        type=header.type,
        direction=header.direction,
        address=header.address,
        counter=counter,
        payload=payload,
        fragment=header.fragment,
        ack=header.ack,
        answer=header.answer,
    )


def reconstruct_counter(counter16: int, highest: int) -> int:
    """The full counter whose low 16 bits are ``counter16``, nearest above the highest counter
    seen: the one in ``[highest + 1 - 2**15, highest + 2**15]`` (``highest`` -1: none yet),
    that range moved up to start at 0 at the beginning (there are no negative counters) and
    down to end at 2**32 - 1 at the end."""
    low = min(max(0, highest + 1 - (1 << 15)), COUNTER_LIMIT - (1 << 16))
    return low + ((counter16 - low) & 0xFFFF)


def decode(raw: bytes, key: bytes, highest: int = -1) -> Frame:
    """:func:`peek`, :func:`reconstruct_counter` from ``highest``, then :func:`open_frame`."""
    header = peek(raw)
    return open_frame(raw, header, key, reconstruct_counter(header.counter16, highest))
