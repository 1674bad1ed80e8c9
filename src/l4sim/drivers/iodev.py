"""A native driver's side of io: find its device on its bus, claim it, map its registers,
attach its memory, take its interrupt.

The framebuffer and input drivers are small native programs, not Linux
drivers under DDE, so they speak io's protocols (``runtime/io.py``,
docs/runtime.md § 5.11) directly: ``LIST``/``DEVICE``/``CLAIM`` on the bus
the startup script gave them (``io.bus("fb", devices=["framebuffer"])``),
then on the device gate ``IOMEM`` (the register page, mapped into an area
the region manager keeps free), ``MEMORY`` (the device's own memory, a
dataspace of io's the region manager attaches) and ``IRQ``.  Registers are
32-bit loads and stores of that page, each one an MMIO access the kernel
traces.

Whatever io refuses is an :class:`~l4sim.user.env.L4Error` naming the
step, for the driver to report in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from l4sim.kernel.abi import Fpage, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine.memory import PAGE_SHIFT
from l4sim.runtime.protocols import IO_BUS, IO_DEVICE, RM, BusOp, DevKind, DevOp, RmFlag, RmOp
from l4sim.runtime.rm import attach
from l4sim.user.env import Env, Gate, IrqCap, L4Error


def _ok(r: Msg, what: str) -> Msg:
    if r.error or r.proto < 0:
        raise L4Error(-r.proto if r.proto < 0 else 0, what, r.error)
    return r


async def _receive(env: Env, gate: Gate, proto: int, what: str, *words: int) -> tuple[int, Msg]:
    """Call ``gate`` for a capability, received into a new slot: (slot, answer).  A refusal
    frees the slot and raises the L4Error naming ``what``."""
    slot = env.alloc_slot()
    r = await gate.call(proto, *words, rcv=(Fpage.obj(slot),))
    if r.error or r.proto < 0:
        env.free_slot(slot)
        _ok(r, what)
    return slot, r


@dataclass
class Device:
    """A device this driver claimed: its gate at io and, once mapped, its registers."""

    env: Env
    name: str
    kind: int
    npages: int
    gate: Gate
    #: where the register page is mapped (0: not yet)
    regs: int = 0

    async def map_registers(self) -> int:
        """Map the register pages into an area the region manager keeps free; their address."""
        if not self.regs:
            env = self.env
            area = _ok(await env.cap("rm", Gate).call(RM, RmOp.RESERVE, 0, self.npages << PAGE_SHIFT,
                                                     RmFlag.SEARCH_ADDR), "reserve an area for registers")
            order = PAGE_SHIFT + (self.npages - 1).bit_length()
            _ok(await self.gate.call(IO_DEVICE, DevOp.IOMEM, rcv=(Fpage.mem(area.words[0], order),)),
                f"registers of {self.name}")
            self.regs = area.words[0]
        return self.regs

    async def readl(self, off: int) -> int:
        """A 32-bit register load."""
        return int.from_bytes(await self.env.mem.read(self.regs + off, 4), "little")

    async def writel(self, off: int, value: int) -> None:
        """A 32-bit register store."""
        await self.env.mem.write(self.regs + off, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    async def memory(self) -> tuple[int, int]:
        """Attach the device's own memory (io's dataspace of it), every page mapped now and
        writable: (address, bytes)."""
        slot, r = await _receive(self.env, self.gate, IO_DEVICE, f"memory of {self.name}", DevOp.MEMORY)
        size = int(r.words[0])
        return await attach(self.env, slot, size, eager=True), size

    async def irq(self, label: int) -> IrqCap:
        """The device's Irq from io, attached to our thread with ``label`` and unmasked."""
        env = self.env
        slot, _r = await _receive(env, self.gate, IO_DEVICE, f"interrupt of {self.name}", DevOp.IRQ)
        irq = IrqCap(env, slot)
        await irq.attach(env.thread, label)
        await irq.unmask()
        return irq


async def claim(env: Env, bus: Gate, kind: DevKind) -> Device | None:
    """Claim the first device of ``kind`` on ``bus`` (None: the bus has none)."""
    n = _ok(await bus.call(IO_BUS, BusOp.LIST), "the bus's devices").words[0]
    for i in range(n):
        w = _ok(await bus.call(IO_BUS, BusOp.DEVICE, i), f"device {i} of the bus").words
        if w[0] != kind:
            continue
        name = unpack_bytes(w[3:]).decode("utf-8", "replace")
        slot, _r = await _receive(env, bus, IO_BUS, f"claim of {name}", BusOp.CLAIM, i)
        return Device(env, name, kind, int(w[1]), Gate(env, slot))
    return None
