"""DSI streaming: a producer and a consumer in two tasks exchange packets through a shared ring and Irqs."""

from __future__ import annotations

from typing import Any

import pytest

from l4sim.kernel.abi import Fpage
from l4sim.kernel.kernel import Kernel
from l4sim.machine.board import Machine
from l4sim.realtime.dsi import Consumer, Producer, init_ring, ring_size
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, IrqCap, TaskLocal, start_task

RING = 0x200000  # 8 KiB, both tasks map it here


def packet(i: int) -> bytes:
    return f"frame {i:04d} ".encode() * (1 + i % 5)


async def producer(env: Env, n: int, work: int, out: dict[str, Any]) -> None:
    p = Producer(env, RING, env.cap("space", IrqCap), env.cap("data", IrqCap))
    await p.attach()
    for i in range(n):
        await env.compute(work)
        await p.put(packet(i))
    out["producer"] = (p.packets, p.waits, p.signals)


async def consumer(env: Env, n: int, work: int, out: dict[str, Any]) -> None:
    c = Consumer(env, RING, env.cap("data", IrqCap), env.cap("space", IrqCap))
    await c.attach()
    got = []
    for _ in range(n):
        got.append(await c.get())
        await env.compute(work)
    out["got"] = got
    out["consumer"] = (c.packets, c.waits, c.signals)


def run(n: int, pwork: int, cwork: int, nslots: int = 4, cores: int = 1, ccpu: int = 0) -> dict[str, Any]:
    m = Machine(cores=cores, seed=0)
    k = Kernel(m)
    out: dict[str, Any] = {}

    async def root(env: Env) -> None:
        size = ring_size(nslots, 256)
        assert size <= 0x2000
        await init_ring(env, RING, nslots, 256)  # the first touches: sigma0 maps the pages
        await env.mem.write(RING + 0x1000, b"\0")
        data = await env.factory.create_irq()
        space = await env.factory.create_irq()
        ptask, _ = await start_task(env, "producer", producer, {"data": data, "space": space},
                                    prio=10, args=(n, pwork, out))
        ctask, _ = await start_task(env, "consumer", consumer, {"data": data, "space": space},
                                    prio=10, cpu=ccpu, args=(n, cwork, out))
        for t in (ptask, ctask):  # both map the same two pages
            await t.map(env.task, Fpage.mem(RING, 13), RING)

    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), m.mem.nframes))
    k.create_root("root", lambda sp: root(Env(TaskLocal(INITIAL))), prio=100, pager=s0)
    k.run(until=10**10)
    return out


@pytest.mark.parametrize(("pwork", "cwork"), [(1_000, 50_000), (50_000, 1_000), (10_000, 10_000)])
def test_every_packet_arrives_once_in_order(pwork: int, cwork: int) -> None:
    """N packets put by the producer are got by the consumer exactly, whichever side is slower."""
    n = 60
    out = run(n, pwork, cwork)
    assert out["got"] == [packet(i) for i in range(n)]
    assert out["producer"][0] == n and out["consumer"][0] == n


def test_a_fast_producer_waits_for_space() -> None:
    """A producer faster than its consumer fills the ring and waits on its space Irq, which the consumer triggers."""
    out = run(40, 1_000, 50_000)
    assert out["producer"][1] > 0  # waits
    assert out["consumer"][2] > 0  # space notifications sent


def test_a_fast_consumer_waits_for_data() -> None:
    """A consumer faster than its producer finds the ring empty and waits on its data Irq."""
    out = run(40, 50_000, 1_000, cores=2, ccpu=1)
    assert out["consumer"][1] > 0
    assert out["producer"][2] > 0
    assert out["producer"][1] == 0  # on its own core the consumer keeps up: the ring never fills


def test_across_cores() -> None:
    """Producer and consumer on two cores exchange every packet exactly."""
    n = 80
    out = run(n, 3_000, 4_000, nslots=2, cores=2, ccpu=1)
    assert out["got"] == [packet(i) for i in range(n)]
