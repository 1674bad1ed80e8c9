"""Address spaces: page mappings, I/O-port mappings, page faults, memory traps.

L4's recursive address spaces (Liedtke, "On micro-kernel construction"):
sigma0 owns every physical frame at boot; any space may *map* a page it
has to another (same or fewer rights), *grant* it (move it), and *unmap*
it, which revokes everything derived from its mapping in every space.  The
derivation tree is the same mapping database that carries capabilities
(:mod:`l4sim.kernel.caps`); a page mapping is a :class:`MemMap` node.

A task's page table is a dict from virtual page number to its node; I/O
ports have a table of their own.  sigma0's space is special only in that its
root mappings (virtual page = physical frame) come into being when first
used, and a frame has at most one root at a time.

A native program touches memory with ``env.mem.read/write``; an access to a
page that is not mapped with the needed right becomes a page-fault IPC to
the thread's pager in Fiasco's format (word 0: fault address | write 2 |
present 1, word 1: instruction pointer), with the whole address space as the
receive window.  The access is retried when the pager replies; a reply that
maps nothing simply faults again.  Without a pager the fault goes to the
exception handler (trap 14, x86's #PF).

Kernel memory: every mapping node and every page-table page (one per 512
pages of virtual address space, as on x86-64) is charged to the factory
that created the task, against its quota.  A mapping that would exceed it
fails (map failed / ENOMEM) and affects nobody else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import FpageType, MemRights
from l4sim.kernel.caps import MapNode, subtree
from l4sim.kernel.traps import Trap
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from l4sim.kernel.objects import Task

#: kernel memory for one mapping node (bytes)
MAPPING_SIZE = 32
#: kernel memory for one page-table page, covering 512 pages
PT_SIZE = 4096
PT_SHIFT = 9
#: largest single memory access of a native program
MAX_ACCESS = 1 << 20
#: page-fault error bits in word 0 of the fault message
PF_PRESENT = 1
PF_WRITE = 2
PF_FETCH = 4
#: exception numbers of native memory/port faults (x86)
TRAP_PAGE_FAULT = 14
TRAP_GP = 13
#: I/O ports of the machine
IO_PORTS = 1 << 16


class MemMap(MapNode):
    """A page (or I/O port) of one space mapped to a frame, with rights."""

    __slots__ = ("io", "pfn", "vpn")

    def __init__(self, rights: int, space: Task, parent: MapNode | None, vpn: int, pfn: int,
                 io: bool = False) -> None:
        self.rights = rights
        self.space = space
        self.parent = parent
        self.children = {}
        self.vpn = vpn
        self.pfn = pfn
        self.io = io

    def __repr__(self) -> str:
        where = self.space.name if self.space else "removed"
        kind = "port" if self.io else "page"
        return f"<{kind} {where}:{self.vpn:#x} -> {self.pfn:#x} {MemRights(self.rights)!r}>"


class MemAccess(Trap):
    """Read ``n`` bytes at ``addr`` (``data`` None) or write ``data`` there."""

    __slots__ = ("addr", "data", "n")

    def __init__(self, addr: int, n: int, data: bytes | None = None) -> None:
        self.addr = addr
        self.n = n
        self.data = data


class IoAccess(Trap):
    """Read (``value`` None) or write one byte of I/O port ``port``."""

    __slots__ = ("port", "value")

    def __init__(self, port: int, value: int | None = None) -> None:
        self.port = port
        self.value = value


class AddressSpace:
    """The memory part of a task: page table, I/O table, kernel-memory charge."""

    __slots__ = ("charge", "io", "on_change", "pages", "pt", "sigma0")

    def __init__(self) -> None:
        self.pages: dict[int, MemMap] = {}
        self.io: dict[int, MemMap] = {}
        #: page-table pages in use: index (vpn >> 9) -> mappings in it
        self.pt: dict[int, int] = {}
        #: bytes of kernel memory charged for mappings and page tables
        self.charge = 0
        #: sigma0's space holds every frame at the same address
        self.sigma0 = False
        #: called after a mapping of this space is removed or loses rights
        #: (the guest executor flushes its TLB here)
        self.on_change: list[Callable[[int], None]] = []


def mem_cost(space: AddressSpace, vpn: int, io: bool) -> int:
    """Kernel memory a new mapping at ``vpn`` costs in ``space``."""
    if io:
        return MAPPING_SIZE
    return MAPPING_SIZE + (PT_SIZE if (vpn >> PT_SHIFT) not in space.pt else 0)


def page_range(fp_base: int, order: int) -> tuple[int, int]:
    """(first page, page count) of a memory flexpage of 2**order bytes."""
    return fp_base >> PAGE_SHIFT, 1 << max(order - PAGE_SHIFT, 0)


#: what the kernel passes as ``mmio`` to :func:`read_frames` / :func:`write_frames`: it performs
#: (and traces) one access to a device frame: ``(pfn, offset, n, data or None) -> bytes read``
Mmio = Callable[[int, int, int, bytes | None], bytes]


def _untraced(mem: Any) -> Mmio:
    """A device access with nobody to trace it (host-side copies, tools)."""
    def access(pfn: int, off: int, n: int, data: bytes | None) -> bytes:
        if data is None:
            return bytes(mem.io_read(pfn, off, n, 0)[2])
        mem.io_write(pfn, off, data, 0)
        return b""
    return access


def read_frames(mem: Any, task: Task, addr: int, n: int, mmio: Mmio | None = None) -> bytes:
    """Copy ``n`` bytes of ``task``'s memory at ``addr`` (all pages mapped).

    A frame above RAM is device memory: that part of the access goes to ``mmio`` (the
    kernel's, which traces it) and becomes a register read.  RAM costs one comparison.
    """
    out = bytearray()
    pages = task.vspace.pages
    nram = mem.nframes
    view = mem.view
    while n > 0:
        off = addr & PAGE_MASK
        take = min(n, PAGE_SIZE - off)
        pfn = pages[addr >> PAGE_SHIFT].pfn
        if pfn < nram:
            base = (pfn << PAGE_SHIFT) + off
            out += view[base : base + take]
        else:
            out += (mmio or _untraced(mem))(pfn, off, take, None)
        addr += take
        n -= take
    return bytes(out)


def write_frames(mem: Any, task: Task, addr: int, data: bytes, mmio: Mmio | None = None) -> None:
    """Copy ``data`` into ``task``'s memory at ``addr`` (all pages mapped); the part on a
    device frame goes to ``mmio`` and becomes a register write."""
    pages = task.vspace.pages
    nram = mem.nframes
    view = mem.view
    i = 0
    n = len(data)
    while i < n:
        off = addr & PAGE_MASK
        take = min(n - i, PAGE_SIZE - off)
        pfn = pages[addr >> PAGE_SHIFT].pfn
        if pfn < nram:
            base = (pfn << PAGE_SHIFT) + off
            view[base : base + take] = data[i : i + take]
        else:
            (mmio or _untraced(mem))(pfn, off, take, data[i : i + take])
        addr += take
        i += take


def first_missing(space: AddressSpace, addr: int, n: int, need: int,
                  root: Callable[[int], MemMap | None] | None) -> tuple[int, MemMap | None] | None:
    """The first page of [addr, addr+n) not mapped with ``need``: (address, its mapping)."""
    pages = space.pages
    vpn = addr >> PAGE_SHIFT
    last = (addr + n - 1) >> PAGE_SHIFT
    while vpn <= last:
        m = pages.get(vpn)
        if m is None and root is not None:
            m = root(vpn)
        if m is None or not m.rights & need:
            return (max(addr, vpn << PAGE_SHIFT), m)
        vpn += 1
    return None


def derived(node: MapNode) -> list[MapNode]:
    """``node`` and everything derived from it."""
    return [node, *subtree(node)]


FPAGE_MEMORY = FpageType.MEMORY
FPAGE_IO = FpageType.IO
