"""Scheduling system calls of the Linux personality: policies, real-time priorities, nice.

A Linux thread's scheduling attributes are its policy (``SCHED_OTHER``, ``SCHED_BATCH``,
``SCHED_IDLE``, ``SCHED_FIFO``, ``SCHED_RR``), a real-time priority (1-99 for FIFO and RR)
and a nice value.  They become the guest thread's priority and quantum on the kernel's
scheduler (``run_thread``), which is what decides who runs:

- ``SCHED_OTHER``, ``SCHED_BATCH``, ``SCHED_IDLE``: :data:`~l4sim.linux.state.GUEST_PRIO`
  (50) and a 10 ms quantum, whatever the nice value (which is kept and reported: the
  kernel has fixed priorities, not Linux's fair shares);
- ``SCHED_FIFO`` and ``SCHED_RR``: priorities 1-99 spread over kernel priorities 51-99,
  above every SCHED_OTHER thread and below the personality (100), keeping their order (two
  neighbouring real-time priorities may share a kernel priority); FIFO runs until it blocks
  or a higher thread comes, RR has Linux's 100 ms slice.

Fork, clone and execve keep the caller's attributes.  A thread holding a priority-
inheritance futex may run higher for a while (:mod:`l4sim.linux.futex`); these calls
change and report the base attributes, as Linux's do.
"""

from __future__ import annotations

import struct

from l4sim.linux.futex import reprioritize
from l4sim.linux.state import GUEST_PRIO, SCHED_FIFO, SCHED_RR, Call, LinuxThread, Personality, Proc

EPERM, ESRCH, EFAULT, EINVAL, E2BIG = 1, 3, 14, 22, 7
SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_DEADLINE = 0, 3, 5, 6
SCHED_RESET_ON_FORK = 0x4000_0000
POLICIES = frozenset((SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, SCHED_IDLE))
PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
#: struct sched_attr: size, policy, flags, nice, priority, runtime, deadline, period (48
#: bytes: SCHED_ATTR_SIZE_VER0); util_min and util_max follow in the 56-byte version
SCHED_ATTR = struct.Struct("<IIQiIQQQ")
SCHED_ATTR_VER1 = 56


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def kernel_prio(policy: int, rt_prio: int, base: int = GUEST_PRIO, top: int = 99) -> int:
    """The kernel priority of a thread with ``policy`` and real-time priority ``rt_prio``:
    ``base`` for the normal policies, real-time priorities spread over ``base + 1 .. top``
    (``Config.guest_prio``, ``Config.rt_top``: a Linux instance of a startup script has no
    room above ``base``, and its real-time threads run at ``base`` too)."""
    if policy in (SCHED_FIFO, SCHED_RR) and top > base:
        return base + 1 + (rt_prio - 1) * (top - base - 1) // 98
    return base


def _thread(k: Personality, p: Proc, pid: int) -> LinuxThread | None:
    """The thread a scheduling call names: 0 the caller, else a tid."""
    if pid == 0:
        return p.cur
    t = k.threads.get(pid)
    return t if t is not None and t.proc.status is None else None


async def _set(k: Personality, t: LinuxThread, policy: int, rt_prio: int) -> None:
    t.policy, t.rt_prio = policy, rt_prio
    t.prio = kernel_prio(policy, rt_prio, k.cfg.guest_prio, k.cfg.rt_top)
    await reprioritize(k, t)  # the new base, or what PI waiters raise it to
    await k.set_prio(t, t.kprio, force=True)  # the policy's quantum


def _check(policy: int, prio: int) -> bool:
    if policy in (SCHED_FIFO, SCHED_RR):
        return 1 <= prio <= 99
    return policy in POLICIES and prio == 0


async def _param(k: Personality, p: Proc, pid: int, param: int) -> tuple[LinuxThread, int] | int:
    """sched_setscheduler's and sched_setparam's thread and the priority of their struct
    sched_param: EINVAL for a negative pid or no param, EFAULT, then ESRCH, as Linux checks."""
    if pid < 0 or not param:
        return -EINVAL
    raw = await k.read(p, param, 4)
    if raw is None:
        return -EFAULT
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    (prio,) = struct.unpack("<i", raw)
    return t, prio


async def sys_sched_setscheduler(k: Personality, p: Proc, c: Call) -> int:
    policy = _i(c.a[1]) & ~SCHED_RESET_ON_FORK
    r = await _param(k, p, _i(c.a[0]), c.a[2])
    if isinstance(r, int):
        return r
    t, prio = r
    if not _check(policy, prio):
        return -EINVAL
    await _set(k, t, policy, prio)
    return 0


async def sys_sched_getscheduler(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    if pid < 0:
        return -EINVAL
    t = _thread(k, p, pid)
    return -ESRCH if t is None else t.policy


async def sys_sched_setparam(k: Personality, p: Proc, c: Call) -> int:
    r = await _param(k, p, _i(c.a[0]), c.a[1])
    if isinstance(r, int):
        return r
    t, prio = r
    if not _check(t.policy, prio):
        return -EINVAL
    await _set(k, t, t.policy, prio)
    return 0


async def sys_sched_getparam(k: Personality, p: Proc, c: Call) -> int:
    pid, param = _i(c.a[0]), c.a[1]
    if pid < 0 or not param:
        return -EINVAL
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    return 0 if await k.write(p, param, struct.pack("<i", t.rt_prio)) else -EFAULT


async def sys_sched_get_priority_max(k: Personality, p: Proc, c: Call) -> int:
    policy = _i(c.a[0])
    if policy not in POLICIES:
        return -EINVAL
    return 99 if policy in (SCHED_FIFO, SCHED_RR) else 0


async def sys_sched_get_priority_min(k: Personality, p: Proc, c: Call) -> int:
    policy = _i(c.a[0])
    if policy not in POLICIES:
        return -EINVAL
    return 1 if policy in (SCHED_FIFO, SCHED_RR) else 0


async def sys_sched_rr_get_interval(k: Personality, p: Proc, c: Call) -> int:
    """The thread's time slice: RR's 100 ms, 0 for FIFO, the kernel quantum (10 ms) else."""
    pid = _i(c.a[0])
    if pid < 0:
        return -EINVAL
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    ns = 0 if t.policy == SCHED_FIFO else 100_000_000 if t.policy == SCHED_RR else 10_000_000
    return 0 if await k.write(p, c.a[1], struct.pack("<qq", ns // 10**9, ns % 10**9)) else -EFAULT


async def sys_sched_setattr(k: Personality, p: Proc, c: Call) -> int:
    """sched_setattr(pid, attr, flags): policy, priority and nice at once (no SCHED_DEADLINE)."""
    pid, addr, flags = _i(c.a[0]), c.a[1], c.a[2]
    if pid < 0 or not addr or flags:
        return -EINVAL
    raw = await k.read(p, addr, SCHED_ATTR.size)
    if raw is None:
        return -EFAULT
    size, policy, sflags, nice, prio, *_ = SCHED_ATTR.unpack(raw)
    if size and size < SCHED_ATTR.size:
        return -EINVAL
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    if sflags & ~1 or not _check(policy, prio):  # SCHED_FLAG_RESET_ON_FORK only
        return -EINVAL
    if policy not in (SCHED_FIFO, SCHED_RR):
        t.nice = max(-20, min(19, nice))
    await _set(k, t, policy, prio)
    return 0


async def sys_sched_getattr(k: Personality, p: Proc, c: Call) -> int:
    pid, addr, size, flags = _i(c.a[0]), c.a[1], c.a[2], c.a[3]
    if pid < 0 or not addr or flags or size < SCHED_ATTR.size:
        return -EINVAL
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    out = SCHED_ATTR.pack(SCHED_ATTR.size, t.policy, 0, t.nice, t.rt_prio, 0, 0, 0)
    if size >= SCHED_ATTR_VER1:
        out = struct.pack("<I", SCHED_ATTR_VER1) + out[4:] + struct.pack("<II", 0, 1024)
    return 0 if await k.write(p, addr, out) else -EFAULT


async def sys_sched_getaffinity(k: Personality, p: Proc, c: Call) -> int:
    """The cores the thread may run on; like Linux, it writes 8 bytes (a cpumask of 64 bits)
    and returns that size."""
    pid, size = _i(c.a[0]), c.a[1]
    if pid < 0:
        return -EINVAL
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    if size < 8 or size & 7:
        return -EINVAL
    mask = t.affinity or k.cpu_mask
    return 8 if await k.write(p, c.a[2], struct.pack("<Q", mask)) else -EFAULT


async def sys_sched_setaffinity(k: Personality, p: Proc, c: Call) -> int:
    """Restrict the thread to the cores of the mask (EINVAL when it names none of the
    machine's, or of the cores its instance's scheduler allows); it moves to the lowest of them when its core is not one."""
    pid, size = _i(c.a[0]), c.a[1]
    if pid < 0:
        return -EINVAL
    raw = await k.read(p, c.a[2], min(size, 128))
    if raw is None:
        return -EFAULT
    t = _thread(k, p, pid)
    if t is None:
        return -ESRCH
    mask = int.from_bytes(raw, "little") & k.cpu_mask  # the cores the instance has (cpuset's rule)
    if not mask:
        return -EINVAL
    t.affinity = mask if mask != k.cpu_mask else 0
    if not mask >> t.cpu & 1:
        t.cpu = (mask & -mask).bit_length() - 1
        await k.set_prio(t, t.kprio, force=True)
    return 0


async def sys_getcpu(k: Personality, p: Proc, c: Call) -> int:
    """The core the caller runs on, node 0."""
    for addr, v in ((c.a[0], p.cur.cpu), (c.a[1], 0)):
        if addr and not await k.write(p, addr, struct.pack("<I", v)):
            return -EFAULT
    return 0


def _targets(k: Personality, p: Proc, which: int, who: int) -> list[LinuxThread] | int:
    """The threads getpriority and setpriority name (a tid, a process group, everybody: we are
    all root), or a negative errno."""
    if which == PRIO_PROCESS:
        t = _thread(k, p, who)
        return [t] if t is not None else []
    if which == PRIO_PGRP:
        pgid = who or p.pgid
        return [t for q in k.procs.values() if q.pgid == pgid for t in q.threads.values()]
    if which == PRIO_USER:
        return [t for q in k.procs.values() for t in q.threads.values()] if who == 0 else []
    return -EINVAL


async def sys_getpriority(k: Personality, p: Proc, c: Call) -> int:
    """The highest priority (lowest nice) of the targets, as 20 - nice (the C library turns it
    back into nice)."""
    ts = _targets(k, p, _i(c.a[0]), _i(c.a[1]))
    if isinstance(ts, int):
        return ts
    if not ts:
        return -ESRCH
    return 20 - min(t.nice for t in ts)


async def sys_setpriority(k: Personality, p: Proc, c: Call) -> int:
    ts = _targets(k, p, _i(c.a[0]), _i(c.a[1]))
    if isinstance(ts, int):
        return ts
    if not ts:
        return -ESRCH
    nice = max(-20, min(19, _i(c.a[2])))
    for t in ts:
        t.nice = nice
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    140: ("getpriority", sys_getpriority, "dd"),
    141: ("setpriority", sys_setpriority, "ddd"),
    142: ("sched_setparam", sys_sched_setparam, "dp"),
    143: ("sched_getparam", sys_sched_getparam, "dp"),
    144: ("sched_setscheduler", sys_sched_setscheduler, "ddp"),
    145: ("sched_getscheduler", sys_sched_getscheduler, "d"),
    146: ("sched_get_priority_max", sys_sched_get_priority_max, "d"),
    147: ("sched_get_priority_min", sys_sched_get_priority_min, "d"),
    148: ("sched_rr_get_interval", sys_sched_rr_get_interval, "dp"),
    203: ("sched_setaffinity", sys_sched_setaffinity, "dup"),
    204: ("sched_getaffinity", sys_sched_getaffinity, "dup"),
    309: ("getcpu", sys_getcpu, "ppp"),
    314: ("sched_setattr", sys_sched_setattr, "dpx"),
    315: ("sched_getattr", sys_sched_getattr, "dpux"),
}
