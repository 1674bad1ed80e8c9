"""Internet sockets: AF_INET and AF_INET6, TCP, UDP, ICMP echo ("ping") and raw ICMP.

An :class:`InetSocket` is a :class:`~l4sim.linux.state.Special` inode (``socket:[ino]``),
so read, write, poll, select, epoll, ``fcntl`` and close work on it; the calls only sockets
have are :mod:`l4sim.linux.net.inet`.  What a socket does, as Linux's net/ipv4 and net/ipv6
do it:

- **TCP**: the connection is a :class:`~l4sim.linux.net.tcp.Tcb`; reads take its in-order
  bytes (0 after the peer's FIN), writes queue into its send buffer; a blocking write waits
  while the buffer is full and then queues all it was given (so a write returns its whole
  count, as Linux's does), a non-blocking one what fits, or EAGAIN.  A listener makes a
  connection for each SYN while ``accept`` queue and handshakes in progress stay within
  the backlog (more SYNs are dropped: the client sends again), ``accept`` takes the oldest
  established one.  A close with unread bytes, or with ``SO_LINGER`` 0, resets the
  connection; otherwise the connection lives on without its socket (FIN, TIME_WAIT) and
  keeps its port until it is gone -- what ``SO_REUSEADDR`` lets a new listener overlook.
- **UDP**: datagrams queue up to ``SO_RCVBUF`` (each counted in Linux's buffer sizes: a
  datagram that finds the buffer full is dropped); a connected socket hears of "port
  unreachable" (ECONNREFUSED, once).
- **ping sockets** (``SOCK_DGRAM``, ``IPPROTO_ICMP``/``ICMPV6``): the stack sets the echo
  request's identifier (the socket's "port") and checksum and hands back the matching
  replies; **raw ICMP sockets** (``SOCK_RAW``) send ICMP messages as written (ICMPv6 with
  the checksum filled in) and receive every ICMP message: IPv4 with its IP header, ICMPv6
  without, through ``ICMP6_FILTER``.
- An IPv6 socket talks IPv4 too (addresses ``::ffff:a.b.c.d``) unless ``IPV6_V6ONLY``.

Addresses inside are the packets' bytes (4 or 16); :mod:`l4sim.linux.net.inet` turns them
into ``sockaddr_in`` and ``sockaddr_in6``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from l4sim.linux.net import wire as w
from l4sim.linux.net.ifaces import if_ioctl
from l4sim.linux.net.stack import Binding, Iface, Stack
from l4sim.linux.net.tcp import SENDING, State, Tcb
from l4sim.linux.sockets import truesize
from l4sim.linux.state import BLOCK, Call, Personality, Proc, Special
from l4sim.linux.vfs import O_NONBLOCK, OFile

EPERM, EINTR, EAGAIN, EACCES, EFAULT, EINVAL, EPIPE, EMSGSIZE = 1, 4, 11, 13, 14, 22, 32, 90
EDESTADDRREQ, EOPNOTSUPP, EADDRINUSE, EADDRNOTAVAIL, ENETUNREACH = 89, 95, 98, 99, 101
ECONNRESET, EISCONN, ENOTCONN, ECONNREFUSED, EALREADY, EINPROGRESS = 104, 106, 107, 111, 114, 115
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLRDNORM = 0x1, 0x2, 0x4, 0x8, 0x10, 0x40
POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x100, 0x200, 0x2000
MSG_PEEK, MSG_TRUNC, MSG_DONTWAIT = 0x2, 0x20, 0x40
S_IFSOCK = 0o140000
#: ioctl: bytes not yet acknowledged (TIOCOUTQ's number)
SIOCOUTQ = 0x5411
#: TCP's buffers (tcp_rmem[1], tcp_wmem[1]; the send buffer grows to the second figure once
#: a connection is established, as Linux's tcp_sndbuf_expand does), UDP's (rmem_default)
TCP_RCVBUF, TCP_SNDBUF, TCP_SNDBUF_EST = 131072, 16384, 87040
UDP_BUF = 212992
#: the largest UDP payload in IPv4 and IPv6 (65535 less the headers)
UDP_MAX = {4: 65507, 6: 65527}


def _closed(tcb: Tcb) -> bool:
    return tcb.state is State.CLOSED


@dataclass(slots=True)
class Dgram:
    """A queued datagram: its source, the data, the packet's TTL and TOS, its cost."""

    src: bytes
    sport: int
    data: bytes
    ttl: int
    tos: int
    cost: int


class InetSocket(Special):
    """An AF_INET or AF_INET6 socket (see the module)."""

    def __init__(self, stack: Stack, family: int, stype: int, proto: int) -> None:
        super().__init__(S_IFSOCK | 0o777)
        self.stack = stack
        #: 4 (AF_INET) or 6 (AF_INET6); SOCK_STREAM, SOCK_DGRAM or SOCK_RAW; the IP protocol
        self.family = family
        self.stype = stype
        self.proto = proto
        self.what = "tcp" if stype == SOCK_STREAM else "raw" if stype == SOCK_RAW else \
            "udp" if proto == w.PROTO_UDP else "ping"
        self.v6only = False
        #: the local address (b"": any) and port; the peer's (None: not connected)
        self.laddr = b""
        self.lport = 0
        self.raddr: bytes | None = None
        self.rport = 0
        self.binding: Binding | None = None
        self.reuse = self.reuseport = False
        self.rcvbuf = TCP_RCVBUF if self.what == "tcp" else UDP_BUF
        self.sndbuf = TCP_SNDBUF if self.what == "tcp" else UDP_BUF
        #: SO_SNDBUF was set (the buffer then does not grow)
        self.sndbuf_set = False
        self.rcvtimeo = self.sndtimeo = 0
        #: the error the next call reports (SO_ERROR), and shutdown's bits
        self.err = 0
        self.shut = 0
        # --- datagrams
        self.queue: deque[Dgram] = deque()
        self.rmem = 0
        # --- TCP
        self.tcb: Tcb | None = None
        self.listening = False
        self.backlog = 0
        self.accept_q: deque[Tcb] = deque()
        self.embryos: list[Tcb] = []
        #: a non-blocking connect was started and no connect call has seen its end yet
        #: (Linux's SS_CONNECTING: the next connect returns 0, or the error, once)
        self.connecting = False
        # --- options
        self.nodelay = False
        self.keepalive = False
        self.broadcast = False
        self.linger: tuple[int, int] = (0, 0)
        self.ttl = 0
        self.tos = 0
        self.recverr = False
        #: ICMPv6 types a raw socket does not want (ICMP6_FILTER: bit set = blocked)
        self.icmp6_block = 0
        #: recvmsg adds the packet's hop limit (IPV6_RECVHOPLIMIT) or TTL (IP_RECVTTL)
        self.recv_hoplimit = False
        self.recv_hoplimit_2292 = False
        self.recv_ttl = False
        self.dead = False

    # ------------------------------------------------------------------ addresses
    def local_addr(self) -> bytes:
        if self.tcb is not None:
            return self.tcb.local[0]
        return self.laddr

    def peer(self) -> tuple[bytes, int] | None:
        if self.tcb is not None and (self.tcb.state is not State.CLOSED or self.tcb.was_established):
            return self.tcb.remote
        return (self.raddr, self.rport) if self.raddr is not None else None

    def bind(self, addr: bytes, port: int) -> int:
        """Bind to ``addr`` (b"": any) and ``port`` (0: an ephemeral one)."""
        if self.binding is not None or self.tcb is not None:
            return -EINVAL
        if addr and not self.stack.local(addr) and not (len(addr) == 4 and self.stack.broadcast(addr)):
            return -EADDRNOTAVAIL
        if self.what == "raw":
            self.laddr = addr
            return 0
        if self.what == "ping":
            return self._ping_id(addr, port)
        b = Binding(w.PROTO_TCP if self.what == "tcp" else w.PROTO_UDP, port, self.family, self.v6only, addr,
                    self.reuse, self.reuseport)
        if port:
            if not self.stack.claim(b):
                return -EADDRINUSE
        elif not self.stack.free_port(b):
            return -EADDRINUSE
        self.binding = b
        self.laddr, self.lport = addr, b.port
        if self.what == "udp":
            self.stack.udp.setdefault(b.port, []).append(self)
        return 0

    def _ping_id(self, addr: bytes, ident: int) -> int:
        table = self.stack.ping
        if not ident:
            for _ in range(65535):
                st = self.stack
                st.next_port = st.next_port % 65535 + 1
                if (self.family, st.next_port) not in table:
                    ident = st.next_port
                    break
        if (self.family, ident) in table:
            return -EADDRINUSE
        table[(self.family, ident)] = self
        self.laddr, self.lport = addr, ident
        return 0

    def autobind(self) -> int:
        if self.lport or self.what == "raw":
            return 0
        return self.bind(b"", 0)

    # ------------------------------------------------------------------ arrivals (the stack's calls)
    def take_datagram(self, src: bytes, sport: int, data: bytes, ip: w.Ip) -> None:
        """A UDP datagram or an echo reply for this socket: queued, or dropped when the
        receive buffer is full (Linux's ``sk_rmem_alloc >= sk_rcvbuf``)."""
        if self.rmem >= self.rcvbuf or self.shut & RCV_SHUTDOWN:
            self.stack.count("UdpRcvbufErrors")
            return
        cost = truesize(len(data))
        self.queue.append(Dgram(src, sport, data, ip.ttl, ip.tos, cost))
        self.rmem += cost
        self.stack.wake(self)

    def raw_wants(self, ip: w.Ip) -> bool:
        if ip.proto != self.proto or (self.laddr and self.laddr != ip.dst) or \
                (self.raddr is not None and self.raddr != ip.src):
            return False
        return not (ip.version == 6 and self.icmp6_block >> ip.payload[0] & 1)

    def take_raw(self, ip: w.Ip) -> None:
        self.take_datagram(ip.src, 0, ip.header + ip.payload if ip.version == 4 else ip.payload, ip)

    def set_error(self, err: int) -> None:
        self.err = err
        self.stack.wake(self)

    # ------------------------------------------------------------------ TCP: connections
    def _wire(self, tcb: Tcb) -> None:
        """``tcb`` is this socket's connection: its changes wake the socket's waiters."""
        self.tcb = tcb
        tcb.parent = None
        st = self.stack

        def changed() -> None:
            if tcb.err:
                self.err, tcb.err = tcb.err, 0
            if tcb.state is State.ESTABLISHED and not self.sndbuf_set:
                tcb.sndbuf = self.sndbuf = max(self.sndbuf, TCP_SNDBUF_EST)
            st.wake(self)

        def closed() -> None:
            st.drop_conn(tcb)
            if self.dead and tcb.binding is not None:  # an orphan gives its port back now
                st.unclaim(tcb.binding)

        tcb.on_change, tcb.on_closed = changed, closed
        tcb.nodelay = self.nodelay

    def connect(self, raddr: bytes, rport: int) -> int:
        """Start an active open (0), or -errno."""
        st = self.stack
        r = st.route(raddr)
        if r is None:
            return -ENETUNREACH
        src = self.laddr or r[2]
        if self.binding is None:
            b = Binding(w.PROTO_TCP, 0, self.family, self.v6only, src, self.reuse, self.reuseport)
            if not st.free_port(b):
                return -EADDRNOTAVAIL
            self.binding, self.lport = b, b.port
        if (src, self.lport, raddr, rport) in st.conns:
            return -EADDRNOTAVAIL
        tcb = Tcb((src, self.lport), (raddr, rport), st.new_iss(), st.mss_for(raddr), self.rcvbuf, self.sndbuf)
        tcb.binding = self.binding
        self._wire(tcb)
        st.add_conn(tcb)
        tcb.connect(st.now())
        st.dirty.append(tcb)
        return 0

    def listen(self, backlog: int) -> int:
        st = self.stack
        if self.tcb is not None and self.tcb.state is not State.CLOSED:
            return -EINVAL
        if self.binding is None:
            r = self.bind(b"", 0)
            if r:
                return r
        assert self.binding is not None
        self.backlog = max(0, min(backlog, 4096))
        if not self.listening:
            self.binding.listening = True
            if not st.claim(self.binding):  # another listener, or a claim without SO_REUSEADDR
                self.binding.listening = False
                return -EADDRINUSE
            self.listening = True
            st.listeners.setdefault(self.lport, []).append(self)
        return 0

    def embryo(self, laddr: bytes, lport: int, raddr: bytes, rport: int, iface: Iface, seg: w.Seg,
               now: int) -> Tcb | None:
        """A SYN came for this listener: a connection in SYN_RECEIVED (None: the backlog is
        full and the SYN is dropped)."""
        st = self.stack
        if len(self.accept_q) + len(self.embryos) > self.backlog:
            st.count("ListenOverflows")
            return None
        tcb = Tcb((laddr, lport), (raddr, rport), st.new_iss(), st.mss_for(raddr), self.rcvbuf, self.sndbuf)
        tcb.parent = self
        tcb.nodelay = self.nodelay
        tcb.binding = Binding(w.PROTO_TCP, lport, self.family, self.v6only, laddr, self.reuse, self.reuseport)
        st.bound.setdefault((w.PROTO_TCP, lport), []).append(tcb.binding)  # the listener's port, shared

        def changed() -> None:
            if tcb in self.embryos and tcb.state is not State.SYN_RECEIVED:
                self.embryos.remove(tcb)
                if tcb.state is not State.CLOSED:
                    self.accept_q.append(tcb)
                    st.wake(self)

        def closed() -> None:
            st.drop_conn(tcb)
            if tcb in self.embryos:
                self.embryos.remove(tcb)
            if tcb.binding is not None and tcb not in self.accept_q:
                st.unclaim(tcb.binding)

        tcb.on_change, tcb.on_closed = changed, closed
        st.add_conn(tcb)
        self.embryos.append(tcb)
        tcb.accept_syn(seg, now)
        return tcb

    def accepted(self, tcb: Tcb) -> InetSocket:
        """The socket of a connection ``accept`` took from the queue."""
        s = InetSocket(self.stack, self.family, self.stype, self.proto)
        s.v6only, s.reuse, s.reuseport = self.v6only, self.reuse, self.reuseport
        s.rcvbuf, s.sndbuf, s.sndbuf_set = self.rcvbuf, self.sndbuf, self.sndbuf_set
        s.nodelay, s.keepalive, s.linger = self.nodelay, self.keepalive, self.linger
        s.binding = tcb.binding
        s.laddr, s.lport = tcb.local
        s._wire(tcb)
        if tcb.state is State.CLOSED:  # reset while it waited in the queue
            s.err = ECONNRESET
        elif not s.sndbuf_set:
            tcb.sndbuf = s.sndbuf = max(s.sndbuf, TCP_SNDBUF_EST)
        return s

    # ------------------------------------------------------------------ TCP: data
    def tcp_recv(self, n: int, flags: int, nonblock: bool, tid: int) -> bytes | int:
        """Up to ``n`` bytes: data, b"" at the end, -errno, or BLOCK (after watching)."""
        if self.listening:
            return -ENOTCONN
        tcb = self.tcb
        if tcb is None:
            return -ENOTCONN
        if tcb.state in (State.SYN_SENT, State.SYN_RECEIVED) and not nonblock:
            self.watch_tid(tid)
            return BLOCK
        if tcb.rcvq:
            data = tcb.recv(n, bool(flags & MSG_PEEK))
            if tcb.ack_now:
                tcb.output(self.stack.now())
                self.stack.dirty.append(tcb)
            return data
        if self.err:
            err, self.err = self.err, 0
            return -err
        if tcb.fin_received or self.shut & RCV_SHUTDOWN or tcb.state is State.CLOSED:
            return b"" if tcb.was_established or tcb.state is not State.CLOSED else -ENOTCONN
        if tcb.state in (State.SYN_SENT, State.SYN_RECEIVED) or nonblock:
            return -EAGAIN
        self.watch_tid(tid)
        return BLOCK

    def tcp_send(self, data: bytes, nonblock: bool, tid: int) -> int:
        """Queue ``data``: the bytes taken, -errno (EPIPE: the caller raises SIGPIPE), or BLOCK."""
        tcb = self.tcb
        if self.err:
            err, self.err = self.err, 0
            return -err
        if self.shut & SEND_SHUTDOWN:
            return -EPIPE
        if tcb is None or self.listening:
            return -EPIPE  # (tcp_sendmsg: not connected is EPIPE, with SIGPIPE)
        if tcb.state in (State.SYN_SENT, State.SYN_RECEIVED):
            if nonblock:
                return -EAGAIN
            self.watch_tid(tid)
            return BLOCK
        if tcb.state not in SENDING:
            return -EPIPE if tcb.was_established else -ENOTCONN
        if not data:
            return 0
        room = tcb.send_room()
        if room <= 0:
            if nonblock:
                return -EAGAIN
            self.watch_tid(tid)
            return BLOCK
        take = data if not nonblock else data[:room]
        tcb.sndq += take  # a blocking write queues all it has (see the module)
        tcb.output(self.stack.now())
        self.stack.dirty.append(tcb)
        return len(take)

    def watch_tid(self, tid: int) -> None:
        self.waiters.add(tid)

    # ------------------------------------------------------------------ datagrams
    def dgram_recv(self, n: int, flags: int, nonblock: bool, tid: int) -> Dgram | int:
        """The next datagram (the caller cuts it to ``n``), -errno, or BLOCK."""
        if self.queue:
            d = self.queue[0]
            if not flags & MSG_PEEK:
                self.queue.popleft()
                self.rmem -= d.cost
            return d
        if self.err:
            err, self.err = self.err, 0
            return -err
        if self.shut & RCV_SHUTDOWN:
            return Dgram(b"", 0, b"", 0, 0, 0)
        if nonblock:
            return -EAGAIN
        self.watch_tid(tid)
        return BLOCK

    def dgram_send(self, data: bytes, dest: tuple[bytes, int] | None) -> int:
        """Send one datagram (UDP, an echo request, a raw ICMP message): its length or -errno."""
        st = self.stack
        if self.err and self.what == "udp" and dest is None:
            err, self.err = self.err, 0
            return -err
        if self.shut & SEND_SHUTDOWN:
            return -EPIPE
        if dest is None:
            if self.raddr is None:
                return -EDESTADDRREQ
            dest = (self.raddr, self.rport)
        addr, port = dest
        if self.what == "udp" and len(data) > UDP_MAX[6 if len(addr) == 16 else 4]:
            return -EMSGSIZE
        r = st.route(addr)
        if r is None:
            return -ENETUNREACH
        iface, _hop, src = r
        if self.laddr:
            src = self.laddr
        if len(addr) == 4 and st.broadcast(addr) and not self.broadcast and self.what != "raw":
            return -EACCES
        r2 = self.autobind()
        if r2:
            return r2
        ttl = self.ttl or 64
        if self.what == "udp":
            if (28 if len(addr) == 4 else 48) + len(data) > st.mtu_for(iface, addr):  # no fragmentation here
                return -EMSGSIZE
            payload = w.udp(self.lport, port, data, src, addr)
            proto = w.PROTO_UDP
        elif self.what == "ping":
            if len(data) < 8 or data[0] != (w.ICMP6_ECHO if len(addr) == 16 else w.ICMP_ECHO) or data[1]:
                return -EINVAL
            rest = self.lport.to_bytes(2, "big") + data[6:]  # the identifier is the socket's
            if len(addr) == 16:
                payload = w.icmp6(data[0], 0, rest, src, addr)
            else:
                payload = w.icmp(data[0], 0, rest)
            proto = w.PROTO_ICMP6 if len(addr) == 16 else w.PROTO_ICMP
        else:
            payload = w.with_icmp6_checksum(data, src, addr) if len(addr) == 16 else data
            proto = self.proto
        if len(payload) + (20 if len(addr) == 4 else 40) > st.mtu_for(iface, addr):
            return -EMSGSIZE
        err = st.send_ip(src, addr, proto, payload, ttl, self.tos)
        return err if err else len(data)

    # ------------------------------------------------------------------ the file's side
    def nonblock(self, f: OFile, flags: int = 0) -> bool:
        return bool(f.flags & O_NONBLOCK or flags & MSG_DONTWAIT)

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if self.what == "tcp":
            return self.tcp_recv(n, 0, self.nonblock(f), p.cur.tid)
        r = self.dgram_recv(n, 0, self.nonblock(f), p.cur.tid)
        return r if isinstance(r, int) else r.data[:n]

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        if self.what == "tcp":
            return self.tcp_send(data, self.nonblock(f), p.cur.tid)
        return self.dgram_send(data, None)

    def ready(self, k: Personality, f: OFile) -> int:
        mask = POLLERR if self.err else 0
        if self.what != "tcp":
            if self.queue:
                mask |= POLLIN | POLLRDNORM
            if self.shut == RCV_SHUTDOWN | SEND_SHUTDOWN:
                mask |= POLLHUP
            return mask | POLLOUT | POLLWRNORM | POLLWRBAND
        if self.listening:
            return mask | (POLLIN | POLLRDNORM if self.accept_q else 0)
        tcb = self.tcb
        state = tcb.state if tcb is not None else State.CLOSED
        shut = self.shut
        if tcb is not None and tcb.fin_received:
            shut |= RCV_SHUTDOWN
        if shut == RCV_SHUTDOWN | SEND_SHUTDOWN or state is State.CLOSED:
            mask |= POLLHUP
        if shut & RCV_SHUTDOWN:
            mask |= POLLIN | POLLRDNORM | POLLRDHUP
        if state not in (State.SYN_SENT, State.SYN_RECEIVED):
            if tcb is not None and tcb.rcvq:
                mask |= POLLIN | POLLRDNORM
            if shut & SEND_SHUTDOWN or tcb is None or (tcb.send_room() > 0 and tcb.send_room() >= len(tcb.sndq) // 2):
                mask |= POLLOUT | POLLWRNORM
        return mask

    def nread(self) -> int:
        if self.what == "tcp":
            return len(self.tcb.rcvq) if self.tcb is not None else 0
        return len(self.queue[0].data) if self.queue else 0

    def outq(self) -> int:
        """Bytes not yet acknowledged by the peer (SIOCOUTQ)."""
        return len(self.tcb.sndq) if self.tcb is not None else 0

    def released(self, k: Personality, f: OFile) -> None:
        self.close()

    def close(self) -> None:
        """The socket's last reference went (see the module: what its connection does)."""
        st = self.stack
        self.dead = True
        now = st.now()
        if self.listening:
            self.listening = False
            ls = st.listeners.get(self.lport, [])
            if self in ls:
                ls.remove(self)
            for t in [*self.embryos, *self.accept_q]:  # connections nobody accepted: reset
                t.abort(now)
                st.dirty.append(t)
                if t.binding is not None:
                    st.unclaim(t.binding)
            self.embryos.clear()
            self.accept_q.clear()
        tcb = self.tcb
        if tcb is not None and tcb.state is not State.CLOSED:
            if tcb.rcvq or (self.linger[0] and not self.linger[1]):
                tcb.abort(now)  # unread data, or SO_LINGER 0: a reset, as tcp_close
            else:
                tcb.shutdown(now)
            tcb.on_change = lambda: None
            st.dirty.append(tcb)
            if not _closed(tcb):
                return  # the connection lives on, and keeps its port
        if self.binding is not None:
            st.unclaim(self.binding)
        if self.what == "udp":
            us = st.udp.get(self.lport, [])
            if self in us:
                us.remove(self)
        elif self.what == "raw" and self in st.raw:
            st.raw.remove(self)
        elif self.what == "ping" and st.ping.get((self.family, self.lport)) is self:
            del st.ping[(self.family, self.lport)]
        self.queue.clear()

    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        if req == SIOCOUTQ:
            return 0 if await k.write(p, arg, self.outq().to_bytes(4, "little")) else -EFAULT
        return await if_ioctl(k, p, self.stack, req, arg)
