"""The network stack of the Linux personality: interfaces, neighbours, IPv4 and IPv6, ICMP,
UDP and TCP demultiplexing, an ESP tunnel, and the timers -- all in simulated time.

Every personality has one (:class:`Stack`, a facility made when first used): ``lo``
(127.0.0.1/8 and ::1, MTU 65536) always, and for a Linux instance of a startup script the
interfaces its script names (``linux(..., net={"eth0": {...}})``, docs/runtime.md §4.9), each
on a port of the switch through the stub driver (:mod:`l4sim.linux.net.driver`).

How a packet travels (Linux's names in brackets):

- **out** (``ip_queue_xmit``): :meth:`Stack.send_ip` picks the route (a local address goes
  through ``lo``, then the interface whose prefix holds the destination, then an ESP
  tunnel's remote network, then the default gateway) and the source address; ``lo`` puts
  the packet on the loopback queue; an Ethernet interface first seals it into ESP when the
  interface's tunnel covers the destination, then finds the next hop's MAC (ARP for IPv4,
  neighbour solicitation for IPv6: the packet waits, the request is sent again after a
  second, three times, then the sender gets "host unreachable") and queues the frame;
- **in** (``netif_receive_skb``): frames from the driver's receiver and packets from the
  loopback queue go through :meth:`Stack.input`: ARP and neighbour discovery answered,
  IPv4/IPv6 for one of our addresses delivered -- ESP opened (a packet from the tunnel's
  remote network that did not come through it is dropped: the tunnel's policy), ICMP echo
  answered and every ICMP message shown to raw sockets, ICMP errors given to the socket
  they concern, UDP to its socket (or "port unreachable"), TCP to its connection, to a
  listener (a SYN) or answered with RST.  Nothing is forwarded.

:func:`run` is what the personality's loop calls when :func:`pending` says there is work:
it reads the clock, fires due timers (TCP's, neighbours'), drains the input queues, collects
the connections' segments, repeats until loopback traffic has settled, then hands the
frames to the driver.  The stack's random numbers (initial sequence numbers, the first
ephemeral port) come from its own generator seeded from the instance's seed.

The sockets are :class:`l4sim.linux.net.sock.InetSocket`; the stack keeps them in its
tables (bound ports, listeners, UDP and raw sockets) and tells them of arrivals.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from l4sim.linux.net import wire as w
from l4sim.linux.net.tcp import State, Tcb
from l4sim.linux.state import Facility, Personality, Special

if TYPE_CHECKING:
    from l4sim.drivers.esp import Inbound, Outbound
    from l4sim.linux.net.driver import Driver, Port
    from l4sim.linux.net.sock import InetSocket

#: the label of the Irq through which the driver's receivers wake the serving thread (no
#: thread's label: those are tid << 2; the keyboard's is 1 << 62, the /dev/l4 workers' 1 << 61,
#: the display's 1 << 60)
IRQ_LABEL = 1 << 59
LO_MTU, ETH_MTU = 65536, 1500
#: net.ipv4.ip_local_port_range
EPHEMERAL = (32768, 60999)
#: a neighbour request is sent this often, this many times
NEIGH_RETRY, NEIGH_TRIES = 1_000_000_000, 3
#: the IPv4-mapped prefix (::ffff:0:0/96) and the loopback addresses
V4_MAPPED = bytes(10) + b"\xff\xff"
LOOPBACK4 = bytes([127, 0, 0, 1])
LOOPBACK6 = bytes(15) + b"\x01"
ANY6 = bytes(16)
IFF_UP, IFF_BROADCAST, IFF_LOOPBACK, IFF_RUNNING, IFF_MULTICAST = 0x1, 0x2, 0x8, 0x40, 0x1000
EHOSTUNREACH, ENETUNREACH, ECONNREFUSED = 113, 101, 111
#: Linux's default TTL and hop limit
TTL = 64
#: what ESP adds to a packet besides the outer IP header: SPI, sequence number and IV (16),
#: padding (at most 3), pad length and next header (2), the ICV (16)
ESP_OVERHEAD = 16 + 3 + 2 + 16


@dataclass(frozen=True)
class Addr:
    """An interface address: the address and its prefix length."""

    addr: bytes
    prefix: int

    def contains(self, a: bytes) -> bool:
        if len(a) != len(self.addr):
            return False
        bits = 8 * len(a)
        mask = ((1 << self.prefix) - 1) << (bits - self.prefix)
        return int.from_bytes(a, "big") & mask == int.from_bytes(self.addr, "big") & mask

    @property
    def broadcast(self) -> bytes:
        """The subnet's broadcast address (IPv4)."""
        host = (1 << (32 - self.prefix)) - 1
        return (int.from_bytes(self.addr, "big") | host).to_bytes(4, "big")

    @property
    def netmask(self) -> bytes:
        bits = 8 * len(self.addr)
        return (((1 << self.prefix) - 1) << (bits - self.prefix)).to_bytes(len(self.addr), "big")


@dataclass(eq=False)
class Tunnel:
    """An ESP tunnel of an interface (``ip xfrm`` policy and states in one): packets to
    ``remote`` are sealed and sent to ``peer``; ESP from ``peer`` is opened, and packets
    from ``remote`` are taken only through it."""

    peer: bytes
    remote: Addr
    out: Outbound
    inb: Inbound


@dataclass(eq=False)
class Pending:
    """Packets waiting for a neighbour's MAC address."""

    packets: list[bytes] = field(default_factory=list)
    tries: int = 0
    at: int = 0


class Iface:
    """A network interface: ``lo``, or an Ethernet interface on a port of the switch."""

    def __init__(self, name: str, index: int, mac: bytes, mtu: int, port: Port | None) -> None:
        self.name = name
        self.index = index
        self.mac = mac
        self.mtu = mtu
        self.port = port
        self.loopback = port is None
        self.flags = IFF_UP | IFF_RUNNING | (IFF_LOOPBACK if port is None else IFF_BROADCAST | IFF_MULTICAST)
        self.addrs: list[Addr] = []
        self.gw4: bytes | None = None
        self.gw6: bytes | None = None
        self.tunnel: Tunnel | None = None
        #: the neighbour table (IPv4 and IPv6 addresses -> MAC) and packets waiting for an entry
        self.neigh: dict[bytes, bytes] = {}
        self.pending: dict[bytes, Pending] = {}
        self.txq: deque[bytes] = deque()
        self.stats = {"rx_packets": 0, "rx_bytes": 0, "tx_packets": 0, "tx_bytes": 0, "rx_dropped": 0,
                      "tx_dropped": 0}

    def v4(self) -> list[Addr]:
        return [a for a in self.addrs if len(a.addr) == 4]

    def v6(self) -> list[Addr]:
        return [a for a in self.addrs if len(a.addr) == 16]

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


@dataclass(eq=False)
class Binding:
    """A socket's (or a lingering connection's) claim on a port: its family (4, or 6 with or
    without IPV6_V6ONLY), its address (b"": any), SO_REUSEADDR and SO_REUSEPORT, listening."""

    proto: int
    port: int
    family: int
    v6only: bool
    addr: bytes
    reuse: bool
    reuseport: bool
    listening: bool = False


def _overlap(a: Binding, b: Binding) -> bool:
    """Two bindings of a port would take the same packets."""
    if a.addr and b.addr:
        return a.addr == b.addr
    if not a.addr and not b.addr:
        return a.family == b.family or (a.family == 6 and not a.v6only) or (b.family == 6 and not b.v6only)
    wild, spec = (a, b) if not a.addr else (b, a)
    if len(spec.addr) == 4:
        return wild.family == 4 or not wild.v6only
    return wild.family == 6


def conflict(new: Binding, old: Binding) -> bool:
    """Linux's ``inet_csk_bind_conflict``: an overlapping claim conflicts unless both set
    SO_REUSEPORT, or both set SO_REUSEADDR and the old one is not listening (a connection in
    TIME_WAIT, a bound socket) -- for UDP, both setting SO_REUSEADDR is enough."""
    if not _overlap(new, old):
        return False
    if new.reuseport and old.reuseport:
        return False
    return not (new.reuse and old.reuse and (new.proto == w.PROTO_UDP or not old.listening))


def accepts_sock(s: InetSocket, dst: bytes) -> bool:
    """``s`` (bound to ``laddr``; b"": any address) takes packets to ``dst``: an IPv6 socket
    takes IPv4 packets too unless IPV6_V6ONLY."""
    if s.laddr:
        return s.laddr == dst
    if len(dst) == 4:
        return s.family == 4 or not s.v6only
    return s.family == 6


class Stack(Facility):
    """The stack's state (see the module)."""

    def __init__(self) -> None:
        self.k: Personality | None = None
        self.rng = random.Random(0)
        lo = Iface("lo", 1, bytes(6), LO_MTU, None)
        lo.addrs = [Addr(LOOPBACK4, 8), Addr(LOOPBACK6, 128)]
        self.ifaces: list[Iface] = [lo]
        self.lo = lo
        self.driver: Driver | None = None
        #: packets looped back (version-tagged by their first nibble)
        self.loopq: deque[bytes] = deque()
        #: connections with segments to send
        self.dirty: list[Tcb] = []
        #: established and embryonic connections by (local address, port, remote address, port)
        self.conns: dict[tuple[bytes, int, bytes, int], Tcb] = {}
        #: claims on ports: (protocol, port) -> bindings
        self.bound: dict[tuple[int, int], list[Binding]] = {}
        self.listeners: dict[int, list[InetSocket]] = {}
        self.udp: dict[int, list[InetSocket]] = {}
        self.raw: list[InetSocket] = []
        self.ping: dict[tuple[int, int], InetSocket] = {}
        self.next_port = EPHEMERAL[0]
        self.ident = 0
        #: /proc/net/snmp-like counters
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------ set-up
    def seed(self, seed: int) -> None:
        self.rng = random.Random(seed ^ 0x6E6574)  # "net": not the personality's own stream
        self.next_port = self.rng.randrange(*EPHEMERAL)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def iface(self, name: str) -> Iface | None:
        return next((i for i in self.ifaces if i.name == name), None)

    def wake(self, s: Special) -> None:
        """``s`` changed: wake the threads that wait on it."""
        if self.k is not None:
            s.changed(self.k)

    def now(self) -> int:
        return self.k.now_ns if self.k is not None else 0

    # ------------------------------------------------------------------ addresses and routes
    def local(self, a: bytes) -> bool:
        """``a`` is one of our addresses (127/8 is all ours)."""
        if len(a) == 4 and a[0] == 127:
            return True
        return any(x.addr == a for i in self.ifaces if i.up for x in i.addrs)

    def broadcast(self, a: bytes) -> bool:
        return a == b"\xff" * 4 or any(x.broadcast == a for i in self.ifaces for x in i.v4() if x.prefix < 31)

    def route(self, dst: bytes) -> tuple[Iface, bytes, bytes] | None:
        """(interface, next hop, source address) for ``dst``; None: no route (ENETUNREACH)."""
        if self.local(dst) or dst == LOOPBACK6:
            src = dst if not (len(dst) == 4 and dst[0] == 127) else LOOPBACK4
            return self.lo, dst, src
        six = len(dst) == 16
        eth = [i for i in self.ifaces if not i.loopback and i.up]
        if not six and dst == b"\xff" * 4:
            for i in eth:
                if i.v4():
                    return i, dst, i.v4()[0].addr
        for i in eth:
            for a in (i.v6() if six else i.v4()):
                if a.contains(dst):
                    return i, dst, a.addr
        for i in eth:
            t = i.tunnel
            if t is not None and t.remote.contains(dst):
                tsrc = next((a.addr for a in (i.v6() if six else i.v4())), None)
                if tsrc is not None:
                    return i, dst, tsrc
        for i in eth:
            gw = i.gw6 if six else i.gw4
            mine = i.v6() if six else i.v4()
            if gw is not None and mine:
                return i, gw, mine[0].addr
        return None

    def source_for(self, dst: bytes) -> bytes | None:
        r = self.route(dst)
        return r[2] if r is not None else None

    # ------------------------------------------------------------------ ports
    def claim(self, b: Binding) -> bool:
        """Claim ``b``'s port (False: a conflict, EADDRINUSE)."""
        others = self.bound.setdefault((b.proto, b.port), [])
        if any(conflict(b, o) for o in others if o is not b):
            return False
        if b not in others:
            others.append(b)
        return True

    def unclaim(self, b: Binding) -> None:
        others = self.bound.get((b.proto, b.port))
        if others is not None and b in others:
            others.remove(b)
            if not others:
                del self.bound[(b.proto, b.port)]

    def free_port(self, b: Binding) -> bool:
        """Give ``b`` an ephemeral port no other claim uses (False: all are taken)."""
        lo, hi = EPHEMERAL
        for _ in range(hi - lo + 1):
            port = self.next_port
            self.next_port = lo if port >= hi else port + 1
            if (b.proto, port) not in self.bound:
                b.port = port
                self.bound[(b.proto, port)] = [b]
                return True
        return False

    # ------------------------------------------------------------------ output
    def send_ip(self, src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int = TTL, tos: int = 0) -> int:
        """Send one packet from ``src`` (one of ours) to ``dst``: 0, or -ENETUNREACH."""
        r = self.route(dst)
        if r is None:
            self.count("OutNoRoutes")
            return -ENETUNREACH
        iface, hop, _ = r
        if len(dst) == 4:
            self.ident = (self.ident + 1) & 0xFFFF
            pkt = w.ip4(src, dst, proto, payload, ttl, self.ident, tos)
        else:
            pkt = w.ip6(src, dst, proto, payload, ttl, tos)
        self.xmit(iface, hop, pkt, dst)
        return 0

    def xmit(self, iface: Iface, hop: bytes, pkt: bytes, dst: bytes) -> None:
        """Put an IP packet on ``iface`` towards next hop ``hop`` (sealed into the tunnel
        first when it covers ``dst``)."""
        iface.stats["tx_packets"] += 1
        iface.stats["tx_bytes"] += len(pkt)
        if iface.loopback:
            self.loopq.append(pkt)
            return
        t = iface.tunnel
        if t is not None and t.remote.contains(dst):
            outer_src = next((a.addr for a in iface.addrs if len(a.addr) == len(t.peer)), None)
            if outer_src is None:
                iface.stats["tx_dropped"] += 1
                return
            esp = t.out.seal(pkt, 4 if pkt[0] >> 4 == 4 else 41)
            self.count("EspOut")
            r = self.route(t.peer)
            hop = r[1] if r is not None and r[0] is iface else t.peer
            if len(t.peer) == 4:
                self.ident = (self.ident + 1) & 0xFFFF
                pkt = w.ip4(outer_src, t.peer, w.PROTO_ESP, esp, TTL, self.ident)
            else:
                pkt = w.ip6(outer_src, t.peer, w.PROTO_ESP, esp)
        self._to_neighbour(iface, hop, pkt)

    def _to_neighbour(self, iface: Iface, hop: bytes, pkt: bytes) -> None:
        kind = w.ETH_IP if len(hop) == 4 else w.ETH_IP6
        if len(hop) == 4 and (hop == b"\xff" * 4 or any(a.broadcast == hop for a in iface.v4())):
            iface.txq.append(w.eth(w.BROADCAST_MAC, iface.mac, kind, pkt))
            return
        if len(hop) == 16 and hop[0] == 0xFF:
            iface.txq.append(w.eth(w.multicast_mac(hop), iface.mac, kind, pkt))
            return
        mac = iface.neigh.get(hop)
        if mac is not None:
            iface.txq.append(w.eth(mac, iface.mac, kind, pkt))
            return
        p = iface.pending.get(hop)
        if p is None:
            p = iface.pending[hop] = Pending()
            self._solicit(iface, hop, p)
        if len(p.packets) < 3:  # Linux's unres_qlen is larger; a few do here
            p.packets.append(pkt)
        else:
            iface.stats["tx_dropped"] += 1

    def _solicit(self, iface: Iface, hop: bytes, p: Pending) -> None:
        """Ask for ``hop``'s MAC: an ARP request, or a neighbour solicitation."""
        p.tries += 1
        p.at = self.now() + NEIGH_RETRY
        if len(hop) == 4:
            src = next((a.addr for a in iface.v4()), bytes(4))
            iface.txq.append(w.eth(w.BROADCAST_MAC, iface.mac, w.ETH_ARP,
                                   w.arp(w.ARP_REQUEST, iface.mac, src, bytes(6), hop)))
        else:
            src6 = next((a.addr for a in iface.v6()), None)
            if src6 is None:
                return
            group = w.solicited_node(hop)
            body = w.icmp6(w.ND_SOLICIT, 0, bytes(4) + hop + b"\x01\x01" + iface.mac, src6, group)
            iface.txq.append(w.eth(w.multicast_mac(group), iface.mac, w.ETH_IP6, w.ip6(src6, group, w.PROTO_ICMP6,
                                                                                       body, 255)))

    def _resolved(self, iface: Iface, ip: bytes, mac: bytes) -> None:
        iface.neigh[ip] = mac
        p = iface.pending.pop(ip, None)
        if p is not None:
            for pkt in p.packets:
                iface.txq.append(w.eth(mac, iface.mac, w.ETH_IP if len(ip) == 4 else w.ETH_IP6, pkt))

    def _neigh_timers(self, now: int) -> None:
        for iface in self.ifaces:
            for hop, p in list(iface.pending.items()):
                if p.at > now:
                    continue
                if p.tries < NEIGH_TRIES:
                    self._solicit(iface, hop, p)
                    continue
                del iface.pending[hop]  # nobody answers: "host unreachable" to the senders
                for pkt in p.packets:
                    iface.stats["tx_dropped"] += 1
                    self._unreachable(pkt)

    def _unreachable(self, pkt: bytes) -> None:
        """An ICMP "host unreachable" to ourselves for a packet we could not deliver (Linux's
        ``ipv4_link_failure``)."""
        ip = w.parse_ip4(pkt, False) if pkt[0] >> 4 == 4 else w.parse_ip6(pkt)
        if ip is None:
            return
        quoted = pkt[: len(ip.header) + 8]
        if ip.version == 4:
            msg = w.icmp(w.ICMP_UNREACH, 1, bytes(4) + quoted)
            self.loopq.append(w.ip4(ip.src, ip.src, w.PROTO_ICMP, msg))
        else:
            msg = w.icmp6(w.ICMP6_UNREACH, 3, bytes(4) + quoted, ip.src, ip.src)
            self.loopq.append(w.ip6(ip.src, ip.src, w.PROTO_ICMP6, msg))

    # ------------------------------------------------------------------ input
    def input_frame(self, iface: Iface, frame: bytes) -> None:
        e = w.parse_eth(frame)
        if e is None:
            return
        dst, src, kind, payload = e
        if dst != iface.mac and not dst[0] & 1:
            return  # another station's frame the switch flooded
        iface.stats["rx_packets"] += 1
        iface.stats["rx_bytes"] += len(frame)
        if kind == w.ETH_ARP:
            self._arp(iface, payload)
        elif kind == w.ETH_IP:
            ip = w.parse_ip4(payload)
            if ip is not None:
                self.input_ip(iface, ip, src)
        elif kind == w.ETH_IP6:
            ip = w.parse_ip6(payload)
            if ip is not None:
                self.input_ip(iface, ip, src)

    def _arp(self, iface: Iface, data: bytes) -> None:
        a = w.parse_arp(data)
        if a is None:
            return
        op, sha, spa, _tha, tpa = a
        mine = any(x.addr == tpa for x in iface.v4())
        if mine or spa in iface.neigh or spa in iface.pending:
            self._resolved(iface, spa, sha)
        if op == w.ARP_REQUEST and mine:
            iface.txq.append(w.eth(sha, iface.mac, w.ETH_ARP, w.arp(w.ARP_REPLY, iface.mac, tpa, sha, spa)))

    def input_loop(self, pkt: bytes) -> None:
        ip = w.parse_ip4(pkt, False) if pkt[0] >> 4 == 4 else w.parse_ip6(pkt)
        if ip is not None:
            self.lo.stats["rx_packets"] += 1
            self.lo.stats["rx_bytes"] += len(pkt)
            self.input_ip(self.lo, ip, None)

    def input_ip(self, iface: Iface, ip: w.Ip, mac: bytes | None, tunnelled: bool = False) -> None:
        """An IP packet that came in on ``iface`` (from ``mac``, None on lo)."""
        if ip.version == 6 and ip.proto == w.PROTO_ICMP6 and ip.payload[:1] in (bytes([w.ND_SOLICIT]),
                                                                              bytes([w.ND_ADVERT])):
            self._ndp(iface, ip)
            return
        if not (self.local(ip.dst) or (ip.version == 4 and self.broadcast(ip.dst))):
            self.count("InAddrErrors")
            return
        t = iface.tunnel
        if t is not None:
            if ip.proto == w.PROTO_ESP and ip.src == t.peer:
                verdict, inner, _nh = t.inb.open(ip.payload)
                self.count(f"Esp{verdict.capitalize()}")
                if verdict != "ok" or not inner:
                    return
                got = w.parse_ip4(inner) if inner[0] >> 4 == 4 else w.parse_ip6(inner)
                if got is not None and t.remote.contains(got.src):
                    self.input_ip(iface, got, mac, tunnelled=True)
                return
            if t.remote.contains(ip.src) and not tunnelled:
                self.count("EspPolicyDrops")  # the remote network speaks only through the tunnel
                return
        self.count("InDelivers")
        if ip.proto == w.PROTO_TCP:
            self._tcp(iface, ip)
        elif ip.proto == w.PROTO_UDP:
            self._udp(iface, ip)
        elif ip.proto in (w.PROTO_ICMP, w.PROTO_ICMP6):
            self._icmp(iface, ip)
        else:
            self.count("InUnknownProtos")

    def _ndp(self, iface: Iface, ip: w.Ip) -> None:
        body = ip.payload
        if len(body) < 24 or w.checksum(body, w.pseudo(ip.src, ip.dst, w.PROTO_ICMP6, len(body))):
            return
        kind, target = body[0], body[8:24]
        lladdr = None
        at = 24
        while at + 8 <= len(body):
            olen = body[at + 1] * 8
            if olen == 0:
                break
            if body[at] in (1, 2) and olen >= 8:
                lladdr = body[at + 2 : at + 8]
            at += olen
        mine = any(x.addr == target for x in iface.v6())
        if kind == w.ND_SOLICIT and mine:
            if lladdr is not None and ip.src != ANY6:
                self._resolved(iface, ip.src, lladdr)
            na = w.icmp6(w.ND_ADVERT, 0, struct.pack("!I", 0x6000_0000) + target + b"\x02\x01" + iface.mac,
                         target, ip.src)
            iface.txq.append(w.eth(lladdr or w.multicast_mac(ip.src), iface.mac, w.ETH_IP6,
                                   w.ip6(target, ip.src, w.PROTO_ICMP6, na, 255)))
        elif kind == w.ND_ADVERT and lladdr is not None:
            self._resolved(iface, target, lladdr)

    # --- ICMP
    def _icmp(self, iface: Iface, ip: w.Ip) -> None:
        body = ip.payload
        v6 = ip.version == 6
        if len(body) < 8:
            return
        if (w.checksum(body, w.pseudo(ip.src, ip.dst, w.PROTO_ICMP6, len(body))) if v6 else w.checksum(body)) \
                and not iface.loopback:
            return
        kind = body[0]
        for s in list(self.raw):  # raw sockets see every message (IPv4: with its header)
            if s.family == (6 if v6 else 4) and s.raw_wants(ip):
                s.take_raw(ip)
        if kind == (w.ICMP6_ECHO if v6 else w.ICMP_ECHO) and not (not v6 and self.broadcast(ip.dst)):
            self.count("IcmpInEchos")
            rest = body[4:]
            if v6:
                self.send_ip(ip.dst, ip.src, w.PROTO_ICMP6, w.icmp6(w.ICMP6_ECHOREPLY, 0, rest, ip.dst, ip.src))
            else:
                self.send_ip(ip.dst, ip.src, w.PROTO_ICMP, w.icmp(w.ICMP_ECHOREPLY, 0, rest))
        elif kind == (w.ICMP6_ECHOREPLY if v6 else w.ICMP_ECHOREPLY):
            ident = struct.unpack_from("!H", body, 4)[0]
            ps = self.ping.get((6 if v6 else 4, ident))
            if ps is not None:
                ps.take_datagram(ip.src, 0, body, ip)
        elif kind == (w.ICMP6_UNREACH if v6 else w.ICMP_UNREACH):
            self._icmp_error(body, v6)

    def _icmp_error(self, body: bytes, v6: bool) -> None:
        """An ICMP "unreachable": its error goes to the socket whose packet it quotes."""
        code = body[1]
        quoted = body[8:]
        inner = w.parse_ip6(quoted) if v6 else w.parse_ip4(quoted + bytes(max(0, 28 - len(quoted))), False)
        if inner is None or len(inner.payload) < 4:
            return
        if v6:
            err = ECONNREFUSED if code == w.ICMP6_PORT_UNREACH else EHOSTUNREACH if code == 3 else ENETUNREACH
        else:
            err = ECONNREFUSED if code == w.ICMP_PORT_UNREACH else EHOSTUNREACH if code == 1 else ENETUNREACH
        sport, dport = struct.unpack_from("!HH", inner.payload)
        if inner.proto == w.PROTO_UDP:
            for s in self.udp.get(sport, []):
                if s.raddr == inner.dst and s.rport == dport:
                    s.set_error(err)
        elif inner.proto == w.PROTO_TCP:
            tcb = self.conns.get((inner.src, sport, inner.dst, dport))
            if tcb is not None and tcb.state in (State.SYN_SENT, State.SYN_RECEIVED):
                tcb.err = err  # a hard error while connecting (tcp_v4_err)
                tcb.abort(self.now())
                self.dirty.append(tcb)

    def icmp_reply_unreachable(self, ip: w.Ip, v6_code: int, v4_code: int) -> None:
        if ip.version == 4:
            quoted = ip.header + ip.payload[: 548 - len(ip.header)]
            self.send_ip(ip.dst, ip.src, w.PROTO_ICMP, w.icmp(w.ICMP_UNREACH, v4_code, bytes(4) + quoted))
        else:
            quoted = (ip.header + ip.payload)[:1232]
            self.send_ip(ip.dst, ip.src, w.PROTO_ICMP6, w.icmp6(w.ICMP6_UNREACH, v6_code, bytes(4) + quoted,
                                                                ip.dst, ip.src))

    # --- UDP
    def _udp(self, iface: Iface, ip: w.Ip) -> None:
        got = w.parse_udp(ip.payload, ip.src, ip.dst, not iface.loopback)
        if got is None:
            self.count("UdpInErrors")
            return
        sport, dport, data = got
        best: InetSocket | None = None
        score = -1
        for s in self.udp.get(dport, []):
            if not accepts_sock(s, ip.dst):
                continue
            if s.raddr is not None and (s.raddr != ip.src or s.rport != sport):
                continue
            sc = (2 if s.raddr is not None else 0) + (1 if s.laddr else 0)
            if sc > score:
                best, score = s, sc
        if best is None:
            self.count("UdpNoPorts")
            if not (ip.version == 4 and self.broadcast(ip.dst)):
                self.icmp_reply_unreachable(ip, w.ICMP6_PORT_UNREACH, w.ICMP_PORT_UNREACH)
            return
        self.count("UdpInDatagrams")
        best.take_datagram(ip.src, sport, data, ip)

    # --- TCP
    def _tcp(self, iface: Iface, ip: w.Ip) -> None:
        seg = w.parse_tcp(ip.payload, ip.src, ip.dst, not iface.loopback)
        if seg is None:
            self.count("TcpInErrs")
            return
        now = self.now()
        tcb = self.conns.get((ip.dst, seg.dport, ip.src, seg.sport))
        if tcb is not None:
            tcb.input(seg, now)
            self.dirty.append(tcb)
            return
        listener = self._listener(seg.dport, ip.dst)
        if listener is not None and seg.flags & (w.SYN | w.ACK | w.RST) == w.SYN:
            child = listener.embryo(ip.dst, seg.dport, ip.src, seg.sport, iface, seg, now)
            if child is not None:
                self.dirty.append(child)
            return
        if seg.flags & w.RST:
            return
        self.count("TcpOutRsts")  # nobody here: a reset (RFC 9293 §3.10.7.1)
        if seg.flags & w.ACK:
            rst = w.Seg(seg.dport, seg.sport, seg.ack, 0, w.RST, 0)
        else:
            rst = w.Seg(seg.dport, seg.sport, 0, (seg.seq + seg.length) & 0xFFFF_FFFF, w.RST | w.ACK, 0)
        self.send_ip(ip.dst, ip.src, w.PROTO_TCP, w.tcp(rst, ip.dst, ip.src))

    def _listener(self, port: int, dst: bytes) -> InetSocket | None:
        best = None
        for s in self.listeners.get(port, []):
            if accepts_sock(s, dst) and (best is None or s.laddr):
                best = s
        return best

    def add_conn(self, tcb: Tcb) -> None:
        self.conns[(tcb.local[0], tcb.local[1], tcb.remote[0], tcb.remote[1])] = tcb

    def drop_conn(self, tcb: Tcb) -> None:
        key = (tcb.local[0], tcb.local[1], tcb.remote[0], tcb.remote[1])
        if self.conns.get(key) is tcb:
            del self.conns[key]

    def new_iss(self) -> int:
        return self.rng.getrandbits(32)

    def mtu_for(self, iface: Iface, dst: bytes) -> int:
        """The largest packet to ``dst`` through ``iface``: its MTU, less ESP's overhead when
        its tunnel seals the packet (the outer header, ESP's header and IV, padding, trailer
        and ICV: Linux's xfrm lowers the route's MTU the same way)."""
        t = iface.tunnel
        if t is not None and t.remote.contains(dst):
            return iface.mtu - (ESP_OVERHEAD + (20 if len(t.peer) == 4 else 40))
        return iface.mtu

    def mss_for(self, dst: bytes) -> int:
        """The MSS we announce towards ``dst``: the route's MTU (at most an IP packet's 65535
        bytes) less the IP and TCP headers."""
        r = self.route(dst)
        mtu = min(self.mtu_for(r[0], dst) if r is not None else ETH_MTU, 0xFFFF)
        return mtu - (40 if len(dst) == 4 else 60)

    # ------------------------------------------------------------------ the loop's work
    def deadline(self) -> int | None:
        """The earliest time a timer of the stack is due (None: no timer runs)."""
        times = [t for tcb in self.conns.values() if (t := tcb.deadline()) is not None]
        times += [p.at for i in self.ifaces for p in i.pending.values()]
        return min(times) if times else None

    def busy(self, now: int) -> bool:
        if self.loopq or self.dirty or any(i.txq for i in self.ifaces):
            return True
        if self.driver is not None and any(p.rxq for p in self.driver.ports):
            return True
        at = self.deadline()
        return at is not None and at <= now

    def flush_conns(self) -> None:
        """The segments the connections want to send, into IP."""
        while self.dirty:
            tcb = self.dirty.pop(0)
            out, tcb.out = tcb.out, []
            for seg in out:
                self.send_ip(tcb.local[0], tcb.remote[0], w.PROTO_TCP, w.tcp(seg, tcb.local[0], tcb.remote[0]))
            if tcb.state is State.CLOSED:
                self.drop_conn(tcb)

    def tick(self, now: int) -> None:
        for tcb in list(self.conns.values()):
            at = tcb.deadline()
            if at is not None and at <= now:
                tcb.tick(now)
                self.dirty.append(tcb)
        self._neigh_timers(now)


# --------------------------------------------------------------------------- the personality's side
def active(k: Personality) -> Stack | None:
    """The personality's stack, if it has one yet."""
    s = k.facilities.get(Stack)
    return s if isinstance(s, Stack) else None


def of(k: Personality) -> Stack:
    """The personality's stack (made with ``lo`` when first asked for)."""
    st = k.facility(Stack)
    if st.k is None:
        st.k = k
        st.seed(k.cfg.seed)
    return st


def pending(k: Personality) -> bool:
    """The stack has work: frames or packets to take or send, a timer due."""
    st = active(k)
    return st is not None and st.busy(k.now_ns)


def deadline(k: Personality) -> int | None:
    st = active(k)
    return st.deadline() if st is not None else None


def received(k: Personality) -> None:
    """The receivers' Irq: their queues are drained by the next :func:`run`."""
    st = active(k)
    if st is not None and st.driver is not None:
        for p in st.driver.ports:
            p.signalled = False


async def run(k: Personality) -> None:
    """Do the stack's work (see the module): timers, input, output, until loopback traffic has
    settled; then the frames go to the driver."""
    st = active(k)
    if st is None:
        return
    k.now_ns = int(await k.env.clock())
    now = k.now_ns
    ports = {id(i.port): i for i in st.ifaces if i.port is not None}
    for _ in range(10_000):
        _guarded(k, st.tick, now)
        if st.driver is not None:
            for p in st.driver.ports:
                iface = ports.get(id(p))
                while p.rxq:
                    frame = p.rxq.popleft()
                    if iface is not None:
                        _guarded(k, st.input_frame, iface, frame)
        while st.loopq:
            _guarded(k, st.input_loop, st.loopq.popleft())
            _guarded(k, st.flush_conns)
        _guarded(k, st.flush_conns)
        if not st.loopq and not (st.driver is not None and any(p.rxq for p in st.driver.ports)):
            break
    for iface in st.ifaces:
        if iface.txq and iface.port is not None:
            from l4sim.linux.net.driver import (
                transmit,  # (only a system with interfaces has a driver)
            )

            while iface.txq:
                await transmit(iface.port, iface.txq.popleft())
        iface.txq.clear()


def _guarded(k: Personality, fn: Any, *args: Any) -> None:
    """``fn(*args)``; an exception (a bug of the stack, or a limit it met) costs the packet or
    the timer it was handling, and one line on the console says so -- the personality and
    every process run on, as :func:`l4sim.linux.personality.contain` keeps them for a call."""
    try:
        fn(*args)
    except Exception as e:
        st = active(k)
        if st is not None:
            st.dirty.clear()
            st.count("InternalErrors")
        text = " ".join(str(e).split())
        k.console_out.append((2, f"l4sim: internal error in the network stack: {type(e).__name__}"
                                 f"{': ' + text if text else ''}\n".encode()))


async def setup(k: Personality) -> None:
    """Bring up the instance's interfaces (``Config.net``): a session on each port, its
    addresses, routes and tunnel.  Nothing for a personality without them (``lo`` is made
    when a socket first needs the stack)."""
    cfg: Any = getattr(k.cfg, "net", None)
    if not cfg:
        return
    from l4sim.drivers.esp import Inbound, Outbound
    from l4sim.linux.net.driver import Driver, attach

    st = of(k)
    env = k.env
    irq = await env.factory.create_irq()
    await irq.attach(env.thread, IRQ_LABEL)
    st.driver = Driver(irq)
    for n, spec in enumerate(cfg.ifaces):
        port = await attach(k, st.driver, spec.name, spec.cap)
        iface = Iface(spec.name, 2 + n, port.mac, spec.mtu, port)
        iface.addrs = [Addr(ipaddress.ip_interface(a).ip.packed, ipaddress.ip_interface(a).network.prefixlen)
                       for a in spec.addrs]
        iface.gw4 = ipaddress.ip_address(spec.gw4).packed if spec.gw4 else None
        iface.gw6 = ipaddress.ip_address(spec.gw6).packed if spec.gw6 else None
        if spec.esp is not None:
            e = spec.esp
            net = ipaddress.ip_network(e.remote)
            iface.tunnel = Tunnel(ipaddress.ip_address(e.peer).packed, Addr(net.network_address.packed, net.prefixlen),
                                  Outbound(e.spi_out, e.key_out), Inbound(e.spi_in, e.key_in))
        st.ifaces.append(iface)
