"""A hostile task against the kernel: random system calls, invariants after every event.

The system: a *supervisor* (the root task, priority 200) starts a *victim*
server in its own task (core 1) and a *hostile* task (core 0) holding its
own task and thread capabilities, a small factory of its own, the ICU and
scheduler (without the delete right), a gate to the victim and the
victim's thread capability.  The hostile program is a native coroutine
that takes its next trap from a deque the state machine fills and records
each result; with nothing to do it polls with a short open wait.  Traps
that block for good are cancelled by the supervisor (``ex_regs`` with
cancel) when the test asks for a rescue; a hostile thread that stopped or
died (it may delete itself, its task or its factory) is restarted or
launched afresh.  So every rule only adds traps and runs the kernel.

After every single event, and after every trap a thread executes (the test
wraps the kernel's trap handlers), :func:`l4sim.kernel.invariants.check`
must report nothing (except the signatures of open kernel bugs listed in
``KNOWN_BUGS``, each demonstrated by an xfail test), and the kernel must
never raise.  The tests at the end reproduce, in the fewest steps, the bugs
this machine found (all fixed in the kernel since: they stay as
regression tests).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Generator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, multiple, rule

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
    SEND,
    SEND_AND_WAIT,
    UNMAP_ALL_SPACES,
    UNMAP_DELETE_OBJ,
    WAIT,
    WORD_MASK,
    Err,
    Fpage,
    FpageType,
    IpcErr,
    MapItem,
    Rights,
    pack_bytes,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, IpcGate
from l4sim.kernel.traps import Clock, Compute, Fault, Ipc, LoadCode, SaveReply
from l4sim.kernel.vspace import IoAccess, MemAccess
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Cap, Env, FactoryCap, Gate, L4Error, TaskLocal, start_task

from .conftest import make_system, run_system, task_named, thread_named

CALL = SEND | RECV
MS = 1_000_000
#: the hostile's poll period, the supervisor's period, and a rule's time budget (ns)
IDLE_NS = 20_000
SUPERVISE_NS = 100_000
BUDGET_NS = 2_000_000
#: and its budget in events (a short quantum cuts a computation into many events)
BUDGET_EVENTS = 400
#: kernel memory of each hostile incarnation's own factory (bytes)
HOSTILE_QUOTA = 48_000
#: fixed slots of the hostile task (``start_task`` layout)
S_TASK, S_FACTORY, S_THREAD, S_LOG, S_ICU, S_SCHED, S_VGATE, S_VTHREAD = 1, 2, 3, 5, 6, 7, 8, 9

#: violation signatures of open kernel bugs, each shown by an xfail test below (regex ->
#: test name); the machine tolerates them so it can look further.  Remove an entry when
#: its bug is fixed (the strict xfail test then fails until its marker goes too).
KNOWN_BUGS: dict[str, str] = {}
_KNOWN = re.compile("|".join(f"(?:{p})" for p in KNOWN_BUGS)) if KNOWN_BUGS else None


class Violation(AssertionError):
    """The kernel's state broke an invariant (raised from inside a run, after a trap or event)."""


class Raw:
    """Awaitable that hands an arbitrary object (not a trap) to the kernel."""

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.obj)


# ---------------------------------------------------------------- programs
async def hostile(env: Env, s: System) -> None:
    """Run the traps (or macro commands) the test queues; record every result."""
    while True:
        if s.cmds:
            item = s.cmds.popleft()
            try:
                res = await (item(env) if callable(item) else item)
            except Exception as exc:  # only the env wrappers of macro commands raise
                res = exc
            s.results.append(res)
        else:
            await Ipc(0, WAIT, 0, (), (), None, IDLE_NS)


async def victim(env: Env) -> None:
    """A server in another task: echoes words, sends its item window back, may defer."""
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
            items = (MapItem(Fpage.obj(16, 2), grant=msg.proto == 5),) if msg.items else ()
            msg = await Ipc(0, REPLY_AND_WAIT, 0, msg.words[:2], items, 0, None, rcv)
        except Exception:  # never let a strange message end the server
            msg = await env.wait(rcv=rcv)


async def echo(env: Env) -> None:
    """A server in the hostile task itself: its item windows overlap the hostile's slots."""
    rcv = (Fpage.obj(12, 2), Fpage.obj(8, 0), Fpage.obj(1, 0))
    msg = await env.wait(rcv=rcv)
    while True:
        if msg.error:  # nothing to answer: wait (reply-and-wait would fail at once, and spin)
            msg = await env.wait(rcv=rcv)
            continue
        items = (MapItem(Fpage.obj(12, 2)),) if msg.items else ()
        msg = await Ipc(0, REPLY_AND_WAIT, 0, msg.words[:2], items, 0, None, rcv)


async def spinner(env: Env) -> int:
    for _ in range(3):
        await env.compute(300_000)  # long enough to be running when the next rules come
    return 0


async def pinger(env: Env, slot: int) -> int:
    for i in range(3):
        await Ipc(slot, CALL, 0, (i,), (), 50_000, 50_000)
    return 0


async def sleeper(env: Env) -> None:
    await Ipc(0, WAIT, 0, (), (), None, None)  # waits for anything, forever


async def exiter(env: Env) -> int:
    return 7


PROGRAMS: dict[str, Callable[..., Any]] = {
    "echo": echo, "spinner": spinner, "pinger": pinger, "sleeper": sleeper, "exiter": exiter}


async def supervisor(env: Env, s: System) -> None:
    _, vth = await start_task(env, "victim", victim, prio=60, cpu=1)
    vgate = await env.factory.create_gate(vth, 0x20)
    cur = await launch(env, s, vgate, vth)
    while True:
        await env.receive(env.thread, timeout=SUPERVISE_NS)
        if not s.rescue:
            continue
        s.rescue = False
        task, th = cur
        m = await Ipc(th.slot, CALL, -12, (3,))  # stats, raw: the capability may be gone
        state = m.words[2] if m.error == 0 and m.proto == 0 and len(m.words) == 3 else int(TS.DEAD)
        if state in (TS.SEND, TS.RECV):
            await Ipc(th.slot, CALL, -12, (1, IP_UNCHANGED, 0, EX_REGS_CANCEL))
        elif state == TS.INACTIVE:
            await Ipc(th.slot, CALL, -12, (1, 0, 0, EX_REGS_CANCEL))  # restart at its entry
        elif state == TS.DEAD:
            await Ipc(task.slot, CALL, -11, (1, Fpage.obj(task.slot).word(), UNMAP_DELETE_OBJ))
            cur = await launch(env, s, vgate, vth)
        s.rescues += 1


async def launch(env: Env, s: System, vgate: Any, vth: Any) -> tuple[Any, Any]:
    f = await env.factory.create_factory(HOSTILE_QUOTA)
    caps = {"factory": f, "icu": (env.icu, Rights.RW), "scheduler": (env.scheduler, Rights.RW),
            "victim": (vgate, Rights.RW), "vthread": (vth, Rights.RWS)}
    task, th = await start_task(env, f"hostile{s.launched}", hostile, caps, prio=50, cpu=0, args=(s,))
    s.launched += 1
    return task, th


KINDS = {"Factory": "factory", "Task": "task", "Thread": "thread", "Irq": "irq", "Icu": "icu",
         "SchedulerObj": "scheduler", "Log": "log", "IpcGate": "gate", "Reply": "reply"}


class System:
    """The kernel under attack and the channel to its hostile program."""

    def __init__(self) -> None:
        self.cmds: deque[Any] = deque()
        self.results: list[Any] = []
        self.rescue = False
        self.rescues = 0
        self.launched = 0
        self.events = 0
        m = Machine(cores=2, seed=0)
        m.pit.program(250_000)  # a hardware interrupt line (0) for ICU binds
        self.k = Kernel(m)
        self.traps = 0
        traps = self.k._traps  # check after every trap too, not only between events
        for typ, handler in list(traps.items()):
            traps[typ] = self._checked(handler)
        self.k.create_root("root", lambda sp: supervisor(Env(TaskLocal(INITIAL)), self), prio=200)
        assert self.run(lambda: self.launched >= 1), "the system did not boot"

    def _checked(self, handler: Callable[..., None]) -> Callable[..., None]:
        def checked(core: Any, th: Any, trap: Any) -> None:
            handler(core, th, trap)
            self.traps += 1
            self.check()

        return checked

    def check(self) -> None:
        bad = [v for v in invariants.check(self.k) if _KNOWN is None or not _KNOWN.search(v)]
        if bad:
            raise Violation("invariants violated:\n" + "\n".join(bad))

    def run(self, done: Callable[[], bool], budget: int = BUDGET_NS) -> bool:
        """Run event by event, checking invariants, until ``done()`` or the budget is spent."""
        k = self.k
        end = k.machine.now + budget
        for _ in range(BUDGET_EVENTS):
            if done():
                return True
            try:
                why = k.run(max_events=1, until=end)
            except Violation:
                raise
            except Exception as exc:  # the kernel must never raise
                raise AssertionError(f"the kernel raised {exc!r}") from exc
            self.events += 1
            self.check()
            if why != "events":
                break
        return done()

    def kind_at(self, slot: int) -> str | None:
        """What the current hostile task holds in ``slot`` (the test peeks; the program cannot)."""
        tasks = [t for t in self.k.tasks if t.name == f"hostile{self.launched - 1}"]
        e = tasks[-1].caps.slots.get(slot) if tasks else None
        return None if e is None else KINDS.get(type(e.obj).__name__)

    def issue(self, *items: Any) -> list[Any]:
        """Queue ``items`` for the hostile program, run until it has done them; their results."""
        n0 = len(self.results)
        n = n0 + len(items)
        self.cmds.extend(items)
        if not self.run(lambda: len(self.results) >= n):
            self.rescue = True  # blocked for good, stopped or dead: the supervisor steps in
            r = self.rescues
            self.run(lambda: self.rescues > r)
            self.run(lambda: len(self.results) >= n, 4 * IDLE_NS)
            self.cmds.clear()
        return self.results[n0:n]


# ---------------------------------------------------------------- strategies
#: slots where the hostile's capabilities are: the fixed ones and those it fills
hot = st.integers(1, 15)
slots = st.one_of(hot, hot, hot, st.integers(0, 40),
                  st.sampled_from([0, CAP_SLOTS - 1, CAP_SLOTS, 2**63, WORD_MASK]))
bad_values = st.sampled_from([None, "x", 1.5, 3.0, True, -1, -(2**70), 2**64, (1,), [1], {}])
caps = st.one_of(slots, slots, slots, st.integers(-5, CAP_SLOTS + 5), bad_values)
small_words = st.one_of(st.integers(0, 20), st.integers(0, WORD_MASK))
good_words = st.lists(small_words, max_size=6).map(tuple)
words_s = st.one_of(
    good_words, good_words, good_words,
    st.lists(st.one_of(small_words, bad_values), max_size=4).map(tuple),
    st.lists(small_words, min_size=60, max_size=64).map(tuple),
    st.lists(small_words, max_size=3),  # a list, not a tuple
)
good_flags = st.sampled_from([SEND, RECV, CALL, WAIT, SEND_AND_WAIT, REPLY, REPLY_AND_WAIT, OPEN_WAIT, 0])
flags_s = st.one_of(good_flags, good_flags, good_flags, st.integers(-2, 2**64),
                    st.sampled_from([0xF, 3.0, "3", None]))
good_protos = st.sampled_from([0, 1, 5, 7, -1, -5, -10, -11, -12, -13, -15, -18])
protos = st.one_of(good_protos, good_protos, st.integers(LABEL_MIN - 2, LABEL_MAX + 2),
                   st.sampled_from([LABEL_MIN, LABEL_MAX, 2**64, "p", 1.5]))
fpages = st.builds(
    Fpage,
    st.one_of(st.sampled_from(list(FpageType)), st.integers(-2, 8), bad_values),
    st.one_of(st.integers(0, 40), st.integers(-3, CAP_SLOTS + 3), st.sampled_from([2**64, 1 << 40]), bad_values),
    st.one_of(st.integers(0, 3), st.integers(-2, 70), bad_values),
    st.one_of(st.sampled_from([Rights.RWSD, Rights.RW, Rights.R, Rights.W, 0]), st.integers(-1, 0x1F), bad_values),
)
rights_s = st.sampled_from([int(Rights.RWSD), int(Rights.RWS), int(Rights.RW), int(Rights.R), int(Rights.W), 0, 0xB])
obj_fpages = st.builds(lambda b, o, r: Fpage.obj(b & ~((1 << o) - 1), o, r),  # aligned: well-formed
                       st.one_of(hot, st.integers(0, 40)), st.sampled_from([0, 0, 0, 1, 2, 3]), rights_s)
item_fpages = st.one_of(obj_fpages, obj_fpages, fpages)
#: well-formed items (object flexpages of any size and place) and any items
items_ok = st.lists(st.builds(MapItem, obj_fpages, st.booleans(), st.integers(0, 40)), max_size=3).map(tuple)
items_any = st.lists(st.builds(MapItem, item_fpages, st.booleans(),
                               st.one_of(st.integers(0, 40), st.integers(-5, 2**21))), max_size=3).map(tuple)
items_s = st.one_of(items_ok, items_any, items_any,
                    st.sampled_from([("junk",), (MapItem(Fpage.obj(1)), 5), [MapItem(Fpage.obj(1))]]))
good_timeouts = st.sampled_from([None, None, 0, 1, 1_000, 50_000, 1_000_000])
timeouts = st.one_of(good_timeouts, good_timeouts, good_timeouts, st.sampled_from([-1, 2**64, 1.5, "t"]))
rcv_ok = st.lists(obj_fpages, max_size=2).map(tuple)
rcv_any = st.lists(st.one_of(obj_fpages, obj_fpages, fpages), max_size=2).map(tuple)
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
kinds = st.sampled_from([-11, -12, 0, 0, -18, -15, 3]).map(lambda k: k & WORD_MASK)
labels = st.sampled_from([0, 4, 0x10, 1, 2, 3, WORD_MASK & ~3, WORD_MASK])
quotas = st.sampled_from([0, 1, 300, 5_000, 5_000, 20_000, 100_000, WORD_MASK])
#: where objects of each kind usually are in the hostile's space
likely = {"factory": [S_FACTORY, S_FACTORY], "task": [S_TASK, S_TASK], "thread": [S_THREAD, S_VTHREAD],
          "irq": [], "icu": [S_ICU, S_ICU], "log": [S_LOG], "scheduler": [S_SCHED, S_SCHED],
          "gate": [S_VGATE]}


@st.composite
def invocations(draw: st.DrawFn, sched: bool = True, obj: str | None = None) -> Ipc:
    """A kernel-object invocation with plausible words for its protocol, to a likely slot."""
    if obj is None:
        obj = draw(st.sampled_from(["factory", "factory", "task", "task", "thread", "thread", "irq", "icu",
                                    "log", "gate"] + (["scheduler", "scheduler"] if sched else [])))
    proto: int
    rcv: tuple[Fpage, ...] = ()
    if obj == "factory":
        proto = -15
        kind = draw(kinds)
        args: tuple[int, ...] = ()
        if kind == -15 & WORD_MASK:
            args = (draw(quotas),)
        elif kind == 0:
            args = (draw(words_small), draw(labels))[: draw(st.sampled_from([2, 2, 2, 1, 0]))]
        elif kind in (-11 & WORD_MASK, -12 & WORD_MASK):
            args = draw(st.sampled_from([(), pack_bytes(b"h"), (WORD_MASK,)]))
        words = (kind, *args)
        rcv = draw(st.one_of(st.tuples(st.builds(Fpage.obj, st.integers(1, 20))),
                             st.tuples(st.builds(Fpage.obj, st.integers(1, 20))), rcv_s))
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
        op = draw(st.sampled_from([0, 0, 1, 1, 3, 2, 5, 5, 7]))
        if op == 5:  # register the delete Irq
            words = (5, draw(st.one_of(hot, words_small)))
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
        words = (op, draw(st.one_of(st.just(S_THREAD), words_small)), draw(labels))[: draw(st.integers(1, 3))]
    elif obj == "scheduler":
        proto = -14
        op = draw(st.sampled_from([0, 1, 1, 1, 2, 5]))
        if op == 1:
            words = (1, draw(words_small), draw(st.sampled_from([0, 1, 40, 50, 100, 255, 256])),
                     draw(st.sampled_from([0, 1_000, 10_000_000, WORD_MASK])),  # not 1: an event per ns
                     draw(st.sampled_from([0, 1, 2, 3, 4, WORD_MASK])))
        else:
            words = (op, draw(st.sampled_from([0, 1, 2, WORD_MASK])))
    else:
        proto = -13
        data = pack_bytes(draw(st.binary(max_size=20)))
        words = (0, *data) if draw(st.booleans()) else (0, data[0] + 64, *data[1:])
    if draw(st.integers(0, 9)) == 0:
        proto = draw(good_protos)
    slot = draw(st.one_of(st.sampled_from(likely[obj]), slots) if likely[obj] else slots)
    return Ipc(slot, CALL, proto, words, (), None, None, rcv)


raw_ipcs = st.builds(Ipc, caps, flags_s, protos, words_s, items_s, timeouts, timeouts, rcv_s)
#: plausible IPC: valid types everywhere, random operation, partner, payload
ipcs = st.builds(Ipc, slots, good_flags, good_protos, good_words, items_ok, good_timeouts, good_timeouts,
                 rcv_ok)


async def _entry_stub(sp: int) -> int:
    return 0


def stub_entry(sp: int) -> Any:
    return _entry_stub(sp)


other_traps = st.one_of(
    st.builds(SaveReply, st.one_of(slots, bad_values)),
    st.builds(LoadCode, st.one_of(slots, bad_values), st.sampled_from([stub_entry, None, 5, "code"])),
    st.builds(Compute, st.one_of(st.integers(0, 50_000), st.sampled_from([-1, 1.5, "ns"]))),
    st.just(Clock()),
    st.builds(Fault, st.one_of(st.integers(0, 40), st.sampled_from([-1, 2**64, "f"])),
              st.one_of(st.integers(0, 5), st.sampled_from([-1, None])), words_s),
    st.builds(Raw, st.sampled_from([None, 42, "trap", Ipc])),
    # memory and ports: the hostile has none mapped and no pager, so these fault
    st.builds(MemAccess, st.one_of(st.integers(0, 1 << 20), bad_values), st.one_of(st.integers(0, 64), bad_values),
              st.sampled_from([None, b"x", b"", "s"])),
    st.builds(IoAccess, st.one_of(st.integers(0, 1 << 17), bad_values), st.sampled_from([None, 0, 255, 256, -1])),
)


# ---------------------------------------------------------------- the machine
def targeted(made: Any) -> st.SearchStrategy[Ipc]:
    """Well-formed operations on the objects the hostile made (for back-to-back batches)."""
    obj = st.one_of(made, made, hot)
    ops = [
        st.builds(lambda t, ip, c: Ipc(t, CALL, -12, (1, ip, 0, EX_REGS_CANCEL if c else 0)),
                  obj, st.sampled_from([0, 1, IP_UNCHANGED]), st.booleans()),
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
                  st.sampled_from([1, 50, 120]), st.sampled_from([1, 2, 3])),
    ]
    return st.one_of(*ops)


class HostileTask(RuleBasedStateMachine):
    """Random invocations by a hostile task; invariants hold after every event."""

    #: slots where the hostile put an object it created (a thread, task, gate, Irq, factory)
    made = Bundle("made")

    def __init__(self) -> None:
        super().__init__()
        self.sys = System()

    def teardown(self) -> None:
        for th in self.sys.k.threads:  # close what the dropped kernel still runs
            if th.coro is not None:
                th.coro.close()
                th.coro = None

    @rule(trap=raw_ipcs)
    def raw_ipc(self, trap: Ipc) -> None:
        self.sys.issue(trap)

    @rule(trap=ipcs, cap=st.one_of(made, slots))
    def ipc(self, trap: Ipc, cap: int) -> None:
        trap.cap = cap
        self.sys.issue(trap)

    @rule(trap=invocations())
    def invoke_kernel_object(self, trap: Ipc) -> None:
        self.sys.issue(trap)

    @rule(slot=st.one_of(made, made, hot), data=st.data())
    def invoke_what_is_there(self, slot: int, data: st.DataObject) -> None:
        """An operation of the right protocol for the object the hostile holds in ``slot``."""
        kind = self.sys.kind_at(slot)
        if kind in ("reply", None) or (kind == "gate" and data.draw(st.booleans())):
            trap = data.draw(ipcs)
        else:
            trap = data.draw(invocations(obj=kind))
        trap.cap = slot
        self.sys.issue(trap)

    @rule(trap=other_traps)
    def other_trap(self, trap: Any) -> None:
        self.sys.issue(trap)

    @rule(traps=st.lists(st.one_of(invocations(), raw_ipcs, targeted(made), targeted(made)), min_size=2,
                         max_size=4))
    def back_to_back(self, traps: list[Ipc]) -> None:
        """Several traps in one go: no other event comes between them."""
        self.sys.issue(*traps)

    @rule(target=made, kind=st.sampled_from(["gate", "gate", "irq", "factory", "task", "thread"]),
          via=st.one_of(st.just(S_FACTORY), st.just(S_FACTORY), made), slot=st.one_of(st.integers(10, 20), hot),
          thread=st.one_of(st.sampled_from([0, S_THREAD, S_VTHREAD]), made), label=labels, quota=quotas)
    def create(self, kind: str, via: int, slot: int, thread: int, label: int, quota: int) -> int:
        args: tuple[int, ...] = {"gate": (0, thread, label), "irq": (-18 & WORD_MASK,),
                                 "factory": (-15 & WORD_MASK, quota), "task": (-11 & WORD_MASK,),
                                 "thread": (-12 & WORD_MASK,)}[kind]
        self.sys.issue(Ipc(via, CALL, -15, args, rcv=(Fpage.obj(slot),)))
        return slot

    @rule(target=made, name=st.sampled_from(sorted(PROGRAMS)), prio=st.sampled_from([1, 40, 50, 60, 120, 255]),
          cpu=st.integers(0, 1), dest=st.one_of(st.sampled_from([S_VGATE, S_VTHREAD, S_THREAD]), made))
    def spawn(self, name: str, prio: int, cpu: int, dest: int) -> Any:
        fn = PROGRAMS[name]
        args = (dest,) if name == "pinger" else ()
        res = self.sys.issue(lambda env: env.spawn(fn, *args, name=name, prio=prio, cpu=cpu))
        return res[0].slot if res and isinstance(res[0], Cap) else multiple()

    @rule(target=made, name=st.sampled_from(sorted(PROGRAMS)), prio=st.sampled_from([1, 50, 120]),
          cpu=st.integers(0, 1), given=st.lists(st.tuples(st.one_of(hot, made), rights_s), max_size=3),
          dest=st.integers(8, 10), handler=st.sampled_from([None, 8, 9, 10]))
    def start_program(self, name: str, prio: int, cpu: int, given: list[tuple[int, int]], dest: int,
                      handler: int | None) -> Any:
        """Start a program in a new task the hostile creates, with some of its capabilities."""
        fn = PROGRAMS[name]
        args = (dest,) if name == "pinger" else ()

        async def go(env: Env) -> Any:
            caps = {f"c{i}": (Gate(env, slot), rights) for i, (slot, rights) in enumerate(given)}
            return await start_task(env, "sub", fn, caps, prio=prio, cpu=cpu, args=args,
                                    exc_handler=Gate(env, handler) if handler is not None else None)

        res = self.sys.issue(go)
        if res and isinstance(res[0], tuple) and all(isinstance(c, Cap) for c in res[0]):
            return multiple(*(c.slot for c in res[0]))  # the new task and its thread
        return multiple()

    @rule(dest=st.one_of(st.sampled_from([S_VGATE, S_VGATE, S_VTHREAD]), made),
          flags=st.sampled_from([CALL, CALL, SEND, SEND_AND_WAIT]), proto=st.sampled_from([0, 5, 7]),
          words=good_words, items=items_ok, rcv=rcv_ok,
          timeouts=st.tuples(good_timeouts, good_timeouts))
    def talk(self, dest: int, flags: int, proto: int, words: tuple[int, ...], items: Any, rcv: Any,
             timeouts: tuple[int | None, int | None]) -> None:
        """A well-formed IPC to the victim or to something the hostile made."""
        self.sys.issue(Ipc(dest, flags, proto, words, items, *timeouts, rcv))

    @rule(items=st.one_of(items_ok, items_ok, items_s), rcv=st.one_of(rcv_ok, rcv_ok, rcv_s),
          proto=st.sampled_from([0, 5, 7]),
          gate=st.one_of(st.just(S_VGATE), made), timeout=st.sampled_from([None, 100_000]))
    def call_with_items(self, items: Any, rcv: Any, proto: int, gate: int, timeout: int | None) -> None:
        self.sys.issue(Ipc(gate, CALL, proto, (1, 2), items, timeout, timeout, rcv))

    @rule(target=made, slot=st.integers(10, 20), thread=st.one_of(st.just(S_THREAD), made),
          line=st.sampled_from([None, 0, 2]), trigger=st.booleans())
    def irq(self, slot: int, thread: int, line: int | None, trigger: bool) -> int:
        traps: list[Any] = [Ipc(S_FACTORY, CALL, -15, (-18 & WORD_MASK,), rcv=(Fpage.obj(slot),)),
                            Ipc(slot, CALL, -18, (0, thread, 0x30))]
        if line is not None:
            traps.append(Ipc(S_ICU, CALL, -1, (0, line, slot)))
        if trigger:
            traps.append(Ipc(slot, CALL, -18, (2,)))
        self.sys.issue(*traps)
        return slot

    @rule(slot=st.one_of(hot, made), how=st.sampled_from([UNMAP_DELETE_OBJ, UNMAP_DELETE_OBJ, UNMAP_ALL_SPACES, 0]),
          rights=rights_s, order=st.sampled_from([0, 0, 0, 1, 2]), task=st.one_of(st.just(S_TASK), made))
    def revoke(self, slot: int, how: int, rights: int, order: int, task: int) -> None:
        fpw = _fpw(3, slot & ~((1 << order) - 1), order, rights)
        self.sys.issue(Ipc(task, CALL, -11, (1, fpw, how)))

    @rule(src=st.one_of(hot, made), dst=st.one_of(hot, made), rights=rights_s,
          into=st.one_of(st.just(S_TASK), made), order=st.sampled_from([0, 0, 1]))
    def map(self, src: int, dst: int, rights: int, into: int, order: int) -> None:
        m = ~((1 << order) - 1)
        self.sys.issue(Ipc(into, CALL, -11, (0, S_TASK, _fpw(3, src & m, order, rights), (dst & m) << 12)))

    @rule(thread=st.one_of(st.sampled_from([S_THREAD, S_VTHREAD]), made),
          handler=st.one_of(st.sampled_from([0, S_VGATE, S_VTHREAD, S_THREAD]), made), fault=st.booleans())
    def exception_handler(self, thread: int, handler: int, fault: bool) -> None:
        traps: list[Any] = [Ipc(thread, CALL, -12, (0, CTL_SET_EXC_HANDLER, 0, handler, 0))]
        if fault:
            traps.append(Fault(13, 0, (1, 2)))
        self.sys.issue(*traps)

    @rule(thread=st.one_of(st.just(S_THREAD), made), prio=st.sampled_from([1, 50, 60, 120, 255]),
          cpus=st.sampled_from([1, 2, 3]))
    def run_thread(self, thread: int, prio: int, cpus: int) -> None:
        self.sys.issue(Ipc(S_SCHED, CALL, -14, (1, thread, prio, 1_000_000, cpus)))

    @rule(thread=st.one_of(st.sampled_from([S_THREAD, S_VTHREAD]), made), irq=st.one_of(made, hot),
          gate=st.one_of(st.sampled_from([S_VGATE]), made), delete=st.booleans())
    def delete_notification(self, thread: int, irq: int, gate: int, delete: bool) -> None:
        """Register a delete Irq on a thread, maybe delete a gate (its label is reported)."""
        traps: list[Any] = [Ipc(thread, CALL, -12, (5, irq))]
        if delete:
            traps.append(Ipc(S_TASK, CALL, -11, (1, _fpw(3, gate, 0, 0xF), UNMAP_DELETE_OBJ)))
        self.sys.issue(*traps)

    @rule(gate=st.one_of(st.just(S_VGATE), made), thread=st.one_of(st.sampled_from([S_THREAD, S_VTHREAD]), made),
          label=labels)
    def rebind_gate(self, gate: int, thread: int, label: int) -> None:
        self.sys.issue(Ipc(gate, CALL, -10, (0x10, thread, label)))

    @rule(thread=made, ip=st.sampled_from([0, 1, 2, IP_UNCHANGED]), cancel=st.booleans())
    def ex_regs(self, thread: int, ip: int, cancel: bool) -> None:
        self.sys.issue(Ipc(thread, CALL, -12, (1, ip, 0, EX_REGS_CANCEL if cancel else 0)))

    @rule(timeout=st.sampled_from([0, 10_000, 300_000]))
    def receive(self, timeout: int) -> None:
        self.sys.issue(Ipc(0, WAIT, 0, (), (), None, timeout, (Fpage.obj(20, 2),)))


class TestHostileTask(HostileTask.TestCase):  # type: ignore
    """Random hostile invocations never crash the kernel nor break an invariant, after any event."""

    settings = settings(max_examples=60, stateful_step_count=30, deadline=None,
                        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                               HealthCheck.data_too_large])


# ---------------------------------------------------------------- kernel bugs found (fixed)
# Each test shows one bug the hostile task found, in the fewest steps.
def _no_violations(k: Kernel) -> None:
    assert invariants.check(k) == []


def test_closed_wait_on_a_dead_thread_fails_at_once() -> None:
    """Receiving from a thread that has exited fails with ENOT_EXISTENT, as sending to it does."""
    got: list[Any] = []

    async def quick(env: Env) -> int:
        return 0

    async def root(env: Env) -> None:
        th = await env.spawn(quick, prio=150)  # runs and exits before the root goes on
        got.append(await env.receive(th))

    k, _ = run_system(root)
    assert got and got[0].error == IpcErr.ENOT_EXISTENT
    _no_violations(k)


def test_closed_wait_on_a_deleted_irq_is_aborted() -> None:
    """A thread in a closed wait on an Irq learns (REABORTED) when the Irq is deleted."""
    got: list[Any] = []

    async def root(env: Env) -> None:
        irq = await env.factory.create_irq()

        async def waiter(env2: Env) -> None:
            got.append(await env2.receive(irq))  # closed wait; the Irq is attached to nobody

        await env.spawn(waiter, prio=150)
        await env.task.delete(irq.slot)

    k, _ = run_system(root)
    assert got and got[0].error == IpcErr.REABORTED
    _no_violations(k)


def test_deleting_a_factory_does_not_free_quota_its_objects_still_use() -> None:
    """Create-fill-delete of sub-factories cannot make live objects exceed the pool's quota."""
    out: list[Any] = []

    async def root(env: Env) -> None:
        pool = await env.factory.create_factory(3_000)
        out.append(pool.slot)
        for _ in range(5):
            try:
                f = await FactoryCap(env, pool.slot).create_factory(1_000)  # costs the pool 1256
                for _ in range(7):
                    await f.create_gate(None)  # 7 x 128 = 896 of f's 1000
            except L4Error as e:
                out.append(e.err)  # the pool is exhausted: the quota holds
                return
            await env.task.delete(f.slot)

    k, _ = run_system(root)
    pool = task_named(k, "root").caps.slots[out[0]].obj

    def paid_by_pool(o: Any) -> bool:
        f = o.factory
        while f is not None:
            if f is pool:
                return True
            f = f.factory
        return False

    live = sum(o.charge for t in k.tasks for e in t.caps.slots.values() for o in [e.obj]
               if o.alive and paid_by_pool(o) and isinstance(o, IpcGate))
    assert live > 896  # the gates of deleted factories live on ...
    assert live <= pool.limit  # ... but within the pool's quota
    assert out[1:] == [Err.ENOMEM]
    _no_violations(k)


def test_run_thread_twice_on_a_thread_running_elsewhere_keeps_it_in_one_place() -> None:
    """Two run_thread calls in a row on a thread running on another core keep it in one place."""

    async def spinner(env: Env) -> None:
        await env.compute(5 * MS)

    async def root(env: Env) -> None:
        w = await env.spawn(spinner, prio=10, cpu=1)
        await env.compute(100_000)  # the spinner is now running on core 1
        await env.scheduler.run_thread(w, 10, cpus=1)  # to core 0
        await env.scheduler.run_thread(w, 10, cpus=1)  # again, before core 1 has let it go

    k, _ = make_system(root, cores=2)
    while k.run(max_events=1) == "events":
        _no_violations(k)


def test_create_over_the_own_tasks_last_capability_leaves_no_capability_in_a_dead_task() -> None:
    """Creating a gate into slot 1 (the root task's only task capability) leaves the dead task empty."""

    async def root(env: Env) -> None:
        await env.ipc(Ipc(S_FACTORY, CALL, -15, (0, 0, 0), rcv=(Fpage.obj(S_TASK),)))

    k, _ = run_system(root)
    task = task_named(k, "root")
    assert not task.alive
    assert task.caps.slots == {}
    _no_violations(k)


def test_map_item_with_non_int_rights_is_refused() -> None:
    """A map item whose flexpage rights are not an int gets an IPC error, not a kernel crash."""
    got: list[Any] = []

    async def root(env: Env) -> None:
        async def server(env2: Env) -> None:
            got.append(await env2.wait(rcv=(Fpage.obj(20),)))

        th = await env.spawn(server, prio=150)
        gate = await env.factory.create_gate(th)
        item = MapItem(Fpage(FpageType.OBJECT, S_LOG, 0, "rw"))  # type: ignore[arg-type]
        got.append(await env.ipc(Ipc(gate.slot, SEND, 0, (), (item,))))

    k, _ = make_system(root)
    k.run()
    assert got[-1].error in (IpcErr.SEMSGCUT, IpcErr.SEMAPFAILED)
    _no_violations(k)


@pytest.mark.parametrize("field", ["items", "flags"])
def test_fastpath_refuses_malformed_calls_like_the_full_path(field: str) -> None:
    """A call with a non-tuple items field or float flags fails with SEMSGCUT even to a waiting server."""
    got: list[Any] = []

    async def root(env: Env) -> None:
        async def server(env2: Env) -> None:
            await env2.wait()
            while True:
                await env2.reply_and_wait(0, 42)

        th = await env.spawn(server, prio=150)  # waits in an open wait: the fastpath case
        gate = await env.factory.create_gate(th)
        bad = Ipc(gate.slot, CALL, 0, (1,), None) if field == "items" else Ipc(gate.slot, 3.0, 0, (1,))
        got.append(await env.ipc(bad))  # type: ignore[arg-type]

    run_system(root)
    assert got[0].error == IpcErr.SEMSGCUT


def test_moving_a_delete_irq_to_another_thread_unregisters_it_from_the_first() -> None:
    """After an Irq moves from thread A to B as delete Irq, A's gate deletions no longer use it."""
    got: list[Any] = []

    async def idle(env: Env) -> None:
        await env.wait()

    async def root(env: Env) -> None:
        irq = await env.factory.create_irq()
        a = await env.spawn(idle, prio=150)
        b = await env.spawn(idle, prio=150)
        await env.ipc(Ipc(a.slot, CALL, -12, (5, irq.slot)))  # register_delete_irq on A
        await env.ipc(Ipc(b.slot, CALL, -12, (5, irq.slot)))  # ... and now on B
        gate = await env.factory.create_gate(a, 0x40)
        await irq.attach(env.thread, 0x99)
        await env.task.delete(gate.slot)  # a gate of A dies: A has no delete Irq any more
        got.append(await env.receive(irq, timeout=MS))

    k, _ = run_system(root)
    a = thread_named(k, "idle")
    assert a.del_irq is None
    assert got[0].error == IpcErr.RETIMEOUT  # nothing fires for A
    _no_violations(k)


def test_a_caller_destroyed_by_its_own_map_item_stays_dead() -> None:
    """A call whose map item overwrites the caller's only capability leaves the caller DEAD."""
    box: dict[str, int] = {}

    async def root(env: Env) -> None:
        async def server(env2: Env) -> None:
            await env2.wait(rcv=(Fpage.obj(box["caller"]),))  # a window on the caller's capability
            await env2.wait()

        async def caller(env2: Env) -> None:
            await env2.ipc(Ipc(box["gate"], CALL, 0, (1,), (MapItem(Fpage.obj(S_LOG)),)))

        srv = await env.spawn(server, prio=50)
        box["gate"] = (await env.factory.create_gate(srv, 0x10)).slot
        box["caller"] = env.local.next_slot  # where spawn puts the caller's (only) capability
        await env.spawn(caller, prio=40)
        await env.wait(timeout=MS)

    k, _ = run_system(root)
    caller = thread_named(k, "caller")
    assert not caller.alive
    assert caller.state is TS.DEAD
    _no_violations(k)


def test_a_receiver_destroyed_by_the_items_it_receives_does_not_strand_its_caller() -> None:
    """A call whose map item overwrites the receiver's only capability fails instead of waiting forever."""
    got: list[Any] = []
    box: dict[str, int] = {}

    async def root(env: Env) -> None:
        async def server(env2: Env) -> None:
            await env2.wait(rcv=(Fpage.obj(box["server"]),))  # a window on its own capability

        async def caller(env2: Env) -> None:
            got.append(await env2.ipc(Ipc(box["gate"], CALL, 0, (1,), (MapItem(Fpage.obj(S_LOG)),))))

        box["server"] = env.local.next_slot  # where spawn puts the server's (only) capability
        srv = await env.spawn(server, prio=50)
        box["gate"] = (await env.factory.create_gate(srv, 0x10)).slot
        await env.spawn(caller, prio=40)
        await env.wait(timeout=MS)

    k, _ = run_system(root)
    assert thread_named(k, "server").state is TS.DEAD
    assert got and got[0].error != 0  # the call ends (an abort), it does not hang
    _no_violations(k)


def test_ex_regs_restarting_a_thread_in_its_exception_ipc_does_not_kill_it() -> None:
    """ex_regs with a new ip and cancel on a thread whose exception IPC waits at a busy handler
    restarts it there: the cancelled exception IPC does not kill it first (which left a dead
    thread running, out of its task's thread list)."""
    ran: list[int] = []

    async def busy(env: Env) -> None:  # the exception handler: never receives
        await env.compute(10 * MS)

    async def faults(env: Env) -> None:
        raise ValueError("to the handler")

    async def restarted(sp: int) -> None:
        ran.append(sp)
        await Ipc(0, WAIT, 0, (), (), None, None)  # alive and waiting: in its task, or not

    async def root(env: Env) -> None:
        h = await env.spawn(busy, prio=150, cpu=1)
        t = await env.spawn(faults, prio=150, exc_handler=h.slot)  # raises; its exception IPC queues
        ip = await LoadCode(env.task.slot, restarted)
        got = await env.ipc(Ipc(t.slot, CALL, -12, (1, ip, 7, EX_REGS_CANCEL)))
        assert got.proto == 0 and got.words[2] == TS.SEND  # it was in its exception IPC
        await env.wait(timeout=MS)

    k, _ = make_system(root, cores=2)
    while k.run(max_events=1) == "events":
        _no_violations(k)
    t = thread_named(k, "faults")
    assert ran == [7]
    assert t.state is TS.RECV and t.task is not None and t in t.task.threads
