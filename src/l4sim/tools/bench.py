"""Benchmarks: how fast the model runs on the host (wall-clock, not simulated).

``ipc``: call / reply-and-wait round trips per second between two native
threads in two tasks, against a *bare* baseline: the leanest loop two
coroutines can run -- each awaits a one-line trap that yields a tuple, and a
dispatch loop passes each one's tuple to the other and does nothing else.
The ratio bare/ours is the price of the kernel *and* the user library per
round trip; it is the figure to keep small.  A third figure, ``library``,
drives the very client and server coroutines of the kernel benchmark
(built on ``l4sim.user``, issuing real trap objects) through such a loop
with no kernel: what the library alone costs.

``mem``: wall-clock cost of the mapping database (pages), two parts.

(a) map + touch + unmap of ``pages`` distinct pages, *through a real program*
    (not the host-side kernel API).  sigma0 (the runtime's server,
    :func:`l4sim.runtime.sigma0.sigma0`) and a root task whose pager it is
    boot on one core; the root task

    - *maps*: asks sigma0 for RAM with the sigma0 protocol (REQ_FPAGE_RAM, an
      explicit physical flexpage of at most 1024 pages per request), so every
      page arrives as part of an IPC map item through the kernel's real path
      (``_plan_map`` / ``_perform_map`` -> ``sigma0_root`` + ``mem_map``) into
      the receive window; the time includes the IPC round trips and sigma0's
      own user-level bookkeeping (the set of frames it gave out);
    - *touches*: one ``env.mem.write`` of one byte to every page, i.e. one
      MemAccess trap per page through the kernel's access path (``_sys_mem``:
      rights check in the page table, then a copy into the frame); every page
      is mapped, so no page fault happens;
    - *unmaps*: ``task.unmap(fpage, include_self=True)`` on itself, one call
      per chunk (``_inv_task`` UNMAP -> ``mdb_remove`` of each page's node).

    Each phase is timed inside the program with ``time.perf_counter`` between
    its traps: the figure is the kernel plus the two programs' Python, not
    the boot.  One run, not a best-of.  The host's lazy allocation of RAM
    (the first store to each 4 KiB of the mmap is a host page fault, ~10 us
    in a sandboxed VM) is taken out by writing every client frame once
    before the run; that cost is reported on its own
    (``host_os_first_touch_ns_per_page``).  For comparison the same work is
    also done host-side with the kernel API alone (``sigma0_root`` +
    ``mem_map`` per page, ``write_frames``, ``mdb_remove`` per page: no traps,
    no IPC, no sigma0 program), reported as ``host_*``.

(b) recursive revocation.  Trees of mappings of one page are built host-side
    with ``sigma0_root`` / ``mem_map`` (untimed); only the single
    ``mdb_remove(root, include_self=False)`` that removes everything derived
    from sigma0's root is timed.  Fan-out tree: 100 children, each in its own
    task, each mapped on to ``n/100 - 1`` grandchildren spread over those
    tasks: ``n`` mappings in all, for ``n`` = pages/10 and pages (10k and 100k
    by default; the JSON keys keep the default names).  Chain: pages/10
    mappings, each derived from the one before, alternating between two
    tasks.  Best of ``repeat`` runs (rebuilt each time; the garbage collector
    runs before and stays enabled during the timed call).  Linear revocation
    means a growth ``revoke_100k_s / revoke_10k_s`` near 10.

``rt``: scheduling events (job releases, replenishments, context switches)
simulated per wall-clock second for the fixed 20-task set of
:func:`l4sim.realtime.sim.bench_taskset` over 10 s of simulated time, under
FP and EDF (:func:`l4sim.realtime.sim.bench_rt`), and in the same run SimSo's
figure for the same set and time when SimSo is importable
(:func:`l4sim.tools.simso_compare.bench_simso`; its events are job
activations plus dispatches, the nearest it records to ours), else why not.

Each benchmark takes an optional ``progress(done, total, step)`` callback, called as each
of its ``total`` steps starts (``done`` finished so far, ``step`` naming the one starting):
``l4sim bench`` draws it as a progress bar on a terminal.

Wall-clock time is read here, in a tool, never inside the model.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Coroutine, Generator
from types import coroutine
from typing import Any

from l4sim.kernel.abi import Fpage, MemRights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Task
from l4sim.kernel.traps import Msg
from l4sim.kernel.vspace import MemMap, write_frames
from l4sim.machine.board import Machine
from l4sim.machine.memory import DEFAULT_RAM, PAGE_SHIFT
from l4sim.user.env import INITIAL, Env, TaskLocal, start_task

#: ``progress(done, total, step)``: step ``done + 1`` of ``total``, named ``step``, starts now
Progress = Callable[[int, int, str], None]


def _quiet(done: int, total: int, step: str) -> None:
    """The progress callback when nobody watches."""


async def _server(env: Env) -> int:
    msg = await env.wait()
    while True:
        msg = await env.reply_and_wait(0, msg.words[0] + 1)


async def _client(env: Env, n: int, box: list[float]) -> int:
    gate = env.cap("server")
    t0 = time.perf_counter()
    for i in range(n):
        await gate.call(1, i)
    box.append(time.perf_counter() - t0)
    return 0


def kernel_round_trips(n: int) -> float:
    """Round trips per wall-clock second through the kernel."""
    box: list[float] = []

    async def root(env: Env) -> int:
        srv = await env.spawn(_server, name="server", prio=20)
        gate = await env.factory.create_gate(srv, 0x10)
        await start_task(env, "client", _client, {"server": gate}, prio=10, args=(n, box))
        return 0

    machine = Machine(cores=1)
    k = Kernel(machine)
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))))
    k.run()
    assert box, "the client did not finish"
    return n / box[0]


@coroutine
def _lean_trap(x: Any) -> Generator[Any, Any, Any]:
    return (yield x)


async def _lean_client(n: int, box: list[float]) -> None:
    t0 = time.perf_counter()
    for i in range(n):
        await _lean_trap((1, i))
    box.append(time.perf_counter() - t0)


async def _lean_server() -> None:
    msg = await _lean_trap(None)
    while True:
        msg = await _lean_trap((0, msg[1] + 1))


def bare_round_trips(n: int) -> float:
    """Round trips per second of the leanest loop two coroutines can run: a tuple each way."""
    box: list[float] = []
    c: Coroutine[Any, Any, Any] = _lean_client(n, box)
    s: Coroutine[Any, Any, Any] = _lean_server()
    s.send(None)
    val: Any = None
    try:
        while True:
            val = s.send(c.send(val))
    except StopIteration:
        pass
    s.close()
    return n / box[0]


def library_round_trips(n: int) -> float:
    """Round trips per second of the same two programs with no kernel in between.

    The client and server coroutines are the very ones the kernel benchmark
    runs, built on the same user library; the loop just passes each trap's
    message to the other side as the answer of its pending trap.
    """
    box: list[float] = []
    local = TaskLocal({**INITIAL, "server": 8})
    c: Coroutine[Any, Any, Any] = _client(Env(local), n, box)
    s: Coroutine[Any, Any, Any] = _server(Env(local))
    s.send(None)  # the server waits
    val: Any = None
    try:
        while True:
            trap = c.send(val)  # the client calls
            trap = s.send(Msg(0, trap.proto, trap.words, 0x13))  # the server replies and waits
            val = Msg(0, trap.proto, trap.words, 0)
    except StopIteration:
        pass
    s.close()
    return n / box[0]


def bench_ipc(n: int = 200_000, repeat: int = 3, progress: Progress = _quiet) -> dict[str, float]:
    """Best of ``repeat`` runs of each, and the ratio bare/kernel."""
    total = 3 * repeat
    runs: dict[str, list[float]] = {"kernel": [], "bare": [], "library": []}
    label = {"kernel": "kernel IPC", "bare": "bare loop", "library": "library loop"}
    step = 0
    for what, fn in (("kernel", kernel_round_trips), ("bare", bare_round_trips),
                     ("library", library_round_trips)):
        for i in range(repeat):
            progress(step, total, f"{label[what]}, run {i + 1} of {repeat}")
            runs[what].append(fn(n))
            step += 1
    ours, bare, lib = (max(runs[w]) for w in ("kernel", "bare", "library"))
    return {"round_trips_per_s": round(ours), "bare_round_trips_per_s": round(bare),
            "library_round_trips_per_s": round(lib), "ratio": round(bare / ours, 3)}


# ----------------------------------------------------------------- memory

#: first physical frame handed to the benchmark client (aligned to a chunk)
_FIRST_PFN = 1 << 10
#: where the client maps its memory (virtual page number)
_FIRST_VPN = 1 << 16
#: pages per sigma0 request / per unmap (log2)
_CHUNK_ORDER = 10
#: children of the root in the fan-out tree
_FANOUT = 100


def _chunks(npages: int, order: int = _CHUNK_ORDER) -> list[tuple[int, int]]:
    """(first page offset, log2 pages) pieces covering ``npages``, largest first.

    Full chunks of ``2**order`` pages, then the rest in descending powers of
    two, so every piece is aligned to its own size.
    """
    out: list[tuple[int, int]] = []
    off = 0
    o = order
    while off < npages:
        while (1 << o) > npages - off:
            o -= 1
        out.append((off, o))
        off += 1 << o
    return out


def _machine_for(npages: int, box: dict[str, float]) -> Machine:
    """A one-core machine with RAM for ``npages`` client frames, pre-faulted.

    The host backs RAM with an anonymous mmap that it fills lazily: the first
    store to each 4 KiB costs a host page fault (about 11 us in a sandboxed
    VM), which would swamp the model's own cost.  The client frames are
    written once here, untimed by the benchmark; the time it took is
    returned in ``box["prefault"]`` for the record.
    """
    ram = max(DEFAULT_RAM, (_FIRST_PFN + npages + 1024) << PAGE_SHIFT)
    ram = 1 << (ram - 1).bit_length()  # a power of two of bytes
    machine = Machine(cores=1, ram=ram)
    view = machine.mem.view
    t0 = time.perf_counter()
    for pfn in range(_FIRST_PFN, _FIRST_PFN + npages):
        view[pfn << PAGE_SHIFT] = 0
    box["prefault"] = time.perf_counter() - t0
    return machine


async def _mem_client(env: Env, npages: int, box: dict[str, float]) -> int:
    from l4sim.runtime.sigma0 import REQ_FPAGE_RAM, request

    pieces = _chunks(npages)
    clock = time.perf_counter
    t0 = clock()
    for off, order in pieces:
        phys = (_FIRST_PFN + off) << PAGE_SHIFT
        virt = (_FIRST_VPN + off) << PAGE_SHIFT
        r = await request(env, 4, REQ_FPAGE_RAM, Fpage.mem(phys, order + PAGE_SHIFT),
                          Fpage.mem(virt, order + PAGE_SHIFT))
        if r.error or r.proto or len(r.items) != 1 << order:
            raise RuntimeError(f"sigma0 mapped {len(r.items)} of {1 << order} pages "
                               f"(error {r.error}, label {r.proto})")
    t1 = clock()
    write = env.mem.write
    one = b"\x01"
    for vpn in range(_FIRST_VPN, _FIRST_VPN + npages):
        await write(vpn << PAGE_SHIFT, one)
    t2 = clock()
    removed = 0
    for off, order in pieces:
        removed += await env.task.unmap(Fpage.mem((_FIRST_VPN + off) << PAGE_SHIFT, order + PAGE_SHIFT),
                                        include_self=True)
    t3 = clock()
    if removed != npages:
        raise RuntimeError(f"unmap removed {removed} of {npages} pages")
    box.update(map=t1 - t0, touch=t2 - t1, unmap=t3 - t2)
    return 0


def program_map_touch_unmap(npages: int) -> dict[str, float]:
    """Seconds for each phase of (a) done by a program through sigma0 and traps."""
    from l4sim.runtime.sigma0 import sigma0

    pre: dict[str, float] = {}
    machine = _machine_for(npages, pre)
    k = Kernel(machine)
    box: dict[str, float] = {}
    nframes = machine.mem.nframes
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal({"task": 1, "thread": 3, "log": 5})), nframes))
    k.create_root("root", lambda sp: _mem_client(Env(TaskLocal(INITIAL)), npages, box), pager=s0)
    k.run()
    if not box:
        bad = [(t.name, t.exit_code) for t in k.threads if t.name == "root"]
        raise RuntimeError(f"the benchmark program did not finish: {bad}")
    root_task = next(t for t in k.tasks if t.name == "root")
    assert not root_task.vspace.pages, "pages left mapped after the unmap"
    return {**box, **pre}


def host_map_touch_unmap(npages: int) -> dict[str, float]:
    """Seconds for each phase of (a) done with the kernel API alone (no traps)."""
    pre: dict[str, float] = {}
    machine = _machine_for(npages, pre)
    mem = machine.mem
    k = Kernel(machine)
    s0 = k.create_task("sigma0")
    s0.vspace.sigma0 = True
    client = k.create_task("client")
    clock = time.perf_counter
    sigma0_root, mem_map, rwx = k.sigma0_root, k.mem_map, int(MemRights.RWX)
    t0 = clock()
    for i in range(npages):
        root = sigma0_root(s0, _FIRST_PFN + i)
        assert root is not None
        mem_map(root, client, _FIRST_VPN + i, rwx, False)
    t1 = clock()
    one = b"\x01"
    for vpn in range(_FIRST_VPN, _FIRST_VPN + npages):
        write_frames(mem, client, vpn << PAGE_SHIFT, one)
    t2 = clock()
    pages = client.vspace.pages
    for vpn in range(_FIRST_VPN, _FIRST_VPN + npages):
        k.mdb_remove(pages[vpn], include_self=True)
    t3 = clock()
    assert not pages, "pages left mapped after the unmap"
    return {"map": t1 - t0, "touch": t2 - t1, "unmap": t3 - t2, **pre}


def _revoke_setup() -> tuple[Kernel, Task, MemMap]:
    k = Kernel(Machine(cores=1))
    s0 = k.create_task("sigma0")
    s0.vspace.sigma0 = True
    root = k.sigma0_root(s0, _FIRST_PFN)
    assert root is not None
    return k, s0, root


def build_fan_tree(n: int, fanout: int = _FANOUT) -> tuple[Kernel, MemMap, int]:
    """A page mapped to ``fanout`` tasks, each mapping it on: about ``n`` mappings.

    Returns the kernel, sigma0's root mapping and the number of mappings
    derived from it.
    """
    k, _, root = _revoke_setup()
    c = max(1, min(fanout, n))
    g = max(0, n // c - 1)
    tasks = [k.create_task(f"t{i}") for i in range(c)]
    mem_map, rwx, rw = k.mem_map, int(MemRights.RWX), int(MemRights.RW)
    count = 0
    vpn = _FIRST_VPN
    for i in range(c):
        child = mem_map(root, tasks[i], _FIRST_VPN - 1, rwx, False)
        assert child is not None
        count += 1
        for j in range(g):
            gc_node = mem_map(child, tasks[(i + 1 + j) % c], vpn, rw, False)
            assert gc_node is not None
            vpn += 1
            count += 1
    return k, root, count


def build_chain(n: int) -> tuple[Kernel, MemMap, int]:
    """A page mapped on ``n`` times in a row, alternating between two tasks."""
    k, _, root = _revoke_setup()
    tasks = [k.create_task("a"), k.create_task("b")]
    mem_map, rwx = k.mem_map, int(MemRights.RWX)
    node = root
    for i in range(n):
        nxt = mem_map(node, tasks[i & 1], _FIRST_VPN + i, rwx, False)
        assert nxt is not None
        node = nxt
    return k, root, n


def time_revoke(build: Callable[[int], tuple[Kernel, MemMap, int]], n: int, repeat: int = 3) -> float:
    """Best wall-clock seconds of one ``mdb_remove`` of everything under the root."""
    best = float("inf")
    for _ in range(repeat):
        k, root, count = build(n)
        gc.collect()
        t0 = time.perf_counter()
        touched = k.mdb_remove(root, include_self=False)
        dt = time.perf_counter() - t0
        if touched != count or root.children:
            raise RuntimeError(f"revoke removed {touched} of {count} mappings")
        best = min(best, dt)
        del k, root
    return best


def bench_mem(pages: int = 100_000, repeat: int = 3, progress: Progress = _quiet) -> dict[str, float]:
    """The memory figures: (a) at ``pages`` pages, (b) at ``pages/10`` and ``pages``.

    ``map_touch_unmap_ns_per_page`` is the program path (sigma0 IPC, traps);
    ``host_map_touch_unmap_ns_per_page`` the same work through the kernel API.
    """
    if pages < 10:
        raise ValueError(f"pages must be at least 10, not {pages}")
    small, large = pages // 10, pages
    progress(0, 5, f"map+touch+unmap of {pages:,} pages by a program")
    prog = program_map_touch_unmap(pages)
    gc.collect()  # the kernel holds cycles; free the first machine's RAM now
    progress(1, 5, f"map+touch+unmap of {pages:,} pages by the kernel API")
    host = host_map_touch_unmap(pages)
    gc.collect()

    def ns(s: float) -> float:
        return round(s * 1e9 / pages, 1)

    progress(2, 5, f"revoke a tree of {small:,} mappings")
    r_small = time_revoke(build_fan_tree, small, repeat)
    progress(3, 5, f"revoke a tree of {large:,} mappings")
    r_large = time_revoke(build_fan_tree, large, repeat)
    progress(4, 5, f"revoke a chain {small:,} deep")
    chain = time_revoke(build_chain, small, repeat)
    return {
        "pages": pages,
        "map_touch_unmap_ns_per_page": ns(prog["map"] + prog["touch"] + prog["unmap"]),
        "map_ns_per_page": ns(prog["map"]),
        "touch_ns_per_page": ns(prog["touch"]),
        "unmap_ns_per_page": ns(prog["unmap"]),
        "host_map_touch_unmap_ns_per_page": ns(host["map"] + host["touch"] + host["unmap"]),
        "host_map_ns_per_page": ns(host["map"]),
        "host_touch_ns_per_page": ns(host["touch"]),
        "host_unmap_ns_per_page": ns(host["unmap"]),
        "host_os_first_touch_ns_per_page": ns(prog["prefault"]),
        "revoke_small_mappings": build_fan_tree(small)[2],
        "revoke_large_mappings": build_fan_tree(large)[2],
        "revoke_10k_s": round(r_small, 6),
        "revoke_100k_s": round(r_large, 6),
        "revoke_growth_100k_over_10k": round(r_large / r_small, 3),
        "chain_10k_s": round(chain, 6),
    }


def bench_rt(seconds: float = 10.0, progress: Progress = _quiet) -> dict[str, Any]:
    """``l4sim bench rt``: the kernel's figures and, when SimSo is importable, SimSo's for the same set.

    ``simso`` holds SimSo's FP and EDF figures, or ``simso_missing`` says why there are none.
    """
    from l4sim.realtime.sim import bench_rt as kernel_bench_rt
    from l4sim.realtime.sim import bench_taskset
    from l4sim.tools.simso_compare import bench_simso, simso_status

    why = simso_status()
    total = 2 if why is not None else 4
    out = kernel_bench_rt(seconds, lambda i, pol: progress(i, total, f"{pol.upper()} on the kernel"))
    if why is not None:
        out["simso"] = None
        out["simso_missing"] = why
        return out
    ts = bench_taskset()
    simso: dict[str, Any] = {}
    for i, pol in enumerate(("fp", "edf")):
        progress(2 + i, total, f"{pol.upper()} in SimSo")
        r = bench_simso(ts, seconds, pol)
        for key, value in r.items():
            simso[f"{pol}_{key}"] = value
        ours = out[f"{pol}_wall_s"]
        simso[f"{pol}_wall_ratio"] = round(r["wall_s"] / ours, 2) if ours else None
    out["simso"] = simso
    return out
