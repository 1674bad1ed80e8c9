"""Timers of the Linux personality, on simulated time: timerfd, alarm and setitimer, POSIX timers.

- **timerfd** (``timerfd_create``, ``timerfd_settime``, ``timerfd_gettime``): a
  :class:`~l4sim.linux.state.Special` file whose expirations are counted from simulated
  time when it is looked at (nothing runs while nobody looks); a read returns the count
  and waits while it is 0 -- a reader, ``poll`` and ``epoll`` sleep until the next
  expiry (``Personality.sleepers``).  Absolute times on ``CLOCK_REALTIME`` are on the
  simulated wall clock.
- **Signal timers**: ``alarm``, ``setitimer``/``getitimer`` (``ITIMER_REAL``: SIGALRM) and
  POSIX timers (``timer_create``, ``timer_settime``, ``timer_gettime``,
  ``timer_getoverrun``, ``timer_delete``; ``SIGEV_SIGNAL``, ``SIGEV_THREAD_ID``,
  ``SIGEV_NONE``).  Their expiry times are in ``Personality.timers``; the serve loop
  wakes for the earliest and calls :func:`expire`, which sends the signal as the kernel
  sends one (a handler's signal becomes pending, a blocked one too, a fatal one ends the
  process when it runs) and reloads periodic timers.  A POSIX timer whose signal is still
  pending when it expires again counts an overrun instead.  A process's timers go when it
  ends; fork does not copy them; execve keeps ``alarm``'s and drops the POSIX ones.

``ITIMER_VIRTUAL`` and ``ITIMER_PROF`` (CPU-time timers) and timers on CPU-time clocks
are not there (EINVAL).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l4sim.linux.events import ANON_MODE, POLLIN, anon
from l4sim.linux.signals import IGNORED_BY_DEFAULT, doom
from l4sim.linux.state import BLOCK, Call, Facility, Personality, Proc, Special, get
from l4sim.linux.vfs import EPOCH, O_CLOEXEC, O_NONBLOCK, OFile

ESRCH, EBADF, EAGAIN, EFAULT, EINVAL = 3, 9, 11, 14, 22
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 0, 1, 7, 8, 9
CLOCK_TAI = 11
TIMER_CLOCKS = frozenset((CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
                          CLOCK_BOOTTIME_ALARM, CLOCK_TAI))
REALTIME_CLOCKS = frozenset((CLOCK_REALTIME, CLOCK_REALTIME_ALARM, CLOCK_TAI))
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TIMER_ABSTIME = 1
ITIMER_REAL = 0
SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, SIGEV_THREAD_ID = 0, 1, 2, 4
SIGALRM = 14
#: si_code of a POSIX timer's signal and of the kernel's own (alarm, setitimer)
SI_TIMER, SI_KERNEL = -2, 0x80
EPOCH_NS = EPOCH * 1_000_000_000
#: a process may have this many POSIX timers (well below Linux's RLIMIT_SIGPENDING)
MAX_TIMERS = 4096


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _ts(raw: bytes, off: int = 0) -> int | None:
    """A timespec at ``off`` as nanoseconds; None when it is not valid."""
    sec, nsec = struct.unpack_from("<qq", raw, off)
    if sec < 0 or not 0 <= nsec < 10**9:
        return None
    return int(sec * 10**9 + nsec)


def _itimerspec(interval: int, value: int) -> bytes:
    return struct.pack("<qqqq", interval // 10**9, interval % 10**9, value // 10**9, value % 10**9)


# --------------------------------------------------------------------------- timerfd
class TimerFd(Special):
    """A timerfd: its clock, period and next expiry (simulated ns since boot), and the
    expirations not read yet."""

    def __init__(self, clock: int) -> None:
        super().__init__(ANON_MODE)
        self.clock = clock
        self.interval = 0
        self.next: int | None = None
        self.ticks = 0

    def advance(self, k: Personality) -> None:
        """Count the expirations up to now."""
        if self.next is None or k.now_ns < self.next:
            return
        if self.interval:
            n = (k.now_ns - self.next) // self.interval + 1
            self.next += n * self.interval
        else:
            n, self.next = 1, None
        self.ticks += n
        self.gen += 1

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if n < 8:
            return -EINVAL
        self.advance(k)
        tid = p.cur.tid
        if not self.ticks:
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            self.watch(k, tid)
            if self.next is not None:
                k.sleepers[tid] = self.next
            else:
                k.sleepers.pop(tid, None)
            return BLOCK
        k.sleepers.pop(tid, None)
        v, self.ticks = self.ticks, 0
        return struct.pack("<Q", v)

    def ready(self, k: Personality, f: OFile) -> int:
        self.advance(k)
        return POLLIN if self.ticks else 0

    def nread(self) -> int:
        return 8 if self.ticks else 0

    def deadline(self, k: Personality) -> int | None:
        return None if self.ticks else self.next

    def remaining(self, k: Personality) -> int:
        self.advance(k)
        return 0 if self.next is None else max(1, self.next - k.now_ns)


async def sys_timerfd_create(k: Personality, p: Proc, c: Call) -> int:
    clock, flags = _i(c.a[0]), c.a[1] & 0xFFFF_FFFF
    if clock not in (CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM,
                     CLOCK_BOOTTIME_ALARM) or flags & ~(O_CLOEXEC | O_NONBLOCK):
        return -EINVAL
    return anon(k, TimerFd(clock), flags & O_NONBLOCK, "timerfd", bool(flags & O_CLOEXEC), p)


def _timerfd(p: Proc, fd: int) -> TimerFd | int:
    f = get(p, fd)
    if f is None:
        return -EBADF
    return f.node if isinstance(f.node, TimerFd) else -EINVAL


async def sys_timerfd_settime(k: Personality, p: Proc, c: Call) -> int:
    fd, flags, new, old = _i(c.a[0]), c.a[1] & 0xFFFF_FFFF, c.a[2], c.a[3]
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        return -EINVAL
    raw = await k.read(p, new, 32)
    if raw is None:
        return -EFAULT
    interval, value = _ts(raw, 0), _ts(raw, 16)
    if interval is None or value is None:
        return -EINVAL
    tf = _timerfd(p, fd)
    if isinstance(tf, int):
        return tf
    if old and not await k.write(p, old, _itimerspec(tf.interval, tf.remaining(k))):
        return -EFAULT
    tf.ticks, tf.interval = 0, interval
    if value == 0:
        tf.next = None
    elif flags & TFD_TIMER_ABSTIME:
        tf.next = value - (EPOCH_NS if tf.clock in REALTIME_CLOCKS else 0)
    else:
        tf.next = k.now_ns + value
    tf.changed(k)
    return 0


async def sys_timerfd_gettime(k: Personality, p: Proc, c: Call) -> int:
    tf = _timerfd(p, _i(c.a[0]))
    if isinstance(tf, int):
        return tf
    return 0 if await k.write(p, c.a[1], _itimerspec(tf.interval, tf.remaining(k))) else -EFAULT


# --------------------------------------------------------------------------- signal timers
@dataclass(eq=False)
class Timer:
    """A timer that sends a signal: alarm's and setitimer's (``posix`` False) or a POSIX one."""

    key: int  # its entry in Personality.timers
    pid: int
    posix: bool
    ident: int = 0  # the POSIX timer id
    clock: int = CLOCK_MONOTONIC
    sig: int = SIGALRM  # 0: SIGEV_NONE
    tid: int = 0  # SIGEV_THREAD_ID: the thread it signals
    interval: int = 0
    next: int | None = None
    overrun: int = 0
    last_overrun: int = 0
    #: its signal was sent and may still be pending (see :func:`_delivered`)
    sent: bool = False
    #: the process's execve count when it was made: execve drops POSIX timers
    execs: int = 0


class Timers(Facility):
    """The signal timers of the system."""

    def __init__(self) -> None:
        self.by_key: dict[int, Timer] = {}
        self.itimer: dict[int, Timer] = {}  # pid -> its ITIMER_REAL
        self.posix: dict[tuple[int, int], Timer] = {}  # (pid, timer id)
        self.next_id: dict[int, int] = {}  # pid -> the next POSIX timer id
        self.keys = 0

    def new(self, k: Personality, pid: int, posix: bool) -> Timer:
        self.keys += 1
        t = Timer(self.keys, pid, posix)
        self.by_key[t.key] = t
        return t

    def arm(self, k: Personality, t: Timer, value: int, interval: int, absolute: bool) -> None:
        t.interval = interval
        if value == 0:
            t.next = None
        elif absolute:
            t.next = value - (EPOCH_NS if t.clock in REALTIME_CLOCKS else 0)
        else:
            t.next = k.now_ns + value
        if t.next is None:
            k.timers.pop(t.key, None)
        else:
            k.timers[t.key] = t.next

    def drop(self, k: Personality, t: Timer) -> None:
        k.timers.pop(t.key, None)
        self.by_key.pop(t.key, None)
        if t.posix:
            self.posix.pop((t.pid, t.ident), None)
        elif self.itimer.get(t.pid) is t:
            del self.itimer[t.pid]

    async def proc_ends(self, k: Personality, p: Proc) -> None:
        for t in [t for t in self.by_key.values() if t.pid == p.pid]:
            self.drop(k, t)
        self.next_id.pop(p.pid, None)

    def remaining(self, k: Personality, t: Timer) -> int:
        return 0 if t.next is None else max(1, t.next - k.now_ns)


async def expire(k: Personality) -> None:
    """Fire the signal timers whose time has come (earliest first), reloading periodic ones."""
    tm = k.facility(Timers)
    due = sorted((at, key) for key, at in k.timers.items() if at <= k.now_ns)
    for _, key in due:
        t = tm.by_key.get(key)
        if t is None or t.next is None:
            k.timers.pop(key, None)
            continue
        q = k.procs.get(t.pid)
        if q is None or (t.posix and q.acct.execs != t.execs):
            tm.drop(k, t)
            continue
        n = 1
        if t.interval:
            n += (k.now_ns - t.next) // t.interval
            t.next += n * t.interval
            k.timers[key] = t.next
        else:
            t.next = None
            del k.timers[key]
        if t.sig:
            await _send(k, q, t, n)


def _pending(k: Personality, t: Timer) -> set[int] | None:
    """The pending set the timer's signal goes to (None: its target is gone)."""
    q = k.procs.get(t.pid)
    if q is None:
        return None
    th = q.threads.get(t.tid) if t.tid else None
    return th.pending if th is not None else q.pending


def _delivered(k: Personality, t: Timer) -> None:
    """When the timer's last signal is no longer pending, it was delivered: the overruns
    counted meanwhile become what timer_getoverrun reports (Linux sets it at delivery)."""
    pending = _pending(k, t)
    if t.sent and (pending is None or t.sig not in pending):
        t.last_overrun, t.overrun, t.sent = t.overrun, 0, False


def _discard(k: Personality, t: Timer) -> None:
    """Re-arming or deleting a POSIX timer drops its signal still pending (Linux ignores a
    timer's queued signal once the timer has been set again)."""
    _delivered(k, t)
    pending = _pending(k, t)
    if t.sent and pending is not None and t.sig in pending:
        pending.discard(t.sig)
        t.sent = False


async def _send(k: Personality, q: Proc, t: Timer, n: int) -> None:
    """The timer's signal to its process (or thread), from the kernel; when it is still
    pending from the last expiry, the expirations count as overruns."""
    sig = t.sig
    th = q.threads.get(t.tid) if t.tid else None
    if t.posix:
        _delivered(k, t)
        if t.sent:  # still pending
            t.overrun += n
            return
        t.overrun, t.sent = n - 1, True
    info = (SI_TIMER if t.posix else SI_KERNEL, 0, 0)
    bit = 1 << (sig - 1)
    blocked = all(x.sigmask & bit for x in ((th,) if th is not None else q.threads.values()))
    if sig in q.sighand or blocked:
        k.post(q, sig, th, info)
    elif not (sig in q.sigign or sig in IGNORED_BY_DEFAULT):
        await doom(k, q, sig, th)


async def sys_setitimer(k: Personality, p: Proc, c: Call) -> int:
    which, new, old = _i(c.a[0]), c.a[1], c.a[2]
    if which != ITIMER_REAL:
        return -EINVAL  # ITIMER_VIRTUAL, ITIMER_PROF: CPU-time timers are not there
    value = interval = 0
    if new:
        raw = await k.read(p, new, 32)
        if raw is None:
            return -EFAULT
        isec, iusec, vsec, vusec = struct.unpack("<qqqq", raw)
        if min(isec, vsec) < 0 or not 0 <= iusec < 10**6 or not 0 <= vusec < 10**6:
            return -EINVAL
        interval, value = isec * 10**9 + iusec * 1000, vsec * 10**9 + vusec * 1000
    r = await _getitimer(k, p, old)
    if r or not new:
        return r
    _itimer_set(k, p, value, interval)
    return 0


def _itimer_set(k: Personality, p: Proc, value: int, interval: int) -> None:
    tm = k.facility(Timers)
    t = tm.itimer.get(p.pid)
    if t is None:
        t = tm.itimer[p.pid] = tm.new(k, p.pid, False)
    tm.arm(k, t, value, interval, False)


async def _getitimer(k: Personality, p: Proc, addr: int) -> int:
    if not addr:
        return 0
    tm = k.facility(Timers)
    t = tm.itimer.get(p.pid)
    left, interval = (tm.remaining(k, t), t.interval) if t is not None else (0, 0)
    left = (left + 999) // 1000  # microseconds, rounded up as Linux does
    out = struct.pack("<qqqq", interval // 10**9, interval % 10**9 // 1000, left // 10**6, left % 10**6)
    return 0 if await k.write(p, addr, out) else -EFAULT


async def sys_getitimer(k: Personality, p: Proc, c: Call) -> int:
    if _i(c.a[0]) != ITIMER_REAL:
        return -EINVAL
    return await _getitimer(k, p, c.a[1])


async def sys_alarm(k: Personality, p: Proc, c: Call) -> int:
    """alarm(seconds): SIGALRM after that long (0: cancel); the seconds the old alarm had
    left, rounded to the nearest (at least 1 while it was armed), as Linux returns them."""
    tm = k.facility(Timers)
    t = tm.itimer.get(p.pid)
    left = tm.remaining(k, t) if t is not None else 0
    _itimer_set(k, p, (c.a[0] & 0xFFFF_FFFF) * 10**9, 0)
    if not left:
        return 0
    secs = left // 10**9 + (1 if left % 10**9 >= 500_000_000 else 0)
    return max(secs, 1)


# --------------------------------------------------------------------------- POSIX timers
async def sys_timer_create(k: Personality, p: Proc, c: Call) -> int:
    clock, sevp, idp = _i(c.a[0]), c.a[1], c.a[2]
    if clock not in TIMER_CLOCKS:
        return -EINVAL  # CPU-time clocks are not there
    tm = k.facility(Timers)
    sig, tid = SIGALRM, 0
    if sevp:
        raw = await k.read(p, sevp, 24)
        if raw is None:
            return -EFAULT
        _value, signo, notify, tid = struct.unpack("<Qiii", raw[:20])
        if notify == SIGEV_NONE:
            sig = 0
        elif notify in (SIGEV_SIGNAL, SIGEV_THREAD, SIGEV_SIGNAL | SIGEV_THREAD_ID):
            if not 1 <= signo <= 64:
                return -EINVAL
            sig = signo
            if notify & SIGEV_THREAD_ID:
                th = k.threads.get(tid)
                if th is None or th.proc is not p:
                    return -EINVAL
            else:
                tid = 0
        else:
            return -EINVAL
    if sum(1 for key in tm.posix if key[0] == p.pid) >= MAX_TIMERS:
        return -EAGAIN
    ident = tm.next_id.get(p.pid, 0)
    if not await k.write(p, idp, struct.pack("<i", ident)):
        return -EFAULT
    tm.next_id[p.pid] = ident + 1
    t = tm.new(k, p.pid, True)
    t.ident, t.clock, t.sig, t.tid, t.execs = ident, clock, sig, tid, p.acct.execs
    tm.posix[(p.pid, ident)] = t
    return 0


def _posix(k: Personality, p: Proc, ident: int) -> Timer | None:
    t = k.facility(Timers).posix.get((p.pid, ident))
    return t if t is not None and t.execs == p.acct.execs else None


async def sys_timer_settime(k: Personality, p: Proc, c: Call) -> int:
    ident, flags, new, old = _i(c.a[0]), _i(c.a[1]), c.a[2], c.a[3]
    raw = await k.read(p, new, 32)
    if raw is None:
        return -EFAULT
    t = _posix(k, p, ident)
    if t is None:
        return -EINVAL
    interval, value = _ts(raw, 0), _ts(raw, 16)
    if interval is None or value is None:
        return -EINVAL
    tm = k.facility(Timers)
    if old and not await k.write(p, old, _itimerspec(t.interval, tm.remaining(k, t))):
        return -EFAULT
    _discard(k, t)
    t.overrun = 0
    tm.arm(k, t, value, interval, bool(flags & TIMER_ABSTIME))
    return 0


async def sys_timer_gettime(k: Personality, p: Proc, c: Call) -> int:
    t = _posix(k, p, _i(c.a[0]))
    if t is None:
        return -EINVAL
    left = k.facility(Timers).remaining(k, t)
    return 0 if await k.write(p, c.a[1], _itimerspec(t.interval, left)) else -EFAULT


async def sys_timer_getoverrun(k: Personality, p: Proc, c: Call) -> int:
    t = _posix(k, p, _i(c.a[0]))
    if t is None:
        return -EINVAL
    _delivered(k, t)
    return t.last_overrun


async def sys_timer_delete(k: Personality, p: Proc, c: Call) -> int:
    t = _posix(k, p, _i(c.a[0]))
    if t is None:
        return -EINVAL
    _discard(k, t)
    k.facility(Timers).drop(k, t)
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    36: ("getitimer", sys_getitimer, "dp"),
    37: ("alarm", sys_alarm, "u"),
    38: ("setitimer", sys_setitimer, "dpp"),
    222: ("timer_create", sys_timer_create, "dpp"),
    223: ("timer_settime", sys_timer_settime, "ddpp"),
    224: ("timer_gettime", sys_timer_gettime, "dp"),
    225: ("timer_getoverrun", sys_timer_getoverrun, "d"),
    226: ("timer_delete", sys_timer_delete, "d"),
    283: ("timerfd_create", sys_timerfd_create, "dx"),
    286: ("timerfd_settime", sys_timerfd_settime, "dxpp"),
    287: ("timerfd_gettime", sys_timerfd_gettime, "dp"),
}
