"""What a native program sees: its :class:`Env` and typed capability handles.

A native program is ``async def main(env) -> int``.  Everything it does to
the world goes through ``env``: each method builds a trap (``kernel.traps``)
and awaits it, so the kernel sees one system call per ``await``.  Handles
such as :class:`Gate` or :class:`ThreadCap` hold nothing but a slot number in
the program's own capability space; the kernel checks authority on every
use, exactly as an L4Re program's ``L4::Cap<T>`` does.

Arguments are checked here before they become a trap: message words must be
ints with ``0 <= w < 2**64``, payloads bytes.  A wrong argument raises
:class:`TypeError`/:class:`ValueError` inside the program (an exception the
kernel then turns into exception IPC), with a message that says what to fix.
Kernel-object operations report failure by raising :class:`L4Error` from
these convenience wrappers; the raw :meth:`Env.ipc` returns error values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NamedTuple

from l4sim.kernel.abi import (
    CALL,
    CAP_SHIFT,
    CTL_BIND_TASK,
    CTL_SET_EXC_HANDLER,
    CTL_SET_PAGER,
    EX_REGS_CANCEL,
    IP_UNCHANGED,
    MSG_WORDS,
    RECV,
    REPLY,
    REPLY_AND_WAIT,
    SCHED_POLICY_NAMES,
    SEND,
    SEND_AND_WAIT,
    SLOT_FACTORY,
    SLOT_FIRST_FREE,
    SLOT_ICU,
    SLOT_LOG,
    SLOT_PAGER,
    SLOT_SCHEDULER,
    SLOT_TASK,
    SLOT_THREAD,
    TID_FLAG,
    UNMAP_ALL_SPACES,
    UNMAP_DELETE_OBJ,
    WAIT,
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
    Proto,
    Rights,
    SchedOp,
    StrBuf,
    StrItem,
    TaskOp,
    ThreadOp,
    pack_bytes,
)
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
from l4sim.kernel.vspace import IoAccess, MemAccess

Program = Callable[..., Coroutine[Any, Any, Any]]


class L4Error(Exception):
    """A kernel-object operation failed: ``err`` is the :class:`Err` number,
    or ``ipc_err`` the IPC error code when the invocation itself failed."""

    def __init__(self, err: int, what: str, ipc_err: int = 0) -> None:
        self.err = err
        self.ipc_err = ipc_err
        if ipc_err:
            name = IpcErr(ipc_err).name if ipc_err in IpcErr._value2member_map_ else hex(ipc_err)
        else:
            name = Err(err).name if err in Err._value2member_map_ else str(err)
        super().__init__(f"{what} failed: {name}")


class NoCapability(KeyError):
    """``env.cap(name)`` of a name the program was not given.

    The message names the program, the name asked for and the names it has
    (``counter: no capability 'stats' (it has: log, svc)``): the usual cause
    is a startup script that forgot to pass the capability, or a typo on
    either side.  A ``KeyError``, so ``except KeyError`` still catches it.
    """

    def __init__(self, owner: str, name: str, known: list[str]) -> None:
        who = f"{owner}: " if owner else ""
        # the whole message is the one argument: what the kernel reports of an uncaught one
        super().__init__(f"{who}no capability {name!r} (it has: {', '.join(known) or 'none'})")
        self.owner = owner
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return str(self.args[0])  # as written, without the quotes KeyError adds


def _words(words: tuple[object, ...], what: str = "message") -> tuple[int, ...]:
    for w in words:  # the common case first: plain machine words, returned as they are
        if type(w) is not int or w < 0 or w > WORD_MASK:
            break
    else:
        if len(words) <= MSG_WORDS:
            return words  # type: ignore[return-value]  # checked: all machine words
    out = tuple(int(w) if isinstance(w, int) and not isinstance(w, bool) else w for w in words)
    for w in out:
        if type(w) is not int or not 0 <= w <= WORD_MASK:
            raise TypeError(
                f"{what} words must be ints with 0 <= w < 2**64, got {w!r}; "
                "encode other data as integers or bytes"
            )
    if len(out) > MSG_WORDS:
        raise ValueError(f"a message has at most {MSG_WORDS} words, got {len(out)}")
    return out  # type: ignore[return-value]  # every element was checked above


def _check(msg: Msg, what: str) -> Msg:
    if msg.error:
        raise L4Error(0, what, msg.error)
    if msg.proto < 0:
        raise L4Error(-msg.proto, what)
    return msg


class Cap:
    """A capability handle: a slot in the program's own capability space."""

    __slots__ = ("env", "slot")
    PROTO = 0

    def __init__(self, env: Env, slot: int) -> None:
        self.env = env
        self.slot = slot

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.slot})"

    def fpage(self, rights: int = Rights.RWSD) -> Fpage:
        """This capability as an object flexpage (to send in a map item)."""
        return Fpage.obj(self.slot, 0, rights)

    def invoke(self, op: int, *args: int, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Ipc:
        """A kernel-object invocation (a call with this object's protocol)."""
        return Ipc(self.slot, CALL, int(self.PROTO), (op & WORD_MASK, *_words(args)), rcv=rcv)

    async def _op(self, what: str, op: int, *args: int, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Msg:
        return _check(await self.invoke(op, *args, rcv=rcv), what)


class IpcCap(Cap):
    """Something IPC can be sent to: an IPC gate, a thread, a reply capability."""

    __slots__ = ()

    def call(self, proto: int = 0, *words: int, items: tuple[MapItem | StrItem, ...] = (),
             timeout: int | None = None, rcv_timeout: int | None = None,
             rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """Send and wait for the reply (``l4_ipc_call``)."""
        return Ipc(self.slot, CALL, int(proto), _words(words), tuple(items), timeout, rcv_timeout, tuple(rcv))

    def send(self, proto: int = 0, *words: int, items: tuple[MapItem | StrItem, ...] = (),
             timeout: int | None = None) -> Awaitable[Msg]:
        """Send only (``l4_ipc_send``)."""
        return Ipc(self.slot, SEND, int(proto), _words(words), tuple(items), timeout)

    def send_and_wait(self, proto: int = 0, *words: int, items: tuple[MapItem | StrItem, ...] = (),
                      timeout: int | None = None, rcv_timeout: int | None = None,
                      rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """Send, then wait for any message (``l4_ipc_send_and_wait``)."""
        return Ipc(self.slot, SEND_AND_WAIT, int(proto), _words(words), tuple(items), timeout,
                   rcv_timeout, tuple(rcv))

    def receive(self, timeout: int | None = None, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """Closed wait: receive from this thread (or Irq) only."""
        return Ipc(self.slot, RECV, 0, (), (), None, timeout, tuple(rcv))


class Gate(IpcCap):
    """An IPC gate."""

    __slots__ = ()

    async def bind(self, thread: ThreadCap, label: int = 0) -> None:
        """Bind the gate to ``thread`` with ``label`` (needs the S right)."""
        _check(await Ipc(self.slot, CALL, int(Proto.KOBJECT), (int(GateOp.BIND), thread.slot, label)),
               "gate bind")

    async def label(self) -> int:
        """The gate's label (0 without the S right)."""
        return (_check(await Ipc(self.slot, CALL, int(Proto.KOBJECT), (int(GateOp.GET_INFO),)),
                       "gate info")).words[0]


class ReplyCap(IpcCap):
    """A saved, use-once reply capability (deferred reply): ``send`` the answer."""

    __slots__ = ()

    def call(self, *args: Any, **kw: Any) -> Awaitable[Msg]:
        raise TypeError("a reply capability answers once: use send(), not call()")


class ThreadCap(IpcCap):
    """A thread: IPC partner and kernel object (control, ex_regs, stats)."""

    __slots__ = ()
    PROTO = Proto.THREAD

    async def control(self, *, pager: int | None = None, exc_handler: int | None = None,
                      bind: TaskCap | None = None) -> None:
        """Set pager / exception handler (slots in the bound task) and bind to a task."""
        flags = 0
        if pager is not None:
            flags |= CTL_SET_PAGER
        if exc_handler is not None:
            flags |= CTL_SET_EXC_HANDLER
        if bind is not None:
            flags |= CTL_BIND_TASK
        await self._op("thread control", ThreadOp.CONTROL, flags, pager or 0, exc_handler or 0,
                       bind.slot if bind is not None else 0)

    async def ex_regs(self, ip: int = IP_UNCHANGED, sp: int = 0, cancel: bool = False) -> tuple[int, ...]:
        """Set instruction pointer (a code index) and stack word; optionally cancel IPC.

        Returns the previous (ip, trap count, state).
        """
        msg = await self._op("ex_regs", ThreadOp.EX_REGS, ip, sp, EX_REGS_CANCEL if cancel else 0)
        return msg.words

    async def register_delete_irq(self, irq: IrqCap) -> None:
        """Have ``irq`` fire when an IPC gate bound to this thread is deleted.

        The Irq's message carries the labels of the deleted gates as words:
        how a server learns that a client's session is gone.
        """
        await self._op("register_delete_irq", ThreadOp.REGISTER_DELETE_IRQ, irq.slot)

    async def stats(self) -> tuple[int, ...]:
        """(cpu time in ns, IPC count, state, served ns, thread id)."""
        return (await self._op("thread stats", ThreadOp.STATS)).words

    async def tid(self) -> int:
        """The destination word naming this thread by its global id (``abi.tid``): what IPC
        under a thread-id communication model sends to (kernel/comm.py)."""
        return TID_FLAG | (await self.stats())[4]


class TaskCap(Cap):
    """A task: capability map/unmap into it, capability info, code loading."""

    __slots__ = ()
    PROTO = Proto.TASK

    async def map(self, src: TaskCap, fpage: Fpage, dst: int, grant: bool = False) -> int:
        """Map (or grant) ``fpage`` from ``src`` into this task (``l4_task_map``).

        ``dst`` is the destination slot for capabilities and ports, the
        destination address for memory.  Returns the number of units mapped.
        """
        base = dst if fpage.kind == FpageType.MEMORY else dst << CAP_SHIFT
        return (await self._op("task map", TaskOp.MAP, src.slot, fpage.word(),
                               base | (2 if grant else 0))).words[0]

    async def unmap(self, fpage: Fpage, include_self: bool = False) -> int:
        """Revoke the rights of ``fpage`` from everything derived from it (and it)."""
        flags = UNMAP_ALL_SPACES if include_self else 0
        return (await self._op("task unmap", TaskOp.UNMAP, fpage.word(), flags)).words[0]

    async def delete(self, slot: int) -> int:
        """Delete the object in ``slot`` (needs the D right), else just unmap it."""
        return (await self._op("task delete", TaskOp.UNMAP, Fpage.obj(slot).word(), UNMAP_DELETE_OBJ)).words[0]

    async def cap_info(self, slot: int) -> tuple[int, int, int]:
        """(valid, object protocol as a word, rights) of ``slot`` in this task."""
        w = (await self._op("cap info", TaskOp.CAP_INFO, slot)).words
        return w[0], w[1], w[2]

    async def load_code(self, entry: Callable[[int], Coroutine[Any, Any, Any]]) -> int:
        """Put native code into this task; returns the ip to start threads at."""
        ip = await LoadCode(self.slot, entry)
        if ip < 0:
            raise L4Error(-ip, "load code")
        return int(ip)


class FactoryCap(Cap):
    """A factory: creates kernel objects, charged against its quota."""

    __slots__ = ()
    PROTO = Proto.FACTORY

    async def _create(self, kind: int, cls: type[Cap], *args: int, slot: int | None = None) -> Any:
        env = self.env
        s = env.alloc_slot() if slot is None else slot
        try:
            await self._op(f"create {cls.__name__}", kind, *args, rcv=(Fpage.obj(s),))
        except L4Error:
            if slot is None:
                env.free_slot(s)
            raise
        return cls(env, s)

    async def create_task(self, name: str = "", slot: int | None = None) -> TaskCap:
        return await self._create(FactoryOp.TASK, TaskCap, *_name(name), slot=slot)  # type: ignore[no-any-return]

    async def create_thread(self, name: str = "", slot: int | None = None) -> ThreadCap:
        return await self._create(FactoryOp.THREAD, ThreadCap, *_name(name), slot=slot)  # type: ignore[no-any-return]

    async def create_gate(self, thread: ThreadCap | None, label: int = 0, slot: int | None = None) -> Gate:
        if label & 3:
            raise ValueError("an IPC gate label must have its two low bits clear (they carry rights)")
        return await self._create(FactoryOp.GATE, Gate, thread.slot if thread else 0, label, slot=slot)  # type: ignore[no-any-return]

    async def create_irq(self, slot: int | None = None) -> IrqCap:
        return await self._create(FactoryOp.IRQ, IrqCap, slot=slot)  # type: ignore[no-any-return]

    async def create_factory(self, quota: int, slot: int | None = None) -> FactoryCap:
        return await self._create(FactoryOp.FACTORY, FactoryCap, quota, slot=slot)  # type: ignore[no-any-return]


def _name(name: str) -> tuple[int, ...]:
    return pack_bytes(name.encode()) if name else ()


class IrqCap(IpcCap):
    """An interrupt object: hardware line (through the ICU) or software notification."""

    __slots__ = ()
    PROTO = Proto.IRQ_SENDER

    async def attach(self, thread: ThreadCap, label: int = 0) -> None:
        await self._op("irq attach", IrqOp.ATTACH, thread.slot, label)

    async def detach(self) -> None:
        await self._op("irq detach", IrqOp.DETACH)

    async def trigger(self) -> None:
        await self._op("irq trigger", IrqOp.TRIGGER)

    async def mask(self) -> None:
        await self._op("irq mask", IrqOp.MASK)

    async def unmask(self) -> None:
        await self._op("irq unmask", IrqOp.UNMASK)


class IcuCap(Cap):
    """The interrupt-control unit: hardware lines to Irq objects."""

    __slots__ = ()
    PROTO = Proto.IRQ

    async def bind(self, line: int, irq: IrqCap) -> None:
        await self._op("icu bind", IcuOp.BIND, line, irq.slot)

    async def unbind(self, line: int, irq: IrqCap) -> None:
        await self._op("icu unbind", IcuOp.UNBIND, line, irq.slot)

    async def info(self) -> tuple[int, ...]:
        return (await self._op("icu info", IcuOp.INFO)).words


class SchedulerCap(Cap):
    """The scheduler: priorities, quanta and CPU placement."""

    __slots__ = ()
    PROTO = Proto.SCHEDULER

    async def run_thread(self, thread: ThreadCap, prio: int, quantum: int = 10_000_000,
                         cpus: int = 1) -> None:
        """Set ``thread``'s priority, quantum (ns) and CPU set (bit mask); migrates it.

        The thread goes twice: as its slot number in word 1, which the kernel's scheduler
        reads, and as a capability map item, which is what a scheduler *proxy* (a server,
        L4Re's ``Sched_proxy`` in moe) needs -- a slot number in the caller's space means
        nothing to it.  The kernel ignores the item, so one message works against both.
        """
        words = _words((int(SchedOp.RUN_THREAD), thread.slot, prio, quantum, cpus))
        _check(await Ipc(self.slot, CALL, int(self.PROTO), words, (MapItem(thread.fpage()),)),
               "run_thread")

    async def set_reservation(self, thread: ThreadCap, budget: int, period: int = 0, deadline: int = 0,
                              flags: int = 0, start: int = 0) -> None:
        """Give ``thread`` ``budget`` ns of CPU time per ``period`` ns, ahead of every best-effort
        thread; ``deadline`` relative (0: the period), ``flags`` ``RESV_*``, ``start`` the first
        release in ns since boot (0: now).  ``budget`` 0 removes the reservation."""
        await self._op("set_reservation", SchedOp.SET_RESERVATION, thread.slot, budget, period,
                       deadline, flags, start)

    async def info(self) -> tuple[int, ...]:
        """(number of CPUs, highest priority, mask of online CPUs)."""
        return (await self._op("scheduler info", SchedOp.INFO)).words

    async def idle_time(self, cpu: int) -> int:
        return (await self._op("idle_time", SchedOp.IDLE_TIME, cpu)).words[0]

    async def resv_info(self, cpu: int) -> ResvInfo:
        """What the kernel knows of ``cpu``'s reservations: its policy ("fp" or "edf"), the live
        threads with a reservation there, their utilisation in ppm (rounded up) and deadline misses."""
        w = (await self._op("resv_info", SchedOp.RESV_INFO, cpu)).words
        return ResvInfo(SCHED_POLICY_NAMES[w[0]], w[1], w[2], w[3])


class ResvInfo(NamedTuple):
    """The reply of :meth:`SchedulerCap.resv_info`."""

    policy: str
    reserved: int
    utilisation_ppm: int
    deadline_misses: int


class LogCap(Cap):
    """The kernel console."""

    __slots__ = ()
    PROTO = Proto.LOG

    async def write(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"log.write takes bytes, got {type(data).__name__}")
        chunk = 8 * (MSG_WORDS - 2)
        for i in range(0, max(len(data), 1), chunk):
            await self._op("log write", LogOp.WRITE, *pack_bytes(bytes(data[i : i + chunk])))


class Memory:
    """``env.mem``: loads and stores in the program's own address space.

    An access to a page that is not mapped (or not writable, for a store)
    faults: the kernel sends page-fault IPC to the thread's pager and retries
    the access when the pager has mapped the page.
    """

    __slots__ = ()

    def read(self, addr: int, n: int) -> Awaitable[bytes]:
        return MemAccess(addr, n)

    def write(self, addr: int, data: bytes) -> Awaitable[None]:
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"mem.write takes bytes, got {type(data).__name__}")
        return MemAccess(addr, len(data), bytes(data))

    async def read_word(self, addr: int) -> int:
        return int.from_bytes(await MemAccess(addr, 8), "little")

    def write_word(self, addr: int, value: int) -> Awaitable[None]:
        if type(value) is not int or not 0 <= value <= WORD_MASK:
            raise TypeError(f"a word is an int with 0 <= w < 2**64, got {value!r}")
        return MemAccess(addr, 8, value.to_bytes(8, "little"))


class Ports:
    """``env.io``: x86 in/out instructions on I/O ports mapped into the task."""

    __slots__ = ()

    def inb(self, port: int) -> Awaitable[int]:
        return IoAccess(port)

    def outb(self, port: int, value: int) -> Awaitable[None]:
        return IoAccess(port, value)


class TaskLocal:
    """State shared by all threads of one task (their common address space).

    Holds the names of the task's capabilities and its slot allocator, like
    L4Re's environment page and capability allocator.  Every thread of the
    task allocates from this one allocator, so no two threads (the program
    and its region manager, say) ever receive into the same slot.  ``owner``
    is the program's name, for error messages.
    """

    __slots__ = ("cpu", "free", "names", "next_slot", "owner")

    def __init__(self, names: dict[str, int], first_free: int = SLOT_FIRST_FREE, owner: str = "",
                 cpu: int = 0) -> None:
        self.names = dict(names)
        self.owner = owner
        self.next_slot = max([first_free, *(s + 1 for s in names.values())])
        self.free: list[int] = []
        #: the core new threads start on unless told (the loader puts the program's first core here)
        self.cpu = cpu


_KINDS: dict[str, type[Cap]] = {
    "task": TaskCap, "factory": FactoryCap, "thread": ThreadCap, "pager": Gate, "log": LogCap,
    "icu": IcuCap, "scheduler": SchedulerCap,
}

#: the capabilities sigma0 starts with
SIGMA0_CAPS = {"task": SLOT_TASK, "thread": SLOT_THREAD, "log": SLOT_LOG}

INITIAL = {"task": SLOT_TASK, "factory": SLOT_FACTORY, "thread": SLOT_THREAD, "log": SLOT_LOG,
           "icu": SLOT_ICU, "scheduler": SLOT_SCHEDULER}


class Env:
    """A native thread's window on the system: named capabilities and traps.

    ``env.task``, ``env.factory``, ``env.thread``, ``env.log``, ``env.icu``,
    ``env.scheduler`` are the initial capabilities (where the program has
    them); ``env.cap(name)`` gives any named capability, typed by ``kinds``.
    """

    def __init__(self, local: TaskLocal, thread_slot: int = SLOT_THREAD,
                 kinds: dict[str, type[Cap]] | None = None, args: tuple[Any, ...] = ()) -> None:
        self.local = local
        self.kinds = {**_KINDS, **(kinds or {})}
        self.thread = ThreadCap(self, thread_slot)
        self.args = args
        self.task = TaskCap(self, SLOT_TASK)
        self.factory = FactoryCap(self, SLOT_FACTORY)
        self.log = LogCap(self, SLOT_LOG)
        self.icu = IcuCap(self, SLOT_ICU)
        self.scheduler = SchedulerCap(self, SLOT_SCHEDULER)
        self.pager = Gate(self, SLOT_PAGER)
        self.mem = Memory()
        self.io = Ports()

    # --- capabilities by name
    def cap(self, name: str, kind: type[Cap] | None = None) -> Any:
        """The capability the program was given under ``name``."""
        slot = self.local.names.get(name)
        if slot is None:
            raise NoCapability(self.local.owner, name, sorted(self.local.names))
        cls = kind or self.kinds.get(name, Gate)
        return cls(self, slot)

    def has(self, name: str) -> bool:
        return name in self.local.names

    def name(self, name: str, cap: Cap) -> None:
        """Record ``cap`` under ``name`` for every thread of this task."""
        self.local.names[name] = cap.slot

    def alloc_slot(self) -> int:
        """A free capability slot of this task (L4Re's cap allocator)."""
        loc = self.local
        if loc.free:
            return loc.free.pop()
        s = loc.next_slot
        loc.next_slot += 1
        return s

    def free_slot(self, slot: int) -> None:
        self.local.free.append(slot)

    # --- IPC
    def ipc(self, trap: Ipc) -> Awaitable[Msg]:
        """The raw system call: any :class:`Ipc` trap, answered with error values."""
        return trap

    def wait(self, timeout: int | None = None, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """Open wait: the next message from any gate, thread or IRQ bound to this thread."""
        return Ipc(0, WAIT, 0, (), (), None, timeout, tuple(rcv))

    def reply_and_wait(self, proto: int = 0, *words: int, items: tuple[MapItem | StrItem, ...] = (),
                       timeout: int | None = None, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """Answer the last call and wait for the next message (the server's syscall)."""
        return self.answer(proto, words, tuple(items), timeout, tuple(rcv))

    def answer(self, proto: int, words: tuple[int, ...], items: tuple[MapItem | StrItem, ...] = (),
               timeout: int | None = None, rcv: tuple[Fpage | StrBuf, ...] = ()) -> Awaitable[Msg]:
        """:meth:`reply_and_wait` with the words as one tuple: for a server's loop that has its
        reply as (label, words, items), without unpacking it into arguments again."""
        return Ipc(0, REPLY_AND_WAIT, int(proto), _words(words), items, 0, timeout, rcv)

    def reply(self, proto: int = 0, *words: int, items: tuple[MapItem | StrItem, ...] = ()) -> Awaitable[Msg]:
        """Answer the last call without waiting."""
        return Ipc(0, REPLY, int(proto), _words(words), tuple(items), 0)

    def receive(self, partner: IpcCap, timeout: int | None = None) -> Awaitable[Msg]:
        """Closed wait on one thread or Irq."""
        return Ipc(partner.slot, RECV, 0, (), (), None, timeout)

    async def save_reply(self, slot: int | None = None) -> ReplyCap:
        """Keep the reply capability of the last call in a slot, to answer later."""
        s = self.alloc_slot() if slot is None else slot
        r = await SaveReply(s)
        if r != 0:
            raise L4Error(-r, "save reply")
        return ReplyCap(self, s)

    # --- time and faults
    def compute(self, ns: int) -> Awaitable[None]:
        """Spend ``ns`` nanoseconds of CPU time (preemptible)."""
        if type(ns) is not int or ns < 0:
            raise ValueError(f"compute(ns) needs an int >= 0, got {ns!r}")
        return Compute(ns)

    async def mark_secret(self, addr: int, n: int, name: str = "") -> int:
        """Mark ``n`` bytes at ``addr`` of this program's memory as a secret called ``name``:
        the kernel follows its copies from now on (``l4sim lifetime``, kernel/lifetime.py).
        Returns the secret's number; raises :class:`L4Error` (EINVAL: 8 .. 4096 bytes and a
        name of at most 64 characters; EFAULT: the bytes are not mapped)."""
        r = await MarkSecret(addr, n, name)
        if r < 0:
            raise L4Error(-r, "mark secret")
        return int(r)

    def clock(self) -> Awaitable[int]:
        """Simulated time in ns since boot."""
        return Clock()

    def next_period(self, jitter: int = 0) -> Awaitable[int]:
        """Periodic threads (Fiasco's old ``l4_rt_next_period``): end the current job and sleep
        until the next release, delayed by a random 0..``jitter`` ns.  The first call waits for
        the first release.  Returns the new job's number, 0 when the reservation was removed
        meanwhile, ``-EINVAL`` without a reservation."""
        return NextPeriod(jitter)

    def fault(self, trapno: int, code: int = 0, *words: int) -> Awaitable[Msg]:
        """Raise an exception to the exception handler; returns its reply."""
        return Fault(trapno, code, _words(words))

    async def print(self, *parts: object, sep: str = " ", end: str = "\n") -> None:
        """Write text to the kernel console."""
        await self.log.write((sep.join(str(p) for p in parts) + end).encode())

    # --- threads of this task
    async def spawn(self, fn: Program, *args: Any, name: str = "", prio: int = 1, cpu: int | None = None,
                    quantum: int = 10_000_000, exc_handler: int | None = None,
                    pager: int = SLOT_PAGER) -> ThreadCap:
        """Start ``fn(env, *args)`` as a new thread of this task.

        Uses only system calls: create a thread, bind it to this task (with
        the task's pager, slot 4, unless told otherwise), load the entry,
        place it with the scheduler (the kernel's, or the scheduler proxy a
        program started by ned holds) and start it with ex_regs.  ``cpu``
        defaults to the task's first core (``TaskLocal.cpu``: core 0, or the
        lowest of the cores its startup script gave it).
        """
        if cpu is None:
            cpu = self.local.cpu
        th = await self.factory.create_thread(name or getattr(fn, "__name__", ""))
        await th.control(bind=self.task, exc_handler=exc_handler, pager=pager)
        local = self.local
        kinds = self.kinds

        def entry(sp: int) -> Coroutine[Any, Any, Any]:
            return fn(Env(local, th.slot, kinds), *args)

        ip = await self.task.load_code(entry)
        await self.scheduler.run_thread(th, prio, quantum, 1 << cpu)
        await th.ex_regs(ip, 0)
        return th


async def start_task(env: Env, name: str, fn: Program, caps: dict[str, Cap | tuple[Cap, int]] | None = None,
                     *, prio: int = 1, cpu: int = 0, quantum: int = 10_000_000, args: tuple[Any, ...] = (),
                     exc_handler: Cap | None = None, kinds: dict[str, type[Cap]] | None = None,
                     log: bool = True, grants: dict[str, Cap] | None = None,
                     pager: Cap | None = None) -> tuple[TaskCap, ThreadCap]:
    """Start ``fn`` as a program in a new task holding only the given capabilities.

    ``caps`` maps names to handles (mapped with all their rights; the caller
    keeps its own) or to ``(handle, rights)``; ``grants`` are moved: the child
    then holds the only capability, so the object's server learns of the
    child's death, and the caller's slot returns to its allocator.  Names of
    the initial layout (``log``, ``factory``, ``scheduler``, ...) go to their
    fixed slots, others from slot 8 on.  The child gets its own task and
    thread capabilities (slots 1 and 3), ``pager`` as slot 4 and its pager,
    and -- with ``log`` and no ``log`` of its own -- the kernel console (slot
    5): nothing ambient.  A minimal loader; the runtime's loader adds memory,
    a region manager and a parent.
    """
    task = await env.factory.create_task(name)
    th = await env.factory.create_thread(name)
    await th.control(bind=task)
    await task.map(env.task, task.fpage(), SLOT_TASK)
    await task.map(env.task, th.fpage(), SLOT_THREAD)
    names: dict[str, int] = {"task": SLOT_TASK, "thread": SLOT_THREAD}
    given: list[tuple[str, Cap, int, bool]] = [
        (cname, *(spec if isinstance(spec, tuple) else (spec, Rights.RWSD)), False)
        for cname, spec in (caps or {}).items()]
    given += [(cname, cap, Rights.RWSD, True) for cname, cap in (grants or {}).items()]
    if log and all(cname != "log" for cname, *_ in given):
        await task.map(env.task, env.log.fpage(Rights.W), SLOT_LOG)
        names["log"] = SLOT_LOG
    slot = SLOT_FIRST_FREE
    all_kinds = dict(kinds or {})
    for cname, cap, rights, grant in given:
        fixed = INITIAL.get(cname)
        dst = fixed if fixed is not None else slot
        await task.map(env.task, cap.fpage(rights), dst, grant=grant)
        if grant:
            env.free_slot(cap.slot)
        names[cname] = dst
        if fixed is None:
            all_kinds.setdefault(cname, type(cap))
            slot += 1
    if pager is not None:
        await task.map(env.task, pager.fpage(), SLOT_PAGER)
        names["pager"] = SLOT_PAGER
        await th.control(pager=SLOT_PAGER)
    if exc_handler is not None:
        await task.map(env.task, exc_handler.fpage(), slot)
        await th.control(exc_handler=slot)
        slot += 1
    local = TaskLocal(names, slot, owner=name)

    def entry(sp: int) -> Coroutine[Any, Any, Any]:
        return fn(Env(local, SLOT_THREAD, all_kinds), *args)

    ip = await task.load_code(entry)
    await env.scheduler.run_thread(th, prio, quantum, 1 << cpu)
    await th.ex_regs(ip, 0)
    return task, th
