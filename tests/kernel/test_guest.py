"""The guest CPU executor: x86-64 threads on unicorn, alien system calls, faults, preemption.

Each test assembles a tiny static program from ``guest_progs/`` at test
time, loads it into frames that the root task owns and maps into a guest
task (host-side set-up, before the run), and starts a guest thread whose
exception handler -- and, where a test needs one, pager -- is the root
task's native thread.  The root serves system calls (``write`` reads the
guest's buffer through the root's own mapping of the same frames) and page
faults (it maps pages of its pool).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("unicorn")

from l4sim.kernel import guest, invariants
from l4sim.kernel.abi import SLOT_THREAD, Fpage, MapItem, MemRights, Proto, Rights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, Task, Thread
from l4sim.kernel.trace import Tracer
from l4sim.kernel.vspace import TRAP_PAGE_FAULT
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal

from .guest_progs import Program, build

RootFn = Callable[[Env], Coroutine[Any, Any, Any]]
#: slot of the root thread in a guest task's capability space (handler and pager)
HANDLER = 1
#: where the root keeps pages its pager hands out
POOL = 0x4000_0000
STACK_TOP = 0x80_0000
DATA = 0x60_0000
PAGE = 4096
RX = MemRights.R | MemRights.X
RW = MemRights.RW
SYS_WRITE, SYS_EXIT = 1, 60


class Sys:
    """A machine, a kernel with a tracer, a root thread, and a frame allocator."""

    def __init__(self, root_fn: RootFn, cores: int = 1) -> None:
        self.m = Machine(cores=cores, seed=0, ram=16 << 20)
        self.tr = Tracer()
        self.k = Kernel(self.m, tracer=self.tr)
        self.root: Thread = self.k.create_root("root", lambda sp: root_fn(Env(TaskLocal(INITIAL))), prio=100)
        self.s0 = self.k.create_task("sigma0")  # frames come from sigma0's 1:1 roots, as at boot
        self.s0.vspace.sigma0 = True
        self.next_pfn = 0x100

    def task(self, name: str = "guest") -> Task:
        """A guest task whose slot HANDLER names the root thread."""
        rt = self.root.task
        assert rt is not None
        t = self.k.create_task(name, rt.factory)
        assert self.k.cap_map(rt.caps.slots[SLOT_THREAD], t, HANDLER, Rights.RWSD, grant=False) is not None
        return t

    def frame(self, root_at: int, data: bytes = b"") -> int:
        """A fresh frame mapped RWX into the root at ``root_at``, holding ``data``."""
        pfn = self.next_pfn
        self.next_pfn += 1
        s0_root = self.k.sigma0_root(self.s0, pfn)
        assert s0_root is not None
        assert self.k.mem_map(s0_root, self.root.task, root_at >> 12, int(MemRights.RWX), False) is not None
        self.m.mem.frame(pfn)[: len(data)] = data
        return pfn

    def give(self, task: Task, addr: int, rights: int, data: bytes = b"") -> int:
        """A fresh frame at ``addr`` in the root and, derived from it, in ``task``."""
        pfn = self.frame(addr, data)
        parent = self.root.task.vspace.pages[addr >> 12]
        assert self.k.mem_insert(task, addr >> 12, pfn, int(rights), parent) is not None
        return pfn

    def load(self, task: Task, prog: Program) -> None:
        for off in range(0, len(prog.image), PAGE):
            self.give(task, prog.base + off, RX, prog.image[off : off + PAGE])

    def guest(self, task: Task, prog: Program, name: str = "g", pager: bool = False, prio: int = 50,
              **regs: int) -> Thread:
        return self.k.create_guest_thread(task, name, {"rip": prog.entry, **regs}, exc_handler_slot=HANDLER,
                                          pager_slot=HANDLER if pager else 0, prio=prio)


def serve(log: list[Any], pool: list[int] | None = None, wait_first: int | None = None) -> RootFn:
    """The root's program: a system-call server (write, exit) and, with ``pool``, a pager."""

    async def root(env: Env) -> None:
        if wait_first is not None:
            await env.wait(timeout=wait_first)
        msg = await env.wait()
        while True:
            w = msg.words
            if msg.proto == guest.SYSCALL_LABEL and w[0] == SYS_WRITE:
                data = await env.mem.read(w[4], w[3])
                log.append(("write", w[5], data))
                msg = await env.reply_and_wait(0, len(data))
            elif msg.proto == guest.SYSCALL_LABEL and w[0] == SYS_EXIT:
                log.append(("exit", w[5]))
                msg = await env.reply_and_wait(1)  # any label but 0 ends the thread
            elif msg.proto == Proto.PAGE_FAULT and pool:
                log.append(("pf", w))
                src = pool.pop(0)
                msg = await env.reply_and_wait(0, items=(MapItem(Fpage.mem(src, 12, RW), snd_base=w[0] & ~0xFFF),))
            else:
                log.append((msg.proto, w))
                msg = await env.reply_and_wait(1)

    return root


def _regs(words: tuple[int, ...]) -> dict[str, int]:
    """The registers after the five header words of a guest's exception message."""
    return dict(zip(guest.REGS, words[5:25], strict=True))


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# ------------------------------------------------------------------------------ tests
def test_write_and_exit_system_calls_reach_the_handler(tmp: Path) -> None:
    """write(1, msg, 13) reaches the handler with the guest's registers, the reply's rax comes
    back as write's result, and exit(7) (computed from it) ends the thread."""
    prog = build("hello", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.load(t, prog)
    th = s.guest(t, prog)
    s.k.run()
    assert log == [("write", 1, b"hello, guest\n"), ("exit", 7)]
    assert th.state is TS.DEAD and th.traps == 2
    assert th.cpu_ns > 0


def test_syscall_message_layout(tmp: Path) -> None:
    """The system-call message has 20 words in UnknownSyscall order with rip after the syscall."""
    prog = build("hello", tmp)
    seen: list[Any] = []

    async def root(env: Env) -> None:
        msg = await env.wait()
        seen.append((msg.proto, msg.words))
        await env.reply(1)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    s.guest(t, prog, rsp=STACK_TOP, r12=0x1234)
    s.k.run()
    (proto, words), = seen
    assert proto == Proto.SYS_EXCEPTION and len(words) == len(guest.REGS) == 20
    regs = dict(zip(guest.REGS, words, strict=True))
    assert (regs["rax"], regs["rdi"], regs["rdx"]) == (1, 1, 13)
    assert regs["rsi"] == prog.symbols["msg"]
    assert regs["rip"] == prog.symbols["after_write"]
    assert (regs["rsp"], regs["r12"]) == (STACK_TOP, 0x1234)


def test_page_faults_are_resolved_by_a_native_pager(tmp: Path) -> None:
    """A push to an unmapped stack page and a store to an unmapped data page each fault to the
    pager with Fiasco's word 0 (page address | write) and RIP of the instruction; after its map replies the accesses
    complete (exit(42 + 5))."""
    prog = build("touch", tmp)
    log: list[Any] = []
    pool = [POOL, POOL + PAGE]
    s = Sys(serve(log, pool=list(pool)))
    for a in pool:
        s.frame(a)
    t = s.task()
    s.load(t, prog)
    th = s.guest(t, prog, pager=True, rsp=STACK_TOP)
    s.k.run(until=2_000)  # in the middle of it
    assert invariants.check(s.k) == []
    s.k.run()
    assert invariants.check(s.k) == []
    assert log == [("pf", ((STACK_TOP - PAGE) | 2, prog.symbols["push_insn"])),
                   ("pf", (DATA | 2, prog.symbols["store_insn"])),
                   ("exit", 47)]
    assert th.pfaults == 2
    assert t.vspace.pages[DATA >> 12].parent is s.root.task.vspace.pages[(POOL + PAGE) >> 12]


def test_a_pager_reply_that_maps_nothing_faults_again(tmp: Path) -> None:
    """A pager that answers without mapping sees the same fault again; mapping then resolves it."""
    prog = build("touch", tmp)
    faults: list[Any] = []
    exits: list[int] = []

    async def root(env: Env) -> None:
        msg = await env.wait()
        n = 0
        while True:
            if msg.proto == Proto.PAGE_FAULT:
                faults.append(msg.words)
                n += 1
                items = () if n == 1 else (MapItem(Fpage.mem(POOL + PAGE * (n - 2), 12, RW),
                                                   snd_base=msg.words[0] & ~0xFFF),)
                msg = await env.reply_and_wait(0, items=items)
            else:
                exits.append(msg.words[5])
                msg = await env.reply_and_wait(1)

    s = Sys(root)
    s.frame(POOL)
    s.frame(POOL + PAGE)
    t = s.task()
    s.load(t, prog)
    s.guest(t, prog, pager=True, rsp=STACK_TOP)
    s.k.run()
    assert faults[0] == faults[1] == ((STACK_TOP - PAGE) | 2, prog.symbols["push_insn"])
    assert len(faults) == 3 and exits == [47]


def test_unmapped_access_without_pager_is_trap_14(tmp: Path) -> None:
    """A load from an unmapped address with no pager is exception IPC trap 14 carrying the
    error bits (read, not present), RIP of the load and the address."""
    prog = build("unmapped", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.load(t, prog)
    th = s.guest(t, prog)
    s.k.run()
    # unicorn reports the page of a data fault, not the byte (see guest.py)
    (proto, w), = log
    assert (proto, w[:5]) == (Proto.EXCEPTION, (TRAP_PAGE_FAULT, 0, prog.symbols["load_insn"], 0, 0x123000))
    assert len(w) == 25 and _regs(w)["rip"] == prog.symbols["load_insn"]
    assert th.state is TS.DEAD and th.pfaults == 1
    pf = [r[4] for r in s.tr.by_kind("pagefault") if r[3] == th.kid]
    assert pf == [{"addr": 0x123000, "write": 0, "present": 0, "pager": -1}]


def test_fetch_from_a_page_without_x_faults_with_the_fetch_bit(tmp: Path) -> None:
    """Code mapped without the X right cannot run: the fetch faults with present 1 | fetch 4."""
    prog = build("unmapped", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.give(t, prog.base, MemRights.R, prog.image)
    s.guest(t, prog)
    s.k.run()
    assert [(p, w[:5]) for p, w in log] == [(Proto.EXCEPTION, (TRAP_PAGE_FAULT, 5, prog.entry, 0, prog.entry))]


def test_ud2_is_trap_6_and_a_register_reply_resumes_past_it(tmp: Path) -> None:
    """ud2 raises exception IPC trap 6 with RIP on it; a reply whose 16th word sets rip
    resumes the thread after it (it then exits with 3)."""
    prog = build("ud2", tmp)
    log: list[Any] = []

    async def root(env: Env) -> None:
        msg = await env.wait()
        log.append((msg.proto, msg.words))
        regs = [0] * 16
        regs[guest.RIP_INDEX] = prog.symbols["after"]
        msg = await env.reply_and_wait(0, *regs)
        log.append(("exit", msg.words[5]))
        await env.reply(1)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    s.guest(t, prog)
    s.k.run()
    assert log[1] == ("exit", 3)
    proto, w = log[0]
    assert (proto, w[:5]) == (Proto.EXCEPTION, (6, 0, prog.symbols["bad_insn"], 0, 0))
    assert _regs(w)["rip"] == prog.symbols["bad_insn"] and _regs(w)["rflags"] & 2


def test_equal_priority_guest_threads_are_preempted_round_robin(tmp: Path) -> None:
    """Two spinning guest threads of one task at equal priority on one core take turns at
    quantum expiry (their switches alternate) and both finish with their own registers."""
    prog = build("spin", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.load(t, prog)
    a = s.guest(t, prog, name="a", rcx=100_000, rbx=1)
    b = s.guest(t, prog, name="b", rcx=100_000, rbx=2)
    for th in (a, b):
        th.quantum = th.quantum_left = 50_000
    s.k.run(until=1_000_000)
    assert invariants.check(s.k) == []
    s.k.run()
    assert sorted(log) == [("exit", 1), ("exit", 2)]
    runs = [r[3] for r in s.tr.by_kind("switch") if r[3] in (a.kid, b.kid)]
    assert len(runs) >= 20
    assert all(x != y for x, y in itertools.pairwise(runs))
    # 100k rounds of one block each, 10 ns a block
    assert a.guest.blocks == b.guest.blocks == 100_001
    assert a.cpu_ns >= 100_000 * s.k.costs.guest_block


def test_guest_runs_are_deterministic(tmp: Path) -> None:
    """The same system run twice gives the same trace, record for record."""
    prog = build("spin", tmp)

    def once() -> list[Any]:
        s = Sys(serve([]))
        t = s.task()
        s.load(t, prog)
        for i in range(2):
            th = s.guest(t, prog, name=f"s{i}", rcx=20_000 + 777 * i, rbx=i)
            th.quantum = th.quantum_left = 33_333
        s.k.run()
        return s.tr.records

    first = once()
    assert len(first) > 20
    assert first == once()


def test_memory_is_shared_with_native_tasks(tmp: Path) -> None:
    """A frame mapped into a guest and into the root is one memory: the guest, spinning on a
    word, sees the root's later native write and exits with its value."""
    prog = build("poll", tmp)
    log: list[Any] = []
    writer_done: list[int] = []

    async def root(env: Env) -> None:
        await env.wait(timeout=100_000)  # let the guest spin a while
        await env.mem.write(DATA, (1234).to_bytes(8, "little"))
        writer_done.append(1)
        await serve(log)(env)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    s.give(t, DATA, RW)
    th = s.guest(t, prog)
    s.k.run()
    assert writer_done == [1] and log == [("exit", 1234)]
    assert th.guest.blocks > 1000  # it really spun before the write


def test_unmap_flushes_the_guest_tlb(tmp: Path) -> None:
    """After the root revokes a page the guest has been reading, the guest's next access
    faults to its pager (the TLB was flushed) and sees the newly mapped frame."""
    prog = build("poll", tmp)
    log: list[Any] = []

    async def root(env: Env) -> None:
        await env.wait(timeout=100_000)
        await env.task.unmap(Fpage.mem(DATA, 12, MemRights.RWX))  # from the guest, not from me
        await serve(log, pool=[POOL])(env)

    s = Sys(root)
    s.frame(POOL, (99).to_bytes(8, "little"))
    t = s.task()
    s.load(t, prog)
    s.give(t, DATA, RW)
    s.guest(t, prog, pager=True)
    s.k.run()
    assert log[0][0] == "pf" and log[0][1][0] == DATA  # read fault, not present
    assert log[1:] == [("exit", 99)]


def test_syscall_without_handler_kills_the_thread(tmp: Path) -> None:
    """An alien thread without an exception handler dies at its first system call."""
    prog = build("hello", tmp)

    async def root(env: Env) -> None:
        return None

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    th = s.k.create_guest_thread(t, "g", {"rip": prog.entry})
    s.k.run()
    assert th.state is TS.DEAD and th.faulted and th.exit_code is None


def test_int3_and_divide_error_are_traps_3_and_0(tmp: Path) -> None:
    """int3 is exception IPC trap 3 with RIP after it; resumed, the thread's divide by zero
    is trap 0 with RIP on the div."""
    prog = build("traps", tmp)
    log: list[Any] = []

    async def root(env: Env) -> None:
        msg = await env.wait()
        log.append(msg.words)
        msg = await env.reply_and_wait(0)
        log.append(msg.words)
        await env.reply(1)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    s.guest(t, prog)
    s.k.run()
    assert [w[:5] for w in log] == [(3, 0, prog.symbols["after_int3"], 0, 0), (0, 0, prog.symbols["div_insn"], 0, 0)]
    assert [_regs(w)["rip"] for w in log] == [prog.symbols["after_int3"], prog.symbols["div_insn"]]


def test_a_dead_tasks_guest_cpu_is_pooled_then_reused(tmp: Path) -> None:
    """Deleting a task puts its unicorn instance in the kernel's pool; the next guest task
    takes it (and runs correctly on it); dropping the pool frees it."""
    prog = build("hello", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.load(t, prog)
    th = s.guest(t, prog)
    cpu = guest.cpu_of(s.k, t)
    s.k.run()
    assert log[-1] == ("exit", 7) and th.state is TS.DEAD
    assert s.k.guest_cpus == {t.kid: cpu} and cpu.uch is not None
    s.k.destroy(t)
    assert s.k.guest_cpus == {} and s.k.guest_pool == [cpu] and cpu.task is None
    with pytest.raises(ValueError, match="dead task"):
        guest.cpu_of(s.k, t)
    t2 = s.task()
    s.load(t2, prog)
    th2 = s.guest(t2, prog)
    assert guest.cpu_of(s.k, t2) is cpu and s.k.guest_pool == [] and cpu.task is t2
    s.k.run()
    assert log[-1] == ("exit", 7) and th2.state is TS.DEAD
    s.k.destroy(t2)
    s.k.drop_guest_pool()
    assert s.k.guest_pool == [] and cpu.uch is None and cpu.uc is None


def test_a_pooled_cpu_starts_new_threads_from_reset_registers(tmp: Path) -> None:
    """A thread of the next task on a pooled instance does not see the registers the last
    task left behind (xmm15 here): each guest thread starts from the CPU's reset state."""
    prog = build("xmmleak", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t1 = s.task("one")
    s.load(t1, prog)
    s.guest(t1, prog)
    s.k.run()
    cpu = guest.cpu_of(s.k, t1)
    s.k.destroy(t1)
    t2 = s.task("two")
    s.load(t2, prog)
    s.guest(t2, prog)
    assert guest.cpu_of(s.k, t2) is cpu
    s.k.run()
    assert [e for e in log if e[0] == "exit"] == [("exit", 0), ("exit", 0)]


def test_without_a_pool_a_dead_tasks_guest_cpu_is_freed(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Kernel, "guest_pool_max", 0)
    prog = build("hello", tmp)
    log: list[Any] = []
    s = Sys(serve(log))
    t = s.task()
    s.load(t, prog)
    s.guest(t, prog)
    cpu = guest.cpu_of(s.k, t)
    s.k.run()
    s.k.destroy(t)
    assert s.k.guest_cpus == {} and s.k.guest_pool == [] and cpu.uch is None and cpu.uc is None


def test_a_task_deleted_from_inside_its_own_syscall_hook(tmp: Path) -> None:
    """The handler deletes the calling task while the kernel runs inside that task's hook: the
    instance is closed only once emulation has returned, and the run goes on."""
    prog = build("hello", tmp)
    done: list[Any] = []
    s: Sys

    async def root(env: Env) -> None:
        msg = await env.wait()
        assert msg.proto == guest.SYSCALL_LABEL
        s.k.destroy(victim)  # host-side stand-in for the task's last capability going
        done.append(s.k.guest_cpus.get(victim.kid))
        await env.reply(0, 1)
        done.append("after")

    s = Sys(root)
    victim = s.task()
    s.load(victim, prog)
    th = s.guest(victim, prog)
    cpu = guest.cpu_of(s.k, victim)
    s.k.run()
    assert done == [None, "after"] and th.state is TS.DEAD and cpu.task is None
    assert s.k.guest_pool == [cpu]  # closed once emulation returned: pooled


@pytest.mark.parametrize("skew", [0, 10_000])
def test_busy_cores_run_ahead_of_each_other_by_the_skew(tmp: Path, skew: int) -> None:
    """Two guest threads spinning on two cores: with the default skew each slice overruns the other
    core's steps by up to 10 us (few slices); with skew 0 the cores go in lock-step (a
    slice per step of the other).  Either way both finish after the same blocks, at the
    same simulated time within the skew."""
    prog = build("spin", tmp)
    log: list[Any] = []
    s = Sys(serve(log), cores=2)
    s.k.costs.guest_skew = skew
    t = s.task()
    s.load(t, prog)
    ths = [s.k.create_guest_thread(t, f"g{cpu}", {"rip": prog.entry, "rcx": 50_000, "rbx": cpu},
                                   exc_handler_slot=HANDLER, prio=50, cpu=cpu) for cpu in (0, 1)]
    s.k.run()
    assert log == [("exit", 0), ("exit", 1)] or log == [("exit", 1), ("exit", 0)], log
    assert [th.guest.blocks for th in ths] == [50_001, 50_001]
    slices = sum(th.guest.slices for th in ths)
    if skew:
        assert slices < 2 * (500_000 // skew) + 20  # 0.5 ms of spinning each, >= 10 us a slice
    else:
        assert slices > 1_000  # lock-step: slices of a few blocks
    assert invariants.check(s.k) == []


def test_guest_threads_start_in_user_mode_with_linux_fpu_state_and_guest_fpu_round_trips(tmp: Path) -> None:
    """A new guest thread runs at CPL 3 (cs 0x33) with the x87 control word 0x37f, an empty
    x87 stack and MXCSR 0x1f80; ThreadOp.GUEST_FPU writes a state (an ST0, an XMM register,
    a rounding mode) that reads back the same, and is refused (EINVAL) for a native thread."""
    import struct

    from l4sim.kernel.abi import ThreadOp
    from l4sim.user.env import L4Error

    prog = build("hello", tmp)
    seen: list[Any] = []

    async def root(env: Env) -> None:
        try:
            await env.thread._op("guest fpu", ThreadOp.GUEST_FPU, 0)
        except L4Error as e:
            seen.append(e.err)

    s = Sys(root)
    t = s.task()
    s.load(t, prog)
    th = s.guest(t, prog)
    cpu = guest.cpu_of(s.k, t)
    assert cpu.uc.reg_read(guest.X.UC_X86_REG_CS) == guest.USER_CS
    g = th.guest
    image = bytearray(struct.pack("<52Q", *g.fpu_state()))
    assert struct.unpack_from("<HHB", image) == (0x37F, 0, 0) and struct.unpack_from("<I", image, 24) == (0x1F80,)
    struct.pack_into("<HHB", image, 0, 0x27F, 7 << 11, 0x80)  # top 7, physical register 7 in use
    image[32:42] = struct.pack("<QH", 1 << 63, 0x3FFF)  # ST0 = 1.0
    struct.pack_into("<I", image, 24, 0x3F80)
    image[160 + 3 * 16:160 + 4 * 16] = bytes(range(16))  # XMM3
    words = struct.unpack("<52Q", bytes(image))
    g.set_fpu_state(words)
    assert g.fpu_state() == words
    s.k.run()
    assert seen == [22]
