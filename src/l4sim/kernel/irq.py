"""Interrupts: IRQ objects, the interrupt controller (ICU) and delivery as IPC.

An :class:`~l4sim.kernel.objects.Irq` is attached to a thread with a label;
when it fires (a hardware line bound through the ICU, a software trigger,
or the deletion notification of a thread's IPC gates) the thread receives
an IPC with protocol label -1.  A hardware line stays masked after delivery
until the driver unmasks it; an interrupt that cannot be delivered is
queued at the thread or latched at the Irq (Fiasco's ``irq.cpp``,
``irq_chip.cpp``; seL4's ``object/interrupt.c``).

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from l4sim.kernel.abi import MSG_WORDS, Err, IcuOp, IrqOp, Proto, Rights
from l4sim.kernel.caps import CapEntry
from l4sim.kernel.common import _DEAD, _RECV
from l4sim.kernel.objects import Irq, Thread
from l4sim.kernel.traps import Ipc, Msg

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Kernel


def irq_msg(self: Kernel, irq: Irq, th: Thread) -> Msg:
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


def hw_irq(self: Kernel, line: int) -> None:
    irq = self.icu.bound.get(line)
    if irq is None:
        if self.tracer is not None:
            self._trace(-1, "irq", -1, irq=-1, line=line, delivered=0)
        return
    self._irq_fire(irq, self.costs.irq_entry)


def irq_fire(self: Kernel, irq: Irq, delay: int = 0) -> None:
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


def inv_irq(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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


def irq_detach(self: Kernel, irq: Irq) -> None:
    old = irq.thread
    if old is not None and irq.pending:
        old.pending_irqs.remove(irq)
        irq.pending = False
    irq.thread = None


def inv_icu(self: Kernel, th: Thread, entry: CapEntry, t: Ipc) -> Msg:
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
