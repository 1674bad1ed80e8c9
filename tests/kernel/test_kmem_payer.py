"""Who pays for page tables: the factory of the task whose address space grows, on every map path.

Fiasco charges a task's page tables to the quota it was created with; so does
this kernel (docs/kernel.md 2.5).  Each test here builds two tasks from two
factories of their own, a *source* S holding a page and a *destination* D,
moves a page from S to D along one path -- ``Task.map`` invoked by a third
party, a map item in IPC, a pager's reply to a page fault, a grant -- and
checks that D's factory paid for the mapping and its page table while S's
factory and the root's (the invoker's) paid nothing for it.  The last test
is the exhaustion: a destination out of quota fails the same way on every
path, and its source is not charged.
"""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import Fpage, IpcErr, MapItem, Proto
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Task
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SIZE
from l4sim.user.env import Env, L4Error

from .test_memory import MS, POOL, RW, WIN, boot, grab, run, sleep, start_child
from .test_memory import task_named as named

#: where the source task keeps its page
SRC = 0x600000
#: a mapping and the page table of its (new) 512-page region
ONE_PAGE = MAPPING_SIZE + PT_SIZE


def charged(k: Kernel, task: str) -> int:
    """What ``task``'s factory paid beyond the task itself (its threads come from the root's)."""
    t: Task = named(k, task)
    assert t.factory is not None
    return t.factory.used - Task.SIZE


def test_task_map_is_paid_by_the_destinations_factory_not_the_invokers_or_the_sources() -> None:
    """The root maps S's page into D with Task.map: D's factory pays; S's factory and the
    root's (the invoker's) pay nothing for the transfer."""
    marks: list[int] = []

    async def idle(env: Env) -> int:
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        fs = await env.factory.create_factory(64 << 10)
        fd = await env.factory.create_factory(64 << 10)
        s, _ = await start_child(env, "src", idle, factory=fs)
        d, _ = await start_child(env, "dst", idle, factory=fd)
        await s.map(env.task, Fpage.mem(POOL, 12, RW), SRC)
        marks.append(await env.clock())
        await sleep(env, MS)
        await d.map(s, Fpage.mem(SRC, 12, RW), WIN)
        return 0

    k, _, _ = boot(root)
    k.run(stop=lambda: bool(marks))
    k.run(until=marks[0] + MS // 2)  # inside the root's sleep: before the Task.map
    root_f = named(k, "root").factory
    assert root_f is not None
    before = (root_f.used, charged(k, "src"), charged(k, "dst"))
    k.run()
    assert named(k, "dst").vspace.pages[WIN >> 12].pfn == named(k, "src").vspace.pages[SRC >> 12].pfn
    assert (root_f.used, charged(k, "src"), charged(k, "dst")) == (before[0], before[1], ONE_PAGE)
    assert before[1:] == (ONE_PAGE, 0)


def test_a_map_item_is_paid_by_the_receivers_factory() -> None:
    """S sends its page to D's thread in an IPC map item: D's factory pays."""
    got: dict[str, int] = {}

    async def src(env: Env) -> int:
        r = await env.cap("dst").send(0, items=(MapItem(Fpage.mem(SRC, 12, RW)),))
        got["sent"] = r.error
        return 0

    async def dst(env: Env) -> int:
        msg = await env.wait(rcv=(Fpage.mem(WIN, 12),))
        got["received"] = msg.error
        got["read"] = int.from_bytes(await env.mem.read(WIN, 4), "little")
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"page")
        fs = await env.factory.create_factory(64 << 10)
        fd = await env.factory.create_factory(64 << 10)
        _, dth = await start_child(env, "dst", dst, factory=fd, prio=3)
        s, _ = await start_child(env, "src", src, factory=fs, prio=2, caps={"dst": dth})
        await s.map(env.task, Fpage.mem(POOL, 12, RW), SRC)
        return 0

    k, _, _ = run(root)
    assert got == {"sent": 0, "received": 0, "read": int.from_bytes(b"page", "little")}
    assert charged(k, "dst") == ONE_PAGE
    assert charged(k, "src") == ONE_PAGE


def test_a_pagers_reply_is_paid_by_the_faulting_tasks_factory() -> None:
    """D touches WIN; its pager, a thread of S, answers the fault with S's page: D's factory pays."""
    out: list[Any] = []

    async def pager(env: Env) -> int:
        msg = await env.wait()
        assert msg.proto == Proto.PAGE_FAULT, msg
        await env.reply(0, items=(MapItem(Fpage.mem(SRC, 12, RW), snd_base=WIN),))
        return 0

    async def dst(env: Env) -> int:
        out.append(await env.mem.read(WIN, 4))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        await env.mem.write(POOL, b"page")
        fs = await env.factory.create_factory(64 << 10)
        fd = await env.factory.create_factory(64 << 10)
        s, sth = await start_child(env, "src", pager, factory=fs, prio=3)
        await s.map(env.task, Fpage.mem(POOL, 12, RW), SRC)
        await start_child(env, "dst", dst, factory=fd, prio=2, pager=sth)
        return 0

    k, _, _ = run(root)
    assert out == [b"page"]
    assert charged(k, "dst") == ONE_PAGE
    assert charged(k, "src") == ONE_PAGE


def test_a_grant_moves_the_charge_from_the_source_to_the_destination() -> None:
    """S grants its page to D: D's factory pays for it, S's gets its mapping and page table back."""
    got: list[int] = []

    async def src(env: Env) -> int:
        r = await env.cap("dst").send(0, items=(MapItem(Fpage.mem(SRC, 12, RW), grant=True),))
        got.append(r.error)
        return 0

    async def dst(env: Env) -> int:
        got.append((await env.wait(rcv=(Fpage.mem(WIN, 12),))).error)
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        fs = await env.factory.create_factory(64 << 10)
        fd = await env.factory.create_factory(64 << 10)
        _, dth = await start_child(env, "dst", dst, factory=fd, prio=3)
        s, _ = await start_child(env, "src", src, factory=fs, prio=2, caps={"dst": dth})
        await s.map(env.task, Fpage.mem(POOL, 12, RW), SRC)
        return 0

    k, _, _ = run(root)
    assert got == [0, 0]
    assert WIN >> 12 in named(k, "dst").vspace.pages and SRC >> 12 not in named(k, "src").vspace.pages
    assert charged(k, "dst") == ONE_PAGE
    assert charged(k, "src") == 0


def test_a_destination_out_of_quota_fails_on_every_path_and_its_source_pays_nothing() -> None:
    """D's factory holds only D: Task.map gets -ENOMEM, a map item and a grant fail as map
    failures, a pager's reply leaves the fault unresolved; S keeps its page and its charge."""
    out: dict[str, Any] = {}

    async def src(env: Env) -> int:
        for how, grant in (("item", False), ("grant", True)):
            r = await env.cap("dst").send(0, items=(MapItem(Fpage.mem(SRC, 12, RW), grant=grant),))
            out[how] = r.error
        return 0

    async def dst(env: Env) -> int:
        for _ in range(2):
            await env.wait(rcv=(Fpage.mem(WIN, 12),))
        return 0

    async def root(env: Env) -> int:
        await grab(env, POOL)
        fs = await env.factory.create_factory(64 << 10)
        fd = await env.factory.create_factory(Task.SIZE)  # room for the task, not one mapping
        d, dth = await start_child(env, "dst", dst, factory=fd, prio=3)
        s, _ = await start_child(env, "src", src, factory=fs, prio=2, caps={"dst": dth})
        await s.map(env.task, Fpage.mem(POOL, 12, RW), SRC)
        try:
            await d.map(s, Fpage.mem(SRC, 12, RW), WIN)
            out["task.map"] = 0
        except L4Error as e:
            out["task.map"] = -e.err
        return 0

    k, _, _ = run(root)
    assert out == {"task.map": -12, "item": IpcErr.SEMAPFAILED, "grant": IpcErr.SEMAPFAILED}
    assert named(k, "dst").vspace.pages == {} and charged(k, "dst") == 0
    assert SRC >> 12 in named(k, "src").vspace.pages and charged(k, "src") == ONE_PAGE
