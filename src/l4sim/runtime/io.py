"""io: the device manager -- virtual buses, device claims, interrupts, I/O memory, DMA.

L4Re's ``io`` owns the platform's devices and gives each driver a *virtual
bus* holding only the devices its startup script assigned to it.  Here the
startup script describes the board (``nic(...)``, ``disk(...)``,
``display(...)``: a framebuffer, a keyboard and a pointer) and makes a
bus for a client with ``io.bus("net", devices=["nic0"])``; ned starts io
(task ``io``) before the script's programs, and a program given the bus
holds one IPC gate to io for it, nothing more of the hardware.

What io holds: sigma0 (ned's, on a board with devices), from which it takes
the register pages of the board's devices and a framebuffer's pixel memory
(``REQ_FPAGE_IOMEM``) and, when some device does DMA, a pool of RAM for it
(``REQ_FPAGE_ANY``: sigma0 says where the frames are, so io knows their
physical addresses); the ICU, to bind interrupt lines; a factory
of its own for Irqs and gates; and the IOMMU's register page, which nobody
else gets.

The protocols (``runtime/protocols.py``, docs/runtime.md § 5.11):

- on a **bus** gate: ``LIST``, ``DEVICE i`` (kind, register pages, name),
  ``CLAIM i`` -- a *device gate*, granted, so its death (the claimer's task
  died, or it dropped the gate) reaches io as a deletion notification.  A
  device has at most one claim: a second ``CLAIM`` is ``-EBUSY`` while the
  first lives.  A client sees only its bus's devices (an index past them is
  ``-ENOENT``) and cannot name any other.
- on a **device** gate: ``IOMEM`` maps the device's register pages into the
  caller's receive window (its loads and stores there become register
  accesses, traced by the kernel); ``IRQ`` hands out an Irq (R W) bound to
  the device's line (``-ENOENT`` for a device without one: the framebuffer);
  ``MEMORY`` hands out a dataspace io serves of the device's own memory (a
  framebuffer's pixels), which the driver attaches like any dataspace;
  ``DMA_ALLOC size`` (``-ENODEV`` for a device that does no DMA) makes a
  buffer of physically contiguous memory from io's pool, tells the IOMMU
  that this device (and no other) may reach it, and hands out a dataspace io
  serves (``DATASPACE`` ``MAP``/``INFO``: attach it through the region
  manager) with the buffer's device address; ``DMA_FREE addr`` undoes one.  When the claim ends, io
  resets the device, takes its Irq, register and memory mappings back, and
  revokes its buffers from the IOMMU and from every address space.

DMA is confined as by an IOMMU: a device reaches only the buffers io made for
*its* claim.  A driver that writes any other physical address into a
descriptor -- another task's frames, io's own, a guess -- makes the device
report an error (a status bit, an interrupt cause); the IOMMU counts the
refused access and the memory is neither read nor written.

Every request gets an answer (docs/runtime.md § 5.9); one that raises all the
same is ``-EIO`` with a line on io's log.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from l4sim.kernel.abi import Err, Fpage, MapItem, MemRights, Proto, Rights, pack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine.iommu import (
    CMD_ALLOW_RW,
    CMD_REVOKE,
    CMD_REVOKE_ALL,
    REG_ADDR,
    REG_CMD,
    REG_DEV,
    REG_FAULTS,
)
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from l4sim.runtime.protocols import (
    DATASPACE,
    IO_BUS,
    IO_DEVICE,
    BusOp,
    DevKind,
    DevOp,
    DsFlag,
    DsOp,
)
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, REQ_FPAGE_IOMEM, request
from l4sim.user.env import Env, Gate, IrqCap, L4Error
from l4sim.user.server import request_failed

#: the name of io's task (a program of a startup script may not take it)
IO_TASK = "io"
#: where io maps the devices' register pages (one page each, in board order), its DMA pool,
#: and the devices' own memory (a window of 2**MEM_WINDOW bytes each, in board order)
REGS_BASE = 1 << 40
POOL_BASE = 1 << 41
MEM_BASE = 1 << 42
MEM_WINDOW = 26
#: io's DMA pool: 2**POOL_ORDER bytes of physically contiguous RAM from sigma0
POOL_ORDER = 22
#: largest single DMA buffer
DMA_MAX = 1 << 20
#: labels: io's delete Irq, the buses (BUS_LABEL0 + 4 i), then device claims and DMA buffers
DEL_LABEL = 0x4
BUS_LABEL0 = 0x100
FIRST_LABEL = 0x1000
#: the kinds of device the protocol names
KINDS = {"nic": DevKind.NIC, "blk": DevKind.BLK, "fb": DevKind.FB, "kbd": DevKind.KBD,
         "ptr": DevKind.PTR}
#: every device's control register and its reset bit: io resets a device whose claim ended, so
#: the dead driver's rings stop being worked on and its unread input is gone
CTRL = 0x000
CTRL_RESET = 1 << 31


def chunks(base: int, size: int) -> list[tuple[int, int]]:
    """Naturally aligned power-of-two (address, log2 size) pieces exactly covering a page range
    (what one flexpage each can name)."""
    out = []
    while size > 0:
        order = PAGE_SHIFT
        while base % (1 << (order + 1)) == 0 and (1 << (order + 1)) <= size:
            order += 1
        out.append((base, order))
        base += 1 << order
        size -= 1 << order
    return out


@dataclass(frozen=True)
class DeviceInfo:
    """A board device as ned tells io of it (``line``, ``rid``: -1 for none; ``mem_pages``:
    0 for a device without memory of its own)."""

    name: str
    kind: str
    base_pfn: int
    npages: int
    line: int
    rid: int
    mem_pfn: int = 0
    mem_pages: int = 0


@dataclass(eq=False)
class DmaBuf:
    """A DMA buffer: pool pages ``first .. first+npages``, served over gate ``label``."""

    label: int
    slot: int
    first: int
    npages: int
    claim: Claim

    @property
    def size(self) -> int:
        return self.npages << PAGE_SHIFT


@dataclass(eq=False)
class DevMem:
    """A device's own memory as a dataspace io serves to its claimer, over gate ``label``."""

    label: int
    slot: int
    claim: Claim


@dataclass(eq=False)
class Claim:
    """A device claimed through a bus: what io handed out for it."""

    label: int
    dev: DeviceInfo
    index: int  # the device's place in io's register window
    irq: IrqCap | None = None
    bufs: dict[int, DmaBuf] = field(default_factory=dict)
    mem: DevMem | None = None


class Io:
    """io's state: the devices, the buses, the claims, the DMA pool."""

    def __init__(self, env: Env, devices: list[DeviceInfo], buses: list[tuple[str, list[str]]]) -> None:
        self.env = env
        self.devices = devices
        self.by_name = {d.name: d for d in devices}
        #: bus label -> (bus name, its devices in order)
        self.buses: dict[int, tuple[str, list[DeviceInfo]]] = {
            BUS_LABEL0 + 4 * i: (name, [self.by_name[n] for n in devs]) for i, (name, devs) in enumerate(buses)}
        #: device name -> its live claim
        self.claimed: dict[str, Claim] = {}
        #: claim label -> claim, DMA buffer label -> buffer
        self.claims: dict[int, Claim] = {}
        self.bufs: dict[int, DmaBuf] = {}
        #: device memory gate label -> its dataspace
        self.mems: dict[int, DevMem] = {}
        self.next_label = FIRST_LABEL
        #: the pool: physical address of page 0, and which pages are in use
        self.pool_phys = 0
        self.pool_pages = 0
        self.used: list[bool] = []
        self.iommu_va: int | None = None
        #: claims refused because the device was claimed already
        self.busy_refusals = 0

    def label(self) -> int:
        lb = self.next_label
        self.next_label += 4
        return lb

    def regs_va(self, dev: DeviceInfo) -> int:
        return REGS_BASE + (self.devices.index(dev) << (PAGE_SHIFT + 4))

    def mem_va(self, dev: DeviceInfo) -> int:
        """Where io maps ``dev``'s own memory (its offset 0)."""
        return MEM_BASE + (self.devices.index(dev) << MEM_WINDOW)

    def alloc(self, npages: int) -> int | None:
        """First fit of ``npages`` contiguous pool pages; the first page's index or None."""
        run = 0
        for i, used in enumerate(self.used):
            run = 0 if used else run + 1
            if run == npages:
                first = i - npages + 1
                for j in range(first, first + npages):
                    self.used[j] = True
                return first
        return None

    # --- the IOMMU, through its registers
    async def iommu(self, rid: int, addr: int, cmd: int) -> None:
        env, va = self.env, self.iommu_va
        assert va is not None, "io maps the IOMMU before it serves"
        await env.mem.write(va + REG_DEV, rid.to_bytes(8, "little"))
        await env.mem.write(va + REG_ADDR, addr.to_bytes(8, "little"))
        await env.mem.write(va + REG_CMD, cmd.to_bytes(8, "little"))

    async def faults(self, rid: int) -> int:
        env, va = self.env, self.iommu_va
        assert va is not None
        await env.mem.write(va + REG_DEV, rid.to_bytes(8, "little"))
        return int.from_bytes(await env.mem.read(va + REG_FAULTS, 8), "little")


async def io_server(env: Env, devices: list[DeviceInfo], buses: list[tuple[str, list[str]]]) -> int:
    """io's program: take the devices' registers and a DMA pool from sigma0, serve the buses.

    ``devices`` are every device of the board (the IOMMU among them),
    ``buses`` the script's buses as (name, device names).  The bus gates are
    the capabilities ``bus.NAME`` (server side: io binds them).
    """
    io = Io(env, devices, buses)
    s0 = env.cap("sigma0", Gate).slot
    for d in devices:  # every device's register page(s), at the device's window
        order = PAGE_SHIFT + (d.npages - 1).bit_length()
        va = io.regs_va(d)
        r = await request(env, s0, REQ_FPAGE_IOMEM, Fpage.mem(d.base_pfn << PAGE_SHIFT, order), Fpage.mem(va, order))
        if r.error or r.proto < 0:
            raise L4Error(-r.proto if r.proto < 0 else 0, f"io: registers of {d.name} from sigma0", r.error)
        if d.kind == "iommu":
            io.iommu_va = va
        else:
            await env.mem.write(va + CTRL, CTRL_RESET.to_bytes(4, "little"))  # a known state
        base = d.mem_pfn << PAGE_SHIFT
        for addr, order in chunks(base, d.mem_pages << PAGE_SHIFT):  # its own memory, if any
            r = await request(env, s0, REQ_FPAGE_IOMEM, Fpage.mem(addr, order),
                              Fpage.mem(io.mem_va(d) + addr - base, order))
            if r.error or r.proto < 0:
                raise L4Error(-r.proto if r.proto < 0 else 0, f"io: memory of {d.name} from sigma0", r.error)
    if any(d.rid >= 0 for d in devices):  # a device that does DMA: a pool for its buffers
        r = await request(env, s0, REQ_FPAGE_ANY, Fpage.mem(0, POOL_ORDER), Fpage.mem(POOL_BASE, POOL_ORDER))
        if not r.error and r.proto == 0 and r.words:
            io.pool_phys = r.words[0]
            io.pool_pages = 1 << (POOL_ORDER - PAGE_SHIFT)
        else:
            await env.print("io: no memory for DMA from sigma0: DMA_ALLOC will fail")
    io.used = [False] * io.pool_pages
    for i, (name, _) in enumerate(buses):
        await env.cap(f"bus.{name}", Gate).bind(env.thread, BUS_LABEL0 + 4 * i)
    dirq = await env.factory.create_irq()
    await dirq.attach(env.thread, DEL_LABEL)
    await env.thread.register_delete_irq(dirq)
    scratch = env.alloc_slot()
    msg = await env.wait()
    while True:
        items: tuple[MapItem, ...] = ()
        granted: int | None = None
        try:
            reply, items, granted = await _dispatch(io, msg)
        except Exception as exc:  # a request nothing below foresaw: answer it, keep serving
            reply = (await request_failed(env, IO_TASK, msg, exc),)
        if reply is None:
            msg = await env.wait()
            continue
        msg = await env.reply_and_wait(reply[0], *reply[1:], items=items)
        if granted is not None and msg.error and not msg.error & 1:  # the claimer never got its gate
            claim = io.claims.get(granted)
            if claim is not None:
                with contextlib.suppress(L4Error):
                    await env.task.delete(scratch)
                await _release(io, claim)
        if msg.error and not msg.error & 1:
            msg = await env.wait()


async def _dispatch(io: Io, msg: Msg) -> tuple[tuple[int, ...] | None, tuple[MapItem, ...], int | None]:
    """The reply (label, words), its items, and the label of a claim it grants."""
    if msg.error:
        return None, (), None
    if msg.proto == Proto.IRQ and msg.label == DEL_LABEL:  # gates that died: claims, buffers
        for label in msg.words:
            claim = io.claims.get(label)
            if claim is not None:
                await _release(io, claim)
        return None, (), None
    label = msg.label & ~3
    w = msg.words
    if label in io.buses and msg.proto == IO_BUS:
        return await _bus(io, io.buses[label][1], w)
    claim = io.claims.get(label)
    if claim is not None and msg.proto == IO_DEVICE:
        reply, items = await _device(io, claim, w)
        return reply, items, None
    buf = io.bufs.get(label)
    if buf is not None and msg.proto == DATASPACE:
        return _dataspace(io, buf, w, bool(msg.label & Rights.W))
    mem = io.mems.get(label)
    if mem is not None and msg.proto == DATASPACE:
        d = mem.claim.dev
        return (*dataspace_reply(w, d.mem_pages, io.mem_va(d), bool(msg.label & Rights.W)), None)
    return (-Err.ENOSYS,), (), None


async def _bus(io: Io, devs: list[DeviceInfo], w: tuple[int, ...]
               ) -> tuple[tuple[int, ...], tuple[MapItem, ...], int | None]:
    env = io.env
    if not w:
        return (-Err.EINVAL,), (), None
    op = w[0]
    if op == BusOp.LIST:
        return (0, len(devs)), (), None
    if op not in (BusOp.DEVICE, BusOp.CLAIM):
        return (-Err.ENOSYS,), (), None
    if len(w) < 2:
        return (-Err.EINVAL,), (), None
    if w[1] >= len(devs):
        return (-Err.ENOENT,), (), None
    d = devs[w[1]]
    if op == BusOp.DEVICE:
        return (0, KINDS[d.kind], d.npages, int(d.line >= 0), *pack_bytes(d.name.encode())), (), None
    if d.name in io.claimed:
        io.busy_refusals += 1
        return (-Err.EBUSY,), (), None
    lb = io.label()
    try:
        gate = await env.factory.create_gate(env.thread, lb)
    except L4Error as e:
        return (-(e.err or Err.ENOMEM),), (), None
    claim = Claim(lb, d, io.devices.index(d))
    io.claims[lb] = claim
    io.claimed[d.name] = claim
    env.free_slot(gate.slot)  # granted below: the slot is empty once the reply went
    return (0, KINDS[d.kind]), (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),), lb


async def _device(io: Io, claim: Claim, w: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
    """A request on a device gate: (reply, items)."""
    env = io.env
    d = claim.dev
    if not w:
        return (-Err.EINVAL,), ()
    op = w[0]
    if op == DevOp.INFO:
        return (0, KINDS[d.kind], await io.faults(d.rid) if d.rid >= 0 else 0), ()
    if op == DevOp.IOMEM:
        order = PAGE_SHIFT + (d.npages - 1).bit_length()
        return (0, d.npages), (MapItem(Fpage.mem(io.regs_va(d), order, MemRights.RW)),)
    if op == DevOp.IRQ:
        if d.line < 0:
            return (-Err.ENOENT,), ()
        if claim.irq is None:
            irq = await env.factory.create_irq()
            try:
                await env.icu.bind(d.line, irq)
            except L4Error:
                await env.task.delete(irq.slot)
                env.free_slot(irq.slot)
                return (-Err.EBUSY,), ()
            claim.irq = irq
        return (0,), (MapItem(claim.irq.fpage(Rights.R | Rights.W)),)
    if op == DevOp.MEMORY:
        if not d.mem_pages:
            return (-Err.ENOENT,), ()
        if claim.mem is None:
            lb = io.label()
            try:
                gate = await env.factory.create_gate(env.thread, lb)
            except L4Error as e:
                return (-(e.err or Err.ENOMEM),), ()
            claim.mem = DevMem(lb, gate.slot, claim)
            io.mems[lb] = claim.mem
        return (0, d.mem_pages << PAGE_SHIFT), (MapItem(Gate(env, claim.mem.slot).fpage(Rights.R | Rights.W)),)
    if op == DevOp.DMA_ALLOC:
        if d.rid < 0:
            return (-Err.ENODEV,), ()
        if len(w) < 2 or not 0 < w[1] <= DMA_MAX:
            return (-Err.EINVAL,), ()
        npages = (w[1] + PAGE_MASK) >> PAGE_SHIFT
        first = io.alloc(npages)
        if first is None:
            return (-Err.ENOMEM,), ()
        lb = io.label()
        try:
            gate = await env.factory.create_gate(env.thread, lb)
        except L4Error as e:
            for j in range(first, first + npages):
                io.used[j] = False
            return (-(e.err or Err.ENOMEM),), ()
        buf = DmaBuf(lb, gate.slot, first, npages, claim)
        io.bufs[lb] = buf
        claim.bufs[lb] = buf
        phys = io.pool_phys + (first << PAGE_SHIFT)
        for j in range(npages):  # zeroed, then reachable by this device only
            await env.mem.write(POOL_BASE + ((first + j) << PAGE_SHIFT), bytes(PAGE_SIZE))
            await io.iommu(d.rid, phys + (j << PAGE_SHIFT), CMD_ALLOW_RW)
        return (0, phys, buf.size), (MapItem(gate.fpage(Rights.R | Rights.W)),)
    if op == DevOp.DMA_FREE:
        if len(w) < 2:
            return (-Err.EINVAL,), ()
        for buf in claim.bufs.values():
            if io.pool_phys + (buf.first << PAGE_SHIFT) == w[1]:
                await _free_buf(io, buf)
                return (0,), ()
        return (-Err.ENOENT,), ()
    return (-Err.ENOSYS,), ()


def _dataspace(io: Io, buf: DmaBuf, w: tuple[int, ...], write: bool
               ) -> tuple[tuple[int, ...], tuple[MapItem, ...], int | None]:
    """io's DMA buffers speak the dataspace protocol (``MAP``, ``INFO``) for the region manager."""
    return (*dataspace_reply(w, buf.npages, POOL_BASE + (buf.first << PAGE_SHIFT), write), None)


def dataspace_reply(w: tuple[int, ...], npages: int, va: int, write: bool
                    ) -> tuple[tuple[int, ...], tuple[MapItem, ...]]:
    """The answer to a dataspace request (``INFO``, ``MAP``) on ``npages`` pages mapped from
    ``va`` on in the server's own space, whose frames are all there (io's DMA buffers and
    device memory, the framebuffer driver's pixels); ``write``: the caller may write."""
    size = npages << PAGE_SHIFT
    if not w:
        return (-Err.EINVAL,), ()
    if w[0] == DsOp.INFO:
        return (0, size, DsFlag.RW if write else 0, npages), ()
    if w[0] != DsOp.MAP:
        return (-Err.ENOSYS,), ()
    if len(w) < 3:
        return (-Err.EINVAL,), ()
    off, flags = w[1], w[2]
    if off >= size:
        return (-Err.ERANGE,), ()
    if flags & DsFlag.RW and not write:
        return (-Err.EPERM,), ()
    rights = MemRights.R | (MemRights.W if flags & DsFlag.RW else 0)
    page = va + (off & ~PAGE_MASK)
    return (0,), (MapItem(Fpage.mem(page, PAGE_SHIFT, rights), snd_base=off & ~PAGE_MASK),)


async def _free_buf(io: Io, buf: DmaBuf) -> None:
    """The IOMMU forgets ``buf``, every mapping of it goes, its gate is deleted, its pages free."""
    env = io.env
    phys = io.pool_phys + (buf.first << PAGE_SHIFT)
    for j in range(buf.npages):
        await io.iommu(buf.claim.dev.rid, phys + (j << PAGE_SHIFT), CMD_REVOKE)
        await env.task.unmap(Fpage.mem(POOL_BASE + ((buf.first + j) << PAGE_SHIFT), PAGE_SHIFT),
                             include_self=False)
        io.used[buf.first + j] = False
    with contextlib.suppress(L4Error):
        await env.task.delete(buf.slot)
    env.free_slot(buf.slot)
    io.bufs.pop(buf.label, None)
    buf.claim.bufs.pop(buf.label, None)


async def _release(io: Io, claim: Claim) -> None:
    """A claim ends (its gate died): reset the device, take back its Irq, registers and
    buffers; the device can be claimed again."""
    env = io.env
    d = claim.dev
    io.claims.pop(claim.label, None)
    if io.claimed.get(d.name) is claim:
        del io.claimed[d.name]
    va = io.regs_va(d)
    await env.mem.write(va + CTRL, CTRL_RESET.to_bytes(4, "little"))
    order = PAGE_SHIFT + (d.npages - 1).bit_length()
    await env.task.unmap(Fpage.mem(va, order), include_self=False)
    if claim.irq is not None:
        with contextlib.suppress(L4Error):
            await env.icu.unbind(d.line, claim.irq)
        with contextlib.suppress(L4Error):
            await env.task.delete(claim.irq.slot)
        env.free_slot(claim.irq.slot)
        claim.irq = None
    for buf in list(claim.bufs.values()):
        await _free_buf(io, buf)
    if claim.mem is not None:  # its memory: every mapping made from io's goes, then the gate
        base = d.mem_pfn << PAGE_SHIFT
        for addr, order in chunks(base, d.mem_pages << PAGE_SHIFT):
            await env.task.unmap(Fpage.mem(io.mem_va(d) + addr - base, order), include_self=False)
        io.mems.pop(claim.mem.label, None)
        with contextlib.suppress(L4Error):
            await env.task.delete(claim.mem.slot)
        env.free_slot(claim.mem.slot)
        claim.mem = None
    if d.rid >= 0:
        await io.iommu(d.rid, 0, CMD_REVOKE_ALL)

