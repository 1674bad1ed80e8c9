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

The kernel is one class, :class:`Kernel`, laid out by concern the way seL4
and Fiasco give each concern a file.  This module keeps the kernel's state,
the trap loop and scheduling; the operations live beside it, each module a
set of functions that take the kernel as ``self`` and that the class binds
under their method names (a table of contents at the top of the class):

=============  ==========================================================
``ipc``        the IPC path and fastpath, typed items, reply capabilities
``mapdb``      map, grant, unmap, revocation; page tables; flexpage plans
``invoke``     kernel-object invocations (Factory, Task, Thread, Scheduler,
               gate, Log), decode then perform
``irq``        Irq and ICU objects, interrupt delivery
``fault``      exception IPC, page faults, native memory and port accesses
``resv``       reservations, budgets, periodic threads
``lifecycle``  object creation and destruction, kernel-memory charges, boot
``common``     plain-int constants and checks the hot paths share
=============  ==========================================================

Binding a module's function as a class attribute makes it an ordinary
method: the same lookup, the same call cost, so the split costs nothing on
the IPC path.

Every event goes through one hook: ``if self.tracer is not None``.
Nothing here prints; the Log object writes to the machine's UART.
"""

from __future__ import annotations

import signal
import threading
import zlib
from collections import deque
from collections.abc import Callable
from typing import Any

from l4sim.kernel import comm, fault, invoke, ipc, irq, kmem, lifecycle, mapdb, resv
from l4sim.kernel.abi import TRAP_BAD_TRAP, TRAP_PY_EXCEPTION, WORD_MASK
from l4sim.kernel.caps import CapEntry
from l4sim.kernel.common import _DEPLETED, _READY, _close
from l4sim.kernel.costs import CostModel
from l4sim.kernel.lifetime import Lifetime
from l4sim.kernel.objects import (
    CommCtl,
    Factory,
    Icu,
    IpcGate,
    Irq,
    Log,
    SchedulerObj,
    Task,
    Thread,
)
from l4sim.kernel.resv import Restore as _Restore
from l4sim.kernel.sched import EDF_LEVEL, LEVELS, RESV_BASE, EdfQueue
from l4sim.kernel.traps import (
    Clock,
    Compute,
    Fault,
    Ipc,
    LoadCode,
    MarkSecret,
    Msg,
    NextPeriod,
    SaveReply,
)
from l4sim.kernel.vspace import TRAP_PAGE_FAULT, IoAccess, MemAccess, MemMap
from l4sim.machine.board import Machine
from l4sim.machine.events import PRIO_CORE, Event


class _HostInterrupt:
    """While the kernel runs, Ctrl-C at the host sets ``kernel.interrupted`` instead of raising.

    Python raises :class:`KeyboardInterrupt` wherever the main thread happens
    to be -- most often inside a program's coroutine, where it would look like
    that program's own exception.  So the run loop takes it between two
    events instead; a second Ctrl-C before then raises at once (a run stuck
    inside one event can still be stopped).  Installed only from the main
    thread and only over Python's default handler: a host that handles
    SIGINT itself (``l4sim linux run`` types it to the guest) keeps its own.
    """

    __slots__ = ("kernel", "old")

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.old: Any = None

    def __enter__(self) -> None:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.old = signal.signal(signal.SIGINT, self._on_sigint)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
            self.old = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.kernel.interrupted:
            raise KeyboardInterrupt
        self.kernel.interrupted = 1


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
    #: unicorn instances serving live tasks at most; past it the least recently run one serves
    #: the next task (``guest.cpu_of``): host memory stays bounded however many tasks a guest makes
    guest_cpus_max = 16
    #: called with a guest thread just before it runs its first instruction (a tool's probe,
    #: e.g. ``l4sim bench workloads``' start-up time; the model never reads it back)
    guest_first_run: Callable[[Thread], None] | None = None

    def __init__(self, machine: Machine, costs: CostModel | None = None, tracer: Any = None,
                 comm_model: str = "capabilities", kmem_model: str = "quotas",
                 kmem_pool: int = kmem.DEFAULT_POOL) -> None:
        self.machine = machine
        #: the communication-control model (kernel/comm.py); None: capabilities, the default
        self.comm: comm.CommModel | None = comm.make(comm_model)
        self.comm_model = comm_model
        #: the comm-control object of a model (the root task's, at SLOT_COMMCTL)
        self.commctl: CommCtl | None = None
        #: the kernel-memory model (kernel/kmem.py); None: per-factory quotas, the default
        self.kmem: kmem.KmemModel | None = kmem.make(kmem_model, kmem_pool)
        self.kmem_model = kmem_model
        #: the secrets and their copies (kernel/lifetime.py); None until the first is marked
        self.lifetime: Lifetime | None = None
        #: frames lent to the kernel (lend-to-kernel, kpager), until their task goes
        self.kmem_lent: list[kmem.Lent] = []
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
        #: Ctrl-C pressed at the host since the last event (see :meth:`run`)
        self.interrupted = 0
        # singletons reachable through the initial capabilities
        self.icu = self._new(Icu)
        self.log = self._new(Log)
        self.scheduler = self._new(SchedulerObj)
        if self.comm is not None:
            self.commctl = self._new(CommCtl)
        #: every thread by its global id (the kernel id), for the thread-id models
        self.thread_ids: dict[int, Thread] = {}
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
            MarkSecret: self._sys_mark_secret,
        }
        self._kinvoke: dict[type, Callable[[Thread, CapEntry, Ipc], Msg]] = {
            Factory: self._inv_factory,
            Task: self._inv_task,
            Thread: self._inv_thread,
            Irq: self._inv_irq,
            SchedulerObj: self._inv_scheduler,
            Icu: self._inv_icu,
            Log: self._inv_log,
            CommCtl: self._inv_commctl,
            IpcGate: self._inv_gate,
        }

    # --- the mapping database: map, grant, unmap and revocation of capabilities, pages, ports (mapdb.py)
    cap_insert = mapdb.cap_insert
    mdb_remove = mapdb.mdb_remove
    cap_map = mapdb.cap_map
    _cut_rights = mapdb.cut_rights
    _mem_changed = mapdb.mem_changed
    code_written = mapdb.code_written
    _mem_unlink = mapdb.mem_unlink
    mem_insert = mapdb.mem_insert
    sigma0_root = mapdb.sigma0_root
    mem_map = mapdb.mem_map
    _plan_map = mapdb.plan_map
    _perform_map = mapdb.perform_map
    _perform_items = mapdb.perform_items
    cap_remove = mapdb.mdb_remove

    # --- object life: creation, destruction, kernel memory (lifecycle.py)
    _next_kid = lifecycle.next_kid
    destroy = lifecycle.destroy
    _uncharge = staticmethod(lifecycle.uncharge)
    _kill = lifecycle.kill
    _drop_reply = lifecycle.drop_reply
    _charge_new = lifecycle.charge_new
    create_factory = lifecycle.create_factory
    create_task = lifecycle.create_task
    create_thread = lifecycle.create_thread
    _boot_cap = lifecycle.boot_cap
    create_sigma0 = lifecycle.create_sigma0
    create_root = lifecycle.create_root
    start = lifecycle.start

    # --- exceptions, page faults, memory and port accesses (fault.py)
    _sys_mark_secret = fault.sys_mark_secret
    _sys_fault = fault.sys_fault
    _sys_mem = fault.sys_mem
    _mmio = fault.mmio
    _written = fault.written
    _page_fault = fault.page_fault
    _sys_io = fault.sys_io
    _exception = fault.exception
    _exc_dest = fault.exc_dest

    # --- IPC: the fastpath, the full path, typed items, reply capabilities (ipc.py)
    _sys_save_reply = ipc.sys_save_reply
    _lookup = ipc.lookup
    _words_ok = staticmethod(ipc.words_ok)
    _fail_now = ipc.fail_now
    _ipc_fail = ipc.ipc_fail
    _unblock = ipc.unblock
    _wake = ipc.wake
    _exc_failed = ipc.exc_failed
    _block = ipc.block
    _timeout = ipc.timeout
    _sys_ipc_fast = ipc.sys_ipc_fast
    _fast_call = ipc.fast_call
    _fast_call_to = ipc.fast_call_to
    _reply_for = ipc.reply_for
    _fast_perform = ipc.fast_perform
    _sys_ipc = ipc.sys_ipc
    _send = ipc.send
    _send_by_id = ipc.send_by_id

    # --- kernel-memory models (kmem.py)
    _slot_thread = kmem.slot_thread
    _kmem_fault = kmem.kmem_fault
    _kmem_answer = kmem.kmem_answer
    _kmem_return = kmem.kmem_return
    kmem_revoke = kmem.kmem_revoke
    _rcv_phase = ipc.rcv_phase
    _deliver = ipc.deliver
    _decode_items = ipc.decode_items
    _reply_saved = ipc.reply_saved
    _reply = ipc.reply
    _receive = ipc.receive
    _receive_blocked = ipc.receive_blocked
    _take_pending = ipc.take_pending

    # --- interrupts (irq.py)
    _irq_msg = irq.irq_msg
    _hw_irq = irq.hw_irq
    _irq_fire = irq.irq_fire
    _inv_irq = irq.inv_irq
    _irq_detach = irq.irq_detach
    _inv_icu = irq.inv_icu

    # --- kernel-object invocations, decode then perform (invoke.py)
    _sys_load_code = invoke.sys_load_code
    _kernel_invoke = invoke.kernel_invoke
    _err = staticmethod(invoke.err)
    _rcv_slot = invoke.rcv_slot
    _inv_factory = invoke.inv_factory
    _inv_task = invoke.inv_task
    _inv_thread = invoke.inv_thread
    _ex_regs_guest = invoke.ex_regs_guest
    _guest_fpu = invoke.guest_fpu
    _inv_scheduler = invoke.inv_scheduler
    _inv_gate = invoke.inv_gate
    _inv_log = invoke.inv_log
    _inv_commctl = invoke.inv_commctl

    # --- reservations and periodic threads (resv.py)
    resv_info = resv.resv_info
    set_policy = resv.set_policy
    set_reservation = resv.set_reservation
    _resv_cancel = staticmethod(resv.resv_cancel)
    _replenish = resv.replenish
    _budget_check = resv.budget_check
    _deplete = resv.deplete
    _sys_restore = resv.sys_restore
    _sys_next_period = resv.sys_next_period
    _release = resv.release

    def select_models(self, comm_model: str | None = None, kmem_model: str | None = None,
                      kmem_pool: int = kmem.DEFAULT_POOL) -> None:
        """Choose the models of a kernel that has no task yet (a startup script's setting is
        read after the kernel was built, before anything boots)."""
        if comm_model is None and kmem_model is None:
            return
        if self.tasks:
            raise ValueError("the kernel's models are chosen before the first task exists")
        if kmem_model is not None:
            self.kmem = kmem.make(kmem_model, kmem_pool)
            self.kmem_model = kmem_model
        if comm_model is not None and comm_model != self.comm_model:
            self.comm = comm.make(comm_model)
            self.comm_model = comm_model
            if self.comm is not None and self.commctl is None:
                self.commctl = self._new(CommCtl)

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
        if self.tracer is not None:
            self._trace(-1, "new", -1, obj=obj.kid, type=obj.KIND, name=getattr(obj, "name", ""))
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

    def drop_guest_pool(self) -> None:
        """Free the pooled guest CPUs (at the end of a run)."""
        pool, self.guest_pool = self.guest_pool, []
        for cpu in pool:
            cpu.free()

    # ----------------------------------------------------------------- the loop
    def run(self, until: int | None = None, max_events: int | None = None,
            stop: Callable[[], bool] | None = None) -> str:
        """Run until no event is left, simulated time ``until``, ``max_events``, or ``stop()``.

        Returns why it stopped: ``"idle"``, ``"until"``, ``"events"`` or ``"stop"``.
        Ctrl-C at the host raises :class:`KeyboardInterrupt` from here, between
        two events (a second Ctrl-C at once, wherever the run is): a
        ``KeyboardInterrupt`` that a program raises itself is that program's
        exception, like any other.
        """
        with _HostInterrupt(self):
            return self._run(until, max_events, stop)

    def _run(self, until: int | None, max_events: int | None, stop: Callable[[], bool] | None) -> str:
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
            if self.interrupted:
                self.interrupted = 0
                raise KeyboardInterrupt
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

    def _make_ready(self, th: Thread, delay: int = 0, head: bool = False) -> None:
        """``th`` becomes runnable on its core; preempts a lower-priority current.  ``head``:
        ahead of the threads of its priority (a thread resumed by its exception's reply).

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
        core.enqueue(th, head)
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
                expired = False  # a best-effort quantum ran out (_pick refills it)
                if cur is not None and cur.quantum_left <= 0:
                    if cur.resv is not None:
                        self._budget_check(core, cur)
                    else:
                        expired = True
                cur = self._pick(core)
                if cur is None:
                    if inhook is None:
                        core.idle_since = core.time
                    return False
                if expired and inhook is None:
                    # a quantum ran out: back to the event loop, whose checks (``until``, a stop
                    # condition, Ctrl-C) then see a core that has nothing else due -- a thread
                    # spinning on traps cannot hold the run inside one event
                    core.step_ev = ev.at(core.time, self._step, core, prio=PRIO_CORE)
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
                if type(redo) is kmem.KmemRetry:  # a kernel-memory fault was answered
                    self._kmem_answer(core, cur, redo, answer)
                elif type(answer) is Msg and (answer.error or answer.proto < 0):  # the pager refused
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
            except BaseException as exc:  # the program raised: exception IPC, its description packed
                # (BaseException: SystemExit or KeyboardInterrupt raised by a program are its own
                # exceptions too; the host's Ctrl-C arrives between events, see run())
                cur.coro = None
                name, text = fault.describe_exception(exc)
                self._exception(core, cur, TRAP_PY_EXCEPTION, zlib.crc32(name.encode()),
                                fault.exception_words(text), text)
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
        if type(ns) is not int or ns < 0 or ns > WORD_MASK:
            self._exception(core, th, TRAP_BAD_TRAP, 1, (), "compute(ns) needs an int 0 .. 2**64-1")
            return
        if ns:
            th.compute_left += ns
        else:  # a trap that spends nothing still enters the kernel: time moves on
            self._charge(core, th, self.costs.syscall)

    def _sys_clock(self, core: Core, th: Thread, t: Clock) -> None:
        self._charge(core, th, self.costs.clock_read)
        th.resume = core.time




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

