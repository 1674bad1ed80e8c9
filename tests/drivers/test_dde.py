"""DDE: driver modules speak only the Linux API; DDEKit's threads, semaphores, locks, wait
queues, timers, work queues and heap inside a driver task."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import l4sim.drivers.linux as linux_drivers
from l4sim.drivers.dde import ddekit
from l4sim.drivers.dde.linux import (
    INIT_WORK,
    get_jiffies,
    kfree,
    kmalloc,
    kzalloc,
    mod_timer,
    msleep,
    schedule_work,
    setup_timer,
    spin_lock,
    spin_unlock,
    spinlock_t,
    timer_list,
    wait_event,
    wait_queue_head_t,
    wake_up,
    work_struct,
)
from l4sim.runtime.ned import load_script
from l4sim.user.env import Env

from .helpers import run_plan, script, statuses

ME = __name__
LOG: list[Any] = []
DDE_API = "l4sim.drivers.dde.linux"


def test_linux_drivers_import_nothing_of_l4sim_but_the_dde_api() -> None:
    """Every module of ``l4sim.drivers.linux`` imports from l4sim only the DDE Linux API (the
    standard library is theirs, as libc-free kernel code has its own helpers)."""
    folder = Path(linux_drivers.__file__).parent
    mods = sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")
    assert {p.stem for p in mods} >= {"simnic", "simblk"}
    for path in mods:
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            for n in names:
                assert not n.startswith("l4sim") or n == DDE_API, f"{path.name} imports {n}"


async def kit_demo(env: Env) -> int:
    return await ddekit.run(env, _demo)


async def _demo(kit: ddekit.Kit) -> int:
    """Two threads contend for a lock across traps; a wait queue, a timer and a work item each
    wake the main thread once."""
    lock = spinlock_t()
    wq = wait_queue_head_t()
    state = {"ticks": 0, "work": 0, "inside": 0, "max_inside": 0}

    async def contender(name: str) -> int:
        for i in range(3):
            await spin_lock(lock)
            state["inside"] += 1
            state["max_inside"] = max(state["max_inside"], state["inside"])
            await msleep(1)  # traps while holding the lock
            LOG.append((name, i))
            state["inside"] -= 1
            await spin_unlock(lock)
        state[name] = 1
        await wake_up(wq)
        return 0

    async def tick(data: Any) -> None:
        state["ticks"] += 1
        await wake_up(wq)

    async def job(w: work_struct) -> None:
        state["work"] += 1
        await wake_up(wq)

    await kit.thread_create(contender, "a", name="a")
    await kit.thread_create(contender, "b", name="b")
    t = timer_list()
    setup_timer(t, tick, None)
    await mod_timer(t, await get_jiffies() + 2)
    w = work_struct()
    INIT_WORK(w, job)
    await schedule_work(w)
    await wait_event(wq, lambda: "a" in state and "b" in state and state["ticks"] == 1 and state["work"] == 1)
    p = kmalloc(100)
    q = await kzalloc(64)
    kfree(p)
    r = kmalloc(16)
    LOG.append(("heap", p != 0 and q != 0 and r == p))
    LOG.append(("max_inside", state["max_inside"]))
    return 0


def test_ddekit_threads_locks_wait_queues_timers_and_work(tmp_path: Path) -> None:
    """The lock keeps its holders one at a time although they sleep inside it; both contenders
    finish in turn; the timer and the work item each run once; kfree'd memory is reused."""
    LOG.clear()
    p = script(tmp_path, f'start("kit", "{ME}:kit_demo", caps={{"factory": factory()}}, prio=20)\n')
    _, s, reason = run_plan(load_script(p, 2))
    assert statuses(s)["kit"] == "exit 0", statuses(s)
    assert reason == "stop"
    assert ("heap", True) in LOG and ("max_inside", 1) in LOG
    turns = [e for e in LOG if e[0] in ("a", "b")]
    assert sorted(turns) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]


async def outside(env: Env) -> int:
    ddekit.current()
    return 0


def test_the_linux_api_outside_a_dde_thread_is_one_clear_error(tmp_path: Path) -> None:
    """``current()`` outside a DDE thread names the fix."""
    p = script(tmp_path, f'start("x", "{ME}:outside", prio=20)\n')
    _, s, _ = run_plan(load_script(p, 2))
    assert "start threads with ddekit's thread_create" in statuses(s)["x"]
