"""Threads of the Linux personality: clone and clone3, thread ids, thread exit, futexes.

A thread is a guest thread of its process's task (see
:class:`~l4sim.linux.state.LinuxThread`): ``clone`` with
``CLONE_VM|CLONE_THREAD`` (what musl's and glibc's ``pthread_create`` pass)
makes one with the caller's registers, rax 0, the new stack and TLS; without
``CLONE_VM`` clone and clone3 make a process (a fork).

Futexes are wait queues kept by the personality, keyed as Linux keys them:
a word in private memory by (pid, address) -- the address space and the
word; without ``FUTEX_PRIVATE_FLAG``, a word in ``MAP_SHARED`` memory by
(0, the pool address of its frame + offset), so processes sharing the page
meet on the same queue.  A wait is a blocking call
(:data:`~l4sim.linux.state.BLOCK`): the waiter's reply is kept and sent when
a wake, its timeout (simulated time) or a signal with a handler ends the wait
(EINTR; an untimed wait is restarted after a handler with ``SA_RESTART``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l4sim.linux.signals import KILLABLE, RESTART_NOHAND, RESTART_SYS, end_thread, interrupt, kill
from l4sim.linux.state import Call, LinuxThread, Personality, Proc, Wait
from l4sim.linux.vfs import EPOCH

EPERM, ESRCH, EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT, EINTR = 1, 3, 11, 14, 22, 38, 110, 4
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND, CLONE_PIDFD = 0x100, 0x200, 0x400, 0x800, 0x1000
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
#: flags of namespaces and cgroups, which the personality does not have (CLONE_PTRACE,
#: CLONE_UNTRACED, CLONE_IO and CLONE_DETACHED are accepted and change nothing)
CLONE_UNSUPPORTED = 0x20000 | 0x2000000 | 0x4000000 | 0x8000000 | 0x10000000 | 0x20000000 | 0x40000000 \
    | 0x200000000
#: futex operations
FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
BITSET_ANY = 0xFFFF_FFFF
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
_FUTEX_NAMES = {FUTEX_WAIT: "FUTEX_WAIT", FUTEX_WAKE: "FUTEX_WAKE", FUTEX_REQUEUE: "FUTEX_REQUEUE",
                FUTEX_CMP_REQUEUE: "FUTEX_CMP_REQUEUE", FUTEX_WAKE_OP: "FUTEX_WAKE_OP",
                FUTEX_WAIT_BITSET: "FUTEX_WAIT_BITSET", FUTEX_WAKE_BITSET: "FUTEX_WAKE_BITSET"}


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


def futex_args(a: tuple[int, ...]) -> str:
    """futex's arguments as strace prints them (only those the operation uses)."""
    uaddr, op, val, timeout, uaddr2, val3 = a
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    name = _FUTEX_NAMES.get(cmd, str(cmd)) + ("_PRIVATE" if op & FUTEX_PRIVATE_FLAG else "") \
        + ("|FUTEX_CLOCK_REALTIME" if op & FUTEX_CLOCK_REALTIME else "")
    out = [hex(uaddr), name, str(_i(val))]
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        out.append(_ptr(timeout))
    elif cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP):
        out += [str(_i(timeout)), hex(uaddr2)]
        if cmd == FUTEX_CMP_REQUEUE:
            out.append(str(_i(val3)))
    if cmd in (FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP):
        out.append("FUTEX_BITSET_MATCH_ANY" if val3 & BITSET_ANY == BITSET_ANY else hex(val3 & BITSET_ANY))
    return ", ".join(out)


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


async def sys_set_robust_list(k: Personality, p: Proc, c: Call) -> int:
    """Accepted and not used: robust mutexes of a dying thread are not released."""
    return 0 if c.a[1] == 24 else -EINVAL


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


# --------------------------------------------------------------------------- futex
@dataclass(eq=False, slots=True)
class FutexWait(Wait):
    """One thread waiting on a futex word."""

    tid: int
    key: tuple[int, int]
    bitset: int
    #: the simulated time the wait times out (None: never)
    deadline: int | None
    woken: bool = False

    def forget(self, k: Personality, c: Call) -> None:
        """The waiting thread goes (interrupted, or it ended): it leaves the futex queue."""
        _unqueue(k, self)


def futex_wake(k: Personality, key: tuple[int, int], n: int, bitset: int = BITSET_ANY) -> int:
    """Wake up to ``n`` waiters on ``key`` whose bitset meets ``bitset``, in arrival order; the
    number woken."""
    q = k.futexes.get(key)
    if not q:
        return 0
    woken = 0
    keep = []
    for w in q:
        if woken < n and w.bitset & bitset:
            w.woken = True
            k.wake({w.tid})
            woken += 1
        else:
            keep.append(w)
    if keep:
        k.futexes[key] = keep
    else:
        del k.futexes[key]
    return woken


def _unqueue(k: Personality, w: FutexWait) -> None:
    q = k.futexes.get(w.key)
    if q is not None and w in q:
        q.remove(w)
        if not q:
            del k.futexes[w.key]


async def futex_key(k: Personality, p: Proc, uaddr: int, private: bool) -> tuple[int, int]:
    """The wait queue of the word at ``uaddr``: (pid, address), or (0, frame) for a shared
    futex in memory that other processes may map too."""
    if not private:
        v = p.vma(uaddr)
        if v is not None and v.shared:
            a = await k.frame_of(p, uaddr, False)
            if a is not None:
                return (0, a)
    return (p.pid, uaddr)


async def _word(k: Personality, p: Proc, addr: int) -> int | None:
    raw = await k.read(p, addr, 4)
    return None if raw is None else int.from_bytes(raw, "little")


async def sys_futex(k: Personality, p: Proc, c: Call) -> int:
    uaddr, op, val, timeout, uaddr2, val3 = c.a
    cmd = op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
    val &= 0xFFFF_FFFF
    if c.state is not None:
        return await _futex_wait_again(k, p, c)
    if k.cfg.strace is not None:
        c.args = futex_args(c.a)
    if uaddr & 3:
        return -EINVAL
    private = bool(op & FUTEX_PRIVATE_FLAG)
    key = await futex_key(k, p, uaddr, private)
    if cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
        bitset = val3 & 0xFFFF_FFFF if cmd == FUTEX_WAIT_BITSET else BITSET_ANY
        if bitset == 0:
            return -EINVAL
        deadline = None
        if timeout:
            raw = await k.read(p, timeout, 16)
            if raw is None:
                return -EFAULT
            sec, nsec = struct.unpack("<qq", raw)
            if sec < 0 or not 0 <= nsec < 10**9:
                return -EINVAL
            t = sec * 10**9 + nsec
            if cmd == FUTEX_WAIT:  # relative
                deadline = k.now_ns + t
            else:  # absolute, on CLOCK_MONOTONIC or (FUTEX_CLOCK_REALTIME) the wall clock
                deadline = t - (EPOCH * 10**9 if op & FUTEX_CLOCK_REALTIME else 0)
        word = await _word(k, p, uaddr)
        if word is None:
            return -EFAULT
        if word != val:
            return -EAGAIN
        if deadline is not None and deadline <= k.now_ns:
            return -ETIMEDOUT
        w = FutexWait(p.cur.tid, key, bitset, deadline)
        k.futexes.setdefault(key, []).append(w)
        c.state = w
        return await _futex_wait_again(k, p, c)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 & 0xFFFF_FFFF if cmd == FUTEX_WAKE_BITSET else BITSET_ANY
        if bitset == 0:
            return -EINVAL
        return futex_wake(k, key, max(_i(val), 1), bitset)  # Linux wakes one for 0
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        if uaddr2 & 3 or _i(val) < 0 or _i(timeout) < 0:
            return -EINVAL
        if cmd == FUTEX_CMP_REQUEUE:
            word = await _word(k, p, uaddr)
            if word is None:
                return -EFAULT
            if word != val3 & 0xFFFF_FFFF:
                return -EAGAIN
        n = futex_wake(k, key, _i(val))
        return n + _requeue(k, key, await futex_key(k, p, uaddr2, private), _i(timeout))
    if cmd == FUTEX_WAKE_OP:
        if uaddr2 & 3:
            return -EINVAL
        key2 = await futex_key(k, p, uaddr2, private)
        return await _wake_op(k, p, key, _i(val), _i(timeout), uaddr2, key2, val3 & 0xFFFF_FFFF)
    return -ENOSYS  # priority-inheritance futexes


async def _futex_wait_again(k: Personality, p: Proc, c: Call) -> int:
    """A futex wait, first run or run again: 0 when woken, a timeout, or BLOCK; a signal
    interrupts it (restarted with SA_RESTART when it has no timeout, as Linux's ERESTARTSYS;
    EINTR otherwise)."""
    w: FutexWait = c.state
    if w.woken:
        k.sleepers.pop(w.tid, None)
        return 0
    if w.deadline is not None and k.now_ns >= w.deadline:
        _unqueue(k, w)
        k.sleepers.pop(w.tid, None)
        return -ETIMEDOUT
    if w.deadline is not None:
        k.sleepers[w.tid] = w.deadline
    p.sig_waiters.add(w.tid)
    return await interrupt(k, p, c, RESTART_SYS if w.deadline is None else RESTART_NOHAND)


def _requeue(k: Personality, src: tuple[int, int], dst: tuple[int, int], n: int) -> int:
    """Move up to ``n`` waiters of ``src`` to the end of ``dst``'s queue; how many moved."""
    q = k.futexes.get(src)
    if not q or n <= 0 or src == dst:
        return 0
    moved, rest = q[:n], q[n:]
    if rest:
        k.futexes[src] = rest
    else:
        del k.futexes[src]
    for w in moved:
        w.key = dst
    k.futexes.setdefault(dst, []).extend(moved)
    return len(moved)


_WAKE_OPS = (lambda a, b: b, lambda a, b: a + b, lambda a, b: a | b, lambda a, b: a & ~b,
             lambda a, b: a ^ b)
_WAKE_CMPS = (lambda a, b: a == b, lambda a, b: a != b, lambda a, b: a < b, lambda a, b: a <= b,
              lambda a, b: a > b, lambda a, b: a >= b)


async def _wake_op(k: Personality, p: Proc, key: tuple[int, int], n: int, n2: int, uaddr2: int,
                   key2: tuple[int, int], enc: int) -> int:
    """FUTEX_WAKE_OP: change the word at ``uaddr2``, wake ``key``, and wake ``uaddr2``'s waiters
    when the word's old value passes the encoded comparison."""
    op, cmp = enc >> 28 & 15, enc >> 24 & 15
    oparg, cmparg = enc >> 12 & 0xFFF, enc & 0xFFF
    oparg = oparg - 0x1000 if oparg & 0x800 else oparg
    cmparg = cmparg - 0x1000 if cmparg & 0x800 else cmparg
    if op & 8:  # FUTEX_OP_OPARG_SHIFT
        if not 0 <= oparg < 32:
            return -EINVAL
        oparg, op = 1 << oparg, op & 7
    if op >= len(_WAKE_OPS) or cmp >= len(_WAKE_CMPS):
        return -ENOSYS
    old = await _word(k, p, uaddr2)
    if old is None:
        return -EFAULT
    new = _WAKE_OPS[op](old, oparg) & 0xFFFF_FFFF
    if not await k.write(p, uaddr2, new.to_bytes(4, "little")):
        return -EFAULT
    woken = futex_wake(k, key, max(n, 1))
    if _WAKE_CMPS[cmp](_i(old), cmparg):
        woken += futex_wake(k, key2, max(n2, 1))
    return woken


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    39: ("getpid", sys_getpid, ""),
    56: ("clone", sys_clone, "xpppp"),
    60: ("exit", sys_exit, "d"),
    186: ("gettid", sys_gettid, ""),
    202: ("futex", sys_futex, "pxuppx"),
    218: ("set_tid_address", sys_set_tid_address, "p"),
    231: ("exit_group", sys_exit_group, "d"),
    273: ("set_robust_list", sys_set_robust_list, "pu"),
    435: ("clone3", sys_clone3, "pu"),
}
