"""The user-level admission server: analysis before SET_RESERVATION, refusals with a reason, release."""

from __future__ import annotations

import random
from typing import Any

from l4sim.kernel.abi import WORD_MASK, Err, Fpage, MapItem
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.realtime.admission import (
    ADM_PROTO,
    OP_RESERVE,
    AdmissionError,
    admission_server,
    info,
    open_session,
    release,
    reserve,
)
from l4sim.user.env import INITIAL, Env, Gate, TaskLocal, ThreadCap, start_task

MS = 1_000_000


async def idle(env: Env) -> None:
    await env.wait()  # nobody sends: a thread that only exists to be reserved


async def sleep(env: Env, ns: int) -> None:
    await env.receive(env.thread, timeout=ns)  # nobody sends to ourselves: let the others run


def run(script: Any, policy: str = "fp", tell: bool = True) -> tuple[Kernel, list[Any]]:
    """Boot a root that starts the admission server and runs ``script(env, gate, other_gate, threads, out)``.

    The kernel's policy is ``policy``; the server is told it (``tell``) or reads it from the kernel.
    """
    m = Machine(cores=1, seed=0)
    k = Kernel(m, tracer=Tracer())
    k.set_policy(0, policy)
    out: list[Any] = []

    async def root(env: Env) -> None:
        caps = {"scheduler": env.scheduler, "factory": await env.factory.create_factory(1 << 16)}
        _, srv = await start_task(env, "admission", admission_server, caps,
                                  prio=90, args=(policy,) if tell else ())
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
        msg = await gate.call(ADM_PROTO, OP_RESERVE, MS, 10 * MS, 0, 5, 0, 0, 0, 0, 0)
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


def test_server_reads_the_policy_from_the_kernel() -> None:
    """Started without a policy, the server asks the kernel (Scheduler.resv_info): on an EDF core it admits
    (2, 5), (4, 7), which it refuses on an FP core."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30)
        try:
            out.append(await reserve(gate, ths[1], 4 * MS, 7 * MS, prio=20))
        except AdmissionError as e:
            out.append(e.err)

    assert run(script, "fp", tell=False)[1] == [Err.EBUSY]
    assert run(script, "edf", tell=False)[1] == [2]


# -- jitter and blocking ----------------------------------------------------------------------


def test_jitter_of_the_request_is_in_the_analysis() -> None:
    """b (2 ms / 10 ms, deadline 4 ms) fits beside a (2 ms / 5 ms); with a declared release jitter of
    1 ms its response reaches 5 ms > 4 ms and it is refused, the reason naming the response time."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30, name="a")
        try:
            await reserve(gate, ths[1], 2 * MS, 10 * MS, 4 * MS, prio=20, name="b", jitter=1 * MS)
        except AdmissionError as e:
            out.append(e)
        out.append(await reserve(gate, ths[1], 2 * MS, 10 * MS, 4 * MS, prio=20, name="b"))

    k, out = run(script)
    assert out[0].err == Err.EBUSY and "'b' misses its deadline" in out[0].reason
    assert "5000000 ns > deadline 4000000 ns" in out[0].reason
    assert out[1] == 2 and thread(k, "w1").resv.budget == 2 * MS


def test_an_admitted_reservations_jitter_counts_against_later_ones() -> None:
    """a (1 ms / 5 ms) declared 3 ms of jitter: b (2 ms / 10 ms, deadline 3 ms) then meets two of a's jobs
    in its busy period and is refused; beside a without jitter it is admitted."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        rid = await reserve(gate, ths[0], 1 * MS, 5 * MS, prio=30, name="a", jitter=3 * MS)
        try:
            await reserve(gate, ths[1], 2 * MS, 10 * MS, 3 * MS, prio=20, name="b")
        except AdmissionError as e:
            out.append(e.err)
        await release(gate, rid)
        await reserve(gate, ths[0], 1 * MS, 5 * MS, prio=30, name="a")
        out.append(await reserve(gate, ths[1], 2 * MS, 10 * MS, 3 * MS, prio=20, name="b"))

    _, out = run(script)
    assert out == [Err.EBUSY, 3]  # ids count admitted reservations only


def test_blocking_of_the_request_is_in_the_analysis() -> None:
    """a (2 ms / 5 ms) with 3 ms of blocking meets its deadline exactly; with 4 ms it cannot."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        try:
            await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30, name="a", blocking=4 * MS)
        except AdmissionError as e:
            out.append(e)
        out.append(await reserve(gate, ths[0], 2 * MS, 5 * MS, prio=30, name="a", blocking=3 * MS))

    for policy in ("fp", "edf"):
        _, out = run(script, policy)
        assert out[0].err == Err.EBUSY, policy
        assert out[1] == 1, policy


# -- sessions and dead clients ----------------------------------------------------------------


async def client(env: Env, budget: int, state: list[Any]) -> None:
    """A client task: a session, its own thread reserved through it, then it waits to be killed."""
    session = await open_session(env, env.cap("admission", Gate))
    state.append(await reserve(session, env.thread, budget, 10 * MS, prio=20, name="client", flags=0))
    await env.wait()


def test_a_dead_clients_reservations_are_reclaimed() -> None:
    """A client holding 6 ms / 10 ms dies (its task is deleted): the delete Irq tells the server, which
    drops the reservation, so 5 ms / 10 ms that was refused before is admitted."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        state: list[Any] = []
        task, _ = await start_task(env, "client", client, {"admission": other}, prio=50, args=(6 * MS, state))
        while not state:
            await sleep(env, 100_000)
        out.append(await info(gate, 0))
        try:
            await reserve(gate, ths[0], 5 * MS, 10 * MS, prio=10)
        except AdmissionError as e:
            out.append(e.err)
        await env.task.delete(task.slot)  # the client dies: its session gate goes with it
        await sleep(env, 100_000)  # the server handles the notification
        out.append(await info(gate, 0))
        out.append(await reserve(gate, ths[0], 5 * MS, 10 * MS, prio=10))

    k, out = run(script)
    assert out == [(1, 0.6), Err.EBUSY, (0, 0.0), 2]
    assert thread(k, "w0").resv.budget == 5 * MS
    assert thread(k, "client").state.name == "DEAD"


def test_closing_a_session_releases_its_reservations_and_the_thread_lives_on() -> None:
    """A client that deletes its session gate gives back every reservation made through it; its thread,
    still alive, is best effort again. Other sessions keep theirs."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        s1 = await open_session(env, gate)
        s2 = await open_session(env, gate)
        await reserve(s1, ths[0], 1 * MS, 10 * MS, prio=30)
        await reserve(s1, ths[1], 2 * MS, 10 * MS, prio=20)
        await reserve(s2, ths[2], 3 * MS, 10 * MS, prio=10)
        out.append(await info(gate, 0))
        await env.task.delete(s1.slot)
        await sleep(env, 100_000)
        out.append(await info(gate, 0))

    k, out = run(script)
    assert out == [(3, 0.6), (1, 0.3)]
    assert thread(k, "w0").resv is None and thread(k, "w1").resv is None
    assert thread(k, "w0").state.name != "DEAD"
    assert thread(k, "w2").resv.budget == 3 * MS


def test_sessions_need_a_factory() -> None:
    """A server started without a factory refuses OPEN with ENOSYS and says why."""
    m = Machine(cores=1, seed=0)
    k = Kernel(m)
    out: list[Any] = []

    async def root(env: Env) -> None:
        _, srv = await start_task(env, "admission", admission_server, {"scheduler": env.scheduler}, prio=90)
        gate = await env.factory.create_gate(srv, 0x10)
        try:
            await open_session(env, gate)
        except AdmissionError as e:
            out.append(e)

    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100)
    k.run(until=10 * MS)
    assert out and out[0].err == Err.ENOSYS and "factory" in out[0].reason


def test_reservations_through_a_shared_gate_stay() -> None:
    """Without a session nothing tells the server of a death: the reservation stays admitted (documented)."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        th = ThreadCap(env, ths[0].slot)
        await reserve(other, th, 1 * MS, 10 * MS, prio=30)
        await env.task.delete(th.slot)  # the thread dies; the server still holds its capability
        await sleep(env, 100_000)
        out.append(await info(gate, 0))

    _, out = run(script)
    assert out == [(1, 0.1)]


# -- bad requests -------------------------------------------------------------------------------


def test_a_cpu_the_machine_lacks_is_refused_and_the_server_goes_on() -> None:
    """RESERVE for cpu 1, 63, 64 or 2**64 - 1 on a one-cpu machine is -EINVAL naming the cpu, whether the
    server has a policy or asks the kernel (it used to die of the kernel's refusal to report on a cpu
    it lacks, or of a cpu mask that no longer fit a word); the next request is admitted."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        for cpu in (1, 63, 64, WORD_MASK):
            try:
                await reserve(gate, ths[0], MS, 10 * MS, prio=30, cpu=cpu)
            except AdmissionError as e:
                out.append((e.err, e.reason))
        out.append(await reserve(gate, ths[0], MS, 10 * MS, prio=30))

    for tell in (True, False):
        k, out = run(script, tell=tell)
        assert out[:4] == [(Err.EINVAL, f"cpu {c} does not exist: the machine has cpus 0 .. 0")
                           for c in (1, 63, 64, WORD_MASK)], tell
        assert out[4] == 1 and thread(k, "w0").resv.budget == MS
        assert "admission: request" not in k.machine.uart.text()


def test_open_past_the_factorys_quota_is_enomem_and_a_closed_session_makes_room() -> None:
    """The server's 64 KiB factory holds its delete Irq and 511 session gates: the 512th OPEN is
    -ENOMEM with a reason (the server used to die of it), the sessions it has still work, and one
    session deleted makes room for one more."""

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        sessions = [await open_session(env, gate) for _ in range(511)]
        try:
            await open_session(env, gate)
        except AdmissionError as e:
            out.append((e.err, e.reason))
        out.append(await reserve(sessions[-1], ths[0], MS, 10 * MS, prio=30))
        await env.task.delete(sessions[0].slot)
        await sleep(env, 100_000)  # the server hears of the deleted gate
        out.append((await open_session(env, gate)).slot > 0)

    k, out = run(script)
    assert out == [(Err.ENOMEM, "no room for another session: the server's factory is out of quota"), 1, True]
    assert thread(k, "w0").resv.budget == MS


def test_random_junk_is_answered_request_by_request() -> None:
    """Three hundred requests with random operations, word counts and values (the top of the word
    range among them) and random capabilities as items: each gets an answer, every refusal is one the
    server decided (no -EIO), and a proper reservation is admitted afterwards."""
    rng = random.Random(23)
    values = [0, 1, 2, 3, 5, 254, 255, 1000, MS, 10 * MS, 1 << 63, WORD_MASK]

    async def script(env: Env, gate: Any, other: Any, ths: list[Any], out: list[Any]) -> None:
        targets = [gate]
        for _ in range(300):
            words = (rng.choice([0, 1, 1, 1, 2, 3, 4, 9]),
                     *(rng.choice([*values, rng.randrange(1 << 64)]) for _ in range(rng.choice([0, 1, 2, 9, 12]))))
            caps = [*ths, env.task, env.factory, gate]
            items = (MapItem(rng.choice(caps).fpage()),) if rng.random() < 0.6 else ()
            slot = env.alloc_slot()
            msg = await rng.choice(targets).call(ADM_PROTO, *words, items=items, rcv=(Fpage.obj(slot),))
            out.append((msg.error, msg.proto))
            if msg.items:
                targets.append(Gate(env, slot))
        out.append(await reserve(gate, ths[3], MS, 100 * MS, prio=3, name="last"))

    k, out = run(script, "edf")
    assert all(err == 0 for err, _ in out[:-1]), "every request was answered"
    assert -Err.EIO not in {p for _, p in out[:-1]}
    assert {p for _, p in out[:-1]} >= {0, -Err.EINVAL, -Err.ENOSYS}
    assert type(out[-1]) is int and thread(k, "w3").resv.budget == MS
    assert thread(k, "admission").state is TS.RECV
