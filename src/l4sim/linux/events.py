"""Event files of the Linux personality: eventfd, epoll, signalfd and pid file descriptors.

Each is a :class:`~l4sim.linux.state.Special` inode behind an ordinary open file, so read,
write, poll, select, ``fcntl`` and close treat it as Linux treats an anonymous inode
(``fstat``: mode 0600, ``/proc/PID/fd``: ``anon_inode:[eventfd]`` ...):

- **eventfd** (``eventfd``, ``eventfd2``): a 64-bit counter; a write adds (waiting while it
  would pass 2^64 - 2), a read takes it all -- or one, with ``EFD_SEMAPHORE`` -- and waits
  while it is 0.
- **epoll** (``epoll_create``, ``epoll_create1``, ``epoll_ctl``, ``epoll_wait``,
  ``epoll_pwait``, ``epoll_pwait2``): an interest list of (fd, open file) items with their
  events and data.  A wait reports the items that are ready now -- level-triggered, or
  edge-triggered (``EPOLLET``: again only after the file changed since it was last
  reported), ``EPOLLONESHOT`` disabling an item until ``EPOLL_CTL_MOD`` -- and otherwise
  waits (answered later) until one of the files changes, a timer file expires or the
  timeout passes; a signal ends the wait with EINTR.  An item goes when its open file's
  last reference goes (closing one of two fds of a file keeps it, as on Linux).  Regular
  files and directories cannot be added (EPERM), an epoll instance can (readable while one
  of its items is ready), but not into itself or a loop (ELOOP).  Items are reported in the
  order they were first found ready and, level-triggered, put back at the end -- Linux's
  ready list, except that files that became ready between two waits are taken in the
  order they were added, not the order they became ready.
- **signalfd** (``signalfd``, ``signalfd4``): reads the signals of its mask that are
  pending for the reading thread (its own first, then the process's), each as a 128-byte
  ``signalfd_siginfo`` with the signal, its code, the sender's pid and, for SIGCHLD, the
  child's status; the signals must be blocked, or they are delivered as usual first.
- **pidfd** (``pidfd_open``, ``pidfd_send_signal``, ``pidfd_getfd``; ``waitid`` with
  ``P_PIDFD``): readable when the process has ended.

Timers (timerfd, alarm, setitimer, POSIX timers) are in :mod:`l4sim.linux.timers`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from l4sim.linux.files import next_change, ready, watch
from l4sim.linux.process import send_signal
from l4sim.linux.signals import RESTART_NOHAND, UNBLOCKABLE, interrupt, read_timespec
from l4sim.linux.state import (
    BLOCK,
    Call,
    Facility,
    Personality,
    PidFd,
    Proc,
    Special,
    get,
    install,
)
from l4sim.linux.vfs import O_CLOEXEC, O_NONBLOCK, Dir, File, OFile

EPERM, ENOENT, ESRCH, EBADF, EAGAIN, EFAULT, EEXIST, EINVAL, ELOOP = 1, 2, 3, 9, 11, 14, 17, 22, 40
POLLIN, POLLOUT, POLLERR, POLLHUP, POLLRDNORM, POLLWRNORM = 0x1, 0x4, 0x8, 0x10, 0x40, 0x100
#: an anonymous inode's mode, as fstat shows it (no file type bits)
ANON_MODE = 0o600
EFD_SEMAPHORE = 1
EVENTFD_MAX = (1 << 64) - 2
EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
#: struct epoll_event is packed on x86-64: events (u32), data (u64)
EPOLL_EVENT = struct.Struct("<IQ")
#: an epoll instance may hold another this many levels deep (Linux's EP_MAX_NESTS)
EP_MAX_NESTS = 4
SIGNALFD_SIGINFO = 128
SIGCHLD = 17


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def anon(k: Personality, node: Special, flags: int, name: str, cloexec: bool, p: Proc) -> int:
    """Install an open file of the anonymous inode ``node`` in ``p``: the fd, or -EMFILE."""
    now = k.wall_ns()
    node.atime = node.mtime = node.ctime = node.btime = now
    return install(p, OFile(node, flags, f"anon_inode:[{name}]"), cloexec)


# --------------------------------------------------------------------------- eventfd
class EventFd(Special):
    """An eventfd's counter."""

    def __init__(self, count: int, semaphore: bool) -> None:
        super().__init__(ANON_MODE)
        self.count = count
        self.semaphore = semaphore

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if n < 8:
            return -EINVAL
        if self.count == 0:
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            self.watch(k, p.cur.tid)
            return BLOCK
        v = 1 if self.semaphore else self.count
        self.count -= v
        self.changed(k)
        return struct.pack("<Q", v)

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        if len(data) < 8:
            return -EINVAL
        (v,) = struct.unpack_from("<Q", data)
        if v == (1 << 64) - 1:
            return -EINVAL
        if self.count + v > EVENTFD_MAX:
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            self.watch(k, p.cur.tid)
            return BLOCK
        self.count += v
        if v:
            self.changed(k)
        return 8

    def ready(self, k: Personality, f: OFile) -> int:
        return (POLLIN if self.count else 0) | (POLLOUT if self.count < EVENTFD_MAX else 0)

    def nread(self) -> int:
        return 8 if self.count else 0


async def sys_eventfd2(k: Personality, p: Proc, c: Call) -> int:
    initval = c.a[0] & 0xFFFF_FFFF
    flags = c.a[1] if c.nr == 290 else 0
    if flags & ~(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE):
        return -EINVAL
    return anon(k, EventFd(initval, bool(flags & EFD_SEMAPHORE)), 2 | flags & O_NONBLOCK, "eventfd",
                bool(flags & O_CLOEXEC), p)


# --------------------------------------------------------------------------- epoll
@dataclass(eq=False)
class Item:
    """One entry of an interest list (Linux's epitem): the fd and open file it was added with."""

    fd: int
    file: OFile
    events: int
    data: int
    #: the file's change count when it was last reported (edge-triggered)
    seen: int = -1
    #: disabled by EPOLLONESHOT until EPOLL_CTL_MOD
    off: bool = False


def _gen(f: OFile) -> int:
    """How often ``f``'s readiness may have changed (a special file's or a pipe's count)."""
    node = f.node
    if isinstance(node, Special):
        return node.gen
    pipe = getattr(node, "pipe", None)
    return pipe.gen if pipe is not None else 0


class Epoll(Special):
    """An epoll instance: its interest list and ready list."""

    def __init__(self) -> None:
        super().__init__(ANON_MODE)
        self.items: dict[tuple[int, OFile], Item] = {}
        #: items found ready and not yet reported, or reported level-triggered, in order
        self.rdlist: list[Item] = []

    def fires(self, k: Personality, it: Item) -> int:
        """The events ``it`` would report now (0: none)."""
        if it.off:
            return 0
        rev = ready(k, it.file) & (it.events | POLLERR | POLLHUP)
        if rev and it.events & EPOLLET and _gen(it.file) == it.seen:
            return 0
        return rev

    def collect(self, k: Personality, limit: int) -> list[tuple[int, int]]:
        """Take up to ``limit`` (events, data) pairs of ready items (see the module docstring)."""
        for it in self.items.values():
            if it not in self.rdlist and self.fires(k, it):
                self.rdlist.append(it)
        out: list[tuple[int, int]] = []
        keep: list[Item] = []
        again: list[Item] = []
        for it in self.rdlist:
            if len(out) >= limit:
                keep.append(it)
                continue
            rev = self.fires(k, it)
            if not rev or (it.fd, it.file) not in self.items:
                continue
            out.append((rev, it.data))
            if it.events & EPOLLONESHOT:
                it.off = True
            elif it.events & EPOLLET:
                it.seen = _gen(it.file)
            else:
                again.append(it)  # level-triggered: it goes to the back of the ready list
        self.rdlist = keep + again
        return out

    def ready(self, k: Personality, f: OFile) -> int:
        return POLLIN if any(self.fires(k, it) for it in self.items.values()) else 0

    def watch(self, k: Personality, tid: int) -> None:
        self.waiters.add(tid)
        for it in self.items.values():
            watch(k, it.file, tid)

    def deadline(self, k: Personality) -> int | None:
        return next_change(k, [it.file for it in self.items.values()])


class Events(Facility):
    """The epoll instances of the system: an item goes when its open file's last reference
    goes (Linux's eventpoll_release)."""

    def __init__(self) -> None:
        self.epolls: list[Epoll] = []

    def released(self, k: Personality, f: OFile) -> None:
        if isinstance(f.node, Epoll) and f.node in self.epolls:
            self.epolls.remove(f.node)
        for ep in self.epolls:
            for key in [key for key in ep.items if key[1] is f]:
                it = ep.items.pop(key)
                if it in ep.rdlist:
                    ep.rdlist.remove(it)

    async def proc_ends(self, k: Personality, p: Proc) -> None:
        """A pidfd of ``p`` becomes readable."""
        for q in k.procs.values():
            for e in q.fds.values():
                if isinstance(e.file.node, PidFd) and e.file.node.pid == p.pid:
                    e.file.node.changed(k)


async def sys_epoll_create1(k: Personality, p: Proc, c: Call) -> int:
    if c.nr == 213:  # epoll_create(size): size > 0, otherwise unused
        if _i(c.a[0]) <= 0:
            return -EINVAL
        flags = 0
    else:
        flags = c.a[0] & 0xFFFF_FFFF
        if flags & ~O_CLOEXEC:
            return -EINVAL
    ep = Epoll()
    fd = anon(k, ep, 2, "eventpoll", bool(flags & O_CLOEXEC), p)
    if fd >= 0:
        k.facility(Events).epolls.append(ep)
    return fd


def _reaches(ep: Epoll, target: Epoll, depth: int = 0) -> bool:
    """Does ``ep`` hold ``target``, directly or through nested instances (or too deep)?"""
    if depth > EP_MAX_NESTS:
        return True
    for it in ep.items.values():
        node = it.file.node
        if node is target or (isinstance(node, Epoll) and _reaches(node, target, depth + 1)):
            return True
    return False


async def sys_epoll_ctl(k: Personality, p: Proc, c: Call) -> int:
    epfd, op, fd, ev = _i(c.a[0]), _i(c.a[1]), _i(c.a[2]), c.a[3]
    events = data = 0
    if op != EPOLL_CTL_DEL:
        raw = await k.read(p, ev, EPOLL_EVENT.size)
        if raw is None:
            return -EFAULT
        events, data = EPOLL_EVENT.unpack(raw)
    ef, f = get(p, epfd), get(p, fd)
    if ef is None or f is None:
        return -EBADF
    ep = ef.node
    if not isinstance(ep, Epoll) or fd == epfd:
        return -EINVAL
    if isinstance(f.node, (File, Dir)):
        return -EPERM  # regular files and directories are always ready: Linux refuses them
    key = (fd, f)
    it = ep.items.get(key)
    if op == EPOLL_CTL_ADD:
        if it is not None:
            return -EEXIST
        if isinstance(f.node, Epoll) and (f.node is ep or _reaches(f.node, ep)):
            return -ELOOP
        ep.items[key] = Item(fd, f, events, data)
        ep.changed(k)
        return 0
    if op == EPOLL_CTL_DEL:
        if it is None:
            return -ENOENT
        del ep.items[key]
        if it in ep.rdlist:
            ep.rdlist.remove(it)
        return 0
    if op == EPOLL_CTL_MOD:
        if it is None:
            return -ENOENT
        if events & EPOLLEXCLUSIVE or it.events & EPOLLEXCLUSIVE:
            return -EINVAL  # Linux: EPOLLEXCLUSIVE is for EPOLL_CTL_ADD only
        it.events, it.data, it.off, it.seen = events, data, False, -1
        ep.changed(k)
        return 0
    return -EINVAL


@dataclass
class EpollWait:
    """A waiting epoll_wait: when it times out (None: never), the mask it replaced."""

    deadline: int | None
    mask: int | None = None
    started: bool = field(default=False)


async def _epoll_wait(k: Personality, p: Proc, c: Call, timeout_ns: int | None, sigmask: int) -> int:
    epfd, events, maxevents = _i(c.a[0]), c.a[1], _i(c.a[2])
    t = p.cur
    if c.state is None:
        if maxevents <= 0 or maxevents > (1 << 31) // EPOLL_EVENT.size:
            return -EINVAL
        ef = get(p, epfd)
        if ef is None:
            return -EBADF
        if not isinstance(ef.node, Epoll):
            return -EINVAL
        st = EpollWait(None if timeout_ns is None else k.now_ns + timeout_ns)
        if sigmask:  # epoll_pwait: the mask while it waits, as rt_sigsuspend
            raw = await k.read(p, sigmask, 8)
            if raw is None:
                return -EFAULT
            st.mask = t.sigmask
            t.saved_mask = t.sigmask
            t.sigmask = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
        c.state = st
    st = c.state
    ef = get(p, epfd)
    ep = ef.node if ef is not None else None
    if not isinstance(ep, Epoll):
        return _end_wait(k, p, c, -EBADF)
    got = ep.collect(k, maxevents)
    if got:
        data = b"".join(EPOLL_EVENT.pack(e, d) for e, d in got)
        if not await k.write(p, events, data):
            return _end_wait(k, p, c, -EFAULT)
        return _end_wait(k, p, c, len(got))
    if st.deadline is not None and k.now_ns >= st.deadline:
        return _end_wait(k, p, c, 0)
    ep.watch(k, t.tid)
    at = ep.deadline(k)
    if st.deadline is not None:
        at = st.deadline if at is None else min(at, st.deadline)
    if at is not None:
        k.sleepers[t.tid] = at
    p.sig_waiters.add(t.tid)
    r = await interrupt(k, p, c, RESTART_NOHAND)
    if r != BLOCK:  # EINTR: the handler's frame keeps the mask epoll_pwait replaced (saved_mask)
        k.sleepers.pop(t.tid, None)
    return r


def _end_wait(k: Personality, p: Proc, c: Call, r: int) -> int:
    """The wait finishes: its sleeper goes and epoll_pwait's mask is given back."""
    st: EpollWait = c.state
    t = p.cur
    k.sleepers.pop(t.tid, None)
    if st.mask is not None:
        t.sigmask, t.saved_mask = st.mask, None
    c.state = None
    return r


async def sys_epoll_wait(k: Personality, p: Proc, c: Call) -> int:
    ms = _i(c.a[3])
    sigmask = c.a[4] if c.nr == 281 else 0  # epoll_pwait
    if sigmask and c.state is None and c.a[5] != 8:
        return -EINVAL
    return await _epoll_wait(k, p, c, None if ms < 0 else ms * 1_000_000, sigmask)


async def sys_epoll_pwait2(k: Personality, p: Proc, c: Call) -> int:
    timeout_ns = None
    if c.state is None and c.a[3]:
        t = await read_timespec(k, p, c.a[3])
        if t < 0:
            return t
        timeout_ns = t
    if c.a[4] and c.state is None and c.a[5] != 8:
        return -EINVAL
    return await _epoll_wait(k, p, c, timeout_ns, c.a[4])


# --------------------------------------------------------------------------- signalfd
SIGNALFD_INFO = struct.Struct("<IiiIIiIIIIiiQQQQH")


class SignalFd(Special):
    """A signalfd: the signals it reads."""

    def __init__(self, mask: int) -> None:
        super().__init__(ANON_MODE)
        self.mask = mask

    def _pending(self, k: Personality, p: Proc) -> list[tuple[int, bool]]:
        t = p.cur
        own = sorted(s for s in t.pending if self.mask >> (s - 1) & 1)
        shared = sorted(s for s in p.pending if self.mask >> (s - 1) & 1)
        return [(s, True) for s in own] + [(s, False) for s in shared]

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if n < SIGNALFD_SIGINFO:
            return -EINVAL
        sigs = self._pending(k, p)
        if not sigs:
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            p.sig_waiters.add(p.cur.tid)
            return BLOCK
        out = bytearray()
        for sig, own in sigs[: n // SIGNALFD_SIGINFO]:
            key = (p.cur.tid if own else p.pid, sig)
            (p.cur.pending if own else p.pending).discard(sig)
            code, pid, status = k.siginfo.pop(key, (0, 0, 0))
            out += SIGNALFD_INFO.pack(sig, 0, code, pid, 0, 0, 0, 0, 0, 0, status, 0, 0, 0, 0, 0, 0) \
                .ljust(SIGNALFD_SIGINFO, b"\0")
        return bytes(out)

    def ready(self, k: Personality, f: OFile) -> int:
        t = k.threads.get(k.cur)
        if t is None:
            return 0
        return POLLIN if self._pending(k, t.proc) else 0

    def watch(self, k: Personality, tid: int) -> None:
        self.waiters.add(tid)
        t = k.threads.get(tid)
        if t is not None:
            t.proc.sig_waiters.add(tid)  # a signal made pending wakes it (Personality.post)


async def sys_signalfd4(k: Personality, p: Proc, c: Call) -> int:
    fd, maskp, size = _i(c.a[0]), c.a[1], c.a[2]
    flags = c.a[3] & 0xFFFF_FFFF if c.nr == 289 else 0
    if size != 8 or flags & ~(O_CLOEXEC | O_NONBLOCK):
        return -EINVAL
    raw = await k.read(p, maskp, 8)
    if raw is None:
        return -EFAULT
    mask = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
    if fd == -1:
        return anon(k, SignalFd(mask), flags & O_NONBLOCK, "signalfd", bool(flags & O_CLOEXEC), p)
    f = get(p, fd)
    if f is None:
        return -EBADF
    if not isinstance(f.node, SignalFd):
        return -EINVAL
    f.node.mask = mask
    f.node.changed(k)
    return fd


# --------------------------------------------------------------------------- sigtimedwait
@dataclass
class SigWait:
    """A waiting rt_sigtimedwait: its set and when it gives up (None: never)."""

    mask: int
    deadline: int | None


async def sys_rt_sigtimedwait(k: Personality, p: Proc, c: Call) -> int:
    """rt_sigtimedwait(set, info, timeout, sigsetsize): take a pending signal of ``set`` (the
    thread's own first, then the process's, lowest first) without running its handler; wait
    (answered later) until one comes, the timeout passes (EAGAIN) or another signal's handler
    interrupts (EINTR).  sigwait, sigwaitinfo and sigtimedwait are built on it."""
    t = p.cur
    if c.state is None:
        if c.a[3] != 8:
            return -EINVAL
        raw = await k.read(p, c.a[0], 8)
        if raw is None:
            return -EFAULT
        deadline = None
        if c.a[2]:
            ns = await read_timespec(k, p, c.a[2])
            if ns < 0:
                return ns
            deadline = k.now_ns + ns
        c.state = SigWait(struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE, deadline)
    st: SigWait = c.state
    for pend, key in ((t.pending, t.tid), (p.pending, p.pid)):
        sigs = sorted(s for s in pend if st.mask >> (s - 1) & 1)
        if sigs:
            sig = sigs[0]
            pend.discard(sig)
            k.sleepers.pop(t.tid, None)
            code, pid, status = k.siginfo.pop((key, sig), (0, 0, 0))
            if c.a[1]:
                info = struct.pack("<iiiiIIi", sig, 0, code, 0, pid, 0, status).ljust(128, b"\0")
                if not await k.write(p, c.a[1], info):
                    return -EFAULT
            return sig
    if st.deadline is not None and k.now_ns >= st.deadline:
        k.sleepers.pop(t.tid, None)
        return -EAGAIN
    if st.deadline is not None:
        k.sleepers[t.tid] = st.deadline
    p.sig_waiters.add(t.tid)
    # the set's signals are waited for even when blocked; others interrupt as usual
    saved = t.sigmask
    t.sigmask |= st.mask
    try:
        return await interrupt(k, p, c, RESTART_NOHAND)
    finally:
        t.sigmask = saved


# --------------------------------------------------------------------------- pidfd
PIDFD_NONBLOCK = O_NONBLOCK


async def sys_pidfd_open(k: Personality, p: Proc, c: Call) -> int:
    pid, flags = _i(c.a[0]), c.a[1] & 0xFFFF_FFFF
    if flags & ~PIDFD_NONBLOCK or pid <= 0:
        return -EINVAL
    q = k.procs.get(pid)
    if q is None:
        return -ESRCH if pid not in k.threads else -ENOENT  # a thread that leads no process
    node = PidFd(pid)
    return anon(k, node, flags & O_NONBLOCK, "pidfd", True, p)


def _pidfd_proc(k: Personality, p: Proc, fd: int) -> Proc | int:
    f = get(p, fd)
    if f is None:
        return -EBADF
    if not isinstance(f.node, PidFd):
        return -EBADF
    q = k.procs.get(f.node.pid)
    return q if q is not None else -ESRCH


async def sys_pidfd_send_signal(k: Personality, p: Proc, c: Call) -> int:
    """pidfd_send_signal(pidfd, sig, NULL, 0): kill(2) through a pidfd (no siginfo)."""
    fd, sig, info, flags = _i(c.a[0]), _i(c.a[1]), c.a[2], c.a[3]
    if flags or info:
        return -EINVAL
    q = _pidfd_proc(k, p, fd)
    if isinstance(q, int):
        return q
    return await send_signal(k, p, c, [q], sig)


async def sys_pidfd_getfd(k: Personality, p: Proc, c: Call) -> int:
    """A duplicate of another process's fd (close-on-exec), as SCM_RIGHTS would pass it."""
    fd, target, flags = _i(c.a[0]), _i(c.a[1]), c.a[2]
    if flags:
        return -EINVAL
    q = _pidfd_proc(k, p, fd)
    if isinstance(q, int):
        return q
    e = q.fds.get(target)
    if e is None:
        return -EBADF
    n = install(p, e.file, True)
    if n >= 0:
        e.file.refs += 1
    return n


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    128: ("rt_sigtimedwait", sys_rt_sigtimedwait, "pppu"),
    213: ("epoll_create", sys_epoll_create1, "d"),
    232: ("epoll_wait", sys_epoll_wait, "dpdd"),
    233: ("epoll_ctl", sys_epoll_ctl, "dddp"),
    281: ("epoll_pwait", sys_epoll_wait, "dpddpu"),
    282: ("signalfd", sys_signalfd4, "dpu"),
    284: ("eventfd", sys_eventfd2, "u"),
    289: ("signalfd4", sys_signalfd4, "dpux"),
    290: ("eventfd2", sys_eventfd2, "ux"),
    291: ("epoll_create1", sys_epoll_create1, "x"),
    424: ("pidfd_send_signal", sys_pidfd_send_signal, "ddpx"),
    434: ("pidfd_open", sys_pidfd_open, "dx"),
    438: ("pidfd_getfd", sys_pidfd_getfd, "ddx"),
    441: ("epoll_pwait2", sys_epoll_pwait2, "dpdppu"),
}
