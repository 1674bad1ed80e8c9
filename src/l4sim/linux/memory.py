"""Memory system calls of the Linux personality: brk, mmap, munmap, mprotect, mremap, madvise,
msync.

A process's address space is a list of VMAs (:class:`~l4sim.linux.state.Vma`) and a
page table ``vpn -> pool page``; pages come on demand through page faults (the personality
is the pager: :func:`page_fault`).  These calls only change the VMA list
and take pages away (``task.unmap`` in the process, the frame freed when nobody shares it):

- ``mmap``: anonymous memory, private file mappings (a page is filled from the file when it
  is first touched; what the process writes stays its own, as copy-on-write makes it on
  Linux), ``MAP_SHARED|MAP_ANONYMOUS`` (and ``/dev/zero``) shared with forked children.
  ``MAP_SHARED`` of a regular file maps the file's own pages: one frame per file page,
  shared by every such mapping (:meth:`Personality.file_page`).  Files live in the
  personality's memory, so the two are kept in step: before a call that reads or writes
  file data (``FILE_DATA`` in :mod:`l4sim.linux.syscalls`) what the mappings wrote is copied
  into the file, and after it what the call changed is copied into the frames -- the
  coherence Linux gets from having one page cache.
- Placement as on Linux: ``MAP_FIXED`` where asked, otherwise the hint when the range is
  free, otherwise the highest free gap below ``MMAP_TOP``.
- ``mremap`` grows in place when the pages after the area are free, moves the pages (not
  their contents: the same frames, at new addresses) with ``MREMAP_MAYMOVE`` or to
  ``MREMAP_FIXED``'s address; ``madvise(MADV_DONTNEED)`` drops private pages (they come
  back zeroed, or from the file); other advice is accepted.

VMA lists are changed in place (``p.vmas[:] = ...``), never replaced, so processes that
share one address space keep sharing it.
"""

from __future__ import annotations

from l4sim.kernel.abi import Fpage, MapItem, MemRights
from l4sim.linux.signals import at_fault, oom_kill, signal_death
from l4sim.linux.state import (
    FORK_RIP,
    MMAP_TOP,
    RLIM_INFINITY,
    SIGBUS,
    SIGSEGV,
    STACK_TOP,
    WAITING,
    Call,
    LinuxThread,
    MemObject,
    Personality,
    Proc,
    Vma,
    get,
    pages_in,
)
from l4sim.linux.vfs import Device, File, ProcFile

PAGE = 4096
EPERM = 1
EBADF, EAGAIN, ENOMEM, EACCES, EFAULT, EEXIST, ENODEV, EINVAL, EOVERFLOW = 9, 11, 12, 13, 14, 17, 19, 22, 75
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 1, 2, 3, 0xF
MAP_FIXED, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x10, 0x20, 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4
MADV_DONTNEED = 4
#: advice values Linux knows (madvise(2)); all but MADV_DONTNEED change nothing here
MADV_KNOWN = frozenset({0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 25,
                        100, 101})
#: the heap may grow to this size; mmap keeps out of its way
BRK_MAX = 1 << 30
#: the lowest address a mapping may have (Linux's vm.mmap_min_addr)
MMAP_MIN = 0x10000
#: the end of user space (Linux's TASK_SIZE); the page there is FORK_RIP, never mapped
USER_END = STACK_TOP
#: the most VMAs a process may have (Linux's vm.max_map_count): more is ENOMEM
MAX_MAP_COUNT = 65530
RLIMIT_DATA, RLIMIT_AS = 2, 9


def _up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


def prot_rights(prot: int) -> int:
    """MemRights of a PROT_* mask (x86: anything mapped is readable)."""
    return (MemRights.R if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) else 0) \
        | (MemRights.W if prot & PROT_WRITE else 0) | (MemRights.X if prot & PROT_EXEC else 0)


def carve(p: Proc, start: int, end: int) -> list[Vma]:
    """Remove [start, end) from p's VMAs (splitting them); returns the removed pieces."""
    keep: list[Vma] = []
    cut: list[Vma] = []
    for v in p.vmas:
        if v.end <= start or v.start >= end:
            keep.append(v)
            continue
        if v.start < start:
            keep.append(v.piece(v.start, start))
        if v.end > end:
            keep.append(v.piece(end, v.end))
        cut.append(v.piece(max(v.start, start), min(v.end, end)))
    p.vmas[:] = keep
    return cut


def merge(p: Proc) -> None:
    """Sort p's VMAs and join neighbours that differ only in their bounds (as Linux does)."""
    out: list[Vma] = []
    for v in sorted(p.vmas, key=lambda v: (v.start, v.end)):
        if out and (u := out[-1]).end == v.start and u.start < u.end and v.start < v.end \
                and (u.rights, u.name, u.shared, u.file) == (v.rights, v.name, v.shared, v.file) \
                and (u.file is None or u.off + (u.end - u.start) == v.off):
            u.end = v.end
            continue
        out.append(v)
    p.vmas[:] = out


def _splits(p: Proc, start: int, end: int) -> int:
    """How many more areas cutting [start, end) out of p's VMAs can leave (an edge inside an
    area splits it)."""
    return sum(1 for v in p.vmas for edge in (start, end) if v.start < edge < v.end)


def overlaps(p: Proc, start: int, end: int) -> bool:
    return any(v.start < end and v.end > start for v in p.vmas)


def covered(p: Proc, start: int, end: int) -> bool:
    """True when every page of [start, end) is in some VMA."""
    at = start
    for v in sorted(p.vmas, key=lambda v: v.start):
        if v.end <= at or v.start >= end:
            continue
        if v.start > at:
            return False
        at = v.end
        if at >= end:
            return True
    return at >= end


def _highest_gap(p: Proc, size: int, lo: int, hi: int) -> int | None:
    """The start of the highest free range of ``size`` bytes within [lo, hi)."""
    for v in sorted(p.vmas, key=lambda v: (v.start, v.end), reverse=True):
        if v.start >= hi or v.start == v.end:  # above, or empty (a heap of size 0)
            continue
        if v.end <= hi - size:
            break
        hi = v.start
    at = hi - size
    return at if at >= lo else None


def free_area(p: Proc, size: int) -> int | None:
    """Where a mapping of ``size`` bytes goes: the highest free range below MMAP_TOP and above
    the heap's room; when there is none, the highest free range anywhere in user space (the
    heap's room and above MMAP_TOP too, as Linux falls back to searching all of it)."""
    at = _highest_gap(p, size, p.brk_start + BRK_MAX, MMAP_TOP)
    return at if at is not None else _highest_gap(p, size, MMAP_MIN, USER_END)


def may_expand(p: Proc, start: int, end: int, rights: int, shared: bool, name: str = "") -> bool:
    """Linux's may_expand_vm: may [start, end) become mapped with ``rights`` -- the growth (not
    counting what is mapped there already) within RLIMIT_AS for all of the address space and
    RLIMIT_DATA for private writable memory (not the stack)?"""
    as_lim, data_lim = p.rlimits[RLIMIT_AS][0], p.rlimits[RLIMIT_DATA][0]
    if as_lim == RLIM_INFINITY and data_lim == RLIM_INFINITY:
        return True
    data = bool(rights & _W) and not shared and name != "stack"
    total = used = grow = data_grow = 0
    for v in p.vmas:
        size = v.end - v.start
        total += size
        is_data = bool(v.rights & _W) and not v.shared and v.name != "stack"
        if is_data:
            used += size
        over = max(0, min(v.end, end) - max(v.start, start))
        grow -= over  # replaced: MAP_FIXED over a mapping does not grow by that much
        if is_data:
            data_grow -= over
    grow += end - start
    if data:
        data_grow += end - start
    return total + grow <= as_lim and (not data or used + data_grow <= data_lim)


async def revoke(k: Personality, p: Proc, start: int, end: int) -> None:
    """Unmap p's pages in [start, end) but keep their frames (they refault with new rights)."""
    for vpn in pages_in(p, start, end):
        await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.RWX), include_self=True)


#: the rights bits as plain ints (a Flag operation costs a microsecond on the fault path)
_W, _X = int(MemRights.W), int(MemRights.X)


# --------------------------------------------------------------------------- the pager
async def page_fault(k: Personality, t: LinuxThread, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """The answer to a page fault of ``t`` (words: the fault address with its access bits):
    a map item of the page's frame, made on first touch or copied on write; a refusal that
    becomes a CPU exception (a new thread's first fault, or a SIGSEGV with a handler); or
    None when the process ended of it (WAITING when it is stopped)."""
    p = t.proc
    # a fatal or stop signal acts as it runs
    if (p.pending or t.pending or p.stopped or p.cont_notify) and await at_fault(k, t, w):
        return WAITING if t.stop_fault is not None else None
    addr = w[0] & ~0xFFF
    present = w[0] & 1
    write = w[0] & 2
    fetch = w[0] & 4
    if t.start_regs is not None and addr == FORK_RIP:
        return (-1, (), ())  # refused: becomes an exception, answered with the registers
    v = p.vma(addr)
    if v is None or (write and not v.rights & _W) or (present and not write) \
            or (fetch and not v.rights & _X):
        if SIGSEGV in p.sighand and not (t.sigmask >> (SIGSEGV - 1)) & 1:
            # refused: the kernel turns it into exception IPC with the registers, and
            # cpu_fault enters the handler (code 8 | write, fetch | 1 when a VMA is there:
            # Linux's SEGV_ACCERR, else SEGV_MAPERR)
            return (-(8 | (w[0] & 6) | (v is not None)), (), ())
        await signal_death(k, p, SIGSEGV, w[0] & ~7)
        return None
    vpn = addr >> 12
    a = p.pages.get(vpn)
    rights = v.rights
    try:
        if a is None:
            a = await k.fresh_page(p, v, addr)
            if a is None:  # a file mapping's page beyond the file's end
                await signal_death(k, p, SIGBUS, w[0] & ~7)
                return None
        elif k.refs.get(a, 1) > 1 and not v.shared:
            if write:
                a = await k.cow_copy(p, vpn)
            else:
                rights &= ~_W
    except MemoryError:  # out of frames: Linux's OOM killer
        victim = await oom_kill(k)
        if victim is not p and p.status is None:
            return (0, (), ())  # taken again, with the victim's frames free
        return None
    if v.shared and isinstance(v.file, MemObject):  # device memory may watch writes (linux/fb.py)
        rights = await v.file.fault(k, (v.off + addr - v.start) >> 12, bool(write), rights)
    elif not write and p.text is not None:  # a program page: the cached ones around it too
        item = k.around(p, vpn, v)
        if item is not None:
            if p.forked:
                await k.note_child_fault(p, vpn)
            return (0, (), (item,))
    return (0, (), (MapItem(Fpage.mem(a, 12, rights), snd_base=addr),))


# --------------------------------------------------------------------------- brk
async def sys_brk(k: Personality, p: Proc, c: Call) -> int:
    new = c.a[0]
    if new < p.brk_start or new > p.brk_start + BRK_MAX:
        return p.brk
    old_top, new_top = _up(p.brk), _up(new)
    if new_top < old_top:
        carve(p, new_top, old_top)
        await k.unmap_range(p, new_top, old_top)
    elif new_top > old_top:
        if overlaps(p, old_top, new_top):
            return p.brk  # would run into a mapping
        data_lim = p.rlimits[RLIMIT_DATA][0]
        if data_lim != RLIM_INFINITY and new - p.brk_start + _data_segments(p) > data_lim:
            return p.brk  # Linux's check_data_rlimit: the heap and the data segments
        if not may_expand(p, old_top, new_top, MemRights.RW, False, "heap"):
            return p.brk
        heap = next((v for v in p.vmas if v.name == "heap" and v.end == old_top), None)
        if heap is not None:
            heap.end = new_top
        else:
            p.vmas.append(Vma(old_top, new_top, MemRights.RW, "heap"))
    p.brk = new
    return new


def _data_segments(p: Proc) -> int:
    """The size of the program's writable segments (Linux's end_data - start_data)."""
    return sum(v.end - v.start for v in p.vmas if v.name == "elf" and v.rights & _W)


# --------------------------------------------------------------------------- mmap
async def sys_mmap(k: Personality, p: Proc, c: Call) -> int:
    addr, length, prot, flags, off = c.a[0], c.a[1], c.a[2], c.a[3], c.a[5]
    fd = c.a[4] & 0xFFFF_FFFF
    kind = flags & MAP_TYPE
    if length == 0 or off & 0xFFF or kind not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        return -EINVAL
    size = _up(length)
    if size > USER_END:
        return -ENOMEM  # more than user space: Linux's len > TASK_SIZE
    if len(p.vmas) > MAX_MAP_COUNT:
        return -ENOMEM
    shared = kind != MAP_PRIVATE
    node: File | MemObject | None = None
    name = "mmap"
    if not flags & MAP_ANONYMOUS:
        f = get(p, fd - (1 << 32) if fd >> 31 else fd)
        if f is None:
            return -EBADF
        if isinstance(f.node, Device) and f.node.name == "zero":
            pass  # /dev/zero: anonymous memory
        elif isinstance(f.node, MemObject):  # a device's memory (/dev/fb0: linux/fb.py)
            if not f.readable or (shared and prot & PROT_WRITE and not f.writable):
                return -EACCES
            node, name = f.node, f.path
        elif not isinstance(f.node, File) or isinstance(f.node, ProcFile):
            return -ENODEV
        elif not f.readable or (shared and prot & PROT_WRITE and not f.writable):
            return -EACCES
        elif off + size >= 1 << 63:
            return -EOVERFLOW
        else:
            node, name = f.node, f.path
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if fixed:
        if addr & 0xFFF or addr + size > USER_END:
            return -EINVAL
        if addr < MMAP_MIN:
            return -EPERM
        if flags & MAP_FIXED_NOREPLACE and overlaps(p, addr, addr + size):
            return -EEXIST
        if not may_expand(p, addr, addr + size, prot_rights(prot), bool(shared)):
            return -ENOMEM
        carve(p, addr, addr + size)
        await k.unmap_range(p, addr, addr + size)
    else:
        hint = _up(addr)
        if hint >= MMAP_MIN and hint + size <= USER_END and not overlaps(p, hint, hint + size):
            addr = hint  # Linux takes a free hint
        else:
            at = free_area(p, size)
            if at is None:
                return -ENOMEM
            addr = at
        if not may_expand(p, addr, addr + size, prot_rights(prot), bool(shared)):
            return -ENOMEM
    p.vmas.append(Vma(addr, addr + size, prot_rights(prot), name, node, off if node is not None else 0,
                      bool(shared)))
    merge(p)
    return addr


async def sys_munmap(k: Personality, p: Proc, c: Call) -> int:
    addr, length = c.a[0], c.a[1]
    if addr & 0xFFF or length == 0 or addr + length > USER_END:
        return -EINVAL
    end = _up(addr + length)
    if len(p.vmas) + _splits(p, addr, end) > MAX_MAP_COUNT:
        return -ENOMEM
    carve(p, addr, end)
    await k.unmap_range(p, addr, end)
    return 0


async def sys_mprotect(k: Personality, p: Proc, c: Call) -> int:
    addr, length, prot = c.a[0], c.a[1], c.a[2]
    if addr & 0xFFF or prot & ~0x7 & ~0x03000000:  # PROT_GROWSDOWN/UP accepted
        return -EINVAL
    end = _up(addr + length)
    if end == addr:
        return 0
    if not covered(p, addr, end) or len(p.vmas) + _splits(p, addr, end) > MAX_MAP_COUNT:
        return -ENOMEM
    pieces = carve(p, addr, end)
    r = prot_rights(prot)
    p.vmas += [v.piece(v.start, v.end, r) for v in pieces]
    merge(p)
    await revoke(k, p, addr, end)
    return 0


# --------------------------------------------------------------------------- mremap
async def _move(k: Personality, p: Proc, old: int, old_size: int, new: int, new_size: int,
                keep_old: bool) -> None:
    """Move the area [old, old+old_size) to [new, new+new_size): the same frames, new addresses."""
    (piece,) = carve(p, old, old + old_size)
    n = min(old_size, new_size) >> 12
    moved = {}
    for vpn in pages_in(p, old, old + old_size):
        a = p.pages.pop(vpn)
        i = vpn - (old >> 12)
        await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.RWX), include_self=True)
        if i < n:
            moved[(new >> 12) + i] = a  # mapped at the new address by its next fault
        else:
            k.decref(a)
    p.pages.update(moved)
    p.vmas.append(Vma(new, new + new_size, piece.rights, piece.name, piece.file, piece.off, piece.shared))
    if keep_old:
        p.vmas.append(piece)  # MREMAP_DONTUNMAP: the old range stays, its pages come anew
    merge(p)


async def sys_mremap(k: Personality, p: Proc, c: Call) -> int:
    old, old_size, new_size, flags, new_addr = c.a[0], _up(c.a[1]), _up(c.a[2]), c.a[3], c.a[4]
    if old & 0xFFF or flags & ~7 or new_size == 0 or (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP)
                                                       and not flags & MREMAP_MAYMOVE):
        return -EINVAL
    if flags & MREMAP_DONTUNMAP and old_size != new_size:
        return -EINVAL
    if old_size == 0:
        return -EINVAL  # duplicating a shared mapping is not supported
    v = p.vma(old)
    if v is None or old + old_size > v.end:
        return -EFAULT
    if new_size > old_size and not may_expand(p, 0, new_size - old_size, v.rights, v.shared, v.name):
        return -ENOMEM  # (a range of the growth's size where nothing is mapped: only its size counts)
    if flags & MREMAP_FIXED:
        if new_addr & 0xFFF or new_addr < MMAP_MIN or new_addr + new_size > USER_END \
                or (new_addr < old + old_size and old < new_addr + new_size):
            return -EINVAL
        carve(p, new_addr, new_addr + new_size)
        await k.unmap_range(p, new_addr, new_addr + new_size)
        await _move(k, p, old, old_size, new_addr, new_size, bool(flags & MREMAP_DONTUNMAP))
        return new_addr
    if flags & MREMAP_DONTUNMAP:
        at = free_area(p, new_size)
        if at is None:
            return -ENOMEM
        await _move(k, p, old, old_size, at, new_size, True)
        return at
    if new_size <= old_size:
        carve(p, old + new_size, old + old_size)
        await k.unmap_range(p, old + new_size, old + old_size)
        return old
    end = old + new_size
    if old + old_size == v.end and end <= USER_END and not overlaps(p, v.end, end):
        (piece,) = carve(p, old, old + old_size)
        piece.end = end
        p.vmas.append(piece)
        merge(p)
        return old
    if not flags & MREMAP_MAYMOVE:
        return -ENOMEM
    at = free_area(p, new_size)
    if at is None:
        return -ENOMEM
    await _move(k, p, old, old_size, at, new_size, False)
    return at


# --------------------------------------------------------------------------- madvise
async def sys_madvise(k: Personality, p: Proc, c: Call) -> int:
    addr, length, advice = c.a[0], c.a[1], c.a[2] & 0xFFFF_FFFF
    if addr & 0xFFF or advice not in MADV_KNOWN or addr + length > USER_END:
        return -EINVAL
    end = _up(addr + length)
    if end == addr:
        return 0
    if advice == MADV_DONTNEED:
        for v in [v for v in p.vmas if v.start < end and v.end > addr]:
            lo, hi = max(v.start, addr), min(v.end, end)
            if v.shared:
                await revoke(k, p, lo, hi)  # the pages stay the shared ones
            else:
                await k.unmap_range(p, lo, hi)  # private: zero (or the file's) on the next touch
    return 0 if covered(p, addr, end) else -ENOMEM


# --------------------------------------------------------------------------- msync
MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4


async def sys_msync(k: Personality, p: Proc, c: Call) -> int:
    """The shared pages' bytes into their files now (they also are before any file access)."""
    addr, length, flags = c.a[0], c.a[1], c.a[2]
    if addr & 0xFFF or flags & ~7 or (flags & MS_ASYNC and flags & MS_SYNC) or addr + length > USER_END:
        return -EINVAL
    end = _up(addr + length)
    if end > addr and not covered(p, addr, end):
        return -ENOMEM
    for v in p.vmas:
        if v.file is not None and v.shared and v.start < end and v.end > addr:
            await k.pull_file(v.file)
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    9: ("mmap", sys_mmap, "puxxdx"),
    10: ("mprotect", sys_mprotect, "pux"),
    11: ("munmap", sys_munmap, "pu"),
    12: ("brk", sys_brk, "p"),
    25: ("mremap", sys_mremap, "puuxp"),
    26: ("msync", sys_msync, "pux"),
    28: ("madvise", sys_madvise, "pud"),
}
