"""io: buses from the startup script, claims, what a client sees, and DMA confined to what io
gave the device (a malicious driver aiming its disk's DMA at another task's frames)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.abi import Err, Fpage, MapItem, unpack_bytes
from l4sim.machine.block import ST_DMA, ST_DONE
from l4sim.runtime.ned import ScriptError, load_script
from l4sim.runtime.protocols import IO_BUS, IO_DEVICE, RM, BusOp, DevOp, RmFlag, RmOp
from l4sim.user.env import Env, Gate

from .test_system import run_plan, script, start_plan, statuses

ME = __name__
#: what the programs below report to the test, by name
SEEN: dict[str, Any] = {}
#: where the victim's marker is (physical address), told to the attacker by the test
TARGET: dict[str, int] = {}
MARKER = b"the victim's own bytes"


async def lister(env: Env, name: str) -> int:
    """List the bus, try an index past it, claim everything, report."""
    bus = env.cap("bus", Gate)
    n = (await bus.call(IO_BUS, BusOp.LIST)).words[0]
    names = [unpack_bytes((await bus.call(IO_BUS, BusOp.DEVICE, i)).words[3:]).decode() for i in range(n)]
    past = (await bus.call(IO_BUS, BusOp.DEVICE, n)).proto
    claims = [(await bus.call(IO_BUS, BusOp.CLAIM, i, rcv=(Fpage.obj(env.alloc_slot()),))).proto for i in range(n)]
    SEEN[name] = (names, past, claims)
    await env.receive(env.thread, timeout=1_000_000)  # hold the claims a while
    return 0


def test_a_client_sees_only_its_bus_and_a_second_claim_is_refused(tmp_path: Path) -> None:
    """Each bus lists only its devices; an index past them is -ENOENT; a device claimed by one
    holder of a bus is -EBUSY for another until the first ends, then free again."""
    SEEN.clear()
    p = script(tmp_path, f'''
nic("nic0")
disk("blk0")
disk("blk1")
net = io.bus("net", devices=["nic0", "blk0"])
start("one", "{ME}:lister", caps={{"bus": net}}, prio=20, args=("one",))
start("two", "{ME}:lister", caps={{"bus": net}}, prio=10, args=("two",))
start("three", "{ME}:lister", caps={{"bus": io.bus("other", devices=["blk1"])}}, prio=10, args=("three",))
''')
    _, s, reason = run_plan(load_script(p, 2))
    assert reason == "stop"
    assert SEEN["one"] == (["nic0", "blk0"], -Err.ENOENT, [0, 0])
    assert SEEN["two"] == (["nic0", "blk0"], -Err.ENOENT, [-Err.EBUSY, -Err.EBUSY])
    assert SEEN["three"] == (["blk1"], -Err.ENOENT, [0])
    assert statuses(s)["io"] == "killed at the end"


async def claim_late(env: Env) -> int:
    """Claim after the first holder has ended."""
    await env.receive(env.thread, timeout=5_000_000)
    r = await env.cap("bus", Gate).call(IO_BUS, BusOp.CLAIM, 0, rcv=(Fpage.obj(env.alloc_slot()),))
    SEEN["late"] = r.proto
    return 0


def test_a_claim_ends_with_its_holder(tmp_path: Path) -> None:
    """When the claimer's task is gone, io hears of it and the device can be claimed again."""
    SEEN.clear()
    p = script(tmp_path, f'''
disk("blk0")
b = io.bus("b", devices=["blk0"])
start("first", "{ME}:lister", caps={{"bus": b}}, prio=20, args=("first",))
start("late", "{ME}:claim_late", caps={{"bus": b}}, prio=10)
''')
    run_plan(load_script(p, 2))
    assert SEEN["first"][2] == [0]
    assert SEEN["late"] == 0


@pytest.mark.parametrize(("text", "words"), [
    ('disk("d")\nio.bus("a", devices=["d"])\nio.bus("b", devices=["d"])', "is on bus 'a' already"),
    ('io.bus("a", devices=["nic9"])', "the board has no device 'nic9'"),
    ('nic("n", wire="m")', "wire='m' names no other NIC"),
    ('nic("a", wire="b")\nnic("b", wire="c")\nnic("c")', "is cabled to 'c' already"),
    ('nic("n", mac="zz")', "write six hex bytes"),
    ('disk("d", sectors=0)', "give 1 .. 16777216 sectors"),
    ('disk("d")\nstart("x", "l4sim.scenarios.programs.demo:hello", caps={"d": disk("e")})',
     "a program gets devices through a bus"),
    ('nic("iommu")', "the board's own IOMMU"),
])
def test_board_mistakes_are_one_line(tmp_path: Path, text: str, words: str) -> None:
    """Each mistake in the board's description names the line and the fix."""
    p = script(tmp_path, text + '\nstart("h", "l4sim.scenarios.programs.demo:hello")\n')
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    assert words in str(e.value) and "\n" not in str(e.value)


async def victim(env: Env) -> int:
    """Keep a marker in its heap and check it again later."""
    heap = env.heap  # type: ignore[attr-defined]
    await env.mem.write(heap[0], MARKER)
    SEEN["victim_ready"] = True
    await env.receive(env.thread, timeout=20_000_000)
    SEEN["victim_after"] = await env.mem.read(heap[0], len(MARKER))
    return 0


async def attacker(env: Env) -> int:
    """A disk driver that aims its DMA at the victim's frame: a READ would write the disk's data
    there, a WRITE would carry the victim's bytes off to the disk; then one READ into its own
    buffer, which must work."""
    while "addr" not in TARGET:
        await env.receive(env.thread, timeout=100_000)
    bus = env.cap("bus", Gate)
    dev = Gate(env, env.alloc_slot())
    await bus.call(IO_BUS, BusOp.CLAIM, 0, rcv=(Fpage.obj(dev.slot),))
    rm = env.cap("rm", Gate)
    regs = (await rm.call(RM, RmOp.RESERVE, 0, 4096, RmFlag.SEARCH_ADDR)).words[0]
    await dev.call(IO_DEVICE, DevOp.IOMEM, rcv=(Fpage.mem(regs, 12),))
    ds = env.alloc_slot()
    r = await dev.call(IO_DEVICE, DevOp.DMA_ALLOC, 8192, rcv=(Fpage.obj(ds),))
    bus_addr = r.words[0]
    va = (await rm.call(RM, RmOp.ATTACH, 0, 8192, RmFlag.SEARCH_ADDR | RmFlag.EAGER_MAP, 0,
                        items=(MapItem(Gate(env, ds).fpage()),))).words[0]
    for off, v in ((0x100, bus_addr), (0x104, 0), (0x108, 8), (0x000, 1)):
        await env.mem.write(regs + off, v.to_bytes(4, "little"))
    out = []
    for i, (op, addr) in enumerate(((1, TARGET["addr"]), (2, TARGET["addr"]), (1, bus_addr + 4096))):
        await env.mem.write(va + i * 32, struct.pack("<BBHIQQQ", op, 0, 0, 1, 0, addr, 0))
        await env.mem.write(regs + 0x118, (i + 1).to_bytes(4, "little"))
        while not (st := (await env.mem.read(va + i * 32 + 1, 1))[0]):
            await env.receive(env.thread, timeout=50_000)
        out.append(st)
    SEEN["statuses"] = out
    SEEN["faults"] = (await dev.call(IO_DEVICE, DevOp.INFO)).words[1]
    SEEN["own"] = await env.mem.read(va + 4096, 16)
    return 0


def test_a_malicious_driver_cannot_dma_into_another_tasks_frames(tmp_path: Path) -> None:
    """The driver writes the physical address of the victim's heap frame into its disk's
    requests: both transfers are refused (status DMA error), the IOMMU counts two faults, the
    victim's bytes are untouched; its own buffer works."""
    SEEN.clear()
    TARGET.clear()
    p = script(tmp_path, f'''
disk("blk0", sectors=16)
start("victim", "{ME}:victim", prio=30)
start("attacker", "{ME}:attacker", caps={{"bus": io.bus("b", devices=["blk0"])}}, prio=20)
''')
    plan = load_script(p, 2)
    k, s = start_plan(plan)
    assert k.run(until=10_000_000_000, stop=lambda: "victim_ready" in SEEN) == "stop"
    task = next(t for t in k.tasks if t.name == "victim")
    vpn = min(v for v in task.vspace.pages if v >= 0x10010)  # the heap's first page
    pfn = task.vspace.pages[vpn].pfn
    assert bytes(k.machine.mem.frame(pfn)[: len(MARKER)]) == MARKER
    TARGET["addr"] = pfn << 12
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    tried = 2
    refused = sum(1 for st in SEEN["statuses"][:2] if st & ST_DMA)
    assert (tried, refused) == (2, 2)
    assert SEEN["statuses"][2] == ST_DONE  # its own buffer: fine
    assert SEEN["faults"] == 2
    assert SEEN["victim_after"] == MARKER
    assert bytes(k.machine.mem.frame(pfn)[: len(MARKER)]) == MARKER
    assert k.machine.device_stats()["iommu"]["refused"] == 2


# --- the display's devices: registers, pixel memory, no line or DMA where the device has none


async def display_prober(env: Env) -> int:
    """Claim the framebuffer and the keyboard through the bus, ask each for what it has and
    what it lacks, write pixels through io's dataspace of the pixel memory, read them back."""
    from l4sim.drivers.iodev import claim
    from l4sim.machine.display import FB_WIDTH, IN_COUNT
    from l4sim.runtime.protocols import DevKind

    bus = env.cap("bus", Gate)
    n = (await bus.call(IO_BUS, BusOp.LIST)).words[0]
    SEEN["devices"] = [tuple((await bus.call(IO_BUS, BusOp.DEVICE, i)).words[:3]) for i in range(n)]
    fb = await claim(env, bus, DevKind.FB)
    kbd = await claim(env, bus, DevKind.KBD)
    assert fb is not None and kbd is not None
    SEEN["fb"] = {
        "irq": (await fb.gate.call(IO_DEVICE, DevOp.IRQ, rcv=(Fpage.obj(env.alloc_slot()),))).proto,
        "dma": (await fb.gate.call(IO_DEVICE, DevOp.DMA_ALLOC, 4096, rcv=(Fpage.obj(env.alloc_slot()),))).proto,
        "info": (await fb.gate.call(IO_DEVICE, DevOp.INFO)).words,
    }
    SEEN["kbd memory"] = (await kbd.gate.call(IO_DEVICE, DevOp.MEMORY,
                                              rcv=(Fpage.obj(env.alloc_slot()),))).proto
    await fb.map_registers()
    await kbd.map_registers()
    base, size = await fb.memory()
    await env.mem.write(base + 4 * 5, b"\x01\x02\x03\x00")
    SEEN["pixels"] = (size, await fb.readl(FB_WIDTH), await env.mem.read(base + 4 * 5, 4))
    irq = await kbd.irq(0x20)
    msg = await env.receive(irq, timeout=20_000_000)  # the test's key press arrives
    SEEN["key"] = (msg.error == 0, await kbd.readl(IN_COUNT))
    return 0


def test_the_display_devices_come_through_io_with_what_each_has(tmp_path: Path) -> None:
    """The framebuffer lists no interrupt line, refuses IRQ and DMA, and hands out its pixel
    memory as a dataspace whose bytes are the device's; the keyboard has no memory but a line
    whose interrupt arrives."""
    from l4sim.machine.display import KEY_SAK
    from l4sim.runtime.protocols import DevKind

    SEEN.clear()
    p = script(tmp_path, f'''
display(32, 16)
start("probe", "{ME}:display_prober", caps={{"bus": io.bus("d", devices=["framebuffer", "keyboard"])}},
      prio=20)
''')
    k, s = start_plan(load_script(p, 2))
    d = k.machine.display
    assert d is not None
    k.machine.events.at(10_000_000, d.keyboard.inject, KEY_SAK)
    k.run(until=1_000_000_000, stop=s.done)
    assert SEEN["devices"] == [(int(DevKind.FB), 1, 0), (int(DevKind.KBD), 1, 1)]
    assert SEEN["fb"] == {"irq": -Err.ENOENT, "dma": -Err.ENODEV, "info": (int(DevKind.FB), 0)}
    assert SEEN["kbd memory"] == -Err.ENOENT
    assert SEEN["pixels"] == (4096, 32, b"\x01\x02\x03\x00")  # whole pages of device memory
    assert d.fb.region.buf[20:24] == b"\x01\x02\x03\x00"
    assert SEEN["key"] == (True, 1)
    assert statuses(s)["probe"] == "exit 0"


async def key_hoarder(env: Env) -> int:
    """Claim the keyboard and the framebuffer, attach the pixels, read no key; give the
    framebuffer up (delete its device gate), then end."""
    from l4sim.drivers.iodev import claim
    from l4sim.runtime.protocols import DevKind

    bus = env.cap("bus", Gate)
    kbd, fb = await claim(env, bus, DevKind.KBD), await claim(env, bus, DevKind.FB)
    assert kbd is not None and fb is not None
    await fb.memory()
    await env.receive(env.thread, timeout=10_000_000)
    await env.task.delete(fb.gate.slot)
    await env.receive(env.thread, timeout=20_000_000)
    return 0


async def key_successor(env: Env) -> int:
    """Claim the keyboard after the first holder ended: nothing of its input is left."""
    from l4sim.drivers.iodev import claim
    from l4sim.machine.display import IN_COUNT
    from l4sim.runtime.protocols import DevKind

    await env.receive(env.thread, timeout=60_000_000)
    kbd = await claim(env, env.cap("bus", Gate), DevKind.KBD)
    assert kbd is not None
    await kbd.map_registers()
    SEEN["successor"] = await kbd.readl(IN_COUNT)
    return 0


def test_a_dead_input_drivers_unread_keys_do_not_reach_the_next(tmp_path: Path) -> None:
    """Keys queued while a driver held the keyboard and never read them are dropped when its claim
    ends (io resets the device); the next claimer finds the FIFO empty, and the dead driver's
    pixel mappings are gone with its claim."""
    SEEN.clear()
    p = script(tmp_path, f'''
display(32, 16)
b = io.bus("in", devices=["keyboard", "framebuffer"])
start("first", "{ME}:key_hoarder", caps={{"bus": b}}, prio=20)
start("next", "{ME}:key_successor", caps={{"bus": b}}, prio=10)
''')
    k, s = start_plan(load_script(p, 2))
    d = k.machine.display
    assert d is not None
    for t in (5_000_000, 6_000_000, 7_000_000):
        k.machine.events.at(t, d.keyboard.inject, 30)
    pixels = d.fb.region.base_pfn

    def mapping_pixels() -> list[str]:
        return [t.name for t in k.tasks if t.alive and t.name not in ("io", "sigma0")
                and any(m.pfn == pixels for m in t.vspace.pages.values())]

    k.run(until=9_000_000, stop=s.done)
    assert mapping_pixels() == ["first"]
    k.run(until=20_000_000, stop=s.done)  # the framebuffer's claim has ended: its mappings with it
    assert mapping_pixels() == []
    k.run(until=1_000_000_000, stop=s.done)
    assert d.keyboard.events == 3 and SEEN["successor"] == 0
