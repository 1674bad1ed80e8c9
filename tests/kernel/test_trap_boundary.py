"""The trap boundary: the kernel takes plain values, once, and runs none of a program's code.

Each test is one class of hostile input that once escaped the kernel or
gave a program more than it held: int subclasses with their own methods,
a trap object changed after the trap, an entry point that raises, a trap
that costs nothing, exceptions a program raises that Python treats
specially, and Ctrl-C at the host.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from l4sim.kernel import invariants
from l4sim.kernel.abi import (
    RECV,
    SEND,
    TRAP_PY_EXCEPTION,
    Fpage,
    IpcErr,
    MapItem,
    Rights,
    unpack_bytes,
)
from l4sim.kernel.traps import Compute, Ipc, LoadCode, Msg
from l4sim.user.env import Env

from .conftest import make_system, run_system, thread_named

CALL = SEND | RECV


class Exploding(int):
    """An int whose every conversion and operator raises: the kernel must not call one."""

    def __int__(self) -> int:
        raise RuntimeError("__int__ ran in the kernel")

    def __index__(self) -> int:
        raise RuntimeError("__index__ ran in the kernel")

    def __and__(self, other: object) -> int:
        raise RuntimeError("__and__ ran in the kernel")

    __rand__ = __and__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("__eq__ ran in the kernel")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("__lt__ ran in the kernel")

    __le__ = __gt__ = __ge__ = __lt__
    __hash__ = int.__hash__


class AllRights(int):
    """Rights that claim every bit when the kernel masks them with anything."""

    def __and__(self, other: object) -> int:
        return 0xF

    __rand__ = __and__


def test_int_subclass_words_and_label_arrive_as_plain_ints() -> None:
    """Words and a label whose methods raise are copied as their values; the receiver gets exact ints."""
    got: list[Msg] = []

    async def server(env: Env) -> None:
        got.append(await env.wait())
        await env.reply(0)

    async def root(env: Env) -> int:
        th = await env.spawn(server, name="server", prio=50)
        gate = await env.factory.create_gate(th, 0x40)
        r = await Ipc(gate.slot, CALL, Exploding(9), (Exploding(3), 4, Exploding(2**64 - 1)))
        got.append(r)
        return 0

    run_system(root)
    msg = got[0]
    assert msg.error == 0 and msg.proto == 9 and msg.words == (3, 4, 2**64 - 1)
    assert type(msg.proto) is int and all(type(w) is int for w in msg.words)
    assert got[1].error == 0


def test_out_of_range_int_subclass_fails_the_trap() -> None:
    """An int subclass whose value is no machine word fails with SEMSGCUT, like a plain one."""
    got: list[int] = []

    async def root(env: Env) -> int:
        gate = await env.factory.create_gate(env.thread, 0x40)
        got.append((await Ipc(gate.slot, SEND, 0, (Exploding(-1),), timeout=0)).error)
        got.append((await Ipc(gate.slot, SEND, Exploding(1 << 60), (), timeout=0)).error)
        return 0

    run_system(root)
    assert got == [IpcErr.SEMSGCUT, IpcErr.SEMSGCUT]


def test_map_item_rights_cannot_grow_through_an_int_subclass() -> None:
    """A capability mapped with rights that lie about ``&`` arrives with no more than its source held."""
    seen: dict[str, int] = {}

    async def server(env: Env) -> None:
        msg = await env.wait(rcv=(Fpage.obj(40),))
        seen["err"] = msg.error
        await env.reply(0)

    async def root(env: Env) -> int:
        th = await env.spawn(server, name="server", prio=50)
        gate = await env.factory.create_gate(th, 0x40)
        victim = await env.factory.create_gate(env.thread, 0x80)
        # a read-only copy of the victim's gate: R only
        await env.task.map(env.task, Fpage.obj(victim.slot, 0, Rights.R), 50)
        item = MapItem(Fpage(Fpage.obj(50).kind, 50, 0, AllRights(Rights.RWSD)))
        seen["send"] = (await Ipc(gate.slot, CALL, 0, (), (item,))).error
        return 0

    k, _ = run_system(root)
    srv_task = thread_named(k, "server").task
    assert srv_task is not None
    e = srv_task.caps.slots.get(40)
    assert e is not None and e.rights == Rights.R, "no more than the source's R"
    assert type(e.rights) is int
    assert invariants.check(k) == []


def test_a_queued_message_is_the_kernels_copy() -> None:
    """A sender's other thread rewriting its queued trap changes nothing the server receives."""
    got: list[Msg] = []
    trap = Ipc(0, CALL, 5, (1, 2, 3), (), None, None, (Fpage.obj(60),))

    async def server(env: Env) -> None:
        await env.compute(100_000)  # busy: the call queues
        got.append(await env.wait(rcv=(Fpage.obj(70),)))
        await env.reply(0)

    async def meddler(env: Env) -> int:
        await env.compute(10_000)  # after the call queued
        trap.words = ("not", "words")  # type: ignore[assignment]
        trap.proto = object()  # type: ignore[assignment]
        trap.items = (b"junk",)  # type: ignore[assignment]
        object.__setattr__(trap.rcv[0], "rights", AllRights(0))
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(server, name="server", prio=50)
        gate = await env.factory.create_gate(th, 0x40)
        await env.spawn(meddler, name="meddler", prio=40)
        trap.cap = gate.slot
        got.append(await trap)
        return 0

    k, _ = run_system(root)
    assert got[0].error == 0 and got[0].proto == 5 and got[0].words == (1, 2, 3)
    assert got[1].error == 0
    assert not thread_named(k, "server").faulted and thread_named(k, "server").exit_code == 0
    assert invariants.check(k) == []


def test_an_entry_that_raises_is_the_threads_exception() -> None:
    """Code loaded with LoadCode that raises when started faults that thread; the kernel goes on."""
    seen: list[Msg] = []

    def bad_entry(sp: int) -> Any:
        raise ValueError(f"no stack at {sp:#x}")

    async def handler(env: Env) -> None:
        seen.append(await env.wait())
        await env.reply(0)

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        ip = await LoadCode(env.task.slot, bad_entry)
        th = await env.factory.create_thread("victim")
        await th.control(exc_handler=h.slot, bind=env.task)
        await env.scheduler.run_thread(th, 10)
        await th.ex_regs(ip, 0x1000)
        await env.compute(50_000)
        return 0

    k, _ = run_system(root)
    assert len(seen) == 1 and seen[0].words[0] == TRAP_PY_EXCEPTION
    assert unpack_bytes(seen[0].words[4:]).startswith(b"ValueError: no stack at 0x1000 (test_trap_boundary.py:")
    assert thread_named(k, "root").exit_code == 0


def test_a_zero_cost_trap_loop_lets_time_advance() -> None:
    """A thread spinning on compute(0) still moves its core's clock: ``until`` ends the run."""

    async def spin(env: Env) -> None:
        while True:
            await Compute(0)

    async def root(env: Env) -> int:
        await env.spawn(spin, name="spin", prio=50)
        return 0

    k, _ = run_system(root, until=2_000_000, trace=False)
    assert k.cores[0].time >= 2_000_000
    assert thread_named(k, "spin").cpu_ns > 1_000_000


def test_system_exit_and_keyboard_interrupt_of_a_program_are_its_exceptions() -> None:
    """A program raising SystemExit or KeyboardInterrupt faults itself, not the kernel or the run."""

    async def quits(env: Env) -> None:
        raise SystemExit(3)

    async def interrupts(env: Env) -> None:
        raise KeyboardInterrupt

    async def root(env: Env) -> int:
        await env.spawn(quits, name="quits", prio=50)
        await env.spawn(interrupts, name="interrupts", prio=50)
        await env.compute(10_000)
        return 0

    k, _ = run_system(root)
    assert thread_named(k, "quits").faulted and thread_named(k, "interrupts").faulted
    assert thread_named(k, "root").exit_code == 0


def test_host_ctrl_c_stops_the_run_between_events() -> None:
    """SIGINT at the host leaves ``Kernel.run`` as KeyboardInterrupt at an event boundary."""
    ticks: list[int] = []

    async def root(env: Env) -> int:
        for i in range(1000):
            await env.compute(1_000)
            ticks.append(i)
            if i == 5:
                os.kill(os.getpid(), signal.SIGINT)
        return 0

    k, _ = make_system(root, trace=False)
    try:
        k.run()
        raise AssertionError("the run went on after Ctrl-C")
    except KeyboardInterrupt:
        pass
    assert 5 <= len(ticks) < 1000
    assert not thread_named(k, "root").faulted, "the host's Ctrl-C is not the program's exception"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
