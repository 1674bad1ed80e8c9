"""Interrupts: Irq objects, software triggers, hardware lines through the ICU, masking."""

from __future__ import annotations

import pytest

from l4sim.kernel.abi import Err, Fpage, IpcErr, Proto, Rights
from l4sim.kernel.objects import Irq
from l4sim.machine.events import PRIO_IRQ
from l4sim.user.env import Env, Gate, IrqCap, L4Error

from .conftest import make_system, run_system, thread_named

LINE = 2  # a free line of the board (0 is the PIT, 1 the UART)


def irq_records(tr):  # type: ignore[no-untyped-def]
    """The ``irq`` trace records as (tid, args) pairs."""
    return [(r[3], r[4]) for r in tr.by_kind("irq")]


def test_software_trigger_delivers_a_message_from_the_irq() -> None:
    """A thread waiting openly receives a triggered Irq as proto -1 with the attach label."""
    got: list[tuple[int, int, int, tuple[int, ...]]] = []

    async def waiter(env: Env) -> int:
        msg = await env.wait()
        got.append((msg.error, msg.proto, msg.label, msg.words))
        return 0

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        w = await env.spawn(waiter, name="waiter", prio=200)  # runs at once and blocks
        await irq.attach(w, 0x300)
        await irq.trigger()
        return 0

    k, tr = run_system(root)
    assert got == [(0, Proto.IRQ, 0x300, ())]
    assert Proto.IRQ == -1
    assert type(got[0][1]) is int, "a plain int label, so the receiver can forward it"
    assert thread_named(k, "waiter").exit_code == 0
    recs = irq_records(tr)
    assert len(recs) == 1
    assert recs[0][0] == thread_named(k, "waiter").kid
    assert recs[0][1]["delivered"] == 1 and recs[0][1]["line"] == -1


def test_trigger_while_not_waiting_is_delivered_once_at_the_next_wait() -> None:
    """Triggers while the thread runs stay pending, coalesce, and arrive at its next wait."""
    got: list[tuple[int, int, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x40)
        await irq.trigger()
        await irq.trigger()  # coalesced with the first
        await env.compute(1_000)
        m1 = await env.receive(irq, timeout=0)
        got.append((m1.error, m1.proto, m1.label))
        m2 = await env.receive(irq, timeout=10_000)
        got.append((m2.error, m2.proto, m2.label))
        return 0

    k, tr = run_system(root)
    assert got == [(0, Proto.IRQ, 0x40), (IpcErr.RETIMEOUT, 0, 0)]
    assert len(irq_records(tr)) == 1
    assert thread_named(k, "root").exit_code == 0


def test_pending_irq_is_also_taken_by_an_open_wait() -> None:
    """An Irq that fired while its thread ran is what that thread's next open wait returns."""
    got: list[tuple[int, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x80)
        await irq.trigger()
        msg = await env.wait(timeout=0)
        got.append((msg.proto, msg.label))
        return 0

    run_system(root)
    assert got == [(Proto.IRQ, 0x80)]


def test_hardware_line_bound_through_the_icu_delivers() -> None:
    """Raising a bound line wakes the attached thread with an IRQ message after the entry cost."""
    got: list[tuple[int, int, int, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x500)
        await env.icu.bind(LINE, irq)
        msg = await env.receive(irq)
        got.append((msg.error, msg.proto, msg.label, await env.clock()))
        return 0

    k, tr = make_system(root)
    k.run()
    assert got == [], "nothing is delivered before the line is raised"
    k.machine.events.at(10_000, k.machine.ic.raise_line, LINE, prio=PRIO_IRQ)
    k.run()
    assert len(got) == 1
    err, proto, label, when = got[0]
    assert (err, proto, label) == (0, Proto.IRQ, 0x500)
    assert 10_000 + k.costs.irq_entry <= when < 20_000
    assert k.machine.ic.counts[LINE] == 1
    assert [a["line"] for _, a in irq_records(tr)] == [LINE]


def test_pit_ticks_arrive_as_irq_messages() -> None:
    """The platform timer on line 0, programmed by the test, delivers a message per period."""
    times: list[int] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0)
        await env.icu.bind(0, irq)
        for _ in range(3):
            msg = await env.receive(irq)
            assert msg.proto == Proto.IRQ
            times.append(await env.clock())
            await irq.unmask()
        await env.icu.unbind(0, irq)
        return 0

    k, _ = make_system(root)
    k.machine.pit.program(100_000)
    k.run(until=1_000_000)
    assert len(times) == 3
    for n, t in enumerate(times, start=1):
        assert n * 100_000 <= t < n * 100_000 + 5_000
    assert thread_named(k, "root").exit_code == 0
    k.machine.pit.program(0)


def test_hardware_irq_is_masked_until_unmask_and_latched_meanwhile() -> None:
    """After delivery a line stays masked; a second raise is latched and delivered right after unmask."""
    got: list[tuple[str, int, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x500)
        await env.icu.bind(LINE, irq)
        msg = await env.receive(irq)
        got.append(("first", msg.error, await env.clock()))
        msg = await env.receive(irq, timeout=50_000)  # masked: the second raise is held back
        got.append(("masked", msg.error, await env.clock()))
        await irq.unmask()
        msg = await env.receive(irq, timeout=0)  # the latched interrupt is already pending
        got.append(("after unmask", msg.error, msg.proto))
        msg = await env.receive(irq, timeout=0)
        got.append(("nothing more", msg.error, msg.proto))
        return 0

    k, _ = make_system(root)
    k.run(until=1_000)  # root binds the line and blocks in its receive
    k.machine.ic.raise_line(LINE)
    k.run(until=10_000)
    irq = k.icu.bound[LINE]
    assert [g[:2] for g in got] == [("first", 0)]
    assert irq.masked, "a delivered hardware interrupt masks its Irq"
    k.machine.ic.raise_line(LINE)
    assert irq.latched
    k.run()
    assert [g[:2] for g in got] == [("first", 0), ("masked", IpcErr.RETIMEOUT),
                                   ("after unmask", 0), ("nothing more", IpcErr.RETIMEOUT)]
    assert got[2][2] == Proto.IRQ
    assert got[1][2] >= got[0][2] + 50_000
    assert irq.count == 2
    assert k.machine.ic.counts[LINE] == 2


def test_mask_blocks_delivery_of_a_software_irq() -> None:
    """A masked Irq does not reach its thread; unmask delivers what fired meanwhile."""
    got: list[tuple[str, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x10)
        await irq.mask()
        await irq.trigger()
        msg = await env.receive(irq, timeout=20_000)
        got.append(("masked", msg.error))
        await irq.unmask()
        msg = await env.receive(irq, timeout=0)
        got.append(("unmasked", msg.error))
        return 0

    run_system(root)
    assert got == [("masked", IpcErr.RETIMEOUT), ("unmasked", 0)]


def test_detach_stops_delivery_and_drops_a_pending_irq() -> None:
    """After detach a pending trigger is gone and new triggers reach nobody."""
    got: list[int] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x10)
        await irq.trigger()  # pending at this thread
        await irq.detach()
        await irq.trigger()  # attached to nobody: succeeds, delivers nothing
        got.append((await env.wait(timeout=20_000)).error)
        return 0

    k, _ = run_system(root)
    assert got == [IpcErr.RETIMEOUT]
    assert all(not th.pending_irqs for th in k.threads)


def test_icu_bind_of_a_line_bound_to_another_irq_is_busy() -> None:
    """Binding a line that already belongs to another Irq fails with EBUSY and changes nothing."""
    got: list[int] = []

    async def root(env: Env) -> int:
        a = await env.factory.create_irq()
        b = await env.factory.create_irq()
        await env.icu.bind(LINE, a)
        try:
            await env.icu.bind(LINE, b)
        except L4Error as e:
            got.append(e.err)
        await env.icu.bind(LINE, a)  # rebinding the same Irq is fine
        return 0

    k, _ = run_system(root)
    assert got == [Err.EBUSY]
    bound = k.icu.bound[LINE]
    assert isinstance(bound, Irq) and bound.line == LINE
    assert list(k.icu.bound) == [LINE]


def test_icu_bind_of_a_missing_line_is_invalid() -> None:
    """A line number beyond the controller's lines is rejected with EINVAL."""
    got: list[int] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        nlines = (await env.icu.info())[1]
        try:
            await env.icu.bind(nlines, irq)
        except L4Error as e:
            got.append(e.err)
        return 0

    k, _ = run_system(root)
    assert got == [Err.EINVAL]
    assert k.icu.bound == {}


def test_closed_wait_on_an_irq_ignores_other_senders() -> None:
    """``env.receive(irq)`` takes only the Irq; a queued IPC sender waits for a later receive."""
    order: list[tuple[str, int, int]] = []

    async def sender(env: Env, gate_slot: int) -> int:
        await Gate(env, gate_slot).send(0, 7)
        return 0

    async def trigger(env: Env, irq_slot: int) -> int:
        await env.compute(10_000)
        await IrqCap(env, irq_slot).trigger()
        return 0

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await irq.attach(env.thread, 0x700)
        gate = await env.factory.create_gate(env.thread, 0x20)
        await env.spawn(sender, gate.slot, name="sender", prio=50)
        await env.spawn(trigger, irq.slot, name="trigger", prio=40)
        msg = await env.receive(irq)
        order.append(("irq", msg.proto, msg.label))
        msg = await env.wait()
        order.append(("gate", msg.proto, msg.label & ~3))
        return 0

    k, _ = run_system(root)
    assert order == [("irq", Proto.IRQ, 0x700), ("gate", 0, 0x20)]
    assert thread_named(k, "sender").exit_code == 0


@pytest.mark.parametrize("op", ["trigger", "attach"])
def test_irq_operations_need_the_write_right(op: str) -> None:
    """An Irq capability without W cannot be triggered or attached (EPERM)."""
    got: list[int] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        ro = env.alloc_slot()
        await env.task.map(env.task, Fpage.obj(irq.slot, 0, Rights.R), ro)
        weak = IrqCap(env, ro)
        try:
            if op == "trigger":
                await weak.trigger()
            else:
                await weak.attach(env.thread, 0)
        except L4Error as e:
            got.append(e.err)
        return 0

    run_system(root)
    assert got == [Err.EPERM]
