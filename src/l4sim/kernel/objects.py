"""Kernel objects: Task, Thread, IpcGate, Irq, Factory, Scheduler, Icu, Log, Reply.

These are the nouns of Fiasco.OC.  Each object is plain state; the kernel
(``kernel.py``) holds the logic that changes it, so that every change goes
through decode-then-perform and the tracing hook.  Every object carries
``refs`` (capabilities naming it) and ``factory`` (whose quota paid for it).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from l4sim.kernel.caps import CapSpace
from l4sim.kernel.vspace import AddressSpace

if TYPE_CHECKING:
    from l4sim.kernel.abi import MapItem


class KObject:
    """Base of every kernel object."""

    __slots__ = ("alive", "charge", "factory", "kid", "refs")
    #: kernel memory charged for one object of this type (bytes)
    SIZE = 64
    #: short name used in traces and ``cap_info``
    KIND = "kobject"
    #: numeric type for ``cap_info`` (the object's protocol label)
    PROTO = -10

    def __init__(self, kid: int) -> None:
        self.kid = kid
        self.refs = 0
        self.alive = True
        self.factory: Factory | None = None
        #: bytes of kernel memory charged to ``factory`` for this object
        self.charge = 0

    def __repr__(self) -> str:
        return f"<{self.KIND} #{self.kid}>"


class Task(KObject):
    """A protection domain: a capability space and an address space."""

    __slots__ = ("caps", "code", "creator", "name", "threads", "vspace")
    SIZE = 4096
    KIND = "task"
    PROTO = -11

    def __init__(self, kid: int, name: str) -> None:
        super().__init__(kid)
        self.name = name
        self.caps = CapSpace()
        self.vspace = AddressSpace()
        #: native code loaded into this task: ip -> entry function
        self.code: list[Callable[..., Coroutine[Any, Any, Any]]] = []
        #: threads bound to this task, in binding order
        self.threads: list[Thread] = []
        #: kid of the task whose factory call made this one (-1: made at boot); for
        #: observation only (the summary groups a Linux instance's processes by it)
        self.creator = -1


class TS(IntEnum):
    """Thread states.  A READY thread is either queued or the current one of its core."""

    INACTIVE = 0  # created or stopped; not schedulable until ex_regs starts it
    READY = 1  # runnable (running when it is its core's current thread)
    SEND = 2  # blocked in a send phase, queued on ``snd_target``
    RECV = 3  # blocked in a receive phase (open or closed on ``partner``)
    DEAD = 4  # exited or killed; never runs again
    DEPLETED = 5  # reserved, budget spent: READY again at its next replenishment
    WAIT_RELEASE = 6  # periodic: waits in ``next_period`` for its next release


#: ``Thread.exc_pending`` of a guest thread whose exception IPC is an alien L4 call
#: (``kernel/guest.py``): its handler's reply may let the call pass
EXC_ALIEN_CALL = 2


class Thread(KObject):
    """A thread of execution: native coroutine plus L4 IPC and scheduling state."""

    __slots__ = (
        "compute_left",
        "coro",
        "cpu",
        "cpu_ns",
        "cpus",
        "del_irq",
        "deleted",
        "env_factory",
        "exc_pending",
        "exc_slot",
        "exit_code",
        "faulted",
        "guest",
        "ip",
        "ipc_flags",
        "ipcs",
        "kmem_faults",
        "kpager_slot",
        "name",
        "pager_slot",
        "partner",
        "pending_irqs",
        "pfaults",
        "prio",
        "quantum",
        "quantum_left",
        "rcv_bufs",
        "redo",
        "reply",
        "reply_obj",
        "resume",
        "resv",
        "served_ns",
        "snd_dest",
        "snd_items",
        "snd_label",
        "snd_proto",
        "snd_queue",
        "snd_target",
        "snd_trap",
        "snd_via",
        "snd_words",
        "started_at",
        "state",
        "switches",
        "task",
        "timeout_ev",
        "traps",
    )
    SIZE = 2048
    KIND = "thread"
    PROTO = -12

    def __init__(self, kid: int, name: str) -> None:
        super().__init__(kid)
        self.name = name
        self.task: Task | None = None
        self.state = TS.INACTIVE
        # --- execution (the native executor's "registers")
        self.coro: Coroutine[Any, Any, Any] | None = None  # the running program, None before start
        self.resume: Any = None  # value the next trap returns to the program
        self.ip = 0  # entry index in task.code of the current coroutine
        self.traps = 0  # traps executed: the native "program counter"
        self.compute_left = 0  # ns of a preempted ``compute`` still to run
        self.exit_code: int | None = None
        self.faulted = False  # stopped by an unhandled exception
        self.guest: Any = None  # a guest.GuestThread: runs x86-64 code on unicorn instead of ``coro``
        #: 1 when the thread waits for an exception reply; EXC_ALIEN_CALL when that exception
        #: is a guest's L4 call, which a reply labelled PROTO_ALLOW_SYSCALL lets pass
        self.exc_pending: int = 0
        self.redo: Any = None  # a memory/port access to retry when its fault is resolved
        self.pfaults = 0  # page faults taken
        self.del_irq: Irq | None = None  # triggered when an IPC gate bound to me is deleted
        self.deleted: deque[int] = deque()  # labels of deleted gates not yet reported
        self.env_factory: Any = None  # unused by the kernel; user-level per-thread data
        # --- scheduling
        self.prio = 1
        self.quantum = 10_000_000
        self.quantum_left = self.quantum
        self.cpu = 0
        self.cpus = 1
        #: the reservation (scheduling context, ``sched.Reservation``) or None: best effort
        self.resv: Any = None
        # --- fault handling (slots in the bound task's space, looked up at fault time)
        self.pager_slot = 0
        self.exc_slot = 0
        self.kpager_slot = 0  # its kernel pager (the kpager kernel-memory model)
        self.kmem_faults = 0  # kernel-memory faults of the invocation being retried
        # --- IPC
        self.snd_queue: list[Thread] = []  # senders blocked on me, arrival order
        self.snd_target: Thread | None = None  # while SEND: whom I wait to send to
        self.snd_via: KObject | None = None  # gate or thread capability object used
        self.snd_label = 0  # label the receiver will see
        self.snd_dest = 0  # the original destination's id, when sent to an intermediary
        self.snd_proto = 0
        self.snd_words: tuple[int, ...] = ()
        self.snd_items: tuple[MapItem, ...] = ()
        self.snd_trap: Any = None  # the blocked sender's IPC (for its receive phase)
        self.ipc_flags = 0  # flags of the IPC in progress (for the receive phase)
        self.partner: KObject | None = None  # while RECV: closed-wait partner (None = open)
        self.rcv_bufs: tuple[Any, ...] = ()  # receive buffers of the receive in progress
        self.reply: Reply | None = None  # implicit reply capability of the last call received
        self.reply_obj: Reply | None = None  # the Reply object its calls reuse (see ipc.reply_for)
        self.pending_irqs: deque[Irq] = deque()
        self.timeout_ev: Any = None
        # --- accounting
        self.ipcs = 0
        self.cpu_ns = 0
        #: time servers spent on this thread's calls (while holding its reply capability,
        #: including servers they called in turn): what a client lends a passive server in
        #: seL4's MCS model, and what the Linux personality reports as system time
        self.served_ns = 0
        self.switches = 0
        self.started_at = 0

    def __repr__(self) -> str:
        return f"<thread #{self.kid} {self.name}>"


class IpcGate(KObject):
    """An IPC endpoint bound to a receiving thread, with a label it sees."""

    __slots__ = ("label", "thread")
    SIZE = 128
    KIND = "gate"
    PROTO = -10  # operations on the gate itself use the kobject label

    def __init__(self, kid: int, thread: Thread | None, label: int) -> None:
        super().__init__(kid)
        self.thread = thread
        self.label = label


class Reply(KObject):
    """A use-once reply capability: the right to answer one call.

    Every call creates one (held implicitly by the receiver); a server may
    move it into a slot to answer later (deferred reply).
    """

    __slots__ = ("caller", "holder")
    SIZE = 32
    KIND = "reply"
    PROTO = 0

    def __init__(self, kid: int, caller: Thread) -> None:
        super().__init__(kid)
        self.caller: Thread | None = caller
        #: the thread that holds it as its implicit reply capability (while it does)
        self.holder: Thread | None = None


class Irq(KObject):
    """An interrupt: a hardware line or a software-triggered notification."""

    __slots__ = ("count", "del_of", "label", "latched", "line", "masked", "pending", "thread")
    SIZE = 128
    KIND = "irq"
    PROTO = -18  # invoked with the IRQ-sender protocol; its messages carry -1

    def __init__(self, kid: int) -> None:
        super().__init__(kid)
        self.thread: Thread | None = None
        self.label = 0
        self.line: int | None = None  # hardware line when bound through the ICU
        self.masked = False
        self.latched = False  # fired while masked; delivered at unmask
        self.pending = False  # queued at the attached thread, not yet received
        self.count = 0  # deliveries
        self.del_of: Thread | None = None  # the thread whose gate deletions this Irq reports


class Factory(KObject):
    """Creates kernel objects and pays for them from its quota (bytes)."""

    __slots__ = ("limit", "used")
    SIZE = 256
    KIND = "factory"
    PROTO = -15

    def __init__(self, kid: int, limit: int) -> None:
        super().__init__(kid)
        self.limit = limit
        self.used = 0


class SchedulerObj(KObject):
    """The scheduler capability: places threads on cores with priorities."""

    __slots__ = ()
    KIND = "scheduler"
    PROTO = -14


class Icu(KObject):
    """The interrupt-control unit: binds hardware lines to Irq objects."""

    __slots__ = ("bound",)
    KIND = "icu"
    PROTO = -1  # Fiasco's ICU speaks the IRQ protocol

    def __init__(self, kid: int) -> None:
        super().__init__(kid)
        self.bound: dict[int, Irq] = {}


class CommCtl(KObject):
    """The comm-control object of a communication model with tables (kernel/comm.py).

    Held by the root task only (slot ``SLOT_COMMCTL``): the privileged
    manager of redirection tables, groups and redirectors.
    """

    __slots__ = ()
    KIND = "commctl"
    PROTO = -30


class Log(KObject):
    """The kernel console: early output written to the UART."""

    __slots__ = ()
    KIND = "log"
    PROTO = -13
