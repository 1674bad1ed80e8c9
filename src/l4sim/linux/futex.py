"""Futexes of the Linux personality: wait queues, priority inheritance, robust lists.

Futexes are wait queues kept by the personality, keyed as Linux keys them:
a word in private memory by (pid, address) -- the address space and the
word; without ``FUTEX_PRIVATE_FLAG``, a word in ``MAP_SHARED`` memory by
(0, the pool address of its frame + offset), so processes sharing the page
meet on the same queue.  A wait is a blocking call
(:data:`~l4sim.linux.state.BLOCK`): the waiter's reply is kept and sent when
a wake, its timeout (simulated time) or a signal with a handler ends the wait
(EINTR; an untimed wait is restarted after a handler with ``SA_RESTART``).
``FUTEX_WAIT``, ``FUTEX_WAKE``, ``FUTEX_WAIT_BITSET``, ``FUTEX_WAKE_BITSET``,
``FUTEX_REQUEUE``, ``FUTEX_CMP_REQUEUE`` and ``FUTEX_WAKE_OP`` are Linux's.

**Priority inheritance** (``FUTEX_LOCK_PI``, ``FUTEX_LOCK_PI2``, ``FUTEX_TRYLOCK_PI``,
``FUTEX_UNLOCK_PI``; kernel/futex/pi.c): the word holds the owner's tid, with
``FUTEX_WAITERS`` when threads wait in the kernel and ``FUTEX_OWNER_DIED`` when its owner
died holding it.  A contended lock keeps a :class:`PiState` (the owner, the waiters); the
owner runs at the highest kernel priority of its waiters -- raised on the kernel's
scheduler (``run_thread``) while it holds the lock, along a chain of owners that wait
themselves -- and an unlock hands the lock to the highest waiter (the earliest of equals).
A signal interrupts a waiting lock, which is restarted after the handler (Linux's
ERESTARTNOINTR).

**Robust lists** (``set_robust_list``, ``get_robust_list``): when a thread ends (exit, a
fatal signal, execve), the list it registered is walked as Linux's ``exit_robust_list``
does: each futex word it still owns gets ``FUTEX_OWNER_DIED`` (and keeps
``FUTEX_WAITERS``), and one waiter is woken; a PI futex it owned goes to its highest waiter
with ``FUTEX_OWNER_DIED`` set.  The C library turns that into ``EOWNERDEAD``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from l4sim.linux.signals import (
    RESTART_NOHAND,
    RESTART_NOINTR,
    RESTART_SYS,
    interrupt,
    read_timespec,
)
from l4sim.linux.state import Call, Facility, LinuxThread, Personality, Proc, Wait
from l4sim.linux.vfs import EPOCH

EPERM, ESRCH, EAGAIN, EFAULT, EINVAL, ENOSYS, ETIMEDOUT, EDEADLK = 1, 3, 11, 14, 22, 38, 110, 35
#: futex operations
FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI, FUTEX_LOCK_PI2 = 6, 7, 8, 13
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET = 9, 10
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
BITSET_ANY = 0xFFFF_FFFF
#: the bits of a PI or robust futex word
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x8000_0000, 0x4000_0000, 0x3FFF_FFFF
#: struct robust_list_head: next, futex_offset, list_op_pending (24 bytes); Linux walks at
#: most this many entries
ROBUST_HEAD_SIZE, ROBUST_LIST_LIMIT = 24, 2048
#: how deep a chain of PI owners waiting for each other is followed (Linux's max_lock_depth)
MAX_LOCK_DEPTH = 1024


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


_FUTEX_NAMES = {FUTEX_WAIT: "FUTEX_WAIT", FUTEX_WAKE: "FUTEX_WAKE", FUTEX_REQUEUE: "FUTEX_REQUEUE",
                FUTEX_CMP_REQUEUE: "FUTEX_CMP_REQUEUE", FUTEX_WAKE_OP: "FUTEX_WAKE_OP",
                FUTEX_WAIT_BITSET: "FUTEX_WAIT_BITSET", FUTEX_WAKE_BITSET: "FUTEX_WAKE_BITSET",
                FUTEX_LOCK_PI: "FUTEX_LOCK_PI", FUTEX_UNLOCK_PI: "FUTEX_UNLOCK_PI",
                FUTEX_TRYLOCK_PI: "FUTEX_TRYLOCK_PI", FUTEX_LOCK_PI2: "FUTEX_LOCK_PI2"}


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
    if isinstance(c.state, PiWait):
        return await _lock_pi_again(k, p, c)
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
            t = await read_timespec(k, p, timeout)
            if t < 0:
                return t
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
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI):
        return await _lock_pi(k, p, c, uaddr, key, cmd, op, timeout)
    if cmd == FUTEX_UNLOCK_PI:
        return await _unlock_pi(k, p, uaddr, key)
    return -ENOSYS  # the requeue-to-PI operations


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
    if op & 8:  # FUTEX_OP_OPARG_SHIFT: a shift out of 0..31 is masked, as Linux does
        oparg, op = 1 << (oparg & 31), op & 7
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


# --------------------------------------------------------------------------- priority inheritance
@dataclass(eq=False)
class PiWait(Wait):
    """A thread waiting to take a PI futex (its place among the :class:`PiState`'s waiters)."""

    tid: int
    key: tuple[int, int]
    #: where the waiter sees the word (the new owner writes its tid there)
    uaddr: int
    #: when it gives up (None: never), in simulated time
    deadline: int | None
    #: arrival order among the waiters of equal priority
    seq: int
    #: it has been given the lock (an unlock, or its owner's death, handed it over)
    got: bool = False

    def forget(self, k: Personality, c: Call) -> None:
        """It stops waiting (a signal, or its thread ends): it leaves the waiters; the owner's
        priority is settled by whoever called (:func:`_lock_pi_again`, the thread's end)."""
        fx = k.facility(Futexes)
        st = fx.pi.get(self.key)
        if st is not None and self in st.waiters:
            st.waiters.remove(self)
            fx.unsettled.add(st.owner)
            if not st.waiters:
                del fx.pi[self.key]


@dataclass
class PiState:
    """A contended PI futex (Linux's futex_pi_state): its owner's tid and the threads waiting."""

    owner: int
    waiters: list[PiWait] = field(default_factory=list)

    def top(self, k: Personality) -> PiWait:
        """The waiter that gets the lock next: the highest kernel priority, the earliest of equals."""
        return min(self.waiters, key=lambda w: (-_kprio(k, w.tid), w.seq))


def _kprio(k: Personality, tid: int) -> int:
    t = k.threads.get(tid)
    return t.kprio if t is not None else 0


class Futexes(Facility):
    """PI futexes in contention and the robust lists of the system's threads."""

    def __init__(self) -> None:
        self.pi: dict[tuple[int, int], PiState] = {}
        #: tid -> the address of its struct robust_list_head (set_robust_list)
        self.robust: dict[int, int] = {}
        #: owners whose waiters changed outside an async call: their priority is settled next
        self.unsettled: set[int] = set()
        self.seq = 0

    async def thread_ends(self, k: Personality, t: LinuxThread) -> None:
        """A thread's end: it leaves a PI wait; its robust list is walked; the PI futexes it
        owns go to their highest waiters, with FUTEX_OWNER_DIED (Linux's futex_exit_release)."""
        c = t.blocked
        if c is not None and isinstance(c.state, PiWait):
            c.state.forget(k, c)
            c.state = None
        head = self.robust.pop(t.tid, None)
        if head is not None:
            await _walk_robust_list(k, t, head)
        for key, st in list(self.pi.items()):
            if st.owner == t.tid:
                await _hand_over(k, key, st, FUTEX_OWNER_DIED)
        self.unsettled.discard(t.tid)
        await settle(k)


async def reprioritize(k: Personality, t: LinuxThread) -> None:
    """Give ``t`` the highest kernel priority of its own and its PI waiters' (each waiter's
    own raised one); when that changes and ``t`` waits for a PI futex itself, its owner's
    follows (the chain of rt_mutex_adjust_prio_chain)."""
    fx = k.facility(Futexes)
    for _ in range(MAX_LOCK_DEPTH):
        want = t.prio
        for st in fx.pi.values():
            if st.owner == t.tid:
                want = max([want, *(_kprio(k, w.tid) for w in st.waiters)])
        if want == t.kprio:
            return
        await k.set_prio(t, want)
        c = t.blocked
        if c is None or not isinstance(c.state, PiWait):
            return
        waited = fx.pi.get(c.state.key)
        nxt = k.threads.get(waited.owner) if waited is not None else None
        if nxt is None:
            return
        t = nxt


async def settle(k: Personality) -> None:
    """Settle the priorities of owners whose waiters went (see :attr:`Futexes.unsettled`)."""
    fx = k.facility(Futexes)
    while fx.unsettled:
        tid = min(fx.unsettled)
        fx.unsettled.discard(tid)
        t = k.threads.get(tid)
        if t is not None:
            await reprioritize(k, t)


async def _hand_over(k: Personality, key: tuple[int, int], st: PiState, died: int) -> None:
    """Give the PI futex ``key`` to its highest waiter: the word becomes its tid with
    FUTEX_WAITERS (and ``died``: FUTEX_OWNER_DIED when the owner ended holding it)."""
    fx = k.facility(Futexes)
    old = st.owner
    live = [w for w in st.waiters if (t := k.threads.get(w.tid)) is not None and t.proc.status is None]
    if not live:
        del fx.pi[key]
        fx.unsettled.add(old)
        return
    st.waiters = live
    top = st.top(k)
    st.waiters.remove(top)
    waiter = k.threads[top.tid]
    new = top.tid | FUTEX_WAITERS | died
    await k.write(waiter.proc, top.uaddr, new.to_bytes(4, "little"))
    top.got = True
    k.wake({top.tid})
    st.owner = top.tid
    if not st.waiters:
        del fx.pi[key]
    fx.unsettled.update((old, top.tid))


async def _lock_pi(k: Personality, p: Proc, c: Call, uaddr: int, key: tuple[int, int], cmd: int, op: int,
                   timeout: int) -> int:
    """FUTEX_LOCK_PI, FUTEX_LOCK_PI2, FUTEX_TRYLOCK_PI (Linux's futex_lock_pi_atomic, then the
    wait): 0 with the lock, EDEADLK for one's own, ESRCH for an owner that does not exist,
    EAGAIN for a trylock that finds it taken, ETIMEDOUT."""
    fx = k.facility(Futexes)
    tid = p.cur.tid
    deadline = None
    st: PiState | None
    if timeout and cmd != FUTEX_TRYLOCK_PI:
        t = await read_timespec(k, p, timeout)
        if t < 0:
            return t
        realtime = cmd == FUTEX_LOCK_PI or op & FUTEX_CLOCK_REALTIME  # LOCK_PI: always CLOCK_REALTIME
        deadline = t - (EPOCH * 10**9 if realtime else 0)
    word = await _word(k, p, uaddr)
    if word is None:
        return -EFAULT
    owner = word & FUTEX_TID_MASK
    if owner == tid:
        return -EDEADLK
    st = fx.pi.get(key)
    if st is None and owner == 0:  # free (perhaps with FUTEX_OWNER_DIED): taken, the bit kept
        new = (word & FUTEX_OWNER_DIED) | tid
        return 0 if await k.write(p, uaddr, new.to_bytes(4, "little")) else -EFAULT
    if st is not None and st.owner != owner:
        return -EINVAL  # the word does not name the owner the kernel knows
    if st is None:
        # the first waiter: FUTEX_WAITERS goes into the word before the owner is looked for
        if not await k.write(p, uaddr, (word | FUTEX_WAITERS).to_bytes(4, "little")):
            return -EFAULT
        o = k.threads.get(owner)
        if o is None or o.proc.status is not None:
            return -ESRCH  # an owner that ended without a robust list, or a bogus word
        if cmd == FUTEX_TRYLOCK_PI:
            return -EAGAIN
        st = fx.pi[key] = PiState(owner)
    elif cmd == FUTEX_TRYLOCK_PI:
        return -EAGAIN
    if deadline is not None and deadline <= k.now_ns:
        if not st.waiters:
            del fx.pi[key]
        return -ETIMEDOUT
    fx.seq += 1
    w = PiWait(tid, key, uaddr, deadline, fx.seq)
    st.waiters.append(w)
    c.state = w
    o = k.threads.get(st.owner)
    if o is not None:
        await reprioritize(k, o)
    return await _lock_pi_again(k, p, c)


async def _lock_pi_again(k: Personality, p: Proc, c: Call) -> int:
    """A PI lock waiting: 0 once handed the lock, ETIMEDOUT, or BLOCK; a signal's handler
    runs and the call starts again (ERESTARTNOINTR)."""
    w: PiWait = c.state
    if w.got:
        k.sleepers.pop(w.tid, None)
        c.state = None
        return 0
    if w.deadline is not None and k.now_ns >= w.deadline:
        k.sleepers.pop(w.tid, None)
        w.forget(k, c)
        c.state = None
        await settle(k)
        return -ETIMEDOUT
    if w.deadline is not None:
        k.sleepers[w.tid] = w.deadline
    p.sig_waiters.add(w.tid)
    r = await interrupt(k, p, c, RESTART_NOINTR)
    await settle(k)
    return r


async def _unlock_pi(k: Personality, p: Proc, uaddr: int, key: tuple[int, int]) -> int:
    """FUTEX_UNLOCK_PI: only the owner may; the lock goes to the highest waiter (the word: its
    tid and FUTEX_WAITERS), or is free (0); the caller's raised priority falls back."""
    fx = k.facility(Futexes)
    word = await _word(k, p, uaddr)
    if word is None:
        return -EFAULT
    if word & FUTEX_TID_MASK != p.cur.tid:
        return -EPERM
    st = fx.pi.get(key)
    if st is not None and st.waiters:
        await _hand_over(k, key, st, 0)
    elif not await k.write(p, uaddr, bytes(4)):
        return -EFAULT
    await settle(k)
    return 0


# --------------------------------------------------------------------------- robust lists
async def sys_set_robust_list(k: Personality, p: Proc, c: Call) -> int:
    """Register the thread's robust list (walked when it ends); EINVAL unless 24 bytes."""
    if c.a[1] != ROBUST_HEAD_SIZE:
        return -EINVAL
    k.facility(Futexes).robust[p.cur.tid] = c.a[0]
    return 0


async def sys_get_robust_list(k: Personality, p: Proc, c: Call) -> int:
    """The robust list head of thread ``pid`` (0: the caller) and its size."""
    pid = _i(c.a[0])
    t = p.cur if pid == 0 else k.threads.get(pid)
    if t is None:
        return -ESRCH
    head = k.facility(Futexes).robust.get(t.tid, 0)
    if not await k.write(p, c.a[1], head.to_bytes(8, "little")):
        return -EFAULT
    return 0 if await k.write(p, c.a[2], ROBUST_HEAD_SIZE.to_bytes(8, "little")) else -EFAULT


async def _walk_robust_list(k: Personality, t: LinuxThread, head: int) -> None:
    """Linux's exit_robust_list: every entry of the list (and the pending one) names a futex
    word at entry + futex_offset; the low bit of an entry pointer marks a PI futex."""
    p = t.proc
    raw = await k.read(p, head, ROBUST_HEAD_SIZE)
    if raw is None:
        return
    nxt, offset, pending = struct.unpack("<QqQ", raw)
    entry, pi = nxt & ~1, nxt & 1
    pend, pend_pi = pending & ~1, pending & 1
    for _ in range(ROBUST_LIST_LIMIT):
        if entry == head:
            break
        raw = await k.read(p, entry, 8)
        if raw is None:
            return
        following = int.from_bytes(raw, "little")
        if entry != pend:
            await _owner_died(k, t, (entry + offset) & (1 << 64) - 1, bool(pi), False)
        entry, pi = following & ~1, following & 1
    if pend:
        await _owner_died(k, t, (pend + offset) & (1 << 64) - 1, bool(pend_pi), True)


async def _owner_died(k: Personality, t: LinuxThread, uaddr: int, pi: bool, pending: bool) -> None:
    """Linux's handle_futex_death for the word at ``uaddr`` of the ending thread ``t``."""
    p = t.proc
    if uaddr & 3:
        return
    word = await _word(k, p, uaddr)
    if word is None:
        return
    if pending and not pi and word == 0:  # it died between unlocking and leaving the list
        futex_wake(k, await futex_key(k, p, uaddr, False), 1)
        return
    if word & FUTEX_TID_MASK != t.tid:
        return
    new = (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED
    await k.write(p, uaddr, new.to_bytes(4, "little"))
    if not pi and word & FUTEX_WAITERS:
        futex_wake(k, await futex_key(k, p, uaddr, False), 1)


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    202: ("futex", sys_futex, "pxuppx"),
    273: ("set_robust_list", sys_set_robust_list, "pu"),
    274: ("get_robust_list", sys_get_robust_list, "dpp"),
}
