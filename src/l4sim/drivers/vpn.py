"""A µSINA-style VPN gateway: the small trusted component between an intranet and the internet.

Singaravelu, Pu, Härtig and Helmuth ("Reducing TCB Complexity for Security-Sensitive
Applications: Three Case Studies", EuroSys 2006) split a VPN gateway so that what keeps the
intranet's traffic secret -- the tunnel's cryptography and its keys -- runs outside Linux, in
a small component of its own (the Viaduct role of µSINA/SINA): the Linux instances keep
their drivers and stacks and see either plaintext of their own side or ciphertext.  This is
that component, as a native program: the *red* side is a port on the intranet's switch, the
*black* side a NIC server on the outer wire; it speaks ``NET`` on both
(:mod:`l4sim.drivers.protocols`) and is an IPv4 router between them:

- **red -> black**: an IPv4 packet from the local network to the remote one (its
  configuration's ``local`` and ``remote`` prefixes) has its TTL decremented and is sealed
  whole into ESP tunnel mode (:mod:`l4sim.drivers.esp`: AES-GCM, the SPI and a fresh
  sequence number authenticated) in an outer packet from the gateway's black address to the
  tunnel's peer.  Anything else from red is dropped (counted ``policy``); a packet too large
  to be sealed into one frame is dropped (``too_big``).
- **black -> red**: only ESP from the peer is taken.  The anti-replay window is checked
  first, then the ICV; a packet that fails is dropped and counted -- ``replayed`` (its
  number was seen, or is older than the window), ``corrupt`` (altered or forged: the ICV
  does not verify), ``malformed`` -- and a line on the log says so.  An inner packet that
  is not from the remote to the local network is dropped (``policy``).  Plaintext from
  black is dropped (``plaintext``).
- ARP for its two addresses and for next hops on either side; echo requests to its red
  address are answered (so the intranet can reach its gateway).

The keys come from the configuration (the program's argument, ``key=value`` words):
``red=10.1.0.1/24 black=198.51.100.1/24 peer=198.51.100.2 local=10.1.0.0/24
remote=198.51.100.2/32 spi_out=0x100 key_out=HEX spi_in=0x200 key_in=HEX``.

Sealing and opening cost simulated CPU time (:data:`CRYPTO_NS`, :data:`CRYPTO_NS_PER_BYTE`:
AES-GCM with AES-NI, a few cycles a byte); the gateway measures the simulated time from a
frame's arrival to the end of its forwarding (``latency``).  A control channel (``ctl``,
optional) answers any call with its counters as text: a read-only view for an operator.

:class:`Gateway` is the packet logic (frames in, frames out: no system calls); :func:`main`
is the program around it, a thread per side.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from l4sim.drivers.esp import ICV, Inbound, Outbound, parse_key
from l4sim.drivers.netport import NetClient
from l4sim.drivers.protocols import MAX_FRAME
from l4sim.kernel.abi import StrBuf, StrItem
from l4sim.user.env import Env, Gate

ETH_IP, ETH_ARP = 0x0800, 0x0806
PROTO_ICMP, PROTO_ESP = 1, 50
BROADCAST = b"\xff" * 6
#: simulated CPU time of sealing or opening a packet: a fixed part and per byte
CRYPTO_NS, CRYPTO_NS_PER_BYTE = 400, 1
#: the outer header, ESP's header, padding (at most 3), trailer and ICV
OVERHEAD = 20 + 16 + 3 + 2 + ICV
#: packets a side holds while it asks for a neighbour's MAC
PENDING = 8
DROPS = ("replayed", "corrupt", "malformed", "policy", "plaintext", "too_big", "ttl", "unresolved")


def _csum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _ip4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000, 64, proto, 0, src, dst)
    return head[:10] + struct.pack("!H", _csum(head)) + head[12:] + payload


def _arp(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return struct.pack("!HHBBH6s4s6s4s", 1, ETH_IP, 6, 4, op, sha, spa, tha, tpa)


def _net(text: str) -> tuple[int, int]:
    n = ipaddress.IPv4Network(text, strict=False)
    return int(n.network_address), n.prefixlen


def _in(addr: bytes, net: tuple[int, int]) -> bool:
    base, plen = net
    mask = ((1 << plen) - 1) << (32 - plen) if plen else 0
    return int.from_bytes(addr, "big") & mask == base & mask


@dataclass
class Config:
    """The gateway's configuration (see the module): its two addresses, the peer, the two
    networks, and the SAs' SPIs and keys."""

    red: tuple[bytes, int]
    black: tuple[bytes, int]
    peer: bytes
    local: tuple[int, int]
    remote: tuple[int, int]
    spi_out: int
    key_out: bytes
    spi_in: int
    key_in: bytes

    @classmethod
    def parse(cls, text: str) -> Config:
        """From ``key=value`` words; ValueError names what is missing or wrong."""
        words = dict(w.split("=", 1) for w in text.split() if "=" in w)
        need = ("red", "black", "peer", "local", "remote", "spi_out", "key_out", "spi_in", "key_in")
        missing = [k for k in need if k not in words]
        if missing:
            raise ValueError(f"vpn: the configuration lacks {', '.join(missing)}")

        def iface(k: str) -> tuple[bytes, int]:
            i = ipaddress.IPv4Interface(words[k])
            return i.ip.packed, i.network.prefixlen

        return cls(iface("red"), iface("black"), ipaddress.IPv4Address(words["peer"]).packed, _net(words["local"]),
                   _net(words["remote"]), int(words["spi_out"], 0), parse_key(words["key_out"]),
                   int(words["spi_in"], 0), parse_key(words["key_in"]))


#: (packet, protocol, source, destination, payload) of an IPv4 packet
_Packet = tuple[bytes, int, bytes, bytes, bytes]


@dataclass(eq=False)
class Side:
    """One side of the gateway: its address and prefix, MAC, neighbours, packets waiting."""

    name: str
    ip: bytes
    prefix: int
    mac: bytes = bytes(6)
    mtu: int = 1500
    neigh: dict[bytes, bytes] = field(default_factory=dict)
    pending: dict[bytes, list[bytes]] = field(default_factory=dict)


class Gateway:
    """The packet logic: :meth:`from_red` and :meth:`from_black` take a frame and return the
    frames to send, each with the side to send it on."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.red = Side("red", *cfg.red)
        self.black = Side("black", *cfg.black)
        self.out = Outbound(cfg.spi_out, cfg.key_out)
        self.inb = Inbound(cfg.spi_in, cfg.key_in)
        self.ident = 0
        self.counts = {"sealed": 0, "opened": 0, **{d: 0 for d in DROPS}}
        #: what the log should say (drained by the program)
        self.log: list[str] = []

    # --- Ethernet, ARP
    def _frame(self, side: Side, hop: bytes, pkt: bytes) -> list[tuple[Side, bytes]]:
        mac = side.neigh.get(hop)
        if mac is not None:
            return [(side, mac + side.mac + struct.pack("!H", ETH_IP) + pkt)]
        waiting = side.pending.setdefault(hop, [])
        if len(waiting) >= PENDING:
            self.counts["unresolved"] += 1
            return []
        waiting.append(pkt)
        if len(waiting) > 1:
            return []  # asked already
        return [(side, BROADCAST + side.mac + struct.pack("!H", ETH_ARP) + _arp(1, side.mac, side.ip, bytes(6), hop))]

    def _arp_in(self, side: Side, body: bytes) -> list[tuple[Side, bytes]]:
        if len(body) < 28:
            return []
        _h, _p, _hl, _pl, op, sha, spa, _tha, tpa = struct.unpack_from("!HHBBH6s4s6s4s", body)
        out: list[tuple[Side, bytes]] = []
        if tpa == side.ip or spa in side.neigh or spa in side.pending:
            side.neigh[spa] = sha
            for pkt in side.pending.pop(spa, []):
                out.append((side, sha + side.mac + struct.pack("!H", ETH_IP) + pkt))
        if op == 1 and tpa == side.ip:
            out.append((side, sha + side.mac + struct.pack("!H", ETH_ARP) + _arp(2, side.mac, side.ip, sha, spa)))
        return out

    @staticmethod
    def _ip(frame: bytes) -> _Packet | None:
        """(packet, protocol, source, destination, payload) of an intact IPv4 packet."""
        pkt = frame[14:]
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            return None
        ihl = (pkt[0] & 0xF) * 4
        total = struct.unpack_from("!H", pkt, 2)[0]
        if ihl < 20 or total < ihl or total > len(pkt) or _csum(pkt[:ihl]) or struct.unpack_from("!H", pkt, 6)[0] & 0x3FFF:
            return None
        return pkt[:total], pkt[9], pkt[12:16], pkt[16:20], pkt[ihl:total]

    def _forwarded(self, pkt: bytes) -> bytes | None:
        """``pkt`` with its TTL one less (None: it has run out, counted as ``ttl``)."""
        if pkt[8] <= 1:
            self.counts["ttl"] += 1
            return None
        ihl = (pkt[0] & 0xF) * 4
        head = bytearray(pkt[:ihl])
        head[8] -= 1
        head[10:12] = b"\0\0"
        head[10:12] = struct.pack("!H", _csum(bytes(head)))
        return bytes(head) + pkt[ihl:]

    def _mine(self, side: Side, frame: bytes) -> bool:
        return frame[:6] == side.mac or frame[:6] == BROADCAST

    def _arrive(self, side: Side, frame: bytes) -> tuple[list[tuple[Side, bytes]], _Packet | None]:
        """A frame arriving on ``side``, before either direction's own rules: (frames to send,
        the intact IPv4 packet to route).  ARP is answered here; a frame not for ``side``, of
        another kind, or not intact comes to nothing."""
        if len(frame) < 14 or not self._mine(side, frame):
            return [], None
        kind = struct.unpack_from("!H", frame, 12)[0]
        if kind == ETH_ARP:
            return self._arp_in(side, frame[14:]), None
        if kind != ETH_IP:
            return [], None
        return [], self._ip(frame)

    # --- the two directions
    def from_red(self, frame: bytes) -> list[tuple[Side, bytes]]:
        """A frame from the intranet."""
        side = self.red
        sent, got = self._arrive(side, frame)
        if got is None:
            return sent
        pkt, proto, src, dst, payload = got
        if dst == side.ip:  # to the gateway itself: echo requests are answered, nothing else
            if proto == PROTO_ICMP and payload[:1] == b"\x08" and not _csum(payload):
                reply = b"\0\0" + b"\0\0" + payload[4:]
                reply = reply[:2] + struct.pack("!H", _csum(reply)) + reply[4:]
                self.ident += 1
                return self._frame(side, src, _ip4(side.ip, src, PROTO_ICMP, reply, self.ident))
            return []
        if not (_in(src, self.cfg.local) and _in(dst, self.cfg.remote)):
            self._drop("policy", f"from {ipaddress.IPv4Address(src)} to {ipaddress.IPv4Address(dst)} (red)")
            return []
        inner = self._forwarded(pkt)
        if inner is None:
            return []
        if len(inner) + OVERHEAD > self.black.mtu:
            self._drop("too_big", f"{len(inner)} bytes cannot be sealed into one frame")
            return []
        esp = self.out.seal(inner, 4)
        self.counts["sealed"] += 1
        self.ident += 1
        return self._frame(self.black, self.cfg.peer, _ip4(self.black.ip, self.cfg.peer, PROTO_ESP, esp, self.ident))

    def from_black(self, frame: bytes) -> list[tuple[Side, bytes]]:
        """A frame from the outer wire."""
        side = self.black
        sent, got = self._arrive(side, frame)
        if got is None:
            return sent
        _pkt, proto, src, dst, payload = got
        if dst != side.ip:
            return []
        if proto != PROTO_ESP or src != self.cfg.peer:
            self._drop("plaintext", f"protocol {proto} from {ipaddress.IPv4Address(src)}")
            return []
        seq = struct.unpack_from("!I", payload, 4)[0] if len(payload) >= 8 else 0
        verdict, inner, _nh = self.inb.open(payload)
        if verdict != "ok":
            self._drop(verdict, f"ESP seq {seq} from {ipaddress.IPv4Address(src)}")
            return []
        self.counts["opened"] += 1
        head = self._ip(bytes(14) + inner)
        if head is None:
            self._drop("malformed", "the inner packet")
            return []
        pkt, _proto, isrc, idst, _payload = head
        if not (_in(isrc, self.cfg.remote) and _in(idst, self.cfg.local)):
            self._drop("policy", f"inner {ipaddress.IPv4Address(isrc)} to {ipaddress.IPv4Address(idst)}")
            return []
        fwd = self._forwarded(pkt)
        if fwd is None:
            return []
        return self._frame(self.red, idst, fwd)

    def _drop(self, why: str, what: str) -> None:
        self.counts[why] += 1
        self.log.append(f"vpn: dropped {why}: {what}")

    def stats(self) -> str:
        c = self.counts
        return " ".join(f"{k}={v}" for k, v in c.items())


async def main(env: Env, config: str) -> int:
    """The program (``l4sim.drivers.vpn:main``): capabilities ``red`` and ``black`` (NET
    channels: a switch port, a NIC server), optionally ``ctl`` (served: the counters); the
    argument is the configuration."""
    try:
        cfg = Config.parse(config)
    except ValueError as e:
        await env.print(str(e))
        return 1
    gw = Gateway(cfg)
    heap = env.heap  # type: ignore[attr-defined]
    base = (heap[0] + 4095) & ~4095
    red = await NetClient.open(env, env.cap("red", Gate), base)
    black = await NetClient.open(env, env.cap("black", Gate), base + 4096)
    gw.red.mac, gw.black.mac = red.mac, black.mac
    timing = {"packets": 0, "ns": 0}
    prio = (await env.scheduler.info())[1]  # the side threads: the highest the scheduler allows
    await env.print(f"vpn: red {ipaddress.IPv4Address(cfg.red[0])}/{cfg.red[1]} ({red.mac.hex(':')}), black "
                    f"{ipaddress.IPv4Address(cfg.black[0])}/{cfg.black[1]} ({black.mac.hex(':')}), tunnel to "
                    f"{ipaddress.IPv4Address(cfg.peer)}")
    sessions = {"red": red.session.slot, "black": black.session.slot}
    await env.spawn(_side, gw, "black", sessions, base + 2 * 4096, timing, name="vpn.black", prio=prio)
    if env.has("ctl"):
        await env.spawn(_control, gw, timing, base + 4 * 4096, name="vpn.ctl", prio=prio)
    await _side(env, gw, "red", sessions, base + 6 * 4096, timing)
    return 0


async def _side(env: Env, gw: Gateway, name: str, sessions: dict[str, int], buf: int,
                timing: dict[str, int]) -> None:
    """A thread serving one side: receive a frame, seal or open it, send what comes of it
    (each thread with buffers of its own, on the two sessions ``main`` opened)."""
    await env.mem.write(buf, bytes(2 * 4096))
    ports = {"red": NetClient(env, Gate(env, sessions["red"]), gw.red.mac, buf),
             "black": NetClient(env, Gate(env, sessions["black"]), gw.black.mac, buf + 4096)}
    rx = ports[name]
    handle = gw.from_red if name == "red" else gw.from_black
    while True:
        frame = await rx.recv()
        if frame is None:  # the session is gone (its server ended): this side is done
            await env.print(f"vpn: the {name} side's session ended")
            return
        t0 = await env.clock()
        sealed, opened = gw.counts["sealed"], gw.counts["opened"]
        out = handle(frame)
        if gw.counts["sealed"] != sealed or gw.counts["opened"] != opened:
            await env.compute(CRYPTO_NS + CRYPTO_NS_PER_BYTE * len(frame))
        for side, f in out:
            if len(f) <= MAX_FRAME:
                await ports[side.name].send(f)
        if gw.counts["sealed"] != sealed or gw.counts["opened"] != opened:
            timing["packets"] += 1
            timing["ns"] += await env.clock() - t0
        while gw.log:
            await env.print(gw.log.pop(0))


async def _control(env: Env, gw: Gateway, timing: dict[str, int], buf: int) -> None:
    """The control channel: each call (whatever it carries: a request's bytes land in a
    receive buffer and are not read) gets the counters and the mean added latency in
    simulated nanoseconds as text."""
    ctl = env.cap("ctl", Gate)
    await ctl.bind(env.thread, 0x10)
    await env.mem.write(buf, bytes(4096))
    rcv = (StrBuf(buf + 2048, 2048),)
    msg = await env.wait(rcv=rcv)
    while True:
        if msg.error:
            msg = await env.wait(rcv=rcv)
            continue
        n = timing["packets"]
        text = (f"{gw.stats()} latency_ns={timing['ns'] // n if n else 0} packets={n}\n").encode()
        await env.mem.write(buf, text)
        msg = await env.reply_and_wait(0, len(text), items=(StrItem(buf, len(text)),), rcv=rcv)
