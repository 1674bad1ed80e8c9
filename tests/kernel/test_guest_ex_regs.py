"""ex_regs with EX_REGS_GUEST: a native program starts x86-64 guest threads with system calls.

The host only puts the program's frames into the root's space (as a boot
loader would); the root creates the task and thread, maps the code into the
task, sets itself as exception handler and starts the thread with
``ex_regs(rip, rsp, EX_REGS_GUEST)``, all through system calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("unicorn")

from l4sim.kernel import guest, invariants
from l4sim.kernel.abi import EX_REGS_GUEST, Err, Fpage, MemRights, ThreadOp
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal, ThreadCap

from .guest_progs import Program, build

PAGE = 4096
STACK = 0x80_0000
SLOT_HANDLER = 9


def _system(prog: Program, root_fn: Any) -> Kernel:
    m = Machine(cores=1, seed=0, ram=16 << 20)
    k = Kernel(m, tracer=Tracer())
    root = k.create_root("root", lambda sp: root_fn(Env(TaskLocal(INITIAL))), prio=100)
    assert root.task is not None
    s0 = k.create_task("sigma0")  # frames come from sigma0's 1:1 roots, as at boot
    s0.vspace.sigma0 = True
    for i, off in enumerate(range(0, len(prog.image), PAGE)):
        pfn = 0x100 + i
        s0_root = k.sigma0_root(s0, pfn)
        assert s0_root is not None
        assert k.mem_map(s0_root, root.task, (prog.base + off) >> 12, int(MemRights.RWX), False) is not None
        chunk = prog.image[off : off + PAGE]
        m.mem.frame(pfn)[: len(chunk)] = chunk
    return k


async def _guest_thread(env: Env, prog: Program, bind: bool = True) -> ThreadCap:
    """A task holding the program's code and a thread (bound, handler = the root), not started."""
    task = await env.factory.create_task("g")
    th = await env.factory.create_thread("g")
    if not bind:
        return th
    await th.control(bind=task)
    for off in range(0, len(prog.image), PAGE):
        await task.map(env.task, Fpage.mem(prog.base + off, 12, MemRights.R | MemRights.X), prog.base + off)
    await task.map(env.task, env.thread.fpage(), SLOT_HANDLER)
    await th.control(exc_handler=SLOT_HANDLER)
    await env.scheduler.run_thread(th, 50, 10_000_000, 1)
    return th


def _start(env: Env, th: ThreadCap, rip: int, rsp: int = STACK) -> Any:
    return env.ipc(th.invoke(ThreadOp.EX_REGS, rip, rsp, EX_REGS_GUEST))


def test_ex_regs_guest_starts_a_guest_thread(tmp_path: Path) -> None:
    """A thread started with EX_REGS_GUEST runs the program: its write and exit system calls
    reach the handler, with rsp as given, and the reply's rax is write's result."""
    prog = build("hello", tmp_path)
    log: list[Any] = []

    async def root(env: Env) -> None:
        th = await _guest_thread(env, prog)
        r = await _start(env, th, prog.entry)
        log.append(("started", r.proto))
        msg = await env.wait()
        log.append((msg.proto, msg.words[0], msg.words[guest.REGS.index("rsp")]))
        msg = await env.reply_and_wait(0, 13)
        log.append(("exit", msg.words[5]))
        await env.reply(1)

    k = _system(prog, root)
    k.run()
    assert log == [("started", 0), (guest.SYSCALL_LABEL, 1, STACK), ("exit", 7)]
    assert invariants.check(k) == []


def test_ex_regs_guest_restarts_a_thread_blocked_in_a_system_call(tmp_path: Path) -> None:
    """EX_REGS_GUEST on a guest thread waiting for its handler's reply cancels the call and
    starts it afresh: the handler sees the first write a second time."""
    prog = build("hello", tmp_path)
    log: list[Any] = []

    async def root(env: Env) -> None:
        th = await _guest_thread(env, prog)
        await _start(env, th, prog.entry)
        msg = await env.wait()
        log.append(msg.words[0])
        r = await _start(env, th, prog.entry, STACK - 64)  # instead of replying
        log.append(r.proto)
        msg = await env.wait()
        log.append((msg.words[0], msg.words[guest.REGS.index("rsp")]))
        await env.reply(1)

    k = _system(prog, root)
    k.run()
    assert log == [1, 0, (1, STACK - 64)]
    assert invariants.check(k) == []


def test_ex_regs_guest_refuses_an_unbound_thread(tmp_path: Path) -> None:
    """A thread bound to no task cannot become a guest thread (-EINVAL)."""
    prog = build("hello", tmp_path)
    out: list[int] = []

    async def root(env: Env) -> None:
        th = await _guest_thread(env, prog, bind=False)
        out.append((await _start(env, th, prog.entry)).proto)

    _system(prog, root).run()
    assert out == [-Err.EINVAL]


def test_ex_regs_guest_refuses_a_non_canonical_rip(tmp_path: Path) -> None:
    """A start address above the 47-bit user half is refused (-EINVAL) and nothing runs."""
    prog = build("hello", tmp_path)
    out: list[Any] = []

    async def root(env: Env) -> None:
        th = await _guest_thread(env, prog)
        out.append((await _start(env, th, 1 << 47)).proto)
        out.append((await th.stats())[2])

    k = _system(prog, root)
    k.run()
    assert out == [-Err.EINVAL, int(TS.INACTIVE)]


def test_ex_regs_guest_refuses_a_native_thread(tmp_path: Path) -> None:
    """A thread running native code (here the caller itself) is not turned into a guest (-EINVAL)."""
    prog = build("hello", tmp_path)
    out: list[int] = []

    async def root(env: Env) -> None:
        out.append((await _start(env, env.thread, prog.entry)).proto)

    _system(prog, root).run()
    assert out == [-Err.EINVAL]
