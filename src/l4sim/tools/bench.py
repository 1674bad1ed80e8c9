"""Benchmarks: how fast the model runs on the host (wall-clock, not simulated).

``ipc``: call / reply-and-wait round trips per second between two native
threads in two tasks, against a *bare* baseline: the same two coroutines,
issuing the same trap objects, driven by a minimal loop that just hands each
message to the other side -- no capabilities, no scheduler, no kernel.  The
ratio bare/ours is the price of the kernel per round trip; it is the figure
to keep small.

Wall-clock time is read here, in a tool, never inside the model.
"""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.traps import Msg
from l4sim.machine.board import Machine
from l4sim.user.env import INITIAL, Env, TaskLocal, start_task


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


def bare_round_trips(n: int) -> float:
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


def bench_ipc(n: int = 200_000, repeat: int = 3) -> dict[str, float]:
    """Best of ``repeat`` runs of each, and the ratio bare/kernel."""
    ours = max(kernel_round_trips(n) for _ in range(repeat))
    bare = max(bare_round_trips(n) for _ in range(repeat))
    return {"round_trips_per_s": round(ours), "bare_round_trips_per_s": round(bare),
            "ratio": round(bare / ours, 3)}
