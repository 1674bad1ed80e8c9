"""The kernel scenario: the kernel alone, with sigma0 and one root task.

The root program holds every initial capability and starts the demo itself,
using nothing but system calls (no moe, no loader, no region managers):

- ``server`` / ``client``: a client in its own task calls a server over an
  IPC gate; the server sees the gate's label with the client capability's
  rights in the low bits, and answers with reply-and-wait.
- ``ticker``: a thread bound to the platform timer's interrupt line through
  the ICU; every tick arrives as a message from its Irq, and it acknowledges
  by unmasking.
- ``worker-hi`` / ``worker-lo``: two priorities on core 1; the high one wakes
  every 300 us (a receive with a timeout) and preempts the low one, whose
  computation continues where it was cut.
- ``sigma0``, the root pager: the root task's first touch of each page
  faults, and sigma0 answers with a 1:1 mapping of the frame.

Every program reports to the root over the ``done`` gate; the root prints a
line and exits when all have finished.
"""

from __future__ import annotations

from typing import Any

from l4sim.kernel.abi import IpcErr, Rights
from l4sim.kernel.kernel import Kernel
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, Gate, IrqCap, TaskLocal, start_task

TICKS = 5
CALLS = 8
PIT_PERIOD_NS = 1_000_000


async def server(env: Env) -> int:
    msg = await env.wait()
    served = 0
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        op, arg = msg.proto, msg.words[0] if msg.words else 0
        served += 1
        if op == 2:  # shutdown
            await env.print(f"server: {served} requests served, bye")
            await env.reply(0)
            return 0
        await env.compute(2_000)  # the work of one request
        msg = await env.reply_and_wait(0, arg * arg, msg.label)


async def client(env: Env) -> int:
    srv: Gate = env.cap("server")
    total = 0
    for i in range(1, CALLS + 1):
        r = await srv.call(1, i)
        if r.error:
            await env.print(f"client: call failed with {IpcErr(r.error).name}")
            return 1
        total += r.words[0]
        await env.compute(5_000)
    await env.print(f"client: sum of squares 1..{CALLS} = {total} (label seen by server {r.words[1]:#x})")
    await srv.call(2)
    await env.cap("done").send(0, 1)
    return 0


async def ticker(env: Env) -> int:
    irq: IrqCap = env.cap("irq")
    await irq.attach(env.thread, 0x100)
    await env.icu.bind(0, irq)
    for n in range(1, TICKS + 1):
        msg = await env.receive(irq)
        now = await env.clock()
        await env.print(f"ticker: tick {n} label {msg.label:#x} at {now / 1e6:.3f} ms")
        await irq.unmask()
    await env.icu.unbind(0, irq)
    await env.cap("done").send(0, 2)
    return 0


async def worker(env: Env, name: str, rounds: int, work: int, sleep: int | None) -> int:
    me = env.thread
    for _ in range(rounds):
        await env.compute(work)
        if sleep is not None:
            await env.receive(me, timeout=sleep)  # sleep: nobody sends to ourselves
    cpu_ns = (await me.stats())[0]
    await env.print(f"{name}: done at {(await env.clock()) / 1e6:.3f} ms, cpu {cpu_ns / 1e6:.3f} ms")
    await env.cap("done").send(0, 3)
    return 0


async def root(env: Env) -> int:
    await env.print("root: l4sim kernel demo")
    # memory: each first touch of a page is a page fault that sigma0 resolves
    for i in range(4):
        await env.mem.write(0x100000 + i * 0x1000, f"page {i}".encode())
    text = await env.mem.read(0x102000, 6)
    await env.print(f"root: 4 pages mapped by sigma0 on demand, page 2 holds {text.decode()!r}")
    done = await env.factory.create_gate(env.thread, 0x40)
    _, srv = await start_task(env, "server", server, prio=20)
    gate = await env.factory.create_gate(srv, 0x10)
    # the client may call (W) but not hold the special right: the server sees label 0x11
    await start_task(env, "client", client, {"server": (gate, Rights.R | Rights.W), "done": done}, prio=10)
    irq = await env.factory.create_irq()
    await start_task(env, "ticker", ticker, {"irq": irq, "icu": env.icu, "done": done}, prio=50)
    cpus = (await env.scheduler.info())[0]
    wcpu = 1 if cpus > 1 else 0
    await start_task(env, "worker-lo", worker, {"done": done}, prio=5, cpu=wcpu,
                     args=("worker-lo", 4, 400_000, None))
    await start_task(env, "worker-hi", worker, {"done": done}, prio=30, cpu=wcpu,
                     args=("worker-hi", 4, 100_000, 300_000))
    pending = 4
    while pending:
        msg = await env.wait()
        if msg.ok and msg.label & ~3 == 0x40:
            pending -= 1
    await env.print("root: all programs finished")
    return 0


def setup(kernel: Kernel, args: Any = None) -> Any:
    """Program the platform timer, start sigma0 and the root task; returns the root thread."""
    kernel.machine.pit.program(PIT_PERIOD_NS)
    nframes = kernel.machine.mem.nframes
    s0 = kernel.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), nframes))
    return kernel.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100, pager=s0)
