"""The kernel invariant checker: silent on consistent systems, loud on corrupted ones.

``invariants.check`` must report nothing for a kernel that only the kernel
has changed -- the default scenario after every single event, a small
system frozen with every kind of waiter -- and must name the problem when a
test corrupts one structure by hand, one corruption per test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from l4sim.kernel import invariants
from l4sim.kernel.abi import SEND, Fpage, Rights
from l4sim.kernel.caps import CapEntry
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, Factory, IpcGate, Irq, Reply, Thread
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Ipc
from l4sim.machine.board import Machine
from l4sim.tools.boot import boot, load_scenario
from l4sim.user.env import INITIAL, Env, FactoryCap, TaskLocal, start_task

from .conftest import make_system, task_named, thread_named

MS = 1_000_000
S_CHILD, S_GRANDCHILD = 30, 31  # root's own derived copies of the server gate


# ---------------------------------------------------------------- the default scenario
def _default_kernel(cores: int) -> tuple[Kernel, Callable[[], bool]]:
    """The default scenario set up on ``cores`` cores, and the test for its end."""
    mod = load_scenario("default")
    k = Kernel(Machine(cores=cores, seed=0), tracer=Tracer())
    root = mod.setup(k)
    if isinstance(root, Thread):
        return k, lambda: root.state is TS.DEAD
    return k, root.done


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_default_scenario_is_consistent_after_every_event(cores: int) -> None:
    """Stepping the default scenario one event at a time, every state passes the checker."""
    k, done = _default_kernel(cores)
    events = 0
    while not done() and k.run(max_events=1) == "events":
        events += 1
        assert invariants.check(k) == [], f"after event {events}"
    assert "exit 0" in k.machine.uart.text()  # the demo's programs ran to their ends
    assert events > 30  # and the check really ran through all of it


def test_default_scenario_is_consistent_after_every_trap() -> None:
    """Checked after every trap any thread executes (mid-step), the default scenario stays consistent."""
    k, done = _default_kernel(2)
    seen: list[str] = []
    count = [0]
    for typ, handler in list(k._traps.items()):
        def checked(core: Any, th: Any, trap: Any, _h: Any = handler) -> None:
            _h(core, th, trap)
            count[0] += 1
            seen.extend(invariants.check(k))

        k._traps[typ] = checked
    k.run(stop=done)
    assert seen == []
    assert count[0] > 200  # every system call of the demo (hundreds) was followed by a check


def test_booted_default_scenario_is_consistent_at_its_end() -> None:
    """The system ``boot("default")`` leaves behind passes the checker."""
    res = boot("default")
    assert res.reason in ("stop", "idle")
    assert invariants.check(res.kernel) == []


def test_default_scenario_is_consistent_long_after_the_demo() -> None:
    """With the demo over and the timer still ticking, the state stays consistent."""
    k, done = _default_kernel(2)
    k.run(stop=done)
    k.run(until=k.machine.now + 20 * MS)
    assert invariants.check(k) == []


def test_check_only_reads() -> None:
    """Checking changes nothing: events (even cancelled ones), queues, slots and counters stay."""
    k, _ = _default_kernel(2)
    k.run(until=MS // 2)

    def snapshot() -> Any:
        heap = [(t, p, s, e.cancelled) for t, p, s, e in k.events._heap]
        cores = [(c.current, c.bits, [list(q) for q in c.queues], c.step_ev) for c in k.cores]
        slots = [(t.kid, dict(t.caps.slots)) for t in k.tasks]
        objs = [(th.kid, th.state, th.partner, list(th.snd_queue), th.refs) for th in k.threads]
        return heap, cores, slots, objs, k.objects_alive, k.machine.now

    before = snapshot()
    invariants.check(k)
    assert snapshot() == before


# ---------------------------------------------------------------- a frozen small world
async def _sleep(env: Env, ns: int) -> None:
    await env.receive(env.thread, timeout=ns)


async def _server(env: Env) -> None:
    await env.wait()  # takes the client's call and never answers: the client waits on a reply
    await _sleep(env, 1000 * MS)


async def _client(env: Env) -> None:
    await env.cap("server").call(1, 2)


async def _spin(env: Env) -> None:
    await env.compute(100 * MS)


async def _sender(env: Env, slot: int) -> None:
    await env.ipc(Ipc(slot, SEND, 0, (7,)))  # the target never receives: queued for good


async def _sleeper(env: Env) -> None:
    await _sleep(env, 1000 * MS)


def _world() -> Kernel:
    """One core, frozen at 2 ms with a blocked sender, a caller waiting for its reply, a
    queued ready thread, a pending interrupt, derived capabilities and a sub-factory."""

    async def root(env: Env) -> None:
        srv = await env.spawn(_server, name="server", prio=50)
        gate = await env.factory.create_gate(srv, 0x10)
        await start_task(env, "client", _client, {"server": (gate, Rights.RW)}, prio=40)
        await env.task.map(env.task, gate.fpage(Rights.RW), S_CHILD)
        await env.task.map(env.task, Fpage.obj(S_CHILD, 0, Rights.R), S_GRANDCHILD)
        busy = await env.spawn(_spin, name="busy", prio=5)
        await env.spawn(_sender, busy.slot, name="sender", prio=30)
        await env.spawn(_spin, name="spin1", prio=10)
        await env.spawn(_spin, name="spin2", prio=10)
        irq = await env.factory.create_irq()
        sl = await env.spawn(_sleeper, name="sleeper", prio=60)
        await irq.attach(sl, 0x40)
        await irq.trigger()  # the sleeper is not waiting for it: it stays pending
        sub = await env.factory.create_factory(10_000)
        await FactoryCap(env, sub.slot).create_gate(None)
        await env.wait()

    k, _ = make_system(root, cores=1)
    k.run(until=2 * MS)
    return k


def _close(k: Kernel) -> None:
    """Close the coroutines of a kernel the test drops (no warnings from the collector)."""
    for th in k.threads:
        if th.coro is not None:
            th.coro.close()
            th.coro = None


@pytest.fixture
def world() -> Any:
    """The frozen world of :func:`_world`, its coroutines closed afterwards."""
    k = _world()
    yield k
    _close(k)


def _violations(k: Kernel, *needles: str) -> list[str]:
    v = invariants.check(k)
    assert v, "the corruption went unnoticed"
    assert all(any(n in x for x in v) for n in needles), v
    return v


def _gate_entry(k: Kernel, slot: int) -> CapEntry:
    e = task_named(k, "root").caps.slots[slot]
    assert isinstance(e.obj, IpcGate)
    return e


def test_frozen_world_is_consistent_and_has_every_kind_of_waiter(world: Kernel) -> None:
    """The hand-built world passes the checker and really contains what the corruptions need."""
    k = world
    assert invariants.check(k) == []
    assert thread_named(k, "sender").state is TS.SEND
    client = thread_named(k, "client")
    assert client.state is TS.RECV and type(client.partner) is Reply
    assert any(th.name == "spin2" for th in k.cores[0].queued())
    assert thread_named(k, "sleeper").pending_irqs
    assert _gate_entry(k, S_GRANDCHILD).parent is _gate_entry(k, S_CHILD)


def test_detects_rights_above_the_parents(world: Kernel) -> None:
    """A derived capability with a right its parent lacks is reported."""
    k = world
    _gate_entry(k, S_GRANDCHILD).rights = int(Rights.RWSD)
    _violations(k, "above its parent")


def test_detects_a_child_missing_from_its_parents_list(world: Kernel) -> None:
    """An entry whose parent does not list it breaks the derivation tree."""
    k = world
    e = _gate_entry(k, S_GRANDCHILD)
    del e.parent.children[id(e)]
    _violations(k, "lists it 0 times")


def test_detects_a_removed_entry_left_among_children(world: Kernel) -> None:
    """A children list holding an entry no slot table has is reported."""
    k = world
    parent = _gate_entry(k, S_CHILD)
    ghost = CapEntry(parent.obj, int(Rights.R), task_named(k, "root"), 99, parent)
    ghost.space = None
    parent.children[id(ghost)] = ghost
    _violations(k, "lists a removed node")


def test_detects_a_cycle_of_parent_links(world: Kernel) -> None:
    """A root entry made the child of its own descendant (a cycle) is reported."""
    k = world
    child = _gate_entry(k, S_CHILD)
    root = child.parent
    assert root is not None and root.parent is None
    root.parent = child
    child.children[id(root)] = root
    _violations(k, "cycle")


def test_detects_a_second_root_for_one_object(world: Kernel) -> None:
    """An object with two parentless capabilities (deletion would miss one) is reported."""
    k = world
    e = _gate_entry(k, S_CHILD)
    del e.parent.children[id(e)]
    e.parent = None
    _violations(k, "root capabilities")


def test_detects_an_entry_in_the_wrong_slot(world: Kernel) -> None:
    """An entry stored under a slot other than the one it records is reported."""
    k = world
    slots = task_named(k, "root").caps.slots
    slots[77] = slots.pop(S_GRANDCHILD)
    _violations(k, "but records")


def test_detects_a_wrong_reference_count(world: Kernel) -> None:
    """An object whose refs disagree with the capabilities naming it is reported."""
    k = world
    _gate_entry(k, S_CHILD).obj.refs += 1
    _violations(k, "live capabilities name it")


def test_detects_a_thread_in_two_ready_queues(world: Kernel) -> None:
    """A ready thread queued twice (here: also at another priority) is reported."""
    k = world
    th = next(t for t in k.cores[0].queued() if t.name == "spin2")
    k.cores[0].queues[200].append(th)
    k.cores[0].bits |= 1 << 200
    _violations(k, "is in 2 places", "has priority 10 but is queued in ready queue 200")


def test_detects_a_thread_both_current_and_queued(world: Kernel) -> None:
    """The running thread also sitting in a ready queue is reported."""
    k = world
    cur = k.cores[0].current
    assert cur is not None
    k.cores[0].enqueue(cur)
    _violations(k, "is in 2 places")


def test_detects_a_lost_ready_thread(world: Kernel) -> None:
    """A READY thread in no queue and on no core (it would never run) is reported."""
    k = world
    th = next(t for t in k.cores[0].queued() if t.name == "spin2")
    assert k.cores[0].remove(th)
    _violations(k, "is in 0 places")


def test_detects_a_blocked_thread_in_a_ready_queue(world: Kernel) -> None:
    """A queued thread that is not READY is reported."""
    k = world
    th = next(t for t in k.cores[0].queued() if t.name == "spin2")
    th.state = TS.INACTIVE
    _violations(k, "INACTIVE thread", "but queued in")


def test_detects_wrong_ready_bits(world: Kernel) -> None:
    """``core.bits`` that disagree with the non-empty queues are reported."""
    k = world
    k.cores[0].bits ^= 1 << 77
    _violations(k, "bits")


def test_detects_a_sender_missing_from_its_targets_queue(world: Kernel) -> None:
    """A SEND thread its target does not queue (it would wait forever) is reported."""
    k = world
    sender = thread_named(k, "sender")
    sender.snd_target.snd_queue.remove(sender)
    _violations(k, "not queued exactly once", "is in 0 sender queues")


def test_detects_a_sender_queued_at_two_threads(world: Kernel) -> None:
    """A sender in the queues of two threads is reported."""
    k = world
    sender = thread_named(k, "sender")
    thread_named(k, "spin1").snd_queue.append(sender)
    _violations(k, "is in 2 sender queues", "but sends to")


def test_detects_a_reply_whose_caller_is_gone(world: Kernel) -> None:
    """A caller waiting on a reply capability that no longer names it is reported."""
    k = world
    client = thread_named(k, "client")
    assert isinstance(client.partner, Reply)
    client.partner.caller = None
    _violations(k, "whose caller is None")


def test_detects_a_reply_nobody_can_send(world: Kernel) -> None:
    """A caller whose reply capability nobody holds (lost wake-up) is reported."""
    k = world
    thread_named(k, "server").reply = None
    _violations(k, "0 holders can send")


def test_detects_an_open_wait_with_a_queued_sender(world: Kernel) -> None:
    """An open-waiting thread with a sender queued at it (a missed hand-over) is reported."""
    k = world
    root = thread_named(k, "root")
    assert root.state is TS.RECV and root.partner is None
    sender = thread_named(k, "sender")
    sender.snd_target.snd_queue.remove(sender)
    sender.snd_target = root
    root.snd_queue.append(sender)
    _violations(k, "has queued senders")


def test_detects_an_inconsistent_pending_interrupt(world: Kernel) -> None:
    """An Irq queued at a thread but not marked pending is reported."""
    k = world
    irq = thread_named(k, "sleeper").pending_irqs[0]
    irq.pending = False
    _violations(k, "is pending at")


def test_detects_a_partner_on_a_thread_that_is_not_receiving(world: Kernel) -> None:
    """A thread with a receive partner while not in RECV is reported."""
    k = world
    th = next(t for t in k.cores[0].queued() if t.name == "spin2")
    th.partner = thread_named(k, "root")
    _violations(k, "has a partner")


def test_detects_a_stale_timeout(world: Kernel) -> None:
    """A pending timeout event owned by a READY thread is reported."""
    k = world
    th = next(t for t in k.cores[0].queued() if t.name == "spin2")
    th.timeout_ev = k.events.after(5 * MS, lambda t: None, th)
    _violations(k, "stale")


def test_detects_leftovers_on_a_dead_thread(world: Kernel) -> None:
    """A DEAD thread still holding a reply capability and queued senders is reported."""
    k = world
    server = thread_named(k, "server")
    server.state = TS.DEAD
    server.partner = None
    server.timeout_ev.cancel()
    server.timeout_ev = None
    _violations(k, "DEAD thread", "a reply capability")


def test_detects_a_factory_quota_mismatch(world: Kernel) -> None:
    """A factory whose ``used`` differs from what its live objects are charged is reported."""
    k = world
    sub = next(o for o in _objects(k) if isinstance(o, Factory) and o.factory is not None)
    sub.used += 64
    _violations(k, "its live objects are charged")


def test_detects_a_factory_over_its_limit(world: Kernel) -> None:
    """A factory that has used more than its quota is reported."""
    k = world
    sub = next(o for o in _objects(k) if isinstance(o, Factory) and o.factory is not None)
    sub.limit = sub.used - 1
    _violations(k, "outside 0..limit")


def test_detects_a_capability_to_a_destroyed_object(world: Kernel) -> None:
    """A capability naming a destroyed object is reported."""
    k = world
    irq = next(o for o in _objects(k) if isinstance(o, Irq))
    irq.alive = False
    _violations(k, "names destroyed")


def test_detects_a_wrong_live_object_count(world: Kernel) -> None:
    """``objects_alive`` that disagrees with the live objects is reported."""
    k = world
    k.objects_alive += 1
    _violations(k, "objects_alive")


def test_detects_a_running_core_without_a_step(world: Kernel) -> None:
    """A core with a current thread but no pending step (it would stall) is reported."""
    k = world
    core = k.cores[0]
    assert core.step_ev is not None
    core.step_ev.cancel()
    core.step_ev = None
    _violations(k, "has no step pending")


def test_detects_a_delete_irq_reporting_for_another_thread(world: Kernel) -> None:
    """A thread whose delete Irq reports another thread's deleted gates is reported."""
    k = world
    irq = thread_named(k, "sleeper").pending_irqs[0]
    thread_named(k, "spin1").del_irq = irq
    _violations(k, "reports for None")


def _objects(k: Kernel) -> list[Any]:
    return [e.obj for t in k.tasks for e in t.caps.slots.values()]


def _deleted_factory_world() -> tuple[Kernel, Factory, Factory]:
    """Root makes a sub-factory, a gate from it, and deletes the sub-factory: the gate lives on."""
    out: list[int] = []

    async def root(env: Env) -> None:
        sub = await env.factory.create_factory(10_000)
        gate = await FactoryCap(env, sub.slot).create_gate(None)
        out.append(gate.slot)
        await env.task.delete(sub.slot)
        await env.wait()

    k, _ = make_system(root)
    k.run(until=MS)
    gate = task_named(k, "root").caps.slots[out[0]].obj
    sub = gate.factory
    assert isinstance(sub, Factory) and isinstance(sub.factory, Factory)
    return k, sub, sub.factory


def test_objects_of_a_deleted_factory_stay_charged_to_its_parent() -> None:
    """After deleting a sub-factory whose gate lives on, the accounting is consistent."""
    k, sub, parent = _deleted_factory_world()
    assert not sub.alive and sub.used == IpcGate.SIZE
    assert parent.alive and parent.used >= sub.used
    assert invariants.check(k) == []
    _close(k)


def test_detects_a_parent_that_forgot_a_deleted_factorys_objects() -> None:
    """A parent factory no longer paying for what a deleted sub-factory's objects use is reported."""
    k, sub, parent = _deleted_factory_world()
    parent.used -= sub.used
    _violations(k, "its live objects are charged")
    _close(k)


# ---------------------------------------------------------------- found by the checker (fixed)
def test_deleting_a_capability_shared_at_boot_leaves_no_dangling_capability() -> None:
    """Root deleting sigma0's thread (its slot 4, with D) leaves no task naming a destroyed object."""

    async def pager(env: Env) -> None:
        await env.wait()

    async def root(env: Env) -> None:
        await env.task.delete(4)  # sigma0's thread, the root's pager

    k = Kernel(Machine(cores=1, seed=0), tracer=Tracer())
    s0 = k.create_sigma0(lambda sp: pager(Env(TaskLocal({"thread": 3}))))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), pager=s0)
    k.run()
    assert s0.state is TS.DEAD
    assert all(e.obj.alive for t in k.tasks for e in t.caps.slots.values())
    assert invariants.check(k) == []


def test_every_violation_is_one_readable_line(world: Kernel) -> None:
    """Violations are plain one-line strings naming the objects involved."""
    k = world
    _gate_entry(k, S_GRANDCHILD).rights = int(Rights.RWSD)
    thread_named(k, "sender").state = TS.READY
    v = invariants.check(k)
    assert len(v) >= 2
    assert all(isinstance(x, str) and x and "\n" not in x for x in v)
    assert any("root[31]" in x for x in v)
    assert any("'sender'" in x for x in v)

