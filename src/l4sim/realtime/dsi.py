"""DSI streaming: a shared-memory ring buffer between two components, signalled through Irqs.

DROPS media pipelines (the Drops Streaming Interface) pass packets through
rings in memory both components have mapped, and tell each other about
them with notifications instead of one IPC per packet.  Here:

* the ring is a region both tasks have mapped at some address (shared pages
  or a dataspace attached by both); :func:`init_ring` lays it out;
* two software Irqs: the **data** Irq is attached to the consumer's thread
  and triggered by the producer when the ring goes non-empty; the **space**
  Irq is attached to the producer's thread and triggered by the consumer
  when the ring goes non-full.  Each side needs its own Irq to receive and
  the other's to trigger (W right).

Layout (little-endian words at ``base``)::

    +0   head       packets written so far (the producer writes it)
    +8   tail       packets read so far (the consumer writes it)
    +16  nslots
    +24  slot_size  bytes per slot, including its 8-byte length word
    +64  slot 0, slot 1, ...   each: length word, then the packet's bytes

Packet ``n`` is in slot ``n % nslots``; the ring is empty when
``head == tail`` and full when ``head - tail == nslots``.

Signalling without lost wake-ups (every access is one trap, so the memory is
sequentially consistent): the producer publishes ``head`` and then reads
``tail``; if the consumer had taken every packet before this one
(``tail == old head``) it may be waiting, and the producer triggers the data
Irq.  The consumer, symmetrically, publishes ``tail`` and then reads
``head``; if the producer had filled the ring (``head - old tail ==
nslots``) it triggers the space Irq.  A side that finds the ring empty
(full) waits on its Irq and looks again: a notification that comes while
nobody waits is kept by the kernel (pending, once), so a stale one costs one
more look, never a lost packet.
"""

from __future__ import annotations

from l4sim.user.env import Env, IrqCap

HEADER = 64
OFF_HEAD = 0
OFF_TAIL = 8
OFF_NSLOTS = 16
OFF_SLOT_SIZE = 24


def ring_size(nslots: int, slot_size: int) -> int:
    """Bytes a ring of ``nslots`` slots of ``slot_size`` bytes occupies."""
    return HEADER + nslots * slot_size


async def init_ring(env: Env, base: int, nslots: int, slot_size: int) -> None:
    """Lay out an empty ring at ``base`` (before either side uses it)."""
    if nslots < 1 or slot_size < 16 or slot_size % 8:
        raise ValueError("a ring needs >= 1 slot and a slot size that is a multiple of 8, >= 16")
    await env.mem.write(base, b"\0" * HEADER)
    await env.mem.write_word(base + OFF_NSLOTS, nslots)
    await env.mem.write_word(base + OFF_SLOT_SIZE, slot_size)


class _End:
    def __init__(self, env: Env, base: int, own: IrqCap, other: IrqCap, label: int) -> None:
        self.env = env
        self.base = base
        self.own = own  # the Irq this side waits on
        self.other = other  # the Irq this side triggers
        self.label = label
        self.nslots = 0
        self.slot_size = 0
        #: packets moved, times this side had to wait, notifications sent
        self.packets = 0
        self.waits = 0
        self.signals = 0

    async def attach(self) -> None:
        """Attach this side's Irq to the calling thread and read the ring's geometry."""
        await self.own.attach(self.env.thread, self.label)
        self.nslots = await self.env.mem.read_word(self.base + OFF_NSLOTS)
        self.slot_size = await self.env.mem.read_word(self.base + OFF_SLOT_SIZE)
        if not self.nslots:
            raise ValueError(f"no ring at {self.base:#x}: call init_ring first")

    def slot(self, n: int) -> int:
        return self.base + HEADER + (n % self.nslots) * self.slot_size

    async def _wait(self) -> None:
        self.waits += 1
        await self.env.receive(self.own)


class Producer(_End):
    """The writing side: ``await put(data)``.  ``space`` is attached to this thread, ``data`` triggered."""

    def __init__(self, env: Env, base: int, space: IrqCap, data: IrqCap, label: int = 0x5500) -> None:
        super().__init__(env, base, space, data, label)

    async def put(self, data: bytes, block: bool = True) -> bool:
        """Append one packet; waits while the ring is full (or returns False without ``block``)."""
        if len(data) > self.slot_size - 8:
            raise ValueError(f"packet of {len(data)} bytes does not fit a slot of {self.slot_size - 8}")
        mem = self.env.mem
        head = await mem.read_word(self.base + OFF_HEAD)
        while head - await mem.read_word(self.base + OFF_TAIL) >= self.nslots:
            if not block:
                return False
            await self._wait()
        at = self.slot(head)
        await mem.write_word(at, len(data))
        if data:
            await mem.write(at + 8, data)
        await mem.write_word(self.base + OFF_HEAD, head + 1)
        self.packets += 1
        if await mem.read_word(self.base + OFF_TAIL) == head:  # it was empty: the consumer may wait
            self.signals += 1
            await self.other.trigger()
        return True


class Consumer(_End):
    """The reading side: ``await get()``.  ``data`` is attached to this thread, ``space`` triggered."""

    def __init__(self, env: Env, base: int, data: IrqCap, space: IrqCap, label: int = 0x5600) -> None:
        super().__init__(env, base, data, space, label)

    async def get(self, block: bool = True) -> bytes | None:
        """Take the oldest packet; waits while the ring is empty (or returns None without ``block``)."""
        mem = self.env.mem
        tail = await mem.read_word(self.base + OFF_TAIL)
        while await mem.read_word(self.base + OFF_HEAD) == tail:
            if not block:
                return None
            await self._wait()
        at = self.slot(tail)
        n = await mem.read_word(at)
        data = await mem.read(at + 8, n) if n else b""
        await mem.write_word(self.base + OFF_TAIL, tail + 1)
        self.packets += 1
        if await mem.read_word(self.base + OFF_HEAD) - tail >= self.nslots:  # it was full
            self.signals += 1
            await self.other.trigger()
        return data
