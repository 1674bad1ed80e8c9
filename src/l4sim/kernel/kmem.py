"""Kernel-memory models: where the kernel gets memory for its objects and page tables.

The second impediment Elphinstone names ("Future Directions in the Evolution
of the L4 Microkernel", section 4): a kernel that allocates memory for its
objects on a program's behalf can be exhausted by that program, taking the
service away from everyone else.  Each design is a *model* here, chosen
when the kernel is built (``Kernel(kmem_model=...)``):

``quotas`` (the default; no model object at all)
    Fiasco.OC: every object and every page-table node is charged to a
    factory's quota; a factory's children carve their quota out of it.  A
    program can exhaust only its own.
``global-pool``
    One fixed pool (``pool`` bytes) for all kernel memory, first come first
    served; factories' limits are ignored.  One program can exhaust it for
    all.
``lend-to-kernel``
    Quotas, but when a task's allocation fails its thread's pager may lend
    one of its own frames to the kernel on the task's behalf: the frame
    leaves the lender's address space, the task's factory may use 4 KiB
    more, and the frame goes back to the lender only when the task is
    deleted.
``kpager``
    Quotas fed by a *kernel pager* per thread: when the kernel needs
    memory for the thread's task it asks the kpager, which supplies a frame
    or denies; later the kpager may revoke frames (``Thread`` op
    ``KMEM_REVOKE``) and the kernel discards what it can rebuild -- the
    task's page-table nodes, whose mappings the task's pager restores on
    the next faults -- and returns them.

Page tables are kernel memory under every model: a mapping costs
``MAPPING_SIZE`` and each new 512-page table ``PT_SIZE``, charged like an
object (kernel/vspace.py).

How a model plugs in: the kernel asks ``admit(f, n, real)`` wherever the
default compares a factory's use with its limit (object creation, a
mapping, a map item's plan, a grant), and tells ``charged(n)``/``freed(n)``
where the default changes a factory's use -- with the default model both
cost one attribute test.  The two models that fault (``faults``) turn an
ENOMEM of a Factory or Task invocation into a kernel-memory fault: an IPC
(``Proto.KMEM``, words ``(bytes needed, thread id)``) to the thread's pager
or kpager, whose answer ``(address of one page in its own space,)`` lends
the page, and the invocation is retried; any other answer denies it, and
the invocation returns ENOMEM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import Err
from l4sim.kernel.objects import Factory, Task, Thread
from l4sim.kernel.traps import Ipc, Trap

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Kernel

#: the names a scenario may choose
KMEM_MODELS = ("quotas", "global-pool", "lend-to-kernel", "kpager")
#: the global pool's size when a scenario does not choose one (bytes)
DEFAULT_POOL = 1 << 20
#: one lent or supplied frame
FRAME = 4096
#: kernel-memory faults one invocation may raise before it is answered ENOMEM
MAX_FAULTS = 64


class KmemRetry(Trap):
    """Kernel-internal: a Factory or Task invocation waiting for a kernel-memory fault's answer."""

    __slots__ = ("faults", "giver", "needy", "trap")

    def __init__(self, trap: Ipc, giver: Thread, needy: Factory, faults: int) -> None:
        self.trap = trap  # the invocation (the kernel's copy), retried after the answer
        self.giver = giver  # the pager or kpager asked
        self.needy = needy  # the factory that ran out
        self.faults = faults


@dataclass(slots=True)
class Lent:
    """A frame the kernel holds on a task's behalf, and where it goes back to."""

    task: Task  # whose kernel memory it is
    lender: Task  # whose address space it came from
    vpn: int  # the page it came from there
    pfn: int


class KmemModel:
    """The interface every kernel-memory model implements."""

    name = "?"
    #: an ENOMEM of a Factory or Task invocation becomes a kernel-memory fault
    faults = False

    def admit(self, f: Factory | None, n: int, real: int) -> bool:
        """May ``n`` more bytes be charged to ``f`` (``real``: the bytes the kernel really uses,
        ``n`` less a child factory's carved-out quota)?  Records the refused factory."""
        if f is None or f.used + n <= f.limit:
            return True
        self.denied = f
        return False

    def charged(self, n: int) -> None:
        """``n`` bytes of kernel memory are now in use."""

    def freed(self, n: int) -> None:
        """``n`` bytes of kernel memory were given back."""

    def fault_target(self, k: Kernel, th: Thread) -> Thread | None:
        """Who answers ``th``'s kernel-memory faults (None: nobody; the invocation fails)."""
        return None

    denied: Factory | None = None


class GlobalPool(KmemModel):
    """One pool for everybody's kernel memory: factories' limits do not count."""

    name = "global-pool"

    def __init__(self, size: int = DEFAULT_POOL) -> None:
        self.size = size
        self.used = 0

    def admit(self, f: Factory | None, n: int, real: int) -> bool:
        return self.used + real <= self.size

    def charged(self, n: int) -> None:
        self.used += n

    def freed(self, n: int) -> None:
        self.used -= n


class LendToKernel(KmemModel):
    """Quotas; a task that runs out may be lent frames by its thread's pager."""

    name = "lend-to-kernel"
    faults = True

    def fault_target(self, k: Kernel, th: Thread) -> Thread | None:
        return k._slot_thread(th, th.pager_slot)


class KPager(KmemModel):
    """Quotas fed by each thread's kernel pager, which may take frames back."""

    name = "kpager"
    faults = True

    def fault_target(self, k: Kernel, th: Thread) -> Thread | None:
        return k._slot_thread(th, th.kpager_slot)


def make(name: str, pool: int = DEFAULT_POOL) -> KmemModel | None:
    """The model called ``name`` (None for the default, quotas)."""
    if name == "quotas":
        return None
    if name == "global-pool":
        return GlobalPool(pool)
    if name == "lend-to-kernel":
        return LendToKernel()
    if name == "kpager":
        return KPager()
    raise ValueError(f"unknown kernel-memory model {name!r}; choose one of {', '.join(KMEM_MODELS)}")


# --- the kernel's side: faults, lending, revocation (methods of Kernel) -------------------------

def slot_thread(self: Kernel, th: Thread, slot: int) -> Thread | None:
    """The live thread a slot of ``th``'s task names (a thread or a bound IPC gate), or None."""
    from l4sim.kernel.objects import TS, IpcGate

    e = self._lookup(th, slot) if slot else None
    if e is None:
        return None
    obj: Any = e.obj
    dest = obj if type(obj) is Thread else obj.thread if type(obj) is IpcGate else None
    return dest if dest is not None and dest.state is not TS.DEAD else None


def kmem_fault(self: Kernel, core: Any, th: Thread, t: Ipc, faults: int) -> bool:
    """An invocation of ``th`` was refused for want of kernel memory: ask its pager or kpager.

    Returns False when the model does not fault or nobody would answer (the
    invocation then returns ENOMEM as usual).
    """
    from l4sim.kernel.abi import CALL, Proto

    kmem = self.kmem
    needy = kmem.denied if kmem is not None else None
    if kmem is None or not kmem.faults or needy is None or faults >= MAX_FAULTS:
        return False
    giver = kmem.fault_target(self, th)
    if giver is None or giver is th:
        return False
    slot = th.pager_slot if kmem.name == "lend-to-kernel" else th.kpager_slot
    th.redo = KmemRetry(t, giver, needy, faults + 1)
    if self.tracer is not None:
        self._trace(core.id, "kmem_fault", th.kid, giver=giver.kid, model=kmem.name)
    self._sys_ipc(core, th, Ipc(slot, CALL, int(Proto.KMEM), (FRAME, th.kid)))
    return True


def kmem_answer(self: Kernel, core: Any, th: Thread, r: KmemRetry, answer: Any) -> None:
    """The pager's or kpager's answer to a kernel-memory fault: a page lent, or a refusal."""
    from l4sim.kernel.traps import Msg

    giver = r.giver
    gtask = giver.task
    task = th.task
    ok = (type(answer) is Msg and not answer.error and answer.proto == 0 and len(answer.words) >= 1
          and gtask is not None and task is not None)
    m = None
    if ok:
        vpn = answer.words[0] >> 12
        m = gtask.vspace.pages.get(vpn)  # type: ignore[union-attr]
        ok = m is not None and m.space is gtask
    if not ok or m is None:
        th.resume = Msg(0, -int(Err.ENOMEM))
        return
    pfn = m.pfn
    self.mdb_remove(m, include_self=True)  # the frame leaves the lender's (and derived) spaces
    assert task is not None and gtask is not None
    self.kmem_lent.append(Lent(task, gtask, vpn, pfn))
    r.needy.limit += FRAME
    if self.tracer is not None:
        self._trace(core.id, "kmem_lend", th.kid, lender=giver.kid, pfn=pfn)
    th.kmem_faults = r.faults
    self._traps[Ipc](core, th, r.trap)  # the invocation again, now with the page
    th.kmem_faults = 0


def kmem_return(self: Kernel, task: Task) -> None:
    """A task is gone: the frames lent on its behalf go back to their lenders' spaces."""
    from l4sim.kernel.abi import MemRights

    keep = []
    for lent in self.kmem_lent:
        if lent.task is not task:
            keep.append(lent)
            continue
        root = self.frame_roots.get(lent.pfn)
        if lent.lender.alive and lent.vpn not in lent.lender.vspace.pages:
            self.mem_insert(lent.lender, lent.vpn, lent.pfn, int(MemRights.RW), root)
    self.kmem_lent = keep


def kmem_revoke(self: Kernel, tgt: Thread, frames: int) -> int:
    """The kpager takes ``frames`` frames back from ``tgt``'s task: the kernel discards
    page-table nodes (their mappings go; the task's pager maps them again on the next faults)
    until the task's factory fits the smaller limit, then returns the frames.  Returns how
    many frames went back (fewer when too little can be rebuilt)."""
    from l4sim.kernel.abi import MemRights
    from l4sim.kernel.vspace import PT_SHIFT

    task = tgt.task
    if task is None or task.factory is None:
        return 0
    f = task.factory
    mine = [lent for lent in self.kmem_lent if lent.task is task]
    frames = min(frames, len(mine))
    returned = 0
    vs = task.vspace
    for lent in mine[-frames:] if frames else []:
        # discard whole page tables, highest first, until the factory fits one frame less
        while f.used > f.limit - FRAME and vs.pt:
            pt = max(vs.pt)
            for vpn in [v for v in vs.pages if v >> PT_SHIFT == pt]:
                m = vs.pages.get(vpn)
                if m is not None and m.space is task:
                    self.mdb_remove(m, include_self=True)
        if f.used > f.limit - FRAME:
            break  # what is left cannot be rebuilt (objects): this frame stays
        f.limit -= FRAME
        self.kmem_lent.remove(lent)
        root = self.frame_roots.get(lent.pfn)
        if lent.lender.alive and lent.vpn not in lent.lender.vspace.pages:
            self.mem_insert(lent.lender, lent.vpn, lent.pfn, int(MemRights.RW), root)
        returned += 1
    if self.tracer is not None and returned:
        self._trace(-1, "kmem_revoke", tgt.kid, frames=returned)
    return returned

