"""System V IPC of the Linux personality: shared memory, semaphores, message queues (ipc/).

Each kind has its own table of objects, found by key (``IPC_PRIVATE`` always makes a new
one; ``IPC_CREAT``, ``IPC_EXCL``) and named by Linux's ids: the index from a cyclic
allocator, plus 32768 times a sequence number that grows when the index wraps.  Everybody
is root: modes are kept and shown but not checked.

- **Shared memory** (``shmget``, ``shmat``, ``shmdt``, ``shmctl``): a segment is a
  :class:`~l4sim.linux.state.MemObject` -- it owns its frames (zeroed when first touched)
  and every attachment maps those same frames (``MAP_SHARED``, never copied); ``shmat``
  places it as mmap places memory (``SHM_RDONLY``, ``SHM_RND``, ``SHM_REMAP``), fork
  shares the attachments, ``/proc/PID/maps`` shows ``/SYSV<key> (deleted)``.  The number
  of attachments is the number of mappings of it; ``IPC_RMID`` marks it (``SHM_DEST``,
  key 0) and it goes with its last attachment (a detach, an exit, an execve).
- **Semaphores** (``semget``, ``semop``, ``semtimedop``, ``semctl``): ``semop`` applies
  all its operations or none; one that cannot (a decrement below 0, a wait for zero) waits
  (``IPC_NOWAIT``: EAGAIN; ``semtimedop``'s timeout: EAGAIN), and every change runs the
  waiting operations again in arrival order, as Linux's update_queue.  ``SEM_UNDO``
  records the opposite adjustment per process, applied (clamped to 0..32767) when it ends;
  fork does not copy it.  ``semctl``: ``GETVAL``, ``SETVAL``, ``GETALL``, ``SETALL``,
  ``GETPID``, ``GETNCNT``, ``GETZCNT``, ``IPC_STAT``, ``IPC_SET``, ``IPC_RMID`` (waiters get
  EIDRM), ``IPC_INFO``, ``SEM_INFO``, ``SEM_STAT``.
- **Message queues** (``msgget``, ``msgsnd``, ``msgrcv``, ``msgctl``): messages of a type
  (> 0); a receive takes the first (type 0), the first of a type (``MSG_EXCEPT``: not of
  it) or the first of the lowest type up to -type; ``MSG_NOERROR`` truncates, else E2BIG;
  ``MSG_COPY`` copies by position.  A send to a waiting receiver hands the message over
  (Linux's pipelined_send); a full queue (``msg_qbytes``, 16384 bytes) makes senders wait.

Waits are blocking calls as everywhere (:data:`~l4sim.linux.state.BLOCK`); a signal ends
them with EINTR, never restarted (System V IPC calls are not, on Linux).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.abi import MemRights
from l4sim.linux.memory import USER_END, carve, free_area, merge, overlaps
from l4sim.linux.signals import RESTART_NOHAND, interrupt, read_timespec
from l4sim.linux.state import Call, Facility, MemObject, Personality, Proc, Vma, Wait
from l4sim.linux.vfs import _ino

EPERM, ENOENT, EINTR, E2BIG, EAGAIN, ENOMEM, EFAULT, EEXIST, EINVAL = 1, 2, 4, 7, 11, 12, 14, 17, 22
EFBIG, ENOSPC, ERANGE, ENOMSG, EIDRM, ENOSYS = 27, 28, 34, 42, 43, 38
IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
IPC_64 = 0x100
SHM_LOCK, SHM_UNLOCK, SHM_STAT, SHM_INFO, SHM_STAT_ANY = 11, 12, 13, 14, 15
SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_DEST, SHM_LOCKED = 0o1000, 0o2000
GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
SEM_UNDO = 0x1000
MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
MSG_NOERROR, MSG_EXCEPT, MSG_COPY = 0o10000, 0o20000, 0o40000
#: Linux's limits (ipc/util.h, include/uapi/linux/{shm,sem,msg}.h)
IPCMNI = 32768
SHMMIN, SHMMNI = 1, 4096
SHMMAX = SHMALL = (1 << 64) - 1 - (1 << 24)
SEMMSL, SEMMNS, SEMOPM, SEMMNI, SEMVMX, SEMAEM = 32000, 1024000000, 500, 32000, 32767, 32767
MSGMAX, MSGMNB, MSGMNI = 8192, 16384, 32000
PAGE = 4096
#: struct ipc64_perm: key, uid, gid, cuid, cgid, mode, seq
PERM = struct.Struct("<iIIIIIH2x4xQQ")


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


# --------------------------------------------------------------------------- objects and ids
@dataclass(eq=False)
class IpcObj:
    """What every System V object has (Linux's kern_ipc_perm)."""

    key: int
    mode: int
    id: int = 0
    seq: int = 0
    uid: int = 0
    gid: int = 0
    cuid: int = 0
    cgid: int = 0
    ctime: int = 0

    def perm(self) -> bytes:
        return PERM.pack(self.key, self.uid, self.gid, self.cuid, self.cgid, self.mode, self.seq, 0, 0)


class Ids:
    """One kind's objects by index, with Linux's id allocation (idr_alloc_cyclic and the
    sequence number that grows when the index wraps)."""

    def __init__(self, limit: int) -> None:
        self.objs: dict[int, Any] = {}
        self.limit = limit
        self.last = -1
        self.seq = 0
        self.cursor = 0

    def add(self, obj: IpcObj) -> int:
        if len(self.objs) >= self.limit:
            return -ENOSPC
        idx = self.cursor
        while idx in self.objs:
            idx = (idx + 1) % self.limit
        if idx <= self.last:
            self.seq = (self.seq + 1) % (1 << 16)  # ipcid_seq_max
        self.last = idx
        self.cursor = (idx + 1) % self.limit
        obj.seq = self.seq
        obj.id = self.seq * IPCMNI + idx
        self.objs[idx] = obj
        return obj.id

    def get(self, ident: int) -> Any:
        if ident < 0:
            return None
        obj = self.objs.get(ident % IPCMNI)
        return obj if obj is not None and obj.id == ident else None

    def by_key(self, key: int) -> Any:
        for idx in sorted(self.objs):
            if self.objs[idx].key == key and key != IPC_PRIVATE:
                return self.objs[idx]
        return None

    def remove(self, obj: IpcObj) -> None:
        self.objs.pop(obj.id % IPCMNI, None)

    def highest(self) -> int:
        return max(self.objs, default=0)


def _get_or_make(ids: Ids, key: int, flags: int, make: Any) -> Any:
    """The object ``key`` names (EEXIST with IPC_CREAT|IPC_EXCL), or a new one from
    ``make()`` (IPC_PRIVATE, or IPC_CREAT for a key not in use); a negative errno."""
    if key != IPC_PRIVATE:
        obj = ids.by_key(key)
        if obj is not None:
            if flags & IPC_CREAT and flags & IPC_EXCL:
                return -EEXIST
            return obj
        if not flags & IPC_CREAT:
            return -ENOENT
    obj = make()
    if isinstance(obj, int):
        return obj
    r = ids.add(obj)
    return r if r < 0 else obj


# --------------------------------------------------------------------------- shared memory
class ShmSeg(IpcObj, MemObject):
    """A shared-memory segment: its frames, made when first touched (see the module docstring)."""

    def __init__(self, key: int, mode: int, segsz: int) -> None:
        IpcObj.__init__(self, key, mode)
        self.segsz = segsz
        self.frames: dict[int, int] = {}
        self.ino = next(_ino)
        self.atime = self.dtime = 0
        self.cpid = self.lpid = 0

    def size(self) -> int:
        return (self.segsz + PAGE - 1) // PAGE * PAGE

    async def frame(self, k: Personality, idx: int) -> int:
        a = self.frames.get(idx)
        if a is None:
            a = self.frames[idx] = await k.alloc()  # the segment's own reference
        return a


def _nattch(k: Personality, seg: ShmSeg) -> int:
    """The attachments: mappings of the segment in live processes."""
    return sum(1 for q in k.procs.values() for v in q.vmas if v.file is seg and v.start < v.end)


class SysvIpc(Facility):
    """The System V objects of the system and each process's semaphore adjustments."""

    def __init__(self) -> None:
        self.shm = Ids(SHMMNI)
        self.sem = Ids(SEMMNI)
        self.msg = Ids(MSGMNI)
        #: pid -> (semaphore set, number) -> adjustment made at its end (SEM_UNDO)
        self.undo: dict[int, dict[tuple[SemSet, int], int]] = {}

    def collect(self, k: Personality) -> None:
        """Removed segments that nobody maps any more go, and their frames with them."""
        for seg in [s for s in self.shm.objs.values() if s.mode & SHM_DEST and not _nattch(k, s)]:
            self.shm.remove(seg)
            for a in seg.frames.values():
                k.decref(a)
            seg.frames.clear()

    async def proc_ends(self, k: Personality, p: Proc) -> None:
        """A process's end: its semaphore adjustments are applied; segments only it still
        mapped and that were removed go."""
        adj = self.undo.pop(p.pid, None)
        if adj:
            touched: list[SemSet] = []
            for (ss, num), d in adj.items():
                if ss.removed or num >= len(ss.vals):
                    continue
                ss.vals[num] = max(0, min(SEMVMX, ss.vals[num] + d))
                ss.pids[num] = p.pid
                if ss not in touched:
                    touched.append(ss)
            for ss in touched:
                ss.ctime = k.wall()
                update_queue(k, ss)
        self.collect(k)


def _ipc(k: Personality) -> SysvIpc:
    return k.facility(SysvIpc)


async def sys_shmget(k: Personality, p: Proc, c: Call) -> int:
    key, size, flags = _i(c.a[0]), c.a[1], _i(c.a[2])
    ipc = _ipc(k)
    ipc.collect(k)

    def make() -> ShmSeg | int:
        if size < SHMMIN or size > SHMMAX:
            return -EINVAL
        seg = ShmSeg(key, flags & 0o777, size)
        seg.ctime, seg.cpid = k.wall(), p.pid
        return seg

    seg = _get_or_make(ipc.shm, key, flags, make)
    if isinstance(seg, int):
        return seg
    if size > seg.segsz:
        return -EINVAL
    return int(seg.id)


async def sys_shmat(k: Personality, p: Proc, c: Call) -> int:
    ident, addr, flags = _i(c.a[0]), c.a[1], _i(c.a[2])
    ipc = _ipc(k)
    seg = ipc.shm.get(ident)
    if seg is None:
        return -EINVAL
    size = seg.size()
    if addr:
        if addr & (PAGE - 1):
            if not flags & SHM_RND:
                return -EINVAL
            addr &= ~(PAGE - 1)
        if addr + size > USER_END:
            return -EINVAL
        if overlaps(p, addr, addr + size):
            if not flags & SHM_REMAP:
                return -EINVAL
            carve(p, addr, addr + size)
            await k.unmap_range(p, addr, addr + size)
    else:
        if flags & SHM_REMAP:
            return -EINVAL
        at = free_area(p, size)
        if at is None:
            return -ENOMEM
        addr = at
    rights = MemRights.R | (0 if flags & SHM_RDONLY else MemRights.W) | (MemRights.X if flags & SHM_EXEC else 0)
    p.vmas.append(Vma(addr, addr + size, rights, f"/SYSV{seg.key & 0xFFFF_FFFF:08x} (deleted)", seg, 0, True))
    merge(p)
    seg.atime, seg.lpid = k.wall(), p.pid
    return addr


async def sys_shmdt(k: Personality, p: Proc, c: Call) -> int:
    """Detach the segment attached at ``addr`` (every piece of that attachment)."""
    addr = c.a[0]
    if addr & (PAGE - 1):
        return -EINVAL
    first = next((v for v in p.vmas if v.start == addr and isinstance(v.file, ShmSeg)), None)
    if first is None:
        return -EINVAL
    seg = first.file
    base = addr - first.off
    end = base + seg.size()
    for v in [v for v in p.vmas if v.file is seg and base <= v.start < end and v.start - v.off == base]:
        carve(p, v.start, v.end)
        await k.unmap_range(p, v.start, v.end)
    seg.dtime, seg.lpid = k.wall(), p.pid
    _ipc(k).collect(k)
    return 0


def _shmid_ds(k: Personality, seg: ShmSeg) -> bytes:
    return seg.perm() + struct.pack("<QqqqiiQQQ", seg.segsz, seg.atime, seg.dtime, seg.ctime, seg.cpid,
                                    seg.lpid, _nattch(k, seg), 0, 0)


async def sys_shmctl(k: Personality, p: Proc, c: Call) -> int:
    ident, cmd, buf = _i(c.a[0]), _i(c.a[1]) & ~IPC_64, c.a[2]
    ipc = _ipc(k)
    ipc.collect(k)
    if cmd == IPC_INFO:
        info = struct.pack("<QQQQQ4Q", SHMMAX, SHMMIN, SHMMNI, SHMMNI, SHMALL, 0, 0, 0, 0)
        return ipc.shm.highest() if await k.write(p, buf, info) else -EFAULT
    if cmd == SHM_INFO:
        segs = list(ipc.shm.objs.values())
        info = struct.pack("<i4xQQQQQ", len(segs), sum(s.size() // PAGE for s in segs),
                           sum(len(s.frames) for s in segs), 0, 0, 0)
        return ipc.shm.highest() if await k.write(p, buf, info) else -EFAULT
    if cmd in (SHM_STAT, SHM_STAT_ANY):
        seg = ipc.shm.objs.get(ident)
        if seg is None:
            return -EINVAL
        return int(seg.id) if await k.write(p, buf, _shmid_ds(k, seg)) else -EFAULT
    seg = ipc.shm.get(ident)
    if seg is None:
        return -EINVAL
    if cmd == IPC_STAT:
        return 0 if await k.write(p, buf, _shmid_ds(k, seg)) else -EFAULT
    if cmd == IPC_SET:
        raw = await k.read(p, buf, PERM.size)
        if raw is None:
            return -EFAULT
        _, uid, gid, _, _, mode, *_ = PERM.unpack(raw)
        seg.uid, seg.gid = uid, gid
        seg.mode = (seg.mode & ~0o777) | (mode & 0o777)
        seg.ctime = k.wall()
        return 0
    if cmd == IPC_RMID:
        seg.mode |= SHM_DEST
        seg.key = IPC_PRIVATE
        ipc.collect(k)
        return 0
    if cmd in (SHM_LOCK, SHM_UNLOCK):
        seg.mode = seg.mode | SHM_LOCKED if cmd == SHM_LOCK else seg.mode & ~SHM_LOCKED
        return 0
    return -EINVAL


# --------------------------------------------------------------------------- semaphores
@dataclass(eq=False)
class SemSet(IpcObj):
    """A semaphore set: values, the pid of each one's last operation, the operations waiting."""

    vals: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    otime: int = 0
    pending: list[SemWait] = field(default_factory=list)
    removed: bool = False


@dataclass(eq=False)
class SemWait(Wait):
    """A semop waiting: its operations, whose process, when it gives up; its result once
    another's change let it finish (None: still waiting)."""

    sset: SemSet
    sops: list[tuple[int, int, int]]
    tid: int
    pid: int
    deadline: int | None
    result: int | None = None

    def forget(self, k: Personality, c: Call) -> None:
        if self in self.sset.pending:
            self.sset.pending.remove(self)
        c.state = None


def _try_semop(k: Personality, ss: SemSet, sops: list[tuple[int, int, int]], pid: int) -> int | None:
    """Apply ``sops`` all or none: 0 when done, a negative errno, or None when it must wait
    (the first operation that cannot go on has no IPC_NOWAIT)."""
    vals = list(ss.vals)
    for num, op, flg in sops:
        v = vals[num]
        if op == 0:
            if v:
                return -EAGAIN if flg & IPC_NOWAIT else None
        elif v + op < 0:
            return -EAGAIN if flg & IPC_NOWAIT else None
        elif v + op > SEMVMX:
            return -ERANGE
        vals[num] = v + op
    ipc = _ipc(k)
    for num, op, flg in sops:
        if flg & SEM_UNDO and op:
            adj = ipc.undo.setdefault(pid, {})
            d = adj.get((ss, num), 0) - op
            if not -SEMAEM <= d <= SEMAEM:
                return -ERANGE
    for num, op, flg in sops:
        if flg & SEM_UNDO and op:
            adj = ipc.undo[pid]
            adj[(ss, num)] = adj.get((ss, num), 0) - op
        ss.pids[num] = pid
    ss.vals[:] = vals
    ss.otime = k.wall()
    return 0


def update_queue(k: Personality, ss: SemSet) -> None:
    """Run the waiting operations of ``ss`` again, oldest first, until none can go on
    (Linux's update_queue); those that finish wake."""
    progress = True
    while progress:
        progress = False
        for w in list(ss.pending):
            r = _try_semop(k, ss, w.sops, w.pid)
            if r is None:
                continue
            ss.pending.remove(w)
            w.result = r
            k.wake({w.tid})
            if r == 0 and any(op for _, op, _ in w.sops):
                progress = True
                break


def _blocking(ss: SemSet, w: SemWait) -> tuple[int, int] | None:
    """The operation that keeps ``w`` waiting: (semaphore, 0 for a wait for zero, -1 for a
    decrement), as GETNCNT and GETZCNT count them."""
    vals = list(ss.vals)
    for num, op, _ in w.sops:
        if op == 0 and vals[num]:
            return num, 0
        if op < 0 and vals[num] + op < 0:
            return num, -1
        vals[num] += op
    return None


async def sys_semget(k: Personality, p: Proc, c: Call) -> int:
    key, nsems, flags = _i(c.a[0]), _i(c.a[1]), _i(c.a[2])
    ipc = _ipc(k)
    if nsems < 0 or nsems > SEMMSL:
        return -EINVAL

    def make() -> SemSet | int:
        if nsems == 0:
            return -EINVAL
        ss = SemSet(key, flags & 0o777, vals=[0] * nsems, pids=[0] * nsems)
        ss.ctime = k.wall()
        return ss

    ss = _get_or_make(ipc.sem, key, flags, make)
    if isinstance(ss, int):
        return ss
    if nsems > len(ss.vals):
        return -EINVAL
    return int(ss.id)


async def sys_semtimedop(k: Personality, p: Proc, c: Call) -> int:
    """semop, semtimedop (a relative timeout: EAGAIN when it passes)."""
    if isinstance(c.state, SemWait):
        return await _sem_wait(k, p, c)
    ident, sops_addr, nsops = _i(c.a[0]), c.a[1], c.a[2]
    timeout = c.a[3] if c.nr == 220 else 0
    if nsops < 1:
        return -EINVAL
    if nsops > SEMOPM:
        return -E2BIG
    raw = await k.read(p, sops_addr, 6 * nsops)
    if raw is None:
        return -EFAULT
    deadline = None
    if timeout:
        t = await read_timespec(k, p, timeout)
        if t < 0:
            return t
        deadline = k.now_ns + t
    ss = _ipc(k).sem.get(ident)
    if ss is None:
        return -EINVAL
    sops = [struct.unpack_from("<Hhh", raw, 6 * i) for i in range(nsops)]
    if any(num >= len(ss.vals) for num, _, _ in sops):
        return -EFBIG
    r = _try_semop(k, ss, sops, p.pid)
    if r is not None:
        if r == 0:
            update_queue(k, ss)
        return r
    w = SemWait(ss, sops, p.cur.tid, p.pid, deadline)
    ss.pending.append(w)
    c.state = w
    return await _sem_wait(k, p, c)


async def _sem_wait(k: Personality, p: Proc, c: Call) -> int:
    w: SemWait = c.state
    tid = p.cur.tid
    if w.result is not None or w.sset.removed:
        k.sleepers.pop(tid, None)
        c.state = None
        return -EIDRM if w.result is None else w.result
    if w.deadline is not None and k.now_ns >= w.deadline:
        k.sleepers.pop(tid, None)
        w.forget(k, c)
        return -EAGAIN
    if w.deadline is not None:
        k.sleepers[tid] = w.deadline
    p.sig_waiters.add(tid)
    return await interrupt(k, p, c, RESTART_NOHAND)


def _semid_ds(ss: SemSet) -> bytes:
    return ss.perm() + struct.pack("<qQqQQQQ", ss.otime, 0, ss.ctime, 0, len(ss.vals), 0, 0)


def _seminfo(ipc: SysvIpc, full: bool) -> bytes:
    sets = list(ipc.sem.objs.values())
    used = len(sets) if full else SEMMNI
    total = sum(len(s.vals) for s in sets) if full else SEMMNS
    return struct.pack("<10i", SEMMNI, SEMMNI, SEMMNS, used, SEMMSL, SEMOPM, SEMOPM, 0 if not full else used,
                       SEMVMX, total if full else SEMAEM)


async def sys_semctl(k: Personality, p: Proc, c: Call) -> int:
    ident, num, cmd, arg = _i(c.a[0]), _i(c.a[1]), _i(c.a[2]) & ~IPC_64, c.a[3]
    ipc = _ipc(k)
    if cmd in (IPC_INFO, SEM_INFO):
        data = _seminfo(ipc, cmd == SEM_INFO)
        return ipc.sem.highest() if await k.write(p, arg, data) else -EFAULT
    if cmd in (SEM_STAT, SEM_STAT_ANY):
        ss = ipc.sem.objs.get(ident)
        if ss is None:
            return -EINVAL
        return int(ss.id) if await k.write(p, arg, _semid_ds(ss)) else -EFAULT
    ss = ipc.sem.get(ident)
    if ss is None:
        return -EINVAL
    assert isinstance(ss, SemSet)
    n = len(ss.vals)
    if cmd in (GETVAL, GETPID, GETNCNT, GETZCNT, SETVAL) and not 0 <= num < n:
        return -EINVAL
    if cmd == GETVAL:
        return ss.vals[num]
    if cmd == GETPID:
        return ss.pids[num]
    if cmd in (GETNCNT, GETZCNT):
        kind = -1 if cmd == GETNCNT else 0
        return sum(1 for w in ss.pending if _blocking(ss, w) == (num, kind))
    if cmd == GETALL:
        return 0 if await k.write(p, arg, struct.pack(f"<{n}H", *ss.vals)) else -EFAULT
    if cmd in (SETVAL, SETALL):
        if cmd == SETVAL:
            v = _i(arg)
            if not 0 <= v <= SEMVMX:
                return -ERANGE
            changes = {num: v}
        else:
            raw = await k.read(p, arg, 2 * n)
            if raw is None:
                return -EFAULT
            vals = struct.unpack(f"<{n}H", raw)
            if any(v > SEMVMX for v in vals):
                return -ERANGE
            changes = dict(enumerate(vals))
        for i, v in changes.items():
            ss.vals[i] = v
            ss.pids[i] = p.pid
            for adj in ipc.undo.values():  # a value set: every process's adjustment of it goes
                adj.pop((ss, i), None)
        ss.ctime = k.wall()
        update_queue(k, ss)
        return 0
    if cmd == IPC_STAT:
        return 0 if await k.write(p, arg, _semid_ds(ss)) else -EFAULT
    if cmd == IPC_SET:
        raw = await k.read(p, arg, PERM.size)
        if raw is None:
            return -EFAULT
        _, uid, gid, _, _, mode, *_ = PERM.unpack(raw)
        ss.uid, ss.gid, ss.mode = uid, gid, (ss.mode & ~0o777) | (mode & 0o777)
        ss.ctime = k.wall()
        return 0
    if cmd == IPC_RMID:
        ipc.sem.remove(ss)
        ss.removed = True
        for w in ss.pending:
            k.wake({w.tid})
        ss.pending.clear()
        for adj in ipc.undo.values():
            for key in [key for key in adj if key[0] is ss]:
                del adj[key]
        return 0
    return -EINVAL


# --------------------------------------------------------------------------- message queues
@dataclass(eq=False)
class MsgQueue(IpcObj):
    """A message queue: (type, text) messages, and who waits on it."""

    msgs: list[tuple[int, bytes]] = field(default_factory=list)
    qbytes: int = MSGMNB
    stime: int = 0
    rtime: int = 0
    lspid: int = 0
    lrpid: int = 0
    receivers: list[MsgRecv] = field(default_factory=list)
    senders: set[int] = field(default_factory=set)
    removed: bool = False

    def cbytes(self) -> int:
        return sum(len(t) for _, t in self.msgs)


def _matches(mtype: int, want: int, flags: int) -> bool:
    if want == 0:
        return True
    if want > 0:
        return (mtype != want) if flags & MSG_EXCEPT else mtype == want
    return mtype <= -want


def _pick(q: MsgQueue, want: int, flags: int) -> int | None:
    """The index of the message a receive takes (the first of the lowest type for want < 0)."""
    if want < 0:
        best = None
        for i, (t, _) in enumerate(q.msgs):
            if t <= -want and (best is None or t < q.msgs[best][0]):
                best = i
        return best
    return next((i for i, (t, _) in enumerate(q.msgs) if _matches(t, want, flags)), None)


@dataclass(eq=False)
class MsgRecv(Wait):
    """A msgrcv waiting; a send that matches hands its message over (``got``), or an error."""

    q: MsgQueue
    tid: int
    pid: int
    want: int
    flags: int
    size: int
    got: tuple[int, bytes] | int | None = None

    def forget(self, k: Personality, c: Call) -> None:
        if self in self.q.receivers:
            self.q.receivers.remove(self)
        c.state = None


async def sys_msgget(k: Personality, p: Proc, c: Call) -> int:
    key, flags = _i(c.a[0]), _i(c.a[1])

    def make() -> MsgQueue:
        q = MsgQueue(key, flags & 0o777)
        q.ctime = k.wall()
        return q

    q = _get_or_make(_ipc(k).msg, key, flags, make)
    return q if isinstance(q, int) else int(q.id)


async def sys_msgsnd(k: Personality, p: Proc, c: Call) -> int:
    ident, msgp, size, flags = _i(c.a[0]), c.a[1], c.a[2], _i(c.a[3])
    if size > MSGMAX or _i(c.a[2]) < 0:
        return -EINVAL
    raw = await k.read(p, msgp, 8 + size)
    if raw is None:
        return -EFAULT
    mtype = struct.unpack_from("<q", raw)[0]
    if mtype < 1:
        return -EINVAL
    q = _ipc(k).msg.get(ident)
    if q is None:
        return -EIDRM if c.state is not None else -EINVAL
    text = raw[8:]
    if size + q.cbytes() > q.qbytes or 1 + len(q.msgs) > q.qbytes:
        if flags & IPC_NOWAIT:
            return -EAGAIN
        c.state = True
        q.senders.add(p.cur.tid)
        p.sig_waiters.add(p.cur.tid)
        return await interrupt(k, p, c, RESTART_NOHAND)
    c.state = None
    q.lspid, q.stime = p.pid, k.wall()
    for r in list(q.receivers):  # a waiting receiver that wants it takes it at once
        if _matches(mtype, r.want, r.flags):
            q.receivers.remove(r)
            k.wake({r.tid})
            if len(text) > r.size and not r.flags & MSG_NOERROR:
                r.got = -E2BIG
                continue
            r.got = (mtype, text)
            q.lrpid, q.rtime = r.pid, k.wall()
            return 0
    q.msgs.append((mtype, text))
    return 0


async def sys_msgrcv(k: Personality, p: Proc, c: Call) -> int:
    ident, msgp, size, want, flags = _i(c.a[0]), c.a[1], _i(c.a[2]), c.a[3], _i(c.a[4])
    want = want - (1 << 64) if want >> 63 else want
    if isinstance(c.state, MsgRecv):
        w: MsgRecv = c.state
        if w.got is None and not w.q.removed:
            p.sig_waiters.add(w.tid)
            return await interrupt(k, p, c, RESTART_NOHAND)
        c.state = None
        if w.got is None:
            return -EIDRM
        if isinstance(w.got, int):
            return w.got
        return await _deliver(k, p, msgp, size, w.got, flags)
    if size < 0:
        return -EINVAL
    q = _ipc(k).msg.get(ident)
    if q is None:
        return -EINVAL
    if flags & MSG_COPY:
        if not flags & IPC_NOWAIT or flags & MSG_EXCEPT:
            return -EINVAL
        if not 0 <= want < len(q.msgs):
            return -ENOMSG
        return await _deliver(k, p, msgp, size, q.msgs[want], flags)
    i = _pick(q, want, flags)
    if i is None:
        if flags & IPC_NOWAIT:
            return -ENOMSG
        w = MsgRecv(q, p.cur.tid, p.pid, want, flags, size)
        q.receivers.append(w)
        c.state = w
        p.sig_waiters.add(w.tid)
        return await interrupt(k, p, c, RESTART_NOHAND)
    mtype, text = q.msgs[i]
    if len(text) > size and not flags & MSG_NOERROR:
        return -E2BIG
    del q.msgs[i]
    q.lrpid, q.rtime = p.pid, k.wall()
    k.wake(q.senders)  # room for a waiting sender
    return await _deliver(k, p, msgp, size, (mtype, text), flags)


async def _deliver(k: Personality, p: Proc, msgp: int, size: int, msg: tuple[int, bytes], flags: int) -> int:
    mtype, text = msg
    text = text[:size]
    if not await k.write(p, msgp, struct.pack("<q", mtype) + text):
        return -EFAULT
    return len(text)


def _msqid_ds(q: MsgQueue) -> bytes:
    return q.perm() + struct.pack("<qqqQQQiiQQ", q.stime, q.rtime, q.ctime, q.cbytes(), len(q.msgs), q.qbytes,
                                  q.lspid, q.lrpid, 0, 0)


async def sys_msgctl(k: Personality, p: Proc, c: Call) -> int:
    ident, cmd, buf = _i(c.a[0]), _i(c.a[1]) & ~IPC_64, c.a[2]
    ipc = _ipc(k)
    if cmd in (IPC_INFO, MSG_INFO):
        qs = list(ipc.msg.objs.values())
        if cmd == MSG_INFO:  # msgpool: queues in use, msgmap: messages, msgtql: bytes
            pool, mmap, tql = len(qs), sum(len(q.msgs) for q in qs), sum(q.cbytes() for q in qs)
        else:  # Linux's MSGPOOL, MSGMAP, MSGTQL
            pool, mmap, tql = MSGMNI * MSGMNB // 1024, MSGMNB, MSGMNB
        info = struct.pack("<7iH2x", pool, mmap, MSGMAX, MSGMNB, MSGMNI, 16, tql, 0xFFFF)
        return ipc.msg.highest() if await k.write(p, buf, info) else -EFAULT
    if cmd in (MSG_STAT, MSG_STAT_ANY):
        q = ipc.msg.objs.get(ident)
        if q is None:
            return -EINVAL
        return int(q.id) if await k.write(p, buf, _msqid_ds(q)) else -EFAULT
    q = ipc.msg.get(ident)
    if q is None:
        return -EINVAL
    if cmd == IPC_STAT:
        return 0 if await k.write(p, buf, _msqid_ds(q)) else -EFAULT
    if cmd == IPC_SET:
        raw = await k.read(p, buf, 120)
        if raw is None:
            return -EFAULT
        _, uid, gid, _, _, mode, *_ = PERM.unpack_from(raw)
        (qbytes,) = struct.unpack_from("<Q", raw, 48 + 40)
        q.uid, q.gid, q.mode = uid, gid, (q.mode & ~0o777) | (mode & 0o777)
        q.qbytes = qbytes
        q.ctime = k.wall()
        k.wake(q.senders)
        return 0
    if cmd == IPC_RMID:
        ipc.msg.remove(q)
        q.removed = True
        for r in q.receivers:
            k.wake({r.tid})
        q.receivers.clear()
        k.wake(q.senders)
        return 0
    return -EINVAL


# --------------------------------------------------------------------------- process_vm_readv/writev
ESRCH = 3
IOV_MAX = 1024


async def _iovs(k: Personality, p: Proc, addr: int, cnt: int) -> list[tuple[int, int]] | int:
    if cnt > IOV_MAX:
        return -EINVAL
    raw = await k.read(p, addr, 16 * cnt) if cnt else b""
    if raw is None:
        return -EFAULT
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]


async def sys_process_vm(k: Personality, p: Proc, c: Call) -> int:
    """process_vm_readv and process_vm_writev: copy between the caller's iovecs and another
    process's (the personality reads and writes both through its own mappings); the bytes
    copied until the first remote address that fails (EFAULT when none)."""
    pid, local, lcnt, remote, rcnt, flags = _i(c.a[0]), c.a[1], c.a[2], c.a[3], c.a[4], c.a[5]
    if flags:
        return -EINVAL
    lv = await _iovs(k, p, local, lcnt)
    if isinstance(lv, int):
        return lv
    rv = await _iovs(k, p, remote, rcnt)
    if isinstance(rv, int):
        return rv
    q = k.procs.get(pid)
    if q is None or pid <= 0:
        return -ESRCH
    writing = c.nr == 311
    src, dst = (p, q) if writing else (q, p)
    sv, dv = (lv, rv) if writing else (rv, lv)
    # the bytes of the source iovecs, as far as they can be read
    data = bytearray()
    for base, n in sv:
        chunk = await k.read(src, base, n) if n else b""
        if chunk is None:
            break
        data += chunk
    done = 0
    for base, n in dv:
        part = bytes(data[done:done + n])
        if not part:
            break
        if not await k.write(dst, base, part):
            break
        done += len(part)
    if done == 0 and data == b"" and any(n for _, n in sv):
        return -EFAULT
    if done == 0 and any(n for _, n in dv) and data:
        return -EFAULT
    return done


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    310: ("process_vm_readv", sys_process_vm, "dpupux"),
    311: ("process_vm_writev", sys_process_vm, "dpupux"),
    29: ("shmget", sys_shmget, "dux"),
    30: ("shmat", sys_shmat, "dpx"),
    31: ("shmctl", sys_shmctl, "ddp"),
    64: ("semget", sys_semget, "ddx"),
    65: ("semop", sys_semtimedop, "dpu"),
    66: ("semctl", sys_semctl, "dddx"),
    67: ("shmdt", sys_shmdt, "p"),
    68: ("msgget", sys_msgget, "dx"),
    69: ("msgsnd", sys_msgsnd, "dpux"),
    70: ("msgrcv", sys_msgrcv, "dpudx"),
    71: ("msgctl", sys_msgctl, "ddp"),
    220: ("semtimedop", sys_semtimedop, "dpup"),
}
