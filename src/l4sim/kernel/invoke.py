"""Kernel-object invocations: decode, then perform.

An IPC to a capability naming a kernel object (not a thread or an IPC gate
used for messages) is an invocation of that object: Factory, Task, Thread,
Scheduler, IPC gate (with the kobject label), Log.  Each ``inv_*`` function
first checks rights and arguments without changing anything and returns an
error value (``-Err`` in the reply's label) when they are wrong; only then
does it change kernel state (seL4's ``decode_*``/``invoke_*`` pairs in
``object/tcb.c``, ``object/cnode.c``; Fiasco's ``task.cpp``,
``thread_object.cpp``, ``factory.cpp``).  IRQ and ICU invocations live in
:mod:`l4sim.kernel.irq`.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import (
    CAP_SLOTS,
    CTL_BIND_TASK,
    CTL_SET_EXC_HANDLER,
    CTL_SET_KPAGER,
    CTL_SET_PAGER,
    EX_REGS_CANCEL,
    EX_REGS_GUEST,
    EX_REGS_TRIGGER_EXCEPTION,
    IP_UNCHANGED,
    RESV_FLAGS,
    RESV_MIN_PERIOD,
    UNMAP_ALL_SPACES,
    UNMAP_DELETE_OBJ,
    WORD_MASK,
    Err,
    FactoryOp,
    Fpage,
    FpageType,
    GateOp,
    IpcErr,
    LogOp,
    Rights,
    SchedOp,
    TaskOp,
    ThreadOp,
    unpack_bytes,
)
from l4sim.kernel.caps import CapEntry, MapNode
from l4sim.kernel.common import _DEAD, _READY, _RECV, _SEND, _close, enter
from l4sim.kernel.objects import Factory, IpcGate, Irq, KObject, Task, Thread
from l4sim.kernel.traps import Ipc, LoadCode, Msg

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel


#: the W right as a plain int (scheduling changes need it on scheduler and thread)
_W = int(Rights.W)
#: an invocation's answer when kernel memory ran out
_ENOMEM = -int(Err.ENOMEM)


def sys_load_code(self: Kernel, core: Core, th: Thread, t: LoadCode) -> None:
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


def kernel_invoke(self: Kernel, core: Core, th: Thread, entry: CapEntry, t: Ipc) -> None:
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
        if (msg.proto == _ENOMEM and self.kmem is not None and self.kmem.faults
                and (type(obj) is Factory or type(obj) is Task)
                and self._kmem_fault(core, th, t, th.kmem_faults)):
            return  # the thread waits for its pager or kpager; then the invocation is retried
        if th.coro is not coro:  # ex_regs gave the caller itself a new entry: it starts afresh
            if self.tracer is not None:
                self._trace(core.id, "kinv", th.kid, obj=obj.KIND, op=t.words[0], err=0)
            th.resume = None
            return
    if self.tracer is not None:
        self._trace(core.id, "kinv", th.kid, obj=obj.KIND, op=t.words[0] if t.words else -1,
                    err=msg.proto)
    th.resume = msg


def err(e: int) -> Msg:
    return Msg(0, -e)


def rcv_slot(self: Kernel, t: Ipc) -> int | None:
    """The capability slot named by the first receive buffer (for new objects)."""
    if not t.rcv:
        return None
    b = t.rcv[0]
    if type(b) is not Fpage or b.kind != FpageType.OBJECT or type(b.base) is not int \
            or not 0 < b.base < CAP_SLOTS:
        return None
    return b.base


def inv_factory(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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
    kmem = self.kmem
    if f.used + size > f.limit if kmem is None else not kmem.admit(f, size, cls.SIZE):
        return self._err(Err.ENOMEM)
    # perform
    self._charge(self.running or self.cores[th.cpu], th, self.costs.object_create)
    obj = self._new(cls, *args)
    self._charge_new(obj, f, size)
    if cls is Task:
        obj.creator = task.kid
        self.tasks.append(obj)
        if self.comm is not None:
            self.comm.task_created(obj, task)  # its chief: the creator's task
    elif cls is Thread:
        self.threads.append(obj)
        self.thread_ids[obj.kid] = obj
        if self.tracer is not None:
            self._trace(th.cpu, "thread", obj.kid, name=obj.name, task="", space=-1)
    if self.cap_insert(task, slot, obj, Rights.RWSD, None) is None:
        self.destroy(obj)  # the slot held the caller's own task: nothing to put it in
        return self._err(Err.EINVAL)
    return Msg(0, 0, (obj.kid,), 0, (Fpage.obj(slot),))


def inv_task(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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


def inv_thread(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
    """Thread: control (bind, pager, exception handler), ex_regs, stats."""
    tgt: Thread = entry.obj  # type: ignore[assignment]
    w = t.words
    mytask = th.task
    assert mytask is not None
    if not w:
        return self._err(Err.EINVAL)
    op = w[0]
    if op == ThreadOp.STATS:
        return Msg(0, 0, (tgt.cpu_ns, tgt.ipcs, int(tgt.state), tgt.served_ns, tgt.kid))
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
        if flags & CTL_SET_KPAGER:  # word 5: the kpager's slot (the kpager kernel-memory model)
            kp = w[5] if len(w) > 5 else 0
            if kp >= CAP_SLOTS:
                return self._err(Err.ERANGE)
            tgt.kpager_slot = kp
        if bind is not None and tgt.task is None:
            tgt.task = bind
            bind.threads.append(tgt)
            if self.tracer is not None:
                self._trace(th.cpu, "bind", tgt.kid, task=bind.name, space=bind.kid)
        return Msg(0, 0)
    if op == ThreadOp.GUEST_FPU:
        return self._guest_fpu(tgt, w)
    if op == ThreadOp.KMEM_REVOKE:
        # words: op, frames -- the kpager takes frames back (kernel/kmem.py)
        if len(w) < 2 or self.kmem is None or self.kmem.name != "kpager":
            return self._err(Err.EINVAL if len(w) < 2 else Err.ENOSYS)
        return Msg(0, 0, (self.kmem_revoke(tgt, min(w[1], 1 << 20)),))
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
        if ip != IP_UNCHANGED:
            tgt.exc_pending = 0  # it restarts: its cancelled exception IPC must not kill it first
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
            tgt.coro = enter(tgt.task.code[ip], sp)
            tgt.resume = None
            if tgt.state is not _READY:
                tgt.started_at = self.now()
                self._make_ready(tgt)
        return Msg(0, 0, old)
    return self._err(Err.ENOSYS)


def ex_regs_guest(self: Kernel, tgt: Thread, ip: int, sp: int, flags: int) -> Msg:
    """ex_regs with EX_REGS_GUEST: (re)start ``tgt`` as an x86-64 guest thread at rip ``ip``,
    rsp ``sp``, the other registers zero.  Refused (EINVAL) for an unbound thread, a
    non-canonical rip and a thread running native code; EX_REGS_CANCEL is implied."""
    from l4sim.kernel.guest import GUEST_CONTEXT_SIZE, GuestThread, cpu_of

    if tgt.task is None or ip >= 1 << 47 or tgt.coro is not None:
        return self._err(Err.EINVAL)
    if tgt.guest is None:  # its register context is kernel memory, paid by the thread's factory
        f = tgt.factory
        if f is not None and f.used + GUEST_CONTEXT_SIZE > f.limit:
            return self._err(Err.ENOMEM)
        if f is not None:
            f.used += GUEST_CONTEXT_SIZE
        tgt.charge += GUEST_CONTEXT_SIZE
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


def guest_fpu(self: Kernel, tgt: Thread, w: tuple[int, ...]) -> Msg:
    """A guest thread's x87/SSE state (``kernel/guest.py``, ``FPU_WORDS`` words, the first
    416 bytes of an FXSAVE image): words (op, 0) read it, (op, 1, the words) write it.  What
    a pager of guest threads needs for fork, clone and signal frames.  EINVAL for a thread
    that runs no guest code."""
    from l4sim.kernel.guest import FPU_WORDS

    g = tgt.guest
    if g is None or len(w) < 2:
        return self._err(Err.EINVAL)
    if w[1] == 0 and len(w) == 2:
        return Msg(0, 0, g.fpu_state())
    if w[1] == 1 and len(w) == 2 + FPU_WORDS:
        g.set_fpu_state(w[2:])
        return Msg(0, 0)
    return self._err(Err.EINVAL)


def inv_scheduler(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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
        if not entry.rights & te.rights & _W:
            return self._err(Err.EPERM)  # changing a thread's scheduling: W on both capabilities
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
        if not entry.rights & te.rights & _W:
            return self._err(Err.EPERM)
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


def inv_gate(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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


def inv_log(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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


#: the comm-control operations: which words after the op name objects (capability slots of the
#: invoker, resolved here) and which are numbers; see kernel/comm.py
_COMMCTL_ARGS: dict[int, tuple[type | None, ...]] = {
    0: (Task, Task, None, Thread),  # set rule: source task, destination task, action, intermediary
    1: (None,),  # default action
    2: (Task, None),  # group: task, group number
    3: (Task, Thread),  # redirector: task, thread (0: nil)
}


def inv_commctl(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
    """The comm-control object: the privileged manager's tables of the communication model.

    Decodes every slot argument into the object it names (0 stays 0: "none"), then lets
    the model perform the change; refused without the W right.
    """
    comm = self.comm
    w = t.words
    task = th.task
    assert task is not None and comm is not None
    if not entry.rights & _W:
        return self._err(Err.EPERM)
    spec = _COMMCTL_ARGS.get(w[0])
    if spec is None:
        return self._err(Err.ENOSYS)
    if len(w) < 1 + len(spec):
        return self._err(Err.EINVAL)
    args: list[KObject | int] = []
    for kind, v in zip(spec, w[1:], strict=False):
        if kind is None or (kind is Thread and v == 0):
            args.append(v)
            continue
        e = task.caps.slots.get(v)
        if e is None or type(e.obj) is not kind:
            return self._err(Err.EINVAL)
        args.append(e.obj)
    r = comm.control(self, w[0], args)
    if r < 0:
        return self._err(-r)
    if self.tracer is not None:
        self._trace(th.cpu, "commctl", th.kid, op=w[0], model=comm.name)
    return Msg(0, 0)
