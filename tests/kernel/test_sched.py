"""Scheduling: priorities, round robin, preemption, migration, parallel cores, idle time."""

from __future__ import annotations

import itertools

import pytest

from l4sim.kernel.abi import Err, Fpage, Rights, SchedOp
from l4sim.kernel.objects import TS
from l4sim.user.env import Env, L4Error, SchedulerCap, ThreadCap

from .conftest import run_system, thread_named

MS = 1_000_000
US = 1_000


def switches_to(tr, tids: set[int]) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(time, cpu, tid) of every ``switch`` record that starts one of ``tids``."""
    return [(r[0], r[1], r[3]) for r in tr.by_kind("switch") if r[3] in tids]


def test_higher_priority_runs_first() -> None:
    """Of two ready threads on one core, the higher priority runs (to completion) first."""
    order: list[str] = []

    async def worker(env: Env, name: str) -> int:
        order.append(f"{name} start")
        await env.compute(10 * US)
        order.append(f"{name} end")
        return 0

    async def root(env: Env) -> int:
        await env.spawn(worker, "low", name="low", prio=10)  # ready first ...
        await env.spawn(worker, "high", name="high", prio=20)  # ... but lower priority
        return 0

    run_system(root)
    assert order == ["high start", "high end", "low start", "low end"]


def test_round_robin_within_a_priority_at_quantum_expiry() -> None:
    """Two equal-priority compute-bound threads alternate every quantum and finish together."""
    done: dict[str, int] = {}

    async def worker(env: Env, name: str) -> int:
        await env.compute(10 * MS)
        done[name] = await env.clock()
        return 0

    async def root(env: Env) -> int:
        await env.spawn(worker, "a", name="a", prio=10, quantum=1 * MS)
        await env.spawn(worker, "b", name="b", prio=10, quantum=1 * MS)
        return 0

    k, tr = run_system(root)
    a, b = thread_named(k, "a"), thread_named(k, "b")
    runs = [tid for _, _, tid in switches_to(tr, {a.kid, b.kid})]
    assert len(runs) >= 20, "each thread ran in about ten 1 ms slices"
    assert all(x != y for x, y in itertools.pairwise(runs)), "the two alternate"
    assert runs[0] == a.kid
    assert abs(done["a"] - done["b"]) <= 1 * MS + 10 * US
    assert 20 * MS <= max(done.values()) < 20 * MS + 50 * US


def test_thread_with_a_longer_quantum_is_not_cut_by_a_peer() -> None:
    """A thread whose compute fits in its quantum runs it without a switch to its equal peer."""
    order: list[str] = []

    async def worker(env: Env, name: str) -> int:
        await env.compute(2 * MS)
        order.append(name)
        return 0

    async def root(env: Env) -> int:
        await env.spawn(worker, "a", name="a", prio=10, quantum=5 * MS)
        await env.spawn(worker, "b", name="b", prio=10, quantum=5 * MS)
        return 0

    k, tr = run_system(root)
    a, b = thread_named(k, "a"), thread_named(k, "b")
    assert order == ["a", "b"]
    assert [tid for _, _, tid in switches_to(tr, {a.kid, b.kid})] == [a.kid, b.kid]


def test_preemption_by_a_waking_higher_priority_thread_keeps_the_compute_remainder() -> None:
    """A high thread whose receive timeout expires cuts a low thread's compute; the rest is kept."""
    events: list[tuple[str, int]] = []

    async def low(env: Env) -> int:
        await env.compute(1 * MS)
        events.append(("low done", await env.clock()))
        return 0

    async def high(env: Env) -> int:
        await env.receive(env.thread, timeout=300 * US)  # sleep: nobody sends to itself
        events.append(("high woke", await env.clock()))
        return 0

    async def root(env: Env) -> int:
        await env.spawn(low, name="low", prio=10)
        await env.spawn(high, name="high", prio=50)
        return 0

    k, tr = run_system(root)
    lo, hi = thread_named(k, "low"), thread_named(k, "high")
    assert [e[0] for e in events] == ["high woke", "low done"]
    woke, done = events[0][1], events[1][1]
    assert 300 * US <= woke < 310 * US, "the high thread ran right at its wake-up"
    assert done > 1 * MS + (woke - 300 * US)
    # the low thread was switched in twice: before and after the preemption
    assert [tid for _, _, tid in switches_to(tr, {lo.kid})] == [lo.kid, lo.kid]
    assert lo.switches == 2
    costs = k.costs
    assert lo.cpu_ns == 1 * MS + costs.clock_read + lo.switches * costs.context_switch
    assert hi.state is TS.DEAD and lo.exit_code == 0


def test_run_thread_migrates_a_running_thread_to_another_core() -> None:
    """run_thread with another CPU set moves a computing thread; it continues on the new core."""
    done: list[int] = []

    async def mover(env: Env) -> int:
        await env.compute(400 * US)
        done.append(await env.clock())
        return 0

    async def migrator(env: Env, slot: int) -> int:
        await env.receive(env.thread, timeout=100 * US)
        await env.scheduler.run_thread(ThreadCap(env, slot), 10, cpus=0b10)
        return 0

    async def root(env: Env) -> int:
        t = await env.spawn(mover, name="mover", prio=10, cpu=0)
        await env.spawn(migrator, t.slot, name="migrator", prio=10, cpu=1)
        return 0

    k, tr = run_system(root, cores=2)
    t = thread_named(k, "mover")
    assert t.cpu == 1 and t.cpus == 0b10
    sched_at = [r[0] for r in tr.by_kind("sched") if r[3] == t.kid][-1]
    runs = switches_to(tr, {t.kid})
    before = [cpu for when, cpu, _ in runs if when < sched_at]
    after = [cpu for when, cpu, _ in runs if when >= sched_at]
    assert before and set(before) == {0}
    assert after and set(after) == {1}
    assert 400 * US <= t.cpu_ns < 401 * US, "the remainder of the computation was kept"
    assert 400 * US < done[0] < 420 * US


def test_run_thread_migrates_a_ready_thread() -> None:
    """A thread waiting in a ready queue moves to the new core's queue and runs there."""
    cpus_seen: list[int] = []

    async def victim(env: Env) -> int:
        await env.compute(10 * US)
        return 0

    async def root(env: Env) -> int:
        t = await env.spawn(victim, name="victim", prio=10, cpu=0)  # ready behind root
        await env.scheduler.run_thread(t, 10, cpus=0b10)
        return 0

    k, tr = run_system(root, cores=2)
    t = thread_named(k, "victim")
    cpus_seen = [cpu for _, cpu, _ in switches_to(tr, {t.kid})]
    assert cpus_seen == [1]
    assert t.exit_code == 0


def test_threads_on_two_cores_run_in_parallel() -> None:
    """Two threads computing 1 ms on two cores both finish at about 1 ms, not 2 ms."""
    done: dict[str, int] = {}

    async def worker(env: Env, name: str) -> int:
        await env.compute(1 * MS)
        done[name] = await env.clock()
        return 0

    async def root(env: Env) -> int:
        await env.spawn(worker, "c0", name="c0", prio=10, cpu=0)
        await env.spawn(worker, "c1", name="c1", prio=10, cpu=1)
        return 0

    k, tr = run_system(root, cores=2)
    assert set(done) == {"c0", "c1"}
    for t in done.values():
        assert 1 * MS <= t < 1 * MS + 20 * US
    assert k.machine.now < 1 * MS + 20 * US
    assert {cpu for _, cpu, _ in switches_to(tr, {thread_named(k, "c1").kid})} == {1}


@pytest.mark.parametrize(("prio", "quantum", "cpus"), [
    (256, 1 * MS, 1),
    (10, 1 * MS, 0),
    (10, 1 * MS, 0b100),  # only CPUs that do not exist
    (10, 0, 1),
])
def test_invalid_run_thread_arguments_are_einval_and_change_nothing(prio: int, quantum: int, cpus: int) -> None:
    """run_thread with priority > 255, an empty CPU set or a zero quantum fails with -EINVAL."""
    got: list[int] = []

    async def idle(env: Env) -> int:
        return 0

    async def root(env: Env) -> int:
        t = await env.factory.create_thread("target")
        await t.control(bind=env.task)
        msg = await env.ipc(env.scheduler.invoke(SchedOp.RUN_THREAD, t.slot, prio, quantum, cpus))
        got.append(msg.proto)
        try:
            await env.scheduler.run_thread(t, prio, quantum, cpus)
        except L4Error as e:
            got.append(-e.err)
        return 0

    k, tr = run_system(root, cores=2)
    assert got == [-Err.EINVAL, -Err.EINVAL]
    t = thread_named(k, "target")
    assert (t.prio, t.cpu, t.cpus, t.quantum) == (1, 0, 1, 10 * MS)
    assert tr.by_kind("sched") == []


def test_idle_core_wakes_a_sleeper_on_time_and_accounts_idle_time() -> None:
    """A thread sleeping 5 ms on an idle machine wakes at 5 ms; idle_time covers the gap."""
    got: dict[str, int] = {}

    async def root(env: Env) -> int:
        before = await env.clock()
        await env.receive(env.thread, timeout=5 * MS)
        got["woke"] = await env.clock()
        got["before"] = before
        got["idle"] = await env.scheduler.idle_time(0)
        return 0

    k, tr = run_system(root)
    assert 5 * MS <= got["woke"] - got["before"] < 5 * MS + 2 * US
    assert 5 * MS - 2 * US <= got["idle"] <= 5 * MS
    idle_switches = [r for r in tr.by_kind("switch") if r[3] == -1]
    assert idle_switches and idle_switches[0][0] < 1 * US
    # once the root has exited, the core idles to the end of the run
    assert k.cores[0].idle_ns >= got["idle"]


def test_idle_time_of_a_missing_cpu_is_invalid() -> None:
    """idle_time(cpu) for a CPU the machine does not have fails with EINVAL."""
    got: list[int] = []

    async def root(env: Env) -> int:
        try:
            await env.scheduler.idle_time(2)
        except L4Error as e:
            got.append(e.err)
        return 0

    run_system(root, cores=2)
    assert got == [Err.EINVAL]


def test_context_switches_are_counted() -> None:
    """Every switch to a thread counts once: per core, per thread and in the kernel total."""

    async def pinger(env: Env) -> int:
        for _ in range(5):
            await env.receive(env.thread, timeout=10 * US)
        return 0

    async def root(env: Env) -> int:
        await env.spawn(pinger, name="p1", prio=10)
        await env.spawn(pinger, name="p2", prio=10)
        return 0

    k, tr = run_system(root)
    to_threads = [r for r in tr.by_kind("switch") if r[3] != -1]
    assert k.context_switches == len(to_threads)
    assert sum(th.switches for th in k.threads) == k.context_switches
    assert sum(c.switches for c in k.cores) == k.context_switches
    assert thread_named(k, "p1").switches == 6, "started once, woken by five timeouts"


def test_run_thread_needs_w_on_the_scheduler_and_on_the_thread() -> None:
    """Read-only capabilities to a thread or to the scheduler cannot move it (EPERM); W on both can."""
    got: list[object] = []

    async def victim(env: Env) -> int:
        await env.compute(500 * US)
        return 0

    async def root(env: Env) -> int:
        v = await env.spawn(victim, name="victim", prio=10, cpu=0)
        ro_thread = ThreadCap(env, 40)
        await env.task.map(env.task, Fpage.obj(v.slot, 0, Rights.R), 40)
        ro_sched = SchedulerCap(env, 41)
        await env.task.map(env.task, Fpage.obj(env.scheduler.slot, 0, Rights.R), 41)
        for sched, th in ((env.scheduler, ro_thread), (ro_sched, v), (ro_sched, ro_thread)):
            try:
                await sched.run_thread(th, 1, cpus=0b10)
                got.append("moved")
            except L4Error as e:
                got.append(e.err)
        for sched, th in ((env.scheduler, ro_thread), (ro_sched, v)):
            try:
                await sched.set_reservation(th, 100 * US, 1 * MS)
                got.append("reserved")
            except L4Error as e:
                got.append(e.err)
        await env.scheduler.run_thread(v, 10, cpus=0b10)
        got.append("moved with W")
        return 0

    k, _ = run_system(root, cores=2)
    assert got == [Err.EPERM] * 5 + ["moved with W"]
    v = thread_named(k, "victim")
    assert v.cpus == 0b10 and v.prio == 10 and v.resv is None
