"""``l4sim experiment kmem``: a hostile task against kernel memory, under every model.

The system, built host-side as a boot loader would, the same under every
model (kernel/kmem.py):

- ``hostile``: maps one of its pages at 2 MiB strides into its own address
  space (every mapping a new page table) until the kernel refuses, then
  creates IPC gates until refused -- as fast as it can;
- ``rt-victim``: a periodic reserved thread (1 ms period, 300 us budget);
  each job creates a gate, deletes it and computes 100 us -- a job whose
  allocation fails counts as missed;
- ``be-victim``: a best-effort loop creating and deleting a gate;
(the hostile and ``mm`` run on core 1, the victims on core 0: what they
share is kernel memory, not a processor.)

- ``mm``: the memory manager, holding 32 frames: the hostile's pager under
  ``lend-to-kernel`` and its kpager under ``kpager``; it gives any one task
  at most 16 frames, and when the hostile is done asks them back (``kpager``
  only has a way to).

Each program has a factory of its own (the hostile 16 KiB, the victims
8 KiB): under ``quotas`` and the two faulting models the quotas hold; under
``global-pool`` one pool of ``POOL`` bytes serves all and the quotas do not
count.

Measured per model: the hostile's objects and mappings before it was
refused, the victims' operations and the real-time victim's missed jobs,
the kernel memory the hostile held, and whether memory could be taken back
from it without deleting it (and how much).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel import kmem as km
from l4sim.kernel.abi import (
    CALL,
    SLOT_FACTORY,
    SLOT_TASK,
    SLOT_THREAD,
    UNMAP_DELETE_OBJ,
    FactoryOp,
    Fpage,
    MemRights,
    Proto,
    Rights,
    TaskOp,
    ThreadOp,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Factory, Task, Thread
from l4sim.kernel.traps import Ipc, NextPeriod
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal

MS = 1_000_000
#: how long the experiment runs (simulated)
DURATION = 30 * MS
#: the global pool: room for the system and a little more
POOL = 96 * 1024
#: quotas (bytes)
HOSTILE_QUOTA, VICTIM_QUOTA = 16 * 1024, 8 * 1024
#: frames the memory manager holds, and lends to one task at most
MM_FRAMES, MM_PER_TASK = 32, 16
#: the memory manager's pages (virtual page numbers)
MM_BASE = 0x100
#: the hostile's one page, which it maps again and again
HOSTILE_PAGE = 0x80
#: slots
S_PAGER, S_KPAGER, S_HOSTILE_THREAD = 4, 9, 10
#: the real-time victim's jobs
RT_JOBS = 25


@dataclass
class Outcome:
    hostile_objects: int = 0
    hostile_mappings: int = 0
    hostile_done: bool = False
    rt_ops: int = 0
    rt_failed: int = 0
    be_ops: int = 0
    be_failed: int = 0
    lent: list[int] = field(default_factory=list)
    reclaimed_frames: int = 0


def _gate(i: int) -> Ipc:
    return Ipc(SLOT_FACTORY, CALL, int(Proto.FACTORY), (int(FactoryOp.GATE), 0, 0), rcv=(Fpage.obj(64 + i),))


def _delete(slot: int) -> Ipc:
    return Ipc(SLOT_TASK, CALL, int(Proto.TASK), (int(TaskOp.UNMAP), Fpage.obj(slot).word(), UNMAP_DELETE_OBJ))


async def hostile(env: Env, out: Outcome) -> None:
    """Page tables first (one of its pages mapped again at 2 MiB strides), then objects."""
    for j in range(100_000):
        r = await Ipc(SLOT_TASK, CALL, int(Proto.TASK),
                      (int(TaskOp.MAP), SLOT_TASK, Fpage.mem(HOSTILE_PAGE << 12, 12).word(),
                       (j + 1) << 21))
        if r.proto < 0 or r.error or not r.words or r.words[0] == 0:
            break
        out.hostile_mappings = j + 1
    i = 0
    while i < 100_000:
        r = await _gate(i)
        if r.proto < 0 or r.error:
            break
        i += 1
    out.hostile_objects = i
    out.hostile_done = True
    while True:
        await env.compute(1 * MS)  # it stays: memory is to be taken back from a live task


async def rt_victim(env: Env, out: Outcome) -> None:
    for _ in range(RT_JOBS):
        await NextPeriod()
        r = await _gate(0)
        if r.proto < 0 or r.error:
            out.rt_failed += 1
        else:
            await _delete(64)
            out.rt_ops += 1
        await env.compute(100_000)


async def be_victim(env: Env, out: Outcome) -> None:
    while True:
        r = await _gate(1)
        if r.proto < 0 or r.error:
            out.be_failed += 1
        else:
            await _delete(65)
            out.be_ops += 1
        await env.compute(50_000)


async def mm(env: Env, out: Outcome, model: str) -> None:
    """Answers kernel-memory faults with its pages, at most MM_PER_TASK to one task; when the
    hostile is done, asks its frames back (a kpager can)."""
    given = 0
    msg = await env.wait(timeout=2 * MS)
    while True:
        if not msg.error and msg.proto == Proto.KMEM and given < min(MM_FRAMES, MM_PER_TASK):
            page = (MM_BASE + given) << 12
            given += 1
            out.lent.append(page)
            msg = await env.reply_and_wait(0, page, timeout=2 * MS)
            continue
        if not msg.error and msg.proto == Proto.KMEM:
            msg = await env.reply_and_wait(-12, timeout=2 * MS)  # no more for this task
            continue
        if out.hostile_done and model == "kpager" and out.reclaimed_frames == 0 and given:
            r = await Ipc(S_HOSTILE_THREAD, CALL, int(Proto.THREAD), (int(ThreadOp.KMEM_REVOKE), given))
            out.reclaimed_frames = r.words[0] if not r.error and r.proto == 0 and r.words else 0
        msg = await env.wait(timeout=2 * MS)


Program = Callable[..., Coroutine[Any, Any, Any]]


def _start(k: Kernel, task: Task, name: str, fn: Program, *args: Any, prio: int,
           factory: Factory | None = None, cpu: int = 0) -> Thread:
    th = k.create_thread(name, task)
    if SLOT_TASK not in task.caps.slots:
        k.cap_insert(task, SLOT_TASK, task, Rights.RWSD, None)
    k.cap_insert(task, SLOT_THREAD, th, Rights.RWSD, None)
    if factory is not None:
        k.cap_insert(task, SLOT_FACTORY, factory, Rights.RWSD, None)
    task.code.append(lambda sp: fn(Env(TaskLocal(dict(INITIAL))), *args))
    k.start(th, len(task.code) - 1, 0, prio=prio, cpu=cpu)
    return th


def setup(model: str) -> tuple[Kernel, Outcome, dict[str, Factory]]:
    k = Kernel(Machine(cores=2), kmem_model=model, kmem_pool=POOL)
    out = Outcome()
    s0 = k.create_task("sigma0")
    s0.vspace.sigma0 = True
    root = k.create_factory(8 << 20)  # the boot's: what the manager carves quotas from
    f = {"hostile": k.create_factory(HOSTILE_QUOTA, root), "rt": k.create_factory(VICTIM_QUOTA, root),
         "be": k.create_factory(VICTIM_QUOTA, root)}
    mm_task = k.create_task("mm", root)
    for i in range(MM_FRAMES):
        frame = k.sigma0_root(s0, 0x400 + i)
        assert frame is not None
        k.mem_map(frame, mm_task, MM_BASE + i, int(MemRights.RW), False)
    h_task = k.create_task("hostile", f["hostile"])
    frame = k.sigma0_root(s0, 0x300)
    assert frame is not None
    k.mem_map(frame, h_task, HOSTILE_PAGE, int(MemRights.RW), False)
    mm_th = _start(k, mm_task, "mm", mm, out, model, prio=60, cpu=1)
    h_th = _start(k, h_task, "hostile", hostile, out, prio=10, factory=f["hostile"], cpu=1)
    k.cap_insert(h_task, S_PAGER, mm_th, Rights.RWSD, None)
    k.cap_insert(h_task, S_KPAGER, mm_th, Rights.RWSD, None)
    h_th.pager_slot, h_th.kpager_slot = S_PAGER, S_KPAGER
    k.cap_insert(mm_task, S_HOSTILE_THREAD, h_th, Rights.RWSD, None)
    rt_task = k.create_task("rt-victim", f["rt"])
    rt_th = _start(k, rt_task, "rt-victim", rt_victim, out, prio=20, factory=f["rt"])
    k.set_reservation(rt_th, 300_000, 1 * MS)
    be_task = k.create_task("be-victim", f["be"])
    _start(k, be_task, "be-victim", be_victim, out, prio=10, factory=f["be"])
    return k, out, f


REVOCATION = {
    "quotas": "none without deleting it",
    "global-pool": "none without deleting it",
    "lend-to-kernel": "lent frames return only when the task is deleted",
    "kpager": "the kpager revokes frames; page tables are discarded and refault",
}


def measure(model: str) -> dict[str, Any]:
    k, out, f = setup(model)
    k.run(until=DURATION)
    rt = next(th for th in k.threads if th.name == "rt-victim")
    misses = out.rt_failed + (rt.resv.misses if rt.resv is not None else 0)
    hostile_bytes = f["hostile"].used
    return {
        "model": model,
        "hostile_objects": out.hostile_objects,
        "hostile_mappings": out.hostile_mappings,
        "victim_ops": [out.rt_ops, out.be_ops],
        "victim_failed_ops": [out.rt_failed, out.be_failed],
        "victim_deadline_misses": misses,
        "kernel_bytes": hostile_bytes,
        "frames_lent": len(out.lent),
        "reclaimable": out.reclaimed_frames > 0,
        "reclaimed_bytes": out.reclaimed_frames * km.FRAME,
        "revocation": REVOCATION[model],
    }


def kmem_experiment() -> list[dict[str, Any]]:
    """The experiment: the hostile task under every model, in the table's order."""
    return [measure(m) for m in km.KMEM_MODELS]
