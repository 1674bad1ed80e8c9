"""The mapping database: map, grant, unmap and recursive revocation.

One derivation tree for capabilities, pages and I/O ports (Fiasco's
``mapdb.cpp`` and ``map_util.cpp``, seL4's CDT in ``object/cnode.c``): a
mapping derived with ``map`` is a child of its source, ``grant`` moves the
source node itself, and ``mdb_remove`` takes rights from (or removes) a node
and everything derived from it, in every address space.  A task's page
tables are kernel memory charged to its factory (``mem_insert``).

``plan_map`` decodes one flexpage transfer (Fiasco's rules for send and
receive windows of different sizes) without changing anything;
``perform_map`` carries a plan out -- the decode/perform split of every
kernel operation.

Guest CPUs that translated code from a frame are told when the frame may
change (``code_written``), so no stale translation runs.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import CAP_SLOTS, Fpage, FpageType, IpcErr, MemRights, StrBuf
from l4sim.kernel.caps import CapEntry, MapNode, subtree
from l4sim.kernel.common import _MEM_W, _R
from l4sim.kernel.objects import KObject, Task, Thread
from l4sim.kernel.vspace import (
    IO_PORTS,
    MAPPING_SIZE,
    PT_SHIFT,
    PT_SIZE,
    MemMap,
    mem_cost,
    read_frames,
    write_frames,
)

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel


def cap_insert(self: Kernel, task: Task, slot: int, obj: KObject, rights: int,
               parent: MapNode | None) -> CapEntry | None:
    """Put a capability in ``task[slot]``; whatever was there is unmapped first.

    Returns None when unmapping the occupant removed ``parent`` itself
    (the occupant was an ancestor of the source): nothing is inserted.
    """
    old = task.caps.slots.get(slot)
    if old is not None:
        self.mdb_remove(old, include_self=True)
        if (parent is not None and parent.space is None) or not task.alive:
            return None  # the occupant was the source's ancestor, or the task's last capability
    e = CapEntry(obj, int(rights), task, slot, parent)
    task.caps.slots[slot] = e
    if parent is not None:
        parent.children[id(e)] = e
    obj.refs += 1
    if self.tracer is not None:
        self._trace(-1, "map", -1, task=task.name, space=task.kid, slot=slot, obj=repr(obj), rights=int(rights))
    return e


def mdb_remove(self: Kernel, node: MapNode, include_self: bool, mask: int = 0xF) -> int:
    """Unmap: take ``mask`` rights from every node derived from ``node``.

    The one revocation of the mapping database, for capabilities, pages
    and I/O ports alike.  A node losing its R right (or all its rights)
    is removed together with everything derived from it; ``include_self``
    applies the same to ``node``.  Iterative and linear in the nodes
    touched.  Objects whose last capability goes are destroyed.  Returns
    the number of nodes touched.
    """
    tops = [node] if include_self else list(node.children.values())
    victims: list[MapNode] = []
    touched = 0
    for top in tops:
        if mask & _R or not top.rights & ~mask:
            victims.append(top)
            victims.extend(subtree(top))
            continue
        reduced = [top, *subtree(top)]
        for e in reduced:
            lost = e.rights & mask
            e.rights &= ~mask
            touched += 1
            if lost and self.tracer is not None:
                trace_rights(self, e)
            if type(e) is MemMap and e.space is not None:
                if lost & _MEM_W and e.pfn in self.code_watch:
                    self.code_written(e.pfn)
                self._mem_changed(e.space, e.vpn)
        for e in reduced:  # nodes left with no right at all go entirely
            p = e.parent
            if not e.rights and e.space is not None and p is not None and p.rights:
                victims.append(e)
                victims.extend(subtree(e))
    if not victims:
        return touched
    tracer = self.tracer
    dead: list[KObject] = []
    for e in victims:
        space = e.space
        assert space is not None, "a node is removed once"
        e.space = None
        if type(e) is CapEntry:
            del space.caps.slots[e.slot]
            e.obj.refs -= 1
            if tracer is not None:
                self._trace(-1, "unmap", -1, task=space.name, space=space.kid, slot=e.slot, obj=repr(e.obj),
                            rights=int(e.rights))
            if e.obj.refs == 0:
                dead.append(e.obj)
        else:
            assert type(e) is MemMap
            self._mem_unlink(space, e)
    # unlink: a surviving parent forgets each removed child (O(1) each)
    for e in victims:
        p = e.parent
        if p is not None and p.space is not None:
            del p.children[id(e)]
        e.parent = None
        e.children = {}
    for obj in dead:
        self.destroy(obj)
    return touched + len(victims)


def cap_map(self: Kernel, src: CapEntry, dst: Task, slot: int, rights: int, grant: bool) -> CapEntry | None:
    """Derive ``src`` into ``dst[slot]`` with rights reduced to ``rights``.

    Granting moves the entry itself (same place in the derivation tree,
    the source slot empties); what is derived from it keeps no more
    rights than it now has.  Mapping over an occupied slot replaces the
    occupant, except that re-mapping the same derivation only adds rights.
    """
    rights &= src.rights
    if not rights:
        return None  # a capability without rights is no capability: nothing is mapped
    old = dst.caps.slots.get(slot)
    if grant:
        if old is not None and old is not src:
            self.mdb_remove(old, include_self=True)
            if src.space is None:
                return None
        space = src.space
        assert space is not None
        if self.tracer is not None:
            self._trace(-1, "unmap", -1, task=space.name, space=space.kid, slot=src.slot, obj=repr(src.obj),
                        rights=int(src.rights))
        del space.caps.slots[src.slot]
        src.space, src.slot, src.rights = dst, slot, rights
        dst.caps.slots[slot] = src
        self._cut_rights(src, rights)
        if self.tracer is not None:
            self._trace(-1, "map", -1, task=dst.name, space=dst.kid, slot=slot, obj=repr(src.obj), rights=int(rights))
        return src
    if old is src:
        return src  # mapping a capability onto itself changes nothing
    if old is not None and old.obj is src.obj and old.parent is src:
        if rights & ~old.rights:
            old.rights |= rights
            if self.tracer is not None:
                trace_rights(self, old)
        return old
    return self.cap_insert(dst, slot, src.obj, rights, src)


def cut_rights(self: Kernel, node: MapNode, rights: int) -> None:
    """After a grant with fewer rights: what is derived keeps no more; emptied nodes go."""
    empty = []
    for d in subtree(node):
        lost = d.rights & ~rights
        d.rights &= rights
        if lost and self.tracer is not None:
            trace_rights(self, d)
        if isinstance(d, MemMap) and d.space is not None:
            if lost & _MEM_W and d.pfn in self.code_watch:
                self.code_written(d.pfn)
            self._mem_changed(d.space, d.vpn)
        p = d.parent
        if not d.rights and p is not None and p.rights:
            empty.append(d)  # the topmost node left without rights: it goes with its subtree
    for d in empty:
        if d.space is not None:
            self.mdb_remove(d, include_self=True)


def trace_rights(self: Kernel, e: MapNode) -> None:
    """The ``rights`` record of mapping ``e``, which stays where it is with other rights
    (derived with more, or reduced by an unmap or a grant); only called with tracing on."""
    space = e.space
    if space is None:
        return
    if type(e) is CapEntry:
        slot, obj = e.slot, repr(e.obj)
    else:
        assert type(e) is MemMap
        slot, obj = e.vpn, f"{'port' if e.io else 'frame'} {e.pfn:#x}"
    self._trace(-1, "rights", -1, task=space.name, space=space.kid, slot=slot, obj=obj, rights=int(e.rights))


def mem_changed(self: Kernel, task: Task, vpn: int) -> None:
    for hook in task.vspace.on_change:
        hook(vpn)


def code_written(self: Kernel, pfn: int) -> None:
    """Frame ``pfn`` may get other contents (a native program wrote it, or a writable
    mapping of it came or went): guest CPUs that translated code from it flush."""
    cpus = self.code_watch.pop(pfn, None)
    if cpus:
        for cpu in cpus:
            cpu.code_stale()


def mem_unlink(self: Kernel, task: Task, m: MemMap) -> None:
    """Remove mapping ``m`` from ``task``'s tables and return its kernel memory."""
    vs = task.vspace
    table = vs.io if m.io else vs.pages
    del table[m.vpn]
    if m.rights & _MEM_W and not m.io and m.pfn in self.code_watch:
        self.code_written(m.pfn)
    freed = MAPPING_SIZE
    if not m.io:
        pt = m.vpn >> PT_SHIFT
        left = vs.pt[pt] - 1
        if left:
            vs.pt[pt] = left
        else:
            del vs.pt[pt]
            freed += PT_SIZE
    if m.parent is None:
        roots = self.port_roots if m.io else self.frame_roots
        if roots.get(m.pfn) is m:
            del roots[m.pfn]  # the frame (port) is sigma0's again
        if vs.sigma0:
            freed = 0  # sigma0's own roots were never charged
    vs.charge -= freed
    self._uncharge(task.factory, freed)
    if self.kmem is not None and freed:
        self.kmem.freed(freed)
    if self.tracer is not None:
        self._trace(-1, "unmap", -1, task=task.name, space=task.kid, slot=m.vpn, obj=f"{'port' if m.io else 'frame'} {m.pfn:#x}",
                    rights=int(m.rights))
    self._mem_changed(task, m.vpn)


def mem_insert(self: Kernel, task: Task, vpn: int, pfn: int, rights: int, parent: MapNode | None,
               io: bool = False) -> MemMap | None:
    """Map frame ``pfn`` (or port) at ``vpn`` in ``task``; replaces an occupant.

    Returns None when the task's factory cannot pay for the mapping (or
    the occupant was an ancestor of ``parent``): nothing changes then.
    """
    rights = int(rights)  # a MemRights Flag from a flexpage: plain int operations below
    vs = task.vspace
    table = vs.io if io else vs.pages
    old = table.get(vpn)
    if old is not None:
        if old.pfn == pfn and old.parent is parent and parent is not None:
            if rights & ~old.rights & _MEM_W and not io and pfn in self.code_watch:
                self.code_written(pfn)
            if rights & ~old.rights:
                old.rights |= rights
                if self.tracer is not None:
                    trace_rights(self, old)
            return old
        cost = mem_cost(vs, vpn, io)
        f = task.factory
        kmem = self.kmem
        if f is not None and (f.used + cost > f.limit + MAPPING_SIZE if kmem is None
                              else not kmem.admit(f, cost - MAPPING_SIZE, cost - MAPPING_SIZE)):
            return None
        self.mdb_remove(old, include_self=True)
        if parent is not None and parent.space is None:
            return None
    cost = mem_cost(vs, vpn, io)
    f = task.factory
    kmem = self.kmem
    if parent is not None or not vs.sigma0:
        if f is not None and (f.used + cost > f.limit if kmem is None else not kmem.admit(f, cost, cost)):
            return None
    else:
        cost = 0  # sigma0's roots are the machine's memory, not kernel memory
    m = MemMap(int(rights), task, parent, vpn, pfn, io)
    table[vpn] = m
    if rights & _MEM_W and not io and pfn in self.code_watch:
        self.code_written(pfn)
    if not io:
        pt = vpn >> PT_SHIFT
        vs.pt[pt] = vs.pt.get(pt, 0) + 1
    if parent is not None:
        parent.children[id(m)] = m
    vs.charge += cost
    if f is not None:
        f.used += cost
    if kmem is not None and cost:
        kmem.charged(cost)
    if self.tracer is not None:
        self._trace(-1, "map", -1, task=task.name, space=task.kid, slot=vpn, obj=f"{'port' if io else 'frame'} {pfn:#x}",
                    rights=int(rights))
    return m


def sigma0_root(self: Kernel, task: Task, vpn: int, io: bool = False) -> MemMap | None:
    """sigma0's mapping of frame (or port) ``vpn``, created when first used."""
    vs = task.vspace
    table = vs.io if io else vs.pages
    m = table.get(vpn)
    if m is not None or not vs.sigma0:
        return m
    if io:
        if not 0 <= vpn < IO_PORTS or vpn in self.port_roots:
            return None
        m = self.mem_insert(task, vpn, vpn, int(MemRights.RW), None, io=True)
        if m is not None:
            self.port_roots[vpn] = m
        return m
    if vpn in self.frame_roots or not self.machine.mem.exists(vpn):
        return None
    m = self.mem_insert(task, vpn, vpn, int(MemRights.RWX), None)
    if m is not None:
        self.frame_roots[vpn] = m
    return m


def mem_map(self: Kernel, src: MemMap, dst: Task, vpn: int, rights: int, grant: bool) -> MemMap | None:
    """Map (or grant) page/port ``src`` to ``dst`` at ``vpn`` with reduced rights."""
    rights = int(rights) & src.rights
    if not rights:
        return None
    if grant:
        space = src.space
        assert space is not None
        vs = dst.vspace
        table = vs.io if src.io else vs.pages
        old = table.get(vpn)
        if old is src:
            return src
        cost = mem_cost(vs, vpn, src.io)
        f = dst.factory
        if f is not None and (f.used + cost > f.limit if self.kmem is None
                              else not self.kmem.admit(f, cost, cost)):
            return None
        if old is not None:
            self.mdb_remove(old, include_self=True)
            if src.space is None:
                return None
        parent, children = src.parent, src.children
        root = parent is None and self.frame_roots.get(src.pfn) is src
        src.children = {}
        self._mem_unlink(space, src)  # frees its charge in the old space
        src.space = None
        m = self.mem_insert(dst, vpn, src.pfn, rights, parent, io=src.io)
        if m is None:  # cannot happen after the check above; keep the tree whole
            return None
        if parent is not None:
            del parent.children[id(src)]
        elif root:
            self.frame_roots[src.pfn] = m
        for c in children.values():
            c.parent = m
            m.children[id(c)] = c
        self._cut_rights(m, rights)
        return m
    return self.mem_insert(dst, vpn, src.pfn, rights, src, io=src.io)


def plan_map(self: Kernel, src: Task, fp: Fpage, dst: Task, win: Fpage, hot: int, grant: bool,
              plan: list[Any]) -> int:
    """Decode one flexpage transfer from ``src`` to window ``win`` of ``dst``.

    Appends (kind, src task, src unit, dst task, dst unit, rights, grant)
    for every unit the source holds; changes nothing.  Fiasco's rule for
    sizes: a send flexpage larger than the window sends the window-sized
    part the hot spot points at; a smaller one lands where the hot spot
    points inside the window.  Returns 0 or the send-phase error.
    """
    if fp.kind != win.kind:
        return IpcErr.SEMAPFAILED
    su, ru = fp.units(), win.units()
    if su is None or ru is None or type(hot) is not int or hot < 0:
        return IpcErr.SEMAPFAILED
    (s_base, s_ord), (r_base, r_ord) = su, ru
    if fp.kind == FpageType.MEMORY:
        hot >>= 12
    if s_ord >= r_ord:
        first = s_base + (hot & ((1 << s_ord) - 1) & ~((1 << r_ord) - 1))
        dfirst, n = r_base, 1 << r_ord
    else:
        first, n = s_base, 1 << s_ord
        dfirst = r_base + (hot & ((1 << r_ord) - 1) & ~((1 << s_ord) - 1))
    kind = fp.kind
    if kind == FpageType.OBJECT:
        if dfirst <= 0 or dfirst + n > CAP_SLOTS:  # slot 0 is never a capability
            return IpcErr.SEMAPFAILED
        units: Any = [u for u in range(first, first + n) if u in src.caps.slots] if n <= 4096 else \
            sorted(u for u in src.caps.slots if first <= u < first + n)
    else:
        vs = src.vspace
        table = vs.io if kind == FpageType.IO else vs.pages
        if vs.sigma0:  # sigma0 holds every frame (port) not handed out as a root
            roots = self.port_roots if kind == FpageType.IO else self.frame_roots
            exists = (lambda u: u < IO_PORTS) if kind == FpageType.IO else self.machine.mem.exists
            units = [u for u in range(first, first + min(n, 1 << 20))
                     if u in table or (u not in roots and exists(u))]
        elif n <= 4096:
            units = [u for u in range(first, first + n) if u in table]
        else:
            units = sorted(u for u in table if first <= u < first + n)
        f = dst.factory
        if f is not None and units:
            need = len(units) * MAPPING_SIZE
            if kind == FpageType.MEMORY:
                have = dst.vspace.pt
                # page tables the mappings need that the receiver lacks (a set minus the
                # dict's keys would walk all of them: this walks the new ones)
                need += PT_SIZE * sum(1 for pt in {(dfirst + u - first) >> PT_SHIFT for u in units}
                                      if pt not in have)
            if f.used + need > f.limit if self.kmem is None else not self.kmem.admit(f, need, need):
                return IpcErr.SEMAPFAILED  # the receiver's kernel memory is exhausted
    rights = int(fp.rights) & int(win.rights) if kind != FpageType.OBJECT else fp.rights
    for u in units:
        plan.append((kind, src, u, dst, dfirst + (u - first), rights, grant))
    return 0


def perform_map(self: Kernel, plan: list[Any], core: Core | None = None, payer: Thread | None = None) -> list[Fpage]:
    """Carry out a decoded plan; returns the flexpages (one unit each) that arrived."""
    filled: list[Fpage] = []
    cost = self.costs.map_per_entry
    for entry in plan:
        if entry[0] == "str":  # long IPC: copy the bytes between the spaces
            _, src, addr, n, dst, daddr = entry
            mem = self.machine.mem
            write_frames(mem, dst, daddr, read_frames(mem, src, addr, n, self._mmio), self._mmio)
            lt = self.lifetime
            if lt is not None:
                lt.read(self, src, addr, n)
                lt.wrote(self, dst, daddr, n)
            if self.code_watch:
                self._written(dst, daddr, n)
            if core is not None and payer is not None:
                self._charge(core, payer, self.costs.mem_per_kib * (n >> 10))
            filled.append(StrBuf(daddr, n))  # type: ignore[arg-type]
            continue
        kind, src, u, dst, du, rights, grant = entry
        if kind == FpageType.OBJECT:
            e = src.caps.slots.get(u)
            if e is None:
                continue  # removed by an earlier unit of this transfer
            ne: Any = self.cap_map(e, dst, du, rights, grant)
            if ne is not None:
                filled.append(Fpage.obj(du, 0, ne.rights))
        else:
            io = kind == FpageType.IO
            m = self.sigma0_root(src, u, io)
            if m is None:
                continue
            ne = self.mem_map(m, dst, du, rights, grant)
            if ne is not None:
                filled.append(Fpage.io(du, 0, ne.rights) if io else Fpage.mem(du << 12, 12, ne.rights))
        if core is None and self.running is not None and self.running.current is not None:
            core, payer = self.running, self.running.current  # Task.map: the invoker pays
        if core is not None and payer is not None:
            self._charge(core, payer, cost)
    return filled


def perform_items(self: Kernel, core: Core, payer: Thread, plan: list[Any]) -> tuple[Any, ...]:
    return tuple(self._perform_map(plan, core, payer))
