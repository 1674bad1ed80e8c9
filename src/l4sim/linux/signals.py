"""Signals with handlers: masks, pending signals, delivery at system-call return, sigreturn,
sigsuspend, interrupted and restarted calls, stopping and continuing; and the sleeping calls
(nanosleep, clock_nanosleep, pause).

Dispositions belong to the process, masks to each thread.  A signal whose
disposition is a handler is made pending in its target process (``kill``) or
thread (``tgkill``); it is delivered when a system call of a thread that does
not block it returns (the reply then enters the handler instead of
returning).  A thread waiting in a call (:data:`BLOCK`) is woken by such a
signal and its call is interrupted (:func:`interrupt`), as Linux's
``-ERESTART*`` codes say: read, write, wait4, waitid, the open of a FIFO and
an untimed futex wait are restarted after the handler when its action has
``SA_RESTART`` (the saved registers point back at the ``syscall`` instruction
with the call's number in rax) and return ``-EINTR`` otherwise; poll, select,
pause, rt_sigsuspend, nanosleep (with the time left) and timed futex waits
always return ``-EINTR``.  A fatal signal that every thread blocked stays
pending the same way and ends the process when a thread unblocks it; a fatal
signal to a process whose threads all wait in calls ends it as they wake.

Stop signals (SIGSTOP, and SIGTSTP, SIGTTIN, SIGTTOU by default) stop the
whole process (:func:`stop`): the personality takes every page away from its
task, so each thread stops at its next instruction with a page fault that
is not answered until SIGCONT (:func:`cont`); the parent's wait4 sees it
with ``WUNTRACED``/``WCONTINUED`` and gets SIGCHLD unless ``SA_NOCLDSTOP``.

The default action of a fatal signal ends the whole thread group: here too is
how a process and a thread end (:func:`kill`, :func:`signal_death`,
:func:`end_thread`), with the rules for orphaned process groups that an end
sets off (:func:`orphan_check`), and the CPU exceptions that become signals
(:func:`cpu_fault`).  Signals and ends call each other (a fatal signal ends a
process, an end sends SIGCHLD, SIGHUP and SIGCONT), so they live in one
module, the lowest of the system-call modules but ``misc``.

The frame on the user stack has Linux's layout (return address =
``sa_restorer``, ucontext with the general registers and the old mask,
siginfo, and above it the x87/SSE state in XSAVE layout, ``uc_mcontext.fpregs``
pointing at it); the handler starts with the initial x87/SSE state and
``rt_sigreturn`` restores the frame's.
"""

from __future__ import annotations

import contextlib
import struct

from l4sim.kernel.abi import Fpage, MapItem, MemRights
from l4sim.linux import lifetime
from l4sim.linux.misc import retire
from l4sim.linux.state import (
    BLOCK,
    SIGBUS,
    SIGFPE,
    SIGILL,
    SIGNAMES,
    SIGSEGV,
    SIGTRAP,
    Call,
    LinuxThread,
    Personality,
    Proc,
    Wait,
    close_all,
    text_bytes,
)
from l4sim.linux.vfs import EPOCH

EPERM, EINTR, ENOMEM, EFAULT, EINVAL = 1, 4, 12, 14, 22
#: Linux's "restart the call" code, as strace shows an interrupted call that will be restarted
ERESTARTSYS = 512
SA_NOCLDSTOP, SA_SIGINFO, SA_RESTORER, SA_RESTART = 1, 4, 0x04000000, 0x10000000
SA_NODEFER, SA_RESETHAND = 0x40000000, 0x80000000
SA_ONSTACK = 0x08000000
#: sigaltstack flags and the smallest alternate stack Linux accepts (x86-64)
SS_ONSTACK, SS_DISABLE, SS_AUTODISARM = 1, 2, 1 << 31
MINSIGSTKSZ = 2048
SIGHUP, SIGKILL, SIGCHLD, SIGCONT, SIGSTOP = 1, 9, 17, 18, 19
SIGTSTP, SIGTTIN, SIGTTOU = 20, 21, 22
#: si_code of SIGCHLD for a child that exited, was killed
CLD_EXITED, CLD_KILLED = 1, 2
#: stop signals; and those whose default action is nothing (SIGCHLD, SIGCONT, SIGURG, SIGWINCH)
SIGSTOPS = frozenset((19, 20, 21, 22))
IGNORED_BY_DEFAULT = frozenset((17, 18, 23, 28))
#: how a waiting call ends when a signal with a handler interrupts it (Linux's -ERESTART* codes):
#: killable only (vfork's parent); restarted with SA_RESTART, else EINTR (ERESTARTSYS); EINTR
#: whenever a handler runs (ERESTARTNOHAND, ERESTART_RESTARTBLOCK)
#: ... and restarted after any handler (ERESTARTNOINTR: a priority-inheritance futex lock)
KILLABLE, RESTART_SYS, RESTART_NOHAND, RESTART_NOINTR = 0, 1, 2, 3
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
#: sigcontext's fpstate pointer (in uc_mcontext) and the word of the cs/gs/fs/ss selectors
SC_FPSTATE = UC_MCONTEXT + 23 * 8
#: ucontext's uc_flags as Linux sets them on a CPU with XSAVE: UC_FP_XSTATE,
#: UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS
UC_FLAGS = 0x7
#: sigcontext's selectors: cs USER_CS, gs 0, fs 0, ss USER_DS
SC_SELECTORS = 0x33 | 0x2B << 48
#: the fpstate of a signal frame, as Linux writes it for this CPU (XSAVE, x87 and SSE
#: state): the 512-byte FXSAVE image whose software-reserved bytes say so (FP_XSTATE_MAGIC1,
#: the extended size, the features, the XSAVE size), the 64-byte XSAVE header, and
#: FP_XSTATE_MAGIC2 after it; 64-byte aligned, above the frame
FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2 = 0x46505853, 0x46505845
XFEATURES = 0x3  # x87, SSE
XSTATE_SIZE = 512 + 64
FPSTATE_SIZE = XSTATE_SIZE + 4
#: the x87/SSE state a handler starts with, and an exec'd program (Linux's init_fpstate):
#: control word 0x37f, MXCSR 0x1f80 and its mask, everything else zero -- as kernel words
FPU_INIT = struct.unpack("<52Q", struct.pack("<HHBxHQQII", 0x37F, 0, 0, 0, 0, 0, 0x1F80, 0xFFFF).ljust(416, b"\0"))


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
    t = p.cur
    if p.stopped:
        return None  # its signals wait for SIGCONT (the thread stops at its next instruction)
    while True:
        sig = deliverable(t)
        if not sig:
            return None
        (t.pending if sig in t.pending else p.pending).discard(sig)
        if sig in p.sighand:
            break
        if sig in p.sigign or sig in IGNORED_BY_DEFAULT:
            continue
        if sig in SIGSTOPS:
            if not stop_discarded(k, p, sig):
                await stop(k, p, sig)  # was blocked; stops the process now that it is not
            continue
        await signal_death(k, p, sig, 0)  # fatal, now that it is unblocked
        return None
    return await enter_handler(k, p, t, sig, regs)


async def enter_handler(k: Personality, p: Proc, t: LinuxThread, sig: int, regs: list[int],
                        code: int = 0, addr: int = 0) -> list[int] | None:
    """Build ``sig``'s frame (ucontext with ``regs``, siginfo with ``code`` and ``addr``) on
    ``t``'s stack or alternate stack; the registers that enter the handler, or None."""
    act = p.sigact.get(sig, bytes(32))
    handler, flags, restorer, mask = struct.unpack("<QQQQ", act)
    if handler in (0, 1):
        return None
    old_mask = t.saved_mask if t.saved_mask is not None else t.sigmask
    t.saved_mask = None
    ss_sp, ss_flags, ss_size = t.altstack
    rsp = regs[_IDX["rsp"]]
    if flags & SA_ONSTACK and not ss_flags & SS_DISABLE and not on_altstack(t, rsp):
        top = ss_sp + ss_size  # the frame goes on the alternate stack
        if ss_flags & SS_AUTODISARM:
            t.altstack = (0, SS_DISABLE, 0)
    else:
        top = rsp - 128  # below the red zone
    fp = (top - FPSTATE_SIZE) & ~63  # the x87/SSE state first (Linux's fpu__alloc_mathframe)
    sp = ((fp - FRAME) & ~0xF) - 8  # as after a call: rsp + 8 is 16-byte aligned
    uc = bytearray(UC_SIGMASK + 8)
    struct.pack_into("<Q", uc, 0, UC_FLAGS)
    struct.pack_into("<Qi4xQ", uc, 16, ss_sp, ss_flags, ss_size)  # uc_stack: the altstack then
    sc = [regs[_IDX[n]] for n in _SC] + [SC_SELECTORS, 0, 0, old_mask, 0, fp] + [0] * 8
    struct.pack_into("<32Q", uc, UC_MCONTEXT, *sc)
    struct.pack_into("<Q", uc, UC_SIGMASK, old_mask)
    info = struct.pack("<iiiiQ", sig, 0, code, 0, addr) + bytes(104)  # si_signo, si_errno, si_code, si_addr
    fpstate = (struct.pack("<52Q", *await k.fpu_state(t)) + bytes(48)
               + struct.pack("<IIQI28x", FP_XSTATE_MAGIC1, FPSTATE_SIZE, XFEATURES, XSTATE_SIZE)
               + struct.pack("<QQ48x", XFEATURES, 0) + struct.pack("<I", FP_XSTATE_MAGIC2))
    if not await k.write(p, sp, struct.pack("<Q", restorer) + bytes(uc) + info) \
            or not await k.write(p, fp, fpstate):
        return None
    await k.set_fpu_state(t, FPU_INIT)  # the handler starts with a clean x87/SSE state
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


def on_altstack(t: LinuxThread, rsp: int) -> bool:
    """``rsp`` lies on ``t``'s alternate signal stack."""
    ss_sp, ss_flags, ss_size = t.altstack
    return not ss_flags & SS_DISABLE and ss_sp < rsp <= ss_sp + ss_size


async def sys_sigaltstack(k: Personality, p: Proc, c: Call) -> int:
    """sigaltstack(ss, old_ss): Linux's rules -- EPERM while running on it, ENOMEM below
    MINSIGSTKSZ, EINVAL for unknown flags; old_ss reports SS_ONSTACK when on it."""
    t = p.cur
    new, old = c.a[0], c.a[1]
    rsp = c.words[_IDX["rsp"]]
    if old:
        ss_sp, ss_flags, ss_size = t.altstack
        flags = SS_ONSTACK if on_altstack(t, rsp) else ss_flags & (SS_DISABLE | SS_AUTODISARM)
        if not await k.write(p, old, struct.pack("<Qi4xQ", ss_sp, flags, ss_size)):
            return -EFAULT
    if new:
        raw = await k.read(p, new, 24)
        if raw is None:
            return -EFAULT
        ss_sp, ss_flags, ss_size = struct.unpack("<Qi4xQ", raw)
        ss_flags &= 0xFFFF_FFFF
        if on_altstack(t, rsp):
            return -EPERM
        if ss_flags & ~(SS_DISABLE | SS_AUTODISARM | SS_ONSTACK):
            return -EINVAL
        if ss_flags & SS_DISABLE:
            t.altstack = (0, SS_DISABLE, 0)
        elif ss_size < MINSIGSTKSZ:
            return -ENOMEM
        else:
            t.altstack = (ss_sp, ss_flags & SS_AUTODISARM, ss_size)
    return 0


def _interrupting(p: Proc, t: LinuxThread) -> int:
    """The signal that interrupts ``t``'s wait: the lowest pending one it does not block that
    has a handler or is fatal (ignored ones do not wake a waiting call); 0: none."""
    pending = t.pending | p.pending if t.pending else p.pending
    for sig in sorted(pending):
        if t.sigmask >> (sig - 1) & 1:
            continue
        if sig in p.sighand or not (sig in p.sigign or sig in IGNORED_BY_DEFAULT or sig in SIGSTOPS):
            return sig
    return 0


def fatal_pending(p: Proc, t: LinuxThread) -> int:
    """A pending signal that will end ``p`` when ``t`` next runs (not blocked by ``t``, no
    handler, not ignored, not a stop); 0: none."""
    for sig in sorted(t.pending | p.pending):
        if not (t.sigmask >> (sig - 1) & 1 or sig in p.sighand or sig in p.sigign
                or sig in IGNORED_BY_DEFAULT or sig in SIGSTOPS):
            return sig
    return 0


def forget_wait(k: Personality, t: LinuxThread, c: Call) -> None:
    """``t`` stops waiting in ``c`` (interrupted, or ended): leave the sleepers, the futex queue,
    a FIFO's pending open (the :class:`~l4sim.linux.state.Wait` the call holds).  Its tid may
    stay in waiter sets: a wake-up there is harmless."""
    k.sleepers.pop(t.tid, None)
    st = c.state
    if isinstance(st, Wait):
        st.forget(k, c)


async def interrupt(k: Personality, p: Proc, c: Call, how: int) -> int:
    """What a call that would wait returns: BLOCK, or, when a signal interrupts the wait,
    -EINTR, -ERESTARTSYS (``how`` is RESTART_SYS and the handler has SA_RESTART: ``c``'s reply
    sets the registers back to the ``syscall`` instruction, so it runs again after the
    handler), or 0 with ``c.ended`` when a fatal signal ended the process.  A pending stop
    signal stops the process and the call goes on waiting (as Linux restarts it after
    SIGCONT); a stopped process's handlers wait for SIGCONT."""
    t = p.cur
    if not (p.pending or t.pending):
        return BLOCK
    sig = _interrupting(p, t)
    if sig and sig not in p.sighand and (not p.stopped or sig == SIGKILL):
        forget_wait(k, t, c)
        await signal_death(k, p, sig, 0)
        c.ended = True
        return 0
    stop_sig = stop_pending(p, t)
    if stop_sig:
        await stop(k, p, stop_sig)
    if not sig or p.stopped or how == KILLABLE:
        return BLOCK
    forget_wait(k, t, c)
    if how == RESTART_NOINTR or (how == RESTART_SYS \
            and struct.unpack_from("<Q", p.sigact.get(sig, bytes(32)), 8)[0] & SA_RESTART):
        return restart(c)
    return -EINTR


def restart(c: Call) -> int:
    """``c`` runs again: its reply sets the registers back to the ``syscall`` instruction with
    the call's number in rax (Linux's -ERESTARTSYS, after a handler or a stop)."""
    regs = list(c.words[:20])
    regs[0] = c.nr
    regs[_IDX["rip"]] -= 2  # back onto the 2-byte syscall instruction
    c.all_regs = tuple(regs)
    return -ERESTARTSYS


# --------------------------------------------------------------------------- stop and continue
def stop_pending(p: Proc, t: LinuxThread) -> int:
    """A pending stop signal that takes its default action in ``t`` (0: none)."""
    for sig in sorted(t.pending | p.pending):
        if sig in SIGSTOPS and not t.sigmask >> (sig - 1) & 1 and sig not in p.sighand \
                and sig not in p.sigign:
            return sig
    return 0


async def doom(k: Personality, p: Proc, sig: int, t: LinuxThread | None = None) -> None:
    """A fatal or stop ``sig`` for another process (or a stop for the caller's own) takes effect
    when ``p`` next runs, as on Linux, where the target has to be scheduled to act on it: it
    is made pending; a thread waiting in a call wakes and acts on it (:func:`interrupt`), a
    running one faults at its next instruction (its pages are taken away) and
    :func:`at_fault` acts on it, a call in progress acts on it when it returns.  A stopped
    process acts on SIGKILL only (its held faults are answered empty: its threads fault again
    and die); other fatal signals wait for SIGCONT, as on Linux."""
    k.post(p, sig, t)
    if (k.threads.get(k.cur) is None or k.threads[k.cur].proc is not p) and (
            sig == SIGKILL or (not p.stopped and sig not in SIGSTOPS)) \
            and any(th.l4call for th in p.threads.values()):
        # a thread in an L4 call (linux/l4.py) waits uninterruptibly for the kernel, perhaps
        # for ever (an open wait): as a killable wait on Linux, the fatal signal ends it now
        await signal_death(k, p, sig, 0)
        return
    if p.stopped:  # only SIGKILL wakes a stopped process (Linux's wants_signal); others wait for SIGCONT
        if sig == SIGKILL:
            await _release_faults(k, p)
        return
    if any(th.blocked is None and not th.l4call for th in p.threads.values()):
        # (a thread in an L4 call is taken care of when the call ends: linux/l4.py)
        await p.task.unmap(Fpage.mem(0, 47, MemRights.RWX), include_self=True)


async def at_fault(k: Personality, t: LinuxThread, w: tuple[int, ...]) -> bool:
    """A page fault of ``t`` whose process has signals pending or is stopped: True when the
    fault is taken care of here -- a fatal signal ended the process, or it is stopped and
    the fault is held (``t.stop_fault``) until SIGCONT."""
    p = t.proc
    if p.cont_notify:  # it runs again after SIGCONT: now the parent hears of it, as on Linux
        p.cont_notify = False
        _tell_parent(k, p)
    sig = fatal_pending(p, t)
    if sig and (not p.stopped or sig == SIGKILL):
        await signal_death(k, p, sig, 0)
        return True
    if not p.stopped:
        sig = stop_pending(p, t)
        if not sig:
            return False
        await stop(k, p, sig)
    t.stop_fault = w
    return True


async def stop(k: Personality, p: Proc, sig: int) -> None:
    """The default action of a stop signal: every page of ``p`` is taken from its task, so each
    thread faults at its next instruction and waits (:func:`at_fault` holds the fault) until
    :func:`cont`; the parent is told."""
    for q in (p.pending, *(th.pending for th in p.threads.values())):
        q.difference_update(SIGSTOPS)
    if p.stopped or p.status is not None:
        return
    p.stopped = True
    p.stop_report, p.cont_report, p.cont_notify = sig, False, False
    await p.task.unmap(Fpage.mem(0, 47, MemRights.RWX), include_self=True)
    if k.cfg.strace is not None:
        k.cfg.strace(f"--- stopped by {STOP_NAMES.get(sig, sig)} ---")
    _tell_parent(k, p)


async def cont(k: Personality, p: Proc) -> None:
    """SIGCONT: a stopped ``p`` goes on: the faults its threads made while stopped are answered
    (empty: they fault again and the pages come back); the parent's wait sees it at once,
    SIGCHLD comes when it runs."""
    for q in (p.pending, *(th.pending for th in p.threads.values())):
        q.difference_update(SIGSTOPS)
    if not p.stopped:
        return
    p.stopped = False
    p.stop_report, p.cont_report, p.cont_notify = 0, True, True
    parent = k.procs.get(p.ppid)
    if parent is not None:
        k.wake(parent.child_waiters)
    await _release_faults(k, p)
    for th in p.threads.values():  # what came while it was stopped: waiting threads act on it now
        if (p.pending or th.pending) and th.blocked is not None and th.tid not in k.runnable:
            k.runnable.append(th.tid)


async def _release_faults(k: Personality, p: Proc) -> None:
    """Answer the faults ``p``'s threads made while stopped, with nothing mapped: each thread
    goes on and faults again (:func:`at_fault` sees what has happened since)."""
    for t in list(p.threads.values()):
        if t.stop_fault is not None and t.reply is not None:
            t.stop_fault = None
            cap, t.reply = t.reply, None
            await k.env.ipc(cap.send(0))
            k.env.free_slot(cap.slot)


def _tell_parent(k: Personality, p: Proc) -> None:
    """``p`` stopped or continued: its parent's waits look again, and it gets SIGCHLD when it
    handles SIGCHLD without SA_NOCLDSTOP."""
    parent = k.procs.get(p.ppid)
    if parent is None:
        return
    k.wake(parent.child_waiters)
    if SIGCHLD in parent.sighand and not struct.unpack_from("<Q", parent.sigact[SIGCHLD], 8)[0] & SA_NOCLDSTOP:
        k.post(parent, SIGCHLD)


STOP_NAMES = {19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU"}


# --------------------------------------------------------------------------- orphaned groups
def orphaned(k: Personality, pgid: int, leaving: Proc | None = None) -> bool:
    """Is process group ``pgid`` orphaned (``leaving`` not counted): does no live member have a
    live parent in another group of the same session?  (Linux's will_become_orphaned_pgrp.)"""
    for q in k.procs.values():
        if q.pgid != pgid or q is leaving or q.status is not None:
            continue
        r = k.procs.get(q.ppid) if not q.adopted else None
        if r is not None and r is not leaving and r.status is None and r.pgid != pgid and r.sid == q.sid:
            return False
    return True


def stop_discarded(k: Personality, q: Proc, sig: int) -> bool:
    """SIGTSTP, SIGTTIN and SIGTTOU do not stop a process of an orphaned group (Linux)."""
    return sig in (SIGTSTP, SIGTTIN, SIGTTOU) and orphaned(k, q.pgid)


async def orphan_check(k: Personality, p: Proc) -> None:
    """``p`` ends: each group it leaves orphaned -- its own, if its parent is in another group
    of the session; its children's other groups -- that has a stopped member gets SIGHUP and
    SIGCONT (Linux's kill_orphaned_pgrp), so stopped jobs of a shell that went away do not
    wait for ever."""
    # its own group, when it was the group's link to a parent outside it in the session; its
    # children's groups other than its own (Linux: kill_orphaned_pgrp at exit and reparent)
    groups = {q.pgid for q in k.procs.values() if q.ppid == p.pid and q.sid == p.sid and q.pgid != p.pgid}
    parent = k.procs.get(p.ppid) if not p.adopted else None
    if parent is not None and parent.pgid != p.pgid and parent.sid == p.sid:
        groups.add(p.pgid)
    for pgid in sorted(groups):
        members = [q for q in k.procs.values() if q.pgid == pgid and q is not p and q.status is None]
        if members and any(q.stopped for q in members) and orphaned(k, pgid, leaving=p):
            await deliver_to(k, members, SIGHUP)
            await deliver_to(k, [q for q in members if q.status is None], SIGCONT)


async def deliver_to(k: Personality, targets: list[Proc], sig: int) -> None:
    """``sig`` from the kernel (the terminal, an orphaned group) to the processes ``targets``:
    as :func:`l4sim.linux.process.send_signal`, but no process is the sender."""
    for q in targets:
        if q.unkillable and sig not in q.sighand:
            continue  # init: only the signals it handles
        if sig == SIGCONT:
            await cont(k, q)
        elif sig in SIGSTOPS:
            q.pending.discard(SIGCONT)
        if sig in q.sighand or all(t.sigmask >> (sig - 1) & 1 for t in q.threads.values()):
            k.post(q, sig)
        elif not (sig in q.sigign or sig in IGNORED_BY_DEFAULT or (sig in SIGSTOPS and q.stopped)
                  or stop_discarded(k, q, sig)):
            await doom(k, q, sig)


# --------------------------------------------------------------------------- the end of threads and processes
async def signal_death(k: Personality, p: Proc, sig: int, addr: int, code: int = 0) -> None:
    """A fatal signal: the whole thread group ends (status 128 + sig)."""
    k.cur = p.pid
    if k.cfg.strace is not None:
        name = SIGNAMES.get(sig, f"signal {sig}")
        if code == SI_KERNEL:
            k.cfg.strace(f"--- {name} {{si_signo={name}, si_code=SI_KERNEL, si_addr=NULL}} ---")
        elif sig in (SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV):
            k.cfg.strace(f"--- {name} {{si_signo={name}, si_addr={addr:#x}}} ---")
        k.cfg.strace(f"+++ killed by {name} +++")
    await kill(k, p, 128 + sig, sig)


async def kill(k: Personality, p: Proc, status: int, sig: int = 0) -> None:
    """End ``p`` (exit status, or 128+sig) with all its threads: delete its objects, close
    its files, free its frames; it stays a zombie for its parent's wait."""
    p.status = status
    p.exit_code, p.term_sig = (0, sig) if sig else (status & 0xFF, 0)
    k.seq += 1
    p.ended_seq = k.seq
    await drop_space(k, p)
    k.vfork_done(p)
    close_all(k, p)
    for fac in list(k.facilities.values()):
        await fac.proc_ends(k, p)
    await orphan_check(k, p)  # before it leaves: the groups it orphans and their stopped jobs
    del k.procs[p.pid]
    for q in k.all.values():  # orphans go to init
        if q.ppid == p.pid:
            q.ppid = 1
            q.adopted = True
    parent = k.procs.get(p.ppid)
    if parent is None or 17 in parent.sigign:  # nobody waits: reaped at once
        k.all.pop(p.pid, None)
    else:
        k.wake(parent.child_waiters)
        esig = p.exit_signal
        if esig and (esig in parent.sighand or (parent.threads
                     and all(t.sigmask >> (esig - 1) & 1 for t in parent.threads.values()))):
            # SIGCHLD, usually; blocked, it is pending all the same (a signalfd reads it)
            k.post(parent, esig, None, (CLD_KILLED, p.pid, sig) if sig else (CLD_EXITED, p.pid, status & 0xFF))
    if p.pid == k.main_pid:
        k.cfg.result.append(status)


async def oom_kill(k: Personality) -> Proc:
    """No frame is left: as Linux's OOM killer, end the process that holds the most pages
    (the newest of equals) with SIGKILL, and say so on the console's stderr
    (``l4sim: out of memory: killed process N (name)``); the process chosen."""
    victim = max(k.procs.values(), key=lambda q: (not q.unkillable, len(q.pages), q.pid))
    k.console_out.append((2, text_bytes(f"l4sim: out of memory: killed process {victim.pid} ({victim.name})\n")))
    await signal_death(k, victim, SIGKILL, 0)
    return victim


async def forget_process(k: Personality, p: Proc) -> None:
    """The last resort when ending ``p`` the ordinary way failed (its state is broken): it
    leaves the personality's tables, its task is deleted, and it counts as killed by
    SIGKILL -- its parent may not hear of it, but nothing of it runs on."""
    p.status = 128 + SIGKILL
    p.term_sig = SIGKILL
    for tid in list(p.threads):
        k.threads.pop(tid, None)
        k.sleepers.pop(tid, None)
    p.threads.clear()
    k.procs.pop(p.pid, None)
    k.all.pop(p.pid, None)
    with contextlib.suppress(Exception):  # nothing more can be done for it
        await k.env.task.delete(p.task.slot)
    if p.pid == k.main_pid:
        k.cfg.result.append(p.status)


async def drop_space(k: Personality, p: Proc) -> None:
    """Delete ``p``'s threads and task and let go of its pages (it ends, or execs)."""
    env = k.env
    for t in list(p.threads.values()):
        await end_thread(k, t)
    await env.task.delete(p.task.slot)
    env.free_slot(p.task.slot)
    freed = len(k.free)
    for a in p.pages.values():
        k.decref(a)
    if k.cfg.zero_on_free:  # what the process held is cleared now (linux/lifetime.py)
        await lifetime.clear_freed(k, freed)
    p.pages.clear()
    p.vmas.clear()


async def end_thread(k: Personality, t: LinuxThread) -> None:
    """Delete ``t``'s thread, gate and saved reply; forget its waits (no reply is sent)."""
    env = k.env
    p = t.proc
    for fac in list(k.facilities.values()):
        await fac.thread_ends(k, t)  # robust futexes, priority inheritance: memory still there
    await retire(k, p, t.thread)  # its CPU time stays the process's
    for cap in (t.thread, t.gate):
        await env.task.delete(cap.slot)
        env.free_slot(cap.slot)
    if t.reply is not None:
        await env.task.delete(t.reply.slot)
        env.free_slot(t.reply.slot)
        t.reply = None
    if t.blocked is not None:
        forget_wait(k, t, t.blocked)
        t.blocked = None
    k.sleepers.pop(t.tid, None)
    del p.threads[t.tid]
    del k.threads[t.tid]
    p.free_slots.append(t.slot)


# --------------------------------------------------------------------------- CPU exceptions
#: exception trap number -> signal
TRAP_SIGNAL = {0: SIGFPE, 3: SIGTRAP, 6: SIGILL, 13: SIGSEGV, 14: SIGSEGV}
#: general protection: privileged instructions, port I/O, non-canonical addresses
TRAP_GP = 13
#: si_code of a signal the kernel raised without an address (a general protection)
SI_KERNEL = 0x80
#: the exception ex_regs' TRIGGER_EXCEPTION raises (kernel/guest.py)
TRAP_TRIGGER = 0xFF


async def cpu_fault(k: Personality, p: Proc, t: LinuxThread, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """A CPU exception of ``t`` (words: trapno, code, RIP, traps, address, the registers):
    its signal enters the handler when there is one and ``t`` does not block it (reply:
    the handler's registers); otherwise the process dies of it, as Linux forces it."""
    trap = w[0] if w else 13
    if trap == TRAP_TRIGGER:  # interrupted where it ran (see personality._trigger): take its signals
        regs = list(w[5:25])
        new = await deliver(k, p, regs) if len(w) >= 25 else None
        if p.status is not None:
            return None
        return (0, tuple(new if new is not None else regs), ())
    sig = TRAP_SIGNAL.get(trap, SIGSEGV)
    if trap == TRAP_GP:  # general protection: Linux knows no address and says SI_KERNEL
        at, code = 0, SI_KERNEL
    else:
        at = w[4] if trap == 14 and len(w) > 4 and w[4] else w[2] if len(w) > 2 else 0
        code = {SIGSEGV: 2 if trap == 14 and w[1] & 1 else 1, SIGILL: 2, SIGFPE: 1, SIGTRAP: 1}.get(sig, 0)
    if len(w) >= 25 and sig in p.sighand and not (t.sigmask >> (sig - 1)) & 1:
        new = await enter_handler(k, p, t, sig, list(w[5:25]), code, at)
        if new is not None:
            return (0, tuple(new), ())
    await signal_death(k, p, sig, at, code)
    return None


# --------------------------------------------------------------------------- the calls
async def sys_rt_sigreturn(k: Personality, p: Proc, c: Call) -> int:
    uc = c.words[_IDX["rsp"]]  # the handler's ret popped the return address
    raw = await k.read(p, uc, UC_SIGMASK + 8)
    if raw is None:
        await signal_death(k, p, 11, uc)
        c.ended = True
        return 0
    sc = struct.unpack_from("<18Q", raw, UC_MCONTEXT)
    regs = list(c.words[:20])
    for name, v in zip(_SC, sc, strict=True):
        regs[_IDX[name]] = v
    t = p.cur
    words = await _saved_fpu(k, p, struct.unpack_from("<Q", raw, SC_FPSTATE)[0])
    if words is None:  # a frame Linux refuses (unreadable, reserved MXCSR bits): SIGSEGV
        await signal_death(k, p, 11, uc)
        c.ended = True
        return 0
    await k.set_fpu_state(t, words)
    (t.sigmask,) = struct.unpack_from("<Q", raw, UC_SIGMASK)
    t.sigmask &= ~UNBLOCKABLE
    c.all_regs = tuple(regs)
    return regs[0] - (1 << 64) if regs[0] >> 63 else regs[0]


async def _saved_fpu(k: Personality, p: Proc, fp: int) -> tuple[int, ...] | None:
    """The x87/SSE state a signal frame's fpstate at ``fp`` holds (NULL: the initial state),
    as Linux's sigreturn reads it: with FP_XSTATE_MAGIC1 in the software-reserved bytes, the
    XSAVE header's features say which parts are there (a missing one is in its initial
    state).  None: the state cannot be read or is invalid."""
    if not fp:
        return FPU_INIT
    img = await k.read(p, fp, 512 + 64)
    if img is None:
        return None
    legacy = bytearray(img[:416])
    (mxcsr,) = struct.unpack_from("<I", legacy, 24)
    if mxcsr & ~0xFFFF:
        return None
    if struct.unpack_from("<I", img, 464)[0] == FP_XSTATE_MAGIC1:
        (bv,) = struct.unpack_from("<Q", img, 512)
        init = struct.pack("<52Q", *FPU_INIT)
        if not bv & 1:  # x87 in its initial state
            legacy[0:24] = init[0:24]
            legacy[32:160] = init[32:160]
        if not bv & 2:  # SSE registers zero
            legacy[160:416] = init[160:416]
    return struct.unpack("<52Q", bytes(legacy))


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
    t = p.cur
    if c.state is None:  # first time: install the temporary mask
        if c.nr == 130:
            raw = await k.read(p, c.a[0], 8)
            if raw is None:
                return -EFAULT
            t.saved_mask = t.sigmask
            t.sigmask = struct.unpack("<Q", raw)[0] & ~UNBLOCKABLE
        c.state = True
    p.sig_waiters.add(t.tid)
    return await interrupt(k, p, c, RESTART_NOHAND)


async def read_timespec(k: Personality, p: Proc, addr: int) -> int:
    """The nanoseconds of a struct timespec a call is given to wait (-EFAULT, or -EINVAL for
    a negative one or a tv_nsec outside [0, 10^9)): nanosleep's, futex's, semtimedop's,
    epoll_pwait2's, rt_sigtimedwait's."""
    raw = await k.read(p, addr, 16)
    if raw is None:
        return -EFAULT
    sec, nsec = struct.unpack("<qq", raw)
    if sec < 0 or not 0 <= nsec < 10**9:
        return -EINVAL
    return int(sec * 10**9 + nsec)


async def sys_nanosleep(k: Personality, p: Proc, c: Call) -> int:
    """nanosleep, clock_nanosleep: sleep in simulated time; a handler's signal ends the sleep
    with EINTR and the time left in ``rem`` (not for an absolute sleep)."""
    if c.state is None:
        if c.nr == 230:  # clock_nanosleep(clock, flags, req, rem)
            clock, flags, req = c.a[0], c.a[1], c.a[2]
        else:
            clock, flags, req = 1, 0, c.a[0]
        t = await read_timespec(k, p, req)
        if t < 0:
            return t
        if flags & 1:  # TIMER_ABSTIME
            c.state = t - (EPOCH * 10**9 if clock in (0, 5, 8, 11) else 0)
        else:
            c.state = k.now_ns + t
    if k.now_ns >= c.state:
        k.sleepers.pop(p.cur.tid, None)
        return 0
    k.sleepers[p.cur.tid] = c.state
    r = await interrupt(k, p, c, RESTART_NOHAND)
    rem = c.a[3] if c.nr == 230 else c.a[1]
    if r == -EINTR and rem and not (c.nr == 230 and c.a[1] & 1):
        left = max(0, c.state - k.now_ns)
        if not await k.write(p, rem, struct.pack("<qq", left // 10**9, left % 10**9)):
            return -EFAULT
    return r


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    14: ("rt_sigprocmask", sys_rt_sigprocmask, "dppu"),
    131: ("sigaltstack", sys_sigaltstack, "pp"),
    15: ("rt_sigreturn", sys_rt_sigreturn, ""),
    34: ("pause", sys_rt_sigsuspend, ""),
    35: ("nanosleep", sys_nanosleep, "pp"),
    127: ("rt_sigpending", sys_rt_sigpending, "pu"),
    130: ("rt_sigsuspend", sys_rt_sigsuspend, "pu"),
    230: ("clock_nanosleep", sys_nanosleep, "dxpp"),
}
