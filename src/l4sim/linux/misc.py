"""Accounting and small system calls of the Linux personality: times, getrusage, sysinfo,
prctl (CPU affinity is with the scheduling calls, in :mod:`l4sim.linux.sched`).

CPU time is simulated time.  User time is what the kernel charged to a process's guest
threads (``thread.stats()[0]``: the instructions they ran and the kernel's work on their
behalf: system-call entry, IPC, page-fault entry).  System time is what servers spent on
their calls (``thread.stats()[3]``, the kernel's ``served_ns``): the personality -- the
"Linux kernel" here -- from receiving a call or fault until its reply, and the servers it
called meanwhile (the console, sigma0), as L4Linux's work for a process is Linux's system
time.  A process's figures are its live threads' plus :class:`Acct`'s (threads that are
gone); its children's are what their reaped children added up (:func:`reap`).  Times in
clock ticks use ``AT_CLKTCK`` = 100 Hz, as Linux's ``USER_HZ``.
"""

from __future__ import annotations

import struct

from l4sim.linux.elf import PAGE
from l4sim.linux.state import POOL_BASE, Call, Personality, Proc
from l4sim.user.env import ThreadCap

EFAULT, EINVAL, ESRCH = 14, 22, 3
#: clock ticks per second (USER_HZ, AT_CLKTCK)
HZ = 100
NS_PER_TICK = 1_000_000_000 // HZ
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
#: the length of a process's name (Linux's TASK_COMM_LEN, with the NUL)
COMM_LEN = 16


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


async def cpu_times(k: Personality, p: Proc) -> tuple[int, int]:
    """Simulated (user, system) time of ``p`` so far: its live threads' and its gone threads'."""
    user, system = p.acct.cpu_ns, p.acct.sys_ns
    for t in list(p.threads.values()):
        st = await t.thread.stats()
        user += st[0]
        system += st[3]
    return user, system


async def retire(k: Personality, p: Proc, thread: ThreadCap) -> None:
    """Keep the CPU times of a guest thread of ``p`` that is about to be deleted."""
    st = await thread.stats()
    p.acct.cpu_ns += st[0]
    p.acct.sys_ns += st[3]


def reap(parent: Proc, child: Proc) -> None:
    """``child`` was reaped by ``parent`` (wait4/waitid): its times count as the parent's
    children's (Linux adds them when the zombie is reaped)."""
    a, c = parent.acct, child.acct
    a.child_cpu_ns += c.cpu_ns + c.child_cpu_ns
    a.child_sys_ns += c.sys_ns + c.child_sys_ns
    a.child_minflt += c.minflt + c.child_minflt
    a.child_maxrss = max(a.child_maxrss, c.maxrss, c.child_maxrss)


def rss_pages(p: Proc) -> int:
    return len(p.pages)


def rusage(utime_ns: int, stime_ns: int, maxrss_pages: int, minflt: int) -> bytes:
    """struct rusage (x86-64, 144 bytes)."""
    def tv(ns: int) -> tuple[int, int]:
        return ns // 1_000_000_000, ns % 1_000_000_000 // 1000

    return struct.pack("<4q14q", *tv(utime_ns), *tv(stime_ns), maxrss_pages * PAGE // 1024, 0, 0, 0,
                       minflt, 0, 0, 0, 0, 0, 0, 0, 0, 0)


async def child_rusage(k: Personality, q: Proc) -> bytes:
    """The rusage wait4 reports for the reaped child ``q`` (its own and its children's)."""
    a = q.acct
    return rusage(a.cpu_ns + a.child_cpu_ns, a.sys_ns + a.child_sys_ns, max(a.maxrss, a.child_maxrss),
                  a.minflt + a.child_minflt)


# --------------------------------------------------------------------------- the calls
async def sys_times(k: Personality, p: Proc, c: Call) -> int:
    if c.a[0]:
        user, system = await cpu_times(k, p)
        a = p.acct
        tms = struct.pack("<4q", user // NS_PER_TICK, system // NS_PER_TICK, a.child_cpu_ns // NS_PER_TICK,
                          a.child_sys_ns // NS_PER_TICK)
        if not await k.write(p, c.a[0], tms):
            return -EFAULT
    return k.now_ns // NS_PER_TICK  # ticks since boot


async def sys_getrusage(k: Personality, p: Proc, c: Call) -> int:
    who = _i(c.a[0])
    a = p.acct
    if who in (RUSAGE_SELF, RUSAGE_THREAD):
        user, system = await cpu_times(k, p)
        data = rusage(user, system, max(a.maxrss, rss_pages(p)), a.minflt)
    elif who == RUSAGE_CHILDREN:
        data = rusage(a.child_cpu_ns, a.child_sys_ns, a.child_maxrss, a.child_minflt)
    else:
        return -EINVAL
    return 0 if await k.write(p, c.a[1], data) else -EFAULT


async def sys_sysinfo(k: Personality, p: Proc, c: Call) -> int:
    total = k.cfg.ram
    used = (k.pool_next - POOL_BASE) // PAGE - len(k.free)
    free = max(0, total - used * PAGE)
    nthreads = sum(len(q.threads) for q in k.procs.values())
    info = struct.pack("<q3Q6QHH4xQQI4x", k.now_ns // 1_000_000_000, 0, 0, 0, total, free, 0, 0, 0, 0,
                       min(nthreads, 0xFFFF), 0, 0, 0, 1)
    return 0 if await k.write(p, c.a[0], info) else -EFAULT


async def sys_prctl(k: Personality, p: Proc, c: Call) -> int:
    op, arg = _i(c.a[0]), c.a[1]
    if op == PR_SET_NAME:
        raw = await k.read_str(p, arg, COMM_LEN)
        if raw is None:
            return -EFAULT
        p.name = raw[: COMM_LEN - 1].decode("utf-8", "surrogateescape")
        return 0
    if op == PR_GET_NAME:
        name = p.name.encode("utf-8", "surrogateescape")[: COMM_LEN - 1]
        return 0 if await k.write(p, arg, name.ljust(COMM_LEN, b"\0")) else -EFAULT
    if op == PR_GET_DUMPABLE:
        return 1
    if op == PR_SET_DUMPABLE:
        return 0 if arg in (0, 1) else -EINVAL
    return -EINVAL


async def sys_getgroups(k: Personality, p: Proc, c: Call) -> int:
    """No supplementary groups."""
    return 0 if _i(c.a[0]) >= 0 else -EINVAL


async def sys_setgroups(k: Personality, p: Proc, c: Call) -> int:
    """Accepted (everybody is root; groups are not kept)."""
    return 0 if 0 <= _i(c.a[0]) <= 65536 else -EINVAL


async def sys_getresid(k: Personality, p: Proc, c: Call) -> int:
    """getresuid, getresgid: real, effective and saved ids, all 0 (root)."""
    for addr in c.a[:3]:
        if not await k.write(p, addr, bytes(4)):
            return -EFAULT
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    98: ("getrusage", sys_getrusage, "dp"),
    115: ("getgroups", sys_getgroups, "dp"),
    116: ("setgroups", sys_setgroups, "dp"),
    118: ("getresuid", sys_getresid, "ppp"),
    120: ("getresgid", sys_getresid, "ppp"),
    99: ("sysinfo", sys_sysinfo, "p"),
    100: ("times", sys_times, "p"),
    157: ("prctl", sys_prctl, "dxxxx"),
}
