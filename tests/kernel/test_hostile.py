"""Kernel bugs a hostile task found, each in the fewest steps (all fixed: regression tests).

The hostile-program fuzzer (:mod:`l4sim.tools.fuzz`: random traps from
several hostile programs, invariants after every event and trap) grew out
of the state machine that found these; its bounded run is in
``tests/tools/test_fuzz.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from l4sim.kernel import invariants
from l4sim.kernel.abi import (
    EX_REGS_CANCEL,
    RECV,
    SEND,
    SLOT_PAGER,
    WAIT,
    Err,
    Fpage,
    FpageType,
    IpcErr,
    MapItem,
    MemRights,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, IpcGate
from l4sim.kernel.traps import Ipc, LoadCode
from l4sim.machine.board import COM1, Machine
from l4sim.runtime.sigma0 import REQ_FPAGE_IO, request, sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, FactoryCap, L4Error, TaskLocal

from .conftest import make_system, run_system, task_named, thread_named

CALL = SEND | RECV
MS = 1_000_000
#: fixed slots of a task (the initial layout)
S_TASK, S_FACTORY, S_LOG = 1, 2, 5


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


def test_a_port_mapped_to_another_number_reaches_its_own_device_only() -> None:
    """A program given port 0x80 that maps it at COM1's number in its own space reaches port 0x80
    (no device), not the UART it was never given: an I/O access goes to the port it is mapped to."""
    got: list[Any] = []

    async def root(env: Env) -> None:
        r = await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(0x80), Fpage.io(0, 16))
        got.append(r.error)
        got.append(await env.task.map(env.task, Fpage.io(0x80, 0, MemRights.RW), COM1))
        await env.io.outb(COM1, ord("A"))
        got.append(await env.io.inb(COM1))

    m = Machine(cores=1)
    k = Kernel(m)
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), pager=s0)
    k.run(max_events=100_000)
    assert got == [0, 1, 0xFF]  # the alias reads port 0x80: nothing there
    assert bytes(m.uart.output) == b""
    _no_violations(k)
