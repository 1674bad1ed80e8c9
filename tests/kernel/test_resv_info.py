"""Scheduler.resv_info: what the kernel reports of a core's policy and reservations."""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import Err, SchedOp
from l4sim.user.env import Env, L4Error

from .conftest import make_system

MS = 1_000_000


async def idle(env: Env) -> None:
    await env.wait()  # a thread that only exists to be reserved


def test_reports_policy_reservations_utilisation_and_misses() -> None:
    """Per core: its policy, the live reserved threads, sum(budget/period) in ppm rounded up, their misses;
    a removed reservation and a killed thread no longer count."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        s = env.scheduler
        out.append(await s.resv_info(0))
        a = await env.spawn(idle, name="a", prio=5)
        b = await env.spawn(idle, name="b", prio=5)
        c = await env.spawn(idle, name="c", prio=5, cpu=1)
        await s.set_reservation(a, 1 * MS, 3 * MS)
        await s.set_reservation(b, 2 * MS, 10 * MS)
        await s.set_reservation(c, 5 * MS, 10 * MS)
        out.append(await s.resv_info(0))
        out.append(await s.resv_info(1))
        await s.set_reservation(b, 0)
        out.append(await s.resv_info(0))
        await env.task.delete(c.slot)  # our only capability: the thread dies
        out.append(await s.resv_info(1))
        return 0

    k, _ = make_system(root, cores=2)
    k.set_policy(1, "edf")
    k.run(until=1 * MS)
    assert out[0] == ("fp", 0, 0, 0)
    assert out[1] == ("fp", 2, 533_334, 0)  # 1/3 + 1/5 = 0.5333... rounded up
    assert out[2] == ("edf", 1, 500_000, 0)
    assert out[3] == ("fp", 1, 333_334, 0)
    assert out[4] == ("edf", 0, 0, 0)


def test_counts_the_deadline_misses_of_reserved_threads() -> None:
    """A periodic thread whose jobs overrun their deadline shows up in the core's miss count."""
    out: list[Any] = []

    async def late(env: Env) -> None:
        await env.next_period()
        while True:
            await env.compute(3 * MS)  # more than the 2 ms deadline
            await env.next_period()

    async def root(env: Env) -> int:
        th = await env.spawn(late, name="late", prio=5)
        await env.scheduler.set_reservation(th, 4 * MS, 10 * MS, 2 * MS, 0x2)
        await env.compute(30 * MS)  # best effort: runs while the reserved thread sleeps
        out.append(await env.scheduler.resv_info(0))
        return 0

    k, _ = make_system(root)
    k.run(until=100 * MS)
    policy, n, util, misses = out[0]
    assert (policy, n, util) == ("fp", 1, 400_000) and misses >= 4


def test_bad_cpu_is_einval() -> None:
    """resv_info of a cpu the machine does not have, or without the cpu word, is EINVAL."""
    out: list[Any] = []

    async def root(env: Env) -> int:
        try:
            await env.scheduler.resv_info(3)
        except L4Error as e:
            out.append(e.err)
        msg = await env.ipc(env.scheduler.invoke(SchedOp.RESV_INFO))
        out.append(-msg.proto)
        return 0

    k, _ = make_system(root, cores=2)
    k.run(until=1 * MS)
    assert out == [Err.EINVAL, Err.EINVAL]
