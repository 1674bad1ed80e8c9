"""The user-level admission server: analysis before SET_RESERVATION, refusals with a reason, release."""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import Err
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.realtime.admission import (
    ADM_PROTO,
    OP_RESERVE,
    AdmissionError,
    admission_server,
    info,
    release,
    reserve,
)
from l4sim.user.env import INITIAL, Env, TaskLocal, start_task

MS = 1_000_000


async def idle(env: Env) -> None:
    await env.wait()  # nobody sends: a thread that only exists to be reserved


def run(script: Any, policy: str = "fp") -> tuple[Kernel, list[Any]]:
    """Boot a root that starts the admission server and runs ``script(env, gate, other_gate, threads, out)``."""
    m = Machine(cores=1, seed=0)
    k = Kernel(m, tracer=Tracer())
    k.set_policy(0, policy)
    out: list[Any] = []

    async def root(env: Env) -> None:
        _, srv = await start_task(env, "admission", admission_server, {"scheduler": env.scheduler},
                                  prio=90, args=(policy,))
        gate = await env.factory.create_gate(srv, 0x10)
        other = await env.factory.create_gate(srv, 0x20)
        threads = [await env.spawn(idle, name=f"w{i}", prio=5) for i in range(5)]
        await script(env, gate, other, threads, out)
        finished.append(True)

    finished: list[bool] = []
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    # reserved threads get replenishments for ever: stop when the script is through
    k.run(until=10**9, stop=lambda: bool(finished))
    assert finished, "the script did not finish"
    return k, out


def thread(k: Kernel, name: str) -> Any:
    return next(t for t in k.threads if t.name == name)


def test_admits_a_feasible_set() -> None:
    """Three reservations with U = 0.45 are all admitted and reach the kernel with their budgets."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        out.append(await reserve(gate, ths[0], 1 * MS, 10 * MS, prio=30, name="a"))
        out.append(await reserve(gate, ths[1], 2 * MS, 10 * MS, prio=20, name="b"))
        out.append(await reserve(gate, ths[2], 3 * MS, 20 * MS, prio=10, name="c"))
        out.append(await info(gate, 0))

    k, out = run(script)
    assert out[:3] == [1, 2, 3]
    assert out[3] == (3, 0.45)
    assert [thread(k, f"w{i}").resv.budget for i in range(3)] == [1 * MS, 2 * MS, 3 * MS]
    assert thread(k, "w0").resv.prio == 30


def test_refuses_the_reservation_that_breaks_the_set() -> None:
    """A fourth reservation that makes a task miss its deadline is refused with EBUSY and the analysis' reason."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30, name="audio")
        try:
            await reserve(gate, ths[1], 4 * MS, 7 * MS, prio=20, name="video")
        except AdmissionError as e:
            out.append(e)

    k, out = run(script)
    assert len(out) == 1
    assert out[0].err == Err.EBUSY
    assert "video" in out[0].reason and "not schedulable under FP" in out[0].reason
    assert thread(k, "w1").resv is None
    assert thread(k, "w0").resv is not None


def test_edf_admits_what_fixed_priorities_refuse() -> None:
    """Under EDF the set (2, 5), (4, 7) with U = 0.97 is admitted; under FP the same request is refused."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30)
        try:
            out.append(await reserve(gate, ths[1], 4 * MS, 7 * MS, prio=20))
        except AdmissionError as e:
            out.append(e.err)

    _, fp = run(script, "fp")
    _, edf = run(script, "edf")
    assert fp == [Err.EBUSY]
    assert edf == [2]


def test_release_frees_the_capacity() -> None:
    """After a client releases its reservation the thread is best effort again and a refused request fits."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        rid = await reserve(gate, ths[0], 6 * MS, 10 * MS, prio=30)
        try:
            await reserve(gate, ths[1], 5 * MS, 10 * MS, prio=20)
        except AdmissionError as e:
            out.append(e.err)
        await release(gate, rid)
        out.append(await info(gate, 0))
        out.append(await reserve(gate, ths[1], 5 * MS, 10 * MS, prio=20))

    k, out = run(script)
    assert out == [Err.EBUSY, (0, 0.0), 2]
    assert thread(k, "w0").resv is None
    assert thread(k, "w0").prio == 30  # best effort at the priority the server gave it
    assert thread(k, "w1").resv.budget == 5 * MS


def test_only_the_owner_may_release() -> None:
    """A client calling through another gate cannot release someone else's reservation (EPERM), nor an unknown id (ENOENT)."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        rid = await reserve(gate, ths[0], 1 * MS, 10 * MS, prio=30)
        for g, r in ((other, rid), (gate, 99)):
            try:
                await release(g, r)
            except AdmissionError as e:
                out.append(e.err)

    k, out = run(script)
    assert out == [Err.EPERM, Err.ENOENT]
    assert thread(k, "w0").resv is not None


def test_malformed_requests_are_refused() -> None:
    """A request without a thread capability, or with the budget over the period, is refused with EINVAL and a reason."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        msg = await gate.call(ADM_PROTO, OP_RESERVE, MS, 10 * MS, 0, 5, 0, 0, 0)
        out.append((msg.proto, msg.words))
        try:
            await reserve(gate, ths[0], 11 * MS, 10 * MS, prio=5)
        except AdmissionError as e:
            out.append(e)
        out.append((await gate.call(7, 1)).proto)

    k, out = run(script)
    assert out[0][0] == -Err.EINVAL
    assert out[1].err == Err.EINVAL and "budget" in out[1].reason
    assert out[2] == -Err.ENOSYS
    assert thread(k, "w0").resv is None
