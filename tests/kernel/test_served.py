"""``Thread.served_ns``: the time servers spend on a thread's calls.

A server holding a client's reply capability works for that client: what the
kernel charges it then (its computation, its system calls, the switch to it
and the reply) is also counted to the client's ``served_ns``, and a server
that calls another server passes that server's time on to its own client --
the time a client lends a passive server in seL4's MCS model.  Thread STATS
returns it as the fourth word.
"""

from __future__ import annotations

from l4sim.kernel.costs import CostModel

from .conftest import run_system, thread_named

C = CostModel()
#: what the kernel charges a server for one reply: the system call and the IPC of one word
REPLY = C.syscall + C.ipc_base + C.ipc_per_word


def _served_by_loop(work: int, calls: int, fast: bool) -> tuple[int, int, tuple[int, ...]]:
    async def server(env):
        m = await env.wait()
        while True:
            await env.compute(work)
            if fast:
                m = await env.reply_and_wait(0, m.words[0] + 1)  # the IPC fastpath
            else:
                await env.reply(0, m.words[0] + 1)  # the full path, then a separate wait
                m = await env.wait()

    stats: list[tuple[int, ...]] = []

    async def root(env):
        th = await env.spawn(server, name="srv", prio=150)  # above the client: waits at once
        gate = await env.factory.create_gate(th, 0x40)
        for i in range(calls):
            assert (await gate.call(0, i)).words == (i + 1,)
        stats.append(tuple(await env.thread.stats()))

    k, _ = run_system(root)
    return thread_named(k, "root").served_ns, thread_named(k, "srv").cpu_ns, stats[0]


def test_a_servers_work_and_reply_count_for_the_client():
    served, srv_cpu, stats = _served_by_loop(10_000, 3, fast=True)
    # each call: the switch into the server (same task), its computation, its reply
    per_call = C.context_switch + 10_000 + REPLY
    assert served == 3 * per_call
    assert srv_cpu >= served  # the server's own time includes it (and its waits)
    assert len(stats) == 5 and stats[3] == served


def test_the_fastpath_and_the_full_path_lend_the_same():
    assert _served_by_loop(7_000, 4, fast=True)[0] == _served_by_loop(7_000, 4, fast=False)[0]


def test_a_server_calling_a_server_passes_the_time_to_its_client():
    async def inner(env):
        await env.wait()
        while True:
            await env.compute(5_000)
            await env.reply_and_wait(0, 1)

    async def outer(env, inner_slot):
        from l4sim.user.env import Gate

        await env.wait()
        while True:
            await env.compute(1_000)
            await Gate(env, inner_slot).call(0)
            await env.reply_and_wait(0, 2)

    async def root(env):
        i = await env.spawn(inner, name="inner", prio=10)
        ig = await env.factory.create_gate(i, 0x10)
        o = await env.spawn(outer, ig.slot, name="outer", prio=10)
        og = await env.factory.create_gate(o, 0x20)
        assert (await og.call(0)).words == (2,)

    k, _ = run_system(root)
    root_served = thread_named(k, "root").served_ns
    assert root_served >= 6_000 + 2 * REPLY
    assert thread_named(k, "outer").served_ns == 0  # passed on, not kept


def test_time_after_saving_the_reply_is_the_servers_own():
    async def server(env):
        await env.wait()
        r = await env.save_reply()
        await env.compute(50_000)  # not on the caller's behalf any more
        await r.send(0, 9)

    async def root(env):
        th = await env.spawn(server, name="srv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        assert (await gate.call(0)).words == (9,)

    k, _ = run_system(root)
    served = thread_named(k, "root").served_ns
    assert 0 < served < 50_000
