"""Local sockets of the Linux personality: AF_UNIX stream, datagram and seqpacket sockets.

A socket is a :class:`~l4sim.linux.state.Special` inode (``S_IFSOCK``, ``socket:[ino]``
in ``/proc/PID/fd``) behind an ordinary open file, so read, write, poll, select, epoll,
``fcntl`` and close work on it as on Linux.  What follows is net/unix/af_unix.c's
behaviour, told in its terms:

- **Names**: ``bind`` to a path makes a socket inode in the file system (``EADDRINUSE``
  when the path exists; the inode stays after the socket is closed, as on Linux); a name
  starting with a NUL byte is abstract (one namespace per system, gone with the socket);
  ``bind`` with only the family, and ``connect`` or ``listen`` with ``SO_PASSCRED``, pick
  an abstract name of five hex digits (autobind).  ``getsockname``/``getpeername`` return
  Linux's address lengths.
- **Connections** (stream, seqpacket): ``listen`` (bound sockets only) keeps a backlog;
  ``connect`` makes the server's end at once and queues it (the client may write before
  ``accept``; a full backlog makes it wait, or ``EAGAIN``); ``accept``/``accept4`` take
  the oldest.  ``socketpair`` makes a connected pair.  Each end has Linux's shutdown bits:
  ``shutdown`` sets its own and its peer's opposite one; a close sets the peer's to both
  and, when the closing end had unread data or was never accepted, gives the peer
  ``ECONNRESET`` once.  A read at the end of a shut-down stream returns 0; a write to a
  peer that cannot receive fails with ``EPIPE`` and raises SIGPIPE (not with
  ``MSG_NOSIGNAL``).
- **Data**: a stream read takes what is there (``MSG_WAITALL``: all it asked for), across
  the writes that made it, but stops after one that carried descriptors (and, with
  ``SO_PASSCRED``, at a change of sender); datagrams and seqpackets are read one message
  each, truncated (``MSG_TRUNC``) when the buffer is short.  ``MSG_PEEK``,
  ``MSG_DONTWAIT``.  Queues are bounded as Linux bounds them: by the sender's ``SO_SNDBUF``
  (212992 bytes) counted in Linux's buffer sizes (768 bytes for a small message), and for a
  datagram to a socket that is not its sender's peer by ``max_dgram_qlen`` (10).
- **Ancillary data**: ``SCM_RIGHTS`` passes open files (the receiver gets new fds for the
  same open files; ``MSG_CMSG_CLOEXEC``; what does not fit the control buffer is closed
  and ``MSG_CTRUNC`` set); ``SCM_CREDENTIALS`` with ``SO_PASSCRED``; ``SO_PEERCRED`` is
  the peer's process at ``connect``, ``listen`` or ``socketpair``.
- **Waiting**: a read, write, ``accept`` or ``connect`` that must wait blocks like a pipe's
  (restarted after a handler with ``SA_RESTART``; ``SO_RCVTIMEO``/``SO_SNDTIMEO`` end it
  with ``EAGAIN``, and a signal then with ``EINTR``).

Other families (``AF_INET``, ``AF_INET6``, ``AF_NETLINK``, ...) are ``EAFNOSUPPORT``:
networking belongs to the network stack.  Everybody is root (uid and gid 0).
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from l4sim.linux.files import _broken_pipe, gather, iovecs, scatter
from l4sim.linux.net.ifaces import if_ioctl
from l4sim.linux.net.stack import of as net_of
from l4sim.linux.signals import RESTART_NOHAND, RESTART_SYS, interrupt
from l4sim.linux.state import (
    BLOCK,
    Call,
    Facility,
    Personality,
    Proc,
    Special,
    get,
    install,
    release,
)
from l4sim.linux.vfs import O_CLOEXEC, O_NONBLOCK, Dir, Inode, OFile, stamp

EPERM, ENOENT, EINTR, EBADF, EAGAIN, EFAULT, EEXIST, ENOTDIR, EINVAL = 1, 2, 4, 9, 11, 14, 17, 20, 22
EPIPE, ENAMETOOLONG, ENOTSOCK, EMSGSIZE, EPROTOTYPE, ENOPROTOOPT = 32, 36, 88, 90, 91, 92
EPROTONOSUPPORT, ESOCKTNOSUPPORT, EOPNOTSUPP, EAFNOSUPPORT, EADDRINUSE = 93, 94, 95, 97, 98
ECONNRESET, EISCONN, ENOTCONN, ECONNREFUSED, EDOM = 104, 106, 107, 111, 33
AF_UNSPEC, AF_UNIX = 0, 1
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = O_NONBLOCK, O_CLOEXEC
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
#: Linux's sk_shutdown bits
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT, MSG_EOR = 1, 2, 8, 0x20, 0x40, 0x80
MSG_WAITALL, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC = 0x100, 0x4000, 0x4000_0000
SOL_SOCKET = 1
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_BROADCAST, SO_SNDBUF, SO_RCVBUF = 2, 3, 4, 6, 7, 8
SO_KEEPALIVE, SO_LINGER, SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 9, 13, 16, 17, 18, 19
SO_RCVTIMEO, SO_SNDTIMEO, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN = 20, 21, 30, 38, 39
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
#: the socket buffers' defaults and limits (net.core.wmem_default, wmem_max, the minimums)
SNDBUF_DEFAULT = RCVBUF_DEFAULT = 212992
BUF_MAX = 212992
SNDBUF_MIN, RCVBUF_MIN = 4608, 2304
#: net.unix.max_dgram_qlen, net.core.somaxconn, SCM_MAX_FD
MAX_DGRAM_QLEN, SOMAXCONN, SCM_MAX_FD = 10, 4096, 253
SUN_PATH = 108
POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLRDNORM = 0x1, 0x2, 0x4, 0x8, 0x10, 0x40
POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x100, 0x200, 0x2000
S_IFSOCK = 0o140000
#: struct msghdr: name, namelen, iov, iovlen, control, controllen, flags
MSGHDR = struct.Struct("<QI4xQQQQi4x")
CMSGHDR = struct.Struct("<Qii")
UCRED = struct.Struct("<iII")


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _align(n: int) -> int:
    return (n + 7) & ~7


def truesize(n: int) -> int:
    """What a message of ``n`` bytes costs against a socket buffer (Linux's skb truesize: the
    sk_buff and the data with its shared info, in kmalloc's power-of-two sizes)."""
    head = n + 320
    if head <= 32768:
        return 256 + max(512, 1 << (head - 1).bit_length())
    return 256 + 512 + (n + 4095) // 4096 * 4096


@dataclass(eq=False)
class Msg:
    """One write's data in a receive queue, with what came with it."""

    data: bytes
    fds: list[OFile] = field(default_factory=list)
    #: the sender's (pid, uid, gid)
    cred: tuple[int, int, int] = (0, 0, 0)
    #: the sender's name (datagrams), b"" when it had none
    addr: bytes = b""
    #: the sending socket, whose buffer the message is charged to
    sender: Socket | None = None
    cost: int = 0
    #: how much of ``data`` a stream read has taken
    off: int = 0


class SockNode(Inode):
    """A socket's name in the file system (bind to a path): the socket it names, None
    once that socket is closed (connect then finds ECONNREFUSED)."""

    def __init__(self, mode: int, sock: Socket) -> None:
        super().__init__(S_IFSOCK | (mode & 0o7777))
        self.sock: Socket | None = sock


class Socket(Special):
    """An AF_UNIX socket (Linux's unix_sock)."""

    def __init__(self, kind: int) -> None:
        super().__init__(S_IFSOCK | 0o777)
        self.stype = kind
        self.listening = False
        self.connected = False
        self.peer: Socket | None = None
        self.queue: deque[Msg] = deque()
        #: the bytes of this socket's messages waiting in receive queues (sk_wmem_alloc)
        self.wmem = 0
        #: listening: the server ends of connections not accepted yet
        self.backlog: deque[Socket] = deque()
        self.max_backlog = 0
        #: bound name: b"/path" or b"\\0abstract"; the path's inode
        self.name: bytes | None = None
        self.node: SockNode | None = None
        self.shutdown = 0
        self.err = 0
        self.passcred = False
        #: the peer's (pid, uid, gid) (SO_PEERCRED), and this socket's own (given to peers)
        self.peercred: tuple[int, int, int] | None = None
        self.cred: tuple[int, int, int] = (0, 0, 0)
        self.sndbuf, self.rcvbuf = SNDBUF_DEFAULT, RCVBUF_DEFAULT
        self.rcvtimeo = self.sndtimeo = 0
        self.dead = False
        #: a server end not accepted yet (its close gives the client ECONNRESET)
        self.embryo = False

    # ---------------------------------------------------------------- readiness
    def stream(self) -> bool:
        return self.stype in (SOCK_STREAM, SOCK_SEQPACKET)

    def writable(self) -> bool:
        """Linux's unix_writable: not listening, and a quarter of the send buffer free."""
        return not self.listening and self.wmem << 2 <= self.sndbuf

    def ready(self, k: Personality, f: OFile) -> int:
        mask = 0
        if self.err:
            mask |= POLLERR
        if self.shutdown == RCV_SHUTDOWN | SEND_SHUTDOWN:
            mask |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            mask |= POLLRDHUP | POLLIN | POLLRDNORM
        if self.queue or self.backlog:
            mask |= POLLIN | POLLRDNORM
        if self.stream() and not self.connected and not self.listening:
            mask |= POLLHUP
        if self.stype == SOCK_DGRAM:
            other = self.peer
            if self.writable() and not (other is not None and other.peer is not self
                                        and len(other.queue) > MAX_DGRAM_QLEN):
                mask |= POLLOUT | POLLWRNORM | POLLWRBAND
        elif self.writable():
            mask |= POLLOUT | POLLWRNORM | POLLWRBAND
        return mask

    def nread(self) -> int:
        if self.stype == SOCK_STREAM:
            return sum(len(m.data) - m.off for m in self.queue)
        return len(self.queue[0].data) if self.queue else 0

    # ---------------------------------------------------------------- plain read and write
    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if n == 0:
            return b""
        r = recv(k, p, self, f, n, 0, None)
        if isinstance(r, int):
            return r
        for x in r.fds:  # read() has no room for descriptors: they are closed
            release(k, x)
        return r.data

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        return send(k, p, self, f, data, 0, None, [], None)

    def released(self, k: Personality, f: OFile) -> None:
        close_socket(k, self)


    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        """The interface ioctls (``SIOCGIFINDEX``, ...) work on any socket: glibc's
        ``if_nametoindex`` asks them of an AF_UNIX one."""
        return await if_ioctl(k, p, net_of(k), req, arg)


class Sockets(Facility):
    """The abstract namespace of the system's AF_UNIX sockets, and autobind's counter."""

    def __init__(self) -> None:
        self.abstract: dict[tuple[bytes, int], Socket] = {}
        self.autobind = 0


# --------------------------------------------------------------------------- the state machine
def close_socket(k: Personality, s: Socket) -> None:
    """The last reference to ``s`` went (Linux's unix_release_sock): its name goes (a path's
    inode stays), queued messages and their descriptors are dropped, a connected peer sees
    both directions shut down -- and ECONNRESET when ``s`` had unread data or was never
    accepted -- and connections waiting in a backlog are closed."""
    s.dead = True
    net = k.facility(Sockets)
    if s.name is not None and net.abstract.get((s.name, s.stype)) is s:  # (an accepted end has the name too)
        del net.abstract[(s.name, s.stype)]
    if s.node is not None:
        s.node.sock = None
    unread = bool(s.queue)
    _drop_queue(k, s)
    other = s.peer
    if other is not None and s.stream():
        other.shutdown = RCV_SHUTDOWN | SEND_SHUTDOWN
        if unread or s.embryo:
            other.err = ECONNRESET
        other.changed(k)
    while s.backlog:
        close_socket(k, s.backlog.popleft())
    s.peer = None
    s.changed(k)


def _drop_queue(k: Personality, s: Socket) -> None:
    while s.queue:
        m = s.queue.popleft()
        _uncharge(k, m)
        for f in m.fds:
            release(k, f)


def _uncharge(k: Personality, m: Msg) -> None:
    if m.sender is not None:
        m.sender.wmem -= m.cost
        m.sender.changed(k)  # it may write again
        m.sender = None


def _charge(s: Socket, m: Msg) -> None:
    m.cost = truesize(len(m.data))
    m.sender = s
    s.wmem += m.cost


def _cred(p: Proc) -> tuple[int, int, int]:
    return (p.pid, 0, 0)


def connect_pair(a: Socket, b: Socket, ca: tuple[int, int, int], cb: tuple[int, int, int]) -> None:
    """``a`` and ``b`` become each other's peers; each knows the other's credentials."""
    a.peer, b.peer = b, a
    a.connected = b.connected = True
    a.peercred, b.peercred = cb, ca


# --------------------------------------------------------------------------- sending
def send(k: Personality, p: Proc, s: Socket, f: OFile, data: bytes, flags: int, dest: Socket | None,
         fds: list[OFile], cred: tuple[int, int, int] | None) -> int:
    """Queue ``data`` (with ``fds``) from ``s``: the bytes taken, a negative errno, or BLOCK
    (the caller has been registered to wake when there is room).  ``dest``: a datagram's
    explicit destination.  The caller owns the references in ``fds`` until they are queued."""
    nonblock = bool(f.flags & O_NONBLOCK or flags & MSG_DONTWAIT)
    if s.err and s.stype != SOCK_DGRAM:
        err, s.err = s.err, 0
        return -err
    if s.stype == SOCK_DGRAM:
        return _send_dgram(k, p, s, data, nonblock, dest, fds, cred)
    if s.shutdown & SEND_SHUTDOWN:
        return -EPIPE
    if not s.connected or s.peer is None:
        return -ENOTCONN
    other = s.peer
    if other.dead or other.shutdown & RCV_SHUTDOWN:
        return -EPIPE
    if s.stype == SOCK_SEQPACKET and len(data) > s.sndbuf - 32:
        return -EMSGSIZE
    if s.wmem >= s.sndbuf:
        if nonblock:
            return -EAGAIN
        s.watch(k, p.cur.tid)
        return BLOCK
    if s.stype == SOCK_STREAM:  # as much as fits in one more message of Linux's size
        if not data:
            return 0
        data = data[: min(len(data), (s.sndbuf >> 1) - 64)]
    m = Msg(data, list(fds), cred or _cred(p))
    fds.clear()
    _charge(s, m)
    other.queue.append(m)
    other.changed(k)
    return len(data)


def _send_dgram(k: Personality, p: Proc, s: Socket, data: bytes, nonblock: bool, dest: Socket | None,
                fds: list[OFile], cred: tuple[int, int, int] | None) -> int:
    other = dest if dest is not None else s.peer
    if other is None:
        return -ENOTCONN
    if len(data) > s.sndbuf - 32:
        return -EMSGSIZE
    if other.dead:  # a connected peer that is gone is forgotten: the next send is ENOTCONN
        if s.peer is other:
            s.peer, s.connected = None, False
        return -ECONNREFUSED
    if other.peer is not None and other.peer is not s:
        return -EPERM  # it is connected to another socket
    if other.shutdown & RCV_SHUTDOWN:
        return -EPIPE
    if s.wmem >= s.sndbuf or (other.peer is not s and len(other.queue) > MAX_DGRAM_QLEN):
        if nonblock:
            return -EAGAIN
        s.watch(k, p.cur.tid)
        other.watch(k, p.cur.tid)  # a read there makes room
        return BLOCK
    m = Msg(data, list(fds), cred or _cred(p), s.name or b"")
    fds.clear()
    _charge(s, m)
    other.queue.append(m)
    other.changed(k)
    return len(data)


# --------------------------------------------------------------------------- receiving
@dataclass
class Got:
    """What a receive took: the data, the descriptors, the sender's credentials and name,
    the message flags (MSG_TRUNC) and the message's full length."""

    data: bytes
    fds: list[OFile]
    cred: tuple[int, int, int] | None
    addr: bytes
    flags: int
    full: int


def recv(k: Personality, p: Proc, s: Socket, f: OFile, n: int, flags: int, sofar: bytearray | None) -> Got | int:
    """Take up to ``n`` bytes from ``s``: a :class:`Got`, a negative errno or BLOCK (the
    caller has been registered to wake when something comes).  ``sofar``: what an earlier
    run of a MSG_WAITALL receive already took."""
    nonblock = bool(f.flags & O_NONBLOCK or flags & MSG_DONTWAIT)
    if s.listening:
        return -EINVAL
    if s.stream() and not s.connected and not s.shutdown:
        return -ENOTCONN if s.stype == SOCK_SEQPACKET else -EINVAL
    if not s.queue:
        if s.err:
            err, s.err = s.err, 0
            return -err
        if s.shutdown & RCV_SHUTDOWN or (s.stream() and (s.peer is None or s.peer.dead)):
            return Got(bytes(sofar or b""), [], None, b"", 0, 0)
        if nonblock:
            return -EAGAIN
        s.watch(k, p.cur.tid)
        return BLOCK
    if s.stype != SOCK_STREAM:
        m = s.queue[0]
        if not flags & MSG_PEEK:
            s.queue.popleft()
            _uncharge(k, m)
            s.changed(k)
        got = Got(m.data[:n], [] if flags & MSG_PEEK else m.fds, m.cred, m.addr,
                  MSG_TRUNC if len(m.data) > n else 0, len(m.data))
        return got
    out = bytearray(sofar or b"")
    fds: list[OFile] = []
    cred: tuple[int, int, int] | None = None
    want = n + len(out)
    for m in list(s.queue):
        if len(out) >= want:
            break
        if cred is not None and s.passcred and m.cred != cred:
            break  # never glue messages from different writers
        cred = m.cred
        take = m.data[m.off:m.off + want - len(out)]
        out += take
        if flags & MSG_PEEK:
            if m.fds:
                break
            continue
        m.off += len(take)
        if m.fds:
            fds, m.fds = m.fds, []
        if m.off >= len(m.data):
            s.queue.popleft()
            _uncharge(k, m)
        if fds:
            break  # a read stops after the message that carried descriptors
    if not flags & MSG_PEEK:
        s.changed(k)
    return Got(bytes(out), fds, cred, b"", 0, len(out))


# --------------------------------------------------------------------------- addresses
def _sockaddr(name: bytes | None) -> bytes:
    """The sockaddr_un of ``name``, as long as Linux reports it: the family, the path and its
    NUL, or the abstract name as it is."""
    raw = struct.pack("<H", AF_UNIX) + (name or b"")
    return raw + (b"\0" if name and name[:1] != b"\0" else b"")


async def _read_addr(k: Personality, p: Proc, addr: int, length: int) -> bytes | int:
    """A sockaddr_un's name (b"/path", b"\\0abstract", b"" for the family alone) or an errno."""
    if length < 2 or length > 2 + SUN_PATH:
        return -EINVAL
    raw = await k.read(p, addr, length)
    if raw is None:
        return -EFAULT
    (family,) = struct.unpack_from("<H", raw)
    if family != AF_UNIX:
        return -EINVAL if family != AF_UNSPEC else -EAFNOSUPPORT
    name = raw[2:]
    if name[:1] == b"\0":
        return name
    return name.split(b"\0", 1)[0]


async def put_addr(k: Personality, p: Proc, addr: int, lenp: int, data: bytes) -> int:
    """Write a sockaddr and its length, for AF_UNIX's sockets and the network's: at most the
    caller's room, the whole length reported (0, or -EFAULT, -EINVAL for a negative room)."""
    if not lenp:
        return 0
    raw = await k.read(p, lenp, 4)
    if raw is None:
        return -EFAULT
    room = _i(int.from_bytes(raw, "little"))
    if room < 0:
        return -EINVAL
    if addr and room and not await k.write(p, addr, data[:room]):
        return -EFAULT
    return 0 if await k.write(p, lenp, struct.pack("<i", len(data))) else -EFAULT


def _lookup(k: Personality, p: Proc, name: bytes, stype: int) -> Socket | int:
    """The socket a name names: ENOENT for a missing path, ECONNREFUSED when nothing is
    bound there (or the path is no socket)."""
    if name[:1] == b"\0":  # abstract names are per type (Linux hashes them with it)
        s = k.facility(Sockets).abstract.get((name, stype))
        return s if s is not None else -ECONNREFUSED
    path = name.decode("utf-8", "surrogateescape")
    node, err, _ = k.vfs.walk(p.cwd, path, p)
    if node is None:
        return -err
    if not isinstance(node, SockNode):
        return -ECONNREFUSED
    return node.sock if node.sock is not None and not node.sock.dead else -ECONNREFUSED


def _autobind(k: Personality, s: Socket) -> None:
    net = k.facility(Sockets)
    while True:
        net.autobind = (net.autobind + 1) & 0xFFFFF
        name = b"\0" + f"{net.autobind:05x}".encode()
        if (name, s.stype) not in net.abstract:
            break
    s.name = name
    net.abstract[(name, s.stype)] = s


def _bind(k: Personality, p: Proc, s: Socket, name: bytes) -> int:
    """Bind ``s`` (Linux's order of checks: a path that exists is EADDRINUSE even for a
    socket bound already; a bound socket's abstract or automatic bind is EINVAL)."""
    net = k.facility(Sockets)
    if not name or name[:1] == b"\0":
        if s.name is not None:
            return -EINVAL
        if not name:
            _autobind(k, s)
            return 0
        if (name, s.stype) in net.abstract:
            return -EADDRINUSE
        s.name = name
        net.abstract[(name, s.stype)] = s
        return 0
    path = name.decode("utf-8", "surrogateescape")
    d, last, err = k.vfs.parent(p.cwd, path, p)
    if d is None:
        return -(err or EADDRINUSE)
    if not isinstance(d, Dir):
        return -ENOTDIR
    if d.lookup(last, p) is not None:
        return -EADDRINUSE
    if s.name is not None:
        return -EINVAL
    node = SockNode(0o777 & ~p.umask, s)
    now = k.wall_ns()
    node.atime = node.mtime = node.ctime = node.btime = now
    d.add(last, node)
    stamp(d, now, m=True, c=True)
    s.name, s.node = name, node
    return 0


# --------------------------------------------------------------------------- the calls
def _sock(p: Proc, fd: int) -> tuple[Socket, OFile] | int:
    f = get(p, fd)
    if f is None:
        return -EBADF
    if not isinstance(f.node, Socket):
        return -ENOTSOCK
    return f.node, f


def _new(k: Personality, p: Proc, kind: int) -> Socket:
    s = Socket(kind)
    now = k.wall_ns()
    s.atime = s.mtime = s.ctime = s.btime = now
    s.cred = _cred(p)
    return s


def _install(p: Proc, s: Socket, flags: int) -> int:
    return install(p, OFile(s, 2 | flags & O_NONBLOCK, f"socket:[{s.ino}]"), bool(flags & SOCK_CLOEXEC))


def _kind(domain: int, type_: int, protocol: int) -> int:
    """The socket type a socket()/socketpair() asks for, or a negative errno."""
    if domain != AF_UNIX:
        return -EAFNOSUPPORT  # networking belongs to the network stack
    if type_ & ~(0xF | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -EINVAL
    kind = type_ & 0xF
    if protocol not in (0, AF_UNIX):
        return -EPROTONOSUPPORT
    if kind == SOCK_RAW:
        kind = SOCK_DGRAM  # as Linux's unix_create
    if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
        return -ESOCKTNOSUPPORT
    return kind


async def sys_socket(k: Personality, p: Proc, c: Call) -> int:
    domain, type_, protocol = _i(c.a[0]), _i(c.a[1]), _i(c.a[2])
    kind = _kind(domain, type_, protocol)
    if kind < 0:
        return kind
    return _install(p, _new(k, p, kind), type_)


async def sys_socketpair(k: Personality, p: Proc, c: Call) -> int:
    domain, type_, protocol, sv = _i(c.a[0]), _i(c.a[1]), _i(c.a[2]), c.a[3]
    kind = _kind(domain, type_, protocol)
    if kind < 0:
        return kind if domain == AF_UNIX else -EAFNOSUPPORT
    a, b = _new(k, p, kind), _new(k, p, kind)
    connect_pair(a, b, a.cred, b.cred)
    fa = _install(p, a, type_)
    if fa < 0:
        return fa
    fb = _install(p, b, type_)
    if fb < 0:
        p.fds.pop(fa)
        return fb
    if not await k.write(p, sv, struct.pack("<ii", fa, fb)):
        p.fds.pop(fa)
        p.fds.pop(fb)
        return -EFAULT
    return 0


async def sys_bind(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s, _ = r
    name = await _read_addr(k, p, c.a[1], _i(c.a[2]))
    if isinstance(name, int):
        return name
    return _bind(k, p, s, name)


async def sys_listen(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s, _ = r
    if not s.stream():
        return -EOPNOTSUPP
    if s.name is None or s.connected:
        return -EINVAL
    s.max_backlog = max(0, min(_i(c.a[1]), SOMAXCONN))
    if not s.listening:
        s.listening = True
        s.cred = _cred(p)  # what connecting clients see as their peer's (SO_PEERCRED)
    s.changed(k)
    return 0


@dataclass
class SockCall:
    """What a socket call that waits keeps between its runs: when SO_RCVTIMEO/SO_SNDTIMEO
    ends it, connect's address, what a MSG_WAITALL receive or a stream send has done so far,
    how many messages sendmmsg/recvmmsg have done."""

    deadline: int | None = None
    name: bytes | None = None
    got: bytearray | None = None
    sent: int = 0
    done: int = 0


def _st(c: Call) -> SockCall:
    if not isinstance(c.state, SockCall):
        c.state = SockCall()
    return c.state


async def sys_connect(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s, f = r
    if isinstance(c.state, SockCall) and c.state.name is not None:
        name = c.state.name
    else:
        raw = await k.read(p, c.a[1], 2) if _i(c.a[2]) >= 2 else None
        if raw is not None and int.from_bytes(raw, "little") == AF_UNSPEC and s.stype == SOCK_DGRAM:
            s.peer, s.connected = None, False  # a datagram socket's default destination goes
            return 0
        got = await _read_addr(k, p, c.a[1], _i(c.a[2]))
        if isinstance(got, int):
            return got
        name = got
    other = _lookup(k, p, name, s.stype)
    if isinstance(other, int):
        return other
    if other.stype != s.stype:
        return -EPROTOTYPE
    if s.stype == SOCK_DGRAM:
        if s.passcred and s.name is None:
            _autobind(k, s)
        s.peer, s.connected = other, True
        s.peercred = other.cred
        s.changed(k)
        return 0
    if s.connected:
        return -EISCONN
    if s.listening:
        return -EINVAL
    if not other.listening:
        return -ECONNREFUSED
    if len(other.backlog) > other.max_backlog:
        if f.flags & O_NONBLOCK:
            return -EAGAIN
        _st(c).name = name
        other.watch(k, p.cur.tid)
        r2 = await _wait(k, p, c, s.sndtimeo)
        if r2 != BLOCK:
            c.state = None
        return r2
    c.state = None
    if s.passcred and s.name is None:
        _autobind(k, s)
    server = Socket(s.stype)
    server.atime = server.mtime = server.ctime = server.btime = k.wall_ns()
    server.name, server.cred, server.embryo = other.name, other.cred, True
    server.passcred = other.passcred
    connect_pair(s, server, _cred(p), other.cred)
    other.backlog.append(server)
    other.changed(k)
    s.changed(k)
    return 0


async def _accept(k: Personality, p: Proc, c: Call, fd: int, addr: int, lenp: int, flags: int) -> int:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -EINVAL
    r = _sock(p, fd)
    if isinstance(r, int):
        return r
    s, f = r
    if not s.stream():
        return -EOPNOTSUPP
    if not s.listening:
        return -EINVAL
    if not s.backlog:
        if f.flags & O_NONBLOCK:
            return -EAGAIN
        s.watch(k, p.cur.tid)
        return await _wait(k, p, c, s.rcvtimeo)
    k.sleepers.pop(p.cur.tid, None)
    new = s.backlog.popleft()
    new.embryo = False
    s.changed(k)
    nfd = _install(p, new, flags)
    if nfd < 0:
        s.backlog.appendleft(new)
        return nfd
    peer = new.peer
    if await put_addr(k, p, addr, lenp, _sockaddr(peer.name if peer is not None else None)) < 0:
        return -EFAULT
    return nfd


async def _wait(k: Personality, p: Proc, c: Call, timeo: int) -> int:
    """A socket call that must wait: BLOCK, or how a signal or SO_RCVTIMEO/SO_SNDTIMEO ends
    it (EAGAIN when the timeout has passed; EINTR for a signal then, as Linux's
    sock_intr_errno)."""
    tid = p.cur.tid
    if timeo:
        st = _st(c)
        if st.deadline is None:
            st.deadline = k.now_ns + timeo
        if k.now_ns >= st.deadline:
            k.sleepers.pop(tid, None)
            return -EAGAIN
        k.sleepers[tid] = st.deadline
        return await interrupt(k, p, c, RESTART_NOHAND)
    return await interrupt(k, p, c, RESTART_SYS)


async def sys_getsockname(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    return await put_addr(k, p, c.a[1], c.a[2], _sockaddr(r[0].name))


async def sys_getpeername(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s = r[0]
    if not s.connected or s.peer is None:
        return -ENOTCONN
    return await put_addr(k, p, c.a[1], c.a[2], _sockaddr(s.peer.name))


async def sys_shutdown(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s = r[0]
    how = _i(c.a[1])
    if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
        return -EINVAL
    mode = (how + 1) & (RCV_SHUTDOWN | SEND_SHUTDOWN)
    s.shutdown |= mode
    s.changed(k)
    other = s.peer
    if other is not None and s.stream():
        peer_mode = (SEND_SHUTDOWN if mode & RCV_SHUTDOWN else 0) | (RCV_SHUTDOWN if mode & SEND_SHUTDOWN else 0)
        other.shutdown |= peer_mode
        other.changed(k)
    return 0


async def _control(k: Personality, p: Proc, addr: int, length: int) -> tuple[list[OFile], tuple[int, int, int] | None] | int:
    """SCM_RIGHTS and SCM_CREDENTIALS of a sendmsg's control data (the files, referenced)."""
    files: list[OFile] = []
    cred = None
    if not length:
        return files, cred
    raw = await k.read(p, addr, length)
    if raw is None:
        return -EFAULT
    at = 0
    while at + CMSGHDR.size <= len(raw):
        clen, level, kind = CMSGHDR.unpack_from(raw, at)
        if clen < CMSGHDR.size or at + clen > len(raw):
            return -EINVAL
        body = raw[at + CMSGHDR.size: at + clen]
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            n = len(body) // 4
            if n > SCM_MAX_FD or len(files) + n > SCM_MAX_FD:
                return -EINVAL
            for (fd,) in struct.iter_unpack("<i", body[: 4 * n]):
                f = get(p, fd)
                if f is None:
                    return -EBADF
                files.append(f)
        elif level == SOL_SOCKET and kind == SCM_CREDENTIALS:
            if len(body) < UCRED.size:
                return -EINVAL
            cred = UCRED.unpack_from(body)
        else:
            return -EINVAL
        at += _align(clen)
    return files, cred


async def _sendmsg(k: Personality, p: Proc, c: Call, fd: int, data: bytes, flags: int, name: bytes | None,
                   files: list[OFile], cred: tuple[int, int, int] | None) -> int:
    r = _sock(p, fd)
    if isinstance(r, int):
        return r
    s, f = r
    if flags & MSG_OOB:
        return -EOPNOTSUPP
    dest = None
    if name is not None and s.stype == SOCK_DGRAM:
        other = _lookup(k, p, name, SOCK_DGRAM)
        if isinstance(other, int):
            return other
        if other.stype != SOCK_DGRAM:
            return -EPROTOTYPE
        dest = other
    elif name is not None and s.stream():
        return -EISCONN if s.connected else -EOPNOTSUPP
    if s.passcred and s.name is None and s.stype == SOCK_DGRAM:
        _autobind(k, s)
    st = _st(c)
    while True:
        for x in files:
            x.refs += 1  # in flight: the message holds them
        queued = list(files)
        n = send(k, p, s, f, data[st.sent:], flags, dest, queued, cred)
        for x in queued:  # not queued (an error, or a wait): given back
            release(k, x)
        if n >= 0:
            st.sent += n
            files = []  # only the first part of a stream carries them
            if st.sent >= len(data) or s.stype != SOCK_STREAM:
                sent, st.sent, st.deadline = st.sent, 0, None
                return sent if s.stype == SOCK_STREAM else n
            continue
        if n == BLOCK:
            w = await _wait(k, p, c, s.sndtimeo)
            if w == BLOCK:
                return BLOCK
            sent, st.sent, st.deadline = st.sent, 0, None
            return sent or w
        sent, st.sent, st.deadline = st.sent, 0, None
        if sent:
            return sent
        if n == -EPIPE and not flags & MSG_NOSIGNAL:
            return await _broken_pipe(k, p, c)
        return n


async def sys_sendto(k: Personality, p: Proc, c: Call) -> int:
    fd, buf, n, flags, addr, alen = _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3]), c.a[4], _i(c.a[5])
    data = await k.read(p, buf, min(n, 1 << 22)) if n else b""
    if data is None:
        return -EFAULT
    name = None
    if addr:
        got = await _read_addr(k, p, addr, alen)
        if isinstance(got, int):
            return got
        name = got
    return await _sendmsg(k, p, c, fd, data, flags, name, [], None)


async def _sendmsg_hdr(k: Personality, p: Proc, c: Call, fd: int, hdr: int, flags: int) -> int:
    raw = await k.read(p, hdr, MSGHDR.size)
    if raw is None:
        return -EFAULT
    name_a, namelen, iov, iovlen, ctl, ctllen, _ = MSGHDR.unpack(raw)
    vecs = await iovecs(k, p, iov, iovlen, EMSGSIZE)
    if isinstance(vecs, int):
        return vecs
    data = await gather(k, p, vecs)
    if isinstance(data, int):
        return data
    name = None
    if name_a and namelen:
        got = await _read_addr(k, p, name_a, namelen)
        if isinstance(got, int):
            return got
        name = got
    ctl_r = await _control(k, p, ctl, ctllen)
    if isinstance(ctl_r, int):
        return ctl_r
    return await _sendmsg(k, p, c, fd, data, flags, name, *ctl_r)


async def sys_sendmsg(k: Personality, p: Proc, c: Call) -> int:
    return await _sendmsg_hdr(k, p, c, _i(c.a[0]), c.a[1], _i(c.a[2]))


async def _recv(k: Personality, p: Proc, c: Call, fd: int, n: int, flags: int) -> Got | int:
    r = _sock(p, fd)
    if isinstance(r, int):
        return r
    s, f = r
    if flags & MSG_OOB:
        return -EOPNOTSUPP if s.stype != SOCK_STREAM else -EINVAL
    st = _st(c)
    sofar = st.got
    want = n - (len(sofar) if sofar else 0)
    g = recv(k, p, s, f, want, flags, sofar)
    if isinstance(g, Got) and flags & MSG_WAITALL and s.stype == SOCK_STREAM and not flags & MSG_PEEK \
            and len(g.data) < n and not g.fds and not (s.shutdown & RCV_SHUTDOWN) \
            and s.peer is not None and not s.peer.dead:
        st.got = bytearray(g.data)
        s.watch(k, p.cur.tid)
        g = BLOCK
    if g == BLOCK:
        w = await _wait(k, p, c, s.rcvtimeo)
        if w == BLOCK:
            return BLOCK
        part, st.got, st.deadline = st.got, None, None
        if part:
            return Got(bytes(part), [], None, b"", 0, len(part))
        return w
    st.got, st.deadline = None, None
    return g


async def sys_recvfrom(k: Personality, p: Proc, c: Call) -> int:
    fd, buf, n, flags, addr, lenp = _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3]), c.a[4], c.a[5]
    g = await _recv(k, p, c, fd, min(n, 1 << 22), flags)
    if isinstance(g, int):
        return g
    for x in g.fds:  # recv() has no room for descriptors: they are closed
        release(k, x)
    if g.data and not await k.write(p, buf, g.data):
        return -EFAULT
    if addr and lenp:
        if g.addr:
            if await put_addr(k, p, addr, lenp, _sockaddr(g.addr)) < 0:
                return -EFAULT
        elif not await k.write(p, lenp, struct.pack("<i", 0)):
            return -EFAULT
    return g.full if flags & MSG_TRUNC and g.flags & MSG_TRUNC else len(g.data)


async def _recvmsg_hdr(k: Personality, p: Proc, c: Call, fd: int, hdr: int, flags: int) -> int:
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
    if not await scatter(k, p, vecs, g.data):
        return -EFAULT
    mflags = g.flags
    control = bytearray()
    s = p.fds[fd].file.node
    assert isinstance(s, Socket)
    if s.passcred and g.cred is not None:
        body = UCRED.pack(*g.cred)
        control += CMSGHDR.pack(CMSGHDR.size + len(body), SOL_SOCKET, SCM_CREDENTIALS) + body
        control += bytes(_align(len(control)) - len(control))
    if g.fds:
        room = (ctllen - len(control) - CMSGHDR.size) // 4 if ctllen >= len(control) + CMSGHDR.size else 0
        fit, rest = g.fds[:max(0, room)], g.fds[max(0, room):]
        nums = []
        for x in fit:
            nfd = install(p, x, bool(flags & MSG_CMSG_CLOEXEC))
            if nfd < 0:
                rest.append(x)
                continue
            nums.append(nfd)
        for x in rest:
            release(k, x)
            mflags |= MSG_CTRUNC
        if nums:
            body = struct.pack(f"<{len(nums)}i", *nums)
            control += CMSGHDR.pack(CMSGHDR.size + len(body), SOL_SOCKET, SCM_RIGHTS) + body
    if len(control) > ctllen:
        control = control[:ctllen]
        mflags |= MSG_CTRUNC
    if control and not await k.write(p, ctl, bytes(control)):
        return -EFAULT
    out_namelen = 0
    if name_a and g.addr:
        addr = _sockaddr(g.addr)
        if not await k.write(p, name_a, addr[:namelen]):
            return -EFAULT
        out_namelen = len(addr)
    used = len(control) if control else 0
    if not await k.write(p, hdr + 8, struct.pack("<I", out_namelen)) \
            or not await k.write(p, hdr + 40, struct.pack("<Q", used)) \
            or not await k.write(p, hdr + 48, struct.pack("<i", mflags)):
        return -EFAULT
    return g.full if flags & MSG_TRUNC and g.flags & MSG_TRUNC else len(g.data)


async def sys_recvmsg(k: Personality, p: Proc, c: Call) -> int:
    return await _recvmsg_hdr(k, p, c, _i(c.a[0]), c.a[1], _i(c.a[2]))


async def each_mmsg(k: Personality, p: Proc, c: Call,
                    one: Callable[[Personality, Proc, Call, int, int, int], Awaitable[int]]) -> int:
    """sendmmsg's and recvmmsg's loop, for AF_UNIX and the network's sockets alike: ``one(k,
    p, c, fd, hdr, flags)`` (a sendmsg or a recvmsg) for each struct mmsghdr (64 bytes: the
    msghdr and msg_len) in turn, with MSG_DONTWAIT after the first, each one's count written
    to its msg_len; the number done, or the first one's error.  How many are done is kept in
    the call's state while the first waits."""
    fd, vec, vlen, flags = _i(c.a[0]), c.a[1], min(c.a[2] & 0xFFFF_FFFF, 1024), _i(c.a[3])
    done = _st(c).done
    while done < vlen:
        _st(c).done = done
        r = await one(k, p, c, fd, vec + 64 * done, flags | (MSG_DONTWAIT if done else 0))
        if r == BLOCK:
            return BLOCK
        if r < 0:
            c.state = None
            return done or r
        await k.write(p, vec + 64 * done + 56, struct.pack("<I", r))
        done += 1
    c.state = None
    return done


async def sys_sendmmsg(k: Personality, p: Proc, c: Call) -> int:
    """sendmmsg: sendmsg for each struct mmsghdr (64 bytes: the msghdr and msg_len), as many
    as go without waiting after the first; the number sent."""
    return await each_mmsg(k, p, c, _sendmsg_hdr)


async def sys_recvmmsg(k: Personality, p: Proc, c: Call) -> int:
    """recvmmsg: recvmsg into each struct mmsghdr, waiting only for the first (and not at
    all with MSG_WAITFORONE's successors); the number received.  The timeout is not kept."""
    return await each_mmsg(k, p, c, _recvmsg_hdr)


# --------------------------------------------------------------------------- options
async def read_timeo(k: Personality, p: Proc, val: int, vlen: int) -> int:
    """The nanoseconds of SO_RCVTIMEO's or SO_SNDTIMEO's struct timeval, for AF_UNIX's
    sockets and the network's (a negative time is none; EINVAL for a short option, EFAULT,
    EDOM for tv_usec outside [0, 10^6))."""
    if vlen < 16:
        return -EINVAL
    raw = await k.read(p, val, 16)
    if raw is None:
        return -EFAULT
    sec, usec = struct.unpack("<qq", raw)
    if not 0 <= usec < 1_000_000:
        return -EDOM
    return int(max(0, sec) * 10**9 + usec * 1000)


def timeo_bytes(ns: int) -> bytes:
    """SO_RCVTIMEO's or SO_SNDTIMEO's value as getsockopt gives it, a struct timeval."""
    return struct.pack("<qq", ns // 10**9, ns % 10**9 // 1000)


async def sys_setsockopt(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s = r[0]
    level, opt, val, vlen = _i(c.a[1]), _i(c.a[2]), c.a[3], _i(c.a[4])
    if level != SOL_SOCKET:
        return -EOPNOTSUPP
    if opt in (SO_RCVTIMEO, SO_SNDTIMEO):
        ns = await read_timeo(k, p, val, vlen)
        if ns < 0:
            return ns
        if opt == SO_RCVTIMEO:
            s.rcvtimeo = ns
        else:
            s.sndtimeo = ns
        return 0
    if vlen < 4:
        return -EINVAL
    raw = await k.read(p, val, 4)
    if raw is None:
        return -EFAULT
    v = _i(int.from_bytes(raw, "little"))
    if opt in (SO_SNDBUF, SO_SNDBUFFORCE):
        s.sndbuf = max(SNDBUF_MIN, 2 * min(max(v, 0), BUF_MAX if opt == SO_SNDBUF else 1 << 30))
        s.changed(k)
    elif opt in (SO_RCVBUF, SO_RCVBUFFORCE):
        s.rcvbuf = max(RCVBUF_MIN, 2 * min(max(v, 0), BUF_MAX if opt == SO_RCVBUF else 1 << 30))
    elif opt == SO_PASSCRED:
        s.passcred = bool(v)
    elif opt in (SO_REUSEADDR, SO_KEEPALIVE, SO_BROADCAST, SO_LINGER, SO_RCVLOWAT, SO_SNDLOWAT):
        pass  # accepted: they change nothing for a local socket
    else:  # read-only (SO_TYPE, SO_PEERCRED, ...) or unknown
        return -ENOPROTOOPT
    return 0



async def sys_getsockopt(k: Personality, p: Proc, c: Call) -> int:
    r = _sock(p, _i(c.a[0]))
    if isinstance(r, int):
        return r
    s = r[0]
    level, opt, val, lenp = _i(c.a[1]), _i(c.a[2]), c.a[3], c.a[4]
    if level != SOL_SOCKET:
        return -EOPNOTSUPP
    raw = await k.read(p, lenp, 4)
    if raw is None:
        return -EFAULT
    room = _i(int.from_bytes(raw, "little"))
    if room < 0:
        return -EINVAL
    ints = {SO_TYPE: s.stype, SO_SNDBUF: s.sndbuf, SO_RCVBUF: s.rcvbuf, SO_PASSCRED: int(s.passcred),
            SO_ACCEPTCONN: int(s.listening), SO_PROTOCOL: 0, SO_DOMAIN: AF_UNIX, SO_REUSEADDR: 0,
            SO_KEEPALIVE: 0, SO_BROADCAST: 0, SO_RCVLOWAT: 1, SO_SNDLOWAT: 1}
    if opt == SO_ERROR:
        data = struct.pack("<i", s.err)
        s.err = 0
    elif opt in ints:
        data = struct.pack("<i", ints[opt])
    elif opt == SO_PEERCRED:
        pid, uid, gid = s.peercred if s.peercred is not None else (0, 0xFFFF_FFFF, 0xFFFF_FFFF)
        data = UCRED.pack(pid, uid, gid)
    elif opt in (SO_RCVTIMEO, SO_SNDTIMEO):
        ns = s.rcvtimeo if opt == SO_RCVTIMEO else s.sndtimeo
        data = timeo_bytes(ns)
    elif opt == SO_LINGER:
        data = struct.pack("<ii", 0, 0)
    else:
        return -ENOPROTOOPT
    data = data[:room]
    if not await k.write(p, val, data) or not await k.write(p, lenp, struct.pack("<i", len(data))):
        return -EFAULT
    return 0

