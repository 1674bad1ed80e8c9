"""Reservations (budget per period), EDF/FP policies for reserved threads, periodic threads."""

from __future__ import annotations

from l4sim.kernel import invariants
from l4sim.kernel.abi import RESV_TIMEOUT_FAULT, TRAP_BUDGET_TIMEOUT, Err, Proto
from l4sim.kernel.objects import TS
from l4sim.kernel.sched import EDF_LEVEL, RESV_BASE
from l4sim.user.env import Env, L4Error

from .conftest import make_system, run_system, thread_named

MS = 1_000_000
US = 1_000


def test_budget_limits_cpu_time_per_period_and_best_effort_runs_between() -> None:
    """1 ms per 10 ms for a 5 ms computation: it finishes in its fifth period; a best-effort thread runs meanwhile."""
    out: dict[str, int] = {}
    be_times: list[int] = []

    async def rt(env: Env) -> int:
        await env.compute(5 * MS)
        out["end"] = await env.clock()
        return 0

    async def be(env: Env) -> int:
        while await env.clock() < 60 * MS:
            await env.compute(100 * US)
            be_times.append(await env.clock())
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=10)
        await env.spawn(be, name="be", prio=50)
        out["start"] = await env.clock()
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS)
        return 0

    k, tr = run_system(root)
    start = out["start"]
    # four full periods of 1 ms, then the fifth 1 ms: done 41 ms after the reservation (plus kernel costs)
    assert 41 * MS <= out["end"] - start < 41 * MS + 20 * US
    # four depletions by the computation, then one by the overrun of the clock read after it
    depleted = [r[0] - start for r in tr.by_kind("depleted")]
    assert len(depleted) == 5
    for i, t in enumerate(depleted[:4]):
        assert i * 10 * MS + 1 * MS <= t < i * 10 * MS + 1 * MS + 20 * US
    # the best-effort thread progressed inside every period's gap
    for i in range(4):
        lo, hi = start + i * 10 * MS + 2 * MS, start + (i + 1) * 10 * MS
        assert any(lo <= t < hi for t in be_times)
    assert thread_named(k, "rt").resv.depletions == 5


def test_timeout_fault_goes_to_the_exception_handler() -> None:
    """With RESV_TIMEOUT_FAULT the handler gets exception IPC with TRAP_BUDGET_TIMEOUT; its reply lets the thread go on."""
    seen = []
    done = []

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append((msg.proto, msg.words[0], msg.words[4:6], await env.clock()))
        await env.reply(0)
        return 0

    async def rt(env: Env) -> int:
        await env.compute(3 * MS)
        done.append(await env.clock())
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        th = await env.spawn(rt, name="rt", prio=10, exc_handler=h.slot)
        await env.scheduler.set_reservation(th, 2 * MS, 10 * MS, 0, RESV_TIMEOUT_FAULT)
        return 0

    run_system(root)
    assert len(seen) == 1
    proto, trapno, extra, _ = seen[0]
    assert proto == Proto.EXCEPTION and trapno == TRAP_BUDGET_TIMEOUT and extra == (2 * MS, 10 * MS)
    assert done and done[0] > 10 * MS  # the last 1 ms ran after the replenishment


def test_timeout_fault_keeps_the_last_trap_result() -> None:
    """A thread whose budget ran out right after a trap still gets that trap's result after the fault reply."""
    got = []

    async def handler(env: Env) -> int:
        await env.wait()
        await env.reply(0)
        return 0

    async def rt(env: Env) -> int:
        await env.compute(1 * MS - 70)  # leaves 70 ns: the clock read (5) fits, the next syscall overruns
        got.append(await env.clock())
        got.append(await env.clock())
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        th = await env.spawn(rt, name="rt", prio=10, exc_handler=h.slot)
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS, 0, RESV_TIMEOUT_FAULT)
        return 0

    run_system(root)
    assert len(got) == 2 and all(type(v) is int for v in got)


def test_replenishments_fall_on_period_boundaries() -> None:
    """Replenish records come exactly at start + k * period."""
    t0 = []

    async def rt(env: Env) -> int:
        await env.compute(20 * MS)
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=10)
        t0.append(await env.clock() + 1 * MS)
        await env.scheduler.set_reservation(th, 2 * MS, 5 * MS, 0, 0, t0[0])
        return 0

    _, tr = run_system(root, until=40 * MS)
    times = [r[0] for r in tr.by_kind("replenish")]
    assert times[:5] == [t0[0] + i * 5 * MS for i in range(5)]


def test_reserved_thread_preempts_higher_priority_best_effort() -> None:
    """A reserved thread of priority 1 preempts a best-effort thread of priority 200 at its release."""
    rel = []

    async def hog(env: Env) -> int:
        await env.compute(30 * MS)
        return 0

    async def rt(env: Env) -> int:
        await env.next_period()
        rel.append(await env.clock())
        await env.compute(1 * MS)
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=1)
        await env.scheduler.set_reservation(th, 2 * MS, 10 * MS, 0, 0, 5 * MS)
        await env.spawn(hog, name="hog", prio=200)
        return 0

    k, tr = run_system(root)
    rt_th = thread_named(k, "rt")
    assert rel and 5 * MS <= rel[0] < 5 * MS + 5 * US
    first_run = [r[0] for r in tr.by_kind("switch") if r[3] == rt_th.kid and r[0] >= 5 * MS]
    assert first_run[0] < 5 * MS + 5 * US


def _two_reserved(policy: str) -> list[str]:
    """Two reserved threads released together: 'hi' (prio 20, deadline 8 ms), 'lo' (prio 10, deadline 4 ms)."""
    order: list[str] = []

    async def job(env: Env, name: str) -> int:
        await env.next_period()
        await env.compute(1 * MS)
        order.append(name)
        return 0

    async def root(env: Env) -> int:
        a = await env.spawn(job, "hi", name="hi", prio=20)
        b = await env.spawn(job, "lo", name="lo", prio=10)
        await env.scheduler.set_reservation(a, 2 * MS, 10 * MS, 8 * MS, 0, 1 * MS)
        await env.scheduler.set_reservation(b, 2 * MS, 10 * MS, 4 * MS, 0, 1 * MS)
        return 0

    k, _ = make_system(root)
    k.set_policy(0, policy)
    k.run()
    return order


def test_fixed_priorities_order_reserved_threads_by_priority() -> None:
    """Under FP the higher-priority reserved thread runs first, whatever the deadlines."""
    assert _two_reserved("fp") == ["hi", "lo"]


def test_edf_orders_reserved_threads_by_deadline() -> None:
    """Under EDF the earlier absolute deadline runs first, whatever the priorities."""
    assert _two_reserved("edf") == ["lo", "hi"]


def test_edf_earlier_deadline_preempts_a_running_job() -> None:
    """Under EDF a release with an earlier absolute deadline preempts the running reserved thread."""
    ends: dict[str, int] = {}

    async def job(env: Env, name: str, work: int) -> int:
        await env.next_period()
        await env.compute(work)
        ends[name] = await env.clock()
        return 0

    async def root(env: Env) -> int:
        a = await env.spawn(job, "long", 5 * MS, name="long", prio=20)
        b = await env.spawn(job, "short", 1 * MS, name="short", prio=10)
        await env.scheduler.set_reservation(a, 6 * MS, 20 * MS, 20 * MS, 0, 1 * MS)
        await env.scheduler.set_reservation(b, 2 * MS, 20 * MS, 3 * MS, 0, 2 * MS)
        return 0

    k, _ = make_system(root)
    k.set_policy(0, "edf")
    k.run()
    assert 3 * MS <= ends["short"] < 3 * MS + 10 * US  # ran at its release, 2 ms, for 1 ms
    assert ends["long"] > 7 * MS


def test_policy_switch_moves_reserved_threads_to_the_edf_level() -> None:
    """set_policy puts the core's reserved threads at the EDF level and back at RESV_BASE + prio."""
    async def idle(env: Env) -> int:
        await env.next_period()
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(idle, name="rt", prio=7)
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS, 0, 0, 50 * MS)
        return 0

    k, _ = run_system(root, until=10 * MS)
    th = thread_named(k, "rt")
    assert th.prio == RESV_BASE + 7
    k.set_policy(0, "edf")
    assert th.prio == EDF_LEVEL
    k.set_policy(0, "fp")
    assert th.prio == RESV_BASE + 7


def test_next_period_releases_at_period_boundaries() -> None:
    """next_period returns job numbers 1, 2, 3 at origin, origin + T, origin + 2T."""
    seen = []

    async def rt(env: Env) -> int:
        for _ in range(3):
            job = await env.next_period()
            seen.append((job, await env.clock()))
            await env.compute(100 * US)
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=1)
        await env.scheduler.set_reservation(th, 1 * MS, 4 * MS, 0, 0, 2 * MS)
        return 0

    k, tr = run_system(root)
    assert [j for j, _ in seen] == [1, 2, 3]
    for i, (_, t) in enumerate(seen):
        assert 2 * MS + i * 4 * MS <= t < 2 * MS + i * 4 * MS + 5 * US
    assert [r[0] for r in tr.by_kind("release")] == [2 * MS + i * 4 * MS for i in range(3)]
    r = thread_named(k, "rt").resv
    assert r.jobs == 2 and r.misses == 0 and 100 * US <= r.max_response < 110 * US


def test_release_jitter_comes_from_the_seeded_generator() -> None:
    """Jittered releases lie in [arrival, arrival + J], are equal for one seed and differ for another."""
    def releases(seed: int) -> list[int]:
        async def rt(env: Env) -> int:
            for _ in range(8):
                await env.next_period(jitter=1 * MS)
            return 0

        async def root(env: Env) -> int:
            th = await env.spawn(rt, name="rt", prio=1)
            await env.scheduler.set_reservation(th, 1 * MS, 4 * MS, 0, 0, 4 * MS)
            return 0

        _, tr = run_system(root, seed=seed)
        return [r[0] for r in tr.by_kind("release")]

    a, b, c = releases(1), releases(1), releases(2)
    assert a == b and a != c and len(a) == 8
    assert all(4 * MS * (i + 1) <= t <= 4 * MS * (i + 1) + 1 * MS for i, t in enumerate(a))
    assert len({t % (4 * MS) for t in a}) > 1


def test_deadline_misses_are_trace_records_and_counted() -> None:
    """A 3 ms job with a 2 ms deadline misses by 1 ms each time: a deadline_miss record per job."""
    async def rt(env: Env) -> int:
        await env.next_period()
        for _ in range(3):
            await env.compute(3 * MS)
            await env.next_period()
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=1)
        await env.scheduler.set_reservation(th, 4 * MS, 10 * MS, 2 * MS, 0, 1 * MS)
        return 0

    k, tr = run_system(root, until=40 * MS)
    misses = tr.by_kind("deadline_miss")
    assert [m[4]["job"] for m in misses] == [1, 2, 3]
    assert all(1 * MS <= m[4]["lateness"] < 1 * MS + 5 * US for m in misses)
    r = thread_named(k, "rt").resv
    assert r.misses == 3 and r.jobs == 3


def test_next_period_without_a_reservation_is_einval() -> None:
    """A best-effort thread's next_period returns -EINVAL and does not block."""
    got = []

    async def root(env: Env) -> int:
        got.append(await env.next_period())
        return 0

    run_system(root)
    assert got == [-Err.EINVAL]


def test_bad_reservations_are_refused_without_change() -> None:
    """Period below the minimum, budget above the period, unknown flags, a past start: EINVAL, nothing changes."""
    errs = []

    async def rt(env: Env) -> int:
        await env.compute(1 * MS)
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=3)
        await env.compute(2 * MS)
        for args in ((10, 999, 0, 0, 0), (2 * MS, 1 * MS, 0, 0, 0), (1 * MS, 2 * MS, 0, 0x80, 0),
                     (1 * MS, 2 * MS, 0, 0, 1 * MS)):
            try:
                await env.scheduler.set_reservation(th, *args)
            except L4Error as e:
                errs.append(e.err)
        return 0

    k, _ = run_system(root)
    assert errs == [Err.EINVAL] * 4
    th = thread_named(k, "rt")
    assert th.resv is None and th.prio == 3


def test_budget_zero_removes_the_reservation() -> None:
    """Budget 0 makes the thread best effort again at its own priority, and wakes a sleeping periodic thread."""
    got = []

    async def rt(env: Env) -> int:
        got.append(await env.next_period())
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=9)
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS, 0, 0, 50 * MS)
        await env.compute(1 * MS)
        await env.scheduler.set_reservation(th, 0)
        return 0

    k, _ = run_system(root)
    th = thread_named(k, "rt")
    assert got == [0] and th.resv is None and th.prio == 9 and th.state is TS.DEAD


def test_invariants_hold_throughout_a_reserved_run() -> None:
    """The kernel invariants hold after every event of a run with reserved, periodic and best-effort threads."""
    async def rt(env: Env, work: int) -> int:
        await env.next_period()
        for _ in range(6):
            await env.compute(work)
            await env.next_period()
        return 0

    async def hog(env: Env) -> int:
        await env.compute(20 * MS)
        return 0

    async def root(env: Env) -> int:
        a = await env.spawn(rt, 1 * MS, name="a", prio=5)
        b = await env.spawn(rt, 3 * MS, name="b", prio=4)  # overruns its 2 ms budget
        await env.spawn(hog, name="hog", prio=100)
        await env.scheduler.set_reservation(a, 1 * MS, 3 * MS, 0, 0, 1 * MS)
        await env.scheduler.set_reservation(b, 2 * MS, 5 * MS, 0, 0, 1 * MS)
        return 0

    k, _ = make_system(root)
    for _ in range(5000):
        if k.run(max_events=1) == "idle":
            break
        assert invariants.check(k) == []
    assert thread_named(k, "b").resv.depletions > 0


def test_reserved_thread_on_a_second_core_is_replenished_there() -> None:
    """A reserved thread on core 1 that spent its budget runs again at its replenishment, preempting core 1's hog."""
    ends = []

    async def rt(env: Env) -> int:
        await env.compute(3 * MS)
        ends.append(await env.clock())
        return 0

    async def hog(env: Env) -> int:
        await env.compute(50 * MS)
        return 0

    async def root(env: Env) -> int:
        await env.spawn(hog, name="hog", prio=200, cpu=1)
        th = await env.spawn(rt, name="rt", prio=1, cpu=1)
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS)
        return 0

    k, tr = run_system(root, cores=2)
    rt_th = thread_named(k, "rt")
    assert ends and 21 * MS <= ends[0] < 21 * MS + 50 * US
    assert all(r[1] == 1 for r in tr.by_kind("replenish"))
    assert rt_th.resv.depletions == 3  # two by the computation, one by the clock read's overrun


def test_timeout_fault_refused_by_the_handler_kills_the_thread() -> None:
    """A handler that answers the timeout fault with a non-zero label ends the thread."""
    async def handler(env: Env) -> int:
        await env.wait()
        await env.reply(1)
        return 0

    async def rt(env: Env) -> int:
        await env.compute(3 * MS)
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        th = await env.spawn(rt, name="rt", prio=10, exc_handler=h.slot)
        await env.scheduler.set_reservation(th, 1 * MS, 10 * MS, 0, RESV_TIMEOUT_FAULT)
        return 0

    k, _ = run_system(root)
    th = thread_named(k, "rt")
    assert th.state is TS.DEAD and th.cpu_ns < 2 * MS


def test_run_thread_on_a_reserved_thread_changes_its_priority_not_its_budget() -> None:
    """run_thread moves a reserved thread within the reserved band and leaves its budget alone."""
    async def rt(env: Env) -> int:
        await env.wait()  # nothing comes
        return 0

    async def root(env: Env) -> int:
        th = await env.spawn(rt, name="rt", prio=3)
        await env.scheduler.set_reservation(th, 2 * MS, 10 * MS, 0, 0, 50 * MS)
        await env.scheduler.run_thread(th, 40)
        return 0

    k, _ = run_system(root, until=5 * MS)
    th = thread_named(k, "rt")
    assert th.prio == RESV_BASE + 40 and th.resv.prio == 40
    assert 2 * MS - 1 * US < th.quantum_left <= 2 * MS  # only its wait's system call was charged
