"""Threads of the Linux personality: clone and clone3, thread ids, thread exit.

A thread is a guest thread of its process's task (see
:class:`~l4sim.linux.state.LinuxThread`): ``clone`` with
``CLONE_VM|CLONE_THREAD`` (what musl's and glibc's ``pthread_create`` pass)
makes one with the caller's registers, rax 0, the new stack and TLS; without
``CLONE_VM`` clone and clone3 make a process (a fork).

Futexes (and the clear-tid word's wake when a thread ends) are in :mod:`l4sim.linux.futex`.
"""

from __future__ import annotations

import struct

from l4sim.linux.futex import futex_key, futex_wake
from l4sim.linux.signals import KILLABLE, end_thread, interrupt, kill
from l4sim.linux.state import Call, LinuxThread, Personality, Proc

EPERM, ESRCH, EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT, EINTR = 1, 3, 11, 14, 22, 38, 110, 4
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_PIDFD = 0x100, 0x200, 0x400, 0x800, 0x1000
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
#: flags of namespaces and cgroups, which the personality does not have (CLONE_PTRACE,
#: CLONE_UNTRACED, CLONE_IO and CLONE_DETACHED are accepted and change nothing)
CLONE_UNSUPPORTED = 0x20000 | 0x2000000 | 0x4000000 | 0x8000000 | 0x10000000 | 0x20000000 | 0x40000000 \
    | 0x200000000
#: clone3's struct clone_args: the first version's size, and the fields read here
CLONE_ARGS_SIZE_VER0 = 64
_CLONE_ARGS = struct.Struct("<8Q")  # flags pidfd child_tid parent_tid exit_signal stack stack_size tls


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


# --------------------------------------------------------------------------- strace
_CLONE_NAMES = ((CLONE_VM, "CLONE_VM"), (CLONE_FS, "CLONE_FS"), (CLONE_FILES, "CLONE_FILES"),
                (CLONE_SIGHAND, "CLONE_SIGHAND"), (CLONE_PIDFD, "CLONE_PIDFD"), (CLONE_VFORK, "CLONE_VFORK"),
                (CLONE_PARENT, "CLONE_PARENT"), (CLONE_THREAD, "CLONE_THREAD"), (0x40000, "CLONE_SYSVSEM"),
                (CLONE_SETTLS, "CLONE_SETTLS"), (CLONE_PARENT_SETTID, "CLONE_PARENT_SETTID"),
                (CLONE_CHILD_CLEARTID, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
                (CLONE_CHILD_SETTID, "CLONE_CHILD_SETTID"))

def _ptr(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


def clone_flags(flags: int, exit_signal: int) -> str:
    """``flags`` as strace prints them: CLONE_VM|CLONE_FS|...|SIGCHLD."""
    names = [n for bit, n in _CLONE_NAMES if flags & bit]
    rest = flags & ~sum(bit for bit, _ in _CLONE_NAMES) & ~0xFF
    if rest:
        names.append(hex(rest))
    if exit_signal:
        names.append("SIGCHLD" if exit_signal == 17 else str(exit_signal))
    return "|".join(names) or "0"


# --------------------------------------------------------------------------- ids
async def sys_getpid(k: Personality, p: Proc, c: Call) -> int:
    """The thread group's id (the main thread's tid)."""
    return p.pid


async def sys_gettid(k: Personality, p: Proc, c: Call) -> int:
    return p.cur.tid


async def sys_set_tid_address(k: Personality, p: Proc, c: Call) -> int:
    """Remember the word to clear and futex-wake when the thread ends; returns the tid."""
    p.cur.clear_tid = c.a[0]
    return p.cur.tid


# --------------------------------------------------------------------------- exit
async def sys_exit(k: Personality, p: Proc, c: Call) -> int:
    """``exit`` ends the calling thread (the process when it is the last one)."""
    status = c.a[0] & 0xFF
    if k.cfg.strace is not None:
        k.cfg.strace(f"exit({_i(c.a[0])}) = ?")
        k.cfg.strace(f"+++ exited with {status} +++")
    await exit_thread(k, p.cur, status)
    c.ended = True
    return 0


async def sys_exit_group(k: Personality, p: Proc, c: Call) -> int:
    """``exit_group`` ends every thread of the process."""
    status = c.a[0] & 0xFF
    if k.cfg.strace is not None:
        k.cfg.strace(f"exit_group({_i(c.a[0])}) = ?")
        k.cfg.strace(f"+++ exited with {status} +++")
    await kill(k, p, status)
    c.ended = True
    return 0


async def exit_thread(k: Personality, t: LinuxThread, status: int) -> None:
    """``exit``: end one thread (its clear_tid word zeroed and futex-woken, as pthread_join
    needs); the last thread's end is the process's, with the main thread's status."""
    p = t.proc
    if len(p.threads) == 1:
        await kill(k, p, status if p.leader_status is None else p.leader_status)
        return
    if t.tid == p.pid:
        p.leader_status = status
    if t.clear_tid and await k.write(p, t.clear_tid, bytes(4)):
        futex_wake(k, await futex_key(k, p, t.clear_tid, False), 1)
    await end_thread(k, t)


# --------------------------------------------------------------------------- clone
async def sys_clone(k: Personality, p: Proc, c: Call) -> int:
    flags, stack, ptid, ctid, tls = c.a[0], c.a[1], c.a[2], c.a[3], c.a[4]
    if c.state is not None:  # a vfork parent, run again
        return await _vfork_wait(k, p, c)
    if k.cfg.strace is not None:
        c.args = (f"child_stack={_ptr(stack)}, flags={clone_flags(flags & ~0xFF, flags & 0xFF)}, "
                  f"parent_tid={_ptr(ptid)}, child_tidptr={_ptr(ctid)}, tls={_ptr(tls)}")
    return await do_clone(k, p, c, flags & ~0xFF, flags & 0xFF, stack, ptid, ctid, tls)


async def sys_clone3(k: Personality, p: Proc, c: Call) -> int:
    if c.state is not None:
        return await _vfork_wait(k, p, c)
    args, size = c.a[0], c.a[1]
    if size < CLONE_ARGS_SIZE_VER0 or size > 4096:
        return -EINVAL
    raw = await k.read(p, args, min(size, 88))
    if raw is None:
        return -EFAULT
    if any(raw[CLONE_ARGS_SIZE_VER0:]):
        return -EINVAL  # set_tid, cgroup: not here
    flags, _pidfd, ctid, ptid, exit_signal, stack, stack_size, tls = _CLONE_ARGS.unpack_from(raw)
    if k.cfg.strace is not None:
        c.args = (f"{{flags={clone_flags(flags, exit_signal)}, child_tid={_ptr(ctid)}, "
                  f"parent_tid={_ptr(ptid)}, stack={_ptr(stack)}, stack_size={stack_size:#x}, "
                  f"tls={_ptr(tls)}}}, {size}")
    if flags & 0xFF or exit_signal > 64 or bool(stack) != bool(stack_size):
        return -EINVAL
    return await do_clone(k, p, c, flags, exit_signal, stack + stack_size if stack else 0, ptid, ctid, tls)


async def do_clone(k: Personality, p: Proc, c: Call, flags: int, exit_signal: int, stack: int, ptid: int,
                   ctid: int, tls: int) -> int:
    """clone and clone3: a thread of ``p`` (CLONE_THREAD) or a new process (a fork; with
    CLONE_VFORK the caller waits until the child execs or ends)."""
    if flags & CLONE_UNSUPPORTED or flags & CLONE_PIDFD:
        return -EINVAL
    if (flags & CLONE_THREAD and not flags & CLONE_SIGHAND) or (flags & CLONE_SIGHAND and not flags & CLONE_VM):
        return -EINVAL
    if flags & CLONE_VM and not flags & (CLONE_THREAD | CLONE_VFORK):
        return -ENOSYS  # processes sharing one address space: not in this memory model
    limit = k.fork_limit(p)
    if limit:
        return limit
    if flags & CLONE_THREAD:
        t = await k.clone_thread(p, c.words, stack, tls if flags & CLONE_SETTLS else None,
                                 ctid if flags & CLONE_CHILD_CLEARTID else 0)
        if isinstance(t, int):
            return t
        tid = struct.pack("<i", t.tid)
        if flags & CLONE_PARENT_SETTID and ptid:  # a bad address is ignored, as Linux does
            await k.write(p, ptid, tid)
        if flags & CLONE_CHILD_SETTID and ctid:
            await k.write(p, ctid, tid)
        return t.tid
    words = list(c.words)
    if stack:
        words[16] = stack
    if flags & CLONE_SETTLS:
        words[18] = tls
    child = await k.fork(p, tuple(words))
    if isinstance(child, int):
        return child
    child.exit_signal = exit_signal
    if flags & CLONE_PARENT:
        child.ppid = p.ppid
        child.adopted = p.adopted
    cid = struct.pack("<i", child.pid)
    if flags & CLONE_PARENT_SETTID and ptid:
        await k.write(p, ptid, cid)
    if flags & CLONE_CHILD_SETTID and ctid:
        await k.write(child, ctid, cid)
    if flags & CLONE_CHILD_CLEARTID:
        child.cur.clear_tid = ctid
    if flags & CLONE_VFORK:
        child.vfork_waiter = p.cur.tid
        c.state = child
        return await _vfork_wait(k, p, c)
    return child.pid


async def _vfork_wait(k: Personality, p: Proc, c: Call) -> int:
    """A vfork parent waits (answered later) until its child has exec'd or ended; only a
    fatal signal ends the wait (Linux's killable wait)."""
    child = c.state
    return child.pid if child.vfork_waiter == 0 else await interrupt(k, p, c, KILLABLE)


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    39: ("getpid", sys_getpid, ""),
    56: ("clone", sys_clone, "xpppp"),
    60: ("exit", sys_exit, "d"),
    186: ("gettid", sys_gettid, ""),
    218: ("set_tid_address", sys_set_tid_address, "p"),
    231: ("exit_group", sys_exit_group, "d"),
    435: ("clone3", sys_clone3, "pu"),
}
