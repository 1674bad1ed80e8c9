"""The kernel fuzzer: hostile programs issue random traps; the invariants hold after every one.

seL4 proves that no system call breaks the kernel's invariants.  l4sim
cannot prove it, so it attacks: a *world* of programs on a three-core
machine, most of them hostile, takes random traps from Hypothesis, and after
every event and every trap any thread executes,
:func:`l4sim.kernel.invariants.check` must report nothing, the kernel
must not raise, and no program may reach a device port (none was given one).

The world
    A *supervisor* (the root task, priority 200, core 0) starts a *victim*
    server in its own task (core 1) and three *hostile programs*, each in a
    task of its own on a core of its own (program ``p`` on core ``p``), each
    with two threads that run the commands the fuzzer queues for them.
    They share capabilities: a gate to the victim and its thread (with
    rights that differ per program), a common factory, an Irq, and every
    program's *inbox* gate (bound to that program's first thread); each has
    its own factory with a small quota, the ICU and the scheduler (without
    the delete right).  A thread with nothing to do waits in an open wait;
    the fuzzer rings a *doorbell* (a device interrupt line bound to the
    supervisor's Irq) and the supervisor cancels that wait with
    ``ex_regs`` -- so a quiet world has no events of its own, and checking
    it costs nothing.  A command that does not complete within a budget (a
    blocked or stopped thread, a dead program) is *rescued* by the
    supervisor: it cancels the IPC, restarts the thread, or starts the
    program afresh.

The attacks
    Random IPC to random slots with random words, flags, labels, items (map
    items of every flexpage kind, string items), receive buffers and
    timeouts; invocations of every kernel object with random operations and
    arguments; values that are ``int`` subclasses whose ``__int__``,
    ``__index__``, ``__and__``, ``__eq__``, ``__hash__`` raise
    (:class:`Raising`) or lie (:class:`Lying`); trap objects changed by
    another thread after the trap (``object.__setattr__`` on the frozen
    flexpages and items too) and results changed after they arrived; code
    loaded with ``LoadCode`` that raises or returns no coroutine; zero-cost
    trap loops; exceptions a program raises, ``SystemExit``,
    ``KeyboardInterrupt`` and exceptions with a hostile ``__str__`` among
    them; objects that are not traps at all.

The reproduction
    Every step the world takes is also written down as a line of Python
    (:attr:`World.log`), so a violation is reported as a test: paste it,
    run it, and it fails in the same way (the world is deterministic).
    :class:`FuzzMachine` is the Hypothesis state machine whose rules are
    those steps; :func:`fuzz` runs it with a seed for ``l4sim fuzz`` and
    returns the first violation with the shrunk sequence of steps.
    Hypothesis is needed only here (the ``fuzz`` extra).
"""

from __future__ import annotations

import contextlib
import enum
import math
import warnings
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, cast

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hseed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisWarning
from hypothesis.reporting import with_reporter
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    multiple,
    rule,
    run_state_machine_as_test,
)

from l4sim.kernel import invariants
from l4sim.kernel.abi import (
    CAP_SLOTS,
    CTL_ALIEN,
    CTL_BIND_TASK,
    CTL_SET_EXC_HANDLER,
    CTL_SET_PAGER,
    EX_REGS_CANCEL,
    EX_REGS_TRIGGER_EXCEPTION,
    IP_UNCHANGED,
    LABEL_MAX,
    LABEL_MIN,
    OPEN_WAIT,
    RECV,
    REPLY,
    REPLY_AND_WAIT,
    RESV_PERIODIC,
    RESV_TIMEOUT_FAULT,
    SEND,
    SEND_AND_WAIT,
    SLOT_PAGER,
    UNMAP_ALL_SPACES,
    UNMAP_DELETE_OBJ,
    WAIT,
    WORD_MASK,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    Rights,
    StrBuf,
    StrItem,
    pack_bytes,
)
from l4sim.kernel.fault import describe_exception
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Clock, Compute, Fault, Ipc, LoadCode, NextPeriod, SaveReply, Trap
from l4sim.kernel.vspace import IoAccess, MemAccess
from l4sim.machine.board import COM1, Machine
from l4sim.machine.events import PRIO_IRQ
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, REQ_FPAGE_IO, request, sigma0
from l4sim.user.env import (
    INITIAL,
    SIGMA0_CAPS,
    Cap,
    Env,
    Gate,
    TaskLocal,
    ThreadCap,
    start_task,
)

CALL = SEND | RECV
#: hostile programs, each on the core of its number, and the threads of each
PROGRAMS = 3
THREADS = 2
CORES = 3
#: how long a meddling thread waits before it changes the trap (simulated ns): the other thread
#: has taken the trap by then
PAUSE_NS = 30_000
#: a step's budget in simulated time (ns)
BUDGET_NS = 2_000_000
#: a step's budget in events and in traps (a trap loop cannot make one step endless)
BUDGET_EVENTS = 400
BUDGET_TRAPS = 4_000
#: kernel memory of each hostile incarnation's own factory and of the common one (bytes)
HOSTILE_QUOTA = 48_000
COMMON_QUOTA = 60_000
#: the hostile programs' priority (the victim's is 60, the supervisor's 200)
HOSTILE_PRIO = 50
#: slots of every hostile task
S_TASK, S_FACTORY, S_THREAD, S_LOG, S_ICU, S_SCHED = 1, 2, 3, 5, 6, 7
S_VGATE, S_VTHREAD, S_COMMON, S_IRQ, S_HELPER, S_INBOX = 8, 9, 10, 11, 12, 13
#: the first slot a hostile program's own allocations take
S_FREE = S_INBOX + PROGRAMS
#: the capability window of a hostile thread's idle wait (slots 24..27)
S_WINDOW = 24
#: memory of every hostile task: its own 16 KiB, one page all share, eight I/O ports all share,
#: and the windows its idle wait receives memory and strings into
MEM, MEM_ORDER = 0x10000, 14
SHARED = 0x20000
PORTS, PORTS_ORDER = 0x80, 3
RCV_MEM, RCV_STR = 0x30000, 0x13000
#: where the supervisor keeps the frames it gave out (its own space)
POOL = 0x4000000
#: the machine's RAM (small: the fuzzer maps a few pages)
RAM = 16 << 20
#: what each program may do with the victim's thread and the common factory (shared, unequal)
VTHREAD_RIGHTS = (Rights.RWS, Rights.R, Rights.W)
COMMON_RIGHTS = (Rights.RW, Rights.RWS, Rights.R)
#: the interrupt line of the fuzzer's doorbell (a device line no other device uses): the
#: supervisor's Irq is bound to it, so no hostile program can bind or unbind it
DOORBELL_LINE = 14
#: the victim's protocol that keeps it busy before it answers (so calls queue)
BUSY = 9
BUSY_NS = 60_000


class Violation(AssertionError):
    """The kernel broke an invariant or raised (from inside a run, after a trap or an event)."""


# ---------------------------------------------------------------- hostile values
class Raising(int):
    """An int whose every method raises: the kernel must copy its value without calling one."""

    def __repr__(self) -> str:
        return f"Raising({int.__repr__(self)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # Hypothesis's printer: our repr
        p.text(repr(self))

    def _raise(self, *args: object) -> Any:
        raise RuntimeError("a method of a program's int ran in the kernel")

    __int__ = __index__ = __and__ = __rand__ = __or__ = __ror__ = __xor__ = _raise
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __bool__ = _raise
    __rshift__ = __lshift__ = __add__ = __radd__ = __sub__ = __rsub__ = __neg__ = _raise
    __mul__ = __rmul__ = __mod__ = __floordiv__ = __invert__ = __abs__ = __format__ = _raise


class Lying(int):
    """An int that lies: conversions and operators answer ``lie``, it equals everything.

    Its value (what ``int.__int__`` copies) is the first argument; every
    method a kernel could call instead returns the lie -- rights that grow
    under ``&``, a slot that hashes like another, a bound that is never
    exceeded.
    """

    lie: int

    def __new__(cls, value: int, lie: int) -> Lying:
        obj = int.__new__(cls, value)
        obj.lie = lie
        return obj

    def __repr__(self) -> str:
        return f"Lying({int.__repr__(self)}, {_src_int(self.lie)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))

    def _lie(self, *args: object) -> int:
        return self.lie

    def _true(self, *args: object) -> bool:
        return True

    def _false(self, *args: object) -> bool:
        return False

    __int__ = __index__ = __and__ = __rand__ = __or__ = __ror__ = __xor__ = _lie
    __rshift__ = __lshift__ = __add__ = __radd__ = __sub__ = __rsub__ = __neg__ = __abs__ = _lie
    __hash__ = _lie
    __eq__ = __le__ = __ge__ = __bool__ = _true
    __ne__ = __lt__ = __gt__ = _false


class LoudError(Exception):
    """An exception whose ``__str__``, ``__repr__`` and ``args`` raise."""

    def __str__(self) -> str:
        raise RuntimeError("LoudError.__str__ ran in the kernel")

    __repr__ = __str__

    @property
    def args(self) -> Any:  # type: ignore[override]
        raise RuntimeError("LoudError.args ran in the kernel")


class WeirdExit(SystemExit):
    """A SystemExit whose ``code`` raises and whose ``__str__`` returns no string."""

    @property
    def code(self) -> Any:  # type: ignore[override]
        raise RuntimeError("WeirdExit.code ran in the kernel")

    def __str__(self) -> Any:
        return 42


class Shifty:
    """An object whose ``__repr__``, ``__eq__`` and ``__hash__`` raise (as an exception's argument)."""

    def __repr__(self) -> str:
        raise RuntimeError("Shifty.__repr__ ran in the kernel")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("Shifty.__eq__ ran in the kernel")

    __hash__ = None  # type: ignore[assignment]


def _cyclic() -> BaseException:
    e = ValueError("its own cause")
    e.__cause__ = e
    e.__context__ = e
    return e


#: what a program may raise, by the name a reproduction gives it
EXCEPTIONS: dict[str, Callable[[], BaseException]] = {
    "ValueError": lambda: ValueError("hostile"),
    "SystemExit": lambda: SystemExit(3),
    "KeyboardInterrupt": lambda: KeyboardInterrupt(),
    "GeneratorExit": lambda: GeneratorExit(),
    "StopIteration": lambda: StopIteration(7),
    "MemoryError": lambda: MemoryError(),
    "LoudError": lambda: LoudError("loud"),
    "WeirdExit": lambda: WeirdExit(Raising(1)),
    "huge": lambda: ValueError("x" * 1_000_000),
    "shifty args": lambda: RuntimeError(Shifty(), Raising(5), b"\xff" * 9),
    "cycle": _cyclic,
    "BaseException": lambda: BaseException("base"),
}


# ---------------------------------------------------------------- code a program loads
async def _spin0(n: int) -> int:
    for _ in range(n):
        await Compute(0)
    return 0


async def _ok() -> int:
    await Clock()
    return 0


def entry_ok(sp: int) -> Coroutine[Any, Any, Any]:
    """Code that reads the clock and exits."""
    return _ok()


def entry_spins(sp: int) -> Coroutine[Any, Any, Any]:
    """Code that loops on ``compute(0)`` (``sp`` mod 300 times)."""
    return _spin0(sp % 300)


def entry_raises(sp: int) -> Coroutine[Any, Any, Any]:
    """An entry that raises when the thread is started (not when it runs)."""
    raise ValueError(f"no stack at {sp:#x}")


def entry_exits(sp: int) -> Coroutine[Any, Any, Any]:
    raise SystemExit(sp)


def entry_interrupts(sp: int) -> Coroutine[Any, Any, Any]:
    raise KeyboardInterrupt


def entry_loud(sp: int) -> Coroutine[Any, Any, Any]:
    raise LoudError()


def entry_recurses(sp: int) -> Coroutine[Any, Any, Any]:
    return entry_recurses(sp + 1)


def entry_not_a_coroutine(sp: int) -> Any:
    return 5


def entry_generator(sp: int) -> Any:
    """A plain generator: it yields traps like a coroutine and ends."""

    def gen() -> Generator[Any, Any, int]:
        yield Clock()
        yield Compute(0)
        return 0

    return gen()


class HostileEntry:
    """A callable object whose call, ``__eq__`` and ``__hash__`` raise."""

    def __call__(self, sp: int) -> Any:
        raise RuntimeError("HostileEntry called")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("HostileEntry.__eq__ ran in the kernel")

    def __hash__(self) -> int:
        raise RuntimeError("HostileEntry.__hash__ ran in the kernel")

    def __repr__(self) -> str:
        return "HostileEntry()"


ENTRIES: tuple[Callable[[int], Any], ...] = (
    entry_ok, entry_spins, entry_raises, entry_exits, entry_interrupts, entry_loud, entry_recurses,
    entry_not_a_coroutine, entry_generator)


# ---------------------------------------------------------------- commands besides traps
class Command:
    """A step a hostile thread takes that is more than one trap (the thread's own code)."""

    __slots__ = ()

    async def run(self, env: Env, world: World, last: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return source(self)


class Raw(Command):
    """Hand the kernel an arbitrary object that is no trap."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    async def run(self, env: Env, world: World, last: Any) -> Any:
        return await _Yield(self.obj)


class _Yield:
    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.obj)


class Spin(Command):
    """Take the same trap ``n`` times in a row: a trap loop (``compute(0)``, a failing IPC, ...)."""

    __slots__ = ("n", "trap")

    def __init__(self, n: int, trap: Any) -> None:
        self.n = n
        self.trap = trap

    async def run(self, env: Env, world: World, last: Any) -> Any:
        res = None
        for _ in range(self.n):
            res = await self.trap
        return res


class Raise(Command):
    """Raise an exception out of the thread's code (named in :data:`EXCEPTIONS`)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def run(self, env: Env, world: World, last: Any) -> Any:
        raise EXCEPTIONS[self.kind]()


class Edit(Command):
    """Change a field of an object the program holds: ``path`` is dotted (``items.0.fpage.rights``).

    Set with ``object.__setattr__``, which frozen dataclasses do not stop;
    a path that leads nowhere changes nothing.  ``target`` is the object (a
    trap this program took, or the result it last received).
    """

    __slots__ = ("path", "value")

    def __init__(self, path: str, value: object) -> None:
        self.path = path
        self.value = value

    def apply(self, target: object) -> bool:
        obj = target
        *walk, last = self.path.split(".")
        try:
            for part in walk:
                obj = obj[int(part)] if part.isdigit() else getattr(obj, part)  # type: ignore[index]
            object.__setattr__(obj, last, self.value)
        except (AttributeError, IndexError, TypeError, KeyError):
            return False
        return True


class Meddle(Command):
    """Apply edits to ``target`` (a trap another thread of the program took)."""

    __slots__ = ("edits", "target")

    def __init__(self, target: object, edits: tuple[Edit, ...]) -> None:
        self.target = target
        self.edits = edits

    async def run(self, env: Env, world: World, last: Any) -> Any:
        return [e.apply(self.target) for e in self.edits]


class Tamper(Command):
    """Apply edits to the result the thread received last (a ``Msg``, its flexpages)."""

    __slots__ = ("edits",)

    def __init__(self, edits: tuple[Edit, ...]) -> None:
        self.edits = edits

    async def run(self, env: Env, world: World, last: Any) -> Any:
        return [e.apply(last) for e in self.edits]


class Pause(Command):
    """Wait ``ns`` in an open wait (messages that arrive end it early)."""

    __slots__ = ("ns",)

    def __init__(self, ns: int) -> None:
        self.ns = ns

    async def run(self, env: Env, world: World, last: Any) -> Any:
        return await Ipc(0, WAIT, 0, (), (), None, self.ns)


class Spawn(Command):
    """Start one of :data:`SMALL` as a new thread of this task (``env.spawn``)."""

    __slots__ = ("arg", "cpu", "name", "prio")

    def __init__(self, name: str, prio: int, cpu: int, arg: int = 0) -> None:
        self.name = name
        self.prio = prio
        self.cpu = cpu
        self.arg = arg

    async def run(self, env: Env, world: World, last: Any) -> Any:
        th = await env.spawn(SMALL[self.name], self.arg, name=self.name, prio=self.prio, cpu=self.cpu)
        return th.slot


class Start(Command):
    """Start one of :data:`SMALL` in a new task, with some of this program's capabilities."""

    __slots__ = ("arg", "cpu", "given", "handler", "name", "prio")

    def __init__(self, name: str, prio: int, cpu: int, given: tuple[tuple[int, int], ...], arg: int = 0,
                 handler: int | None = None) -> None:
        self.name = name
        self.prio = prio
        self.cpu = cpu
        self.given = given
        self.arg = arg
        self.handler = handler

    async def run(self, env: Env, world: World, last: Any) -> Any:
        caps: dict[str, Cap | tuple[Cap, int]] = {
            f"c{i}": (Gate(env, slot), rights) for i, (slot, rights) in enumerate(self.given)}
        handler = Gate(env, self.handler) if self.handler is not None else None
        task, th = await start_task(env, "sub", SMALL[self.name], caps, prio=self.prio, cpu=self.cpu,
                                    args=(self.arg,), exc_handler=handler)
        return (task.slot, th.slot)


# ---------------------------------------------------------------- small programs
async def echo(env: Env, arg: int) -> None:
    """A server in the hostile task itself: its item windows overlap the task's own slots."""
    rcv = (Fpage.obj(12, 2), Fpage.obj(8, 0), Fpage.obj(1, 0))
    msg = await env.wait(rcv=rcv)
    while True:
        if msg.error:  # nothing to answer: wait (reply-and-wait would fail at once, and spin)
            msg = await env.wait(rcv=rcv)
            continue
        items = (MapItem(Fpage.obj(12, 2)),) if msg.items else ()
        msg = await Ipc(0, REPLY_AND_WAIT, 0, msg.words[:2], items, 0, None, rcv)


async def spinner(env: Env, arg: int) -> int:
    for _ in range(3):
        await env.compute(300_000)  # long enough to be running when the next steps come
    return 0


async def spinner0(env: Env, arg: int) -> int:
    """A zero-cost trap loop: ``arg`` mod 300 rounds of ``compute(0)``."""
    return await _spin0(arg % 300)


async def pinger(env: Env, arg: int) -> int:
    for i in range(3):
        await Ipc(arg, CALL, 0, (i,), (), 50_000, 50_000)
    return 0


async def sleeper(env: Env, arg: int) -> None:
    await Ipc(0, WAIT, 0, (), (), None, None)  # waits for anything, forever


async def exiter(env: Env, arg: int) -> int:
    return 7


async def raiser(env: Env, arg: int) -> None:
    """Raises one of :data:`EXCEPTIONS` (by its position)."""
    names = sorted(EXCEPTIONS)
    raise EXCEPTIONS[names[arg % len(names)]]()


SMALL: dict[str, Callable[..., Any]] = {
    "echo": echo, "spinner": spinner, "spinner0": spinner0, "pinger": pinger, "sleeper": sleeper,
    "exiter": exiter, "raiser": raiser}


# ---------------------------------------------------------------- the world's programs
async def victim(env: Env) -> None:
    """A server in another task: echoes words, sends its item window back, may defer or be busy."""
    rcv = (Fpage.obj(16, 2), Fpage.obj(20, 1), Fpage.obj(24, 0))
    msg = await env.wait(rcv=rcv)
    while True:
        try:
            if msg.error:  # nothing to answer: wait (reply-and-wait would fail at once, and spin)
                msg = await env.wait(rcv=rcv)
                continue
            if msg.proto == 7:  # deferred reply through a saved capability
                if await SaveReply(30) == 0:
                    await Ipc(30, SEND, 0, (1,), (), 0)
                msg = await env.wait(rcv=rcv)
                continue
            if msg.proto == BUSY:  # busy for a while: the next calls queue
                await env.compute(BUSY_NS)
            items = (MapItem(Fpage.obj(16, 2), grant=msg.proto == 5),) if msg.items else ()
            msg = await Ipc(0, REPLY_AND_WAIT, 0, msg.words[:2], items, 0, None, rcv)
        except Exception:  # never let a strange message end the server
            msg = await env.wait(rcv=rcv)


#: the receive buffers of a hostile thread's idle wait, where what other programs send arrives:
#: items meet buffers in order, so each program has them in another order
_WINDOWS = (Fpage.obj(S_WINDOW, 2), StrBuf(RCV_STR, 0x1000), Fpage.mem(RCV_MEM, 14, MemRights.RW),
            Fpage.io(0, 16, MemRights.RW))
IDLE_RCV = tuple(_WINDOWS[p:] + _WINDOWS[:p] for p in range(PROGRAMS))


async def hostile(env: Env, world: World, p: int, t: int) -> None:
    """Run the commands the fuzzer queues for thread ``t`` of program ``p``; record every result."""
    q = world.cmds[p][t]
    out = world.results[p][t]
    idling = world.idling[p]
    last: Any = None
    while True:
        if not q:
            idling[t] = True  # the supervisor cancels this wait when the fuzzer queues a command
            await Ipc(0, WAIT, 0, (), (), None, None, IDLE_RCV[p])
            idling[t] = False
            continue
        cmd = q.popleft()
        if type(cmd) is Raise:
            await cmd.run(env, world, last)  # the thread's own exception: not caught here
        try:
            res = await (cmd.run(env, world, last) if isinstance(cmd, Command) else cmd)
        except Exception as exc:  # only the library's wrappers in commands raise
            res = exc
        out.append(res)
        last = res


@dataclass
class Incarnation:
    """The supervisor's capabilities to one incarnation of a hostile program."""

    task: Cap
    factory: Cap
    threads: tuple[ThreadCap, ThreadCap]


@dataclass
class Shared:
    """What the supervisor shares among the hostile programs."""

    vgate: Cap
    vthread: Cap
    common: Cap
    irq: Cap
    inbox: list[Gate] = field(default_factory=list)


async def supervisor(env: Env, world: World) -> None:
    """Start the victim and the hostile programs; rescue a program's thread when asked."""
    _, vth = await start_task(env, "victim", victim, prio=60, cpu=1)
    vgate = await env.factory.create_gate(vth, 0x20)
    common = await env.factory.create_factory(COMMON_QUOTA)
    irq = await env.factory.create_irq()
    sh = Shared(vgate, vth, common, irq)
    for p in range(PROGRAMS):
        sh.inbox.append(await env.factory.create_gate(None, 0x100 + 0x10 * p))
    for p in range(PROGRAMS):  # memory from sigma0: each program's own, the page they share, ports
        await request(env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, MEM_ORDER), _pool(p))
    await request(env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, 12), Fpage.mem(POOL - 0x1000, 12))
    await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(PORTS, PORTS_ORDER), Fpage.io(0, 16))
    bell = await env.factory.create_irq()
    await env.icu.bind(DOORBELL_LINE, bell)
    await bell.attach(env.thread, 0xBE10)
    cur = [await launch(env, world, sh, p) for p in range(PROGRAMS)]
    while True:
        await Ipc(bell.slot, RECV, 0, (), (), None, None)  # the doorbell: a closed wait on its Irq
        while world.wake or world.rescue:
            if world.wake:
                p, t = world.wake.popleft()
                if world.idling[p][t]:  # still in its idle wait: cancel it, the command is waiting
                    await Ipc(cur[p].threads[t].slot, CALL, -12, (1, IP_UNCHANGED, 0, EX_REGS_CANCEL))
                continue
            p, t = world.rescue.popleft()
            with contextlib.suppress(Exception):  # a rescue that fails is tried again next time
                cur[p] = await rescue(env, world, sh, cur[p], p, t)
            world.rescues += 1
        await bell.unmask()  # a ring while it was masked is latched: it arrives at the next wait


def _pool(p: int, rights: int = MemRights.RWX) -> Fpage:
    """Program ``p``'s memory where the supervisor keeps it."""
    return Fpage.mem(POOL + (p << MEM_ORDER), MEM_ORDER, rights)


async def rescue(env: Env, world: World, sh: Shared, inc: Incarnation, p: int, t: int) -> Incarnation:
    """Unblock, restart or replace thread ``t`` of program ``p``."""
    th = inc.threads[t]
    m = await Ipc(th.slot, CALL, -12, (3,))  # stats, raw: the capability may be gone
    state = m.words[2] if m.error == 0 and m.proto == 0 and len(m.words) >= 3 else int(TS.DEAD)
    if state in (TS.SEND, TS.RECV):
        await Ipc(th.slot, CALL, -12, (1, IP_UNCHANGED, 0, EX_REGS_CANCEL))
        return inc
    if state == TS.INACTIVE:
        await Ipc(th.slot, CALL, -12, (1, t, 0, EX_REGS_CANCEL))  # restart at its entry (ip t)
        return inc
    if state != TS.DEAD:
        return inc
    for cap in (inc.task, *inc.threads, inc.factory):  # the old incarnation goes, whole
        await Ipc(S_TASK, CALL, -11, (1, Fpage.obj(cap.slot).word(), UNMAP_DELETE_OBJ))
        env.free_slot(cap.slot)
    return await launch(env, world, sh, p)


async def launch(env: Env, world: World, sh: Shared, p: int) -> Incarnation:
    """A new incarnation of hostile program ``p``: task, two threads, its capabilities, its inbox."""
    n = world.launched[p]
    name = f"hostile{p}" + (f".{n}" if n else "")
    world.idling[p][:] = [False] * THREADS  # the old incarnation's threads waited; these do not yet
    f = await env.factory.create_factory(HOSTILE_QUOTA)
    task = await env.factory.create_task(name)
    threads = (await env.factory.create_thread(name), await env.factory.create_thread(name + "b"))
    for th in threads:
        await th.control(bind=task)
    given: list[tuple[Cap, int, int]] = [
        (task, Rights.RWSD, S_TASK), (f, Rights.RWSD, S_FACTORY), (threads[0], Rights.RWSD, S_THREAD),
        (env.log, Rights.W, S_LOG), (env.icu, Rights.RW, S_ICU), (env.scheduler, Rights.RW, S_SCHED),
        (sh.vgate, Rights.RW, S_VGATE), (sh.vthread, VTHREAD_RIGHTS[p], S_VTHREAD),
        (sh.common, COMMON_RIGHTS[p], S_COMMON), (sh.irq, Rights.RWS, S_IRQ),
        (threads[1], Rights.RWSD, S_HELPER),
        *((g, Rights.RW, S_INBOX + i) for i, g in enumerate(sh.inbox))]
    for cap, rights, slot in given:
        await task.map(env.task, cap.fpage(rights), slot)
    await task.map(env.task, _pool(p, MemRights.RW), MEM)
    await task.map(env.task, Fpage.mem(POOL - 0x1000, 12, MemRights.RW), SHARED)
    await task.map(env.task, Fpage.io(PORTS, PORTS_ORDER, MemRights.RW), PORTS)
    local = TaskLocal({"task": S_TASK, "factory": S_FACTORY, "thread": S_THREAD, "log": S_LOG, "icu": S_ICU,
                       "scheduler": S_SCHED}, S_FREE, owner=name)
    for t, (th, slot) in enumerate(zip(threads, (S_THREAD, S_HELPER), strict=True)):
        def entry(sp: int, t: int = t, slot: int = slot) -> Coroutine[Any, Any, Any]:
            return hostile(Env(local, slot), world, p, t)

        ip = await task.load_code(entry)
        assert ip == t, "a fresh task's code indexes are 0 and 1 (rescue restarts at them)"
        await env.scheduler.run_thread(th, HOSTILE_PRIO, cpus=1 << p)
        await th.ex_regs(ip, 0)
    await sh.inbox[p].bind(threads[0], 0x100 + 0x10 * p)
    world.launched[p] += 1
    for t, tname in enumerate((name, name + "b")):  # the fuzzer's own note, by the names just given
        world._threads[p, t] = next(k for k in reversed(world.k.threads) if k.name == tname)
    return Incarnation(task, f, threads)


# ---------------------------------------------------------------- Python source of values
#: where the names a reproduction imports come from
_MODULES = {Ipc: "l4sim.kernel.traps", Compute: "l4sim.kernel.traps", Clock: "l4sim.kernel.traps",
            Fault: "l4sim.kernel.traps", LoadCode: "l4sim.kernel.traps", NextPeriod: "l4sim.kernel.traps",
            SaveReply: "l4sim.kernel.traps", Fpage: "l4sim.kernel.abi", FpageType: "l4sim.kernel.abi",
            MapItem: "l4sim.kernel.abi", StrItem: "l4sim.kernel.abi", StrBuf: "l4sim.kernel.abi",
            Rights: "l4sim.kernel.abi", MemRights: "l4sim.kernel.abi", MemAccess: "l4sim.kernel.vspace",
            IoAccess: "l4sim.kernel.vspace", Trap: "l4sim.kernel.traps"}


def _src_int(v: int) -> str:
    return hex(v) if v > 0xFFFF else repr(v)


def source(v: object, names: set[str] | None = None) -> str:
    """``v`` as a Python expression that builds it again; the names it needs are added to ``names``.

    Reads values only through the base types' own methods: a hostile int's
    or object's methods do not run here either.
    """
    def need(obj: Any) -> str:
        name: str = obj.__name__
        if names is not None:
            names.add(name)
        return name

    tv = type(v)
    if tv is str:
        text = cast(str, v)
        return f'"{text}"' if text.isprintable() and text.isascii() and '"' not in text and "\\" not in text else repr(text)
    if v is None or tv is bool or tv is bytes:
        return repr(v)
    if tv is int:
        return _src_int(v)  # type: ignore[arg-type]
    if tv is float:
        return repr(v) if math.isfinite(v) else f"float({str(v)!r})"  # type: ignore[arg-type]
    if tv is Raising or tv is Lying:
        need(tv)
        return repr(v)
    if isinstance(v, enum.IntFlag):
        return f"{need(tv)}({int.__int__(v)})"
    if isinstance(v, enum.Enum):
        return f"{need(tv)}.{v.name}"
    if tv is tuple:
        parts = [source(x, names) for x in v]  # type: ignore[attr-defined]
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"
    if tv is list:
        return f"[{', '.join(source(x, names) for x in v)}]"  # type: ignore[attr-defined]
    if tv is dict:
        return "{" + ", ".join(f"{source(k, names)}: {source(x, names)}" for k, x in v.items()) + "}"  # type: ignore[attr-defined]
    if isinstance(v, type) or (callable(v) and hasattr(v, "__qualname__") and "<" not in v.__qualname__):
        return need(v)
    if tv is Fpage and type(v.kind) is FpageType and v.kind.name in _FPAGE_MAKERS:  # type: ignore[attr-defined]
        return _src_fpage(v, names, need)  # type: ignore[arg-type]
    if is_dataclass(v) and not isinstance(v, type):
        return _src_dataclass(v, names, need)
    if tv is MemAccess:
        data = "" if v.data is None else f", {source(v.data, names)}"  # type: ignore[attr-defined]
        return f"{need(tv)}({source(v.addr, names)}, {source(v.n, names)}{data})"  # type: ignore[attr-defined]
    if tv is IoAccess:
        value = "" if v.value is None else f", {source(v.value, names)}"  # type: ignore[attr-defined]
        return f"{need(tv)}({source(v.port, names)}{value})"  # type: ignore[attr-defined]
    if tv is LoadCode:
        return f"{need(tv)}({source(v.task, names)}, {source(v.entry, names)})"  # type: ignore[attr-defined]
    if isinstance(v, Command):
        need(tv)
        return f"{tv.__name__}({', '.join(source(getattr(v, f), names) for f in _ARGS[tv])})"
    if tv is HostileEntry or tv is Trap:
        return f"{need(tv)}()"
    raise TypeError(f"no source for a {tv.__name__}")


#: constructor arguments of each command, in order (the source a reproduction shows)
_ARGS: dict[type, tuple[str, ...]] = {
    Raw: ("obj",), Spin: ("n", "trap"), Raise: ("kind",), Edit: ("path", "value"), Pause: ("ns",),
    Tamper: ("edits",), Spawn: ("name", "prio", "cpu", "arg"),
    Start: ("name", "prio", "cpu", "given", "arg", "handler")}


def _src_dataclass(v: Any, names: set[str] | None, need: Callable[[Any], str]) -> str:
    """A dataclass as its constructor call: an ``Ipc`` with its capability and flags by position
    and the other fields by keyword where they are not their defaults (``Ipc(8, 3, proto=9,
    words=(1,))``), any other by position without its trailing defaults."""
    cls = type(v)
    fs = fields(v)
    vals = [getattr(v, f.name) for f in fs]
    if cls is Ipc:
        parts = [source(x, names) for x in vals[:2]]
        parts += [f"{f.name}={source(x, names)}" for f, x in zip(fs[2:], vals[2:], strict=True)
                  if not _is_default(x, f.default)]
    else:
        n = len(vals)
        while n and _is_default(vals[n - 1], fs[n - 1].default):
            n -= 1
        parts = [source(x, names) for x in vals[:n]]
    return f"{need(cls)}({', '.join(parts)})"


#: the constructor of each kind of flexpage, and its defaults for order and rights
_FPAGE_MAKERS = {"OBJECT": ("obj", 0, Rights.RWSD), "MEMORY": ("mem", 12, MemRights.RWX),
                 "IO": ("io", 0, MemRights.RW)}


def _src_fpage(v: Fpage, names: set[str] | None, need: Callable[[Any], str]) -> str:
    """A flexpage of a known kind by its constructor: ``Fpage.obj(12)``, ``Fpage.mem(0x1000, 13)``."""
    maker, order, rights = _FPAGE_MAKERS[v.kind.name]
    args: list[object] = [v.base, v.order, v.rights]
    if _is_default(v.rights, rights) or (type(v.rights) is int and v.rights == int(rights)):
        args.pop()
        if _is_default(v.order, order):
            args.pop()
    return f"{need(Fpage)}.{maker}({', '.join(source(a, names) for a in args)})"


def _is_default(x: object, d: object) -> bool:
    """Whether ``x`` is its field's default, asking nothing of ``x`` itself."""
    if x is d:
        return True
    tx = type(x)
    if tx is not type(d) or tx not in (int, bool, tuple):
        return False
    return x == () if tx is tuple else int.__eq__(cast(int, x), d)


# ---------------------------------------------------------------- the world
class World:
    """The kernel under attack and the fuzzer's channel to its hostile programs.

    Each step (:meth:`issue`, :meth:`meddle`, :meth:`idle`) runs the kernel
    event by event until the step is done or its budget is spent, checking
    the invariants after every event and every trap, and appends its own
    source to :attr:`log`.  (The boot, the same in every world, is checked
    once, when it is done.)  A violation, or an exception out of the kernel,
    raises :class:`Violation`.  Use it as a context manager, or call
    :meth:`close`: the programs' coroutines are closed at the end.
    """

    def __init__(self) -> None:
        self.cmds: list[list[deque[Any]]] = [[deque() for _ in range(THREADS)] for _ in range(PROGRAMS)]
        self.results: list[list[list[Any]]] = [[[] for _ in range(THREADS)] for _ in range(PROGRAMS)]
        #: threads (program, thread) whose idle wait the supervisor is to cancel, and which are in it
        self.wake: deque[tuple[int, int]] = deque()
        self.idling: list[list[bool]] = [[False] * THREADS for _ in range(PROGRAMS)]
        self.rescue: deque[tuple[int, int]] = deque()
        self.rescues = 0
        self.launched = [0] * PROGRAMS
        #: the kernel threads of the programs' current incarnations (for :meth:`stopped`)
        self._threads: dict[tuple[int, int], Any] = {}
        self.events = 0
        self.traps = 0
        self.log: list[str] = []
        #: the names the log's source uses (for a reproduction's imports)
        self.names: set[str] = set()
        m = Machine(cores=CORES, seed=0, ram=RAM)
        m.pit.program(250_000)  # a hardware interrupt line (0) for ICU binds
        #: device ports reached (nobody in this world was given one: each access is a leak)
        self.leaks: list[int] = []
        for port, (rd, wr) in list(m.ports.items()):
            m.ports[port] = (self._leak(rd), self._leak(wr))
        self.k = Kernel(m)
        self._step_traps = 0
        #: invariants are checked from the end of the boot on (the boot is the same every time)
        self.checking = False
        traps = self.k._traps  # check after every trap too, not only between events
        for typ, handler in list(traps.items()):
            traps[typ] = self._checked(handler)
        s0 = self.k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes))
        self.k.create_root("root", lambda sp: supervisor(Env(TaskLocal(INITIAL)), self), prio=200, pager=s0)
        if not self.run(lambda: all(self.launched), 5 * BUDGET_NS, 4 * BUDGET_EVENTS):
            raise RuntimeError("the fuzzing world did not boot")
        self.checking = True
        self.check()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close what the kernel still runs (its coroutines' frames go at once)."""
        self.k.shutdown()

    def _checked(self, handler: Callable[..., None]) -> Callable[..., None]:
        def checked(core: Any, th: Any, trap: Any) -> None:
            handler(core, th, trap)
            self.traps += 1
            self._step_traps += 1
            if self.checking:
                self.check()

        return checked

    def check(self) -> None:
        """Raise :class:`Violation` when an invariant does not hold, or a program reached a device."""
        bad = invariants.check(self.k)
        if bad:
            raise self.violation("invariants violated:\n" + "\n".join(f"- {b}" for b in bad))
        if self.leaks:
            raise self.violation(f"isolation broken: a program reached device port {self.leaks[0]:#x}, "
                                 "which nobody was given")

    def _leak(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        def reached(port: int, *value: int) -> Any:
            self.leaks.append(port)
            return handler(port, *value)

        return reached

    def violation(self, text: str) -> Violation:
        """A :class:`Violation` that knows this world (its log is the reproduction)."""
        v = Violation(text)
        v.world = self  # type: ignore[attr-defined]
        return v

    def run(self, done: Callable[[], bool], budget: int = BUDGET_NS, events: int = BUDGET_EVENTS) -> bool:
        """Run event by event, checking invariants, until ``done()`` or a budget is spent."""
        k = self.k
        end = k.machine.now + budget
        self._step_traps = 0
        for _ in range(events):
            if done():
                return True
            if self._step_traps > BUDGET_TRAPS:
                break
            try:
                why = k.run(max_events=1, until=end)
            except Violation:
                raise
            except Exception as exc:  # the kernel must never raise
                raise self.violation(f"the kernel raised {_describe(exc)}") from exc
            self.events += 1
            if self.checking:
                self.check()
            if why != "events":
                break
        return done()

    def _record(self, call: str) -> None:
        self.log.append(call)

    def issue(self, p: int, t: int, *cmds: Any) -> list[Any]:
        """Queue ``cmds`` (traps or commands) for thread ``t`` of program ``p``; run until it has
        done them (or rescue it); their results."""
        self._record(f"fz.issue({p}, {t}, {', '.join(source(c, self.names) for c in cmds)})")
        return self._issue(p, t, cmds)

    def _issue(self, p: int, t: int, cmds: tuple[Any, ...]) -> list[Any]:
        out = self.results[p][t]
        n0 = len(out)
        n = n0 + len(cmds)
        self._queue(p, t, cmds)
        if not self.run(lambda: len(out) >= n or self.stopped(p, t)) or len(out) < n:
            self._rescue(p, t)
            self.run(lambda: len(out) >= n, PAUSE_NS)
            self.cmds[p][t].clear()
        return out[n0:n]

    def _queue(self, p: int, t: int, cmds: tuple[Any, ...]) -> None:
        """Give thread ``t`` of program ``p`` commands; wake it if it waits for some."""
        self.cmds[p][t].extend(cmds)
        if self.idling[p][t]:
            self.wake.append((p, t))
            self.ring()

    def ring(self) -> None:
        """The fuzzer's device raises the doorbell line (an interrupt event, now)."""
        m = self.k.machine
        m.events.at(m.now, m.ic.raise_line, DOORBELL_LINE, prio=PRIO_IRQ)

    def _rescue(self, p: int, t: int) -> None:
        """Blocked for good, stopped or dead: the supervisor steps in."""
        r = self.rescues
        self.rescue.append((p, t))
        self.ring()
        self.run(lambda: self.rescues > r)

    def meddle(self, p: int, trap: Any, *edits: Edit, busy: bool = False) -> list[Any]:
        """Program ``p``'s first thread takes ``trap``; its second thread then changes the trap
        object with ``edits`` while the kernel works on it (with ``busy``, the victim is first
        kept busy, so a call to it queues)."""
        self._record(f"fz.meddle({p}, {source(trap, self.names)}"
                     + "".join(f", {source(e, self.names)}" for e in edits)
                     + (", busy=True" if busy else "") + ")")
        first: tuple[Any, ...] = (Ipc(S_VGATE, SEND, BUSY, (), (), 0), trap) if busy else (trap,)
        out = self.results[p][0]
        n = len(out) + len(first)
        self._queue(p, 0, first)
        self._issue(p, 1, (Pause(PAUSE_NS), Meddle(trap, edits)))
        if not self.run(lambda: len(out) >= n or self.stopped(p, 0)) or len(out) < n:
            self._rescue(p, 0)
            self.run(lambda: len(out) >= n, PAUSE_NS)
            self.cmds[p][0].clear()
        return out[n - len(first):n]

    def idle(self, ns: int) -> None:
        """Let ``ns`` of simulated time pass with no new command (timeouts fire, spinners run)."""
        self._record(f"fz.idle({ns})")
        end = self.k.machine.now + ns
        self.run(lambda: self.k.machine.now >= end, ns)

    def stopped(self, p: int, t: int) -> bool:
        """Whether thread ``t`` of program ``p`` can no longer run by itself (dead, or stopped by a
        fault): then waiting for its commands is pointless (the fuzzer peeks; programs cannot)."""
        th = self._threads.get((p, t))
        return th is None or th.state is TS.DEAD or th.state is TS.INACTIVE

    def kind_at(self, p: int, slot: object) -> str | None:
        """What program ``p``'s current task holds in ``slot`` (the fuzzer peeks; programs cannot)."""
        n = self.launched[p] - 1
        name = f"hostile{p}" + (f".{n}" if n else "")
        tasks = [t for t in self.k.tasks if t.name == name]
        e = tasks[-1].caps.slots.get(slot) if tasks and type(slot) is int else None
        return None if e is None else KINDS.get(type(e.obj).__name__)

    def reproduction(self, name: str = "test_fuzz_reproduction", note: str = "") -> str:
        """The steps so far as a test to paste: it raises the same :class:`Violation`."""
        imports: dict[str, list[str]] = {"l4sim.tools.fuzz": ["World"]}
        for n in sorted(self.names):
            mod = next((m for c, m in _MODULES.items() if c.__name__ == n), "l4sim.tools.fuzz")
            imports.setdefault(mod, []).append(n)
        lines = [f"from {mod} import {', '.join(sorted(set(ns)))}" for mod, ns in sorted(imports.items())]
        lines += ["", "", f"def {name}() -> None:"]
        if note:
            note = note.replace("\\", "/").replace('"', "'")
            lines.append(f'    """{note}"""')
        lines.append("    with World() as fz:")
        lines += [f"        {step}" for step in self.log]
        return "\n".join(lines) + "\n"


KINDS = {"Factory": "factory", "Task": "task", "Thread": "thread", "Irq": "irq", "Icu": "icu",
         "SchedulerObj": "scheduler", "Log": "log", "IpcGate": "gate", "Reply": "reply"}


def _describe(exc: BaseException) -> str:
    """``Type: message`` of an exception out of the kernel and the line that raised it (read as
    the kernel reads a program's exception: a hostile ``__str__`` does not run)."""
    text = describe_exception(exc)[1]
    tb = exc.__traceback__
    where = ""
    while tb is not None:
        where = f" at {tb.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return text + where


# ---------------------------------------------------------------- strategies
def sly(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``s``, and now and then its value as an int subclass that raises or lies."""
    return st.one_of(s, s, s, s, s, s, st.builds(Raising, s), st.builds(Lying, s, lies))


lies = st.sampled_from([0, 1, 0xF, 0x1F, -1, WORD_MASK, 2**64, CAP_SLOTS])
progs = st.integers(0, PROGRAMS - 1)
threads = st.sampled_from([0, 0, 0, 1])
#: slots where a hostile task's capabilities are: the fixed ones and those it fills
hot = st.integers(1, S_FREE + 4)
plain_slots = st.one_of(hot, hot, hot, st.integers(0, 40),
                        st.sampled_from([0, CAP_SLOTS - 1, CAP_SLOTS, 2**63, WORD_MASK]))
slots = sly(plain_slots)
bad_values: st.SearchStrategy[Any] = st.sampled_from([None, "x", 1.5, 3.0, True, -1, -(2**70), 2**64, (1,), [1], {}])
caps = st.one_of(slots, slots, slots, st.integers(-5, CAP_SLOTS + 5), bad_values)
small_words = st.one_of(st.integers(0, 20), st.integers(0, WORD_MASK))
good_words = st.lists(small_words, max_size=6).map(tuple)
words_s = st.one_of(
    good_words, good_words, good_words,
    st.lists(sly(small_words), max_size=6).map(tuple),
    st.lists(st.one_of(small_words, bad_values), max_size=4).map(tuple),
    st.lists(small_words, min_size=60, max_size=64).map(tuple),
    st.lists(small_words, max_size=3),  # a list, not a tuple
)
good_flags = st.sampled_from([SEND, RECV, CALL, WAIT, SEND_AND_WAIT, REPLY, REPLY_AND_WAIT, OPEN_WAIT, 0])
flags_s = st.one_of(good_flags, good_flags, sly(good_flags), st.integers(-2, 2**64),
                    st.sampled_from([0xF, 3.0, "3", None]))
good_protos = st.sampled_from([0, 1, 5, 7, BUSY, -1, -5, -10, -11, -12, -13, -14, -15, -18])
protos = st.one_of(good_protos, sly(good_protos), st.integers(LABEL_MIN - 2, LABEL_MAX + 2),
                   st.sampled_from([LABEL_MIN, LABEL_MAX, 2**64, "p", 1.5]))
kinds_s = st.one_of(st.sampled_from(list(FpageType)), sly(st.integers(-2, 8)), bad_values)
mem_rights = st.sampled_from([MemRights.RWX, MemRights.RW, MemRights.R, MemRights.W, MemRights.X, 0, 7])
rights_s = st.sampled_from([int(Rights.RWSD), int(Rights.RWS), int(Rights.RW), int(Rights.R), int(Rights.W),
                            0, 0xB])
fpages = st.builds(
    Fpage, kinds_s,
    st.one_of(sly(st.integers(0, 40)), st.integers(-3, CAP_SLOTS + 3),
              st.sampled_from([2**64, 1 << 40, 0x1000, 0x10000]), bad_values),
    st.one_of(sly(st.integers(0, 3)), st.integers(-2, 70), st.sampled_from([12, 13, 16, 64]), bad_values),
    st.one_of(sly(st.sampled_from([Rights.RWSD, Rights.RW, Rights.R, Rights.W, 0])), st.integers(-1, 0x1F),
              bad_values),
)
obj_fpages = st.builds(lambda b, o, r: Fpage.obj(b & ~((1 << o) - 1), o, r),  # aligned: well-formed
                       st.one_of(hot, st.integers(0, 40)), st.sampled_from([0, 0, 0, 1, 2, 3]), sly(rights_s))
#: addresses in a hostile space: its own memory, the shared page, the windows, and what it has not
addrs = st.sampled_from([MEM, MEM, MEM + 0x1000, MEM + 0x3000, SHARED, SHARED, RCV_MEM, RCV_STR, 0, 0x400000,
                         WORD_MASK & ~0xFFF])
#: memory and I/O flexpages: well-formed, at addresses a task may or may not have
mem_fpages = st.builds(lambda a, o, r: Fpage.mem(a & ~((1 << o) - 1), o, r),
                       addrs, st.sampled_from([12, 12, 12, 13, 14, 16, 22]), sly(mem_rights))
io_fpages = st.builds(lambda pt, o, r: Fpage.io(pt & ~((1 << o) - 1), o, r),
                      st.sampled_from([PORTS, PORTS, PORTS + 4, 0, 0x3F8, 0xFFFF]), st.sampled_from([0, 0, 2, 3, 16]),
                      sly(mem_rights))
special_fpages = st.builds(Fpage, st.just(FpageType.SPECIAL), st.integers(0, 3), st.integers(0, 3),
                           st.integers(0, 15))
item_fpages = st.one_of(obj_fpages, obj_fpages, obj_fpages, mem_fpages, io_fpages, special_fpages, fpages)
lengths = st.sampled_from([0, 1, 8, 100, 4096, 4096 + 8, 0x4000, 1 << 30])
str_items = st.builds(StrItem, sly(st.one_of(addrs, st.integers(MEM, MEM + 0x4000))), sly(lengths))
str_bufs = st.builds(StrBuf, sly(st.one_of(addrs, st.integers(MEM, MEM + 0x4000))), sly(lengths))
#: well-formed items (object flexpages of any size and place) and any items
items_ok = st.lists(st.builds(MapItem, obj_fpages, st.booleans(), st.integers(0, 40)), max_size=3).map(tuple)
items_any = st.lists(st.one_of(
    st.builds(MapItem, item_fpages, st.one_of(st.booleans(), st.booleans(), st.sampled_from([0, 1, None])),
              sly(st.one_of(st.integers(0, 40), st.integers(-5, 2**21), st.sampled_from([0x1000, 2**64])))),
    str_items), max_size=3).map(tuple)
items_s = st.one_of(items_ok, items_any, items_any,
                    st.sampled_from([("junk",), (MapItem(Fpage.obj(1)), 5), [MapItem(Fpage.obj(1))]]))
good_timeouts = st.sampled_from([None, None, 0, 1, 1_000, 50_000, 1_000_000])
timeouts = st.one_of(good_timeouts, good_timeouts, sly(good_timeouts.filter(lambda t: t is not None)),
                     st.sampled_from([-1, 2**64, 1.5, "t"]))
rcv_ok = st.lists(obj_fpages, max_size=2).map(tuple)
rcv_any = st.lists(st.one_of(obj_fpages, obj_fpages, mem_fpages, io_fpages, fpages, str_bufs), max_size=3).map(tuple)
rcv_s = st.one_of(rcv_ok, rcv_any, rcv_any, st.sampled_from([("buf",), [Fpage.obj(12)]]))


def _fpw(kind: int, base: int, order: int, rights: int) -> int:
    return ((base << 12) | (order << 6) | (kind << 4) | rights) & WORD_MASK


obj_fpage_words = st.builds(_fpw, st.just(3), hot, st.integers(0, 2), rights_s)
fpage_words = st.one_of(
    obj_fpage_words, obj_fpage_words, obj_fpage_words,
    st.builds(_fpw, st.integers(0, 3), st.integers(0, 40), st.integers(0, 4), st.integers(0, 15)),
    st.builds(_fpw, st.integers(0, 3), st.integers(0, CAP_SLOTS), st.integers(0, 63), st.integers(0, 15)),
    st.integers(0, WORD_MASK))
words_small = st.one_of(hot, hot, st.integers(0, 40), st.sampled_from([CAP_SLOTS, 2**63, WORD_MASK]))
fkinds = st.sampled_from([-11, -12, 0, 0, -18, -15, 3]).map(lambda k: k & WORD_MASK)
labels = st.sampled_from([0, 4, 0x10, 1, 2, 3, WORD_MASK & ~3, WORD_MASK])
quotas = st.sampled_from([0, 1, 300, 5_000, 5_000, 20_000, 100_000, WORD_MASK])
#: where objects of each kind usually are in a hostile space
likely = {"factory": [S_FACTORY, S_FACTORY, S_COMMON], "task": [S_TASK, S_TASK],
          "thread": [S_THREAD, S_VTHREAD, S_HELPER], "irq": [S_IRQ], "icu": [S_ICU, S_ICU], "log": [S_LOG],
          "scheduler": [S_SCHED, S_SCHED], "gate": [S_VGATE, S_INBOX, S_INBOX + 1, S_INBOX + 2],
          "reply": []}
OBJECTS = ["factory", "factory", "task", "task", "thread", "thread", "irq", "icu", "log", "gate", "scheduler",
           "scheduler"]


@st.composite
def invocations(draw: st.DrawFn, obj: str | None = None) -> Ipc:
    """A kernel-object invocation with plausible words for its protocol, to a likely slot."""
    if obj is None:
        obj = draw(st.sampled_from(OBJECTS))
    proto: int
    rcv: tuple[Any, ...] = ()
    words: tuple[Any, ...]
    if obj == "factory":
        proto = -15
        kind = draw(fkinds)
        args: tuple[int, ...] = ()
        if kind == -15 & WORD_MASK:
            args = (draw(quotas),)
        elif kind == 0:
            args = (draw(words_small), draw(labels))[: draw(st.sampled_from([2, 2, 2, 1, 0]))]
        elif kind in (-11 & WORD_MASK, -12 & WORD_MASK):
            args = draw(st.sampled_from([(), pack_bytes(b"h"), (WORD_MASK,)]))
        words = (kind, *args)
        rcv = draw(st.one_of(st.tuples(st.builds(Fpage.obj, st.integers(1, 24))),
                             st.tuples(st.builds(Fpage.obj, st.integers(1, 24))), rcv_s))
    elif obj == "task":
        proto = -11
        op = draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3, 0x100, 9]))
        if op == 0:
            words = (0, draw(st.one_of(st.just(S_TASK), words_small)), draw(fpage_words),
                     draw(st.one_of(words_small, words_small.map(lambda x: (x << 12) & WORD_MASK))))
        elif op == 1:
            words = (1, draw(fpage_words),
                     draw(st.sampled_from([0, UNMAP_ALL_SPACES, UNMAP_DELETE_OBJ, UNMAP_DELETE_OBJ, 5])))
        else:
            words = (op, draw(words_small))
    elif obj == "thread":
        proto = -12
        op = draw(st.sampled_from([0, 0, 1, 1, 3, 2, 5, 5, 6, 7]))
        if op == 5:  # register the delete Irq
            words = (5, draw(st.one_of(st.just(S_IRQ), hot, words_small)))
        elif op == 0:
            fl = draw(st.sampled_from([0, CTL_SET_PAGER, CTL_BIND_TASK, CTL_SET_EXC_HANDLER, CTL_ALIEN,
                                       CTL_SET_PAGER | CTL_SET_EXC_HANDLER | CTL_BIND_TASK, WORD_MASK]))
            words = (0, fl, draw(words_small), draw(words_small), draw(words_small))
        elif op == 1:
            words = (1, draw(st.sampled_from([0, 1, 2, 3, 5, IP_UNCHANGED, IP_UNCHANGED, 10**6])),
                     draw(small_words),
                     draw(st.sampled_from([0, EX_REGS_CANCEL, EX_REGS_TRIGGER_EXCEPTION,
                                           EX_REGS_CANCEL | EX_REGS_TRIGGER_EXCEPTION])))
        else:
            words = (op,)
    elif obj == "irq":
        proto = -18
        words = (draw(st.integers(0, 6)), draw(words_small), draw(labels))[: draw(st.integers(1, 3))]
    elif obj == "icu":
        proto = -1
        words = (draw(st.integers(0, 6)), draw(st.sampled_from([0, 0, 1, 2, 15, 16, 17, 18, 100, WORD_MASK])),
                 draw(words_small))[: draw(st.sampled_from([3, 3, 2, 1]))]
    elif obj == "gate":
        proto = -10
        op = draw(st.sampled_from([0x10, 0x10, 0x11, 0x11, 0, 0x12]))
        words = (op, draw(st.one_of(st.sampled_from([S_THREAD, S_HELPER]), words_small)),
                 draw(labels))[: draw(st.integers(1, 3))]
    elif obj == "scheduler":
        proto = -14
        op = draw(st.sampled_from([0, 1, 1, 1, 2, 5, 0x10, 0x10, 0x11]))
        if op == 1:
            words = (1, draw(words_small), draw(st.sampled_from([0, 1, 40, 50, 100, 255, 256])),
                     draw(st.sampled_from([0, 1_000, 10_000_000, WORD_MASK])),  # not 1: an event per ns
                     draw(st.sampled_from([0, 1, 2, 3, 4, 7, WORD_MASK])))
        elif op == 0x10:  # a reservation: budget, period, deadline, flags, start
            words = (0x10, draw(st.one_of(st.sampled_from([S_THREAD, S_HELPER]), words_small)),
                     draw(st.sampled_from([0, 1, 10_000, 50_000, WORD_MASK])),
                     draw(st.sampled_from([0, 999, 1000, 100_000, 1_000_000])),
                     draw(st.sampled_from([0, 0, 50_000, WORD_MASK])),
                     draw(st.sampled_from([0, RESV_TIMEOUT_FAULT, RESV_PERIODIC, 3, 4])),
                     draw(st.sampled_from([0, 0, 1, 10**9])))[: draw(st.sampled_from([7, 7, 7, 4, 2]))]
        else:
            words = (op, draw(st.sampled_from([0, 1, 2, 3, WORD_MASK])))
    elif obj == "log":
        proto = -13
        data = pack_bytes(draw(st.binary(max_size=20)))
        words = (0, *data) if draw(st.booleans()) else (0, data[0] + 64, *data[1:])
    else:  # a saved reply: words for the caller
        proto = draw(good_protos)
        words = draw(good_words)
    if draw(st.integers(0, 9)) == 0:
        proto = draw(good_protos)
    if draw(st.integers(0, 7)) == 0:  # any operation code, with the same arguments
        words = (draw(st.one_of(st.integers(0, 0x20), st.integers(0, WORD_MASK))), *words[1:])
    if draw(st.integers(0, 7)) == 0:  # its words as ints that raise or lie
        words = tuple(draw(sly(st.just(w))) if type(w) is int else w for w in words)
    slot = draw(st.one_of(st.sampled_from(likely[obj]), slots) if likely[obj] else slots)
    return Ipc(slot, CALL, proto, words, (), None, None, rcv)


raw_ipcs = st.builds(Ipc, caps, flags_s, protos, words_s, items_s, timeouts, timeouts, rcv_s)
#: plausible IPC: valid types everywhere, random operation, partner, payload
ipcs = st.builds(Ipc, plain_slots, good_flags, good_protos, good_words, items_ok, good_timeouts, good_timeouts,
                 rcv_ok)


async def _entry_stub(sp: int) -> int:
    return 0


other_traps = st.one_of(
    st.builds(SaveReply, st.one_of(slots, bad_values)),
    st.builds(LoadCode, st.one_of(slots, bad_values),
              st.one_of(st.sampled_from([*ENTRIES, None, 5, "code"]), st.builds(HostileEntry))),
    st.builds(Compute, st.one_of(sly(st.integers(0, 50_000)), st.sampled_from([-1, 1.5, "ns", 2**64]))),
    st.just(Clock()),
    st.builds(NextPeriod, st.one_of(sly(st.integers(0, 10_000)), st.sampled_from([-1, 1.5, None]))),
    st.builds(Fault, st.one_of(sly(st.integers(0, 40)), st.sampled_from([-1, 2**64, "f"])),
              st.one_of(sly(st.integers(0, 5)), st.sampled_from([-1, None])), words_s),
    st.builds(Raw, st.one_of(st.sampled_from([None, 42, "trap", Ipc]), st.builds(Trap), st.builds(Raising, st.just(3)))),
    # memory and ports: a hostile task has a little of each (and no pager: elsewhere they fault)
    st.builds(MemAccess, st.one_of(sly(addrs), sly(st.integers(0, 1 << 20)), bad_values),
              st.one_of(sly(st.sampled_from([0, 1, 8, 64, 4096, 0x5000])), bad_values),
              st.sampled_from([None, b"x", b"", "s", b"12345678"])),
    st.builds(IoAccess, st.one_of(sly(st.sampled_from([PORTS, PORTS + 7, PORTS + 8, 0x3F8])),
                                  sly(st.integers(0, 1 << 17)), bad_values),
              st.one_of(st.sampled_from([None, 0, 255, 256, -1]), sly(st.just(1)))),
)
zero_traps = st.sampled_from([Compute(0), Clock(), Ipc(0, 0), Ipc(CAP_SLOTS - 1, SEND), SaveReply(30),
                              NextPeriod(0), Ipc(S_LOG, CALL, -13, ())])
junk = st.one_of(bad_values, sly(st.integers(0, 40)), st.sampled_from([("x",), b"b", ()]),
                 st.builds(lambda: (Raising(1),)),
                 fpages, st.builds(MapItem, fpages))
#: what another thread may change in a trap object after the trap
ipc_paths = st.sampled_from([
    "cap", "flags", "proto", "words", "items", "rcv", "timeout", "rcv_timeout",
    "items.0", "items.0.fpage", "items.0.fpage.rights", "items.0.fpage.base", "items.0.fpage.kind",
    "items.0.fpage.order", "items.0.grant", "items.0.snd_base", "items.0.addr", "items.0.length",
    "rcv.0.base", "rcv.0.rights", "rcv.0.order", "rcv.0.kind", "rcv.0.length", "rcv.0.addr"])
edits = st.lists(st.builds(Edit, ipc_paths, junk), min_size=1, max_size=3).map(tuple)
result_paths = st.sampled_from(["items.0.base", "items.0.rights", "items.0.kind", "items.0.order",
                                "items.0.length", "words", "error", "proto"])
result_edits = st.lists(st.builds(Edit, result_paths, junk), min_size=1, max_size=2).map(tuple)


def targeted(made: st.SearchStrategy[int]) -> st.SearchStrategy[Ipc]:
    """Well-formed operations on the objects a hostile made (for back-to-back batches)."""
    obj = st.one_of(made, made, hot)
    ops = [
        st.builds(lambda t, ip, c: Ipc(t, CALL, -12, (1, ip, 0, EX_REGS_CANCEL if c else 0)),
                  obj, st.sampled_from([0, 1, 2, IP_UNCHANGED]), st.booleans()),
        st.builds(lambda o, how: Ipc(S_TASK, CALL, -11, (1, _fpw(3, o, 0, 0xF), how)),
                  obj, st.sampled_from([UNMAP_DELETE_OBJ, UNMAP_ALL_SPACES, 0])),
        st.builds(lambda o, d, r: Ipc(S_TASK, CALL, -11, (0, S_TASK, _fpw(3, o, 0, r), d << 12)),
                  obj, st.one_of(hot, made), rights_s),
        st.builds(lambda o, k, d: Ipc(o, CALL, -15, k, rcv=(Fpage.obj(d),)), obj,
                  st.sampled_from([(0, 0, 0), (0, S_THREAD, 0x10), (-18 & WORD_MASK,), (-15 & WORD_MASK, 2000),
                                   (-12 & WORD_MASK,), (-11 & WORD_MASK,)]), st.one_of(hot, made)),
        st.builds(lambda i, t, op: Ipc(i, CALL, -18, (op, t, 0x30)), obj, obj, st.sampled_from([0, 1, 2, 4, 5])),
        st.builds(lambda o: Ipc(o, CALL, 0, (1,), (), 0, 0), obj),
        st.builds(lambda o, t: Ipc(o, SEND, 0, (1,), (), t), obj, st.sampled_from([0, 10_000])),
        st.builds(lambda o, t: Ipc(o, RECV, 0, (), (), None, t), obj, st.sampled_from([0, 10_000])),
        st.builds(lambda t, p, c: Ipc(S_SCHED, CALL, -14, (1, t, p, 1_000_000, c)), obj,
                  st.sampled_from([1, 50, 120]), st.sampled_from([1, 2, 4, 7])),
    ]
    return st.one_of(*ops)


# ---------------------------------------------------------------- the state machine
@dataclass
class Budget:
    """What the examples of a run have done so far (shared by every example of a run)."""

    #: the steps the run will take (what was asked, rounded up to whole examples)
    planned: int = 0
    steps: int = 0
    traps: int = 0
    events: int = 0
    examples: int = 0
    #: steps run up to the first violation (None: none yet); then the shrinker's replays
    found_at: int | None = None
    replays: int = 0
    progress: Callable[[Budget], None] | None = None


def step(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A rule of :class:`FuzzMachine`, counted in the run's :class:`Budget`.

    A rule never changes what it does by the count: Hypothesis replays
    prefixes of examples and requires each to draw and return the same.
    """
    def run(self: FuzzMachine, **kw: Any) -> Any:
        b = self.budget
        w = self.world
        t0, e0 = w.traps, w.events
        try:
            return fn(self, **kw)
        except Violation as v:
            if b is not None and b.found_at is None:
                b.found_at = b.steps + 1
            v.add_note("the steps so far as a test:\n" + w.reproduction())  # shown by pytest
            raise
        finally:
            if b is not None and b.found_at is None:
                b.steps += 1
                b.traps += w.traps - t0
                b.events += w.events - e0
                if b.progress is not None:
                    b.progress(b)

    run.__name__ = fn.__name__
    run.__qualname__ = fn.__qualname__
    run.__doc__ = fn.__doc__
    return run


class FuzzMachine(RuleBasedStateMachine):
    """Hostile programs take random traps; the invariants hold after every event and trap.

    Each rule is one step of :class:`World`; ``budget`` (set by :func:`fuzz`)
    counts the steps of a run.
    """

    #: slots where a hostile put an object it created (a thread, task, gate, Irq, factory)
    made = Bundle("made")
    budget: ClassVar[Budget | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._world: World | None = None
        b = self.budget
        if b is not None:
            if b.found_at is None:
                b.examples += 1
            else:
                b.replays += 1
                if b.progress is not None:
                    b.progress(b)

    @property
    def world(self) -> World:
        if self._world is None:  # built at the first step (a world boots in its first step's time)
            self._world = World()
        return self._world

    def teardown(self) -> None:
        if self._world is not None:
            self._world.close()

    @rule(p=progs, t=threads, trap=raw_ipcs)
    @step
    def raw_ipc(self, p: int, t: int, trap: Ipc) -> None:
        """Any IPC: bad types, bad values, int subclasses anywhere."""
        self.world.issue(p, t, trap)

    @rule(p=progs, t=threads, trap=ipcs, cap=st.one_of(made, slots))
    @step
    def ipc(self, p: int, t: int, trap: Ipc, cap: int) -> None:
        trap.cap = cap
        self.world.issue(p, t, trap)

    @rule(p=progs, t=threads, trap=invocations())
    @step
    def invoke_kernel_object(self, p: int, t: int, trap: Ipc) -> None:
        self.world.issue(p, t, trap)

    @rule(p=progs, t=threads, slot=st.one_of(made, made, hot), data=st.data())
    @step
    def invoke_what_is_there(self, p: int, t: int, slot: int, data: st.DataObject) -> None:
        """An operation of the right protocol for the object the program holds in ``slot``."""
        kind = self.world.kind_at(p, slot)
        if kind is None or (kind == "gate" and data.draw(st.booleans())):
            trap = data.draw(ipcs)
        else:
            trap = data.draw(invocations(obj=kind))
        trap.cap = slot
        self.world.issue(p, t, trap)

    @rule(p=progs, t=threads, trap=other_traps)
    @step
    def other_trap(self, p: int, t: int, trap: Any) -> None:
        self.world.issue(p, t, trap)

    @rule(p=progs, t=threads, traps=st.lists(st.one_of(invocations(), raw_ipcs, targeted(made), targeted(made)),
                                             min_size=2, max_size=4))
    @step
    def back_to_back(self, p: int, t: int, traps: list[Ipc]) -> None:
        """Several traps in one go: no other event comes between them."""
        self.world.issue(p, t, *traps)

    @rule(target=made, p=progs, t=threads, kind=st.sampled_from(["gate", "gate", "irq", "factory", "task", "thread"]),
          via=st.one_of(st.sampled_from([S_FACTORY, S_FACTORY, S_COMMON]), made),
          slot=st.one_of(st.integers(S_FREE, S_FREE + 8), hot),
          thread=st.one_of(st.sampled_from([0, S_THREAD, S_HELPER, S_VTHREAD]), made), label=labels,
          quota=quotas)
    @step
    def create(self, p: int, t: int, kind: str, via: int, slot: int, thread: int, label: int, quota: int) -> Any:
        args: tuple[int, ...] = {"gate": (0, thread, label), "irq": (-18 & WORD_MASK,),
                                 "factory": (-15 & WORD_MASK, quota), "task": (-11 & WORD_MASK,),
                                 "thread": (-12 & WORD_MASK,)}[kind]
        self.world.issue(p, t, Ipc(via, CALL, -15, args, rcv=(Fpage.obj(slot),)))
        return slot

    @rule(target=made, p=progs, t=threads, name=st.sampled_from(sorted(SMALL)),
          prio=st.sampled_from([1, 40, 50, 60, 120, 255]), cpu=st.integers(0, CORES - 1),
          arg=st.one_of(st.sampled_from([S_VGATE, S_VTHREAD, S_THREAD, S_INBOX]), st.integers(0, 400)))
    @step
    def spawn(self, p: int, t: int, name: str, prio: int, cpu: int, arg: int) -> Any:
        res = self.world.issue(p, t, Spawn(name, prio, cpu, arg))
        return res[0] if res and type(res[0]) is int else multiple()

    @rule(target=made, p=progs, t=threads, name=st.sampled_from(sorted(SMALL)),
          prio=st.sampled_from([1, 50, 120]), cpu=st.integers(0, CORES - 1),
          given=st.lists(st.tuples(st.one_of(hot, made), rights_s), max_size=3).map(tuple),
          arg=st.integers(8, 12), handler=st.sampled_from([None, 8, 9, 10]))
    @step
    def start_program(self, p: int, t: int, name: str, prio: int, cpu: int, given: tuple[tuple[int, int], ...],
                      arg: int, handler: int | None) -> Any:
        """Start a program in a new task the hostile creates, with some of its capabilities."""
        res = self.world.issue(p, t, Start(name, prio, cpu, given, arg, handler))
        if res and type(res[0]) is tuple:
            return multiple(*res[0])  # the new task and its thread
        return multiple()

    @rule(p=progs, t=threads,
          dest=st.one_of(st.sampled_from([S_VGATE, S_VGATE, S_VTHREAD, S_INBOX, S_INBOX + 1, S_INBOX + 2]), made),
          flags=st.sampled_from([CALL, CALL, SEND, SEND_AND_WAIT]), proto=st.sampled_from([0, 5, 7, BUSY]),
          words=good_words, items=items_ok, rcv=rcv_ok, timeouts=st.tuples(good_timeouts, good_timeouts))
    @step
    def talk(self, p: int, t: int, dest: int, flags: int, proto: int, words: tuple[int, ...], items: Any,
             rcv: Any, timeouts: tuple[int | None, int | None]) -> None:
        """A well-formed IPC to the victim, another program or something the hostile made."""
        self.world.issue(p, t, Ipc(dest, flags, proto, words, items, *timeouts, rcv))

    @rule(p=progs, t=threads, items=st.one_of(items_ok, items_any, items_s), rcv=st.one_of(rcv_ok, rcv_any, rcv_s),
          proto=st.sampled_from([0, 5, 7, BUSY]),
          gate=st.one_of(st.sampled_from([S_VGATE, S_INBOX, S_INBOX + 1, S_INBOX + 2]), made),
          timeout=st.sampled_from([None, 100_000]))
    @step
    def call_with_items(self, p: int, t: int, items: Any, rcv: Any, proto: int, gate: int,
                        timeout: int | None) -> None:
        self.world.issue(p, t, Ipc(gate, CALL, proto, (1, 2), items, timeout, timeout, rcv))

    @rule(p=progs, trap=st.one_of(
        st.builds(Ipc, st.sampled_from([S_VGATE, S_VGATE, S_INBOX, S_INBOX + 1, S_INBOX + 2, S_VTHREAD]),
                  st.sampled_from([CALL, CALL, SEND, SEND_AND_WAIT]), st.sampled_from([0, 5, 7]), good_words,
                  st.one_of(items_ok, items_any), st.sampled_from([None, 200_000]),
                  st.sampled_from([None, 200_000]), st.one_of(rcv_ok, rcv_any)),
        st.builds(Ipc, st.just(0), st.sampled_from([WAIT, RECV]), st.just(0), st.just(()), st.just(()),
                  st.just(None), st.sampled_from([None, 100_000]), st.one_of(rcv_ok, rcv_any)),
        other_traps),
        edits=edits, busy=st.booleans())
    @step
    def meddle(self, p: int, trap: Any, edits: tuple[Edit, ...], busy: bool) -> None:
        """A trap changed by another thread of the program while the kernel works on it."""
        self.world.meddle(p, trap, *edits, busy=busy)

    @rule(p=progs, t=threads, trap=st.one_of(ipcs, invocations()), edits=result_edits)
    @step
    def tamper(self, p: int, t: int, trap: Ipc, edits: tuple[Edit, ...]) -> None:
        """A result changed after it arrived (the kernel must keep none of it)."""
        self.world.issue(p, t, trap, Tamper(edits), trap)

    @rule(p=progs, t=threads, how=st.sampled_from([0, 0, 1]), kind=st.sampled_from(sorted(EXCEPTIONS)),
          prio=st.sampled_from([1, 50, 120]), cpu=st.integers(0, CORES - 1))
    @step
    def raise_exception(self, p: int, t: int, how: int, kind: str, prio: int, cpu: int) -> None:
        """The program raises (``how`` 1: in a thread of its own made for it)."""
        if how:
            self.world.issue(p, t, Spawn("raiser", prio, cpu, sorted(EXCEPTIONS).index(kind)))
        else:
            self.world.issue(p, t, Raise(kind))

    @rule(target=made, p=progs, t=threads, entry=st.one_of(st.sampled_from(ENTRIES), st.builds(HostileEntry)),
          slot=st.integers(S_FREE, S_FREE + 8),
          handler=st.sampled_from([0, 0, S_THREAD, S_HELPER, S_VTHREAD, S_VGATE, S_INBOX]),
          prio=st.sampled_from([1, 50, 120]), cpus=st.sampled_from([1, 2, 4, 7]),
          sp=st.one_of(st.integers(0, 400), st.just(WORD_MASK)), via=st.sampled_from([S_FACTORY, S_COMMON]))
    @step
    def run_loaded_code(self, p: int, t: int, entry: Any, slot: int, handler: int, prio: int, cpus: int, sp: int,
                        via: int) -> int:
        """Load code, make a thread of this task, start it there (entries that raise among them)."""
        fl = CTL_BIND_TASK | (CTL_SET_EXC_HANDLER if handler else 0)
        self.world.issue(p, t, LoadCode(S_TASK, entry),
                         Ipc(via, CALL, -15, (-12 & WORD_MASK,), rcv=(Fpage.obj(slot),)),
                         Ipc(slot, CALL, -12, (0, fl, 0, handler, S_TASK)),
                         Ipc(S_SCHED, CALL, -14, (1, slot, prio, 10_000_000, cpus)),
                         Ipc(slot, CALL, -12, (1, 2, sp, 0)))  # ip 2: the first code the program loads
        return slot

    @rule(p=progs, t=threads, n=st.integers(1, 300), trap=zero_traps)
    @step
    def trap_loop(self, p: int, t: int, n: int, trap: Any) -> None:
        """The same cheap trap many times in a row."""
        self.world.issue(p, t, Spin(n, trap))

    @rule(target=made, p=progs, t=threads, slot=st.integers(S_FREE, S_FREE + 8),
          thread=st.one_of(st.sampled_from([S_THREAD, S_HELPER]), made), line=st.sampled_from([None, 0, 2]),
          trigger=st.booleans())
    @step
    def irq(self, p: int, t: int, slot: int, thread: int, line: int | None, trigger: bool) -> int:
        traps: list[Any] = [Ipc(S_FACTORY, CALL, -15, (-18 & WORD_MASK,), rcv=(Fpage.obj(slot),)),
                            Ipc(slot, CALL, -18, (0, thread, 0x30))]
        if line is not None:
            traps.append(Ipc(S_ICU, CALL, -1, (0, line, slot)))
        if trigger:
            traps.append(Ipc(slot, CALL, -18, (2,)))
        self.world.issue(p, t, *traps)
        return slot

    @rule(p=progs, t=threads, slot=st.one_of(hot, made),
          how=st.sampled_from([UNMAP_DELETE_OBJ, UNMAP_DELETE_OBJ, UNMAP_ALL_SPACES, 0]),
          rights=rights_s, order=st.sampled_from([0, 0, 0, 1, 2]), task=st.one_of(st.just(S_TASK), made))
    @step
    def revoke(self, p: int, t: int, slot: int, how: int, rights: int, order: int, task: int) -> None:
        fpw = _fpw(3, slot & ~((1 << order) - 1), order, rights)
        self.world.issue(p, t, Ipc(task, CALL, -11, (1, fpw, how)))

    @rule(p=progs, t=threads, src=st.one_of(hot, made), dst=st.one_of(hot, made), rights=rights_s,
          into=st.one_of(st.just(S_TASK), made), order=st.sampled_from([0, 0, 1]),
          how=st.sampled_from([0, 0, 0, 0, 1, 2]))
    @step
    def map(self, p: int, t: int, src: int, dst: int, rights: int, into: int, order: int, how: int) -> None:
        """Map a capability (its flexpage word an int that raises or claims every right, ``how`` 1, 2)."""
        m = ~((1 << order) - 1)
        fpw = _fpw(3, src & m, order, rights)
        word: int = fpw if how == 0 else Raising(fpw) if how == 1 else Lying(fpw, fpw | 0xF)
        self.world.issue(p, t, Ipc(into, CALL, -11, (0, S_TASK, word, (dst & m) << 12)))

    @rule(p=progs, t=threads, addr=st.one_of(addrs, st.integers(MEM - 8, MEM + 0x4008)),
          n=st.sampled_from([1, 8, 100, 4096, 0x4000]), write=st.booleans())
    @step
    def touch(self, p: int, t: int, addr: int, n: int, write: bool) -> None:
        """Read or write memory (the program's own, the shared page, the windows, or none)."""
        self.world.issue(p, t, MemAccess(addr, n, bytes([p + 1]) * n if write else None))

    @rule(p=progs, t=threads, io=st.booleans(), src=addrs, order=st.sampled_from([0, 12, 12, 13, 14, 16]),
          dst=st.one_of(addrs, st.sampled_from([PORTS, PORTS + 4, 0, COM1])), rights=mem_rights,
          into=st.one_of(st.just(S_TASK), made), how=st.sampled_from(["map", "map", "grant", "unmap", "unmap all"]))
    @step
    def map_memory(self, p: int, t: int, io: bool, src: int, order: int, dst: int, rights: int, into: int,
                   how: str) -> None:
        """Map, grant or unmap memory or I/O ports, into the program's own task or one it made."""
        if io:
            fp = Fpage.io(PORTS & ~((1 << min(order, 3)) - 1), min(order, 3), rights)
        else:
            fp = Fpage.mem(src & ~((1 << max(order, 12)) - 1), max(order, 12), rights)
        if how.startswith("unmap"):
            words: tuple[int, ...] = (1, fp.word(), UNMAP_ALL_SPACES if how == "unmap all" else 0)
        else:
            base = (dst << 12 if io else dst) | (2 if how == "grant" else 0)
            words = (0, S_TASK, fp.word(), base & WORD_MASK)
        use = IoAccess(dst & 0xFFFF, 0x41) if io else MemAccess(dst, 8)  # where it landed, if there
        self.world.issue(p, t, Ipc(into, CALL, -11, words), use)

    @rule(p=progs, t=threads, thread=st.one_of(st.sampled_from([S_THREAD, S_HELPER, S_VTHREAD]), made),
          handler=st.one_of(st.sampled_from([0, S_VGATE, S_VTHREAD, S_THREAD, S_HELPER, S_INBOX]), made),
          fault=st.booleans())
    @step
    def exception_handler(self, p: int, t: int, thread: int, handler: int, fault: bool) -> None:
        traps: list[Any] = [Ipc(thread, CALL, -12, (0, CTL_SET_EXC_HANDLER, 0, handler, 0))]
        if fault:
            traps.append(Fault(13, 0, (1, 2)))
        self.world.issue(p, t, *traps)

    @rule(p=progs, t=threads, thread=st.one_of(st.sampled_from([S_THREAD, S_HELPER, S_VTHREAD]), made),
          prio=st.sampled_from([1, 50, 60, 120, 255]), cpus=st.sampled_from([1, 2, 4, 7]))
    @step
    def run_thread(self, p: int, t: int, thread: int, prio: int, cpus: int) -> None:
        self.world.issue(p, t, Ipc(S_SCHED, CALL, -14, (1, thread, prio, 1_000_000, cpus)))

    @rule(p=progs, t=threads, thread=st.one_of(st.sampled_from([S_THREAD, S_HELPER, S_VTHREAD]), made),
          irq=st.one_of(made, st.just(S_IRQ), hot), gate=st.one_of(st.sampled_from([S_VGATE, S_INBOX]), made),
          delete=st.booleans())
    @step
    def delete_notification(self, p: int, t: int, thread: int, irq: int, gate: int, delete: bool) -> None:
        """Register a delete Irq on a thread, maybe delete a gate (its label is reported)."""
        traps: list[Any] = [Ipc(thread, CALL, -12, (5, irq))]
        if delete:
            traps.append(Ipc(S_TASK, CALL, -11, (1, _fpw(3, gate, 0, 0xF), UNMAP_DELETE_OBJ)))
        self.world.issue(p, t, *traps)

    @rule(p=progs, t=threads, gate=st.one_of(st.sampled_from([S_VGATE, S_INBOX, S_INBOX + 1]), made),
          thread=st.one_of(st.sampled_from([S_THREAD, S_HELPER, S_VTHREAD]), made), label=labels)
    @step
    def rebind_gate(self, p: int, t: int, gate: int, thread: int, label: int) -> None:
        self.world.issue(p, t, Ipc(gate, CALL, -10, (0x10, thread, label)))

    @rule(p=progs, t=threads, thread=st.one_of(made, st.sampled_from([S_HELPER, S_THREAD])),
          ip=st.sampled_from([0, 1, 2, 3, IP_UNCHANGED]), cancel=st.booleans())
    @step
    def ex_regs(self, p: int, t: int, thread: int, ip: int, cancel: bool) -> None:
        self.world.issue(p, t, Ipc(thread, CALL, -12, (1, ip, 0, EX_REGS_CANCEL if cancel else 0)))

    @rule(p=progs, t=threads, timeout=st.sampled_from([0, 10_000, 300_000]), rcv=st.one_of(rcv_ok, rcv_any))
    @step
    def receive(self, p: int, t: int, timeout: int, rcv: Any) -> None:
        self.world.issue(p, t, Ipc(0, WAIT, 0, (), (), None, timeout, rcv))

    @rule(ns=st.sampled_from([1_000, 50_000, 500_000]))
    @step
    def idle(self, ns: int) -> None:
        """Time passes: timeouts fire, spinners run, periodic threads are released."""
        self.world.idle(ns)


# ---------------------------------------------------------------- the driver
#: steps of one example (one world, booted afresh)
STEPS_PER_EXAMPLE = 40
#: examples of one Hypothesis run (a long fuzz run is several, from seeds derived from its own)
ROUND_EXAMPLES = 100


@dataclass
class FuzzResult:
    """What a run of :func:`fuzz` found."""

    seed: int
    steps: int
    traps: int
    events: int
    examples: int
    #: the first violation, in words (None: none)
    violation: str | None = None
    #: steps run when it was found, and the shrunk reproduction (a test to paste) with its length
    found_at: int | None = None
    reproduction: str | None = None
    reproduction_steps: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "steps": self.steps, "traps": self.traps, "events": self.events,
                "examples": self.examples, "violation": self.violation, "found_at_step": self.found_at,
                "reproduction": self.reproduction, "reproduction_steps": self.reproduction_steps}


def fuzz_settings(examples: int, steps_per_example: int = STEPS_PER_EXAMPLE) -> settings:
    """The Hypothesis settings of a fuzz run: reproducible (no database), quiet, shrinking on."""
    return settings(max_examples=examples, stateful_step_count=steps_per_example, deadline=None, database=None,
                    derandomize=False, report_multiple_bugs=False, phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet, print_blob=False)


def fuzz(steps: int, seed: int, progress: Callable[[Budget], None] | None = None,
         steps_per_example: int = STEPS_PER_EXAMPLE) -> FuzzResult:
    """Run the fuzzer for at least ``steps`` steps from ``seed``; stop at the first violation and
    shrink it.

    Examples of at most ``steps_per_example`` steps (as many as the run
    divides into evenly) each boot a new world and run whole: a run takes
    ``steps`` rounded up to whole examples.  They run in rounds of at most
    :data:`ROUND_EXAMPLES` (Hypothesis keeps a record of every example it
    tried, which a long run would grow without bound), each drawing from a
    seed derived from ``seed``.  The same ``steps`` and ``seed`` give the
    same run (no example database is read or written).
    """
    b = Budget(progress=progress)
    found: BaseException | None = None
    total = -(-steps // steps_per_example)
    per = -(-steps // total)  # steps per example, spread evenly
    b.planned = total * per
    rnd = 0
    while b.steps < steps and found is None:
        examples = min(ROUND_EXAMPLES, -(-(steps - b.steps) // per))
        machine = type("FuzzRun", (FuzzMachine,), {"budget": b})
        hseed(seed if rnd == 0 else seed * 1_000_003 + rnd)(machine)
        before = b.steps
        try:
            with with_reporter(_quiet), warnings.catch_warnings():
                warnings.simplefilter("ignore", HypothesisWarning)  # reprs of our large strategies
                run_state_machine_as_test(machine, settings=fuzz_settings(examples, per))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a violation, or the fuzzer's own failure (raised again below)
            found = exc
        rnd += 1
        if b.steps == before and found is None:
            break  # nothing ran (Hypothesis had nothing left to generate): do not loop
        b.planned = max(b.planned, b.steps)
    res = FuzzResult(seed, b.steps if b.found_at is None else b.found_at, b.traps, b.events, b.examples)
    if found is None:
        return res
    v = _violation(found)
    if v is None:
        raise found
    res.found_at = b.found_at
    res.violation = str(v.args[0]) if v.args else "violation"
    world = getattr(v, "world", None)
    if world is not None:
        res.reproduction_steps = len(world.log)
        lines = res.violation.splitlines()
        what = lines[1].removeprefix("- ") if len(lines) > 1 and lines[0].endswith(":") else lines[0]
        res.reproduction = world.reproduction(f"test_fuzz_seed_{seed}", f"l4sim fuzz --seed {seed}: {what}")
    return res


def _quiet(text: object) -> None:
    """Hypothesis's reports are not shown: the fuzzer prints its own reproduction."""


def _violation(exc: BaseException) -> Violation | None:
    """The :class:`Violation` in what Hypothesis raised (itself, or inside a group or a cause)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, Violation):
            return e
        todo.extend(getattr(e, "exceptions", ()))
        for nxt in (e.__cause__, e.__context__):
            if nxt is not None:
                todo.append(nxt)
    return None


