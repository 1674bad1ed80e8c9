"""Regression tests for kernel bugs found in review, one behaviour each."""

from __future__ import annotations

from l4sim.kernel.abi import CALL, Fpage, IpcErr, MapItem, Proto
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Compute, Ipc, Msg
from l4sim.user.env import Env

from .conftest import run_system, thread_named


def test_mapping_a_capability_onto_its_own_slot_changes_nothing() -> None:
    """Task.map of a capability onto the slot it is in keeps it (and its object)."""
    info: list[tuple[int, int, int]] = []

    async def root(env: Env) -> int:
        irq = await env.factory.create_irq()
        await env.task.map(env.task, irq.fpage(), irq.slot)
        info.append(await env.task.cap_info(irq.slot))
        return 0

    run_system(root)
    assert info[0][0] == 1


def test_a_receive_window_never_fills_slot_zero() -> None:
    """A multi-slot window at slot 0 is refused: map failed, no capability overwritten."""
    got: list[Msg] = []

    async def server(env: Env) -> int:
        got.append(await env.wait(rcv=(Fpage.obj(0, 3),)))
        return 0

    async def root(env: Env) -> int:
        srv = await env.spawn(server, name="server", prio=50)
        irq = await env.factory.create_irq(slot=16)
        r = await srv.send(1, items=(MapItem(Fpage.obj(16, 1)),))
        got.append(r)
        del irq
        return 0

    k, _ = run_system(root)
    assert sorted(m.error for m in got) == [IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED]
    assert thread_named(k, "root").exit_code == 0


def test_ex_regs_on_the_calling_thread_restarts_it_cleanly() -> None:
    """A thread giving itself a new entry with ex_regs starts there, not with a crash."""
    reached: list[str] = []

    async def second(sp: int) -> int:
        reached.append("second")
        await Compute(10)
        return 5

    async def root(env: Env) -> int:
        ip = await env.task.load_code(second)
        await env.thread.ex_regs(ip, 0)
        reached.append("not reached")
        return 0

    k, _ = run_system(root)
    root_th = thread_named(k, "root")
    assert reached == ["second"] and root_th.exit_code == 5 and not root_th.faulted


def test_a_program_awaiting_in_finally_cannot_stop_the_kernel() -> None:
    """Killing a thread whose program awaits in a finally block leaves the kernel running."""

    async def stubborn(env: Env) -> int:
        try:
            await env.wait()
        finally:
            await env.compute(1)
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(stubborn, name="stubborn", prio=50)
        await env.task.delete(th.slot)
        await env.compute(100)
        return 0

    k, _ = run_system(root)
    assert thread_named(k, "stubborn").state is TS.DEAD
    assert thread_named(k, "root").exit_code == 0


def test_an_unhashable_capability_index_is_an_error_value() -> None:
    """A call whose capability index is a list gets ENOT_EXISTENT, not a kernel crash."""
    got: list[Msg] = []

    async def root(env: Env) -> int:
        got.append(await env.ipc(Ipc([1], CALL)))  # type: ignore[arg-type]
        got.append(await env.ipc(Ipc(2, CALL, int(Proto.FACTORY), (0, 0, 0),
                                     rcv=(Fpage.obj("x"),))))  # type: ignore[arg-type]
        return 0

    run_system(root)
    assert got[0].error == IpcErr.ENOT_EXISTENT
    assert got[1].error or got[1].proto < 0


def test_an_empty_memory_access_is_a_no_op() -> None:
    """Writing zero bytes or reading zero bytes does not fault."""
    got: list[bytes] = []

    async def root(env: Env) -> int:
        await env.mem.write(0x100000, b"")
        got.append(await env.mem.read(0x100000, 0))
        return 0

    k, _ = run_system(root)
    assert got == [b""] and not thread_named(k, "root").faulted
