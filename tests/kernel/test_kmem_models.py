"""Kernel-memory models: a global pool, frames lent to the kernel, kernel pagers."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from l4sim.kernel import kmem
from l4sim.kernel.abi import (
    CALL,
    CTL_SET_KPAGER,
    SLOT_FACTORY,
    SLOT_PAGER,
    SLOT_TASK,
    SLOT_THREAD,
    Err,
    FactoryOp,
    Fpage,
    MemRights,
    Proto,
    Rights,
    TaskOp,
    ThreadOp,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Factory, IpcGate, Task, Thread
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal

Program = Callable[[Env], Coroutine[Any, Any, Any]]
#: where the giver keeps the frames it may lend (its own pages)
STOCK = 0x100
#: slot of the kpager in the hog's task
S_KPAGER = 9


def _system(model: str, hog_quota: int, pool: int = kmem.DEFAULT_POOL) -> tuple[Kernel, Task, Task, Factory]:
    """sigma0 (host-side, owner of all frames), a giver task with 8 frames, a hog task whose
    factory holds ``hog_quota`` bytes."""
    k = Kernel(Machine(cores=1), kmem_model=model, kmem_pool=pool)
    s0 = k.create_task("sigma0")
    s0.vspace.sigma0 = True
    giver = k.create_task("giver")
    for i in range(8):
        root = k.sigma0_root(s0, 0x200 + i)
        assert root is not None
        assert k.mem_map(root, giver, STOCK + i, int(MemRights.RW), False) is not None
    hf = k.create_factory(hog_quota)
    hog = k.create_task("hog", hf if model == "kpager" else None)  # its page tables: hf pays
    return k, giver, hog, hf


def _start(k: Kernel, task: Task, name: str, fn: Program, prio: int, factory: Factory | None = None,
           pager: Thread | None = None, kpager: Thread | None = None) -> Thread:
    th = k.create_thread(name, task)
    if SLOT_TASK not in task.caps.slots:
        k.cap_insert(task, SLOT_TASK, task, Rights.RWSD, None)
    k.cap_insert(task, SLOT_THREAD if name != "kpager" else 12, th, Rights.RWSD, None)
    if factory is not None:
        k.cap_insert(task, SLOT_FACTORY, factory, Rights.RWSD, None)
    if pager is not None:
        k.cap_insert(task, SLOT_PAGER, pager, Rights.RWSD, None)
        th.pager_slot = SLOT_PAGER
    if kpager is not None:
        k.cap_insert(task, S_KPAGER, kpager, Rights.RWSD, None)
        th.kpager_slot = S_KPAGER
    task.code.append(lambda sp: fn(Env(TaskLocal(dict(INITIAL)))))
    k.start(th, len(task.code) - 1, 0, prio=prio)
    return th


def giver_program(answers: list[int], lends: int) -> Program:
    """Answer kernel-memory faults: lend one of its stock pages each time, ``lends`` times,
    then deny."""
    async def giver(env: Env) -> None:
        msg = await env.wait()
        while True:
            if msg.proto == Proto.KMEM and len(answers) < lends:
                page = (STOCK + len(answers)) << 12
                answers.append(page)
                msg = await env.reply_and_wait(0, page)
            else:
                answers.append(-1)
                msg = await env.reply_and_wait(-int(Err.ENOMEM))
    return giver


def hog_program(made: list[int], limit: int = 200) -> Program:
    async def hog(env: Env) -> None:
        for i in range(limit):
            r = await Ipc(SLOT_FACTORY, CALL, int(Proto.FACTORY), (int(FactoryOp.GATE), 0, 0),
                          rcv=(Fpage.obj(40 + i),))
            if r.proto < 0:
                made.append(r.proto)
                return
            made.append(40 + i)
    return hog


def test_a_global_pool_serves_whoever_asks_first() -> None:
    """One task exhausts the pool; another then gets ENOMEM although its own factory has room."""
    k, _, hog, hf = _system("global-pool", 1 << 20, pool=0)
    model = k.kmem
    assert isinstance(model, kmem.GlobalPool)
    made: list[int] = []
    _start(k, hog, "hog", hog_program(made), 10, factory=hf)
    model.size = model.used + 4 * IpcGate.SIZE + 30  # room for four gates beyond what is there
    k.run()
    assert made[-1] == -Err.ENOMEM and len(made) == 5
    assert hf.used < hf.limit, "refused by the pool, not by the factory's quota"


def test_frames_lent_to_the_kernel_extend_a_quota_and_go_back_when_the_task_goes() -> None:
    """The pager lends a page per fault; the invocation is retried; the page leaves the lender's
    space and returns when the task is deleted."""
    k, giver, hog, hf = _system("lend-to-kernel", 3 * IpcGate.SIZE + 32)
    answers: list[int] = []
    g = _start(k, giver, "giver", giver_program(answers, lends=2), 50)
    made: list[int] = []
    _start(k, hog, "hog", hog_program(made), 10, factory=hf, pager=g)
    k.run()
    # three gates fit the quota; each lent page pays for 64 more gates; then the giver denies
    assert made[-1] == -Err.ENOMEM
    assert len([m for m in made if m > 0]) == 3 + (2 * 4096 + 32) // IpcGate.SIZE
    assert answers == [STOCK << 12, (STOCK + 1) << 12, -1]
    assert STOCK not in giver.vspace.pages and STOCK + 1 not in giver.vspace.pages
    assert len(k.kmem_lent) == 2 and hf.limit == 3 * IpcGate.SIZE + 32 + 2 * 4096
    k.destroy(hog)
    assert STOCK in giver.vspace.pages and STOCK + 1 in giver.vspace.pages, "returned on deletion"
    assert k.kmem_lent == []


def test_a_kpager_takes_frames_back_and_the_kernel_discards_page_tables() -> None:
    """Frames a kpager supplied come back on revocation: the task's page tables go, the task lives."""
    k, giver, hog, hf = _system("kpager", 4096 + 2 * 64)
    answers: list[int] = []
    kp = _start(k, giver, "kpager", giver_program(answers, lends=6), 50)
    mapped: list[int] = []

    async def mapper(env: Env) -> None:
        # map one of sigma0's frames at 2 MiB strides: a page table each, paid by kpager frames
        for i in range(64):
            r = await Ipc(SLOT_TASK, CALL, int(Proto.TASK),
                          (int(TaskOp.MAP), 20, Fpage.mem(0x300 << 12, 12).word(), (i << 21) | 0x40000000))
            if r.proto < 0:
                mapped.append(r.proto)
                return
            mapped.append(r.words[0])

    s0 = next(t for t in k.tasks if t.name == "sigma0")
    k.cap_insert(hog, 20, s0, Rights.RWSD, None)
    th = _start(k, hog, "mapper", mapper, 10, factory=hf, kpager=kp)
    k.run()
    assert mapped[-1] == -Err.ENOMEM and answers[-1] == -1
    got = sum(1 for a in answers if a > 0)
    assert got == 6 and hf.limit == 4096 + 2 * 64 + 6 * 4096
    before = len(hog.vspace.pages)
    returned = k.kmem_revoke(th, 4)
    assert returned == 4
    assert len(hog.vspace.pages) < before, "page-table nodes were discarded"
    assert hf.used <= hf.limit == 4096 + 2 * 64 + 2 * 4096
    assert sum(1 for v in range(STOCK, STOCK + 8) if v in giver.vspace.pages) == 2 + 4
    assert hog.alive and th.exit_code == 0 and not th.faulted, "it ended its loop on its own"


def test_the_kpager_revokes_through_the_thread_capability() -> None:
    """``Thread`` op KMEM_REVOKE needs the kpager model; elsewhere it is ENOSYS."""
    got: list[Msg] = []

    async def root(env: Env) -> int:
        got.append(await Ipc(SLOT_THREAD, CALL, int(Proto.THREAD), (int(ThreadOp.KMEM_REVOKE), 1)))
        got.append(await Ipc(SLOT_THREAD, CALL, int(Proto.THREAD),
                             (int(ThreadOp.CONTROL), CTL_SET_KPAGER, 0, 0, 0, 1 << 30)))
        return 0

    for model, want in (("quotas", -Err.ENOSYS), ("kpager", 0)):
        got.clear()
        k = Kernel(Machine(cores=1), kmem_model=model)
        k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))))
        k.run()
        assert got[0].proto == want, model
        assert got[1].proto == -Err.ERANGE


def test_models_have_names() -> None:
    with pytest.raises(ValueError, match="unknown kernel-memory model"):
        Kernel(Machine(cores=1), kmem_model="infinite")
    assert kmem.make("quotas") is None
