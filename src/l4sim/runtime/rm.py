"""The region manager: every program's default pager (L4Re's ``Rm``).

It runs as a second thread inside the program's own task, as L4Re's
region mapper does, and is the pager of the program's threads.  It keeps the
program's virtual memory layout -- which dataspace (at which offset, with
which rights) backs which address range -- and resolves page faults from
it: on a fault it asks the dataspace's server to map the page (``MAP``) with
the faulting page as the receive window.  Because the region manager lives
in the faulting task, the server's reply maps the frame straight into it;
the fault is then answered with an empty message and the access retried.

An address that lies in no region (or a write to a read-only region) is a
segmentation fault: it is reported to the parent (``SIGNAL FAULT`` with
address and instruction pointer) and the faulting thread is left waiting;
the parent decides (normally it ends the program).

Every request is answered (docs/runtime.md § 5.9): ``ATTACH`` of something
that is no IPC gate (a thread capability: ``MAP`` would be IPC to a thread
that never answers it, the region manager's own thread or the program's
waiting one) or whose offset runs past 2**64 is ``-EINVAL``; a request that
raises all the same is ``-EIO`` with a line on the program's log.
"""

from __future__ import annotations

from dataclasses import dataclass

from l4sim.kernel.abi import CALL, WORD_MASK, Err, Fpage, IpcErr, MapItem, MemRights, Proto, Rights
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.memory import PAGE_MASK, PAGE_SIZE
from l4sim.runtime.protocols import DATASPACE, PARENT, RM, DsOp, ParentOp, RmFlag, RmOp, Sig
from l4sim.user.env import Env, L4Error
from l4sim.user.server import request_failed

#: where searched attachments start, and the top of the address space we hand out
SEARCH_BASE = 0x1000_0000
SEARCH_TOP = 0x7FFF_0000_0000
#: what ``Task.cap_info`` reports as the protocol of an IPC gate (the kobject label)
_GATE = int(Proto.KOBJECT) & WORD_MASK


@dataclass(slots=True)
class Region:
    start: int
    size: int
    ds_slot: int  # 0 for a reserved area
    offset: int
    flags: int

    @property
    def end(self) -> int:
        return self.start + self.size


class RegionMap:
    """The layout of one address space: attached regions and reserved areas."""

    def __init__(self) -> None:
        self.regions: list[Region] = []  # sorted by start, never overlapping
        self.areas: list[Region] = []

    def find(self, addr: int) -> Region | None:
        for r in self.regions:
            if r.start <= addr < r.end:
                return r
        return None

    def _free(self, start: int, size: int, in_area: bool) -> bool:
        if start < PAGE_SIZE or start + size > SEARCH_TOP:
            return False
        if any(r.start < start + size and start < r.end for r in self.regions):
            return False
        inside = any(a.start <= start and start + size <= a.end for a in self.areas)
        overlaps_area = any(a.start < start + size and start < a.end for a in self.areas)
        return inside if in_area else not overlaps_area

    def search(self, size: int, align: int, in_area: bool = False) -> int | None:
        """The lowest free, aligned address for ``size`` bytes."""
        starts = [SEARCH_BASE, *(r.end for r in self.regions), *(a.end for a in self.areas)]
        if in_area:
            starts += [a.start for a in self.areas]
        for cand in sorted(set(starts)):
            cand = (cand + align - 1) & ~(align - 1)
            if self._free(cand, size, in_area):
                return cand
        return None

    def attach(self, addr: int, size: int, ds_slot: int, offset: int, flags: int) -> int:
        """Add a region; returns its address or -errno."""
        size = (size + PAGE_MASK) & ~PAGE_MASK
        if size == 0:
            return -Err.EINVAL
        in_area = bool(flags & RmFlag.IN_AREA)
        if flags & RmFlag.SEARCH_ADDR:
            found = self.search(size, PAGE_SIZE, in_area)
            if found is None:
                return -Err.ENOMEM
            addr = found
        elif addr & PAGE_MASK or not self._free(addr, size, in_area):
            return -Err.EEXIST if not addr & PAGE_MASK else -Err.EINVAL
        self.regions.append(Region(addr, size, ds_slot, offset, flags))
        self.regions.sort(key=lambda r: r.start)
        return addr

    def detach(self, addr: int) -> Region | None:
        r = self.find(addr)
        if r is not None:
            self.regions.remove(r)
        return r

    def reserve(self, addr: int, size: int, flags: int) -> int:
        size = (size + PAGE_MASK) & ~PAGE_MASK
        if size == 0:
            return -Err.EINVAL
        if flags & RmFlag.SEARCH_ADDR:
            found = self.search(size, PAGE_SIZE)
            if found is None:
                return -Err.ENOMEM
            addr = found
        elif addr & PAGE_MASK:
            return -Err.EINVAL
        elif not self._free(addr, size, False):
            return -Err.EEXIST
        self.areas.append(Region(addr, size, 0, 0, flags))
        return addr

    def free_area(self, addr: int) -> bool:
        for a in self.areas:
            if a.start == addr:
                self.areas.remove(a)
                return True
        return False


def _unmap_range(start: int, size: int) -> list[Fpage]:
    """Flexpages (naturally aligned, power-of-two sized) exactly covering a range."""
    out = []
    while size > 0:
        order = 12
        while start % (1 << (order + 1)) == 0 and (1 << (order + 1)) <= size and order < 40:
            order += 1
        out.append(Fpage.mem(start, order, MemRights.RWX))
        start += 1 << order
        size -= 1 << order
    return out


async def region_manager(env: Env, parent_slot: int) -> int:
    """The region manager's server loop (runs until its task is deleted)."""
    rm = RegionMap()
    scratch = env.alloc_slot()  # where a dataspace capability of an ATTACH arrives
    msg = await env.wait(rcv=(Fpage.obj(scratch),))
    while True:
        try:
            reply = await _handle(env, rm, msg, scratch, parent_slot)
        except Exception as exc:  # a request nothing in _handle foresaw: answer it, keep serving
            reply = (await request_failed(env, "rm", msg, exc),)
        if any(r.ds_slot == scratch for r in rm.regions):
            scratch = env.alloc_slot()  # an ATTACH kept the capability: receive into a fresh slot
        if reply is None:
            msg = await env.wait(rcv=(Fpage.obj(scratch),))
            continue
        msg = await env.reply_and_wait(reply[0], *reply[1:], rcv=(Fpage.obj(scratch),))
        if msg.error == IpcErr.ENOT_EXISTENT:
            msg = await env.wait(rcv=(Fpage.obj(scratch),))


async def _handle(env: Env, rm: RegionMap, msg: Msg, scratch: int, parent_slot: int) -> tuple[int, ...] | None:
    if msg.error:
        return None
    w = msg.words
    if msg.proto == Proto.PAGE_FAULT and len(w) >= 2:
        return await _page_fault(env, rm, w[0], w[1], parent_slot)
    if msg.proto != RM or not w:
        return (-Err.ENOSYS,)
    op = w[0]
    if op == RmOp.ATTACH:
        if len(w) < 5 or not msg.items:
            return (-Err.EINVAL,)
        addr, size, flags, offset = w[1], w[2], w[3], w[4]
        if offset + size > WORD_MASK + 1:  # a page past 2**64 has no offset to ask the dataspace for
            return (-Err.EINVAL,)
        valid, kind, _ = await env.task.cap_info(scratch)
        if not valid or kind != _GATE:
            # a dataspace is served over an IPC gate; a thread capability (the program's own thread,
            # or this one) would take MAP as IPC to a thread that never answers it
            return (-Err.EINVAL,)
        got = rm.attach(addr, size, scratch, offset, flags)
        if got < 0:
            return (got,)
        if flags & RmFlag.EAGER_MAP:
            r = rm.find(got)
            assert r is not None
            for page in range(r.start, r.end, PAGE_SIZE):
                res = await _map_page(env, r, page, not flags & RmFlag.READ_ONLY)
                if res:  # the dataspace cannot back the region: undo the attach
                    rm.detach(got)
                    for fp in _unmap_range(r.start, r.size):
                        await env.task.unmap(fp, include_self=True)
                    return (-Err.ENOMEM if res > 0 else res,)
        return (0, got)
    if op == RmOp.DETACH:
        if len(w) < 2:
            return (-Err.EINVAL,)
        r = rm.detach(w[1])
        if r is None:
            return (-Err.ENOENT,)
        for fp in _unmap_range(r.start, r.size):
            await env.task.unmap(fp, include_self=True)
        await env.task.unmap(Fpage.obj(r.ds_slot, 0, Rights.RWSD), include_self=True)
        env.free_slot(r.ds_slot)
        return (0, r.start, r.size)
    if op == RmOp.FIND:
        if len(w) < 2:
            return (-Err.EINVAL,)
        r = rm.find(w[1])
        if r is None:
            return (-Err.ENOENT,)
        return (0, r.start, r.size, r.offset, r.flags)
    if op == RmOp.RESERVE:
        if len(w) < 4:
            return (-Err.EINVAL,)
        got = rm.reserve(w[1], w[2], w[3])
        return (got,) if got < 0 else (0, got)
    if op == RmOp.FREE_AREA:
        if len(w) < 2:
            return (-Err.EINVAL,)
        return (0,) if rm.free_area(w[1]) else (-Err.ENOENT,)
    return (-Err.ENOSYS,)


async def _map_page(env: Env, r: Region, page: int, write: bool) -> int:
    """Ask the region's dataspace to map ``page`` here; 0 or the error."""
    off = r.offset + (page - r.start)
    # the receive window's rights cap what arrives: a read-only region gets read-only pages
    rights = MemRights.R | MemRights.X if r.flags & RmFlag.READ_ONLY else MemRights.RWX
    ans = await env.ipc(Ipc(r.ds_slot, CALL, DATASPACE, (DsOp.MAP, off, 1 if write else 0),
                            rcv=(Fpage.mem(page, 12, rights),)))
    if ans.error:
        return ans.error
    return -ans.proto if ans.proto < 0 else 0


async def _page_fault(env: Env, rm: RegionMap, word0: int, ip: int, parent_slot: int) -> tuple[int, ...] | None:
    addr = word0 & ~0x7
    write = bool(word0 & 2)
    r = rm.find(addr)
    allowed = r is not None and not (write and r.flags & RmFlag.READ_ONLY)
    if allowed and r is not None and await _map_page(env, r, addr & ~PAGE_MASK, write) == 0:
        return (0,)  # the page is mapped in our (the faulting) task: retry
    # a segmentation fault: tell the parent, leave the faulting thread waiting
    await env.ipc(Ipc(parent_slot, CALL, PARENT, (ParentOp.SIGNAL, Sig.FAULT, addr, ip, int(write))))
    return None


async def attach(env: Env, ds_slot: int, size: int, read_only: bool = False, eager: bool = False) -> int:
    """The client side of ``ATTACH``: attach the dataspace in ``ds_slot`` (``size`` bytes) at an
    address the program's region manager chooses; ``eager`` maps every page now (writable
    unless ``read_only``).  Returns the address; an error is :class:`~l4sim.user.env.L4Error`."""
    flags = RmFlag.SEARCH_ADDR | (RmFlag.READ_ONLY if read_only else 0) | (RmFlag.EAGER_MAP if eager else 0)
    rm_slot = env.local.names["rm"]
    r = await env.ipc(Ipc(rm_slot, CALL, RM, (RmOp.ATTACH, 0, size, flags, 0),
                          (MapItem(Fpage.obj(ds_slot, 0, Rights.RWSD)),)))
    if r.error or r.proto < 0:
        raise L4Error(-r.proto if r.proto < 0 else 0, "attach", r.error)
    return int(r.words[0])
