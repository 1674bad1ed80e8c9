"""Memory: map and grant by IPC and ``task.map``, rights, unmap and revocation, shared
frames, page faults and pagers, I/O ports, kernel-memory quotas, determinism.

Every system here boots sigma0 (the root pager, :mod:`l4sim.runtime.sigma0`)
and a root task whose pager it is.  The root takes frames from sigma0 into a
*pool* of its own address space (``POOL``) and hands them on to child tasks;
children are started by :func:`start_child`, which, unlike ``start_task``,
can give a child a pager (slot 4) and an exception handler before it runs.
Children run at lower priority than the root, so the root's set-up is done
before any child runs, and children of different priorities run one after
the other: that is how the tests order their steps.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from l4sim.kernel import invariants
from l4sim.kernel.abi import (
    SLOT_FIRST_FREE,
    SLOT_LOG,
    SLOT_PAGER,
    SLOT_TASK,
    SLOT_THREAD,
    Err,
    Fpage,
    IpcErr,
    MapItem,
    MemRights,
    Proto,
    Rights,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, Task, Thread
from l4sim.kernel.trace import Tracer
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SIZE, TRAP_GP, TRAP_PAGE_FAULT
from l4sim.machine.board import COM1, Machine
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, REQ_FPAGE_IO, request, sigma0
from l4sim.user.env import (
    INITIAL,
    SIGMA0_CAPS,
    Cap,
    Env,
    FactoryCap,
    L4Error,
    TaskCap,
    TaskLocal,
    ThreadCap,
)

from .conftest import task_named, thread_named

RootFn = Callable[[Env], Coroutine[Any, Any, Any]]

MS = 1_000_000
PAGE = 4096
#: where the root keeps frames it got from sigma0 (virtual; not 1:1)
POOL = 0x4000000
#: where children receive memory
WIN = 0x200000
RW = MemRights.RW
R = MemRights.R


# ----------------------------------------------------------------------------- helpers
def boot(root_fn: RootFn, ram: int = 16 << 20, devices: dict[str, tuple[int, int]] | None = None,
         setup: Callable[[Machine], Any] | None = None) -> tuple[Kernel, Tracer, Machine]:
    """sigma0 plus a root task (its pager is sigma0), not yet run."""
    m = Machine(cores=1, seed=0, ram=ram)
    if setup is not None:
        setup(m)
    tr = Tracer()
    k = Kernel(m, tracer=tr)
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes, devices))
    k.create_root("root", lambda sp: root_fn(Env(TaskLocal(INITIAL))), pager=s0)
    return k, tr, m


def run(root_fn: RootFn, **kw: Any) -> tuple[Kernel, Tracer, Machine]:
    """Boot and run until idle."""
    k, tr, m = boot(root_fn, **kw)
    assert k.run(max_events=1_000_000) == "idle"
    assert consistent(k) == []
    return k, tr, m


def consistent(k: Kernel) -> list[str]:
    """Violations of the kernel invariants, except the boot-time double root of sigma0's
    thread and the log (a known kernel bug, see tests/runtime/test_sigma0.py)."""
    return [v for v in invariants.check(k) if "root capabilities" not in v]


async def start_child(env: Env, name: str, fn: Any, caps: dict[str, Cap] | None = None,
                      pager: Cap | None = None, exc: Cap | None = None, prio: int = 1,
                      factory: FactoryCap | None = None, args: tuple[Any, ...] = ()
                      ) -> tuple[TaskCap, ThreadCap]:
    """Start ``fn(env, *args)`` in a new task with task, thread, log and the given caps.

    ``pager`` goes to slot 4 and becomes the thread's pager; ``exc`` becomes its
    exception handler; ``factory`` (default: the root's) creates the task, so its
    mappings are charged there.  Extra caps get slots from 8 on, by name.
    """
    task = await (factory or env.factory).create_task(name)
    th = await env.factory.create_thread(name)
    await th.control(bind=task)
    await task.map(env.task, task.fpage(), SLOT_TASK)
    await task.map(env.task, th.fpage(), SLOT_THREAD)
    await task.map(env.task, env.log.fpage(Rights.W), SLOT_LOG)
    names = {"task": SLOT_TASK, "thread": SLOT_THREAD, "log": SLOT_LOG}
    kinds: dict[str, type[Cap]] = {}
    slot = SLOT_FIRST_FREE
    for cname, cap in (caps or {}).items():
        await task.map(env.task, cap.fpage(), slot)
        names[cname] = slot
        kinds[cname] = type(cap)
        slot += 1
    if pager is not None:
        await task.map(env.task, pager.fpage(), SLOT_PAGER)
        await th.control(pager=SLOT_PAGER)
    if exc is not None:
        await task.map(env.task, exc.fpage(), slot)
        await th.control(exc_handler=slot)
        slot += 1
    local = TaskLocal(names, slot)
    ip = await task.load_code(lambda sp: fn(Env(local, SLOT_THREAD, kinds), *args))
    await env.scheduler.run_thread(th, prio, 10_000_000, 1)
    await th.ex_regs(ip, 0)
    return task, th


async def grab(env: Env, addr: int, order: int = 12) -> int:
    """Take any free RAM of 2**order bytes from sigma0 into the root's space at ``addr``."""
    r = await request(env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, order), Fpage.mem(addr, order))
    assert r.error == 0 and r.proto == 0, r
    return r.words[0]


def page(task: Task, addr: int) -> Any:
    """``task``'s mapping of the page at ``addr`` (None when unmapped)."""
    return task.vspace.pages.get(addr >> 12)


def pf_records(tr: Tracer, th: Thread) -> list[dict[str, Any]]:
    """The page-fault trace records of ``th``."""
    return [r[4] for r in tr.by_kind("pagefault") if r[3] == th.kid]


def stopped_by_fault(th: Thread) -> bool:
    """The thread was stopped by an unhandled exception (and not ended)."""
    return th.faulted and th.state is TS.INACTIVE


async def sleep(env: Env, ns: int) -> None:
    """Block for ``ns`` of simulated time (a receive from oneself with a timeout)."""
    m = await env.receive(env.thread, timeout=ns)
    assert m.error == IpcErr.RETIMEOUT


# ------------------------------------------------------------ map and grant
def test_map_item_lands_in_the_receive_window() -> None:
    """A map item sent to a waiting thread arrives in its memory receive window, on the sender's frame."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        msg = await env.wait(rcv=(Fpage.mem(WIN, 12),))
        out.append((msg.error, msg.items))
        out.append(await env.mem.read(WIN, 7))
        return 0

    async def root(env: Env) -> int:
        out.append(await grab(env, POOL))
        await env.mem.write(POOL, b"payload")
        _, th = await start_child(env, "child", child)
        out.append((await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW)),))).error)
        return 0

    k, _, _ = run(root)
    phys, send_err, (err, items), data = out
    assert send_err == 0 and err == 0
    assert items == (Fpage.mem(WIN, 12, RW),)
    assert data == b"payload"
    m = page(task_named(k, "child"), WIN)
    assert m.pfn == phys >> 12 and m.rights == RW
    assert m.parent is page(task_named(k, "root"), POOL), "derived from the sender's mapping"


def test_a_task_reaches_only_its_own_mappings() -> None:
    """A page mapped in the root's space is not reachable by a child at the same address: it faults."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(await env.mem.read(POOL, 6))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"secret")
        await start_child(env, "child", child)
        return 0

    k, tr, _ = run(root)
    assert out == []
    th = thread_named(k, "child")
    assert pf_records(tr, th) == [{"addr": POOL, "write": 0, "present": 0, "pager": -1}]
    assert stopped_by_fault(th)


def test_map_item_without_a_receive_window_maps_nothing() -> None:
    """A receiver that offers no memory window gets no page: the message is cut on both sides."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(("child", (await env.wait()).error))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        _, th = await start_child(env, "child", child)
        out.append(("root", (await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW)),))).error))
        return 0

    k, _, _ = run(root)
    assert sorted(out) == [("child", IpcErr.REMSGCUT), ("root", IpcErr.SEMSGCUT)]
    assert task_named(k, "child").vspace.pages == {}


def test_memory_item_into_an_object_window_fails() -> None:
    """A memory flexpage sent to a capability receive window is refused (map failed)."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(("child", (await env.wait(rcv=(Fpage.obj(20),))).error))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        _, th = await start_child(env, "child", child)
        out.append(("root", (await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW)),))).error))
        return 0

    k, _, _ = run(root)
    assert sorted(out) == [("child", IpcErr.REMAPFAILED), ("root", IpcErr.SEMAPFAILED)]
    assert task_named(k, "child").vspace.pages == {}


def test_task_map_copies_a_page_from_a_held_task() -> None:
    """``task.map`` maps a page of a source task the caller holds a capability to."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(await env.mem.read(WIN + 0x10, 5))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL + 0x10, b"hello")
        task, _ = await start_child(env, "child", child)
        out.append(await task.map(env.task, Fpage.mem(POOL, 12, RW), WIN))
        return 0

    k, _, _ = run(root)
    assert out == [1, b"hello"]
    assert page(task_named(k, "child"), WIN).rights == RW


def test_task_map_needs_a_task_capability_as_source() -> None:
    """A task that holds no capability to another task cannot map from it (EINVAL, nothing mapped)."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        for src in (TaskCap(env, SLOT_LOG), TaskCap(env, 99)):  # the log; an empty slot
            try:
                await env.task.map(src, Fpage.mem(POOL, 12, RW), WIN)
            except L4Error as e:
                out.append(e.err)
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await start_child(env, "child", child)
        return 0

    k, _, _ = run(root)
    assert out == [Err.EINVAL, Err.EINVAL]
    assert task_named(k, "child").vspace.pages == {}


def test_read_only_map_of_a_writable_page_faults_on_write() -> None:
    """A RW page mapped with R only can be read by the receiver; its write faults (present, write)."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(await env.mem.read(WIN, 2))
        await env.mem.write(WIN, b"no")
        out.append("written")
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"ro")
        task, _ = await start_child(env, "child", child)
        await task.map(env.task, Fpage.mem(POOL, 12, R), WIN)
        return 0

    k, tr, m = run(root)
    th = thread_named(k, "child")
    assert out == [b"ro"], "the read worked, the write never completed"
    assert page(task_named(k, "child"), WIN).rights == R
    assert pf_records(tr, th) == [{"addr": WIN, "write": 1, "present": 1, "pager": -1}]
    assert stopped_by_fault(th)
    assert bytes(m.mem.frame(page(task_named(k, "root"), POOL).pfn)[:2]) == b"ro"


def test_derived_mapping_never_gains_rights() -> None:
    """Mapping on a read-only page with all rights requested still gives only R."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(await env.mem.read(WIN, 1))
        await env.mem.write(WIN, b"x")
        out.append("written")
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        a, _ = await start_child(env, "a", child, prio=2)
        b, _ = await start_child(env, "b", child, prio=1)
        await a.map(env.task, Fpage.mem(POOL, 12, R), WIN)
        await b.map(a, Fpage.mem(WIN, 12, MemRights.RWX), WIN)  # asks for more than A has
        return 0

    k, _, _ = run(root)
    a, b = task_named(k, "a"), task_named(k, "b")
    assert page(a, WIN).rights == R and page(b, WIN).rights == R
    assert page(b, WIN).parent is page(a, WIN)
    assert out == [b"\0", b"\0"]
    assert stopped_by_fault(thread_named(k, "a")) and stopped_by_fault(thread_named(k, "b"))


def test_grant_moves_the_mapping() -> None:
    """After a grant the sender's page is gone (its access faults); the receiver has the frame."""
    out: list[Any] = []

    async def receiver(env: Env) -> int:
        msg = await env.wait(rcv=(Fpage.mem(WIN, 12),))
        out.append(("b", msg.error, await env.mem.read(WIN, 5)))
        return 0

    async def granter(env: Env) -> int:
        await env.mem.write(0x300000, b"moved")
        r = await env.cap("b").send(0, items=(MapItem(Fpage.mem(0x300000, 12, RW), grant=True),))
        out.append(("a", r.error))
        out.append(await env.mem.read(0x300000, 5))  # faults: no pager, no handler
        return 0

    async def root(env: Env) -> int:
        phys = await grab(env, POOL)
        out.append(phys)
        _, bth = await start_child(env, "b", receiver, prio=1)
        a, _ = await start_child(env, "a", granter, caps={"b": bth}, prio=2)
        await a.map(env.task, Fpage.mem(POOL, 12, RW), 0x300000)
        return 0

    k, tr, _ = run(root)
    phys = out.pop(0)
    assert out == [("a", 0), ("b", 0, b"moved")]
    a, b = task_named(k, "a"), task_named(k, "b")
    assert page(a, 0x300000) is None
    assert page(b, WIN).pfn == phys >> 12
    assert page(b, WIN).parent is page(task_named(k, "root"), POOL), "same place in the tree"
    assert pf_records(tr, thread_named(k, "a")) == [{"addr": 0x300000, "write": 0, "present": 0, "pager": -1}]
    assert stopped_by_fault(thread_named(k, "a"))


def test_grant_keeps_what_was_derived_from_the_page() -> None:
    """Mappings derived from a granted page survive the grant and are revoked through its new owner."""

    async def receiver(env: Env) -> int:
        await env.wait(rcv=(Fpage.mem(WIN, 12),))
        return 0

    async def granter(env: Env) -> int:
        await env.cap("b").send(0, items=(MapItem(Fpage.mem(0x300000, 12, RW), grant=True),))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        _, bth = await start_child(env, "b", receiver, prio=2)
        a, _ = await start_child(env, "a", granter, caps={"b": bth}, prio=3)
        c, _ = await start_child(env, "c", receiver, prio=1)  # stays waiting; only holds a page
        await a.map(env.task, Fpage.mem(POOL, 12, RW), 0x300000)
        await c.map(a, Fpage.mem(0x300000, 12, R), 0x500000)
        return 0

    k, _, _ = run(root)
    b, c = task_named(k, "b"), task_named(k, "c")
    assert page(c, 0x500000) is not None and page(c, 0x500000).parent is page(b, WIN)
    k.mdb_remove(page(b, WIN), include_self=False)
    assert page(c, 0x500000) is None and page(b, WIN) is not None


def test_grant_that_cuts_a_derived_mapping_to_no_rights_removes_it() -> None:
    """Granting a page with rights that leave a derived mapping none removes that mapping (no empty mapping)."""
    k = Kernel(Machine(ram=1 << 20))
    s0 = k.create_task("s0")
    s0.vspace.sigma0 = True
    f = k.create_factory(1 << 20)
    a, b, c = (k.create_task(n, f) for n in "abc")
    root = k.sigma0_root(s0, 1)
    assert root is not None
    pa = k.mem_map(root, a, 0x10, MemRights.RWX, False)
    assert pa is not None
    pb = k.mem_map(pa, b, 0x20, MemRights.X, False)  # execute-only
    assert pb is not None and pb.rights == MemRights.X
    assert k.mem_map(pa, c, 0x30, RW, True) is not None  # A's page moves to C as RW
    assert b.vspace.pages.get(0x20) is None, f"B still holds {b.vspace.pages.get(0x20)!r}"
    assert b.vspace.charge == 0


def test_map_over_an_existing_mapping_replaces_it() -> None:
    """A second map item to the same window replaces the first page: the new frame's content is seen."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        for _ in range(2):
            await env.wait(rcv=(Fpage.mem(WIN, 12),))
            out.append(await env.mem.read(WIN, 3))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await grab(env, POOL + PAGE)
        await env.mem.write(POOL, b"one")
        await env.mem.write(POOL + PAGE, b"two")
        _, th = await start_child(env, "child", child)
        await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW)),))
        await th.send(0, items=(MapItem(Fpage.mem(POOL + PAGE, 12, RW)),))
        return 0

    k, _, _ = run(root)
    assert out == [b"one", b"two"]
    root_t = task_named(k, "root")
    new = page(task_named(k, "child"), WIN)
    assert new.parent is page(root_t, POOL + PAGE)
    assert page(root_t, POOL).children == {}, "the replaced mapping left the tree"


def test_small_fpage_lands_at_the_hot_spot_of_a_big_window() -> None:
    """A 4 KiB page sent into a 64 KiB window lands where the hot spot points inside it."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        msg = await env.wait(rcv=(Fpage.mem(WIN, 16),))
        out.append(msg.items)
        out.append(await env.mem.read(WIN + 0x3000, 3))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"hot")
        _, th = await start_child(env, "child", child)
        await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW), snd_base=0x3000),))
        return 0

    k, _, _ = run(root)
    assert out == [(Fpage.mem(WIN + 0x3000, 12, RW),), b"hot"]
    assert sorted(task_named(k, "child").vspace.pages) == [(WIN + 0x3000) >> 12]


def test_big_fpage_into_a_small_window_sends_the_hot_spot_part() -> None:
    """A 16 KiB flexpage sent into a 4 KiB window sends only the page the hot spot selects."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        await env.wait(rcv=(Fpage.mem(WIN, 12),))
        out.append(await env.mem.read(WIN, 1))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL, 14)
        for i in range(4):
            await env.mem.write(POOL + i * PAGE, bytes([0x30 + i]))
        _, th = await start_child(env, "child", child)
        await th.send(0, items=(MapItem(Fpage.mem(POOL, 14, RW), snd_base=0x2000),))
        return 0

    k, _, _ = run(root)
    assert out == [b"2"]
    assert list(task_named(k, "child").vspace.pages) == [WIN >> 12]


# ------------------------------------------------------------ shared memory
def test_two_tasks_mapping_one_frame_see_each_others_writes() -> None:
    """Shared memory is shared: each of two tasks reads what the other wrote to the frame."""
    out: list[Any] = []

    async def a(env: Env) -> int:
        await env.mem.write(0x600000, b"ping")
        await env.wait()  # B tells us it has answered
        out.append(("a", await env.mem.read(0x600000, 4)))
        return 0

    async def b(env: Env) -> int:
        out.append(("b", await env.mem.read(0x700000, 4)))
        await env.mem.write(0x700000, b"pong")
        await env.cap("a").send(0)
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        ta, tha = await start_child(env, "a", a, prio=20)
        tb, _ = await start_child(env, "b", b, caps={"a": tha}, prio=10)
        await ta.map(env.task, Fpage.mem(POOL, 12, RW), 0x600000)
        await tb.map(env.task, Fpage.mem(POOL, 12, RW), 0x700000)
        return 0

    k, _, m = run(root)
    assert out == [("b", b"ping"), ("a", b"pong")]
    pfn = page(task_named(k, "root"), POOL).pfn
    assert bytes(m.mem.frame(pfn)[:4]) == b"pong"


# ------------------------------------------------------------ unmap
def _chain_system(unmapper: Any) -> tuple[Kernel, Tracer, list[Any]]:
    """Root maps a RW page into A at X; A's page goes on to B, B's to C (all at X).

    A (prio 30) runs ``unmapper(env)``, writes, then reads; B (prio 20) and
    C (prio 10) then read and write in turn, each recording what worked.
    """
    x = 0x300000
    out: list[Any] = []

    async def a(env: Env) -> int:
        await unmapper(env, x)
        await access(env, "a")
        return 0

    async def access(env: Env, who: str) -> None:
        out.append((who, "r", await env.mem.read(x, 2)))
        await env.mem.write(x, who.encode() * 2)
        out.append((who, "w"))

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"ok")
        ta, _ = await start_child(env, "a", a, prio=30)
        tb, _ = await start_child(env, "b", access, prio=20, args=("b",))
        tc, _ = await start_child(env, "c", access, prio=10, args=("c",))
        await ta.map(env.task, Fpage.mem(POOL, 12, RW), x)
        await tb.map(ta, Fpage.mem(x, 12, RW), x)
        await tc.map(tb, Fpage.mem(x, 12, RW), x)
        return 0

    k, tr, _ = run(root)
    return k, tr, out


def test_unmap_with_write_mask_write_protects_everything_derived() -> None:
    """Unmapping only W from A's page leaves B and C read-only (reads work, writes fault); A keeps RW."""

    async def unmap_w(env: Env, x: int) -> None:
        await env.task.unmap(Fpage.mem(x, 12, MemRights.W))

    k, tr, out = _chain_system(unmap_w)
    assert out == [("a", "r", b"ok"), ("a", "w"), ("b", "r", b"aa"), ("c", "r", b"aa")]
    a, b, c = (task_named(k, n) for n in "abc")
    assert page(a, 0x300000).rights == RW
    assert page(b, 0x300000).rights == R and page(c, 0x300000).rights == R
    for n in "bc":
        th = thread_named(k, n)
        assert pf_records(tr, th) == [{"addr": 0x300000, "write": 1, "present": 1, "pager": -1}]
        assert stopped_by_fault(th)


def test_unmap_with_read_in_the_mask_removes_everything_derived() -> None:
    """Unmapping R (and W) from A's page removes B's and C's mappings entirely; A keeps its own."""

    async def unmap_rw(env: Env, x: int) -> None:
        await env.task.unmap(Fpage.mem(x, 12, MemRights.RWX))

    k, tr, out = _chain_system(unmap_rw)
    assert out == [("a", "r", b"ok"), ("a", "w")]
    a, b, c = (task_named(k, n) for n in "abc")
    assert page(a, 0x300000).rights == RW and page(a, 0x300000).children == {}
    assert page(b, 0x300000) is None and page(c, 0x300000) is None
    for n in "bc":
        assert pf_records(tr, thread_named(k, n)) == [{"addr": 0x300000, "write": 0, "present": 0, "pager": -1}]


def test_unmap_include_self_removes_the_callers_mapping_too() -> None:
    """With include_self the caller's own mapping goes as well; its parent (the root's) stays."""

    async def unmap_self(env: Env, x: int) -> None:
        await env.task.unmap(Fpage.mem(x, 12, MemRights.RWX), include_self=True)

    k, _, out = _chain_system(unmap_self)
    assert out == []
    assert all(page(task_named(k, n), 0x300000) is None for n in "abc")
    root_page = page(task_named(k, "root"), POOL)
    assert root_page is not None and root_page.children == {}
    assert stopped_by_fault(thread_named(k, "a"))


def test_unmap_spares_mappings_not_derived_from_the_callers() -> None:
    """A sibling mapping of the same frame (from the root, not via A) survives A's unmap."""
    out: list[Any] = []

    async def a(env: Env) -> int:
        await env.task.unmap(Fpage.mem(0x300000, 12, MemRights.RWX), include_self=True)
        return 0

    async def d(env: Env) -> int:
        out.append(await env.mem.read(0x400000, 3))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"sib")
        ta, _ = await start_child(env, "a", a, prio=30)
        td, _ = await start_child(env, "d", d, prio=10)
        await ta.map(env.task, Fpage.mem(POOL, 12, RW), 0x300000)
        await td.map(env.task, Fpage.mem(POOL, 12, RW), 0x400000)
        return 0

    k, _, _ = run(root)
    assert out == [b"sib"]
    assert page(task_named(k, "a"), 0x300000) is None
    assert page(task_named(k, "d"), 0x400000).rights == RW


def test_unmap_of_another_task_needs_its_capability_with_write_right() -> None:
    """Unmapping in another task's space through a read-only task capability is refused (EPERM)."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        try:
            await env.cap("victim", TaskCap).unmap(Fpage.mem(0x300000, 12, MemRights.RWX), include_self=True)
        except L4Error as e:
            out.append(e.err)
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        victim = await env.factory.create_task("victim")
        await victim.map(env.task, Fpage.mem(POOL, 12, RW), 0x300000)
        ro = TaskCap(env, env.alloc_slot())
        await env.task.map(env.task, victim.fpage(Rights.R), ro.slot)  # a read-only copy
        await start_child(env, "child", child, caps={"victim": ro})
        return 0

    k, _, _ = run(root)
    assert out == [Err.EPERM]
    assert page(task_named(k, "victim"), 0x300000).rights == RW


def test_ten_thousand_deep_chain_is_revoked_by_one_unmap() -> None:
    """A chain of 10,000 derived page mappings across tasks goes with one unmap, leaving only the root."""
    k = Kernel(Machine(ram=1 << 20))
    s0 = k.create_task("s0")
    s0.vspace.sigma0 = True
    f = k.create_factory(64 << 20)
    tasks = [k.create_task(f"t{i}", f) for i in range(10)]
    used0 = f.used
    root = k.sigma0_root(s0, 5)
    assert root is not None
    node = root
    nodes = []
    for i in range(10_000):
        child = k.mem_map(node, tasks[i % 10], 0x100 + i // 10, RW, False)
        assert child is not None
        nodes.append(child)
        node = child
    assert f.used > used0
    touched = k.mdb_remove(root, include_self=False)
    assert touched == 10_000
    assert all(t.vspace.pages == {} for t in tasks)
    assert all(n.space is None for n in nodes)
    assert root.children == {} and s0.vspace.pages == {5: root}
    assert f.used == used0, "every mapping and page-table page was returned"


# ------------------------------------------------------------ page faults and pagers
def _pager_system(pager_fn: Any, child_fn: Any, exc_fn: Any = None, pager_args: tuple[Any, ...] = ()
                  ) -> tuple[Kernel, Tracer, Machine]:
    """Root spawns ``pager_fn`` (a thread of the root task, prio 50), optionally an exception
    handler thread, and a child whose pager (and handler) they are."""

    async def root(env: Env) -> int:
        p = await env.spawn(pager_fn, *pager_args, name="pager", prio=50)
        h = await env.spawn(exc_fn, name="handler", prio=60) if exc_fn is not None else None
        await start_child(env, "child", child_fn, pager=p, exc=h)
        return 0

    return run(root)


def frame_pager(log: list[Any], rights: int = RW) -> Any:
    """A pager that answers each fault with a fresh frame from sigma0 (taken into the pool)."""

    async def pager(env: Env) -> int:
        n = 0
        msg = await env.wait()
        while True:
            log.append((msg.proto, msg.words))
            fault = msg.words[0]
            present = fault & 1
            if not present:
                await grab(env, POOL + n * PAGE)
            where = POOL + (n if not present else n - 1) * PAGE
            n += 0 if present else 1
            msg = await env.reply_and_wait(
                0, items=(MapItem(Fpage.mem(where, 12, rights if not present else RW), snd_base=fault & ~0xFFF),))

    return pager


def test_page_fault_becomes_pager_ipc_in_fiasco_format() -> None:
    """An access to an unmapped page sends the pager proto -2, (address | write | present, ip)."""
    log: list[Any] = []
    out: list[Any] = []

    async def child(env: Env) -> int:
        await env.compute(10)
        await env.mem.write_word(0x10008, 0x1234)  # trap 2
        out.append(await env.mem.read_word(0x10008))
        out.append(await env.mem.read(0x20000, 4))  # trap 4 (read_word was trap 3)
        return 0

    k, _, _ = _pager_system(frame_pager(log), child)
    assert log == [(Proto.PAGE_FAULT, (0x10008 | 2, 2)), (Proto.PAGE_FAULT, (0x20000, 4))]
    assert type(log[0][0]) is int and log[0][0] == -2
    assert out == [0x1234, b"\0" * 4]
    th = thread_named(k, "child")
    assert th.exit_code == 0 and th.pfaults == 2
    child_t = task_named(k, "child")
    assert page(child_t, 0x10000).parent is page(task_named(k, "root"), POOL)


def test_write_to_a_read_only_page_reports_present_and_write() -> None:
    """A write to a page the pager mapped read-only faults with present=1, write=2; the RW
    upgrade then lets the write complete."""
    log: list[Any] = []
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append(await env.mem.read(0x10000, 1))
        await env.mem.write(0x10000, b"w")
        out.append(await env.mem.read(0x10000, 1))
        return 0

    k, _, _ = _pager_system(frame_pager(log, rights=R), child)
    assert [w[0] for _, w in log] == [0x10000, 0x10000 | 2 | 1]
    assert out == [b"\0", b"w"]
    assert page(task_named(k, "child"), 0x10000).rights == RW


def test_faulting_thread_blocks_until_the_pager_replies() -> None:
    """The access completes only after the pager's reply, however long the pager takes."""
    times: list[Any] = []

    async def slow_pager(env: Env) -> int:
        await grab(env, POOL)
        msg = await env.wait()
        await env.compute(MS)
        times.append(await env.clock())
        await env.reply(0, items=(MapItem(Fpage.mem(POOL, 12, RW), snd_base=msg.words[0] & ~0xFFF),))
        return 0

    async def child(env: Env) -> int:
        times.append(await env.clock())
        await env.mem.write(0x10000, b"late")
        times.append(await env.clock())
        times.append(await env.mem.read(0x10000, 4))
        return 0

    _pager_system(slow_pager, child)
    before, replied, after, data = times[0], times[1], times[2], times[3]
    assert replied - before >= MS
    assert after > replied
    assert data == b"late"


def test_access_across_a_page_boundary_faults_at_the_first_missing_page() -> None:
    """A write across a page boundary faults per missing page -- the second time at the start
    of the second page -- and then completes as a whole."""
    log: list[Any] = []
    out: list[Any] = []

    async def child(env: Env) -> int:
        await env.mem.write(0x10FFE, b"abcd")  # 2 bytes in page 0x10, 2 in page 0x11
        out.append(await env.mem.read(0x10FFE, 4))
        return 0

    _pager_system(frame_pager(log), child)
    assert [w[0] for _, w in log] == [0x10FFE & ~7 | 2, 0x11000 | 2]
    assert out == [b"abcd"]


def test_pager_reply_that_maps_nothing_faults_again() -> None:
    """An empty reply from the pager makes the access fault again with the same message."""
    log: list[Any] = []
    out: list[Any] = []

    async def lazy_pager(env: Env) -> int:
        await grab(env, POOL)
        msg = await env.wait()
        log.append(msg.words)
        msg = await env.reply_and_wait(0)  # maps nothing
        log.append(msg.words)
        await env.reply(0, items=(MapItem(Fpage.mem(POOL, 12, RW), snd_base=msg.words[0] & ~0xFFF),))
        return 0

    async def child(env: Env) -> int:
        await env.mem.write(0x10000, b"x")
        out.append(await env.mem.read(0x10000, 1))
        return 0

    k, _, _ = _pager_system(lazy_pager, child)
    assert len(log) == 2 and log[0] == log[1] == (0x10000 | 2, 1)
    assert out == [b"x"]
    assert thread_named(k, "child").pfaults == 2


def test_pager_refusal_becomes_page_fault_exception() -> None:
    """A pager replying with a negative label sends the thread's handler exception IPC, trap 14."""
    seen: list[Any] = []

    async def refusing_pager(env: Env) -> int:
        await env.wait()
        await env.reply(-Err.EPERM)
        return 0

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append((msg.proto, msg.words[0]))
        await env.reply(1)  # non-zero label: the thread is not resumed
        return 0

    async def child(env: Env) -> int:
        await env.mem.write(0x10000, b"x")
        seen.append("resumed")
        return 0

    k, _, _ = _pager_system(refusing_pager, child, exc_fn=handler)
    assert seen == [(Proto.EXCEPTION, TRAP_PAGE_FAULT)]
    th = thread_named(k, "child")
    assert th.state is TS.DEAD and th.exit_code is None
    assert page(task_named(k, "child"), 0x10000) is None


def test_page_fault_without_pager_goes_to_the_exception_handler() -> None:
    """A thread without a pager gets exception IPC trap 14 with the fault bits and address."""
    seen: list[Any] = []

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append((msg.proto, msg.words))
        await env.reply(1)
        return 0

    async def child(env: Env) -> int:
        await env.mem.write(0x10010, b"x")
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=60)
        await start_child(env, "child", child, exc=h)
        return 0

    k, tr, _ = run(root)
    th = thread_named(k, "child")
    (proto, words), = seen
    assert proto == Proto.EXCEPTION
    trapno, code, _ip, traps, addr = words
    assert (trapno, code, traps, addr) == (TRAP_PAGE_FAULT, 2, 1, 0x10010)
    assert pf_records(tr, th) == [{"addr": 0x10010, "write": 1, "present": 0, "pager": -1}]


def test_exception_handler_can_map_the_page_and_resume_the_access() -> None:
    """A handler that maps the missing page (by task.map) and replies 0 lets the access complete."""
    out: list[Any] = []

    async def handler(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"fixed")
        msg = await env.wait()
        out.append(msg.words[0])
        await env.cap("child", TaskCap).map(env.task, Fpage.mem(POOL, 12, RW), msg.words[4] & ~0xFFF)
        await env.reply(0)
        return 0

    async def child(env: Env) -> int:
        out.append(await env.mem.read(0x10000, 5))
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=60)
        ctask, _ = await start_child(env, "child", child, exc=h)
        env.name("child", ctask)
        return 0

    k, _, _ = run(root)
    assert out == [TRAP_PAGE_FAULT, b"fixed"]
    assert thread_named(k, "child").exit_code == 0


def test_unhandled_page_fault_stops_only_the_faulting_thread() -> None:
    """Without pager and handler the faulting thread is stopped; another task's thread runs on."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        out.append("child")
        await env.mem.read(0x10000, 1)
        out.append("read")
        return 0

    async def other(env: Env) -> int:
        await env.compute(MS)
        out.append("other done")
        return 0

    async def root(env: Env) -> int:
        await start_child(env, "child", child, prio=5)
        await start_child(env, "other", other, prio=5)
        return 0

    k, tr, _ = run(root)
    assert out == ["child", "other done"]
    th = thread_named(k, "child")
    assert stopped_by_fault(th)
    assert [(r[4]["trapno"], r[4]["handler"]) for r in tr.by_kind("exception") if r[3] == th.kid] == [
        (TRAP_PAGE_FAULT, -1)]
    assert thread_named(k, "other").exit_code == 0


# ------------------------------------------------------------ I/O ports
def test_unmapped_port_access_raises_gp_exception() -> None:
    """A thread touching port 0x3F8 it does not have gets exception IPC trap 13; the UART stays silent."""
    seen: list[Any] = []

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append((msg.proto, msg.words[0], msg.words[1], msg.words[4]))
        await env.reply(1)
        return 0

    async def child(env: Env) -> int:
        await env.io.outb(COM1, ord("A"))
        seen.append("written")
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=60)
        await start_child(env, "child", child, exc=h)
        return 0

    _, _, m = run(root)
    assert seen == [(Proto.EXCEPTION, TRAP_GP, COM1, COM1)]
    assert bytes(m.uart.output) == b""


def test_port_from_sigma0_reaches_the_uart() -> None:
    """After REQ_FPAGE_IO of 0x3F8..0x3FF, outb writes to the UART and inb reads its status."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        r = await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(COM1, 3), Fpage.io(0, 16))
        out.append((r.error, r.proto, r.items))
        await env.io.outb(COM1, ord("A"))
        out.append(await env.io.inb(COM1 + 5))
        return 0

    k, _, m = run(root)
    assert out == [(0, 0, tuple(Fpage.io(COM1 + i, 0, RW) for i in range(8))), 0x60]
    assert bytes(m.uart.output) == b"A"
    assert sorted(task_named(k, "root").vspace.io) == list(range(COM1, COM1 + 8))


def test_unmapped_port_faults_again() -> None:
    """Once the port is unmapped, the next access to it is a GP fault (the thread stops)."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(COM1, 3), Fpage.io(0, 16))
        await env.io.outb(COM1, ord("A"))
        out.append(await env.task.unmap(Fpage.io(COM1, 0, MemRights.RW), include_self=True))
        await env.io.outb(COM1, ord("B"))
        out.append("second write")
        return 0

    k, tr, m = run(root)
    assert out == [1]
    assert bytes(m.uart.output) == b"A"
    th = thread_named(k, "root")
    assert stopped_by_fault(th)
    assert [r[4]["trapno"] for r in tr.by_kind("exception") if r[3] == th.kid] == [TRAP_GP]
    assert COM1 not in task_named(k, "root").vspace.io and COM1 + 1 in task_named(k, "root").vspace.io


def test_ports_are_given_once() -> None:
    """sigma0 hands a port out once: a second request for it is refused with -EBUSY."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        for _ in range(2):
            r = await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(COM1, 0), Fpage.io(0, 16))
            out.append(r.proto)
        return 0

    run(root)
    assert out == [0, -Err.EBUSY]


def test_write_protected_port_reads_but_faults_on_write() -> None:
    """Unmapping only W of a port leaves inb working while the next outb faults."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        await request(env, SLOT_PAGER, REQ_FPAGE_IO, Fpage.io(COM1, 3), Fpage.io(0, 16))
        await env.task.unmap(Fpage.io(COM1, 3, MemRights.W), include_self=True)
        out.append(await env.io.inb(COM1 + 5))
        await env.io.outb(COM1, ord("A"))
        out.append("written")
        return 0

    k, _, m = run(root)
    assert out == [0x60]
    assert bytes(m.uart.output) == b""
    assert task_named(k, "root").vspace.io[COM1].rights == R
    assert stopped_by_fault(thread_named(k, "root"))


# ------------------------------------------------------------ kernel memory
def test_mappings_and_page_tables_are_charged_to_the_task_factory() -> None:
    """Each mapping costs a node; each 512-page region of a task's space a page-table page."""
    out: list[Any] = []

    async def idle(env: Env) -> int:
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL, 21)  # 512 frames
        await grab(env, POOL + (2 << 20))
        f = await env.factory.create_factory(1 << 20)
        t = await env.factory.create_task("t")
        t2 = await f.create_task("t2")
        out.append(t)
        await t2.map(env.task, Fpage.mem(POOL, 21, RW), 0x400000)  # 512 pages, one region
        await t2.map(env.task, Fpage.mem(POOL + (2 << 20), 12, RW), 0x600000)  # the next region
        return 0

    k, _, _ = run(root)
    t2 = task_named(k, "t2")
    f = t2.factory
    assert f is not None
    assert len(t2.vspace.pages) == 513
    expected = 513 * MAPPING_SIZE + 2 * PT_SIZE
    assert t2.vspace.charge == expected
    assert f.used == Task.SIZE + expected


def test_page_table_page_is_charged_once_per_region() -> None:
    """A second page in the same 512-page region costs one node; one in a new region adds a table."""
    marks: list[int] = []

    async def root(env: Env) -> int:
        await grab(env, POOL, 14)
        f = await env.factory.create_factory(1 << 20)
        t = await f.create_task("t")
        for dst in (0x400000, 0x401000, 0x600000):
            await t.map(env.task, Fpage.mem(POOL, 12, RW), dst)
            marks.append(await env.clock())
            await sleep(env, MS)
        return 0

    k, _, _ = boot(root)
    used = []
    for i in range(3):
        k.run(stop=lambda: len(marks) > i)  # noqa: B023  (called before i changes)
        k.run(until=marks[i] + MS // 2)  # inside the root's sleep
        t = task_named(k, "t")
        assert t.factory is not None
        used.append(t.factory.used)
    k.run()
    assert used == [Task.SIZE + MAPPING_SIZE + PT_SIZE,
                    Task.SIZE + 2 * MAPPING_SIZE + PT_SIZE,
                    Task.SIZE + 3 * MAPPING_SIZE + 2 * PT_SIZE]


def _quota_system(quota: int) -> tuple[Kernel, list[Any]]:
    """A child task made by a factory of ``quota`` bytes; root tries IPC and task.map into it."""
    out: list[Any] = []

    async def child(env: Env) -> int:
        msg = await env.wait(rcv=(Fpage.mem(WIN, 12),))
        out.append(("child", msg.error))
        return 0

    async def bystander(env: Env) -> int:
        out.append(("bystander", await env.mem.read(0x300000, 2)))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"ok")
        f = await env.factory.create_factory(quota)
        task, th = await start_child(env, "child", child, factory=f, prio=2)
        r = await th.send(0, items=(MapItem(Fpage.mem(POOL, 12, RW)),))
        out.append(("ipc", r.error))
        try:
            out.append(("task.map", await task.map(env.task, Fpage.mem(POOL, 12, RW), WIN)))
        except L4Error as e:
            out.append(("task.map", -e.err))
        other, _ = await start_child(env, "bystander", bystander, prio=1)
        await other.map(env.task, Fpage.mem(POOL, 12, RW), 0x300000)
        out.append(("root", await env.mem.read(POOL, 2)))
        return 0

    k, _, _ = run(root)
    return k, out


def test_exhausted_quota_fails_mappings_and_affects_nobody_else() -> None:
    """With no quota left, a map item fails (map failed) and task.map gives -ENOMEM; others still map."""
    k, out = _quota_system(Task.SIZE)
    assert dict(out) == {"child": IpcErr.REMAPFAILED, "ipc": IpcErr.SEMAPFAILED,
                         "task.map": -Err.ENOMEM, "root": b"ok", "bystander": b"ok"}
    child = task_named(k, "child")
    assert child.vspace.pages == {} and child.vspace.charge == 0
    assert child.factory is not None and child.factory.used == Task.SIZE


def test_quota_with_room_for_the_mapping_lets_it_through() -> None:
    """A factory with room for exactly one mapping and its page table accepts that mapping."""
    k, out = _quota_system(Task.SIZE + MAPPING_SIZE + PT_SIZE)
    assert dict(out)["ipc"] == 0 and dict(out)["child"] == 0
    child = task_named(k, "child")
    assert child.factory is not None and child.factory.used == child.factory.limit


def test_unmapping_returns_kernel_memory_to_the_factory() -> None:
    """Unmapping a task's pages gives every mapping node and page-table page back to its factory."""

    async def root(env: Env) -> int:
        await grab(env, POOL, 14)
        f = await env.factory.create_factory(1 << 20)
        t = await f.create_task("t")
        await t.map(env.task, Fpage.mem(POOL, 14, RW), 0x400000)
        await t.map(env.task, Fpage.mem(POOL, 12, RW), 0x800000)
        await sleep(env, MS)
        await env.task.unmap(Fpage.mem(POOL, 14, MemRights.RWX))  # revokes all derived pages
        return 0

    k, _, _ = boot(root)
    k.run(until=MS // 2 + k.now())
    t = task_named(k, "t")
    assert t.factory is not None
    assert t.factory.used == Task.SIZE + 5 * MAPPING_SIZE + 2 * PT_SIZE
    k.run()
    assert t.vspace.pages == {} and t.vspace.charge == 0
    assert t.factory.used == Task.SIZE


def test_deleting_a_task_returns_its_kernel_memory() -> None:
    """Deleting a task with mappings returns the task and all its mappings' memory to the factory."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        await grab(env, POOL, 14)
        f = await env.factory.create_factory(1 << 20)
        out.append(f)
        t = await f.create_task("t")
        await t.map(env.task, Fpage.mem(POOL, 14, RW), 0x400000)
        await env.task.delete(t.slot)
        return 0

    k, _, _ = run(root)
    t = task_named(k, "t")
    assert not t.alive and t.vspace.pages == {}
    assert t.factory is not None and t.factory.used == 0
    assert page(task_named(k, "root"), POOL).children == {}


def test_granted_sigma0_frame_returns_its_charge_when_unmapped() -> None:
    """A frame sigma0 grants (not maps) to the root is charged on arrival and returned on unmap."""
    seen: list[Any] = []

    async def granting_sigma0(env: Env) -> int:
        await env.wait()
        await env.reply(0, items=(MapItem(Fpage.mem(5 << 12, 12, RW), grant=True),))
        return 0

    async def root(env: Env) -> int:
        r = await env.pager.call(0, rcv=(Fpage.mem(WIN, 12),))
        seen.append(r.items)
        await sleep(env, MS)
        await env.task.unmap(Fpage.mem(WIN, 12, MemRights.RWX), include_self=True)
        return 0

    m = Machine(ram=1 << 20)
    k = Kernel(m, tracer=Tracer())
    s0 = k.create_sigma0(lambda sp: granting_sigma0(Env(TaskLocal(SIGMA0_CAPS))))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), pager=s0)
    rt = task_named(k, "root")
    assert rt.factory is not None
    before = rt.factory.used
    k.run(stop=lambda: bool(seen))
    assert seen == [(Fpage.mem(WIN, 12, RW),)] and page(rt, WIN).pfn == 5
    assert rt.factory.used == before + MAPPING_SIZE + PT_SIZE, "the grant is charged"
    k.run()
    assert rt.vspace.pages == {}
    assert rt.vspace.charge == 0
    assert rt.factory.used == before


# ------------------------------------------------------------ determinism
def _memory_heavy() -> list[Any]:
    log: list[Any] = []

    async def child(env: Env) -> int:
        for i in range(40):
            await env.mem.write_word(0x100000 + i * 0x3000, i)
        total = 0
        for i in range(40):
            total += await env.mem.read_word(0x100000 + i * 0x3000)
        await env.task.unmap(Fpage.mem(0x100000, 20, MemRights.RWX), include_self=True)
        await env.mem.write_word(0x100000, 1)  # faults again: a new frame
        return total

    async def root(env: Env) -> int:
        p = await env.spawn(frame_pager(log), name="pager", prio=50)
        await start_child(env, "child", child, pager=p)
        await start_child(env, "child2", child, pager=p)
        return 0

    k, tr, _ = run(root)
    assert thread_named(k, "child").exit_code == sum(range(40))
    return list(tr.records)


def test_memory_heavy_run_is_deterministic() -> None:
    """The same memory-heavy scenario produces identical trace records twice."""
    a, b = _memory_heavy(), _memory_heavy()
    assert len([r for r in a if r[2] == "pagefault"]) >= 80
    assert a == b
