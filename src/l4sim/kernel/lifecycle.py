"""Object life: creation, destruction and the kernel memory objects are charged.

Every kernel object is created through a factory whose quota pays for it
(``charge_new``) and returns there when the object goes (``uncharge``,
through destroyed factories to the first live ancestor).  An object whose
last capability is removed is destroyed: threads blocked on it wake with an
error, a dying IPC gate sends its label in the bound thread's deletion
notification, a dying task takes its capabilities, mappings and threads
along (Fiasco's ``kobject.cpp``/``factory.cpp``, seL4's
``object/objecttype.c``).  The boot interface (``create_sigma0``,
``create_root``, ``start``) builds the first tasks, as the boot loader and
Fiasco's kernel initialisation do.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l4sim.kernel.abi import SLOT_COMMCTL, IpcErr, Rights
from l4sim.kernel.common import _DEAD, _RECV, ROOT_QUOTA, _close, enter
from l4sim.kernel.objects import Factory, IpcGate, Irq, KObject, Reply, Task, Thread
from l4sim.kernel.traps import Entry

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Kernel


def next_kid(self: Kernel) -> int:
    self._kid += 1
    return self._kid


def destroy(self: Kernel, obj: KObject) -> None:
    """An object whose last capability went (or that was deleted) ends here.

    Threads blocked on it are woken with an error; the kernel memory it
    was charged returns to its factory's quota.
    """
    if not obj.alive:
        return
    obj.alive = False
    self.objects_alive -= 1
    if self.tracer is not None:
        self._trace(-1, "destroy", -1, obj=obj.kid, type=obj.KIND)
    if type(obj) is Factory:
        # what the factory's own objects still use stays charged to its parent until they go
        self._uncharge(obj.factory, obj.charge - obj.used)
    else:
        self._uncharge(obj.factory, obj.charge)
    if self.kmem is not None:
        self.kmem.freed(Factory.SIZE if type(obj) is Factory else obj.charge)
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
            if self.kmem_lent:
                self._kmem_return(obj)  # frames lent on its behalf go back to their lenders
        case Reply():
            caller = obj.caller
            obj.caller = None
            if caller is not None and caller.state is _RECV and caller.partner is obj:
                self._ipc_fail(caller, IpcErr.REABORTED)
        case _:
            pass


def uncharge(f: Factory | None, n: int) -> None:
    """Return ``n`` bytes to factory ``f`` -- and through destroyed factories to the
    first live ancestor, which paid for their objects."""
    while f is not None:
        f.used -= n
        if f.alive:
            return
        f = f.factory


def kill(self: Kernel, th: Thread, code: int | None, reason: str) -> None:
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


def drop_reply(self: Kernel, th: Thread) -> None:
    """``th`` gives up its implicit reply capability: its caller is aborted."""
    r = th.reply
    th.reply = None
    if r is not None:
        caller = r.caller
        r.caller = None
        if caller is not None and caller.state is _RECV and caller.partner is r:
            self._ipc_fail(caller, IpcErr.REABORTED)


def charge_new(self: Kernel, obj: KObject, factory: Factory | None, size: int) -> None:
    obj.factory = factory
    obj.charge = size
    if factory is not None:
        factory.used += size
    if self.kmem is not None:
        self.kmem.charged(Factory.SIZE if type(obj) is Factory else size)  # a carved quota is no memory


def create_factory(self: Kernel, limit: int, parent: Factory | None = None) -> Factory:
    f: Factory = self._new(Factory, limit)
    self._charge_new(f, parent, Factory.SIZE + limit if parent is not None else 0)
    return f


def create_task(self: Kernel, name: str, factory: Factory | None = None,
                creator: Task | None = None) -> Task:
    """Host-side creation of a task; ``creator`` stands for the task whose thread would have
    created it (its chief under the clans-and-chiefs model; None: a root of the chief tree)."""
    t: Task = self._new(Task, name)
    self._charge_new(t, factory, Task.SIZE)
    self.tasks.append(t)
    if self.comm is not None:
        self.comm.task_created(t, creator)
    return t


def create_thread(self: Kernel, name: str, task: Task | None, factory: Factory | None = None) -> Thread:
    th: Thread = self._new(Thread, name)
    self._charge_new(th, factory, Thread.SIZE)
    if task is not None:
        th.task = task
        task.threads.append(th)
    self.threads.append(th)
    self.thread_ids[th.kid] = th
    if self.tracer is not None:
        self._trace(-1, "thread", th.kid, name=name, task=task.name if task else "",
                    space=task.kid if task else -1)
    return th


def boot_cap(self: Kernel, task: Task, slot: int, obj: KObject) -> None:
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


def create_sigma0(self: Kernel, entry: Entry, prio: int = 200, cpu: int = 0) -> Thread:
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


def create_root(self: Kernel, name: str, entry: Entry, prio: int = 100, cpu: int = 0,
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
    if self.commctl is not None:
        caps.append((SLOT_COMMCTL, self.commctl))  # the privileged manager of the comm model
    for slot, obj in caps:
        self._boot_cap(task, slot, obj)
    task.code.append(entry)
    self.start(th, 0, 0, prio=prio, cpu=cpu)
    return th


def start(self: Kernel, th: Thread, ip: int, sp: int, prio: int | None = None, cpu: int | None = None) -> None:
    """Host-side start of a bound thread (what run_thread + ex_regs do)."""
    assert th.task is not None, "a thread must be bound to a task to start"
    if prio is not None:
        th.prio = prio
    if cpu is not None:
        th.cpu = cpu
        th.cpus = 1 << cpu
    th.ip = ip
    th.coro = enter(th.task.code[ip], sp)
    th.started_at = self.now()
    self._make_ready(th)
