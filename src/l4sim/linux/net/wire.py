"""Wire formats of the network stack: Ethernet, ARP, IPv4, IPv6, ICMP, ICMPv6, UDP, TCP.

Pure functions from bytes to records and back, in the byte order of the wire (RFC 791,
793, 768, 792, 826, 8200, 4443, 4861).  Addresses are ``bytes``: 6 for a MAC, 4 for IPv4, 16
for IPv6.  Parsers return None for anything malformed -- a short header, a length that does
not add up, a wrong checksum -- which the stack then drops, as Linux's input paths do.

The Internet checksum (RFC 1071) is summed 16 bits at a time through a ``memoryview`` cast
(C speed); the ones' complement sum does not depend on byte order, so the native
little-endian sum is swapped once at the end.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

ETH_IP, ETH_ARP, ETH_IP6 = 0x0800, 0x0806, 0x86DD
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ESP, PROTO_ICMP6 = 1, 6, 17, 50, 58
BROADCAST_MAC = b"\xff" * 6
#: TCP flags
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
#: ICMP types (v4) and ICMPv6 types
ICMP_ECHOREPLY, ICMP_UNREACH, ICMP_ECHO, ICMP_TIMXCEED = 0, 3, 8, 11
ICMP_PORT_UNREACH = 3
ICMP6_UNREACH, ICMP6_ECHO, ICMP6_ECHOREPLY, ND_SOLICIT, ND_ADVERT = 1, 128, 129, 135, 136
ICMP6_PORT_UNREACH = 4

_ETH = struct.Struct("!6s6sH")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_LITTLE = sys.byteorder == "little"


def checksum(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """The Internet checksum of ``data`` (RFC 1071), ``start`` a partial sum to add (a
    pseudo-header's): the 16-bit value to put into a header, or 0 when a received header's
    checksum is right."""
    if len(data) & 1:
        data = bytes(data) + b"\0"
    s = sum(memoryview(data).cast("H"))
    if _LITTLE:  # a sum of byte-swapped words: fold, then swap back
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        s = ((s & 0xFF) << 8) | (s >> 8)
    s += start
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _sum(data: bytes) -> int:
    """The unfolded sum of ``data``'s 16-bit big-endian words (a pseudo-header)."""
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def pseudo(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The partial sum of the pseudo-header of a TCP, UDP or ICMPv6 checksum: IPv4's (RFC 793)
    or IPv6's (RFC 8200 §8.1), by the addresses' length."""
    if len(src) == 4:
        return _sum(src + dst + struct.pack("!BBH", 0, proto, length))
    return _sum(src + dst + struct.pack("!IxxxB", length, proto))


# --------------------------------------------------------------------------- Ethernet and ARP
def eth(dst: bytes, src: bytes, kind: int, payload: bytes) -> bytes:
    return _ETH.pack(dst, src, kind) + payload


def parse_eth(frame: bytes) -> tuple[bytes, bytes, int, bytes] | None:
    """(destination, source, EtherType, payload) of an Ethernet II frame."""
    if len(frame) < 14:
        return None
    dst, src, kind = _ETH.unpack_from(frame)
    return dst, src, kind, frame[14:]


ARP_REQUEST, ARP_REPLY = 1, 2


def arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    """An ARP packet for Ethernet and IPv4 (RFC 826)."""
    return _ARP.pack(1, ETH_IP, 6, 4, op, sha, spa, tha, tpa)


def parse_arp(data: bytes) -> tuple[int, bytes, bytes, bytes, bytes] | None:
    """(op, sender MAC, sender IP, target MAC, target IP)."""
    if len(data) < _ARP.size:
        return None
    htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
    if htype != 1 or ptype != ETH_IP or hlen != 6 or plen != 4:
        return None
    return op, sha, spa, tha, tpa


def multicast_mac(addr: bytes) -> bytes:
    """The Ethernet address of an IPv6 multicast group (RFC 2464: 33:33 and its last 32 bits)."""
    return b"\x33\x33" + addr[12:]


def solicited_node(addr: bytes) -> bytes:
    """The solicited-node multicast group of an IPv6 address (RFC 4291: ff02::1:ffXX:XXXX)."""
    return bytes.fromhex("ff0200000000000000000001ff") + addr[13:]


# --------------------------------------------------------------------------- IP
@dataclass(slots=True)
class Ip:
    """A received IP packet: version 4 or 6, addresses, the upper protocol, TTL (hop limit),
    the payload, and the header's bytes (an ICMP error quotes them)."""

    version: int
    src: bytes
    dst: bytes
    proto: int
    ttl: int
    payload: bytes
    header: bytes
    tos: int = 0


def ip4(src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int = 64, ident: int = 0,
        tos: int = 0) -> bytes:
    """An IPv4 packet with the don't-fragment bit (the stack sends nothing larger than the path)."""
    head = _IP4.pack(0x45, tos, 20 + len(payload), ident & 0xFFFF, 0x4000, ttl, proto, 0, src, dst)
    c = checksum(head)
    return head[:10] + struct.pack("!H", c) + head[12:] + payload


def parse_ip4(data: bytes, verify: bool = True) -> Ip | None:
    """An IPv4 packet; fragments are not reassembled (None), options are skipped."""
    if len(data) < 20:
        return None
    vihl, tos, total, _ident, frag, ttl, proto, _c, src, dst = _IP4.unpack_from(data)
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20 or total < ihl or total > len(data):
        return None
    if frag & 0x3FFF:  # a fragment (MF or an offset)
        return None
    if verify and checksum(memoryview(data)[:ihl]):
        return None
    return Ip(4, src, dst, proto, ttl, data[ihl:total], data[:ihl], tos)


def ip6(src: bytes, dst: bytes, proto: int, payload: bytes, hops: int = 64, tclass: int = 0) -> bytes:
    return _IP6.pack((6 << 28) | (tclass << 20), len(payload), proto, hops, src, dst) + payload


def parse_ip6(data: bytes) -> Ip | None:
    """An IPv6 packet; a hop-by-hop, routing or destination-options header is skipped (any
    other extension header -- a fragment -- is not handled: None)."""
    if len(data) < 40:
        return None
    first, plen, nxt, hops, src, dst = _IP6.unpack_from(data)
    if first >> 28 != 6 or 40 + plen > len(data):
        return None
    payload = data[40 : 40 + plen]
    while nxt in (0, 43, 60):
        if len(payload) < 8:
            return None
        n = (payload[1] + 1) * 8
        nxt, payload = payload[0], payload[n:]
    if nxt == 44:
        return None
    return Ip(6, src, dst, nxt, hops, payload, data[:40], (first >> 20) & 0xFF)


# --------------------------------------------------------------------------- TCP
@dataclass(slots=True)
class Seg:
    """A TCP segment (RFC 793 §3.1): ports, sequence and acknowledgment numbers, flags, the
    window, the data, and the MSS option of a SYN."""

    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    wnd: int
    data: bytes = b""
    mss: int = 0

    @property
    def length(self) -> int:
        """Sequence space it takes: its data, and one each for SYN and FIN."""
        return len(self.data) + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)


def tcp(seg: Seg, src: bytes, dst: bytes) -> bytes:
    """The segment's bytes with its checksum over the pseudo-header of ``src`` and ``dst``."""
    opts = struct.pack("!BBH", 2, 4, seg.mss) if seg.mss else b""
    off = (20 + len(opts)) // 4
    head = _TCP.pack(seg.sport, seg.dport, seg.seq & 0xFFFF_FFFF, seg.ack & 0xFFFF_FFFF, off << 4,
                     seg.flags, min(seg.wnd, 0xFFFF), 0, 0) + opts
    body = head + seg.data
    c = checksum(body, pseudo(src, dst, PROTO_TCP, len(body)))
    return body[:16] + struct.pack("!H", c) + body[18:]


def parse_tcp(data: bytes, src: bytes, dst: bytes, verify: bool = True) -> Seg | None:
    if len(data) < 20:
        return None
    sport, dport, seq, ack, off, flags, wnd, _c, _urg = _TCP.unpack_from(data)
    hlen = (off >> 4) * 4
    if hlen < 20 or hlen > len(data):
        return None
    if verify and checksum(data, pseudo(src, dst, PROTO_TCP, len(data))):
        return None
    mss = 0
    at = 20
    while at < hlen:  # options: only MSS matters here
        kind = data[at]
        if kind == 0:
            break
        if kind == 1:
            at += 1
            continue
        if at + 1 >= hlen or data[at + 1] < 2:
            return None
        if kind == 2 and data[at + 1] == 4 and at + 4 <= hlen:
            mss = struct.unpack_from("!H", data, at + 2)[0]
        at += data[at + 1]
    return Seg(sport, dport, seq, ack, flags & 0x3F, wnd, bytes(data[hlen:]), mss)


# --------------------------------------------------------------------------- UDP and ICMP
def udp(sport: int, dport: int, payload: bytes, src: bytes, dst: bytes) -> bytes:
    body = _UDP.pack(sport, dport, 8 + len(payload), 0) + payload
    c = checksum(body, pseudo(src, dst, PROTO_UDP, len(body))) or 0xFFFF  # 0 means "none"
    return body[:6] + struct.pack("!H", c) + body[8:]


def parse_udp(data: bytes, src: bytes, dst: bytes, verify: bool = True) -> tuple[int, int, bytes] | None:
    """(source port, destination port, payload)."""
    if len(data) < 8:
        return None
    sport, dport, length, c = _UDP.unpack_from(data)
    if length < 8 or length > len(data):
        return None
    if verify and (c or len(src) == 16) and checksum(data[:length], pseudo(src, dst, PROTO_UDP, length)):
        return None
    return sport, dport, data[8:length]


def icmp(kind: int, code: int, rest: bytes) -> bytes:
    """An ICMP (v4) message: type, code, checksum, and what follows (id and sequence, data)."""
    body = struct.pack("!BBH", kind, code, 0) + rest
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def icmp6(kind: int, code: int, rest: bytes, src: bytes, dst: bytes) -> bytes:
    """An ICMPv6 message, its checksum over the IPv6 pseudo-header (RFC 4443 §2.3)."""
    body = struct.pack("!BBH", kind, code, 0) + rest
    c = checksum(body, pseudo(src, dst, PROTO_ICMP6, len(body)))
    return body[:2] + struct.pack("!H", c) + body[4:]


def with_icmp6_checksum(body: bytes, src: bytes, dst: bytes) -> bytes:
    """``body`` (an ICMPv6 message a raw socket wrote) with its checksum filled in, as the
    kernel does for every ICMPv6 raw socket (RFC 3542 §3.1)."""
    if len(body) < 4:
        return body
    body = body[:2] + b"\0\0" + body[4:]
    c = checksum(body, pseudo(src, dst, PROTO_ICMP6, len(body)))
    return body[:2] + struct.pack("!H", c) + body[4:]
