"""moe, the root task: dataspaces, sessions and quotas, namespaces, logs, client death.

Each test boots sigma0 and moe with :func:`boot_moe`; moe starts the test's
``main`` program with a root session (``mem``), a namespace (``ns``) and a
log stream.  Programs hand results to the test through lists; the test reads
moe's bookkeeping (``Moe.stats``) the way a debugger would.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from l4sim.kernel.abi import CALL, Err, Fpage, IpcErr, MapItem, Rights, pack_bytes, unpack_bytes
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, Task
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.board import Machine
from l4sim.runtime.moe import (
    OBJECT_CHARGE,
    PALETTE,
    Moe,
    MoeServer,
    boot_moe,
    colourize,
    start_program,
    tag_colour,
)
from l4sim.runtime.protocols import DATASPACE, LOG, MEM_ALLOC, NAMESPACE, DsFlag, DsOp, MemOp, NsOp
from l4sim.user.env import Env, Gate

PAGE = 4096
RW = DsFlag.RW
#: where test programs put the pages they map
VA = 0x1000_0000
VB = 0x2000_0000

Main = Callable[[Env], Coroutine[Any, Any, Any]]


def boot(main: Main, *, quota: int | None = None, ram: int = 16 << 20) -> tuple[Kernel, Moe]:
    """sigma0 + moe + ``main``, run until the system is idle."""
    k = Kernel(Machine(cores=1, seed=0, ram=ram))
    moe = boot_moe(k, main, quota=quota)
    why = k.run(max_events=2_000_000)
    assert why == "idle"
    return k, moe


def task_named(k: Kernel, name: str) -> Task:
    return next(t for t in k.tasks if t.name == name)


# --- client side of moe's protocols (raw IPC, as any program would speak them)
async def call(env: Env, slot: int, proto: int, *words: int, items: tuple[MapItem, ...] = (),
               rcv: tuple[Fpage, ...] = ()) -> Msg:
    return await env.ipc(Ipc(slot, CALL, proto, tuple(words), items, rcv=rcv))


async def create(env: Env, mem: int, op: int, *args: int) -> tuple[Msg, int]:
    """A MEM_ALLOC create operation; the new object's capability lands in a fresh slot."""
    slot = env.alloc_slot()
    return await call(env, mem, MEM_ALLOC, op, *args, rcv=(Fpage.obj(slot),)), slot


async def create_ds(env: Env, mem: int, size: int, flags: int = RW) -> int:
    msg, slot = await create(env, mem, MemOp.CREATE_DS, size, flags, 0)
    assert msg.ok and msg.proto == 0, msg
    return slot


async def map_page(env: Env, ds: int, off: int, addr: int, write: bool = False) -> Msg:
    """DATASPACE MAP of the page at ``off`` into a one-page window at ``addr`` of my space."""
    return await call(env, ds, DATASPACE, DsOp.MAP, off, 1 if write else 0, rcv=(Fpage.mem(addr, 12),))


async def quota(env: Env, mem: int) -> tuple[int, ...]:
    return (await call(env, mem, MEM_ALLOC, MemOp.QUOTA)).words


async def info(env: Env, ds: int) -> Msg:
    return await call(env, ds, DATASPACE, DsOp.INFO)


def mem_of(env: Env) -> int:
    return int(env.cap("mem").slot)


def ns_of(env: Env) -> int:
    return int(env.cap("ns").slot)


async def register(env: Env, ns: int, name: bytes, cap: int, flags: int = 0, grant: bool = False) -> Msg:
    return await call(env, ns, NAMESPACE, NsOp.REGISTER, flags, *pack_bytes(name),
                      items=(MapItem(Fpage.obj(cap), grant=grant),))


async def query(env: Env, ns: int, name: bytes) -> tuple[Msg, int]:
    slot = env.alloc_slot()
    return await call(env, ns, NAMESPACE, NsOp.QUERY, *pack_bytes(name), rcv=(Fpage.obj(slot),)), slot


async def log_write(env: Env, log: int, data: bytes) -> Msg:
    return await call(env, log, LOG, 0, *pack_bytes(data))


# =========================================================================== dataspaces
def test_create_ds_rounds_the_size_up_to_pages_and_reports_it() -> None:
    """CREATE_DS answers the page-rounded size; INFO gives size, flags and no pages yet."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        msg, ds = await create(env, mem_of(env), MemOp.CREATE_DS, 5000, RW, 0)
        out.append(msg)
        out.append(await info(env, ds))
        return 0

    boot(main)
    assert out[0].ok and out[0].proto == 0 and out[0].words == (8192,)
    assert len(out[0].items) == 1 and out[0].items[0].kind == 3  # the capability arrived
    assert out[1].proto == 0 and out[1].words == (8192, RW, 0)


def test_fresh_pages_are_zero_filled() -> None:
    """Every byte of a newly mapped dataspace page reads as zero."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 3 * PAGE)
        for i in range(3):
            out.append((await map_page(env, ds, i * PAGE, VA + i * PAGE)).proto)
        out.append(await env.mem.read(VA, 3 * PAGE))
        return 0

    boot(main)
    assert out[:3] == [0, 0, 0]
    assert out[3] == bytes(3 * PAGE)


def test_a_written_page_keeps_its_contents_across_mappings() -> None:
    """Bytes written through one mapping of a page are read back through a second one."""
    out: list[bytes] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 2 * PAGE)
        await map_page(env, ds, PAGE, VA, write=True)
        await env.mem.write(VA + 100, b"persistent")
        await map_page(env, ds, PAGE, VB)
        out.append(await env.mem.read(VB + 100, 10))
        return 0

    k, _ = boot(main)
    assert out == [b"persistent"]
    pages = task_named(k, "init").vspace.pages
    assert pages[VA >> 12].pfn == pages[VB >> 12].pfn  # one frame, two addresses


def test_frames_are_zeroed_before_they_are_handed_out_again() -> None:
    """A frame freed with its dataspace comes back in a new one full of zeros, not old data."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        a = await create_ds(env, mem, PAGE)
        await map_page(env, a, 0, VA, write=True)
        await env.mem.write(VA, b"secret" * 600)
        out.append(task_named(k_box[0], "init").vspace.pages[VA >> 12].pfn)
        await env.task.delete(a)  # the only capability: the dataspace dies, moe frees it
        b = await create_ds(env, mem, PAGE)
        out.append((await map_page(env, b, 0, VB)).proto)
        out.append(task_named(k_box[0], "init").vspace.pages[VB >> 12].pfn)
        out.append(await env.mem.read(VB, PAGE))
        out.append(VA >> 12 in task_named(k_box[0], "init").vspace.pages)
        return 0

    k_box: list[Kernel] = []
    k = Kernel(Machine(cores=1, seed=0, ram=16 << 20))
    k_box.append(k)
    boot_moe(k, main)
    k.run(max_events=1_000_000)
    old_pfn, proto, new_pfn, data, still_mapped = out
    assert proto == 0
    assert new_pfn == old_pfn  # the same frame was reused ...
    assert data == bytes(PAGE)  # ... and zeroed first
    assert not still_mapped  # and the old mapping was revoked when the dataspace died


def test_map_beyond_the_size_is_refused_with_erange() -> None:
    """MAP at an offset past the end of the dataspace answers -ERANGE and maps nothing."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 2 * PAGE)
        out.append(await map_page(env, ds, 2 * PAGE, VA))
        return 0

    boot(main)
    assert out[0].proto == -Err.ERANGE and out[0].items == ()


def test_write_mapping_of_a_read_only_dataspace_is_refused() -> None:
    """A dataspace created without RW maps read-only pages and refuses W with -EPERM."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE, flags=0)
        out.append(await map_page(env, ds, 0, VA, write=True))
        out.append(await map_page(env, ds, 0, VA))
        return 0

    k, _ = boot(main)
    assert out[0].proto == -Err.EPERM and out[0].items == ()
    assert out[1].proto == 0
    assert not task_named(k, "init").vspace.pages[VA >> 12].rights & 2  # mapped without W


def test_a_capability_without_w_cannot_map_writable_or_clear() -> None:
    """Through a read-only capability MAP with W and CLEAR get -EPERM; INFO hides RW."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        ro = env.alloc_slot()
        await env.task.map(env.task, Fpage.obj(ds, 0, Rights.R), ro)
        out.append(await map_page(env, ro, 0, VA, write=True))
        out.append(await call(env, ro, DATASPACE, DsOp.CLEAR, 0, PAGE))
        out.append(await info(env, ro))
        out.append(await map_page(env, ro, 0, VA))
        return 0

    boot(main)
    assert out[0].proto == -Err.EPERM
    assert out[1].proto == -Err.EPERM
    assert out[2].words == (PAGE, 0, 0)
    assert out[3].proto == 0


def test_sharing_a_dataspace_between_two_tasks_by_passing_the_capability() -> None:
    """Two tasks mapping one dataspace see each other's writes."""
    out: list[bytes] = []

    async def client(env: Env) -> int:
        ds = int(env.cap("ds").slot)
        await map_page(env, ds, 0, VB, write=True)
        out.append(await env.mem.read(VB, 9))
        await env.mem.write(VB + 64, b"from client")
        await env.cap("done").send(0)
        return 0

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        await map_page(env, ds, 0, VA, write=True)
        await env.mem.write(VA, b"from main")
        done = await env.factory.create_gate(env.thread, 0x40)
        await start_program(env, "client", client, caps={"ds": Gate(env, ds), "done": done}, prio=50)
        await env.wait()
        out.append(await env.mem.read(VA + 64, 11))
        return 0

    k, _ = boot(main)
    assert out == [b"from main", b"from client"]
    assert task_named(k, "init").vspace.pages[VA >> 12].pfn == task_named(k, "client").vspace.pages[VB >> 12].pfn


def test_a_pager_thread_backs_faults_with_dataspace_pages() -> None:
    """A region-manager-like pager thread resolves a worker's faults by MAPping the dataspace."""
    out: list[Any] = []

    async def pager(env: Env, ds: int) -> int:
        msg = await env.wait()
        while True:
            addr, write = msg.words[0] & ~0xFFF, msg.words[0] & 2
            ans = await map_page(env, ds, addr - VA, addr, write=bool(write))
            out.append(("fault", addr - VA, bool(write), ans.proto))
            msg = await env.reply_and_wait(0)

    async def worker(env: Env) -> int:
        out.append(await env.mem.read(VA + PAGE + 8, 4))
        await env.mem.write(VA + PAGE + 8, b"abcd")
        await env.mem.write(VA + 3 * PAGE, b"z")
        out.append(await env.mem.read(VA + PAGE + 8, 4))
        return 0

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 4 * PAGE)
        pg = await env.spawn(pager, ds, name="pager", prio=60)
        await env.spawn(worker, name="worker", prio=40, pager=pg.slot)
        return 0

    boot(main)
    assert out == [("fault", PAGE, False, 0), bytes(4), ("fault", PAGE, True, 0), ("fault", 3 * PAGE, True, 0),
                   b"abcd"]


def test_clear_zero_fills_exactly_the_range() -> None:
    """CLEAR zeroes the bytes in its range, across a page boundary, and nothing else."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 2 * PAGE)
        for i in range(2):
            await map_page(env, ds, i * PAGE, VA + i * PAGE, write=True)
        await env.mem.write(VA, b"\xff" * 2 * PAGE)
        out.append((await call(env, ds, DATASPACE, DsOp.CLEAR, 100, PAGE)).proto)
        out.append(await env.mem.read(VA, 2 * PAGE))
        return 0

    boot(main)
    assert out[0] == 0
    data = out[1]
    assert data[:100] == b"\xff" * 100
    assert data[100 : 100 + PAGE] == bytes(PAGE)
    assert data[100 + PAGE :] == b"\xff" * (PAGE - 100)


def test_copy_in_copies_an_unaligned_range_between_dataspaces() -> None:
    """COPY_IN moves bytes from a source dataspace (sent as a capability) into the target."""
    out: list[Any] = []
    pattern = bytes(range(256)) * 24  # 6144 bytes

    async def main(env: Env) -> int:
        mem = mem_of(env)
        src = await create_ds(env, mem, 3 * PAGE)
        dst = await create_ds(env, mem, 3 * PAGE)
        for i in range(3):
            await map_page(env, src, i * PAGE, VA + i * PAGE, write=True)
        await env.mem.write(VA + 10, pattern)
        ans = await call(env, dst, DATASPACE, DsOp.COPY_IN, 4000, 10, len(pattern),
                         items=(MapItem(Fpage.obj(src)),))
        out.append(ans.proto)
        for i in range(3):
            await map_page(env, dst, i * PAGE, VB + i * PAGE)
        out.append(await env.mem.read(VB, 3 * PAGE))
        return 0

    boot(main)
    assert out[0] == 0
    data = out[1]
    assert data[4000 : 4000 + len(pattern)] == pattern
    assert data[:4000] == bytes(4000) and data[4000 + len(pattern) :] == bytes(3 * PAGE - 4000 - len(pattern))


def test_copy_in_error_paths() -> None:
    """COPY_IN without a source capability is -EINVAL, past the target's end -ERANGE, past
    the source's end -ERANGE, and from a gate no dataspace answers -EINVAL."""
    out: list[int] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        src = await create_ds(env, mem, PAGE)
        dst = await create_ds(env, mem, PAGE)
        item = (MapItem(Fpage.obj(src)),)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, 0, 16)).proto)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, PAGE - 8, 0, 16, items=item)).proto)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, PAGE, 16, items=item)).proto)
        silent = await env.factory.create_gate(env.thread, 0x80)  # nobody ever answers it
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, 0, 16,
                               items=(MapItem(silent.fpage()),))).proto)
        return 0

    boot(main)
    assert out == [-Err.EINVAL, -Err.ERANGE, -Err.ERANGE, -Err.EINVAL]


def test_pinned_dataspaces_are_backed_at_creation_and_allocate_backs_a_range() -> None:
    """PINNED backs every page at once; ALLOCATE backs just the pages of its range."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        pinned = await create_ds(env, mem, 3 * PAGE, RW | DsFlag.PINNED)
        out.append(await info(env, pinned))
        lazy = await create_ds(env, mem, 8 * PAGE)
        out.append(await call(env, lazy, DATASPACE, DsOp.ALLOCATE, PAGE + 1, PAGE))
        out.append(await info(env, lazy))
        out.append(await call(env, lazy, DATASPACE, DsOp.ALLOCATE, 8 * PAGE, PAGE))
        return 0

    _, moe = boot(main)
    assert out[0].words == (3 * PAGE, RW | DsFlag.PINNED, 3)
    assert out[1].proto == 0 and out[2].words[2] == 2  # bytes PAGE+1 .. 2*PAGE touch pages 1 and 2
    assert out[3].proto == -Err.ERANGE
    assert moe.stats()["ds_pages"] == 5


def test_a_pinned_dataspace_larger_than_ram_fails_and_gives_its_frames_back() -> None:
    """When sigma0 runs out of frames, CREATE_DS PINNED answers -ENOMEM and keeps nothing."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        out.append((await create(env, mem_of(env), MemOp.CREATE_DS, 2 << 20, RW | DsFlag.PINNED, 0))[0])
        out.append(await call(env, mem_of(env), MEM_ALLOC, MemOp.QUOTA))
        return 0

    _, moe = boot(main, quota=8 << 20, ram=1 << 20)
    assert out[0].proto == -Err.ENOMEM and out[0].items == ()
    s = moe.stats()
    assert s["frames"] > 0 and s["frames_used"] == 0 and s["dataspaces"] == 0
    assert out[1].words[1] == 2 * OBJECT_CHARGE  # only the first program's log and namespace


def test_deleting_a_dataspace_capability_frees_its_frames_and_quota() -> None:
    """The last capability of a dataspace deleted, its frames and its charge go back."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        before = (await quota(env, mem), moe_box[0].stats())
        ds = await create_ds(env, mem, 4 * PAGE)
        for i in range(4):
            await map_page(env, ds, i * PAGE, VA + i * PAGE, write=True)
        out.append(moe_box[0].stats()["frames_used"] - before[1]["frames_used"])
        await env.task.delete(ds)
        after = (await quota(env, mem), moe_box[0].stats())
        out.append((before, after))
        return 0

    moe_box: list[Moe] = []
    k = Kernel(Machine(cores=1, seed=0, ram=16 << 20))
    moe_box.append(boot_moe(k, main))
    k.run(max_events=1_000_000)
    assert out[0] == 4
    (q0, s0), (q1, s1) = out[1]
    assert q1 == q0
    assert s1["frames_used"] == s0["frames_used"] and s1["dataspaces"] == s0["dataspaces"]


def test_bad_create_arguments_are_rejected() -> None:
    """CREATE_DS of size 0 or with unknown flags is -EINVAL; an unknown op is -ENOSYS."""
    out: list[int] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        out.append((await create(env, mem, MemOp.CREATE_DS, 0, RW, 0))[0].proto)
        out.append((await create(env, mem, MemOp.CREATE_DS, PAGE, 0x80, 0))[0].proto)
        out.append((await call(env, mem, MEM_ALLOC, 99)).proto)
        out.append((await call(env, mem, DATASPACE, DsOp.INFO)).proto)  # wrong protocol for a session
        return 0

    _, moe = boot(main)
    assert out == [-Err.EINVAL, -Err.EINVAL, -Err.ENOSYS, -Err.ENOSYS]
    assert moe.stats()["dataspaces"] == 0


def test_a_create_whose_answer_cannot_be_delivered_is_undone() -> None:
    """A client that calls CREATE_DS without a receive buffer gets an error and moe keeps nothing."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        before = await quota(env, mem)
        out.append(await call(env, mem, MEM_ALLOC, MemOp.CREATE_DS, PAGE, RW, 0))
        out.append((before, await quota(env, mem)))
        return 0

    _, moe = boot(main)
    assert out[0].error == IpcErr.REMSGCUT
    assert out[1][0] == out[1][1]
    assert moe.stats()["dataspaces"] == 0


# =========================================================================== sessions and quota
def test_quota_reports_limit_and_use_and_sessions_charge_their_parent() -> None:
    """QUOTA gives (limit, used); a sub-session's quota is charged to the session that made it."""
    out: list[tuple[int, ...]] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        out.append(await quota(env, mem))
        _, sub = await create(env, mem, MemOp.CREATE_SESSION, 64 << 10)
        out.append(await quota(env, mem))
        out.append(await quota(env, sub))
        await create_ds(env, sub, 5 * PAGE)
        out.append(await quota(env, sub))
        out.append(await quota(env, mem))
        return 0

    boot(main, quota=1 << 20)
    base = 2 * OBJECT_CHARGE  # the first program's log stream and namespace
    assert out[0] == (1 << 20, base)
    assert out[1] == (1 << 20, base + OBJECT_CHARGE + (64 << 10))
    assert out[2] == (64 << 10, 0)
    assert out[3] == (64 << 10, OBJECT_CHARGE + 5 * PAGE)
    assert out[4] == out[1]  # the parent pays the reservation, not the sub-session's objects


def test_quota_exhaustion_is_enomem_and_leaves_other_clients_alone() -> None:
    """A client over its quota gets -ENOMEM, its use unchanged; another client still allocates."""
    out: list[Any] = []

    async def greedy(env: Env) -> int:
        mem = mem_of(env)
        out.append((await create(env, mem, MemOp.CREATE_DS, 12 * PAGE, RW, 0))[0].proto)
        before = await quota(env, mem)
        out.append((await create(env, mem, MemOp.CREATE_DS, 8 * PAGE, RW, 0))[0].proto)
        out.append((await create(env, mem, MemOp.CREATE_SESSION, 8 * PAGE))[0].proto)
        out.append(before == await quota(env, mem))
        await env.cap("done").send(0)
        return 0

    async def modest(env: Env) -> int:
        mem = mem_of(env)
        ds = await create_ds(env, mem, 12 * PAGE)
        out.append((await map_page(env, ds, 11 * PAGE, VA, write=True)).proto)
        await env.cap("done").send(0)
        return 0

    async def main(env: Env) -> int:
        done = await env.factory.create_gate(env.thread, 0x40)
        for name, fn in (("greedy", greedy), ("modest", modest)):
            _, sess = await create(env, mem_of(env), MemOp.CREATE_SESSION, 16 * PAGE)
            await start_program(env, name, fn, caps={"done": done}, grants={"mem": Gate(env, sess)}, prio=50)
            await env.wait()
        return 0

    boot(main)
    assert out == [0, -Err.ENOMEM, -Err.ENOMEM, True, 0]


def test_a_session_capability_without_w_may_ask_its_quota_but_not_create() -> None:
    """Creating needs the W right on the session capability; QUOTA does not."""
    out: list[int] = []

    async def main(env: Env) -> int:
        ro = env.alloc_slot()
        await env.task.map(env.task, Fpage.obj(mem_of(env), 0, Rights.R), ro)
        out.append((await create(env, ro, MemOp.CREATE_DS, PAGE, RW, 0))[0].proto)
        out.append((await create(env, ro, MemOp.CREATE_NS))[0].proto)
        out.append((await call(env, ro, MEM_ALLOC, MemOp.QUOTA)).proto)
        return 0

    boot(main)
    assert out == [-Err.EPERM, -Err.EPERM, 0]


# =========================================================================== namespaces
def test_namespace_register_query_and_use_the_capability() -> None:
    """A registered capability comes back from QUERY and works."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), 3 * PAGE)
        out.append(await register(env, ns_of(env), b"shared/buffer", ds))
        msg, slot = await query(env, ns_of(env), b"shared/buffer")
        out.append(msg)
        out.append(await info(env, slot))
        return 0

    _, moe = boot(main)
    assert out[0].proto == 0
    assert out[1].proto == 0 and out[1].words == (1,) and len(out[1].items) == 1
    assert out[2].words == (3 * PAGE, RW, 0)
    assert moe.stats()["entries"] == 1


def test_namespace_query_of_a_missing_name_is_enoent() -> None:
    """QUERY of a name nobody registered answers -ENOENT and no capability."""
    out: list[Msg] = []

    async def main(env: Env) -> int:
        out.append((await query(env, ns_of(env), b"nothing"))[0])
        return 0

    boot(main)
    assert out[0].proto == -Err.ENOENT and out[0].items == ()


def test_namespace_unlink_removes_the_name_and_revokes_handed_out_copies() -> None:
    """After UNLINK the name is gone and capabilities QUERY gave out are revoked."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        ns = ns_of(env)
        ds = await create_ds(env, mem_of(env), PAGE)
        await register(env, ns, b"x", ds)
        _, copy = await query(env, ns, b"x")
        out.append((await call(env, ns, NAMESPACE, NsOp.UNLINK, *pack_bytes(b"x"))).proto)
        out.append((await query(env, ns, b"x"))[0].proto)
        out.append((await env.task.cap_info(copy))[0])
        out.append((await env.task.cap_info(ds))[0])  # the registrant's own capability stays
        out.append((await call(env, ns, NAMESPACE, NsOp.UNLINK, *pack_bytes(b"x"))).proto)
        return 0

    _, moe = boot(main)
    assert out == [0, -Err.ENOENT, 0, 1, -Err.ENOENT]
    assert moe.stats()["entries"] == 0


def test_namespace_register_errors() -> None:
    """REGISTER of a taken name is -EEXIST, without a capability -EINVAL, through a
    capability without W -EPERM."""
    out: list[int] = []

    async def main(env: Env) -> int:
        ns = ns_of(env)
        ds = await create_ds(env, mem_of(env), PAGE)
        out.append((await register(env, ns, b"a", ds)).proto)
        out.append((await register(env, ns, b"a", ds)).proto)
        out.append((await call(env, ns, NAMESPACE, NsOp.REGISTER, 0, *pack_bytes(b"b"))).proto)
        ro = env.alloc_slot()
        await env.task.map(env.task, Fpage.obj(ns, 0, Rights.R), ro)
        out.append((await register(env, ro, b"c", ds)).proto)
        return 0

    _, moe = boot(main)
    assert out == [0, -Err.EEXIST, -Err.EINVAL, -Err.EPERM]
    assert moe.stats()["entries"] == 1


def test_register_flags_limit_the_rights_queriers_get() -> None:
    """An entry registered with rights R hands out a capability without W."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        await register(env, ns_of(env), b"ro", ds, flags=Rights.R)
        _, slot = await query(env, ns_of(env), b"ro")
        out.append((await env.task.cap_info(slot))[2])
        out.append((await map_page(env, slot, 0, VA, write=True)).proto)
        return 0

    boot(main)
    assert out == [Rights.R, -Err.EPERM]


# =========================================================================== logs
def test_log_lines_are_tagged_per_client() -> None:
    """Each log stream's lines reach the console prefixed with its own tag; partial
    writes are joined into whole lines."""

    async def main(env: Env) -> int:
        await env.print("hello from init")
        _, log = await create(env, mem_of(env), MemOp.CREATE_LOG, *pack_bytes(b"second"))
        await log_write(env, log, b"a\nb")
        await log_write(env, log, b"c\n")
        await env.print("bye")
        return 0

    k, moe = boot(main)
    lines = k.machine.uart.text().splitlines()
    assert lines == ["init    | hello from init", "second  | a", "second  | bc", "init    | bye"]
    assert moe.log_lines == 4


def test_log_streams_of_two_tasks_keep_their_tags() -> None:
    """Programs in two tasks, each with its own log stream in slot 5, print tagged lines."""

    async def client(env: Env) -> int:
        await env.print(f"I am {env.args[0] if env.args else 'client'}")
        await env.cap("done").send(0)
        return 0

    async def main(env: Env) -> int:
        done = await env.factory.create_gate(env.thread, 0x40)
        for tag in (b"alpha", b"beta"):
            _, log = await create(env, mem_of(env), MemOp.CREATE_LOG, *pack_bytes(tag))
            await start_program(env, tag.decode(), client, caps={"done": done}, grants={"log": Gate(env, log)},
                                prio=50)
            await env.wait()
        return 0

    k, _ = boot(main)
    assert k.machine.uart.text().splitlines() == ["alpha   | I am client", "beta    | I am client"]


def test_log_write_needs_w_and_a_tag_is_required() -> None:
    """WRITE through a log capability without W is -EPERM; CREATE_LOG with an empty tag -EINVAL."""
    out: list[int] = []

    async def main(env: Env) -> int:
        ro = env.alloc_slot()
        await env.task.map(env.task, Fpage.obj(5, 0, Rights.R), ro)
        out.append((await log_write(env, ro, b"nope\n")).proto)
        out.append((await create(env, mem_of(env), MemOp.CREATE_LOG, *pack_bytes(b"")))[0].proto)
        return 0

    k, _ = boot(main)
    assert out == [-Err.EPERM, -Err.EINVAL]
    assert "nope" not in k.machine.uart.text()


def test_colourize_gives_each_tag_a_stable_colour() -> None:
    """colourize colours tagged lines by a CRC of the tag, the same on every call; other lines stay."""
    text = "alpha  | one\nbeta   | two\nplain line\nalpha  | three\n"
    out = colourize(text)
    assert out == colourize(text)
    a, b = tag_colour("alpha"), tag_colour("beta")
    assert a == PALETTE[zlib.crc32(b"alpha") % len(PALETTE)] and b == PALETTE[zlib.crc32(b"beta") % len(PALETTE)]
    lines = out.splitlines()
    assert lines[0] == f"\x1b[{a}malpha  | one\x1b[0m"
    assert lines[1] == f"\x1b[{b}mbeta   | two\x1b[0m"
    assert lines[2] == "plain line"
    assert lines[3].startswith(f"\x1b[{a}m")


def test_the_models_console_output_has_no_escape_codes() -> None:
    """Colour is the terminal's business: moe's console lines carry the tag, never ANSI codes."""

    async def main(env: Env) -> int:
        await env.print("plain")
        return 0

    k, _ = boot(main)
    assert "\x1b" not in k.machine.uart.text()
    assert k.machine.uart.text() == "init    | plain\n"


# =========================================================================== subsystem death
def _dying_client_system(out: list[Any], moe_box: list[Moe], k_box: list[Kernel]) -> Main:
    """A main program that starts a client, lets it allocate everything moe offers, kills it."""

    async def client(env: Env) -> int:
        mem = mem_of(env)
        ds = await create_ds(env, mem, 3 * PAGE)
        for i in range(3):
            await map_page(env, ds, i * PAGE, VA + i * PAGE, write=True)
            await env.mem.write(VA + i * PAGE, b"client data")
        await create_ds(env, mem, 2 * PAGE, RW | DsFlag.PINNED)
        _, ns = await create(env, mem, MemOp.CREATE_NS)
        await register(env, ns, b"mine", ds)
        await register(env, env.cap("shared_ns").slot, b"published", ds)  # into main's namespace
        _, log = await create(env, mem, MemOp.CREATE_LOG, *pack_bytes(b"dying"))
        await log_write(env, log, b"last words\nunfinished")
        await create(env, mem, MemOp.CREATE_SESSION, 4 * PAGE)
        await env.cap("done").send(0)
        await env.wait()  # alive until killed
        return 0

    async def main(env: Env) -> int:
        moe = moe_box[0]
        mem = mem_of(env)
        before = (moe.stats(), await quota(env, mem))
        done = await env.factory.create_gate(env.thread, 0x40)
        _, sess = await create(env, mem, MemOp.CREATE_SESSION, 64 * PAGE)
        task, th = await start_program(env, "client", client, caps={"done": done, "shared_ns": Gate(env, ns_of(env))},
                                       grants={"mem": Gate(env, sess)}, prio=50)
        await env.wait()
        _, seen = await query(env, ns_of(env), b"published")
        await map_page(env, seen, 0, VB)  # main maps the client's page too
        alive = (moe.stats(), await quota(env, mem), await env.mem.read(VB, 11),
                 VB >> 12 in task_named(k_box[0], "init").vspace.pages)
        await env.task.delete(task.slot)
        await env.task.delete(th.slot)
        after = (moe.stats(), await quota(env, mem), (await query(env, ns_of(env), b"published"))[0].proto,
                 VB >> 12 in task_named(k_box[0], "init").vspace.pages)
        out.extend([before, alive, after])
        return 0

    return main


def _run_dying_client() -> tuple[Kernel, Moe, list[Any]]:
    out: list[Any] = []
    k = Kernel(Machine(cores=1, seed=0, ram=16 << 20))
    moe = boot_moe(k, _dying_client_system(out, moe_box := [], [k]))
    moe_box.append(moe)
    k.run(max_events=2_000_000)
    return k, moe, out


def test_a_dead_clients_memory_objects_and_session_all_return_to_moe() -> None:
    """When a client's task is deleted, moe frees its session, dataspaces, namespace,
    log and sub-session, and its frame use and the parent's quota return to where they were."""
    _, _, out = _run_dying_client()
    (s0, q0), (s1, q1, data, mapped), (s2, q2, _, _) = out
    assert data == b"client data" and mapped  # while alive: shared and mapped
    assert s1["frames_used"] - s0["frames_used"] == 5
    assert (s1["sessions"], s1["dataspaces"], s1["namespaces"], s1["logs"], s1["entries"]) == (
        s0["sessions"] + 2, s0["dataspaces"] + 2, s0["namespaces"] + 1, s0["logs"] + 1, s0["entries"] + 2)
    assert q1[1] > q0[1]
    for key in ("frames_used", "sessions", "dataspaces", "namespaces", "logs", "entries", "ds_pages", "jobs"):
        assert s2[key] == s0[key], key
    assert s2["frames_free"] == s2["frames"] - s0["frames_used"]
    assert q2 == q0


def test_a_dead_clients_pages_are_revoked_from_everyone_it_shared_them_with() -> None:
    """A page of the dead client's dataspace that another task had mapped is unmapped there,
    and the name it published is gone."""
    _, _, out = _run_dying_client()
    _, (_, _, _, mapped_alive), (_, _, published, mapped_after) = out
    assert mapped_alive and not mapped_after
    assert published == -Err.ENOENT


def test_a_dead_clients_unfinished_log_line_is_flushed() -> None:
    """The log stream of a dead client writes out its last, unterminated line."""
    k, _, _ = _run_dying_client()
    lines = k.machine.uart.text().splitlines()
    assert lines == ["dying   | last words", "dying   | unfinished"]


def test_client_death_is_deterministic() -> None:
    """Two runs of the dying-client system give the same console, the same stats, the same time."""
    k1, m1, o1 = _run_dying_client()
    k2, m2, o2 = _run_dying_client()
    assert k1.machine.uart.text() == k2.machine.uart.text()
    assert m1.stats() == m2.stats() and o1 == o2
    assert k1.now() == k2.now()


def test_a_gate_that_outlives_its_session_answers_enoent() -> None:
    """A dataspace whose session died is freed even if its capability survives elsewhere:
    the surviving gate answers -ENOENT."""
    out: list[int] = []

    async def client(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        # grant: moe's namespace entry becomes the dataspace's only capability
        await register(env, env.cap("shared_ns").slot, b"orphan", ds, grant=True)
        await env.cap("done").send(0)
        await env.wait()
        return 0

    async def main(env: Env) -> int:
        done = await env.factory.create_gate(env.thread, 0x40)
        _, sess = await create(env, mem_of(env), MemOp.CREATE_SESSION, 16 * PAGE)
        task, _ = await start_program(env, "client", client, caps={"done": done, "shared_ns": Gate(env, ns_of(env))},
                                      grants={"mem": Gate(env, sess)}, prio=50)
        await env.wait()
        _, ds = await query(env, ns_of(env), b"orphan")
        out.append((await info(env, ds)).proto)
        await env.task.delete(task.slot)
        out.append((await info(env, ds)).proto)
        out.append((await map_page(env, ds, 0, VA)).proto)
        return 0

    _, moe = boot(main)
    assert out == [0, -Err.ENOENT, -Err.ENOENT]
    assert moe.stats()["dataspaces"] == 0


def test_moe_threads_keep_serving_after_everything() -> None:
    """After the dying-client system, moe's server and copy worker wait for work, unfaulted."""
    k, _, _ = _run_dying_client()
    for name in ("moe", "moe-copy", "sigma0"):
        th = next(t for t in k.threads if t.name == name)
        assert th.state is TS.RECV and not th.faulted, name


def test_hostile_copy_in_requests_do_not_disturb_moe() -> None:
    """A COPY_IN sent without waiting for the answer, and one whose source range runs past
    2**64, leave moe serving: the next proper COPY_IN works."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        src = await create_ds(env, mem, PAGE)
        dst = await create_ds(env, mem, PAGE)
        await map_page(env, src, 0, VA, write=True)
        await env.mem.write(VA, b"payload")
        item = (MapItem(Fpage.obj(src)),)
        out.append((await env.ipc(Ipc(dst, 0x1, DATASPACE, (DsOp.COPY_IN, 0, 0, 7), item))).error)  # send only
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, (1 << 64) - 4, 7, items=item)).proto)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, 0, 7, items=item)).proto)
        await map_page(env, dst, 0, VB)
        out.append(await env.mem.read(VB, 7))
        return 0

    k, moe = boot(main)
    assert out == [0, -Err.ERANGE, 0, b"payload"]
    assert moe.stats()["jobs"] == 0
    assert not next(t for t in k.threads if t.name == "moe").faulted


def test_a_client_on_another_core_is_served() -> None:
    """A program on core 1 creates, maps and writes a dataspace served by moe on core 0."""
    out: list[Any] = []

    async def client(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        out.append((await map_page(env, ds, 0, VA, write=True)).proto)
        await env.mem.write(VA, b"core one")
        out.append(await env.mem.read(VA, 8))
        return 0

    async def main(env: Env) -> int:
        _, sess = await create(env, mem_of(env), MemOp.CREATE_SESSION, 4 * PAGE)
        await start_program(env, "client", client, grants={"mem": Gate(env, sess)}, prio=50, cpu=1)
        return 0

    k = Kernel(Machine(cores=2, seed=0, ram=16 << 20))
    boot_moe(k, main)
    assert k.run(max_events=1_000_000) == "idle"
    assert out == [0, b"core one"]
    assert next(t for t in k.threads if t.name == "client").cpu == 1


def test_a_source_that_takes_its_page_back_fails_the_copy_but_not_moe() -> None:
    """A foreign 'dataspace' that maps a page for COPY_IN and revokes it before moe reads it
    gets the copy refused with -EINVAL; moe's copy worker survives and copies again."""
    out: list[Any] = []

    async def treacherous(env: Env) -> int:
        msg = await env.wait()
        while True:
            if msg.error:
                msg = await env.wait()
                continue
            # lend a page of this task (main's mapping of a real dataspace) and take it back at once
            await env.reply(0, items=(MapItem(Fpage.mem(VA, 12)),))
            await env.task.unmap(Fpage.mem(VA, 12))
            msg = await env.wait()

    async def main(env: Env) -> int:
        mem = mem_of(env)
        src = await create_ds(env, mem, PAGE)
        dst = await create_ds(env, mem, PAGE)
        await map_page(env, src, 0, VA, write=True)
        await env.mem.write(VA, b"genuine")
        th = await env.spawn(treacherous, name="treacherous", prio=200, pager=0)
        fake = await env.factory.create_gate(th, 0x80)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, 0, 7,
                               items=(MapItem(fake.fpage()),))).proto)
        out.append((await call(env, dst, DATASPACE, DsOp.COPY_IN, 0, 0, 7,
                               items=(MapItem(Fpage.obj(src)),))).proto)
        await map_page(env, dst, 0, VB)
        out.append(await env.mem.read(VB, 7))
        return 0

    k, _ = boot(main)
    assert out == [-Err.EINVAL, 0, b"genuine"]
    worker = next(t for t in k.threads if t.name == "moe-copy")
    assert worker.state is TS.RECV and not worker.faulted


def test_when_ram_runs_out_map_is_enomem_and_freed_frames_serve_again() -> None:
    """With every frame of RAM in use MAP answers -ENOMEM; after a dataspace is freed its
    frames back a new one, without asking sigma0 again."""
    out: list[Any] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        a = await create_ds(env, mem, 2 << 20)
        n = 0
        while (ans := await map_page(env, a, n * PAGE, VA + n * PAGE, write=True)).proto == 0:
            n += 1
        out.extend([n, ans.proto, (await map_page(env, a, n * PAGE, VA + n * PAGE)).proto])
        frames = moe_box[0].stats()["frames"]
        await env.task.delete(a)
        b = await create_ds(env, mem, 2 << 20)
        out.append([(await map_page(env, b, i * PAGE, VB + i * PAGE)).proto for i in range(n)])
        out.append((frames, moe_box[0].stats()["frames"]))
        return 0

    moe_box: list[Moe] = []
    k = Kernel(Machine(cores=1, seed=0, ram=1 << 20))
    moe_box.append(boot_moe(k, main, quota=8 << 20))
    assert k.run(max_events=2_000_000) == "idle"
    n, err1, err2, again, (frames_then, frames_now) = out
    assert 200 < n < 256  # 1 MiB of RAM, less what sigma0 keeps back and moe's own needs
    assert err1 == err2 == -Err.ENOMEM
    assert again == [0] * n
    assert frames_then == frames_now == n


# =========================================================================== bad requests
def test_random_junk_to_every_object_is_answered_and_moe_serves_on() -> None:
    """Four hundred calls with random protocols, operations, word counts and values (the top of the
    word range among them), random capabilities as items and random receive buffers, to moe's
    session, namespace, log stream, a dataspace, a sub-session and what they handed out: each is
    answered, none with -EIO (every refusal is one moe decided), and a new dataspace works afterwards."""
    rng = random.Random(11)
    values = [0, 1, 2, 3, 4, 5, 4096, 8191, 8192, 1 << 40, 1 << 63, (1 << 64) - 4096, (1 << 64) - 1]
    out: list[Msg] = []

    async def main(env: Env) -> int:
        mem = mem_of(env)
        ds = await create_ds(env, mem, 2 * PAGE)
        sub = (await create(env, mem, MemOp.CREATE_SESSION, 1 << 20))[1]
        targets = [mem, ns_of(env), 5, ds, sub]
        for i in range(400):
            words = (rng.choice([0, 1, 2, 3, 4, 5, 9]),
                     *(rng.choice([*values, rng.randrange(1 << 64)]) for _ in range(rng.choice([0, 1, 2, 3, 4, 8]))))
            items = (MapItem(Fpage.obj(rng.choice([*targets, 1, 3]))),) if rng.random() < 0.3 else ()
            c = rng.random()
            rcv: tuple[Fpage, ...] = ((Fpage.obj(env.alloc_slot()),) if c < 0.5 else
                                      (Fpage.mem(0x3000_0000 + i * PAGE, 12),) if c < 0.7 else ())
            proto = rng.choice([DATASPACE, LOG, MEM_ALLOC, NAMESPACE, 0, -1, -2])
            r = await call(env, rng.choice(targets), proto, *words, items=items, rcv=rcv)
            out.append(r)
            if r.items and type(rcv[0]) is Fpage and rcv[0].kind == 3:
                targets.append(rcv[0].base)
        fresh = await create_ds(env, mem, PAGE)
        await map_page(env, fresh, 0, VA, write=True)
        await env.mem.write(VA, b"after")
        await map_page(env, fresh, 0, VB)
        out.append(await env.mem.read(VB, 5))  # type: ignore[arg-type]
        return 0

    k, _ = boot(main)
    answers = out[:-1]
    # answered: an answer carrying an object into a memory window (or none) fails to arrive, and moe
    # takes the object back; no call is left without an answer
    assert len(answers) == 400
    assert {m.error for m in answers} <= {0, IpcErr.REMAPFAILED, IpcErr.REMSGCUT}
    assert -Err.EIO not in {m.proto for m in answers}
    assert {m.proto for m in answers} >= {0, -Err.EINVAL, -Err.ENOSYS, -Err.ERANGE}
    assert out[-1] == b"after"
    assert "moe: request" not in k.machine.uart.text()
    for name in ("moe", "moe-copy"):
        th = next(t for t in k.threads if t.name == name)
        assert th.state is TS.RECV and not th.faulted, name


def test_a_request_that_raises_in_moe_is_answered_eio(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence, with a fault injected into the namespace handler: the QUERY that
    raised is -EIO, the console has one line naming moe, the request and the exception, and moe
    goes on serving the namespace and everything else."""
    real = MoeServer.namespace

    async def broken(self: MoeServer, ns: Any, w: tuple[int, ...], write: bool, msg: Msg,
                     item: int | None) -> Any:
        if w[0] == NsOp.QUERY and unpack_bytes(w[1:]) == b"boom":
            raise RuntimeError("injected")
        return await real(self, ns, w, write, msg, item)

    monkeypatch.setattr(MoeServer, "namespace", broken)
    out: list[Any] = []

    async def main(env: Env) -> int:
        ds = await create_ds(env, mem_of(env), PAGE)
        out.append((await query(env, ns_of(env), b"boom"))[0].proto)
        out.append((await register(env, ns_of(env), b"ds", ds)).proto)
        out.append((await query(env, ns_of(env), b"ds"))[0].proto)
        return 0

    k, _ = boot(main)
    assert out == [-Err.EIO, 0, 0]
    lines = [ln for ln in k.machine.uart.text().splitlines() if ln.startswith("moe: ")]
    assert len(lines) == 1
    assert re.fullmatch(r"moe: request proto 0x4002 op 0x0 on label 0x\w+ \(3 words, 0 items\) failed: "
                        r"RuntimeError: injected \(test_moe\.py:\d+\); answered -EIO", lines[0])
