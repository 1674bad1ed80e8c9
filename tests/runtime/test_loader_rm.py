"""The loader (parent protocol, confinement) and the region manager (attach, faults).

These run without moe: the loader is given no memory allocator, so programs
get no stack or heap, and the dataspace behind an attached region is a small
server written here that speaks the dataspace protocol's MAP from its own
memory (which sigma0 gave it).
"""

from __future__ import annotations

import random
import re
from typing import Any

import pytest

from l4sim.kernel.abi import WORD_MASK, Err, Fpage, IpcErr, MapItem, MemRights, Proto, Rights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.trace import Tracer
from l4sim.kernel.traps import Msg
from l4sim.machine.board import Machine
from l4sim.runtime.loader import Child, Loader, ProgramError, resolve
from l4sim.runtime.protocols import DATASPACE, PARENT, RM, DsOp, ParentOp, RmFlag, RmOp, Sig
from l4sim.runtime.rm import RegionMap
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, Gate, TaskLocal

DS_BASE = 0x4000000  # where the test's dataspace server keeps its pages
DS_PAGES = 4


async def ds_server(env: Env) -> int:
    """A one-dataspace server: MAP(offset) maps the page at DS_BASE + offset."""
    for i in range(DS_PAGES):  # fault the pages in from sigma0
        await env.mem.write(DS_BASE + i * 4096, bytes([i + 1]) * 16)
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        w = msg.words
        if msg.proto == DATASPACE and w and w[0] == DsOp.MAP and len(w) >= 3:
            off = w[1] & ~0xFFF
            if off >= DS_PAGES * 4096:
                msg = await env.reply_and_wait(-Err.ERANGE)
                continue
            item = MapItem(Fpage.mem(DS_BASE + off, 12, MemRights.RWX))
            msg = await env.reply_and_wait(0, items=(item,))
        elif msg.proto == DATASPACE and w and w[0] == DsOp.INFO:
            msg = await env.reply_and_wait(0, DS_PAGES * 4096, 1, DS_PAGES)
        else:
            msg = await env.reply_and_wait(-Err.ENOSYS)


def boot(parent_main: Any, cores: int = 1) -> tuple[Kernel, Tracer]:
    m = Machine(cores=cores)
    tr = Tracer()
    k = Kernel(m, tracer=tr)
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes))
    k.create_root("root", lambda sp: parent_main(Env(TaskLocal(INITIAL))), pager=s0)
    k.run(until=10_000_000_000)
    return k, tr


def run_children(specs: list[tuple[str, Any, dict[str, Any], tuple[Any, ...]]],
                 with_ds: bool = False) -> tuple[Kernel, list[Child]]:
    """Start programs with a loader that is their parent; serve them until all ended."""
    children: list[Child] = []

    async def parent(env: Env) -> int:
        loader = Loader(env)
        extra: dict[str, Any] = {}
        if with_ds:
            srv = await env.spawn(ds_server, name="ds", prio=150)
            extra["ds"] = await env.factory.create_gate(srv, 0x40)
        for name, fn, caps, args in specs:
            caps = {k: (extra[v] if isinstance(v, str) else v) for k, v in caps.items()}
            children.append(await loader.start(name, fn, caps, prio=10, args=args))
        while not all(c.done for c in children):
            await loader.handle(await env.wait())
        return 0

    k, _ = boot(parent)
    return k, children


async def prints_and_exits(env: Env, code: int) -> int:
    await env.print("child here")
    return code


async def raises(env: Env) -> int:
    raise ValueError("boom")


async def touches_nothing(env: Env) -> int:
    await env.mem.read(0x123000, 4)
    return 0


def test_exit_status_reaches_the_parent_and_the_task_is_deleted() -> None:
    """A program's return value is its exit status at the parent; its task is gone after."""
    k, ch = run_children([("p", prints_and_exits, {}, (3,))])
    assert ch[0].done and ch[0].exit == 3 and ch[0].fault is None
    task = next(t for t in k.tasks if t.name == "p")
    assert not task.alive
    assert all(th.state is TS.DEAD for th in k.threads if th.task is task)
    assert "child here" in k.machine.uart.text()


def test_an_uncaught_exception_is_a_fault_reported_to_the_parent() -> None:
    """A program that raises ends at its parent with the exception's type, message and its own line."""
    _, ch = run_children([("p", raises, {}, ())])
    line = raises.__code__.co_firstlineno + 1
    assert ch[0].done and ch[0].raised
    assert ch[0].fault == f"ValueError: boom (test_loader_rm.py:{line})"
    assert ch[0].status == ch[0].fault


def test_a_fault_outside_every_region_is_a_segmentation_fault() -> None:
    """The region manager reports an address in no region to the parent, which ends the program."""
    _, ch = run_children([("p", touches_nothing, {}, ())])
    assert ch[0].fault is not None and "segmentation fault" in ch[0].fault and "0x123000" in ch[0].fault


async def lists_its_slots(env: Env, box: list[int]) -> int:
    for slot in range(1, 64):
        if (await env.task.cap_info(slot))[0]:
            box.append(slot)
    return 0


def test_a_program_holds_exactly_what_it_was_given() -> None:
    """Confinement: task, thread, rm, log, parent and the script's capabilities -- nothing else."""
    box: list[int] = []
    _, ch = run_children([("p", lists_its_slots, {"ds": "ds"}, (box,))], with_ds=True)
    assert ch[0].exit == 0
    assert box == [1, 3, 4, 5, 8, 9]


async def uses_a_region(env: Env, box: list[Any]) -> int:
    rm = env.cap("rm", Gate)
    ds = env.cap("ds", Gate)
    r: Msg = await rm.call(RM, RmOp.ATTACH, 0, 2 * 4096, RmFlag.SEARCH_ADDR, 4096,
                           items=(MapItem(ds.fpage()),))
    addr = r.words[0]
    box.append(addr)
    box.append(await env.mem.read(addr, 4))  # page 1 of the dataspace (offset 4096)
    await env.mem.write(addr + 4096, b"hi")  # page 2, through a second fault
    box.append(await env.mem.read(addr + 4096, 2))
    f = await rm.call(RM, RmOp.FIND, addr + 100)
    box.append(f.words)
    d = await rm.call(RM, RmOp.DETACH, addr)
    box.append(d.words)
    await env.mem.read(addr, 1)  # detached: a segmentation fault now
    return 0


def test_region_manager_resolves_faults_from_the_dataspace_and_detach_unmaps() -> None:
    """Faults in an attached region are mapped from the dataspace; after detach they are segfaults."""
    box: list[Any] = []
    _, ch = run_children([("p", uses_a_region, {"ds": "ds"}, (box,))], with_ds=True)
    addr, first, written, found, detached = box
    assert addr >= 0x1000_0000 and addr % 4096 == 0
    assert first == bytes([2]) * 4
    assert written == b"hi"
    assert found == (addr, 2 * 4096, 4096, RmFlag.SEARCH_ADDR)
    assert detached == (addr, 2 * 4096)
    assert ch[0].fault is not None and f"{addr:#x}" in ch[0].fault


async def attaches_read_only(env: Env) -> int:
    rm = env.cap("rm", Gate)
    ds = env.cap("ds", Gate)
    r = await rm.call(RM, RmOp.ATTACH, 0x2000_0000, 4096, RmFlag.READ_ONLY, 0, items=(MapItem(ds.fpage()),))
    assert r.words[0] == 0x2000_0000
    await env.mem.read(0x2000_0000, 1)
    await env.mem.write(0x2000_0000, b"x")  # a write to a read-only region: segfault
    return 0


def test_a_write_to_a_read_only_region_is_a_segmentation_fault() -> None:
    """The region manager refuses writes to read-only regions and tells the parent."""
    _, ch = run_children([("p", attaches_read_only, {"ds": "ds"}, ())], with_ds=True)
    assert ch[0].fault is not None and "write at 0x20000000" in ch[0].fault


async def rm_errors(env: Env, box: list[int]) -> int:
    rm = env.cap("rm", Gate)
    ds = env.cap("ds", Gate)
    box.append((await rm.call(RM, RmOp.DETACH, 0x5000)).proto)
    box.append((await rm.call(RM, RmOp.FIND, 0x5000)).proto)
    a = await rm.call(RM, RmOp.ATTACH, 0x3000_0000, 4096, 0, 0, items=(MapItem(ds.fpage()),))
    b = await rm.call(RM, RmOp.ATTACH, 0x3000_0000, 4096, 0, 0, items=(MapItem(ds.fpage()),))
    box += [a.proto, b.proto]
    area = await rm.call(RM, RmOp.RESERVE, 0, 8 * 4096, RmFlag.SEARCH_ADDR)
    box.append(area.proto)
    inside = await rm.call(RM, RmOp.ATTACH, area.words[0], 4096, RmFlag.IN_AREA, 0,
                           items=(MapItem(ds.fpage()),))
    box.append(inside.proto)
    box.append((await rm.call(RM, RmOp.FREE_AREA, area.words[0])).proto)
    box.append((await rm.call(RM, 99)).proto)
    return 0


def test_region_manager_errors() -> None:
    """Detach/find of nothing, overlapping attach, areas, unknown operation."""
    box: list[int] = []
    _, ch = run_children([("p", rm_errors, {"ds": "ds"}, (box,))], with_ds=True)
    assert ch[0].exit == 0
    assert box == [-Err.ENOENT, -Err.ENOENT, 0, -Err.EEXIST, 0, 0, 0, -Err.ENOSYS]


def test_resolve_names_async_functions_only() -> None:
    """Program names must be package.module:function of an async function."""
    assert resolve("l4sim.scenarios.programs.demo:hello").__name__ == "hello"
    for bad in ("nocolon", "no.such.module:main", "l4sim.runtime.loader:nothing", "l4sim.runtime.loader:resolve"):
        try:
            resolve(bad)
        except ProgramError as e:
            assert bad.split(":")[0] in str(e) or "async" in str(e)
        else:
            raise AssertionError(f"{bad} resolved")


def test_unused_rights_import_guard() -> None:
    """Rights of a script capability default to all of the parent's (RWSD)."""
    assert Rights.RWSD == 0xF


# --- bad requests to the region manager ---------------------------------------------------------


async def attaches_what_is_no_dataspace(env: Env, box: list[Any]) -> int:
    rm = env.cap("rm", Gate)
    ds = env.cap("ds", Gate)
    flags = RmFlag.SEARCH_ADDR | RmFlag.EAGER_MAP
    # its own main thread (waiting in this very call) and the region manager's thread: MAP to
    # either would be IPC to a thread that never answers it, and the region manager would hang
    for slot in (env.thread.slot, rm.slot):
        box.append((await rm.call(RM, RmOp.ATTACH, 0, 4096, flags, 0, items=(MapItem(Fpage.obj(slot)),))).proto)
    # an offset whose last page lies past 2**64: no MAP request could name it
    box.append((await rm.call(RM, RmOp.ATTACH, 0, 2 * 4096, flags, WORD_MASK - 4095,
                              items=(MapItem(ds.fpage()),))).proto)
    r = await rm.call(RM, RmOp.ATTACH, 0, 4096, RmFlag.SEARCH_ADDR, 0, items=(MapItem(ds.fpage()),))
    box.append(await env.mem.read(r.words[0], 2))
    return 0


def test_a_thread_or_an_offset_past_the_top_is_no_dataspace() -> None:
    """ATTACH of a thread capability, or with an offset + size past 2**64, is -EINVAL (the region
    manager used to deadlock on the first, and fault on every page of the second); a proper attach
    afterwards is served."""
    box: list[Any] = []
    _, ch = run_children([("p", attaches_what_is_no_dataspace, {"ds": "ds"}, (box,))], with_ds=True)
    assert box == [-Err.EINVAL] * 3 + [bytes([1]) * 2]
    assert ch[0].exit == 0


async def sends_junk_to_its_region_manager(env: Env, seed: int, box: list[Any]) -> int:
    rng = random.Random(seed)
    rm = env.cap("rm", Gate)
    values = [0, 1, 2, 3, 4, 5, 8, 15, 4096, 0x1000_0000, 0x7FFF_0000_0000, WORD_MASK - 4095, WORD_MASK]
    for _ in range(200):
        words = (rng.choice([0, 0, 0, 1, 2, 3, 4, 9]),
                 *(rng.choice([*values, rng.randrange(1 << 64)]) for _ in range(rng.choice([0, 1, 2, 4, 5]))))
        items = (MapItem(Fpage.obj(rng.choice([1, 3, 4, 5, 8, env.cap("ds").slot]))),) if rng.random() < 0.6 else ()
        r = await rm.call(RM, *words, items=items)
        box.append((r.error, r.proto))
    return 0


def test_random_junk_to_the_region_manager_is_answered_request_by_request() -> None:
    """Two hundred ATTACH, DETACH, FIND, RESERVE, FREE_AREA and unknown requests with random words
    (the top of the address space and of the word range among them) and random capabilities as
    items: every one is answered, none with -EIO, and the program ends normally."""
    box: list[Any] = []
    k, ch = run_children([("p", sends_junk_to_its_region_manager, {"ds": "ds"}, (7, box))], with_ds=True)
    assert len(box) == 200 and all(err == 0 for err, _ in box)
    assert {p for _, p in box} >= {0, -Err.EINVAL, -Err.ENOENT, -Err.ENOSYS}
    assert -Err.EIO not in {p for _, p in box} and "rm: request" not in k.machine.uart.text()
    assert ch[0].exit == 0


async def frees_an_area(env: Env, box: list[Any]) -> int:
    rm = env.cap("rm", Gate)
    area = await rm.call(RM, RmOp.RESERVE, 0, 4096, RmFlag.SEARCH_ADDR)
    box.append((await rm.call(RM, RmOp.FREE_AREA, area.words[0])).proto)
    box.append((await rm.call(RM, RmOp.FIND, area.words[0])).proto)
    return 0


def test_a_request_that_raises_in_the_region_manager_is_answered_eio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence, with a fault injected into the region map: the request that raised
    is -EIO, the program's log has one line naming the region manager, the request and the
    exception, and the next request is served."""

    def broken(self: RegionMap, addr: int) -> bool:
        raise RuntimeError("injected")

    monkeypatch.setattr(RegionMap, "free_area", broken)
    box: list[Any] = []
    k, ch = run_children([("p", frees_an_area, {}, (box,))])
    assert box == [-Err.EIO, -Err.ENOENT] and ch[0].exit == 0
    lines = [ln for ln in k.machine.uart.text().splitlines() if "rm:" in ln]
    assert len(lines) == 1 and lines[0].startswith("rm: request proto 0x4003 op 0x4 on label 0x0 (2 words, 0 items) "
                                                   "failed: RuntimeError: injected (test_loader_rm.py:")
    assert lines[0].endswith("); answered -EIO")


# --- bad requests to the parent -----------------------------------------------------------------


async def pesters_its_parent(env: Env, seed: int, box: list[Any]) -> int:
    """Random messages on the parent gate, none of them an exit, a fault report or an exception."""
    rng = random.Random(seed)
    parent = env.cap("parent", Gate)
    for _ in range(150):
        proto = rng.choice([PARENT, PARENT, PARENT, 0, 7, int(Proto.PAGE_FAULT), int(Proto.IRQ)])
        words = tuple(rng.choice([0, 0, 1, 2, 3, 0x1000, WORD_MASK, rng.randrange(1 << 64)])
                      for _ in range(rng.choice([0, 1, 2, 3, 3, 5])))
        if proto == PARENT and len(words) >= 3 and words[0] == ParentOp.SIGNAL and words[1] in (Sig.EXIT, Sig.FAULT):
            words = (words[0], 2, *words[2:])  # an unknown signal instead
        items = (MapItem(env.task.fpage()),) if rng.random() < 0.1 else ()
        r = await parent.call(proto, *words, items=items)
        box.append((r.error, r.proto))
    return 0


def test_random_junk_to_the_parent_is_answered_and_the_program_ends_normally() -> None:
    """150 messages of random protocols, signals and words on the parent gate: each is answered
    (-EINVAL an unknown signal, -ENOSYS anything else) or, carrying an item the parent has no
    buffer for, fails in the sender's own IPC; the program then exits and is reported as usual."""
    box: list[Any] = []
    k, ch = run_children([("p", pesters_its_parent, {}, (3, box))])
    assert len(box) == 150
    assert set(box) <= {(0, -Err.EINVAL), (0, -Err.ENOSYS), (IpcErr.SEMSGCUT, 0)}
    assert {p for _, p in box} == {0, -Err.EINVAL, -Err.ENOSYS}
    assert ch[0].status == "exit 0" and k.machine.uart.text() == ""


async def signals_seven(env: Env, box: list[Any]) -> int:
    box.append((await env.cap("parent", Gate).call(PARENT, ParentOp.SIGNAL, 7, 0)).proto)
    return 5


def test_a_request_that_raises_in_the_parent_is_answered_eio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence, with a fault injected into the parent's handling of signal 7: the
    child's call is -EIO, the log has one line naming the parent, the request and the exception,
    and the child's exit afterwards is handled as always."""
    real = Loader._handle

    async def broken(self: Loader, msg: Msg) -> bool:
        if msg.proto == PARENT and msg.words[1:2] == (7,):
            raise RuntimeError("injected")
        return await real(self, msg)

    monkeypatch.setattr(Loader, "_handle", broken)
    box: list[Any] = []
    k, ch = run_children([("p", signals_seven, {}, (box,))])
    assert box == [-Err.EIO] and ch[0].status == "exit 5"
    assert re.fullmatch(r"loader: request proto 0x4001 op 0x0 on label 0x1001 \(3 words, 0 items\) failed: "
                        r"RuntimeError: injected \(test_loader_rm\.py:\d+\); answered -EIO\n",
                        k.machine.uart.text())
