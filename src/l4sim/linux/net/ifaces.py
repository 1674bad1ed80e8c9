"""What a program learns of the interfaces: the ``SIOCGIF*`` ioctls and ``/proc/net``.

busybox ``ifconfig`` reads ``/proc/net/dev`` and ``/proc/net/if_inet6`` and asks each
interface's flags, MAC, MTU and addresses with ioctls on any socket; ``route`` and
``netstat`` read ``/proc/net/route``, ``tcp``, ``udp`` (and ``tcp6``, ``udp6``), ``arp``.
The formats are Linux's (net/core/net-procfs.c, net/ipv6/addrconf.c, net/ipv4/fib_trie.c,
tcp_ipv4.c, udp.c, arp.c).  ``ip`` uses netlink instead (:mod:`l4sim.linux.net.netlink`).

``SIOCSIFADDR``, ``SIOCSIFNETMASK``, ``SIOCSIFFLAGS`` (up and down) and ``SIOCSIFMTU``
change an interface, as ``ifconfig eth0 10.0.0.5 netmask 255.255.255.0 up`` does.
"""

from __future__ import annotations

import struct

from l4sim.linux.net.stack import IFF_UP, Addr, Iface, Stack
from l4sim.linux.net.tcp import STATE_NUMBERS, State
from l4sim.linux.state import Personality, Proc

ENODEV, EFAULT, EINVAL, ENOTTY, EOPNOTSUPP, EADDRNOTAVAIL = 19, 14, 22, 25, 95, 99
SIOCGIFNAME, SIOCGIFCONF, SIOCGIFFLAGS, SIOCSIFFLAGS = 0x8910, 0x8912, 0x8913, 0x8914
SIOCGIFADDR, SIOCSIFADDR, SIOCGIFDSTADDR, SIOCGIFBRDADDR = 0x8915, 0x8916, 0x8917, 0x8919
SIOCGIFNETMASK, SIOCSIFNETMASK, SIOCGIFMETRIC, SIOCGIFMTU, SIOCSIFMTU = 0x891B, 0x891C, 0x891D, 0x8921, 0x8922
SIOCGIFHWADDR, SIOCGIFINDEX, SIOCGIFTXQLEN, SIOCETHTOOL, SIOCGIFMAP = 0x8927, 0x8933, 0x8942, 0x8946, 0x8970
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
AF_INET = 2
IFREQ = 40
#: the transmit queue length Linux gives Ethernet devices and lo
TXQLEN = 1000


def _sin(a: bytes) -> bytes:
    """A 16-byte sockaddr_in with port 0."""
    return struct.pack("<H", AF_INET) + bytes(2) + a + bytes(8)


async def if_ioctl(k: Personality, p: Proc, st: Stack, req: int, arg: int) -> int:
    """An interface ioctl on a socket: 0, or -errno (ENOTTY for one this is not)."""
    if req == SIOCGIFCONF:
        return await _ifconf(k, p, st, arg)
    if req == SIOCETHTOOL:
        return -EOPNOTSUPP
    if req not in _IFREQ:
        return -ENOTTY
    raw = await k.read(p, arg, IFREQ)
    if raw is None:
        return -EFAULT
    if req == SIOCGIFNAME:
        (index,) = struct.unpack_from("<i", raw, 16)
        iface = next((i for i in st.ifaces if i.index == index), None)
        if iface is None:
            return -ENODEV
        return 0 if await k.write(p, arg, iface.name.encode().ljust(16, b"\0")) else -EFAULT
    name = raw[:16].split(b"\0", 1)[0].decode("latin-1")
    iface = st.iface(name)
    if iface is None:
        return -ENODEV
    r = _get(iface, req) if req in _GETS else _set(iface, req, raw[16:])
    if isinstance(r, int):
        return r
    return 0 if await k.write(p, arg + 16, r) else -EFAULT


async def _ifconf(k: Personality, p: Proc, st: Stack, arg: int) -> int:
    raw = await k.read(p, arg, 16)
    if raw is None:
        return -EFAULT
    length, buf = struct.unpack("<i4xQ", raw)
    entries = [i.name.encode().ljust(16, b"\0") + _sin(i.v4()[0].addr).ljust(24, b"\0")
               for i in st.ifaces if i.v4() and i.up]
    if not buf:  # the length it needs
        return 0 if await k.write(p, arg, struct.pack("<i", IFREQ * len(entries))) else -EFAULT
    fit = entries[: max(0, length) // IFREQ]
    if fit and not await k.write(p, buf, b"".join(fit)):
        return -EFAULT
    return 0 if await k.write(p, arg, struct.pack("<i", IFREQ * len(fit))) else -EFAULT


_GETS = frozenset((SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFDSTADDR, SIOCGIFBRDADDR, SIOCGIFNETMASK, SIOCGIFMETRIC,
                   SIOCGIFMTU, SIOCGIFHWADDR, SIOCGIFINDEX, SIOCGIFTXQLEN, SIOCGIFMAP))
_IFREQ = _GETS | {SIOCGIFNAME, SIOCSIFFLAGS, SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFMTU}


def _get(iface: Iface, req: int) -> bytes | int:
    """The union part of the ifreq an ioctl fills in (24 bytes at most)."""
    v4 = iface.v4()
    if req == SIOCGIFFLAGS:
        return struct.pack("<H", iface.flags)
    if req in (SIOCGIFMETRIC, SIOCGIFMAP):
        return bytes(4) if req == SIOCGIFMETRIC else bytes(24)
    if req == SIOCGIFMTU:
        return struct.pack("<i", iface.mtu)
    if req == SIOCGIFINDEX:
        return struct.pack("<i", iface.index)
    if req == SIOCGIFTXQLEN:
        return struct.pack("<i", TXQLEN)
    if req == SIOCGIFHWADDR:
        return struct.pack("<H", ARPHRD_LOOPBACK if iface.loopback else ARPHRD_ETHER) + iface.mac + bytes(8)
    if not v4:
        return -EADDRNOTAVAIL
    a = v4[0]
    if req in (SIOCGIFADDR, SIOCGIFDSTADDR):
        return _sin(a.addr)
    if req == SIOCGIFBRDADDR:
        return _sin(a.broadcast if not iface.loopback else bytes(4))
    return _sin(a.netmask)


def _set(iface: Iface, req: int, data: bytes) -> bytes | int:
    if req == SIOCSIFFLAGS:
        (flags,) = struct.unpack_from("<H", data)
        iface.flags = (iface.flags & ~IFF_UP) | (flags & IFF_UP)
        return b""
    if req == SIOCSIFMTU:
        (mtu,) = struct.unpack_from("<i", data)
        if not 68 <= mtu <= (65536 if iface.loopback else 1500):
            return -EINVAL
        iface.mtu = mtu
        return b""
    family, addr = struct.unpack_from("<H2x4s", data)
    if family != AF_INET:
        return -EINVAL
    others = [a for a in iface.addrs if len(a.addr) != 4]
    old = iface.v4()
    if req == SIOCSIFADDR:
        prefix = old[0].prefix if old else 8 if addr[0] < 128 else 16 if addr[0] < 192 else 24
        iface.addrs = [Addr(addr, prefix), *old[1:], *others]
    else:
        if not old:
            return -EADDRNOTAVAIL
        n = int.from_bytes(addr, "big")
        prefix = bin(n).count("1")
        if n != ((1 << prefix) - 1) << (32 - prefix):
            return -EINVAL
        iface.addrs = [Addr(old[0].addr, prefix), *old[1:], *others]
    return b""


# --------------------------------------------------------------------------- /proc/net
def proc_net(st: Stack, name: str) -> bytes:
    """The text of ``/proc/net/NAME``."""
    if name == "dev":
        lines = ["Inter-|   Receive                                                |  Transmit",
                 " face |bytes    packets errs drop fifo frame compressed multicast"
                 "|bytes    packets errs drop fifo colls carrier compressed"]
        for i in st.ifaces:
            s = i.stats
            lines.append(f"{i.name:>6}: {s['rx_bytes']:7} {s['rx_packets']:7} {0:4} {s['rx_dropped']:4} {0:4} {0:5} "
                         f"{0:10} {0:9} {s['tx_bytes']:8} {s['tx_packets']:7} {0:4} {s['tx_dropped']:4} {0:4} "
                         f"{0:5} {0:7} {0:10}")
        return ("\n".join(lines) + "\n").encode()
    if name == "if_inet6":
        out = []
        for i in st.ifaces:
            for a in i.v6():
                scope = 0x10 if i.loopback else 0x20 if a.addr[:2] == b"\xfe\x80" else 0
                out.append(f"{a.addr.hex()} {i.index:02x} {a.prefix:02x} {scope:02x} 80 {i.name:>8}\n")
        return "".join(out).encode()
    if name == "route":
        out = ["Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\t\t"]
        for i in st.ifaces:
            if i.loopback:
                continue
            for a in i.v4():
                net = bytes(x & y for x, y in zip(a.addr, a.netmask, strict=True))
                out.append(f"{i.name}\t{_hex4(net)}\t00000000\t0001\t0\t0\t0\t{_hex4(a.netmask)}\t0\t0\t0")
            if i.gw4 is not None:
                out.append(f"{i.name}\t00000000\t{_hex4(i.gw4)}\t0003\t0\t0\t0\t00000000\t0\t0\t0")
        return ("\n".join(x.ljust(127) for x in out) + "\n").encode()
    if name == "arp":
        out = ["IP address       HW type     Flags       HW address            Mask     Device"]
        for i in st.ifaces:
            for ip, mac in i.neigh.items():
                if len(ip) == 4:
                    out.append(f"{'.'.join(map(str, ip)):<16} 0x1         0x2         {':'.join(f'{b:02x}' for b in mac)}"
                               f"     *        {i.name}")
        return ("\n".join(out) + "\n").encode()
    if name in ("tcp", "tcp6", "udp", "udp6"):
        return _sockets(st, name)
    return b""


def _hex4(a: bytes) -> str:
    """An IPv4 address as /proc/net shows it: the 32-bit word in host (little-endian) order."""
    return f"{int.from_bytes(a, 'little'):08X}"


def _hexaddr(a: bytes, six: bool) -> str:
    if not six:
        return _hex4(a)
    a = a if len(a) == 16 else bytes(10) + b"\xff\xff" + a
    return "".join(f"{int.from_bytes(a[i:i + 4], 'little'):08X}" for i in range(0, 16, 4))


def _sockets(st: Stack, name: str) -> bytes:
    six = name.endswith("6")
    width = 32 if six else 8
    head = (f"  sl  {'local_address':<{width + 5}} {'rem_address':<{width + 5}} st tx_queue rx_queue tr tm->when "
            f"retrnsmt   uid  timeout inode")
    rows: list[tuple[bytes, int, bytes, int, int, int, int]] = []
    if name.startswith("tcp"):
        for ls in st.listeners.values():
            for s in ls:
                if (s.family == 6) == six:
                    rows.append((s.laddr or bytes(16 if six else 4), s.lport, bytes(16 if six else 4), 0,
                                 STATE_NUMBERS[State.LISTEN], 0, len(s.accept_q)))
        for (la, lp, ra, rp), tcb in st.conns.items():
            if (len(la) == 16 or _v6_socket(tcb)) == six:
                rows.append((la, lp, ra, rp, STATE_NUMBERS[tcb.state], len(tcb.sndq), len(tcb.rcvq)))
    else:
        for us in st.udp.values():
            for u in us:
                if (u.family == 6) == six:
                    ra = u.raddr if u.raddr is not None else bytes(16 if six else 4)
                    rows.append((u.laddr or bytes(16 if six else 4), u.lport, ra, u.rport, 7 if u.raddr is None else 1,
                                 0, u.rmem))
    lines = [head]
    for n, (la, lp, ra, rp, state, txq, rxq) in enumerate(rows):
        if not six and (len(la) != 4 or len(ra) != 4):
            continue
        lines.append(f"{n:4}: {_hexaddr(la, six)}:{lp:04X} {_hexaddr(ra, six)}:{rp:04X} {state:02X} "
                     f"{txq:08X}:{rxq:08X} 00:00000000 00000000     0        0 0")
    return ("\n".join(lines) + "\n").encode()


def _v6_socket(tcb: object) -> bool:
    """A connection of an IPv6 socket over IPv4 (listed in tcp6 with ::ffff: addresses)."""
    b = getattr(tcb, "binding", None)
    return b is not None and getattr(b, "family", 4) == 6
