"""Netlink route sockets (``AF_NETLINK``, ``NETLINK_ROUTE``): what ``ip addr``, ``ip link``
and ``ip route`` read, and what glibc's ``getaddrinfo`` asks to learn which address
families are configured.

A request is a netlink message (``struct nlmsghdr``: length, type, flags, sequence, port);
the answers are queued on the socket as datagrams, in Linux's formats (rtnetlink(7)):

- ``RTM_GETLINK``: an ``RTM_NEWLINK`` per interface (``struct ifinfomsg`` and the attributes
  ``IFLA_IFNAME``, ``IFLA_ADDRESS``, ``IFLA_BROADCAST``, ``IFLA_MTU``, ``IFLA_TXQLEN``,
  ``IFLA_OPERSTATE``, ``IFLA_QDISC``), all of them for a dump or the one asked for;
- ``RTM_GETADDR``: an ``RTM_NEWADDR`` per address (``struct ifaddrmsg``, ``IFA_ADDRESS``,
  ``IFA_LOCAL``, ``IFA_BROADCAST``, ``IFA_LABEL``, ``IFA_FLAGS``);
- ``RTM_GETROUTE``: an ``RTM_NEWROUTE`` per route of the main table (connected prefixes, the
  default gateway);

a dump ends with ``NLMSG_DONE`` in a datagram of its own.  Any other request is answered with
``NLMSG_ERROR`` and ``EOPNOTSUPP``; a request that asked for an acknowledgment and succeeded,
with error 0.  The socket's port id is the process's pid unless it binds another.
"""

from __future__ import annotations

import struct
from collections import deque

from l4sim.linux.net.stack import IFF_LOOPBACK, Iface, Stack
from l4sim.linux.state import BLOCK, Personality, Proc, Special
from l4sim.linux.vfs import O_NONBLOCK, OFile

EAGAIN, EINVAL, EOPNOTSUPP = 11, 22, 95
AF_UNSPEC, AF_INET, AF_NETLINK, AF_INET6 = 0, 2, 16, 10
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE, RTM_GETROUTE = 16, 18, 20, 22, 24, 26
IFLA_ADDRESS, IFLA_BROADCAST, IFLA_IFNAME, IFLA_MTU, IFLA_QDISC, IFLA_TXQLEN, IFLA_OPERSTATE = 1, 2, 3, 4, 6, 13, 16
IFA_ADDRESS, IFA_LOCAL, IFA_LABEL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 3, 4, 8
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PREFSRC, RTA_TABLE = 1, 4, 5, 7, 15
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_HOST = 0, 253, 254
RT_TABLE_MAIN, RTPROT_KERNEL, RTPROT_BOOT, RTN_UNICAST = 254, 2, 3, 1
ARPHRD_ETHER, ARPHRD_LOOPBACK = 1, 772
NLHDR = struct.Struct("<IHHII")
S_IFSOCK = 0o140000


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("<HH", 4 + len(data), kind) + data
    return raw + bytes(-len(raw) % 4)


def _msg(kind: int, flags: int, seq: int, pid: int, body: bytes) -> bytes:
    raw = NLHDR.pack(NLHDR.size + len(body), kind, flags, seq, pid) + body
    return raw + bytes(-len(raw) % 4)


class NetlinkSocket(Special):
    """A NETLINK_ROUTE socket (see the module)."""

    def __init__(self, stack: Stack, pid: int) -> None:
        super().__init__(S_IFSOCK | 0o777)
        self.stack = stack
        self.pid = pid
        self.groups = 0
        self.queue: deque[bytes] = deque()
        self.rcvbuf = self.sndbuf = 212992

    # --- requests
    def request(self, data: bytes) -> int:
        """Answer the messages in ``data``; the bytes taken."""
        at = 0
        while at + NLHDR.size <= len(data):
            length, kind, flags, seq, _pid = NLHDR.unpack_from(data, at)
            if length < NLHDR.size or at + length > len(data):
                break
            body = data[at + NLHDR.size : at + length]
            self._one(kind, flags, seq, body)
            at += (length + 3) & ~3
        self.stack.wake(self)
        return len(data)

    def _one(self, kind: int, flags: int, seq: int, body: bytes) -> None:
        dump = flags & NLM_F_DUMP == NLM_F_DUMP
        family = body[0] if body else AF_UNSPEC
        st = self.stack
        if kind == RTM_GETLINK:
            index = struct.unpack_from("<i", body, 4)[0] if len(body) >= 8 else 0
            links = [i for i in st.ifaces if dump or i.index == index]
            if not links:
                self._error(seq, -19, body)  # ENODEV
                return
            self._answer([self._link(i) for i in links], RTM_NEWLINK, flags, seq, dump)
        elif kind == RTM_GETADDR:
            out = [self._addr(i, a.addr, a.prefix) for i in st.ifaces for a in i.addrs
                   if family in (AF_UNSPEC, AF_INET if len(a.addr) == 4 else AF_INET6)]
            self._answer(out, RTM_NEWADDR, flags, seq, True)
        elif kind == RTM_GETROUTE:
            self._answer(self._routes(family), RTM_NEWROUTE, flags, seq, True)
        else:
            self._error(seq, -EOPNOTSUPP, body)

    def _answer(self, bodies: list[bytes], kind: int, flags: int, seq: int, dump: bool) -> None:
        if not dump:
            for b in bodies:
                self.queue.append(_msg(kind, 0, seq, self.pid, b))
            if flags & NLM_F_ACK:
                self._error(seq, 0, b"")
            return
        if bodies:
            self.queue.append(b"".join(_msg(kind, NLM_F_MULTI, seq, self.pid, b) for b in bodies))
        self.queue.append(_msg(NLMSG_DONE, NLM_F_MULTI, seq, self.pid, struct.pack("<i", 0)))

    def _error(self, seq: int, err: int, body: bytes) -> None:
        req = NLHDR.pack(NLHDR.size + len(body), 0, 0, seq, self.pid)
        self.queue.append(_msg(NLMSG_ERROR, 0, seq, self.pid, struct.pack("<i", err) + req))

    def _link(self, i: Iface) -> bytes:
        lo = bool(i.flags & IFF_LOOPBACK)
        head = struct.pack("<BxHiII", AF_UNSPEC, ARPHRD_LOOPBACK if lo else ARPHRD_ETHER, i.index, i.flags, 0)
        return head + b"".join((
            _attr(IFLA_IFNAME, i.name.encode() + b"\0"),
            _attr(IFLA_TXQLEN, struct.pack("<I", 1000)),
            _attr(IFLA_OPERSTATE, bytes([0 if lo else 6 if i.up else 2])),
            _attr(IFLA_MTU, struct.pack("<I", i.mtu)),
            _attr(IFLA_QDISC, b"noqueue\0" if lo else b"pfifo_fast\0"),
            _attr(IFLA_ADDRESS, i.mac),
            _attr(IFLA_BROADCAST, bytes(6) if lo else b"\xff" * 6),
        ))

    def _addr(self, i: Iface, a: bytes, prefix: int) -> bytes:
        v4 = len(a) == 4
        scope = RT_SCOPE_HOST if i.loopback else RT_SCOPE_LINK if a[:2] == b"\xfe\x80" else RT_SCOPE_UNIVERSE
        head = struct.pack("<BBBBi", AF_INET if v4 else AF_INET6, prefix, IFA_F_PERMANENT, scope, i.index)
        attrs = [_attr(IFA_ADDRESS, a)]
        if v4:
            attrs.append(_attr(IFA_LOCAL, a))
            if not i.loopback and prefix < 31:
                host = (1 << (32 - prefix)) - 1
                attrs.append(_attr(IFA_BROADCAST, (int.from_bytes(a, "big") | host).to_bytes(4, "big")))
            attrs.append(_attr(IFA_LABEL, i.name.encode() + b"\0"))
        attrs.append(_attr(IFA_FLAGS, struct.pack("<I", IFA_F_PERMANENT)))
        return head + b"".join(attrs)

    def _routes(self, family: int) -> list[bytes]:
        out = []
        for i in self.stack.ifaces:
            if i.loopback:
                continue
            for a in i.addrs:
                fam = AF_INET if len(a.addr) == 4 else AF_INET6
                if family not in (AF_UNSPEC, fam):
                    continue
                n = int.from_bytes(a.addr, "big")
                bits = 8 * len(a.addr)
                net = (n & ~((1 << (bits - a.prefix)) - 1)).to_bytes(len(a.addr), "big")
                head = struct.pack("<BBBBBBBBI", fam, a.prefix, 0, 0, RT_TABLE_MAIN, RTPROT_KERNEL, RT_SCOPE_LINK,
                                   RTN_UNICAST, 0)
                out.append(head + _attr(RTA_TABLE, struct.pack("<I", RT_TABLE_MAIN)) + _attr(RTA_DST, net)
                           + _attr(RTA_PREFSRC, a.addr) + _attr(RTA_OIF, struct.pack("<I", i.index)))
            for gw in (i.gw4, i.gw6):
                if gw is None:
                    continue
                fam = AF_INET if len(gw) == 4 else AF_INET6
                if family not in (AF_UNSPEC, fam):
                    continue
                head = struct.pack("<BBBBBBBBI", fam, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                                   RTN_UNICAST, 0)
                out.append(head + _attr(RTA_TABLE, struct.pack("<I", RT_TABLE_MAIN)) + _attr(RTA_GATEWAY, gw)
                           + _attr(RTA_OIF, struct.pack("<I", i.index)))
        return out

    # --- the file's side
    def take(self, n: int, peek: bool, nonblock: bool, tid: int) -> tuple[bytes, int] | int:
        """The next datagram cut to ``n`` and its full length, -EAGAIN, or BLOCK."""
        if self.queue:
            d = self.queue[0] if peek else self.queue.popleft()
            return d[:n], len(d)
        if nonblock:
            return -EAGAIN
        self.waiters.add(tid)
        return BLOCK

    def sockname(self) -> bytes:
        return struct.pack("<HHII", AF_NETLINK, 0, self.pid, self.groups)

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        r = self.take(n, False, bool(f.flags & O_NONBLOCK), p.cur.tid)
        return r if isinstance(r, int) else r[0]

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        return self.request(data)

    def ready(self, k: Personality, f: OFile) -> int:
        return (0x1 | 0x40 if self.queue else 0) | 0x4 | 0x100

    def nread(self) -> int:
        return len(self.queue[0]) if self.queue else 0
