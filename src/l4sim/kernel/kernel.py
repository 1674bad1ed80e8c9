"""The microkernel: trap entry, IPC, kernel objects and per-core scheduling.

How it runs
-----------
The machine's event queue is the only clock.  Each core is driven by *step*
events: a step runs the core's current thread -- handing the last trap's
result to its coroutine and executing the next trap -- for as long as the
core's local time has not passed the earliest pending event.  So a call and
its reply between two threads of one core cost no heap operations at all,
while two cores still interleave exactly in simulated-time order.

``compute(ns)`` is the only way a native thread spends time outside the
kernel: the core schedules its next step at the end of the computation, and
an earlier wake-up of a higher-priority thread on that core (an IRQ, an IPC
from another core) cuts the computation and leaves the rest in
``compute_left`` for when the thread runs again.

Structure
---------
Every system call is one :class:`~l4sim.kernel.traps.Ipc` trap (plus the
few non-IPC traps of ``traps.py``).  Like seL4, each invocation first
*looks up* the capability, then *decodes* the whole request -- rights,
arguments, message, items -- without changing anything, and only then
*performs* it.  A failed invocation returns an error value and changes no
kernel state.  Errors use Fiasco's numbers (``abi.IpcErr`` for the IPC path,
``-abi.Err`` in the reply label for kernel-object invocations).

Every event goes through one hook: ``if self.tracer is not None``.
Nothing here prints; the Log object writes to the machine's UART.
"""

from __future__ import annotations

import contextlib
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from l4sim.kernel.abi import (
    CAP_SLOTS,
    CTL_BIND_TASK,
    CTL_SET_EXC_HANDLER,
    CTL_SET_PAGER,
    EX_REGS_CANCEL,
    EX_REGS_GUEST,
    EX_REGS_TRIGGER_EXCEPTION,
    IP_UNCHANGED,
    LABEL_MAX,
    LABEL_MIN,
    MSG_WORDS,
    OPEN_WAIT,
    RECV,
    REPLY,
    REPLY_AND_WAIT,
    RESV_FLAGS,
    RESV_MIN_PERIOD,
    RESV_PERIODIC,
    RESV_TIMEOUT_FAULT,
    SEND,
    TRAP_BAD_TRAP,
    TRAP_BUDGET_TIMEOUT,
    TRAP_PY_EXCEPTION,
    UNMAP_ALL_SPACES,
    UNMAP_DELETE_OBJ,
    WORD_MASK,
    Err,
    FactoryOp,
    Fpage,
    FpageType,
    GateOp,
    IcuOp,
    IpcErr,
    IrqOp,
    LogOp,
    MapItem,
    MemRights,
    Proto,
    Rights,
    SchedOp,
    StrBuf,
    StrItem,
    TaskOp,
    ThreadOp,
    unpack_bytes,
)
from l4sim.kernel.caps import CapEntry, MapNode, subtree
from l4sim.kernel.costs import CostModel
from l4sim.kernel.objects import (
    TS,
    Factory,
    Icu,
    IpcGate,
    Irq,
    KObject,
    Log,
    Reply,
    SchedulerObj,
    Task,
    Thread,
)
from l4sim.kernel.sched import EDF_LEVEL, LEVELS, POLICIES, RESV_BASE, EdfQueue, Reservation
from l4sim.kernel.traps import MSG_OK, Clock, Compute, Fault, Ipc, Msg, NextPeriod, SaveReply, Trap
from l4sim.kernel.vspace import (
    IO_PORTS,
    MAPPING_SIZE,
    MAX_ACCESS,
    PF_PRESENT,
    PF_WRITE,
    PT_SHIFT,
    PT_SIZE,
    TRAP_GP,
    TRAP_PAGE_FAULT,
    IoAccess,
    MemAccess,
    MemMap,
    first_missing,
    mem_cost,
    read_frames,
    write_frames,
)
from l4sim.machine.board import Machine
from l4sim.machine.events import PRIO_CORE, PRIO_IRQ, PRIO_TIMEOUT, Event

CALL_FLAGS = SEND | RECV


def _close(coro: Coroutine[Any, Any, Any]) -> None:
    """End a program's coroutine; whatever its ``finally`` blocks do, the kernel goes on."""
    with contextlib.suppress(BaseException):  # a program's clean-up must never stop the kernel
        coro.close()


def _fpage_ok(fp: object) -> bool:
    """A flexpage whose fields are plain ints (its sizes are checked where it is used)."""
    return (type(fp) is Fpage and isinstance(fp.kind, int) and 0 <= fp.kind <= 3
            and type(fp.base) is int and type(fp.order) is int and isinstance(fp.rights, int)
            and 0 <= fp.rights <= 0xF)


def _range_ok(addr: object, n: object) -> bool:
    """A string's address and length are machine words within one access."""
    return type(addr) is int and type(n) is int and 0 <= n <= MAX_ACCESS and 0 <= addr <= WORD_MASK - n

FPAGE_ALL_MEMORY = Fpage.all_memory()
_PROTO_KOBJECT = int(Proto.KOBJECT)
# rights as plain ints on hot paths (IntFlag arithmetic costs ~40x an int's)
_R = int(Rights.R)
_MEM_R, _MEM_W = int(MemRights.R), int(MemRights.W)

# Thread states as module constants: an enum attribute lookup costs ~10x a
# global one, and these are read on every IPC (hot path).
_INACTIVE, _READY, _SEND, _RECV, _DEAD = TS.INACTIVE, TS.READY, TS.SEND, TS.RECV, TS.DEAD
_DEPLETED, _WAIT_RELEASE = TS.DEPLETED, TS.WAIT_RELEASE

#: Default kernel-memory quota of the root factory (bytes).
ROOT_QUOTA = 64 << 20

Entry = Callable[[int], Coroutine[Any, Any, Any]]


class LoadCode(Trap):
    """Load native code into a task (the analog of mapping a text segment).

    ``entry(sp)`` must return the coroutine the new thread runs.  Python code
    cannot travel in a message, so this is a trap of its own; it needs the W
    right on the task capability ``task``.  Returns the new ip, or ``-errno``.
    """

    __slots__ = ("entry", "task")

    def __init__(self, task: int, entry: Entry) -> None:
        self.task = task
        self.entry = entry


class _Restore(Trap):
    """Kernel-internal: hands a thread its last trap's result back after a timeout fault."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: builds a Msg from a tuple without the named tuple's Python-level ``__new__`` (hot path)
_new_msg = tuple.__new__

class Core:
    """Scheduler state of one CPU: ready queues per level and the current thread.

    Levels 0..255 are the best-effort priorities; reserved threads sit above
    them (``sched.py``: ``RESV_BASE + prio`` under ``policy`` "fp", the sorted
    ``EDF_LEVEL`` queue under "edf").
    """

    __slots__ = (
        "bits",
        "comp_start",
        "computing",
        "current",
        "id",
        "idle_ns",
        "idle_since",
        "policy",
        "queues",
        "step_ev",
        "switches",
        "time",
    )

    def __init__(self, cid: int) -> None:
        self.id = cid
        self.current: Thread | None = None
        #: one FIFO per level; ``bits`` has bit p set when queue p is non-empty
        self.queues: list[Any] = [deque() for _ in range(LEVELS - 1)]
        self.queues.append(EdfQueue())
        self.bits = 0
        #: how reserved threads are ordered: "fp" (by priority) or "edf" (by deadline)
        self.policy = "fp"
        #: local time: the instant up to which this core has executed
        self.time = 0
        #: the pending step event (None when idle)
        self.step_ev: Event | None = None
        #: True while the current thread is inside ``compute`` until ``step_ev``
        self.computing = False
        self.comp_start = 0
        self.idle_ns = 0
        self.idle_since: int | None = 0
        self.switches = 0

    def enqueue(self, th: Thread, head: bool = False) -> None:
        q = self.queues[th.prio]
        if head:
            q.appendleft(th)
        else:
            q.append(th)
        self.bits |= 1 << th.prio

    def dequeue_top(self) -> Thread:
        p = self.bits.bit_length() - 1
        q = self.queues[p]
        th: Thread = q.popleft()
        if not q:
            self.bits &= ~(1 << p)
        return th

    def remove(self, th: Thread) -> bool:
        q = self.queues[th.prio]
        try:
            q.remove(th)
        except ValueError:
            return False
        if not q:
            self.bits &= ~(1 << th.prio)
        return True

    def queued(self) -> list[Thread]:
        return [t for p in range(LEVELS - 1, -1, -1) for t in self.queues[p]]


class Kernel:
    """The kernel of one simulated machine."""

    #: guest system calls are answered inside the CPU's syscall hook when they can be;
    #: False stops emulation for every call: the same run, slower (see kernel/guest.py)
    guest_inhook = True
    #: unicorn instances of dead tasks kept for reuse: a forked child then runs its parent's
    #: code without translating it again (0: a new instance for every task; the same run)
    guest_pool_max = 4

    def __init__(self, machine: Machine, costs: CostModel | None = None, tracer: Any = None) -> None:
        self.machine = machine
        self.events = machine.events
        self.costs = costs or CostModel()
        #: the tracing hook: an object with ``emit(record)`` or None
        self.tracer = tracer
        self.cores = [Core(i) for i in range(machine.ncores)]
        self._kid = 0
        self._flow = 0
        self.objects_alive = 0
        self.tasks: list[Task] = []
        #: the root mapping of each physical frame / I/O port handed out by sigma0
        self.frame_roots: dict[int, MemMap] = {}
        self._boot_roots: dict[int, CapEntry] = {}
        self.port_roots: dict[int, MemMap] = {}
        self.threads: list[Thread] = []
        self.running: Core | None = None  # core executing traps right now
        #: the guest CPU (kernel/guest.py) of each task that has guest threads, by task id
        self.guest_cpus: dict[int, Any] = {}
        #: guest CPUs of dead tasks, kept for the next tasks (see ``GuestCPU.assign``)
        self.guest_pool: list[Any] = []
        #: frame -> the guest CPUs that may hold code translated from it: they drop their
        #: translations when the frame may change (:meth:`code_written`)
        self.code_watch: dict[int, set[Any]] = {}
        # statistics
        self.ipc_count = 0
        self.kinvokes = 0
        self.context_switches = 0
        self.exceptions = 0
        #: job releases and replenishments so far (EDF tie-break: release order)
        self.releases = 0
        # singletons reachable through the initial capabilities
        self.icu = self._new(Icu)
        self.log = self._new(Log)
        self.scheduler = self._new(SchedulerObj)
        machine.ic.handler = self._hw_irq
        # trap dispatch; bound methods cached once (hot path)
        self._traps: dict[type, Callable[[Core, Thread, Any], None]] = {
            Ipc: self._sys_ipc_fast,
            Compute: self._sys_compute,
            Clock: self._sys_clock,
            SaveReply: self._sys_save_reply,
            Fault: self._sys_fault,
            LoadCode: self._sys_load_code,
            NextPeriod: self._sys_next_period,
            _Restore: self._sys_restore,
            MemAccess: self._sys_mem,
            IoAccess: self._sys_io,
        }
        self._kinvoke: dict[type, Callable[[Thread, CapEntry, Ipc], Msg]] = {
            Factory: self._inv_factory,
            Task: self._inv_task,
            Thread: self._inv_thread,
            Irq: self._inv_irq,
            SchedulerObj: self._inv_scheduler,
            Icu: self._inv_icu,
            Log: self._inv_log,
            IpcGate: self._inv_gate,
        }

    # ------------------------------------------------------------------ helpers
    def now(self) -> int:
        """The current instant: the running core's local time, else event time."""
        core = self.running
        return core.time if core is not None else self.events.now

    def _trace(self, cpu: int, kind: str, tid: int, **args: Any) -> None:
        self.tracer.emit((self.now(), cpu, kind, tid, args))

    def _new(self, cls: type, *args: Any) -> Any:
        self._kid += 1
        obj = cls(self._kid, *args)
        self.objects_alive += 1
        return obj

    def _charge(self, core: Core, th: Thread, ns: int) -> None:
        core.time += ns
        th.quantum_left -= ns
        th.cpu_ns += ns
        r = th.reply
        if r is not None and r.caller is not None:  # a server at work on a call
            self._lend(r.caller, ns)

    @staticmethod
    def _lend(client: Thread, ns: int) -> None:
        """``ns`` of a server's time went to ``client``'s call: count it as ``served_ns`` of the
        client at the root of the chain (a server calling another server on its client's behalf
        passes the time on)."""
        r = client.reply
        hops = 0
        while r is not None and r.caller is not None and hops < 16:  # short; bounded all the same
            client = r.caller
            r = client.reply
            hops += 1
        client.served_ns += ns

    # ------------------------------------------------ the mapping database
    def cap_insert(self, task: Task, slot: int, obj: KObject, rights: int,
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
            self._trace(-1, "map", -1, task=task.name, slot=slot, obj=repr(obj), rights=int(rights))
        return e

    def mdb_remove(self, node: MapNode, include_self: bool, mask: int = 0xF) -> int:
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
                    self._trace(-1, "unmap", -1, task=space.name, slot=e.slot, obj=repr(e.obj),
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

    cap_remove = mdb_remove

    def cap_map(self, src: CapEntry, dst: Task, slot: int, rights: int, grant: bool) -> CapEntry | None:
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
            del space.caps.slots[src.slot]
            src.space, src.slot, src.rights = dst, slot, rights
            dst.caps.slots[slot] = src
            self._cut_rights(src, rights)
            if self.tracer is not None:
                self._trace(-1, "map", -1, task=dst.name, slot=slot, obj=repr(src.obj), rights=int(rights))
            return src
        if old is src:
            return src  # mapping a capability onto itself changes nothing
        if old is not None and old.obj is src.obj and old.parent is src:
            old.rights |= rights
            return old
        return self.cap_insert(dst, slot, src.obj, rights, src)

    def _cut_rights(self, node: MapNode, rights: int) -> None:
        """After a grant with fewer rights: what is derived keeps no more; emptied nodes go."""
        empty = []
        for d in subtree(node):
            lost = d.rights & ~rights
            d.rights &= rights
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

    # --- pages and I/O ports
    def _mem_changed(self, task: Task, vpn: int) -> None:
        for hook in task.vspace.on_change:
            hook(vpn)

    def code_written(self, pfn: int) -> None:
        """Frame ``pfn`` may get other contents (a native program wrote it, or a writable
        mapping of it came or went): guest CPUs that translated code from it flush."""
        cpus = self.code_watch.pop(pfn, None)
        if cpus:
            for cpu in cpus:
                cpu.code_stale()

    def drop_guest_pool(self) -> None:
        """Free the pooled guest CPUs (at the end of a run)."""
        pool, self.guest_pool = self.guest_pool, []
        for cpu in pool:
            cpu.free()

    def _mem_unlink(self, task: Task, m: MemMap) -> None:
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
        if self.tracer is not None:
            self._trace(-1, "unmap", -1, task=task.name, slot=m.vpn, obj=f"{'port' if m.io else 'frame'} {m.pfn:#x}",
                        rights=int(m.rights))
        self._mem_changed(task, m.vpn)

    def mem_insert(self, task: Task, vpn: int, pfn: int, rights: int, parent: MapNode | None,
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
                old.rights |= rights
                return old
            cost = mem_cost(vs, vpn, io)
            f = task.factory
            if f is not None and f.used + cost > f.limit + MAPPING_SIZE:
                return None
            self.mdb_remove(old, include_self=True)
            if parent is not None and parent.space is None:
                return None
        cost = mem_cost(vs, vpn, io)
        f = task.factory
        if parent is not None or not vs.sigma0:
            if f is not None and f.used + cost > f.limit:
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
        if self.tracer is not None:
            self._trace(-1, "map", -1, task=task.name, slot=vpn, obj=f"{'port' if io else 'frame'} {pfn:#x}",
                        rights=int(rights))
        return m

    def sigma0_root(self, task: Task, vpn: int, io: bool = False) -> MemMap | None:
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

    def mem_map(self, src: MemMap, dst: Task, vpn: int, rights: int, grant: bool) -> MemMap | None:
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
            if dst.factory is not None and dst.factory.used + cost > dst.factory.limit:
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

    # ------------------------------------------------------------ object life
    def _next_kid(self) -> int:
        self._kid += 1
        return self._kid

    def destroy(self, obj: KObject) -> None:
        """An object whose last capability went (or that was deleted) ends here.

        Threads blocked on it are woken with an error; the kernel memory it
        was charged returns to its factory's quota.
        """
        if not obj.alive:
            return
        obj.alive = False
        self.objects_alive -= 1
        if type(obj) is Factory:
            # what the factory's own objects still use stays charged to its parent until they go
            self._uncharge(obj.factory, obj.charge - obj.used)
        else:
            self._uncharge(obj.factory, obj.charge)
        match obj:
            case Thread():
                self._kill(obj, None, "deleted")
            case IpcGate():
                th = obj.thread
                if th is not None:
                    for s in [s for s in th.snd_queue if s.snd_via is obj]:
                        self._ipc_fail(s, IpcErr.SEABORTED)
                    di = th.del_irq
                    if di is not None and di.alive and th.state is not _DEAD:
                        th.deleted.append(obj.label)  # the deletion notification of Fiasco
                        self._irq_fire(di)
                obj.thread = None
            case Irq():
                if obj.line is not None and self.icu.bound.get(obj.line) is obj:
                    del self.icu.bound[obj.line]
                if obj.del_of is not None and obj.del_of.del_irq is obj:
                    obj.del_of.del_irq = None
                self._irq_detach(obj)
                for waiting in self.threads:  # a closed wait on it ends (any thread, not only the attached)
                    if waiting.state is _RECV and waiting.partner is obj:
                        self._ipc_fail(waiting, IpcErr.REABORTED)
            case Task():
                vs = obj.vspace
                for node in [*obj.caps.slots.values(), *vs.pages.values(), *vs.io.values()]:
                    if node.space is not None:
                        self.mdb_remove(node, include_self=True)
                for th in list(obj.threads):
                    self._kill(th, None, "task deleted")
                cpu = self.guest_cpus.pop(obj.kid, None)
                if cpu is not None:
                    cpu.close()  # its unicorn instance: the largest thing a dead task leaves
            case Reply():
                caller = obj.caller
                obj.caller = None
                if caller is not None and caller.state is _RECV and caller.partner is obj:
                    self._ipc_fail(caller, IpcErr.REABORTED)
            case _:
                pass

    @staticmethod
    def _uncharge(f: Factory | None, n: int) -> None:
        """Return ``n`` bytes to factory ``f`` -- and through destroyed factories to the
        first live ancestor, which paid for their objects."""
        while f is not None:
            f.used -= n
            if f.alive:
                return
            f = f.factory

    def _kill(self, th: Thread, code: int | None, reason: str) -> None:
        """Stop ``th`` for good: off its core, partners told, coroutine closed."""
        if th.state is _DEAD:
            return
        self._unblock(th)
        self._deschedule(th)
        if th.resv is not None:
            self._resv_cancel(th.resv)
        th.state = _DEAD
        th.exit_code = code
        th.redo = None
        if th.coro is not None:
            coro, th.coro = th.coro, None
            _close(coro)
        for s in list(th.snd_queue):
            self._ipc_fail(s, IpcErr.SEABORTED)
        self._drop_reply(th)
        for irq in th.pending_irqs:
            irq.pending = False
        th.pending_irqs.clear()
        if th.task is not None and th in th.task.threads:
            th.task.threads.remove(th)
        for other in self.threads:
            if other.state is _RECV and other.partner is th:
                self._ipc_fail(other, IpcErr.REABORTED)
        if self.tracer is not None:
            self._trace(th.cpu, "exit", th.kid, code=code, reason=reason)

    def _drop_reply(self, th: Thread) -> None:
        """``th`` gives up its implicit reply capability: its caller is aborted."""
        r = th.reply
        th.reply = None
        if r is not None:
            caller = r.caller
            r.caller = None
            if caller is not None and caller.state is _RECV and caller.partner is r:
                self._ipc_fail(caller, IpcErr.REABORTED)

    # ---------------------------------------------------------- boot interface
    def _charge_new(self, obj: KObject, factory: Factory | None, size: int) -> None:
        obj.factory = factory
        obj.charge = size
        if factory is not None:
            factory.used += size

    def create_factory(self, limit: int, parent: Factory | None = None) -> Factory:
        f: Factory = self._new(Factory, limit)
        self._charge_new(f, parent, Factory.SIZE + limit if parent is not None else 0)
        return f

    def create_task(self, name: str, factory: Factory | None = None) -> Task:
        t: Task = self._new(Task, name)
        self._charge_new(t, factory, Task.SIZE)
        self.tasks.append(t)
        return t

    def create_thread(self, name: str, task: Task | None, factory: Factory | None = None) -> Thread:
        th: Thread = self._new(Thread, name)
        self._charge_new(th, factory, Thread.SIZE)
        if task is not None:
            th.task = task
            task.threads.append(th)
        self.threads.append(th)
        if self.tracer is not None:
            self._trace(-1, "thread", th.kid, name=name, task=task.name if task else "")
        return th

    def _boot_cap(self, task: Task, slot: int, obj: KObject) -> None:
        """A capability the boot hands out: the first one of an object is its root,
        later ones (the log, sigma0's thread as the root task's pager) derive from it,
        so every object keeps a single derivation tree."""
        first = self._boot_roots.get(obj.kid)
        if first is not None and first.space is not None:
            self.cap_map(first, task, slot, Rights.RWSD, grant=False)
            return
        e = self.cap_insert(task, slot, obj, Rights.RWSD, None)
        assert e is not None
        self._boot_roots[obj.kid] = e

    def create_sigma0(self, entry: Entry, prio: int = 200, cpu: int = 0) -> Thread:
        """Create sigma0, the root pager: its space holds every frame and port.

        Its capabilities: task 1, thread 3, log 5.  Its program decides who
        gets which frame (``l4sim.runtime.sigma0``).
        """
        task = self.create_task("sigma0")
        task.vspace.sigma0 = True
        th = self.create_thread("sigma0", task)
        for slot, obj in ((1, task), (3, th), (5, self.log)):
            self._boot_cap(task, slot, obj)
        task.code.append(entry)
        self.start(th, 0, 0, prio=prio, cpu=cpu)
        return th

    def create_root(self, name: str, entry: Entry, prio: int = 100, cpu: int = 0,
                    quota: int = ROOT_QUOTA, pager: KObject | None = None) -> Thread:
        """Create the root task: all initial capabilities, one thread at ``entry``.

        The root's capability slots follow Fiasco's initial layout (task 1,
        factory 2, thread 3, pager 4, log 5, ICU 6, scheduler 7); ``pager``
        (normally sigma0's thread) becomes slot 4 and the thread's pager.
        """
        factory = self.create_factory(quota)
        task = self.create_task(name, factory)
        th = self.create_thread(name, task, factory)
        caps: list[tuple[int, KObject]] = [
            (1, task), (2, factory), (3, th), (5, self.log), (6, self.icu), (7, self.scheduler)]
        if pager is not None:
            caps.append((4, pager))
            th.pager_slot = 4
        for slot, obj in caps:
            self._boot_cap(task, slot, obj)
        task.code.append(entry)
        self.start(th, 0, 0, prio=prio, cpu=cpu)
        return th

    def start(self, th: Thread, ip: int, sp: int, prio: int | None = None, cpu: int | None = None) -> None:
        """Host-side start of a bound thread (what run_thread + ex_regs do)."""
        assert th.task is not None, "a thread must be bound to a task to start"
        if prio is not None:
            th.prio = prio
        if cpu is not None:
            th.cpu = cpu
            th.cpus = 1 << cpu
        th.ip = ip
        th.coro = th.task.code[ip](sp)
        th.started_at = self.now()
        self._make_ready(th)

    # ----------------------------------------------------------------- the loop
    def run(self, until: int | None = None, max_events: int | None = None,
            stop: Callable[[], bool] | None = None) -> str:
        """Run until no event is left, simulated time ``until``, ``max_events``, or ``stop()``.

        Returns why it stopped: ``"idle"``, ``"until"``, ``"events"`` or ``"stop"``.
        """
        ev = self.events
        n = 0
        while True:
            if stop is not None and stop():
                self._settle_idle(ev.now)
                return "stop"
            t = ev.next_time()
            if t is None:
                if until is not None and until > ev.now:
                    ev.now = until  # nothing happens until then: time just passes
                self._settle_idle(ev.now)
                return "idle"
            if until is not None and t > until:
                ev.now = max(ev.now, until)
                self._settle_idle(ev.now)
                return "until"
            if max_events is not None and n >= max_events:
                return "events"
            e = ev.pop()
            assert e is not None
            e.fn(*e.args)
            n += 1

    def shutdown(self) -> None:
        """Close every program still alive (the machine is switched off).

        Nothing runs afterwards; closing the coroutines lets their frames go
        at once instead of at garbage collection.
        """
        for th in self.threads:
            if th.coro is not None:
                coro, th.coro = th.coro, None
                _close(coro)

    def _settle_idle(self, t: int) -> None:
        for core in self.cores:
            if core.idle_since is not None and t > core.idle_since:
                core.idle_ns += t - core.idle_since
                core.idle_since = t

    def _kick(self, core: Core, t: int) -> None:
        """Make ``core`` reconsider its choice at time ``t``: wakes it, cuts a computation."""
        ev = core.step_ev
        if ev is None:
            if core is self.running:
                return
            t = max(core.time, t)
            if core.idle_since is not None:
                core.idle_ns += max(0, t - core.idle_since)
                core.idle_since = None
            core.time = t
            core.step_ev = self.events.at(t, self._step, core, prio=PRIO_CORE)
        elif core.computing:
            t = max(t, core.comp_start)
            if ev.time <= t:
                return
            cur = core.current
            assert cur is not None, "a computing core has a current thread"
            undone = ev.time - t
            cur.compute_left += undone
            cur.quantum_left += undone
            cur.cpu_ns -= undone
            r = cur.reply
            if r is not None and r.caller is not None:
                self._lend(r.caller, -undone)
            core.time = t
            ev.cancel()
            core.computing = False
            core.step_ev = self.events.at(t, self._step, core, prio=PRIO_CORE)

    def _make_ready(self, th: Thread, delay: int = 0) -> None:
        """``th`` becomes runnable on its core; preempts a lower-priority current.

        A reserved thread without budget left becomes DEPLETED instead (it is
        made ready again at its replenishment).
        """
        if th.prio >= RESV_BASE and (th.quantum_left < 0 or (th.quantum_left == 0 and th.compute_left)):
            th.state = _DEPLETED
            if self.tracer is not None:
                self._trace(th.cpu, "depleted", th.kid, budget=th.resv.budget)
            return
        th.state = _READY
        core = self.cores[th.cpu]
        core.enqueue(th)
        if self.tracer is not None:
            self._trace(th.cpu, "wake", th.kid)
        if core is not self.running:
            cur = core.current
            if (cur is None or th.prio > cur.prio
                    or (th.prio == EDF_LEVEL and cur.prio == EDF_LEVEL and th.resv.key < cur.resv.key)):
                if self.running is not None:
                    delay += self.costs.ipi  # another core is told by an inter-processor interrupt
                self._kick(core, self.now() + delay)

    def _deschedule(self, th: Thread) -> None:
        """``th`` stops being runnable: out of its ready queue, or its core re-decides."""
        on = self._current_on(th)
        if on is not None:
            self._kick(on, self.now())  # the core's step switches away from it
        else:
            self.cores[th.cpu].remove(th)

    def _switch(self, core: Core, old: Thread | None, new: Thread | None) -> None:
        core.current = new
        if self.tracer is not None:
            self._trace(core.id, "switch", new.kid if new is not None else -1,
                        **{"from": old.kid if old is not None else -1})
        if new is None:
            return
        cost = self.costs.context_switch
        if old is None or old.task is not new.task:
            cost += self.costs.space_switch
        core.time += cost
        new.cpu_ns += cost
        r = new.reply
        if r is not None and r.caller is not None:  # switching to a server for a call
            self._lend(r.caller, cost)
        core.switches += 1
        new.switches += 1
        self.context_switches += 1

    def _pick(self, core: Core) -> Thread | None:
        """Choose the thread ``core`` runs next and switch to it.

        Highest level first; at quantum expiry the current best-effort thread
        goes to the tail of its priority (round robin); a preempted thread
        keeps its place at the head.  Reserved threads do not rotate (their
        quantum is their budget); at the EDF level an earlier deadline
        preempts.  A thread migrated away while current here is handed to its
        new core.
        """
        prev = core.current
        cur = prev
        if cur is not None and (cur.state is not _READY or cur.cpu != core.id):
            if cur.state is _READY:  # migrated while it ran here
                other = self.cores[cur.cpu]
                other.enqueue(cur)
                if other.current is None or cur.prio > other.current.prio:
                    self._kick(other, core.time)
            cur = None
        bits = core.bits
        if bits:
            top = bits.bit_length() - 1
            if cur is None or top > cur.prio or (top == cur.prio and (
                    (cur.quantum_left <= 0 and top < RESV_BASE)
                    or (top == EDF_LEVEL and core.queues[EDF_LEVEL].first_key() < cur.resv.key))):
                if cur is not None:
                    if cur.quantum_left <= 0 and cur.prio < RESV_BASE:
                        cur.quantum_left = cur.quantum
                        core.enqueue(cur)  # round robin: to the tail
                    else:
                        core.enqueue(cur, head=True)  # preempted: keeps its place
                cur = core.dequeue_top()
        if cur is not prev:
            self._switch(core, prev, cur)
        if cur is not None and cur.quantum_left <= 0 and cur.prio < RESV_BASE:
            cur.quantum_left = cur.quantum
        return cur

    def _step(self, core: Core) -> None:
        """Run ``core`` from now until it idles, computes, or must let an event in."""
        core.step_ev = None
        core.computing = False
        if core.time < self.events.now:
            core.time = self.events.now
        self.running = core
        try:
            self._loop(core, None)
        finally:
            self.running = None

    def _loop(self, core: Core, inhook: Thread | None) -> bool:
        """The body of :meth:`_step`: run the current thread's traps, one after another.

        Each iteration runs the current thread if nothing forces a new choice
        (the fast check below), else :meth:`_pick` decides; then the thread
        either continues its computation or executes its next trap.

        ``inhook`` is a guest thread whose system call is being delivered
        from inside its CPU's syscall hook (see :mod:`l4sim.kernel.guest`):
        then this loop runs native threads only and returns True as soon as
        ``inhook`` is the thread to run next, so the hook can resume it
        without leaving emulation; it returns False, having done nothing of
        the step in hand, whenever the outer loop must take over (an idle
        core, an event due, a computation, a retried access, another guest
        thread).  The outer loop then repeats the same checks and goes on
        exactly where this one stopped: both ways give the same run.
        """
        ev = self.events
        heap = ev._heap  # read directly: the bound on running ahead (hot loop)
        traps = self._traps
        cid = core.id
        ready = _READY
        while True:
            cur = core.current
            if (cur is None or cur.state is not ready or cur.cpu != cid or cur.quantum_left <= 0
                    or (core.bits and core.bits.bit_length() - 1 >= cur.prio)):
                if cur is not None and cur.resv is not None and cur.quantum_left <= 0:
                    self._budget_check(core, cur)
                cur = self._pick(core)
                if cur is None:
                    if inhook is None:
                        core.idle_since = core.time
                    return False
            if heap and core.time > heap[0][0]:
                if inhook is None:
                    core.step_ev = ev.at(core.time, self._step, core, prio=PRIO_CORE)
                return False
            if cur.compute_left:
                if inhook is not None:
                    return False
                run = cur.compute_left if cur.compute_left < cur.quantum_left else cur.quantum_left
                cur.compute_left -= run
                core.comp_start = core.time
                self._charge(core, cur, run)
                core.computing = True
                core.step_ev = ev.at(core.time, self._step, core, prio=PRIO_CORE)
                return False
            # --- execute one trap of the current thread
            redo = cur.redo
            if redo is not None:  # a faulting access, retried after its fault IPC
                if inhook is not None:
                    return False
                cur.redo = None
                answer = cur.resume
                cur.resume = None
                if type(answer) is Msg and (answer.error or answer.proto < 0):  # the pager refused
                    cur.redo = redo
                    self._exception(core, cur, TRAP_PAGE_FAULT, answer.error or -answer.proto, (),
                                    "page fault not resolved")
                else:
                    traps[type(redo)](core, cur, redo)
                continue
            if cur.guest is not None:  # x86-64 code on the guest CPU executor
                if inhook is not None:
                    return cur is inhook
                if cur.guest.run(self, core, cur):
                    # a whole slice ran: back to the event loop, so its checks (a run's stop
                    # condition, a key typed at the host) see a core that spins with nothing else due
                    core.step_ev = ev.at(core.time, self._step, core, prio=PRIO_CORE)
                    return False
                continue
            coro = cur.coro
            if coro is None:
                self._kill(cur, None, "no code to resume")
                continue
            try:
                trap = coro.send(cur.resume)
            except StopIteration as stop:
                cur.coro = None
                self._kill(cur, stop.value if type(stop.value) is int else 0, "exit")
                continue
            except Exception as exc:  # the program raised: exception IPC
                cur.coro = None
                self._exception(core, cur, TRAP_PY_EXCEPTION,
                                zlib.crc32(type(exc).__name__.encode()), (), repr(exc))
                continue
            cur.resume = None
            cur.traps += 1
            handler = traps.get(type(trap))
            if handler is None:
                self._exception(core, cur, TRAP_BAD_TRAP, 0, (), f"not a trap: {type(trap).__name__}")
                continue
            handler(core, cur, trap)

    # ------------------------------------------------------------ guest threads
    def create_guest_thread(self, task: Task, name: str, regs: dict[str, int], exc_handler_slot: int = 0,
                            pager_slot: int = 0, prio: int = 1, cpu: int = 0) -> Thread:
        """Host-side start of an x86-64 guest thread in ``task`` (see :mod:`l4sim.kernel.guest`).

        ``regs`` names initial registers (``rip`` required; see ``guest.REGS``);
        the slots name, in ``task``'s capability space, the exception handler
        (which receives its system calls) and the pager.
        """
        from l4sim.kernel.guest import create_guest_thread

        return create_guest_thread(self, task, name, regs, exc_handler_slot, pager_slot, prio, cpu)

    # ------------------------------------------------------------- simple traps
    def _sys_compute(self, core: Core, th: Thread, t: Compute) -> None:
        ns = t.ns
        if type(ns) is not int or ns < 0:
            self._exception(core, th, TRAP_BAD_TRAP, 1, (), "compute(ns) needs an int >= 0")
            return
        th.compute_left += ns

    def _sys_clock(self, core: Core, th: Thread, t: Clock) -> None:
        self._charge(core, th, self.costs.clock_read)
        th.resume = core.time

    def _sys_load_code(self, core: Core, th: Thread, t: LoadCode) -> None:
        self._charge(core, th, self.costs.syscall + self.costs.kobject_op)
        e = self._lookup(th, t.task)
        if e is None:
            th.resume = -Err.ENOENT
        elif type(e.obj) is not Task or not e.rights & Rights.W or not callable(t.entry):
            th.resume = -Err.EPERM
        else:
            task: Task = e.obj
            task.code.append(t.entry)
            th.resume = len(task.code) - 1

    def _sys_save_reply(self, core: Core, th: Thread, t: SaveReply) -> None:
        self._charge(core, th, self.costs.syscall + self.costs.map_per_entry)
        r = th.reply
        task = th.task
        if task is None or not (type(t.slot) is int and 0 < t.slot < CAP_SLOTS):
            th.resume = -Err.EINVAL
        elif r is None or r.caller is None:
            th.resume = -Err.ENOENT
        else:
            th.reply = None
            self.objects_alive += 1  # a saved reply is an object with a capability
            r.alive = True
            self.cap_insert(task, t.slot, r, Rights.W, None)
            th.resume = 0

    def _sys_fault(self, core: Core, th: Thread, t: Fault) -> None:
        words = t.words
        if not (type(t.trapno) is int and type(t.code) is int and 0 <= t.trapno <= WORD_MASK
                and 0 <= t.code <= WORD_MASK and self._words_ok(words) and len(words) <= MSG_WORDS - 4):
            self._fail_now(core, th, IpcErr.SEMSGCUT)
            return
        self._exception(core, th, t.trapno, t.code, words, "fault")

    # --------------------------------------------------------- memory and ports
    def _sys_mem(self, core: Core, th: Thread, t: MemAccess) -> None:
        """A load or store of a native program: copy, or fault to the pager."""
        addr, n, data = t.addr, t.n, t.data
        costs = self.costs
        if (type(addr) is not int or type(n) is not int or not 0 <= n <= MAX_ACCESS or addr < 0
                or addr + n > 1 << 64 or (data is not None and (type(data) is not bytes or len(data) != n))):
            self._exception(core, th, TRAP_GP, 0, (), "bad memory access arguments")
            return
        self._charge(core, th, costs.mem_access + costs.mem_per_kib * (n >> 10))
        task = th.task
        assert task is not None
        vs = task.vspace
        write = data is not None
        miss = first_missing(vs, addr, n, _MEM_W if write else _MEM_R,
                             (lambda vpn: self.sigma0_root(task, vpn)) if vs.sigma0 else None)
        if miss is not None:
            fault_addr, m = miss
            self._page_fault(core, th, t, fault_addr, write, m is not None)
            return
        mem = self.machine.mem
        if write:
            assert data is not None
            write_frames(mem, task, addr, data)
            if self.code_watch:
                self._written(task, addr, n)
        else:
            th.resume = read_frames(mem, task, addr, n)

    def _written(self, task: Task, addr: int, n: int) -> None:
        """A native program wrote ``n`` bytes at ``addr`` of ``task``: code translated from
        those frames is stale."""
        pages = task.vspace.pages
        watch = self.code_watch
        for vpn in range(addr >> 12, ((addr + n - 1) >> 12) + 1 if n else addr >> 12):
            m = pages.get(vpn)
            if m is not None and m.pfn in watch:
                self.code_written(m.pfn)

    def _page_fault(self, core: Core, th: Thread, t: Any, addr: int, write: bool, present: bool) -> None:
        """Turn a faulting access into page-fault IPC to the pager (or an exception)."""
        th.pfaults += 1
        self._charge(core, th, self.costs.page_fault)
        th.redo = t
        word0 = (addr & ~7) | (PF_WRITE if write else 0) | (PF_PRESENT if present else 0)
        pe = self._lookup(th, th.pager_slot) if th.pager_slot else None
        dest = None
        if pe is not None:
            obj = pe.obj
            dest = obj if type(obj) is Thread else (obj.thread if type(obj) is IpcGate else None)
        if self.tracer is not None:
            self._trace(core.id, "pagefault", th.kid, addr=addr, write=int(write), present=int(present),
                        pager=dest.kid if dest is not None else -1)
        if dest is None or dest.state is _DEAD:
            self._exception(core, th, TRAP_PAGE_FAULT, word0 & 7, (addr,), "page fault without a pager")
            return
        self._sys_ipc(core, th, Ipc(th.pager_slot, CALL_FLAGS, int(Proto.PAGE_FAULT), (word0, th.traps),
                                    rcv=(FPAGE_ALL_MEMORY,)))

    def _sys_io(self, core: Core, th: Thread, t: IoAccess) -> None:
        """An in/out instruction: allowed only on ports mapped into the task."""
        port, value = t.port, t.value
        if type(port) is not int or not 0 <= port < IO_PORTS or (
                value is not None and (type(value) is not int or not 0 <= value <= 0xFF)):
            self._exception(core, th, TRAP_GP, 0, (), "bad port access arguments")
            return
        self._charge(core, th, self.costs.io_access)
        task = th.task
        assert task is not None
        m = task.vspace.io.get(port)
        if m is None and task.vspace.sigma0:
            m = self.sigma0_root(task, port, io=True)
        if m is None or not m.rights & (MemRights.W if value is not None else MemRights.R):
            th.redo = t  # a handler that maps the port and resumes gets the access retried
            self._exception(core, th, TRAP_GP, port, (port,), f"I/O port {port:#x} not mapped")
            return
        handlers = self.machine.ports.get(port)
        if value is None:
            th.resume = handlers[0](port) if handlers is not None else 0xFF
        elif handlers is not None:
            handlers[1](port, value)

    # -------------------------------------------------------------- exceptions
    def _exception(self, core: Core, th: Thread, trapno: int, code: int, extra: tuple[int, ...],
                   why: str) -> None:
        """Turn a fault of ``th`` into exception IPC to its handler, or stop it.

        The message (protocol label -5) carries trap number, error code, the
        native instruction pointer (entry ip and trap count) and any extra
        words.  The handler's reply resumes the thread when its label is 0 (a
        ``Fault`` trap returns the reply); any other label, or a failed
        exception IPC, kills it.  A thread whose Python code raised has no
        frame to resume: unless the handler restarts it with ex_regs first, a
        resuming reply ends it.
        """
        self.exceptions += 1
        self._charge(core, th, self.costs.exception)
        he = self._lookup(th, th.exc_slot) if th.exc_slot else None
        dest = None
        if he is not None:
            obj = he.obj
            if type(obj) is Thread:
                dest = obj
            elif type(obj) is IpcGate:
                dest = obj.thread
        if self.tracer is not None:
            self._trace(core.id, "exception", th.kid, trapno=trapno, code=code,
                        handler=dest.kid if dest is not None else -1, why=why)
        if dest is None or dest.state is _DEAD:
            th.faulted = True
            if th.coro is None:
                self._kill(th, None, f"unhandled exception: {why}")
            else:
                th.state = _INACTIVE  # stopped; ex_regs may restart it
                if self.tracer is not None:
                    self._trace(core.id, "exit", th.kid, code=None, reason=f"stopped: {why}")
            return
        th.exc_pending = 1
        self._sys_ipc(core, th, Ipc(th.exc_slot, SEND | RECV, int(Proto.EXCEPTION),
                                    (trapno, code, th.ip, th.traps, *extra)))

    # --------------------------------------------------------------------- IPC
    def _lookup(self, th: Thread, slot: int) -> CapEntry | None:
        task = th.task
        if task is None or type(slot) is not int:
            return None
        return task.caps.slots.get(slot)

    @staticmethod
    def _words_ok(words: Any) -> bool:
        if type(words) is not tuple:
            return False
        for w in words:
            if type(w) is not int or w < 0 or w > WORD_MASK:
                return False
        return True

    @staticmethod
    def _plain(t: Ipc) -> bool:
        """Copy int-subclass values (an IntEnum op code, say) into plain ints.

        The kernel hands receivers machine words, never the sender's objects.
        Returns False when some word or the label is not an int at all.
        """
        if type(t.words) is tuple:
            for w in t.words:
                if type(w) is not int:
                    if not isinstance(w, int) or isinstance(w, bool):
                        return False
                    t.words = tuple(int(x) if isinstance(x, int) and not isinstance(x, bool) else x
                                    for x in t.words)
                    break
        if type(t.proto) is not int:
            if not isinstance(t.proto, int) or isinstance(t.proto, bool):
                return False
            t.proto = int(t.proto)
        return True

    def _ipc_ok(self, t: Ipc) -> bool:
        """Decode an IPC's arguments: label, words, items, timeouts, buffers."""
        if not self._plain(t):
            return False
        words, items = t.words, t.items
        if type(t.flags) is not int or type(t.proto) is not int or not LABEL_MIN <= t.proto <= LABEL_MAX:
            return False
        if not self._words_ok(words) or type(items) is not tuple or type(t.rcv) is not tuple:
            return False
        if len(words) + 2 * len(items) > MSG_WORDS:
            return False
        for it in items:
            if type(it) is MapItem:
                if not _fpage_ok(it.fpage) or type(it.snd_base) is not int or type(it.grant) is not bool:
                    return False
            elif type(it) is not StrItem or not _range_ok(it.addr, it.length):
                return False
        for v in (t.timeout, t.rcv_timeout):
            if v is not None and (type(v) is not int or v < 0):
                return False
        for b in t.rcv:
            if not _fpage_ok(b) and (type(b) is not StrBuf or not _range_ok(b.addr, b.length)):
                return False
        return True

    def _fail_now(self, core: Core, th: Thread, code: int) -> None:
        """The running thread's IPC ends at once with ``code``."""
        self._charge(core, th, self.costs.error_path)
        if self.tracer is not None:
            self._trace(core.id, "ipc_err", th.kid, code=int(code), phase="recv" if code & 1 else "send")
        th.resume = Msg(error=code)
        if th.exc_pending:
            th.exc_pending = 0
            self._exc_failed(th, th.resume)

    def _ipc_fail(self, th: Thread, code: int) -> None:
        """A blocked thread's IPC ends with ``code``: it leaves its queue and wakes."""
        if th.state is not _SEND and th.state is not _RECV:
            return
        self._unblock(th)
        if self.tracer is not None:
            self._trace(th.cpu, "ipc_err", th.kid, code=int(code), phase="recv" if code & 1 else "send")
        self._wake(th, Msg(error=code))

    def _unblock(self, th: Thread) -> None:
        """Abandon ``th``'s IPC in progress, leaving no reference to it behind."""
        if th.state is _SEND:
            target = th.snd_target
            if target is not None and th in target.snd_queue:
                target.snd_queue.remove(th)
        elif th.state is _RECV:
            p = th.partner
            if type(p) is Reply:
                p.caller = None
        th.snd_target = None
        th.snd_trap = None
        th.snd_items = ()
        th.partner = None
        if th.timeout_ev is not None:
            th.timeout_ev.cancel()
            th.timeout_ev = None

    def _wake(self, th: Thread, msg: Msg) -> None:
        """A blocked thread's IPC has ended with ``msg``; it becomes runnable."""
        if th.timeout_ev is not None:
            th.timeout_ev.cancel()
            th.timeout_ev = None
        th.partner = None
        th.resume = msg
        if th.exc_pending:
            th.exc_pending = 0
            if msg.error or msg.proto != 0:
                self._exc_failed(th, msg)
                return
        if th.state is _SEND or th.state is _RECV:
            self._make_ready(th)

    def _exc_failed(self, th: Thread, msg: Msg) -> None:
        self._kill(th, None, "killed by its exception handler" if msg.error == 0
                   else f"exception IPC failed (error {msg.error:#x})")

    def _block(self, th: Thread, state: TS, timeout: int | None, on: int) -> None:
        th.state = state
        if timeout is not None:
            th.timeout_ev = self.events.at(self.now() + timeout, self._timeout, th, prio=PRIO_TIMEOUT)
        if self.tracer is not None:
            self._trace(th.cpu, "block", th.kid, state="send" if state is _SEND else "recv", on=on)

    def _timeout(self, th: Thread) -> None:
        th.timeout_ev = None
        if th.state is _SEND:
            self._ipc_fail(th, IpcErr.SETIMEOUT)
        elif th.state is _RECV:
            self._ipc_fail(th, IpcErr.RETIMEOUT)

    def _sys_ipc_fast(self, core: Core, th: Thread, t: Ipc) -> None:
        """The IPC fastpath: a call to a waiting server, a reply to a waiting caller.

        Like the fastpaths of Fiasco and seL4, it handles only the common
        case -- untyped words, no items, no receive buffers or timeouts, the
        partner already waiting -- and hands the core straight to the partner
        when it may run next (a direct switch, no ready-queue round trip).
        Everything else, including every error, takes :meth:`_sys_ipc`.  The
        effects and the charged time are exactly those of the full path.
        """
        flags = t.flags
        words = t.words
        proto = t.proto
        if (type(flags) is not int or t.items != () or t.rcv != () or t.rcv_timeout is not None
                or type(words) is not tuple
                or len(words) > MSG_WORDS or type(proto) is not int or not LABEL_MIN <= proto <= LABEL_MAX):
            self._sys_ipc(core, th, t)
            return
        for w in words:
            if type(w) is not int or w < 0 or w > WORD_MASK:
                self._sys_ipc(core, th, t)
                return
        if flags == CALL_FLAGS:
            if t.timeout is not None or type(t.cap) is not int:
                self._sys_ipc(core, th, t)
                return
            entry = th.task.caps.slots.get(t.cap)  # type: ignore[union-attr]
            if entry is None or type(entry.obj) is not IpcGate or proto == _PROTO_KOBJECT:
                self._sys_ipc(core, th, t)
                return
            gate: IpcGate = entry.obj
            dest = gate.thread
            if dest is None or dest.state is not _RECV or dest.partner is not None or dest is th:
                self._sys_ipc(core, th, t)
                return
            self._fast_call_to(core, th, dest, proto, words, gate.label | (entry.rights & 3))
            return
        elif flags == REPLY_AND_WAIT:
            r = th.reply
            if (t.timeout or r is None or th.pending_irqs or th.snd_queue):
                self._sys_ipc(core, th, t)
                return
            peer = r.caller
            if peer is None or peer.state is not _RECV or peer.partner is not r or (
                    peer.exc_pending and proto != 0):  # a refusing exception reply kills: full path
                self._sys_ipc(core, th, t)
                return
            peer.exc_pending = 0  # an exception reply with label 0 resumes, as _wake does
            th.reply = None
            r.caller = None
            r.used = True
            th.partner = None
            label = 0
        else:
            self._sys_ipc(core, th, t)
            return
        self._fast_perform(core, th, peer, proto, words, label, False)

    def _fast_call(self, core: Core, th: Thread, slot: int, proto: int, words: tuple[int, ...]) -> None:
        """A call the kernel itself makes for ``th`` (a guest's system-call exception IPC):
        the fastpath without decoding words it built, else the full path."""
        entry = th.task.caps.slots.get(slot)  # type: ignore[union-attr]
        if entry is not None and type(entry.obj) is IpcGate:
            dest = entry.obj.thread
            if dest is not None and dest.state is _RECV and dest.partner is None and dest is not th:
                self._fast_call_to(core, th, dest, proto, words, entry.obj.label | (entry.rights & 3))
                return
        self._sys_ipc(core, th, Ipc(slot, CALL_FLAGS, proto, words))

    def _fast_call_to(self, core: Core, th: Thread, dest: Thread, proto: int, words: tuple[int, ...],
                      label: int) -> None:
        """The fastpath's call: a use-once reply capability for ``th``, then the transfer."""
        r = Reply(self._next_kid(), th)
        r.alive = False
        if dest.reply is not None:
            self._drop_reply(dest)
        dest.reply = r
        th.partner = r
        self._fast_perform(core, th, dest, proto, words, label, True)

    def _fast_perform(self, core: Core, th: Thread, peer: Thread, proto: int, words: tuple[int, ...],
                      label: int, call: bool) -> None:
        """The fastpath's effect: copy, count, wake the peer, block ``th`` in its receive."""
        costs = self.costs
        ns = costs.syscall + costs.ipc_base + costs.ipc_per_word * len(words)
        core.time += ns
        th.quantum_left -= ns
        th.cpu_ns += ns
        if call:
            r = th.reply
            if r is not None and r.caller is not None:  # a server calling on a client's behalf
                self._lend(r.caller, ns)
        else:  # a reply is the server's work for the caller (as in _deliver)
            r = peer.reply
            if r is None or r.caller is None:
                peer.served_ns += ns  # the caller is no server itself: the common case
            else:
                self._lend(peer, ns)
        self.ipc_count += 1
        th.ipcs += 1
        peer.ipcs += 1
        tracer = self.tracer
        if tracer is not None:
            self._flow += 1
            self._trace(core.id, "ipc", th.kid, to=peer.kid, proto=proto, label=label, words=len(words),
                        items=0, flow=self._flow, op="call" if call else "reply")
            self._trace(peer.cpu, "recv", peer.kid, **{"from": th.kid, "flow": self._flow})
        if peer.timeout_ev is not None:
            peer.timeout_ev.cancel()
            peer.timeout_ev = None
        peer.partner = None
        peer.resume = _new_msg(Msg, (0, proto, words, label, ()))  # Msg(...) without its Python __new__
        th.rcv_bufs = ()
        th.state = _RECV
        if tracer is not None:
            self._trace(core.id, "block", th.kid, state="recv", on=peer.kid if call else -1)
        peer.state = _READY
        bits = core.bits
        if peer.cpu == core.id and not (bits and bits.bit_length() - 1 >= peer.prio):
            # direct switch: the peer is what the scheduler would pick next anyway
            self._switch(core, th, peer)
            if tracer is not None:
                self._trace(core.id, "wake", peer.kid)
        else:
            self._make_ready(peer)

    def _sys_ipc(self, core: Core, th: Thread, t: Ipc) -> None:
        """``l4_ipc``: look up, decode, then the send phase and the receive phase."""
        self._charge(core, th, self.costs.syscall)
        if type(t) is not Ipc or not self._ipc_ok(t):
            self._fail_now(core, th, IpcErr.SEMSGCUT)
            return
        flags = t.flags
        if flags & SEND:
            entry = self._lookup(th, t.cap)
            if entry is None:
                self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
                return
            obj = entry.obj
            typ = type(obj)
            if typ is IpcGate and t.proto == _PROTO_KOBJECT:
                self._kernel_invoke(core, th, entry, t)  # an operation on the gate itself
                return
            if typ is IpcGate:
                dest = obj.thread  # type: ignore[attr-defined]
                label = obj.label | (entry.rights & 3)  # type: ignore[attr-defined]
            elif typ is Thread and t.proto != Proto.THREAD:
                dest, label = obj, 0
            elif typ is Reply:
                self._reply_saved(core, th, t, entry)
                return
            else:
                self._kernel_invoke(core, th, entry, t)
                return
            if dest is None or dest.state is _DEAD:
                self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
                return
            self._send(core, th, dest, label, obj, t)
        elif flags & REPLY:
            r = th.reply
            if r is None or r.caller is None:
                self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
                return
            th.reply = None
            if self._reply(core, th, r, t) and flags & RECV and th.state is not _DEAD:
                self._receive(core, th, t)
        elif flags & RECV:
            self._receive(core, th, t)
        else:
            th.resume = MSG_OK  # an IPC with neither phase does nothing

    def _kernel_invoke(self, core: Core, th: Thread, entry: CapEntry, t: Ipc) -> None:
        """Invoke a kernel object: the answer is immediate, as a reply message."""
        obj = entry.obj
        inv = self._kinvoke.get(type(obj))
        if inv is None:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return
        self.kinvokes += 1
        self._charge(core, th, self.costs.kobject_op)
        if t.proto != obj.PROTO:
            msg = self._err(Err.ENOSYS)  # wrong protocol for this object
        elif not t.words:
            msg = self._err(Err.EINVAL)
        else:
            coro = th.coro
            msg = inv(th, entry, t)
            if th.coro is not coro:  # ex_regs gave the caller itself a new entry: it starts afresh
                if self.tracer is not None:
                    self._trace(core.id, "kinv", th.kid, obj=obj.KIND, op=t.words[0], err=0)
                th.resume = None
                return
        if self.tracer is not None:
            self._trace(core.id, "kinv", th.kid, obj=obj.KIND, op=t.words[0] if t.words else -1,
                        err=msg.proto)
        th.resume = msg

    def _send(self, core: Core, th: Thread, dest: Thread, label: int, via: KObject, t: Ipc) -> None:
        """Send phase: hand the message over if ``dest`` waits for it, else queue."""
        if dest.state is _RECV and (dest.partner is None or dest.partner is th):
            err = self._deliver(core, th, dest, label, t.proto, t.words, t.items, t.flags)
            if err:
                th.resume = Msg(error=err)
            elif t.flags & RECV:
                self._rcv_phase(core, th, dest, t, running=True)
            else:
                th.resume = MSG_OK
            return
        if t.timeout == 0:
            self._fail_now(core, th, IpcErr.SETIMEOUT)
            return
        th.snd_target = dest
        th.snd_via = via
        th.snd_label = label
        th.snd_trap = t
        dest.snd_queue.append(th)
        self._block(th, _SEND, t.timeout, dest.kid)

    def _rcv_phase(self, core: Core, th: Thread, dest: Thread, t: Ipc, running: bool) -> None:
        """``th`` finished sending to ``dest``; its receive phase starts.

        After a call the caller waits for the reply through a fresh reply
        capability held by ``dest``; after send-and-wait it waits openly.
        ``running`` says whether ``th`` is the thread executing this trap.
        The message's own items may have destroyed either side (they can
        replace a task's last capability): a dead sender has no receive
        phase, and a caller whose partner died is aborted, not left waiting.
        """
        if th.state is _DEAD:
            return
        if t.flags & OPEN_WAIT:
            if running:
                self._receive(core, th, t)
            else:
                th.state = _RECV
                self._receive_blocked(core, th, t)
            return
        if dest.state is _DEAD:
            if running:
                self._fail_now(core, th, IpcErr.REABORTED)
            else:
                th.state = _RECV
                self._ipc_fail(th, IpcErr.REABORTED)
            return
        r = Reply(self._next_kid(), th)
        r.alive = False  # not an object with capabilities until saved
        self._drop_reply(dest)
        dest.reply = r
        th.rcv_bufs = t.rcv
        if t.rcv_timeout == 0:
            r.caller = None
            if running:
                self._fail_now(core, th, IpcErr.RETIMEOUT)
            else:
                th.state = _RECV
                self._ipc_fail(th, IpcErr.RETIMEOUT)
            return
        th.partner = r
        self._block(th, _RECV, t.rcv_timeout, dest.kid)

    def _deliver(self, core: Core, snd: Thread, rcv: Thread, label: int, proto: int,
                 words: tuple[int, ...], items: tuple[MapItem | StrItem, ...], flags: int) -> int:
        """Copy a message into the receiver and wake it if it was blocked.

        Items are decoded completely before any is performed: if they do not
        fit the receiver's buffers, no item is transferred, the words are, and
        both sides see the error.  Returns the send-phase error (0 = success).
        """
        costs = self.costs
        payer = core.current or snd
        before = payer.cpu_ns
        self._charge(core, payer, costs.ipc_base + costs.ipc_per_word * len(words))
        s_err = r_err = 0
        filled: tuple[Any, ...] = ()
        if items:
            self._charge(core, payer, costs.ipc_per_item * len(items))
            plan, s_err, r_err = self._decode_items(snd, rcv, items)
            if not s_err:
                filled = self._perform_items(core, payer, plan)
        if flags & REPLY and not flags & SEND and (payer.reply is None or payer.reply.caller is None):
            self._lend(rcv, payer.cpu_ns - before)  # a reply is the server's work for the caller
        self.ipc_count += 1
        snd.ipcs += 1
        rcv.ipcs += 1
        if self.tracer is not None:
            self._flow += 1
            op = "reply" if flags & REPLY else ("call" if flags & RECV and not flags & OPEN_WAIT else "send")
            self._trace(core.id, "ipc", snd.kid, to=rcv.kid, proto=proto, label=label,
                        words=len(words), items=len(items), flow=self._flow, op=op)
            self._trace(rcv.cpu, "recv", rcv.kid, **{"from": snd.kid, "flow": self._flow})
        msg = Msg(r_err, proto, words, label, filled)
        if rcv.state is _RECV:
            self._wake(rcv, msg)
        else:
            rcv.resume = msg  # the receiver is the running thread itself
        return s_err

    def _plan_map(self, src: Task, fp: Fpage, dst: Task, win: Fpage, hot: int, grant: bool,
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
                    need += PT_SIZE * len({(dfirst + u - first) >> PT_SHIFT for u in units} - have.keys())
                if f.used + need > f.limit:
                    return IpcErr.SEMAPFAILED  # the receiver's kernel memory is exhausted
        rights = int(fp.rights) & int(win.rights) if kind != FpageType.OBJECT else fp.rights
        for u in units:
            plan.append((kind, src, u, dst, dfirst + (u - first), rights, grant))
        return 0

    def _decode_items(self, snd: Thread, rcv: Thread, items: tuple[Any, ...]) -> tuple[list[Any], int, int]:
        """Check every item against the receiver's buffers; changes nothing.

        Returns (plan, sender's error, receiver's error).  Items meet buffers
        in order.  A string item copies bytes between the spaces; the pages
        must be mapped (no page fault is resolved during the copy): a hole in
        the sender's string gives the sender SEMSGCUT and the receiver
        RESNDPFTO, a hole in the receiver's buffer the sender SERCVPFTO and
        the receiver REMSGCUT, a string longer than its buffer both MSGCUT.
        """
        bufs = rcv.rcv_bufs
        if len(items) > len(bufs):
            return [], IpcErr.SEMSGCUT, IpcErr.REMSGCUT
        stask, rtask = snd.task, rcv.task
        assert stask is not None and rtask is not None
        plan: list[Any] = []
        for it, buf in zip(items, bufs, strict=False):
            if type(it) is StrItem:
                if type(buf) is not StrBuf:
                    return [], IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED
                if it.length > buf.length:
                    return [], IpcErr.SEMSGCUT, IpcErr.REMSGCUT
                if it.length:
                    if first_missing(stask.vspace, it.addr, it.length, MemRights.R, None) is not None:
                        return [], IpcErr.SEMSGCUT, IpcErr.RESNDPFTO
                    if first_missing(rtask.vspace, buf.addr, it.length, MemRights.W, None) is not None:
                        return [], IpcErr.SERCVPFTO, IpcErr.REMSGCUT
                plan.append(("str", stask, it.addr, it.length, rtask, buf.addr))
                continue
            if type(buf) is not Fpage:
                return [], IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED
            err = self._plan_map(stask, it.fpage, rtask, buf, it.snd_base, it.grant, plan)
            if err:
                return [], err, err | 1
        return plan, 0, 0

    def _perform_map(self, plan: list[Any], core: Core | None = None, payer: Thread | None = None) -> list[Fpage]:
        """Carry out a decoded plan; returns the flexpages (one unit each) that arrived."""
        filled: list[Fpage] = []
        cost = self.costs.map_per_entry
        for entry in plan:
            if entry[0] == "str":  # long IPC: copy the bytes between the spaces
                _, src, addr, n, dst, daddr = entry
                mem = self.machine.mem
                write_frames(mem, dst, daddr, read_frames(mem, src, addr, n))
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

    def _perform_items(self, core: Core, payer: Thread, plan: list[Any]) -> tuple[Any, ...]:
        return tuple(self._perform_map(plan, core, payer))

    def _reply_saved(self, core: Core, th: Thread, t: Ipc, entry: CapEntry) -> None:
        """Send through a saved reply capability; it is used up either way."""
        r: Reply = entry.obj  # type: ignore[assignment]
        ok = r.caller is not None and self._reply(core, th, r, t)
        if entry.space is not None:
            self.mdb_remove(entry, include_self=True)
        if r.caller is None and not ok and th.resume is None:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
        if ok and t.flags & RECV and th.state is not _DEAD:
            self._receive(core, th, t)

    def _reply(self, core: Core, th: Thread, r: Reply, t: Ipc) -> bool:
        """Deliver a reply to the caller behind ``r``; True when it arrived."""
        caller = r.caller
        r.caller = None
        if caller is None or caller.state is not _RECV or caller.partner is not r:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return False
        err = self._deliver(core, th, caller, 0, t.proto, t.words, t.items, REPLY)
        th.resume = Msg(error=err) if err else MSG_OK
        return not err

    def _receive(self, core: Core, th: Thread, t: Ipc) -> None:
        """Receive phase of the running thread: a pending IRQ or queued sender, or block."""
        th.rcv_bufs = t.rcv
        partner: KObject | None = None
        if not t.flags & OPEN_WAIT:
            e = self._lookup(th, t.cap)
            if (e is None or type(e.obj) not in (Thread, Irq) or not e.obj.alive
                    or (type(e.obj) is Thread and e.obj.state is _DEAD)):
                self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
                return
            partner = e.obj
        if self._take_pending(core, th, partner):
            return
        if t.rcv_timeout == 0:
            self._fail_now(core, th, IpcErr.RETIMEOUT)
            return
        th.partner = partner
        self._block(th, _RECV, t.rcv_timeout, partner.kid if partner is not None else -1)

    def _receive_blocked(self, core: Core, th: Thread, t: Ipc) -> None:
        """Open-wait phase of a thread that is not running (after its queued send)."""
        th.rcv_bufs = t.rcv
        th.partner = None
        if self._take_pending(core, th, None):
            return
        if t.rcv_timeout == 0:
            self._ipc_fail(th, IpcErr.RETIMEOUT)
        elif t.rcv_timeout is not None:
            th.timeout_ev = self.events.at(self.now() + t.rcv_timeout, self._timeout, th, prio=PRIO_TIMEOUT)

    def _take_pending(self, core: Core, th: Thread, partner: KObject | None) -> bool:
        """Give ``th`` a pending interrupt or the best queued sender, if any.

        Interrupts come first; among senders the highest priority wins, FIFO
        among equals (Fiasco's sender queue).
        """
        pend = th.pending_irqs
        for irq in pend:
            if partner is None or partner is irq:
                pend.remove(irq)
                irq.pending = False
                self._charge(core, core.current or th, self.costs.ipc_base)
                msg = self._irq_msg(irq, th)
                if th.state is _RECV:
                    self._wake(th, msg)
                else:
                    th.resume = msg
                return True
        best = None
        for s in th.snd_queue:
            if (partner is None or partner is s) and (best is None or s.prio > best.prio):
                best = s
        if best is None:
            return False
        st: Ipc = best.snd_trap
        th.snd_queue.remove(best)
        if best.timeout_ev is not None:
            best.timeout_ev.cancel()
            best.timeout_ev = None
        best.snd_target = None
        best.snd_trap = None
        err = self._deliver(core, best, th, best.snd_label, st.proto, st.words, st.items, st.flags)
        if err:
            self._wake(best, Msg(error=err))
        elif st.flags & RECV:
            self._rcv_phase(core, best, th, st, running=False)
        else:
            self._wake(best, MSG_OK)
        return True

    # -------------------------------------------------------------------- IRQs
    def _irq_msg(self, irq: Irq, th: Thread) -> Msg:
        irq.count += 1
        owner = irq.del_of
        if owner is not None and owner.deleted:  # labels of the deleted gates ride along
            n = min(len(owner.deleted), MSG_WORDS)
            words = tuple(owner.deleted.popleft() for _ in range(n))
            if owner.deleted:
                irq.latched = True  # more to report: deliver again at the next wait
                self._irq_fire(irq)
            self.ipc_count += 1
            th.ipcs += 1
            return Msg(0, int(Proto.IRQ), words, irq.label)
        if irq.line is not None:
            irq.masked = True  # a hardware line stays masked until the driver unmasks
        self.ipc_count += 1
        th.ipcs += 1
        if self.tracer is not None:
            self._trace(th.cpu, "irq", th.kid, irq=irq.kid, line=irq.line if irq.line is not None else -1,
                        delivered=1)
        return Msg(0, int(Proto.IRQ), (), irq.label)

    def _hw_irq(self, line: int) -> None:
        irq = self.icu.bound.get(line)
        if irq is None:
            if self.tracer is not None:
                self._trace(-1, "irq", -1, irq=-1, line=line, delivered=0)
            return
        self._irq_fire(irq, self.costs.irq_entry)

    def _irq_fire(self, irq: Irq, delay: int = 0) -> None:
        """An interrupt happens: deliver it, queue it at the thread, or latch it."""
        th = irq.thread
        if irq.masked or th is None or th.state is _DEAD:
            irq.latched = True
            return
        if th.state is _RECV and (th.partner is None or th.partner is irq):
            if th.timeout_ev is not None:
                th.timeout_ev.cancel()
                th.timeout_ev = None
            th.partner = None
            th.resume = self._irq_msg(irq, th)
            self._make_ready(th, delay)
            return
        if not irq.pending:
            irq.pending = True
            th.pending_irqs.append(irq)

    # ---------------------------------------------------- kernel-object invocations
    @staticmethod
    def _err(e: int) -> Msg:
        return Msg(0, -e)

    def _rcv_slot(self, t: Ipc) -> int | None:
        """The capability slot named by the first receive buffer (for new objects)."""
        if not t.rcv:
            return None
        b = t.rcv[0]
        if type(b) is not Fpage or b.kind != FpageType.OBJECT or type(b.base) is not int \
                or not 0 < b.base < CAP_SLOTS:
            return None
        return b.base

    def _inv_factory(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Factory.create(kind, args...) -> the new capability in the receive buffer."""
        f: Factory = entry.obj  # type: ignore[assignment]
        w = t.words
        if not entry.rights & Rights.W:
            return self._err(Err.EPERM)
        if not w:
            return self._err(Err.EINVAL)
        kind = w[0] - (1 << 64) if w[0] >= 1 << 63 else w[0]
        slot = self._rcv_slot(t)
        if slot is None:
            return self._err(Err.EINVAL)
        task = th.task
        assert task is not None
        cls: type[KObject]
        args: tuple[Any, ...]
        if kind in (FactoryOp.TASK, FactoryOp.THREAD):
            # words: kind, then optionally a name packed as bytes (for traces)
            name = unpack_bytes(w[1:]).decode("utf-8", "replace")[:64] if len(w) > 1 else ""
            cls = Task if kind == FactoryOp.TASK else Thread
            args = (name or f"{cls.KIND}{self._kid + 1}",)
        elif kind == FactoryOp.GATE:
            # words: kind, thread slot (0 = unbound), label
            if len(w) < 3:
                return self._err(Err.EINVAL)
            tgt = None
            if w[1]:
                te = task.caps.slots.get(w[1])
                if te is None or type(te.obj) is not Thread:
                    return self._err(Err.EINVAL)
                tgt = te.obj
            if w[2] & 3:
                return self._err(Err.EINVAL)  # the two low label bits carry rights
            cls, args = IpcGate, (tgt, w[2])
        elif kind == FactoryOp.IRQ:
            cls, args = Irq, ()
        elif kind == FactoryOp.FACTORY:
            if len(w) < 2:
                return self._err(Err.EINVAL)
            cls, args = Factory, (w[1],)
        else:
            return self._err(Err.ENOSYS)
        size = cls.SIZE + (w[1] if cls is Factory else 0)  # a child's quota is carved out
        if f.used + size > f.limit:
            return self._err(Err.ENOMEM)
        # perform
        self._charge(self.running or self.cores[th.cpu], th, self.costs.object_create)
        obj = self._new(cls, *args)
        self._charge_new(obj, f, size)
        if cls is Task:
            self.tasks.append(obj)
        elif cls is Thread:
            self.threads.append(obj)
            if self.tracer is not None:
                self._trace(th.cpu, "thread", obj.kid, name=obj.name, task="")
        if self.cap_insert(task, slot, obj, Rights.RWSD, None) is None:
            self.destroy(obj)  # the slot held the caller's own task: nothing to put it in
            return self._err(Err.EINVAL)
        return Msg(0, 0, (obj.kid,), 0, (Fpage.obj(slot),))

    def _inv_task(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Task: map, unmap, cap_info (and the LoadCode trap)."""
        task: Task = entry.obj  # type: ignore[assignment]
        w = t.words
        mytask = th.task
        assert mytask is not None
        op = w[0]
        if op == TaskOp.MAP:
            # words: op, source task slot, send fpage word, destination (hot spot) word
            if len(w) < 4:
                return self._err(Err.EINVAL)
            if not entry.rights & Rights.W:
                return self._err(Err.EPERM)
            se = mytask.caps.slots.get(w[1])
            if se is None or type(se.obj) is not Task:
                return self._err(Err.EINVAL)
            src: Task = se.obj
            fp = Fpage.from_word(w[2])
            if fp.units() is None:
                return self._err(Err.EINVAL)
            # word 3 is Fiasco's send base: the destination address (or cap index,
            # slot << 12) of a same-sized flexpage, with the grant flag in bit 1
            grant = bool(w[3] & 2)
            dst = Fpage(fp.kind, w[3] & ~0xFFF if fp.kind == FpageType.MEMORY else w[3] >> 12,
                        fp.order, 0xF)
            du = dst.units()
            if du is None or (fp.kind == FpageType.OBJECT and du[0] <= 0):
                return self._err(Err.ERANGE)
            plan: list[Any] = []
            if self._plan_map(src, fp, task, dst, 0, grant, plan):
                return self._err(Err.ENOMEM if fp.kind != FpageType.OBJECT else Err.EINVAL)
            done = self._perform_map(plan)
            return Msg(0, 0, (len(done),))
        if op == TaskOp.UNMAP:
            # words: op, fpage word, flags
            if len(w) < 3:
                return self._err(Err.EINVAL)
            fp = Fpage.from_word(w[1])
            flags = w[2]
            units = fp.units()
            if units is None or flags not in (0, UNMAP_ALL_SPACES, UNMAP_DELETE_OBJ):
                return self._err(Err.EINVAL)
            if task is not mytask and not entry.rights & Rights.W:
                return self._err(Err.EPERM)
            base, order = units
            n = 1 << order
            if fp.kind == FpageType.OBJECT:
                table: dict[int, Any] = task.caps.slots
            else:
                table = task.vspace.io if fp.kind == FpageType.IO else task.vspace.pages
            keys = [u for u in range(base, base + n) if u in table] if n <= 4096 else \
                sorted(u for u in table if base <= u < base + n)
            touched = 0
            include = bool(flags & UNMAP_ALL_SPACES)
            for u in keys:
                e = table.get(u)
                if e is None or e.space is None:
                    continue
                if flags == UNMAP_DELETE_OBJ and fp.kind == FpageType.OBJECT and e.rights & Rights.D:
                    obj = e.obj
                    root: MapNode = e
                    while root.parent is not None:
                        root = root.parent
                    touched += self.mdb_remove(root, include_self=True)
                    self.destroy(obj)
                else:
                    touched += self.mdb_remove(e, include_self=include, mask=fp.rights)
            return Msg(0, 0, (touched,))
        if op == TaskOp.CAP_INFO:
            if len(w) < 2:
                return self._err(Err.EINVAL)
            ce = task.caps.slots.get(w[1])
            if ce is None:
                return Msg(0, 0, (0, 0, 0))
            return Msg(0, 0, (1, ce.obj.PROTO & WORD_MASK, ce.rights))
        return self._err(Err.ENOSYS)

    def _inv_thread(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Thread: control (bind, pager, exception handler), ex_regs, stats."""
        tgt: Thread = entry.obj  # type: ignore[assignment]
        w = t.words
        mytask = th.task
        assert mytask is not None
        if not w:
            return self._err(Err.EINVAL)
        op = w[0]
        if op == ThreadOp.STATS:
            return Msg(0, 0, (tgt.cpu_ns, tgt.ipcs, int(tgt.state), tgt.served_ns))
        if not entry.rights & Rights.W:
            return self._err(Err.EPERM)
        if tgt.state is _DEAD:
            return self._err(Err.EINVAL)
        if op == ThreadOp.REGISTER_DELETE_IRQ:
            # words: op, irq slot -- the Irq fires when an IPC gate bound to the thread dies;
            # its message carries the labels of the deleted gates (up to 63 a message)
            if len(w) < 2:
                return self._err(Err.EINVAL)
            ie = mytask.caps.slots.get(w[1])
            if ie is None or type(ie.obj) is not Irq:
                return self._err(Err.EINVAL)
            irq: Irq = ie.obj
            if tgt.del_irq is not None and tgt.del_irq is not irq:
                tgt.del_irq.del_of = None
            if irq.del_of is not None and irq.del_of is not tgt:
                irq.del_of.del_irq = None  # an Irq reports the deletions of one thread only
            tgt.del_irq = irq
            irq.del_of = tgt
            return Msg(0, 0)
        if op == ThreadOp.CONTROL:
            # words: op, flags, pager slot, exception-handler slot, task slot
            if len(w) < 5:
                return self._err(Err.EINVAL)
            flags, pager, exc, task_slot = w[1], w[2], w[3], w[4]
            bind: Task | None = None
            if flags & CTL_BIND_TASK:
                te = mytask.caps.slots.get(task_slot)
                if te is None or type(te.obj) is not Task or not te.rights & Rights.W:
                    return self._err(Err.EINVAL)
                bind = te.obj
                if tgt.task is not None and tgt.task is not bind:
                    return self._err(Err.EBUSY)
            for v in (pager, exc):
                if v >= CAP_SLOTS:
                    return self._err(Err.ERANGE)
            if flags & CTL_SET_PAGER:
                tgt.pager_slot = pager
            if flags & CTL_SET_EXC_HANDLER:
                tgt.exc_slot = exc
            if bind is not None and tgt.task is None:
                tgt.task = bind
                bind.threads.append(tgt)
            return Msg(0, 0)
        if op == ThreadOp.EX_REGS:
            # words: op, ip, sp, flags
            if len(w) < 4:
                return self._err(Err.EINVAL)
            ip, sp, flags = w[1], w[2], w[3]
            if flags & EX_REGS_GUEST:
                return self._ex_regs_guest(tgt, ip, sp, flags)
            if flags & EX_REGS_TRIGGER_EXCEPTION and tgt.guest is not None and ip == IP_UNCHANGED:
                # the guest raises exception IPC (trap 0xff) before it next runs guest code
                # (how L4Linux makes a thread running in user mode enter its server)
                old = (tgt.guest.rip, tgt.traps, int(tgt.state))
                if tgt.state is not _DEAD:
                    tgt.guest.trigger = True
                return Msg(0, 0, old)
            if ip != IP_UNCHANGED and (tgt.task is None or ip >= len(tgt.task.code)):
                return self._err(Err.EINVAL)
            old = (tgt.ip, tgt.traps, int(tgt.state))
            if flags & EX_REGS_CANCEL and tgt.state in (_SEND, _RECV):
                self._ipc_fail(tgt, IpcErr.SECANCELED if tgt.state is _SEND else IpcErr.RECANCELED)
            if ip != IP_UNCHANGED:
                assert tgt.task is not None
                self._unblock(tgt)
                if tgt.coro is not None:
                    coro, tgt.coro = tgt.coro, None
                    _close(coro)
                tgt.ip = ip
                tgt.traps = 0
                tgt.compute_left = 0
                tgt.exc_pending = 0
                tgt.redo = None
                tgt.faulted = False
                tgt.coro = tgt.task.code[ip](sp)
                tgt.resume = None
                if tgt.state is not _READY:
                    tgt.started_at = self.now()
                    self._make_ready(tgt)
            return Msg(0, 0, old)
        return self._err(Err.ENOSYS)

    def _ex_regs_guest(self, tgt: Thread, ip: int, sp: int, flags: int) -> Msg:
        """ex_regs with EX_REGS_GUEST: (re)start ``tgt`` as an x86-64 guest thread at rip ``ip``,
        rsp ``sp``, the other registers zero.  Refused (EINVAL) for an unbound thread, a
        non-canonical rip and a thread running native code; EX_REGS_CANCEL is implied."""
        from l4sim.kernel.guest import GuestThread, cpu_of

        if tgt.task is None or ip >= 1 << 47 or tgt.coro is not None:
            return self._err(Err.EINVAL)
        old = (tgt.guest.rip if tgt.guest is not None else 0, tgt.traps, int(tgt.state))
        tgt.exc_pending = 0  # a cancelled exception IPC must not kill it
        if tgt.state in (_SEND, _RECV):
            self._ipc_fail(tgt, IpcErr.SECANCELED if tgt.state is _SEND else IpcErr.RECANCELED)
        tgt.guest = GuestThread(cpu_of(self, tgt.task), {"rip": ip, "rsp": sp})
        tgt.ip = 0
        tgt.traps = 0
        tgt.compute_left = 0
        tgt.redo = None
        tgt.faulted = False
        tgt.resume = None
        if tgt.state is not _READY:
            tgt.started_at = self.now()
            self._make_ready(tgt)
        return Msg(0, 0, old)

    def _inv_scheduler(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Scheduler: info, run_thread(thread, prio, quantum, cpus), idle_time(cpu),
        set_reservation(thread, budget, period, deadline, flags, first release), resv_info(cpu)."""
        w = t.words
        mytask = th.task
        assert mytask is not None
        if not w:
            return self._err(Err.EINVAL)
        op = w[0]
        n = len(self.cores)
        if op == SchedOp.INFO:
            return Msg(0, 0, (n, 255, (1 << n) - 1))
        if op == SchedOp.IDLE_TIME:
            if len(w) < 2 or w[1] >= n:
                return self._err(Err.EINVAL)
            core = self.cores[w[1]]
            idle = core.idle_ns + (self.now() - core.idle_since if core.idle_since is not None else 0)
            return Msg(0, 0, (idle,))
        if op == SchedOp.RUN_THREAD:
            if len(w) < 5:
                return self._err(Err.EINVAL)
            te = mytask.caps.slots.get(w[1])
            if te is None or type(te.obj) is not Thread:
                return self._err(Err.EINVAL)
            tgt: Thread = te.obj
            prio, quantum, cpus = w[2], w[3], w[4] & ((1 << n) - 1)
            if prio > 255 or quantum == 0 or cpus == 0 or tgt.state is _DEAD:
                return self._err(Err.EINVAL)
            cpu = tgt.cpu if cpus >> tgt.cpu & 1 else (cpus & -cpus).bit_length() - 1
            self._set_sched(tgt, prio, quantum, cpus, cpu)
            if self.tracer is not None:
                self._trace(cpu, "sched", tgt.kid, prio=prio, cpus=cpus, to_cpu=cpu)
            return Msg(0, 0)
        if op == SchedOp.SET_RESERVATION:
            # words: op, thread slot, budget, period, deadline (0: period), flags, first release (0: now)
            if len(w) < 3:
                return self._err(Err.EINVAL)
            te = mytask.caps.slots.get(w[1])
            if te is None or type(te.obj) is not Thread or te.obj.state is _DEAD:
                return self._err(Err.EINVAL)
            tgt = te.obj
            budget = w[2]
            if budget == 0:
                self.set_reservation(tgt, 0)
                return Msg(0, 0)
            if len(w) < 4:
                return self._err(Err.EINVAL)
            period, deadline = w[3], w[4] if len(w) > 4 else 0
            flags, start = (w[5] if len(w) > 5 else 0), (w[6] if len(w) > 6 else 0)
            if (period < RESV_MIN_PERIOD or budget > period or flags & ~RESV_FLAGS
                    or (start and start < self.now())):
                return self._err(Err.EINVAL)
            self.set_reservation(tgt, budget, period, deadline, flags, start or None)
            return Msg(0, 0)
        if op == SchedOp.RESV_INFO:
            if len(w) < 2 or w[1] >= n:
                return self._err(Err.EINVAL)
            return Msg(0, 0, self.resv_info(w[1]))
        return self._err(Err.ENOSYS)

    def resv_info(self, cpu: int) -> tuple[int, int, int, int]:
        """What the kernel knows of ``cpu``'s reservations: (policy code, live reserved threads,
        their utilisation in ppm rounded up, their deadline misses so far)."""
        import math  # local: this report is the only user here
        from fractions import Fraction

        from l4sim.kernel.abi import SCHED_EDF, SCHED_FP

        util = Fraction(0)
        count = misses = 0
        for th in self.threads:
            r = th.resv
            if r is not None and th.cpu == cpu and th.state is not _DEAD:
                count += 1
                util += Fraction(r.budget, r.period)
                misses += r.misses
        policy = SCHED_EDF if self.cores[cpu].policy == "edf" else SCHED_FP
        return policy, count, math.ceil(util * 1_000_000), misses

    def _current_on(self, th: Thread) -> Core | None:
        """The core ``th`` is current on -- after a migration not yet handed over,
        that is still its old core, not ``cores[th.cpu]``."""
        for c in self.cores:
            if c.current is th:
                return c
        return None

    def _set_sched(self, th: Thread, prio: int, quantum: int, cpus: int, cpu: int) -> None:
        ready = th.state is _READY
        on = self._current_on(th)
        was_current = on is not None
        old_core = on if on is not None else self.cores[th.cpu]
        if ready and not was_current:
            old_core.remove(th)
        th.quantum = quantum
        th.cpus = cpus
        th.cpu = cpu
        r = th.resv
        if r is None:
            th.quantum_left = min(th.quantum_left, quantum) if th.quantum_left > 0 else quantum
            th.prio = prio
        else:  # the budget stays; the queue level follows the core's policy
            r.prio = prio
            th.prio = EDF_LEVEL if self.cores[cpu].policy == "edf" else RESV_BASE + prio
        if was_current:
            # its core re-decides at its next step (at once if it was computing):
            # _pick hands a migrated thread to its new core, or lets a higher one in
            if old_core is not self.running:
                self._kick(old_core, self.now())
        elif ready:
            self._make_ready(th)

    # ------------------------------------------------ reservations and periodic threads
    def set_policy(self, cpu: int, policy: str) -> None:
        """Host side: order the reserved threads of core ``cpu`` by priority ("fp") or deadline ("edf").

        Best-effort threads are unaffected; reserved ones already there move to the new order.
        """
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; use 'fp' or 'edf'")
        self.cores[cpu].policy = policy
        for th in self.threads:
            if th.resv is not None and th.cpu == cpu and th.state is not _DEAD:
                self._set_sched(th, th.resv.prio, th.quantum, th.cpus, th.cpu)

    def set_reservation(self, th: Thread, budget: int, period: int = 0, deadline: int = 0, flags: int = 0,
                        start: int | None = None) -> None:
        """Give ``th`` a reservation (host side; the Scheduler invocation decodes, then calls this).

        ``budget`` ns of CPU time per ``period`` ns, replenished in full at each
        period boundary ``start + k * period`` (``start``: the first release,
        default now); ``deadline`` is relative (0: the period).  ``budget`` 0
        removes the reservation: the thread is best effort again at its priority.
        A new reservation replaces the old one (statistics start afresh).
        """
        now = self.now()
        old = th.resv
        if old is not None:
            self._resv_cancel(old)
        waiting = th.state is _DEPLETED or th.state is _WAIT_RELEASE
        if budget == 0:
            if old is None:
                return
            th.resv = None
            self._set_sched(th, old.prio, th.quantum, th.cpus, th.cpu)
        else:
            if not 0 < budget <= period or deadline < 0 or (start is not None and start < now):
                raise ValueError("a reservation needs 0 < budget <= period, deadline >= 0 "
                                 "and a first release not in the past")
            origin = now if start is None else start
            r = Reservation(budget, period, deadline or period, flags, origin,
                            old.prio if old is not None else th.prio)
            self.releases += 1
            r.key = (r.abs_dl, self.releases, th.kid)
            r.arrived = 1 if origin <= now else 0
            r.periodic = bool(flags & RESV_PERIODIC)
            th.resv = r
            th.quantum_left = budget
            r.repl_ev = self.events.at(origin if origin > now else origin + period, self._replenish,
                                       th, r, prio=PRIO_IRQ)
            self._set_sched(th, r.prio, th.quantum, th.cpus, th.cpu)
        if self.tracer is not None:
            self._trace(th.cpu, "reservation", th.kid, budget=budget, period=period,
                        deadline=deadline or period, flags=flags)
        if waiting:  # a sleeping periodic thread's next_period returns 0
            if th.state is _WAIT_RELEASE:
                th.resume = 0
            self._make_ready(th)

    @staticmethod
    def _resv_cancel(r: Reservation) -> None:
        for ev in (r.repl_ev, r.release_ev):
            if ev is not None:
                ev.cancel()
        r.repl_ev = r.release_ev = None

    def _replenish(self, th: Thread, r: Reservation) -> None:
        """A period boundary: the budget is full again (less any computation already charged past now)."""
        now = self.events.now
        r.repl_ev = self.events.at(now + r.period, self._replenish, th, r, prio=PRIO_IRQ)
        on = self._current_on(th)
        r.arrived += 1
        # a computation is charged up front: the part still ahead of now belongs to the new period
        ahead = on.time - now if on is not None and on.computing and on.time > now else 0
        if r.periodic:  # one more job's budget, capped (see sched.Reservation)
            cap = r.budget * (r.arrived - r.jobs)
            th.quantum_left = min(th.quantum_left + ahead + r.budget, cap) - ahead
        else:  # full again
            th.quantum_left = r.budget - ahead
        self.releases += 1
        if not r.periodic:  # a plain reservation: each period is a job with its own deadline
            r.arrival = now
            r.abs_dl = now + r.deadline
            key = (r.abs_dl, self.releases, th.kid)
            if th.prio == EDF_LEVEL and th.state is _READY and on is None:
                q = self.cores[th.cpu].queues[EDF_LEVEL]
                q.remove(th)
                r.key = key
                q.append(th)
            else:
                r.key = key
                if on is not None and th.prio == EDF_LEVEL:
                    self._kick(on, now)  # a later deadline: the core re-decides
        if self.tracer is not None:
            self._trace(th.cpu, "replenish", th.kid, budget=th.quantum_left)
        if th.state is _DEPLETED:
            self._make_ready(th)

    def _budget_check(self, core: Core, th: Thread) -> None:
        """In the step loop: ``th``, current here, has no budget left; it stops if it wants more."""
        if th.state is _READY and th.cpu == core.id and (th.quantum_left < 0 or th.compute_left):
            self._deplete(core, th)

    def _exc_dest(self, th: Thread) -> Thread | None:
        """The thread that receives ``th``'s exception IPC, or None."""
        he = self._lookup(th, th.exc_slot) if th.exc_slot else None
        if he is None:
            return None
        obj = he.obj
        dest = obj if type(obj) is Thread else obj.thread if type(obj) is IpcGate else None
        return dest if dest is not None and dest.state is not _DEAD else None

    def _deplete(self, core: Core, th: Thread) -> None:
        """``th``'s budget is spent: it waits for its replenishment, or raises a timeout fault."""
        r = th.resv
        r.depletions += 1
        if r.flags & RESV_TIMEOUT_FAULT and self._exc_dest(th) is not None:
            # the fault IPC's reply must not replace the result of the thread's last trap
            th.redo = _Restore(th.resume)
            th.resume = None
            self._exception(core, th, TRAP_BUDGET_TIMEOUT, 0, (r.budget, r.period), "budget spent")
            return
        th.state = _DEPLETED
        if self.tracer is not None:
            self._trace(core.id, "depleted", th.kid, budget=r.budget)

    def _sys_restore(self, core: Core, th: Thread, t: _Restore) -> None:
        th.resume = t.value

    def _sys_next_period(self, core: Core, th: Thread, t: NextPeriod) -> None:
        """End the current job (response time, deadline check) and wait for the next release."""
        self._charge(core, th, self.costs.syscall)
        r = th.resv
        jitter = t.jitter
        if r is None or type(jitter) is not int or jitter < 0:
            th.resume = -int(Err.EINVAL)
            return
        now = core.time
        tr = self.tracer
        if r.job:
            resp = now - r.arrival
            r.jobs += 1
            if resp > r.max_response:
                r.max_response = resp
            if now > r.abs_dl:
                r.misses += 1
                if tr is not None:
                    self._trace(core.id, "deadline_miss", th.kid, job=r.job, lateness=now - r.abs_dl)
            if tr is not None:
                self._trace(core.id, "job_end", th.kid, job=r.job, response=resp)
            arrival = r.arrival + r.period
        else:
            arrival = r.origin
        # the budget of the jobs arrived and not completed (before the first job: exactly that)
        cap = r.budget * (r.arrived - r.jobs)
        if th.quantum_left > cap or not r.job:
            th.quantum_left = cap
        r.job += 1
        r.periodic = True
        r.arrival = arrival
        r.abs_dl = arrival + r.deadline
        release = arrival + (self.machine.rng.randint(0, jitter) if jitter else 0)
        if release > now:
            th.state = _WAIT_RELEASE
            # after the cores' steps at that instant: a job ending just then is not preempted first
            r.release_ev = self.events.at(release, self._release, th, r, prio=PRIO_CORE + 1)
            if tr is not None:
                self._trace(core.id, "block", th.kid, state="release", on=-1)
            return
        self.releases += 1
        r.key = (r.abs_dl, self.releases, th.kid)  # current, so not queued
        th.resume = r.job
        if tr is not None:
            self._trace(core.id, "release", th.kid, job=r.job, deadline=r.abs_dl)

    def _release(self, th: Thread, r: Reservation) -> None:
        r.release_ev = None
        if th.resv is not r or th.state is not _WAIT_RELEASE:
            return
        self.releases += 1
        r.key = (r.abs_dl, self.releases, th.kid)
        th.resume = r.job
        if self.tracer is not None:
            self._trace(th.cpu, "release", th.kid, job=r.job, deadline=r.abs_dl)
        self._make_ready(th)

    def _inv_irq(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Irq: attach(thread, label), detach, trigger, mask, unmask."""
        irq: Irq = entry.obj  # type: ignore[assignment]
        w = t.words
        mytask = th.task
        assert mytask is not None
        if not w:
            return self._err(Err.EINVAL)
        op = w[0]
        if not entry.rights & Rights.W:
            return self._err(Err.EPERM)
        if op == IrqOp.TRIGGER:
            self._irq_fire(irq)
            return Msg(0, 0)
        if op == IrqOp.ATTACH:
            if len(w) < 3:
                return self._err(Err.EINVAL)
            te = mytask.caps.slots.get(w[1])
            if te is None or type(te.obj) is not Thread or te.obj.state is _DEAD:
                return self._err(Err.EINVAL)
            self._irq_detach(irq)
            irq.thread = te.obj
            irq.label = w[2]
            if irq.latched and not irq.masked:
                irq.latched = False
                self._irq_fire(irq)
            return Msg(0, 0)
        if op == IrqOp.DETACH:
            self._irq_detach(irq)
            return Msg(0, 0)
        if op == IrqOp.MASK:
            irq.masked = True
            return Msg(0, 0)
        if op == IrqOp.UNMASK:
            irq.masked = False
            if irq.latched:
                irq.latched = False
                self._irq_fire(irq)
            return Msg(0, 0)
        return self._err(Err.ENOSYS)

    def _irq_detach(self, irq: Irq) -> None:
        old = irq.thread
        if old is not None and irq.pending:
            old.pending_irqs.remove(irq)
            irq.pending = False
        irq.thread = None

    def _inv_icu(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """ICU: bind(line, irq), unbind(line), info."""
        w = t.words
        mytask = th.task
        assert mytask is not None
        if not w:
            return self._err(Err.EINVAL)
        op = w[0]
        nlines = self.machine.ic.nlines
        if op == IcuOp.INFO:
            return Msg(0, 0, (0, nlines, 0))
        if not entry.rights & Rights.W:
            return self._err(Err.EPERM)
        if op in (IcuOp.BIND, IcuOp.UNBIND):
            if len(w) < 3 or w[1] >= nlines:
                return self._err(Err.EINVAL)
            ie = mytask.caps.slots.get(w[2])
            if ie is None or type(ie.obj) is not Irq:
                return self._err(Err.EINVAL)
            irq: Irq = ie.obj
            line = w[1]
            if op == IcuOp.BIND:
                cur = self.icu.bound.get(line)
                if cur is not None and cur is not irq:
                    return self._err(Err.EBUSY)
                if irq.line is not None and irq.line != line:
                    return self._err(Err.EBUSY)
                self.icu.bound[line] = irq
                irq.line = line
            else:
                if self.icu.bound.get(line) is not irq:
                    return self._err(Err.ENOENT)
                del self.icu.bound[line]
                irq.line = None
            return Msg(0, 0)
        return self._err(Err.ENOSYS)

    def _inv_gate(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """IPC gate (invoked with the kobject label): bind(thread, label), get_info.

        Binding needs the S right: a client holding the gate without it can
        send through it but not redirect it.
        """
        gate: IpcGate = entry.obj  # type: ignore[assignment]
        w = t.words
        mytask = th.task
        assert mytask is not None
        op = w[0]
        if op == GateOp.GET_INFO:
            return Msg(0, 0, (gate.label if entry.rights & Rights.S else 0,))
        if op == GateOp.BIND:
            if len(w) < 3:
                return self._err(Err.EINVAL)
            if not entry.rights & Rights.S:
                return self._err(Err.EPERM)
            te = mytask.caps.slots.get(w[1])
            if te is None or type(te.obj) is not Thread or te.obj.state is _DEAD or w[2] & 3:
                return self._err(Err.EINVAL)
            old = gate.thread
            if old is not None and old is not te.obj:
                for s in [s for s in old.snd_queue if s.snd_via is gate]:
                    self._ipc_fail(s, IpcErr.SEABORTED)  # queued on the old receiver
            gate.thread = te.obj
            gate.label = w[2]
            return Msg(0, 0)
        return self._err(Err.ENOSYS)

    def _inv_log(self, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
        """Log: write(bytes packed in words) to the console."""
        w = t.words
        if not w or w[0] != LogOp.WRITE or len(w) < 2:
            return self._err(Err.EINVAL)
        if not entry.rights & Rights.W:
            return self._err(Err.EPERM)
        if w[1] > 8 * (len(w) - 2):
            return self._err(Err.EINVAL)
        data = unpack_bytes(w[1:])
        self.machine.uart.write(data)
        if self.tracer is not None:
            self._trace(th.cpu, "log", th.kid, text=data.decode("utf-8", "replace"))
        return Msg(0, 0)
