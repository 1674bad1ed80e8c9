"""ESP security associations: RFC 4303 packets sealed with AES-GCM (RFC 4106), and the
anti-replay window.

An ESP packet (the payload of an IP packet of protocol 50) is::

    SPI (4) | sequence number (4) | IV (8) | AES-GCM( inner packet | padding | pad length | next header ) | ICV (16)

The nonce is the SA's 4-byte salt and the 8-byte IV; the associated data is the SPI and the
sequence number (no extended sequence numbers), so neither can be changed unnoticed.  The IV
is the sequence number itself (RFC 4106 §3.1 allows any value that never repeats under a
key: a counter does not).  A key is 16, 24 or 32 bytes of AES key followed by the 4-byte
salt, as Linux's ``rfc4106(gcm(aes))`` takes it (``ip xfrm state ... aead``).

:class:`Inbound` checks, in RFC 4303 §3.4.3's order: the sequence number against the replay
window (64 packets: the highest number seen and a bitmap below it), *then* the ICV, and
only a packet that authenticates moves the window -- so a forged packet with a far-ahead
number cannot push genuine ones out of the window.  Every verdict is counted.

Both the VPN gateway (:mod:`l4sim.drivers.vpn`) and the Linux personality's stack (an
instance at the tunnel's far end) use these classes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROTO_ESP = 50
#: packets the anti-replay window covers (RFC 4303's default for 32-bit sequence numbers)
REPLAY_WINDOW = 64
ICV = 16
HEADER = 16  # SPI, sequence number, IV


def parse_key(text: str) -> bytes:
    """A key given as hex digits (``0x`` allowed): 20, 28 or 36 bytes (AES key and salt).
    ValueError says what is wrong."""
    t = text[2:] if text.lower().startswith("0x") else text
    try:
        raw = bytes.fromhex(t)
    except ValueError:
        raise ValueError(f"key {text!r} is not hex digits") from None
    if len(raw) not in (20, 28, 36):
        raise ValueError(f"key {text!r} has {len(raw)} bytes: give an AES key of 16, 24 or 32 bytes "
                         f"and a 4-byte salt (40, 56 or 72 hex digits)")
    return raw


@dataclass
class Outbound:
    """The sending side of an SA: SPI, key and salt, the last sequence number used."""

    spi: int
    key: bytes
    seq: int = 0
    sealed: int = 0

    def __post_init__(self) -> None:
        self._aead = AESGCM(self.key[:-4])
        self._salt = self.key[-4:]

    def seal(self, inner: bytes, next_header: int) -> bytes:
        """The ESP payload carrying ``inner`` (an IP packet: next header 4 for IPv4, 41 for IPv6)."""
        self.seq += 1
        pad = -(len(inner) + 2) % 4
        plain = inner + bytes(range(1, pad + 1)) + bytes([pad, next_header])
        head = struct.pack("!II", self.spi, self.seq)
        iv = struct.pack("!Q", self.seq)
        self.sealed += 1
        return head + iv + self._aead.encrypt(self._salt + iv, plain, head)


@dataclass
class Inbound:
    """The receiving side of an SA: SPI, key and salt, the replay window, and counters."""

    spi: int
    key: bytes
    #: the highest sequence number accepted, and which of the REPLAY_WINDOW below it were seen
    #: (bit i: number top - i)
    top: int = 0
    seen: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "replayed": 0, "corrupt": 0,
                                                             "malformed": 0})

    def __post_init__(self) -> None:
        self._aead = AESGCM(self.key[:-4])
        self._salt = self.key[-4:]

    def fresh(self, seq: int) -> bool:
        """``seq`` is neither 0, nor below the window, nor seen already."""
        if seq == 0:
            return False
        if seq > self.top:
            return True
        back = self.top - seq
        return back < REPLAY_WINDOW and not self.seen >> back & 1

    def _mark(self, seq: int) -> None:
        if seq > self.top:
            self.seen = ((self.seen << (seq - self.top)) | 1) & ((1 << REPLAY_WINDOW) - 1)
            self.top = seq
        else:
            self.seen |= 1 << (self.top - seq)

    def open(self, esp: bytes) -> tuple[str, bytes, int]:
        """(verdict, inner packet, next header): verdict ``ok``, or ``replayed`` (the number
        was seen or fell below the window), ``corrupt`` (the ICV does not verify: altered or
        forged), ``malformed`` (too short, another SPI, bad padding)."""
        if len(esp) < HEADER + ICV + 2:
            return self._count("malformed")
        spi, seq = struct.unpack_from("!II", esp)
        if spi != self.spi:
            return self._count("malformed")
        if not self.fresh(seq):
            return self._count("replayed")
        try:
            plain = self._aead.decrypt(self._salt + esp[8:16], esp[HEADER:], esp[:8])
        except InvalidTag:
            return self._count("corrupt")
        pad, nh = plain[-2], plain[-1]
        if pad + 2 > len(plain) or plain[-2 - pad : -2] != bytes(range(1, pad + 1)):
            return self._count("malformed")
        self._mark(seq)
        self.counts["ok"] += 1
        return "ok", plain[: -2 - pad], nh

    def _count(self, verdict: str) -> tuple[str, bytes, int]:
        self.counts[verdict] += 1
        return verdict, b"", 0
