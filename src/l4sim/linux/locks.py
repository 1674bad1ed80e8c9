"""File locks of the Linux personality: POSIX record locks, open-file-description locks, flock.

Linux has two independent kinds of advisory lock on an inode (fs/locks.c):

- **record locks** (``fcntl``): byte ranges, read (shared) or write (exclusive).  A
  **POSIX** lock (``F_SETLK``, ``F_SETLKW``, ``F_GETLK``) belongs to the *process*: its
  threads share it, a forked child does not inherit it, and it goes when the process closes
  *any* fd of the file (not only the one it was taken through) or ends.  An
  **open-file-description** lock (``F_OFD_SETLK``, ``F_OFD_SETLKW``, ``F_OFD_GETLK``)
  belongs to the open file: ``dup`` and ``fork`` share it, and it goes with the open file's
  last reference.  Both kinds live in one list per inode and conflict with each other; a
  process's (or an open file's) own ranges are split and merged as it locks and unlocks.
- **flock** locks: the whole file, shared or exclusive, belonging to the open file;
  converting one is not atomic (the old lock goes first), as on Linux.

``F_SETLKW`` and a blocking ``flock`` wait (:data:`~l4sim.linux.state.BLOCK`) until the
conflicting locks go; a signal interrupts them (restarted after a handler with
``SA_RESTART``).  Before a POSIX lock waits, the wait-for chain is followed as Linux's
``posix_locks_deadlock`` does -- from the lock in the way to the lock its owner waits for,
and so on -- and a chain that comes back to the caller is ``EDEADLK``.  OFD locks are not
checked (nor on Linux).

The locks of the whole system are the :class:`Locks` facility; closing fds and ending
open files reach it through the facility hooks (:class:`~l4sim.linux.state.Facility`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from l4sim.linux.signals import RESTART_SYS, interrupt
from l4sim.linux.state import Call, Facility, Personality, Proc, Wait, get
from l4sim.linux.vfs import Inode, OFile

EBADF, EAGAIN, EFAULT, EINVAL, EDEADLK, ENOLCK = 9, 11, 14, 22, 35, 37
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
LOCK_CMDS = frozenset((F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW))
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
#: a lock "to the end of the file" (l_len 0) ends here
EOF_END = 1 << 63
#: struct flock (x86-64): l_type, l_whence, l_start, l_len, l_pid
FLOCK = struct.Struct("<hh4xqqi4x")
#: Linux gives up following a wait-for chain after this many steps (MAX_DEADLK_ITERATIONS)
MAX_DEADLK_ITERATIONS = 10


@dataclass(eq=False)
class Lock:
    """One lock: its owner (a process's pid for POSIX locks, the :class:`OFile` for OFD and
    flock locks), the byte range [start, end) and whether it is exclusive."""

    owner: object
    start: int
    end: int
    write: bool
    #: what F_GETLK reports as l_pid: the owner's pid, -1 for an OFD lock
    pid: int


@dataclass
class InodeLocks:
    """The locks of one inode: record locks (POSIX and OFD in one list, by start) and flock
    locks; the tids waiting for one of them to go."""

    records: list[Lock] = field(default_factory=list)
    flocks: list[Lock] = field(default_factory=list)
    waiters: set[int] = field(default_factory=set)


@dataclass(eq=False)
class LockWait(Wait):
    """A ``F_SETLKW`` or blocking ``flock`` waiting for conflicting locks to go."""

    node: Inode
    want: Lock
    flock: bool

    def forget(self, k: Personality, c: Call) -> None:
        """Interrupted, or its thread ended: it no longer waits (the deadlock detector forgets it)."""
        c.state = None
        k.facility(Locks).blocked.pop(self.want.owner, None)


class Locks(Facility):
    """Every lock of the system, by inode; and which POSIX owner waits for what (deadlock
    detection)."""

    def __init__(self) -> None:
        self.inodes: dict[Inode, InodeLocks] = {}
        #: POSIX owner (pid) -> the lock it waits to take and its inode
        self.blocked: dict[object, tuple[Inode, Lock]] = {}

    def of(self, node: Inode) -> InodeLocks:
        il = self.inodes.get(node)
        if il is None:
            il = self.inodes[node] = InodeLocks()
        return il

    def _drop(self, k: Personality, node: Inode, record_owner: object, flock_owner: object) -> None:
        """Drop ``record_owner``'s record locks and ``flock_owner``'s flock on ``node``."""
        il = self.inodes.get(node)
        if il is None:
            return
        records = [x for x in il.records if x.owner != record_owner]
        flocks = [x for x in il.flocks if x.owner is not flock_owner]
        if len(records) != len(il.records) or len(flocks) != len(il.flocks):
            il.records, il.flocks = records, flocks
            k.wake(il.waiters)
        if not il.records and not il.flocks and not il.waiters:
            del self.inodes[node]

    def closed(self, k: Personality, p: Proc, f: OFile) -> None:
        """A close of any fd of the file drops the process's POSIX locks on it (Linux's
        locks_remove_posix)."""
        if f.node in self.inodes:
            self._drop(k, f.node, p.pid, None)

    def released(self, k: Personality, f: OFile) -> None:
        """The open file's last reference: its OFD and flock locks go (locks_remove_file)."""
        if f.node in self.inodes:
            self._drop(k, f.node, f, f)


# --------------------------------------------------------------------------- record locks
def conflict(il: InodeLocks, want: Lock) -> Lock | None:
    """The first lock of another owner that overlaps ``want`` where one of them is exclusive."""
    for x in il.records:
        if x.owner != want.owner and x.start < want.end and want.start < x.end and (x.write or want.write):
            return x
    return None


def apply(il: InodeLocks, owner: object, start: int, end: int, kind: int, pid: int) -> None:
    """Set [start, end) of ``owner``'s locks to ``kind`` (F_UNLCK: none): its other ranges are
    kept, split where cut; touching or overlapping ranges of one type are merged (Linux's
    posix_lock_inode)."""
    out: list[Lock] = []
    for x in il.records:
        if x.owner != owner or x.end <= start or x.start >= end:
            out.append(x)
            continue
        if x.start < start:
            out.append(Lock(owner, x.start, start, x.write, x.pid))
        if x.end > end:
            out.append(Lock(owner, end, x.end, x.write, x.pid))
    if kind != F_UNLCK:
        new = Lock(owner, start, end, kind == F_WRLCK, pid)
        merged: list[Lock] = []
        for x in out:
            if x.owner == owner and x.write == new.write and x.start <= new.end and new.start <= x.end:
                new.start, new.end = min(new.start, x.start), max(new.end, x.end)
            else:
                merged.append(x)
        out = [*merged, new]
    il.records = sorted(out, key=lambda x: (x.start, x.end))


def deadlock(locks: Locks, owner: object, blocker: Lock) -> bool:
    """Would ``owner`` waiting for ``blocker`` close a circle of POSIX owners each waiting
    for a lock of the next?"""
    for _ in range(MAX_DEADLK_ITERATIONS):
        if blocker.owner == owner:
            return True
        w = locks.blocked.get(blocker.owner)
        if w is None:
            return False
        nxt = conflict(locks.of(w[0]), w[1])
        if nxt is None or isinstance(nxt.owner, OFile):
            return False
        blocker = nxt
    return False


def _range(f: OFile, whence: int, start: int, length: int) -> tuple[int, int] | int:
    """struct flock's range as [start, end) in the file, or a negative errno."""
    if whence == SEEK_SET:
        base = 0
    elif whence == SEEK_CUR:
        base = f.pos
    elif whence == SEEK_END:
        base = f.node.size()
    else:
        return -EINVAL
    start += base
    if length > 0:
        end = start + length
    elif length == 0:
        end = EOF_END
    else:
        start, end = start + length, start
    if start < 0:
        return -EINVAL
    return start, end


async def fcntl_lock(k: Personality, p: Proc, c: Call, fd: int, cmd: int, arg: int) -> int:
    """fcntl's lock commands (see the module docstring)."""
    locks = k.facility(Locks)
    if isinstance(c.state, LockWait):  # a F_SETLKW waiting, run again
        return await _setlk_wait(k, p, c)
    f = get(p, fd)
    if f is None:
        return -EBADF
    raw = await k.read(p, arg, FLOCK.size)
    if raw is None:
        return -EFAULT
    ltype, whence, lstart, llen, lpid = FLOCK.unpack(raw)
    ofd = cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW)
    if ofd and lpid != 0:
        return -EINVAL
    rng = _range(f, whence, lstart, llen)
    if isinstance(rng, int):
        return rng
    if ltype not in (F_RDLCK, F_WRLCK, F_UNLCK):
        return -EINVAL
    owner: object = f if ofd else p.pid
    want = Lock(owner, rng[0], rng[1], ltype == F_WRLCK, -1 if ofd else p.pid)
    il = locks.of(f.node)
    if cmd in (F_GETLK, F_OFD_GETLK):
        if ltype == F_UNLCK:
            return -EINVAL
        x = conflict(il, want)
        if x is None:
            out = FLOCK.pack(F_UNLCK, whence, lstart, llen, lpid)
        else:
            out = FLOCK.pack(F_WRLCK if x.write else F_RDLCK, SEEK_SET, x.start,
                             0 if x.end == EOF_END else x.end - x.start, x.pid)
        if not il.records and not il.flocks and not il.waiters:
            del locks.inodes[f.node]
        return 0 if await k.write(p, arg, out) else -EFAULT
    if (ltype == F_RDLCK and not f.readable) or (ltype == F_WRLCK and not f.writable):
        return -EBADF
    if ltype == F_UNLCK:
        apply(il, owner, want.start, want.end, F_UNLCK, want.pid)
        k.wake(il.waiters)
        return 0
    x = conflict(il, want)
    if x is None:
        apply(il, owner, want.start, want.end, ltype, want.pid)
        return 0
    if cmd in (F_SETLK, F_OFD_SETLK):
        return -EAGAIN
    c.state = LockWait(f.node, want, False)
    return await _setlk_wait(k, p, c)


async def _setlk_wait(k: Personality, p: Proc, c: Call) -> int:
    locks = k.facility(Locks)
    w: LockWait = c.state
    il = locks.of(w.node)
    want = w.want
    x = conflict(il, want)
    if x is None:
        locks.blocked.pop(want.owner, None)
        c.state = None
        apply(il, want.owner, want.start, want.end, F_WRLCK if want.write else F_RDLCK, want.pid)
        return 0
    if not isinstance(want.owner, OFile) and not isinstance(x.owner, OFile) and deadlock(locks, want.owner, x):
        locks.blocked.pop(want.owner, None)
        c.state = None
        return -EDEADLK
    if not isinstance(want.owner, OFile):
        locks.blocked[want.owner] = (w.node, want)
    il.waiters.add(p.cur.tid)
    return await interrupt(k, p, c, RESTART_SYS)


# --------------------------------------------------------------------------- flock
def _flock_conflict(il: InodeLocks, owner: OFile, write: bool) -> bool:
    return any(x.owner is not owner and (x.write or write) for x in il.flocks)


async def sys_flock(k: Personality, p: Proc, c: Call) -> int:
    """flock(fd, op): LOCK_SH, LOCK_EX (| LOCK_NB), LOCK_UN on the whole file, owned by the
    open file."""
    locks = k.facility(Locks)
    if isinstance(c.state, LockWait):
        w: LockWait = c.state
        il = locks.of(w.node)
        f = w.want.owner
        assert isinstance(f, OFile)
        if _flock_conflict(il, f, w.want.write):
            il.waiters.add(p.cur.tid)
            return await interrupt(k, p, c, RESTART_SYS)
        c.state = None
        il.flocks.append(w.want)
        return 0
    f = get(p, c.a[0] - (1 << 32) if c.a[0] & 0x8000_0000 else c.a[0] & 0xFFFF_FFFF)
    if f is None:
        return -EBADF
    op = c.a[1] & 0xFFFF_FFFF
    kind = op & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
        return -EINVAL
    il = locks.of(f.node)
    mine = [x for x in il.flocks if x.owner is f]
    if kind == LOCK_UN:
        if mine:
            il.flocks = [x for x in il.flocks if x.owner is not f]
            k.wake(il.waiters)
        return 0
    write = kind == LOCK_EX
    if mine and mine[0].write == write:
        return 0
    if mine:  # a conversion: the old lock goes first, and waiters may take their turn
        il.flocks = [x for x in il.flocks if x.owner is not f]
        k.wake(il.waiters)
    want = Lock(f, 0, EOF_END, write, p.pid)
    if not _flock_conflict(il, f, write):
        il.flocks.append(want)
        return 0
    if op & LOCK_NB:
        return -EAGAIN
    c.state = LockWait(f.node, want, True)
    il.waiters.add(p.cur.tid)
    return await interrupt(k, p, c, RESTART_SYS)


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    73: ("flock", sys_flock, "dx"),
}
