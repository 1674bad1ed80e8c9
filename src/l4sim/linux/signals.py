"""Signals with handlers: masks, pending signals, delivery at system-call return, sigreturn,
sigsuspend; and the sleeping calls (nanosleep, clock_nanosleep, pause).

Dispositions belong to the process, masks to each thread.  A signal whose
disposition is a handler is made pending in its target process (``kill``) or
thread (``tgkill``); it is delivered when a system call of a thread that does
not block it returns (the reply then enters the handler instead of
returning), or at once when such a thread waits in ``rt_sigsuspend``/``pause``
or a futex wait (which return ``-EINTR``).  Other waiting calls are not
interrupted: their signal comes when they return.  A fatal signal that every
thread blocked stays pending the same way and ends the process when a thread
unblocks it.  The frame on the
user stack has Linux's layout (return address = ``sa_restorer``, ucontext
with the general registers and the old mask, siginfo); FPU state is not saved.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from l4sim.linux.personality import LinuxThread, Personality, Proc
    from l4sim.linux.syscalls import Call

EFAULT, EINTR, EINVAL = 14, 4, 22
SA_SIGINFO, SA_RESTORER, SA_NODEFER, SA_RESETHAND = 4, 0x04000000, 0x40000000, 0x80000000
#: unmaskable: SIGKILL, SIGSTOP
UNBLOCKABLE = (1 << 8) | (1 << 18)
#: sigcontext's register order -> index in the exception message's registers
_SC = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi", "rbp", "rbx", "rdx", "rax",
       "rcx", "rsp", "rip", "rflags")
_REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
         "r14", "r15", "rip", "rsp", "rflags", "fs_base", "gs_base")
_IDX = {n: i for i, n in enumerate(_REGS)}
UC_MCONTEXT = 40  # offset of uc_mcontext in ucontext
UC_SIGMASK = UC_MCONTEXT + 256
FRAME = 8 + UC_SIGMASK + 8 + 128  # return address, ucontext, siginfo


def deliverable(t: LinuxThread) -> int:
    """The lowest signal pending in ``t`` or its process that ``t`` does not block (0: none)."""
    pending = t.pending | t.proc.pending if t.pending else t.proc.pending
    for sig in sorted(pending):
        if not t.sigmask >> (sig - 1) & 1:
            return sig
    return 0


async def deliver(k: Personality, p: Proc, regs: list[int]) -> list[int] | None:
    """Enter the handler of a signal deliverable to the calling thread with ``regs`` (the
    registers the system call returns with) saved on the stack; the new registers, or None
    (nothing to deliver, or a fatal signal ended the process: ``p.status`` is set)."""
    from l4sim.linux.process import IGNORED_BY_DEFAULT, SIGSTOPS

    t = p.cur
    while True:
        sig = deliverable(t)
        if not sig:
            return None
        (t.pending if sig in t.pending else p.pending).discard(sig)
        if sig in p.sighand:
            break
        if sig in p.sigign or sig in IGNORED_BY_DEFAULT or sig in SIGSTOPS:
            continue
        await k.signal_death(p, sig, 0)  # fatal, now that it is unblocked
        return None
    act = p.sigact.get(sig, bytes(32))
    handler, flags, restorer, mask = struct.unpack("<QQQQ", act)
    if handler in (0, 1):
        return None
    old_mask = t.saved_mask if t.saved_mask is not None else t.sigmask
    t.saved_mask = None
    sp = (regs[_IDX["rsp"]] - 128 - FRAME) & ~0xF
    sp -= 8  # as after a call: rsp + 8 is 16-byte aligned
    uc = bytearray(UC_SIGMASK + 8)
    sc = [regs[_IDX[n]] for n in _SC] + [0x33, 0, 0, old_mask, 0, 0] + [0] * 8
    struct.pack_into("<32Q", uc, UC_MCONTEXT, *sc)
    struct.pack_into("<Q", uc, UC_SIGMASK, old_mask)
    info = struct.pack("<iii", sig, 0, 0) + bytes(116)
    if not await k.write(p, sp, struct.pack("<Q", restorer) + bytes(uc) + info):
        return None
    if k.cfg.strace is not None:
        k.cfg.strace(f"--- signal {sig} delivered to handler {handler:#x} ---")
    if flags & SA_RESETHAND:
        p.sighand.discard(sig)
        p.sigact.pop(sig, None)
    if not flags & SA_NODEFER:
        mask |= 1 << (sig - 1)
    t.sigmask = (t.sigmask | mask) & ~UNBLOCKABLE
    new = list(regs)
    new[_IDX["rip"]] = handler
    new[_IDX["rsp"]] = sp
    new[_IDX["rdi"]] = sig
    new[_IDX["rsi"]] = sp + 8 + UC_SIGMASK + 8
    new[_IDX["rdx"]] = sp + 8
    new[_IDX["rax"]] = 0
    return new


async def sys_rt_sigreturn(k: Personality, p: Proc, c: Call) -> int:
    uc = c.words[_IDX["rsp"]]  # the handler's ret popped the return address
    raw = await k.read(p, uc, UC_SIGMASK + 8)
    if raw is None:
        await k.signal_death(p, 11, uc)
        c.ended = True
        return 0
    sc = struct.unpack_from("<18Q", raw, UC_MCONTEXT)
    regs = list(c.words[:20])
    for name, v in zip(_SC, sc, strict=True):
        regs[_IDX[name]] = v
    t = p.cur
    (t.sigmask,) = struct.unpack_from("<Q", raw, UC_SIGMASK)
    t.sigmask &= ~UNBLOCKABLE
    c.all_regs = tuple(regs)
    return regs[0] - (1 << 64) if regs[0] >> 63 else regs[0]


async def sys_rt_sigprocmask(k: Personality, p: Proc, c: Call) -> int:
    how, nset, oset = c.a[0], c.a[1], c.a[2]
    t = p.cur
    old = t.sigmask
    if nset:
        raw = await k.read(p, nset, 8)
        if raw is None:
            return -EFAULT
        (m,) = struct.unpack("<Q", raw)
        if how == 0:
            t.sigmask |= m
        elif how == 1:
            t.sigmask &= ~m
        elif how == 2:
            t.sigmask = m
        else:
            return -EINVAL
        t.sigmask &= ~UNBLOCKABLE
    if oset and not await k.write(p, oset, struct.pack("<Q", old)):
        return -EFAULT
    return 0


async def sys_rt_sigpending(k: Personality, p: Proc, c: Call) -> int:
    m = sum(1 << (s - 1) for s in p.pending | p.cur.pending)
    return 0 if await k.write(p, c.a[0], struct.pack("<Q", m)) else -EFAULT


async def sys_rt_sigsuspend(k: Personality, p: Proc, c: Call) -> int:
    from l4sim.linux.syscalls import BLOCK

    t = p.cur
    if c.state is None:  # first time: install the temporary mask
        if c.nr == 130:
            raw = await k.read(p, c.a[0], 8)
            if raw is None:
                return -EFAULT
            t.saved_mask = t.sigmask
            t.sigmask = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
        c.state = True
    if deliverable(t):
        return -EINTR
    p.sig_waiters.add(t.tid)
    return BLOCK


async def sys_nanosleep(k: Personality, p: Proc, c: Call) -> int:
    from l4sim.linux.syscalls import BLOCK

    if c.state is None:
        if c.nr == 230:  # clock_nanosleep(clock, flags, req, rem)
            clock, flags, req = c.a[0], c.a[1], c.a[2]
        else:
            clock, flags, req = 1, 0, c.a[0]
        raw = await k.read(p, req, 16)
        if raw is None:
            return -EFAULT
        sec, nsec = struct.unpack("<qq", raw)
        if sec < 0 or not 0 <= nsec < 10**9:
            return -EINVAL
        t = sec * 10**9 + nsec
        if flags & 1:  # TIMER_ABSTIME
            from l4sim.linux.syscalls import EPOCH

            c.state = t - (EPOCH * 10**9 if clock in (0, 5, 8, 11) else 0)
        else:
            c.state = k.now_ns + t
    if k.now_ns >= c.state:
        k.sleepers.pop(p.cur.tid, None)
        return 0
    k.sleepers[p.cur.tid] = c.state
    return BLOCK


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    14: ("rt_sigprocmask", sys_rt_sigprocmask, "dppu"),
    15: ("rt_sigreturn", sys_rt_sigreturn, ""),
    34: ("pause", sys_rt_sigsuspend, ""),
    35: ("nanosleep", sys_nanosleep, "pp"),
    127: ("rt_sigpending", sys_rt_sigpending, "pu"),
    130: ("rt_sigsuspend", sys_rt_sigsuspend, "pu"),
    230: ("clock_nanosleep", sys_nanosleep, "dxpp"),
}
