"""The socket system calls for the network: AF_INET, AF_INET6 and AF_NETLINK sockets.

These entries take the socket calls' places in the system-call table; a call on an AF_UNIX
socket (or ``socket(AF_UNIX, ...)``, ``socketpair``) goes on to :mod:`l4sim.linux.sockets`
unchanged.  The sockets themselves are :class:`~l4sim.linux.net.sock.InetSocket` and
:class:`~l4sim.linux.net.netlink.NetlinkSocket`; here are the calls' arguments and results:

- ``sockaddr_in`` (16 bytes) and ``sockaddr_in6`` (28; at least 24 taken), an IPv6 socket
  accepting ``sockaddr_in`` for connect and sendto as Linux's does, and reporting IPv4 peers
  as ``::ffff:a.b.c.d``;
- ``connect``: TCP waits for the handshake (EINPROGRESS when non-blocking, EALREADY while it
  is under way, EISCONN after; ``SO_SNDTIMEO`` ends the wait with EINPROGRESS as on Linux;
  ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH when it fails); a datagram socket takes the peer
  (``AF_UNSPEC``: forgets it);
- sends and receives with ``MSG_PEEK``, ``MSG_DONTWAIT``, ``MSG_WAITALL``, ``MSG_TRUNC``,
  ``MSG_NOSIGNAL`` (else EPIPE raises SIGPIPE), ``SO_RCVTIMEO``/``SO_SNDTIMEO`` (EAGAIN);
  ``recvmsg`` can carry ``IPV6_HOPLIMIT`` and ``IP_TTL`` as control messages;
- options: ``SOL_SOCKET`` (``SO_REUSEADDR``, ``SO_REUSEPORT``, ``SO_RCVBUF``, ``SO_SNDBUF``
  -- doubled, as Linux does --, the timeouts, ``SO_LINGER``, ``SO_KEEPALIVE``,
  ``SO_BROADCAST``, ``SO_ERROR``, ``SO_TYPE``, ``SO_DOMAIN``, ``SO_PROTOCOL``,
  ``SO_ACCEPTCONN``), ``IPPROTO_TCP`` (``TCP_NODELAY``, ``TCP_MAXSEG``, ``TCP_INFO``'s
  state and figures; the keepalive times and ``TCP_CORK`` are kept and change nothing),
  ``IPPROTO_IP`` (``IP_TTL``, ``IP_TOS``, ``IP_RECVERR``, ``IP_RECVTTL``),
  ``IPPROTO_IPV6`` (``IPV6_V6ONLY``, ``IPV6_UNICAST_HOPS``, ``IPV6_RECVHOPLIMIT``,
  ``IPV6_CHECKSUM``), ``IPPROTO_ICMPV6`` (``ICMP6_FILTER``); others ENOPROTOOPT.
"""

from __future__ import annotations

import struct

from l4sim.linux import sockets
from l4sim.linux.files import _broken_pipe, gather, iovecs, scatter
from l4sim.linux.net import stack as net
from l4sim.linux.net.netlink import NetlinkSocket
from l4sim.linux.net.sock import (
    EINPROGRESS,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    InetSocket,
)
from l4sim.linux.net.stack import V4_MAPPED
from l4sim.linux.net.tcp import STATE_NUMBERS, State
from l4sim.linux.sockets import (
    MSGHDR,
    SockCall,
    _st,
    _wait,
    each_mmsg,
    put_addr,
    read_timeo,
    timeo_bytes,
)
from l4sim.linux.state import BLOCK, Call, Personality, Proc, Special, get, install
from l4sim.linux.vfs import O_CLOEXEC, O_NONBLOCK, OFile

EPERM, EBADF, EAGAIN, EFAULT, EINVAL, ENOTSOCK, EMSGSIZE = 1, 9, 11, 14, 22, 88, 90
EPROTONOSUPPORT, ESOCKTNOSUPPORT, EOPNOTSUPP, EAFNOSUPPORT = 93, 94, 95, 97
ENOPROTOOPT, EISCONN, ENOTCONN, EALREADY, ECONNREFUSED, ENETUNREACH = 92, 106, 107, 114, 111, 101
AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 0, 1, 2, 10, 16
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6, IPPROTO_ICMPV6 = 0, 1, 6, 17, 41, 58
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x8, 0x20, 0x40
MSG_WAITALL, MSG_NOSIGNAL = 0x100, 0x4000
SOL_SOCKET = 1
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST, SO_SNDBUF, SO_RCVBUF = 2, 3, 4, 5, 6, 7, 8
SO_KEEPALIVE, SO_OOBINLINE, SO_PRIORITY, SO_LINGER, SO_REUSEPORT = 9, 10, 12, 13, 15
SO_RCVLOWAT, SO_SNDLOWAT, SO_RCVTIMEO, SO_SNDTIMEO, SO_BINDTODEVICE = 18, 19, 20, 21, 25
SO_TIMESTAMP, SO_ACCEPTCONN, SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_PROTOCOL, SO_DOMAIN = 29, 30, 32, 33, 38, 39
TCP_NODELAY, TCP_MAXSEG, TCP_CORK, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 1, 2, 3, 4, 5, 6
TCP_INFO, TCP_QUICKACK = 11, 12
IP_TOS, IP_TTL, IP_PKTINFO, IP_MTU_DISCOVER, IP_RECVERR, IP_RECVTTL = 1, 2, 8, 10, 11, 12
IP_MULTICAST_TTL, IP_MULTICAST_LOOP = 33, 34
IPV6_2292HOPLIMIT, IPV6_CHECKSUM, IPV6_UNICAST_HOPS, IPV6_MULTICAST_HOPS, IPV6_MTU_DISCOVER = 8, 7, 16, 18, 23
IPV6_V6ONLY, IPV6_RECVERR, IPV6_RECVPKTINFO, IPV6_RECVHOPLIMIT, IPV6_HOPLIMIT, IPV6_TCLASS = 26, 25, 49, 51, 52, 67
ICMP6_FILTER = 1
BUF_MAX, SNDBUF_MIN, RCVBUF_MIN = 212992, 4608, 2304
CMSGHDR = struct.Struct("<Qii")


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _node(p: Proc, fd: int) -> tuple[Special, OFile] | int:
    f = get(p, fd)
    if f is None:
        return -EBADF
    if isinstance(f.node, (InetSocket, NetlinkSocket, sockets.Socket)):
        return f.node, f
    return -ENOTSOCK


def _inet(p: Proc, fd: int) -> tuple[InetSocket, OFile] | None:
    f = get(p, fd)
    return (f.node, f) if f is not None and isinstance(f.node, InetSocket) else None


def _netlink(p: Proc, fd: int) -> tuple[NetlinkSocket, OFile] | None:
    f = get(p, fd)
    return (f.node, f) if f is not None and isinstance(f.node, NetlinkSocket) else None


# --------------------------------------------------------------------------- addresses
async def _read_sockaddr(k: Personality, p: Proc, s: InetSocket, addr: int, alen: int,
                         for_bind: bool = False) -> tuple[bytes, int] | int:
    """(address, port) of a sockaddr for ``s`` (b"": the wildcard), or -errno."""
    if alen < 2 or alen > 128:
        return -EINVAL
    raw = await k.read(p, addr, min(alen, 28))
    if raw is None:
        return -EFAULT
    (fam,) = struct.unpack_from("<H", raw)
    if fam == AF_INET or (fam == AF_UNSPEC and s.family == 4 and for_bind):
        if alen < 16:
            return -EINVAL
        if s.family == 6 and (for_bind or s.v6only):
            return -EINVAL if for_bind else -ENETUNREACH if s.what == "tcp" else -EAFNOSUPPORT
        port, a = struct.unpack_from("!H4s", raw, 2)
        if fam == AF_UNSPEC and a != bytes(4):
            return -EAFNOSUPPORT
        return (b"" if a == bytes(4) and for_bind else a), port
    if fam == AF_INET6:
        if s.family == 4:
            return -EAFNOSUPPORT
        if alen < 24:
            return -EINVAL
        port, a = struct.unpack_from("!H4x16s", raw, 2)
        if a[:12] == V4_MAPPED:
            if s.v6only:
                return -EINVAL if for_bind else -ENETUNREACH
            a = a[12:]
            return (b"" if a == bytes(4) and for_bind else a), port
        return (b"" if a == bytes(16) and for_bind else a), port
    return -EAFNOSUPPORT


def _sockaddr(s: InetSocket, a: bytes, port: int) -> bytes:
    """The sockaddr of address ``a`` (b"": the wildcard) and ``port`` for ``s``'s family."""
    if s.family == 4:
        return struct.pack("<H", AF_INET) + struct.pack("!H", port) + (a or bytes(4)) + bytes(8)
    a6 = a if len(a) == 16 else V4_MAPPED + a if a else bytes(16)
    return struct.pack("<H", AF_INET6) + struct.pack("!HI", port, 0) + a6 + bytes(4)


# --------------------------------------------------------------------------- socket, bind, listen
async def sys_socket(k: Personality, p: Proc, c: Call) -> int:
    domain, type_, proto = _i(c.a[0]), _i(c.a[1]), _i(c.a[2])
    if domain == AF_UNIX:
        return await sockets.sys_socket(k, p, c)
    if domain not in (AF_INET, AF_INET6, AF_NETLINK):
        return -EAFNOSUPPORT
    if type_ & ~(0xF | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -EINVAL
    kind = type_ & 0xF
    node: Special
    st = net.of(k)
    if domain == AF_NETLINK:
        if kind not in (SOCK_RAW, SOCK_DGRAM):
            return -ESOCKTNOSUPPORT
        if proto != 0:  # NETLINK_ROUTE only
            return -EPROTONOSUPPORT
        node = NetlinkSocket(st, p.pid)
    else:
        fam = 4 if domain == AF_INET else 6
        icmp = IPPROTO_ICMP if fam == 4 else IPPROTO_ICMPV6
        if kind == SOCK_STREAM:
            if proto not in (0, IPPROTO_TCP):
                return -EPROTONOSUPPORT
            proto = IPPROTO_TCP
        elif kind == SOCK_DGRAM:
            if proto not in (0, IPPROTO_UDP, icmp):
                return -EPROTONOSUPPORT
            proto = proto or IPPROTO_UDP
        elif kind == SOCK_RAW:
            if proto != icmp:
                return -EPROTONOSUPPORT  # raw sockets of ICMP only
        else:
            return -ESOCKTNOSUPPORT
        s = InetSocket(st, fam, kind, proto)
        if s.what == "raw":
            st.raw.append(s)
        node = s
    now = k.wall_ns()
    node.atime = node.mtime = node.ctime = node.btime = now
    fd = install(p, OFile(node, 2 | type_ & O_NONBLOCK, f"socket:[{node.ino}]"), bool(type_ & SOCK_CLOEXEC))
    if fd < 0:
        node.released(k, OFile(node, 2, ""))
    return fd


async def sys_socketpair(k: Personality, p: Proc, c: Call) -> int:
    if _i(c.a[0]) in (AF_INET, AF_INET6):
        return -EOPNOTSUPP
    return await sockets.sys_socketpair(k, p, c)


async def sys_bind(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    nl = _netlink(p, fd)
    if nl is not None:
        raw = await k.read(p, c.a[1], 12) if _i(c.a[2]) >= 12 else None
        if raw is None:
            return -EINVAL
        fam, _pad, pid, groups = struct.unpack("<HHII", raw)
        if fam != AF_NETLINK:
            return -EINVAL
        nl[0].pid, nl[0].groups = pid or p.pid, groups
        return 0
    r = _inet(p, fd)
    if r is None:
        return await sockets.sys_bind(k, p, c)
    s = r[0]
    got = await _read_sockaddr(k, p, s, c.a[1], _i(c.a[2]), for_bind=True)
    if isinstance(got, int):
        return got
    return s.bind(*got)


async def sys_listen(k: Personality, p: Proc, c: Call) -> int:
    r = _inet(p, _i(c.a[0]))
    if r is None:
        if _netlink(p, _i(c.a[0])) is not None:
            return -EOPNOTSUPP
        return await sockets.sys_listen(k, p, c)
    s = r[0]
    if s.what != "tcp":
        return -EOPNOTSUPP
    return s.listen(_i(c.a[1]))


# --------------------------------------------------------------------------- connect, accept
async def sys_connect(k: Personality, p: Proc, c: Call) -> int:
    r = _inet(p, _i(c.a[0]))
    if r is None:
        if _netlink(p, _i(c.a[0])) is not None:
            return 0
        return await sockets.sys_connect(k, p, c)
    s, f = r
    waiting = isinstance(c.state, SockCall) and c.state.name is not None
    if s.what != "tcp":
        raw = await k.read(p, c.a[1], 2) if _i(c.a[2]) >= 2 else None
        if raw is not None and int.from_bytes(raw, "little") == AF_UNSPEC:
            s.raddr, s.rport = None, 0  # forget the peer
            return 0
        got = await _read_sockaddr(k, p, s, c.a[1], _i(c.a[2]))
        if isinstance(got, int):
            return got
        if net.of(k).route(got[0]) is None:
            return -ENETUNREACH
        s.raddr, s.rport = got
        return s.autobind()
    if not waiting:
        if s.listening:
            return -EINVAL
        tcb = s.tcb
        if tcb is not None:
            if tcb.state in (State.SYN_SENT, State.SYN_RECEIVED):
                return -EALREADY
            if s.connecting:  # the first call after a non-blocking connect ended: its outcome
                s.connecting = False
                if tcb.state is not State.CLOSED or tcb.was_established:
                    return 0
                err, s.err = s.err or ECONNREFUSED, 0
                return -err
            if tcb.state is not State.CLOSED or tcb.was_established:
                return -EISCONN
        got = await _read_sockaddr(k, p, s, c.a[1], _i(c.a[2]))
        if isinstance(got, int):
            return got
        if tcb is not None:
            net.of(k).drop_conn(tcb)
            s.tcb = None
        err = s.connect(*got)
        if err:
            return err
        if f.flags & O_NONBLOCK:
            s.connecting = True
            return -EINPROGRESS
        _st(c).name = b"connect"
    tcb = s.tcb
    assert tcb is not None
    if tcb.state in (State.SYN_SENT, State.SYN_RECEIVED):
        s.watch_tid(p.cur.tid)
        w = await _wait(k, p, c, s.sndtimeo)
        if w == BLOCK:
            return BLOCK
        c.state = None
        return -EINPROGRESS if w == -EAGAIN else w
    c.state = None
    k.sleepers.pop(p.cur.tid, None)
    if tcb.state is State.CLOSED and not tcb.was_established:
        err, s.err = s.err or ECONNREFUSED, 0
        return -err
    return 0


async def _accept(k: Personality, p: Proc, c: Call, fd: int, addr: int, lenp: int, flags: int) -> int:
    r = _inet(p, fd)
    if r is None:
        if _netlink(p, fd) is not None:
            return -EOPNOTSUPP
        return await sockets._accept(k, p, c, fd, addr, lenp, flags)
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -EINVAL
    s, f = r
    if s.what != "tcp":
        return -EOPNOTSUPP
    if not s.listening:
        return -EINVAL
    if not s.accept_q:
        if f.flags & O_NONBLOCK:
            return -EAGAIN
        s.watch_tid(p.cur.tid)
        return await _wait(k, p, c, s.rcvtimeo)
    k.sleepers.pop(p.cur.tid, None)
    tcb = s.accept_q.popleft()
    new = s.accepted(tcb)
    now = k.wall_ns()
    new.atime = new.mtime = new.ctime = new.btime = now
    nfd = install(p, OFile(new, 2 | flags & O_NONBLOCK, f"socket:[{new.ino}]"), bool(flags & SOCK_CLOEXEC))
    if nfd < 0:
        new.close()
        return nfd
    peer = tcb.remote
    if await put_addr(k, p, addr, lenp, _sockaddr(s, *peer)) < 0:
        return -EFAULT
    return nfd


async def sys_accept(k: Personality, p: Proc, c: Call) -> int:
    return await _accept(k, p, c, _i(c.a[0]), c.a[1], c.a[2], 0)


async def sys_accept4(k: Personality, p: Proc, c: Call) -> int:
    return await _accept(k, p, c, _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3]))


async def sys_getsockname(k: Personality, p: Proc, c: Call) -> int:
    nl = _netlink(p, _i(c.a[0]))
    if nl is not None:
        return await put_addr(k, p, c.a[1], c.a[2], nl[0].sockname())
    r = _inet(p, _i(c.a[0]))
    if r is None:
        return await sockets.sys_getsockname(k, p, c)
    s = r[0]
    a = s.local_addr()
    if not a and s.raddr is not None:
        a = net.of(k).source_for(s.raddr) or b""  # a connected datagram socket's source
    return await put_addr(k, p, c.a[1], c.a[2], _sockaddr(s, a, s.lport))


async def sys_getpeername(k: Personality, p: Proc, c: Call) -> int:
    nl = _netlink(p, _i(c.a[0]))
    if nl is not None:
        return await put_addr(k, p, c.a[1], c.a[2], struct.pack("<HHII", AF_NETLINK, 0, 0, 0))
    r = _inet(p, _i(c.a[0]))
    if r is None:
        return await sockets.sys_getpeername(k, p, c)
    s = r[0]
    peer = s.peer()
    if peer is None or (s.tcb is not None and s.tcb.state in (State.SYN_SENT, State.SYN_RECEIVED)):
        return -ENOTCONN
    return await put_addr(k, p, c.a[1], c.a[2], _sockaddr(s, *peer))


async def sys_shutdown(k: Personality, p: Proc, c: Call) -> int:
    r = _inet(p, _i(c.a[0]))
    if r is None:
        return await sockets.sys_shutdown(k, p, c)
    s = r[0]
    how = _i(c.a[1])
    if how not in (0, 1, 2):
        return -EINVAL
    mode = (how + 1) & (RCV_SHUTDOWN | SEND_SHUTDOWN)
    tcb = s.tcb
    if s.what == "tcp":
        if s.listening and mode & RCV_SHUTDOWN:
            s.shut |= mode
            s.changed(k)
            return 0
        if tcb is None or tcb.state in (State.CLOSED, State.SYN_SENT):
            return -ENOTCONN
        if mode & SEND_SHUTDOWN and not s.shut & SEND_SHUTDOWN:
            tcb.shutdown(net.of(k).now())
            net.of(k).dirty.append(tcb)
    elif s.raddr is None:
        return -ENOTCONN
    s.shut |= mode
    s.changed(k)
    return 0


# --------------------------------------------------------------------------- sending
async def _send(k: Personality, p: Proc, c: Call, s: InetSocket, f: OFile, data: bytes, flags: int,
                name: tuple[int, int] | None) -> int:
    if flags & MSG_OOB:
        return -EOPNOTSUPP
    nonblock = s.nonblock(f, flags)
    if s.what == "tcp":
        r = s.tcp_send(data, nonblock, p.cur.tid)
        if r == BLOCK:
            return await _wait(k, p, c, s.sndtimeo)
        if isinstance(c.state, SockCall):
            c.state = None
            k.sleepers.pop(p.cur.tid, None)
        if r == -32 and not flags & MSG_NOSIGNAL:  # EPIPE
            return await _broken_pipe(k, p, c)
        return r
    dest = None
    if name is not None and name[0]:
        got = await _read_sockaddr(k, p, s, name[0], name[1])
        if isinstance(got, int):
            return got
        dest = got
    return s.dgram_send(data, dest)


async def sys_sendto(k: Personality, p: Proc, c: Call) -> int:
    fd, buf, n, flags = _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3])
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_sendto(k, p, c)
    data = await k.read(p, buf, min(n, 1 << 22)) if n else b""
    if data is None:
        return -EFAULT
    nl = _netlink(p, fd)
    if nl is not None:
        return nl[0].request(data)
    r = _inet(p, fd)
    assert r is not None
    return await _send(k, p, c, r[0], r[1], data, flags, (c.a[4], _i(c.a[5])) if c.a[4] else None)


async def _sendmsg(k: Personality, p: Proc, c: Call, fd: int, hdr: int, flags: int) -> int:
    raw = await k.read(p, hdr, MSGHDR.size)
    if raw is None:
        return -EFAULT
    name_a, namelen, iov, iovlen, _ctl, _ctllen, _ = MSGHDR.unpack(raw)
    vecs = await iovecs(k, p, iov, iovlen, EMSGSIZE)
    if isinstance(vecs, int):
        return vecs
    data = await gather(k, p, vecs)
    if isinstance(data, int):
        return data
    nl = _netlink(p, fd)
    if nl is not None:
        return nl[0].request(data)
    r = _inet(p, fd)
    assert r is not None
    return await _send(k, p, c, r[0], r[1], data, flags, (name_a, namelen) if name_a and namelen else None)


async def sys_sendmsg(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_sendmsg(k, p, c)
    return await _sendmsg(k, p, c, fd, c.a[1], _i(c.a[2]))


# --------------------------------------------------------------------------- receiving
async def _recv(k: Personality, p: Proc, c: Call, fd: int, n: int,
                flags: int) -> tuple[bytes, bytes | None, int, int, int] | int:
    """(data, source sockaddr or None, message flags, full length, hop limit) or -errno/BLOCK."""
    if flags & MSG_OOB:
        return -EOPNOTSUPP if _netlink(p, fd) is None else -EINVAL
    nl = _netlink(p, fd)
    tid = p.cur.tid
    if nl is not None:
        got = nl[0].take(n, bool(flags & MSG_PEEK), bool(nl[1].flags & O_NONBLOCK or flags & MSG_DONTWAIT), tid)
        if got == BLOCK:
            return await _wait(k, p, c, 0)
        if isinstance(got, int):
            return got
        data, full = got
        return data, struct.pack("<HHII", AF_NETLINK, 0, 0, 0), MSG_TRUNC if full > len(data) else 0, full, 0
    r = _inet(p, fd)
    assert r is not None
    s, f = r
    nonblock = s.nonblock(f, flags)
    st = _st(c)
    if s.what == "tcp":
        sofar = bytes(st.got or b"")
        got2 = s.tcp_recv(n - len(sofar), flags, nonblock, tid)
        if isinstance(got2, bytes) and got2 and flags & MSG_WAITALL and not flags & MSG_PEEK \
                and len(sofar) + len(got2) < n and not nonblock:
            st.got = bytearray(sofar + got2)  # MSG_WAITALL: what it has, and wait for the rest
            s.watch_tid(tid)
            got2 = BLOCK
        if got2 == BLOCK:
            w = await _wait(k, p, c, s.rcvtimeo)
            if w == BLOCK:
                return BLOCK
            part = bytes(st.got or b"")
            st.got, st.deadline = None, None
            return (part, None, 0, len(part), 0) if part else w
        part = bytes(st.got or b"")
        c.state = None
        k.sleepers.pop(tid, None)
        if isinstance(got2, int):
            return (part, None, 0, len(part), 0) if part else got2
        data = part + got2
        peer = s.peer()
        return data, _sockaddr(s, *peer) if peer is not None else None, 0, len(data), 0
    d = s.dgram_recv(n, flags, nonblock, tid)
    if d == BLOCK:
        return await _wait(k, p, c, s.rcvtimeo)
    c.state = None
    k.sleepers.pop(tid, None)
    if isinstance(d, int):
        return d
    data = d.data[:n]
    return data, _sockaddr(s, d.src, d.sport), MSG_TRUNC if len(d.data) > n else 0, len(d.data), d.ttl


async def sys_recvfrom(k: Personality, p: Proc, c: Call) -> int:
    fd, buf, n, flags, addr, lenp = _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3]), c.a[4], c.a[5]
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_recvfrom(k, p, c)
    g = await _recv(k, p, c, fd, min(n, 1 << 22), flags)
    if isinstance(g, int):
        return g
    data, src, mflags, full, _ttl = g
    if data and not await k.write(p, buf, data):
        return -EFAULT
    if addr and lenp and src is not None and await put_addr(k, p, addr, lenp, src) < 0:
        return -EFAULT
    return full if flags & MSG_TRUNC and mflags & MSG_TRUNC else len(data)


async def _recvmsg(k: Personality, p: Proc, c: Call, fd: int, hdr: int, flags: int) -> int:
    raw = await k.read(p, hdr, MSGHDR.size)
    if raw is None:
        return -EFAULT
    name_a, namelen, iov, iovlen, ctl, ctllen, _ = MSGHDR.unpack(raw)
    vecs = await iovecs(k, p, iov, iovlen, EMSGSIZE)
    if isinstance(vecs, int):
        return vecs
    g = await _recv(k, p, c, fd, sum(n for _, n in vecs), flags)
    if isinstance(g, int):
        return g
    data, src, mflags, full, ttl = g
    if not await scatter(k, p, vecs, data):
        return -EFAULT
    control = b""
    r = _inet(p, fd)
    if r is not None and r[0].what != "tcp":
        s = r[0]
        if s.family == 6 and s.recv_hoplimit:
            control += _cmsg(IPPROTO_IPV6, IPV6_HOPLIMIT, struct.pack("<i", ttl))
        if s.family == 6 and s.recv_hoplimit_2292:
            control += _cmsg(IPPROTO_IPV6, IPV6_2292HOPLIMIT, struct.pack("<i", ttl))
        elif s.family == 4 and s.recv_ttl:
            control += _cmsg(IPPROTO_IP, IP_TTL, struct.pack("<i", ttl))
    if len(control) > ctllen:
        control = control[:ctllen]
        mflags |= MSG_CTRUNC
    if control and not await k.write(p, ctl, control):
        return -EFAULT
    out_namelen = 0
    if name_a and src is not None:
        if not await k.write(p, name_a, src[:namelen]):
            return -EFAULT
        out_namelen = len(src)
    if not await k.write(p, hdr + 8, struct.pack("<I", out_namelen)) \
            or not await k.write(p, hdr + 40, struct.pack("<Q", len(control))) \
            or not await k.write(p, hdr + 48, struct.pack("<i", mflags)):
        return -EFAULT
    return full if flags & MSG_TRUNC and mflags & MSG_TRUNC else len(data)


def _cmsg(level: int, kind: int, body: bytes) -> bytes:
    raw = CMSGHDR.pack(CMSGHDR.size + len(body), level, kind) + body
    return raw + bytes(-len(raw) % 8)


async def sys_recvmsg(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_recvmsg(k, p, c)
    return await _recvmsg(k, p, c, fd, c.a[1], _i(c.a[2]))


async def sys_sendmmsg(k: Personality, p: Proc, c: Call) -> int:
    """sendmmsg: each struct mmsghdr (64 bytes: the msghdr and msg_len) in turn, without
    waiting after the first; the number sent."""
    fd = _i(c.a[0])
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_sendmmsg(k, p, c)
    return await each_mmsg(k, p, c, _sendmsg)


async def sys_recvmmsg(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    if _netlink(p, fd) is None and _inet(p, fd) is None:
        return await sockets.sys_recvmmsg(k, p, c)
    return await each_mmsg(k, p, c, _recvmsg)


# --------------------------------------------------------------------------- options
async def sys_setsockopt(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    level, opt, val, vlen = _i(c.a[1]), _i(c.a[2]), c.a[3], _i(c.a[4])
    nl = _netlink(p, fd)
    if nl is not None:
        if level == SOL_SOCKET and opt in (SO_RCVBUF, SO_SNDBUF, SO_RCVBUFFORCE, SO_SNDBUFFORCE):
            return 0
        return 0 if level == 270 else -ENOPROTOOPT  # SOL_NETLINK options: accepted
    r = _inet(p, fd)
    if r is None:
        return await sockets.sys_setsockopt(k, p, c)
    s = r[0]
    if level == SOL_SOCKET and opt in (SO_RCVTIMEO, SO_SNDTIMEO):
        ns = await read_timeo(k, p, val, vlen)
        if ns < 0:
            return ns
        if opt == SO_RCVTIMEO:
            s.rcvtimeo = ns
        else:
            s.sndtimeo = ns
        return 0
    if level == SOL_SOCKET and opt == SO_LINGER:
        raw = await k.read(p, val, 8) if vlen >= 8 else None
        if raw is None:
            return -EINVAL if vlen < 8 else -EFAULT
        onoff, secs = struct.unpack("<ii", raw)
        s.linger = (1 if onoff else 0, max(0, secs))
        return 0
    if level == IPPROTO_ICMPV6 and opt == ICMP6_FILTER:
        raw = await k.read(p, val, 32) if vlen >= 32 else None
        if raw is None:
            return -EINVAL
        s.icmp6_block = int.from_bytes(raw, "little")
        return 0
    if level == SOL_SOCKET and opt == SO_BINDTODEVICE:
        return 0
    if vlen < 1:
        return -EINVAL
    raw = await k.read(p, val, min(max(vlen, 1), 4))
    if raw is None:
        return -EFAULT
    v = _i(int.from_bytes(raw.ljust(4, b"\0"), "little"))
    tcb = s.tcb
    if level == SOL_SOCKET:
        if opt == SO_REUSEADDR:
            s.reuse = bool(v)
            if s.binding is not None:
                s.binding.reuse = s.reuse
        elif opt == SO_REUSEPORT:
            s.reuseport = bool(v)
            if s.binding is not None:
                s.binding.reuseport = s.reuseport
        elif opt in (SO_SNDBUF, SO_SNDBUFFORCE):
            s.sndbuf = max(SNDBUF_MIN, 2 * min(max(v, 0), BUF_MAX if opt == SO_SNDBUF else 1 << 30))
            s.sndbuf_set = True
            if tcb is not None:
                tcb.sndbuf = s.sndbuf
            s.changed(k)
        elif opt in (SO_RCVBUF, SO_RCVBUFFORCE):
            s.rcvbuf = max(RCVBUF_MIN, 2 * min(max(v, 0), BUF_MAX if opt == SO_RCVBUF else 1 << 30))
            if tcb is not None:
                tcb.rcvbuf = s.rcvbuf
        elif opt == SO_KEEPALIVE:
            s.keepalive = bool(v)
        elif opt == SO_BROADCAST:
            s.broadcast = bool(v)
        elif opt in (SO_RCVLOWAT, SO_SNDLOWAT, SO_PRIORITY, SO_OOBINLINE, SO_DONTROUTE, SO_TIMESTAMP):
            pass  # accepted: they change nothing here
        else:
            return -ENOPROTOOPT
        return 0
    if level == IPPROTO_TCP:
        if s.what != "tcp":
            return -EOPNOTSUPP
        if opt == TCP_NODELAY:
            s.nodelay = bool(v)
            if tcb is not None:
                tcb.nodelay = s.nodelay
                tcb.output(net.of(k).now())
                net.of(k).dirty.append(tcb)
        elif opt == TCP_MAXSEG:
            if not 0 <= v <= 65535 or 0 < v < 88:
                return -EINVAL
        elif opt in (TCP_CORK, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_QUICKACK):
            if opt in (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT) and v < 1:
                return -EINVAL
        else:
            return -ENOPROTOOPT
        return 0
    if level == IPPROTO_IP:
        if s.family == 6 and opt not in (IP_TTL, IP_TOS):
            return -ENOPROTOOPT
        if opt == IP_TTL:
            if not (v == -1 or 1 <= v <= 255):
                return -EINVAL
            s.ttl = 0 if v == -1 else v
        elif opt == IP_TOS:
            s.tos = v & 0xFF
        elif opt == IP_RECVTTL:
            s.recv_ttl = bool(v)
        elif opt in (IP_RECVERR, IP_MTU_DISCOVER, IP_PKTINFO, IP_MULTICAST_TTL, IP_MULTICAST_LOOP):
            s.recverr = bool(v) if opt == IP_RECVERR else s.recverr
        else:
            return -ENOPROTOOPT
        return 0
    if level == IPPROTO_IPV6:
        if s.family != 6:
            return -ENOPROTOOPT
        if opt == IPV6_V6ONLY:
            if s.binding is not None or s.tcb is not None:
                return -EINVAL
            s.v6only = bool(v)
        elif opt == IPV6_UNICAST_HOPS:
            if not -1 <= v <= 255:
                return -EINVAL
            s.ttl = 0 if v == -1 else v
        elif opt == IPV6_RECVHOPLIMIT:
            s.recv_hoplimit = bool(v)
        elif opt == IPV6_2292HOPLIMIT:  # RFC 2292's spelling (busybox ping6 uses it)
            s.recv_hoplimit_2292 = bool(v)
        elif opt == IPV6_CHECKSUM:
            if s.what == "raw" and s.proto == IPPROTO_ICMPV6:
                return -EINVAL  # ICMPv6 raw sockets always have the kernel's checksum
        elif opt in (IPV6_RECVERR, IPV6_MTU_DISCOVER, IPV6_RECVPKTINFO, IPV6_MULTICAST_HOPS, IPV6_TCLASS):
            pass
        else:
            return -ENOPROTOOPT
        return 0
    return -ENOPROTOOPT


async def sys_getsockopt(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    level, opt, val, lenp = _i(c.a[1]), _i(c.a[2]), c.a[3], c.a[4]
    nl = _netlink(p, fd)
    r = _inet(p, fd)
    if nl is None and r is None:
        return await sockets.sys_getsockopt(k, p, c)
    raw = await k.read(p, lenp, 4)
    if raw is None:
        return -EFAULT
    room = _i(int.from_bytes(raw, "little"))
    if room < 0:
        return -EINVAL
    if nl is not None:
        ints = {SO_TYPE: SOCK_RAW, SO_RCVBUF: nl[0].rcvbuf, SO_SNDBUF: nl[0].sndbuf, SO_DOMAIN: AF_NETLINK,
                SO_PROTOCOL: 0, SO_ERROR: 0}
        if level != SOL_SOCKET or opt not in ints:
            return -ENOPROTOOPT
        got: bytes | int = struct.pack("<i", ints[opt])
    else:
        assert r is not None
        got = _getopt(r[0], level, opt)
    if isinstance(got, int):
        return got
    data = got[:room]
    if not await k.write(p, val, data) or not await k.write(p, lenp, struct.pack("<i", len(data))):
        return -EFAULT
    return 0


def _getopt(s: InetSocket, level: int, opt: int) -> bytes | int:
    tcb = s.tcb
    if level == SOL_SOCKET:
        if opt == SO_ERROR:
            err, s.err = s.err, 0
            return struct.pack("<i", err)
        if opt in (SO_RCVTIMEO, SO_SNDTIMEO):
            ns = s.rcvtimeo if opt == SO_RCVTIMEO else s.sndtimeo
            return timeo_bytes(ns)
        if opt == SO_LINGER:
            return struct.pack("<ii", *s.linger)
        ints = {SO_TYPE: s.stype, SO_RCVBUF: s.rcvbuf, SO_SNDBUF: s.sndbuf, SO_REUSEADDR: int(s.reuse),
                SO_REUSEPORT: int(s.reuseport), SO_KEEPALIVE: int(s.keepalive), SO_BROADCAST: int(s.broadcast),
                SO_ACCEPTCONN: int(s.listening), SO_PROTOCOL: s.proto, SO_DOMAIN: AF_INET if s.family == 4 else AF_INET6,
                SO_RCVLOWAT: 1, SO_SNDLOWAT: 1, SO_PRIORITY: 0, SO_OOBINLINE: 0, SO_DONTROUTE: 0}
        return struct.pack("<i", ints[opt]) if opt in ints else -ENOPROTOOPT
    if level == IPPROTO_TCP:
        if s.what != "tcp":
            return -EOPNOTSUPP
        if opt == TCP_NODELAY:
            return struct.pack("<i", int(s.nodelay))
        if opt == TCP_MAXSEG:
            return struct.pack("<i", tcb.mss if tcb is not None else 536)
        if opt == TCP_INFO:
            return _tcp_info(s)
        if opt in (TCP_CORK, TCP_QUICKACK):
            return struct.pack("<i", 0)
        if opt in (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT):
            return struct.pack("<i", {TCP_KEEPIDLE: 7200, TCP_KEEPINTVL: 75, TCP_KEEPCNT: 9}[opt])
        return -ENOPROTOOPT
    if level == IPPROTO_IP:
        if opt == IP_TTL:
            return struct.pack("<i", s.ttl or 64)
        if opt == IP_TOS:
            return struct.pack("<i", s.tos)
        if opt == IP_RECVERR:
            return struct.pack("<i", int(s.recverr))
        return -ENOPROTOOPT
    if level == IPPROTO_IPV6 and s.family == 6:
        if opt == IPV6_V6ONLY:
            return struct.pack("<i", int(s.v6only))
        if opt == IPV6_UNICAST_HOPS:
            return struct.pack("<i", s.ttl or 64)
        return -ENOPROTOOPT
    return -ENOPROTOOPT


def _tcp_info(s: InetSocket) -> bytes:
    """The first fields of struct tcp_info: state, ca_state, retransmits, probes, backoff,
    options, the window scales, rto, ato, snd_mss, rcv_mss, ... rtt, rttvar, snd_ssthresh,
    snd_cwnd (the rest zero)."""
    tcb = s.tcb
    if tcb is None:
        state = STATE_NUMBERS[State.LISTEN] if s.listening else STATE_NUMBERS[State.CLOSED]
        return struct.pack("<BBBBBBBx", state, 0, 0, 0, 0, 0, 0) + bytes(224)
    us = 1000
    head = struct.pack("<BBBBBBBx", STATE_NUMBERS[tcb.state], 0, min(tcb.retries, 255), 0, min(tcb.backoff, 255), 0, 0)
    body = struct.pack("<IIIIIIII", tcb.rto // us, 40_000, tcb.mss, tcb.my_mss, 0, 0, 0, 0)
    body += struct.pack("<IIIIII", 0, 0, 0, 0, tcb.my_mss + 40, 0)  # last_data_sent .. pmtu, rcv_ssthresh
    body += struct.pack("<IIIIII", tcb.srtt // us, tcb.rttvar // us, min(tcb.ssthresh, 0xFFFF_FFFF) // max(1, tcb.mss),
                        tcb.cwnd // max(1, tcb.mss), 0, 0)
    body += struct.pack("<II", 0, tcb.retransmits)
    return (head + body).ljust(232, b"\0")


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    41: ("socket", sys_socket, "dxd"),
    42: ("connect", sys_connect, "dpd"),
    43: ("accept", sys_accept, "dpp"),
    44: ("sendto", sys_sendto, "dbuxpd"),
    45: ("recvfrom", sys_recvfrom, "dpuxpp"),
    46: ("sendmsg", sys_sendmsg, "dpx"),
    47: ("recvmsg", sys_recvmsg, "dpx"),
    48: ("shutdown", sys_shutdown, "dd"),
    49: ("bind", sys_bind, "dpd"),
    50: ("listen", sys_listen, "dd"),
    51: ("getsockname", sys_getsockname, "dpp"),
    52: ("getpeername", sys_getpeername, "dpp"),
    53: ("socketpair", sys_socketpair, "dxdp"),
    54: ("setsockopt", sys_setsockopt, "dddpd"),
    55: ("getsockopt", sys_getsockopt, "dddpp"),
    288: ("accept4", sys_accept4, "dppx"),
    299: ("recvmmsg", sys_recvmmsg, "dpuxp"),
    307: ("sendmmsg", sys_sendmmsg, "dpux"),
}
