"""simblk: Linux block driver for the l4sim disk controller.

Written against the Linux 2.6 driver API only, in the shape of a simple
request-queue driver (drivers/block/*): ``blk_init_queue`` with a request
function that puts requests into the controller's ring, an interrupt handler
that completes them in order with ``blk_end_request_all`` and restarts the
queue, ``add_disk`` with the controller's capacity.  Each ring slot has a
DMA buffer of its own for the request's data.

Register and descriptor layout: see the controller's manual
(l4sim/machine/block.py).
"""

from __future__ import annotations

import struct

from l4sim.drivers.dde.linux import (
    IORESOURCE_MEM,
    IRQ_HANDLED,
    IRQ_NONE,
    READ,
    REQ_FLUSH,
    SECTOR_SIZE,
    add_disk,
    alloc_disk,
    blk_end_request_all,
    blk_fetch_request,
    blk_init_queue,
    dma_alloc_coherent,
    gendisk,
    ioremap,
    memcpy_fromio,
    memcpy_toio,
    platform_device,
    platform_driver,
    platform_get_irq,
    platform_get_resource,
    printk,
    readl,
    request,
    request_irq,
    request_queue,
    set_capacity,
    spin_lock,
    spin_unlock,
    spinlock_t,
    writel,
)

DRV_NAME = "blk"

CTRL = 0x000
CAPLO = 0x010
CAPHI = 0x014
ICR = 0x020
IMS = 0x028
QBAL = 0x100
QBAH = 0x104
QLEN = 0x108
QT = 0x118
CTRL_EN = 1
CTRL_RST = 1 << 31
ICR_CMP = 1
ICR_DMAERR = 2
OP_READ, OP_WRITE, OP_FLUSH = 1, 2, 3
ST_DONE = 1
ST_ERRORS = 2 | 4 | 8
REQ_SIZE = 32
RING = 16
SLOT_BYTES = 8 * SECTOR_SIZE
EIO = 5


class simblk_dev:  # Linux's naming: the driver's private state
    def __init__(self) -> None:
        self.pdev: platform_device | None = None
        self.regs = 0
        self.irq = 0
        self.ring = 0
        self.ring_dma = 0
        self.bufs = 0
        self.bufs_dma = 0
        self.head = 0  # the oldest request in flight
        self.tail = 0  # the next free slot
        self.inflight: dict[int, request] = {}
        self.lock = spinlock_t()
        self.queue: request_queue | None = None
        self.disk: gendisk | None = None


async def simblk_request(q: request_queue) -> None:
    """Move requests from the queue into the controller's ring while there is room."""
    dev: simblk_dev = q.queuedata
    while (dev.tail + 1) % RING != dev.head:
        rq = blk_fetch_request(q)
        if rq is None:
            return
        i = dev.tail
        buf_dma = dev.bufs_dma + i * SLOT_BYTES
        if rq.flags & REQ_FLUSH:
            op, count, sector = OP_FLUSH, 0, 0
        elif rq.cmd == READ:
            op, count, sector = OP_READ, rq.nr_sectors, rq.sector
        else:
            op, count, sector = OP_WRITE, rq.nr_sectors, rq.sector
            await memcpy_toio(dev.bufs + i * SLOT_BYTES, bytes(rq.buffer[: count * SECTOR_SIZE]))
        if count * SECTOR_SIZE > SLOT_BYTES:
            await blk_end_request_all(rq, -EIO)
            continue
        await memcpy_toio(dev.ring + i * REQ_SIZE, struct.pack("<BBHIQQQ", op, 0, 0, count, sector, buf_dma, i))
        dev.inflight[i] = rq
        dev.tail = (i + 1) % RING
        await writel(dev.tail, dev.regs + QT)


async def simblk_intr(irq: int, dev: simblk_dev) -> int:
    icr = await readl(dev.regs + ICR)
    if not icr:
        return IRQ_NONE
    if icr & ICR_DMAERR:
        await printk("<3>simblk: DMA error (a buffer the controller may not reach)\n")
    while dev.head != dev.tail:
        i = dev.head
        status = (await memcpy_fromio(dev.ring + i * REQ_SIZE + 1, 1))[0]
        if not status & ST_DONE:
            break
        rq = dev.inflight.pop(i)
        if not status & ST_ERRORS and rq.cmd == READ and not rq.flags & REQ_FLUSH:
            rq.buffer[: rq.nr_sectors * SECTOR_SIZE] = await memcpy_fromio(dev.bufs + i * SLOT_BYTES,
                                                                          rq.nr_sectors * SECTOR_SIZE)
        dev.head = (i + 1) % RING
        await blk_end_request_all(rq, -EIO if status & ST_ERRORS else 0)
    q = dev.queue
    assert q is not None
    await spin_lock(dev.lock)
    await simblk_request(q)  # room again: requests that waited for it
    await spin_unlock(dev.lock)
    return IRQ_HANDLED


async def simblk_probe(pdev: platform_device) -> int:
    res = platform_get_resource(pdev, IORESOURCE_MEM, 0)
    if res is None:
        return -19
    dev = simblk_dev()
    dev.pdev = pdev
    dev.regs = await ioremap(res.start, res.end - res.start + 1)
    dev.irq = platform_get_irq(pdev, 0)
    await writel(CTRL_RST, dev.regs + CTRL)
    sectors = await readl(dev.regs + CAPLO) | (await readl(dev.regs + CAPHI)) << 32
    dev.ring, dev.ring_dma = await dma_alloc_coherent(pdev, RING * REQ_SIZE)
    dev.bufs, dev.bufs_dma = await dma_alloc_coherent(pdev, RING * SLOT_BYTES)
    if not dev.ring or not dev.bufs:
        return -12
    await writel(dev.ring_dma & 0xFFFFFFFF, dev.regs + QBAL)
    await writel(dev.ring_dma >> 32, dev.regs + QBAH)
    await writel(RING, dev.regs + QLEN)
    q = blk_init_queue(simblk_request, dev.lock)
    q.queuedata = dev
    dev.queue = q
    if await request_irq(dev.irq, simblk_intr, 0, "simblk", dev):
        return -16
    await writel(ICR_CMP | ICR_DMAERR, dev.regs + IMS)
    await writel(CTRL_EN, dev.regs + CTRL)
    disk = alloc_disk(1)
    disk.disk_name = "sda"
    disk.queue = q
    disk.private_data = dev
    set_capacity(disk, sectors)
    dev.disk = disk
    await add_disk(disk)
    await printk("<6>%s: simblk at %s, %d sectors\n", disk.disk_name, pdev.name, sectors)
    return 0


simblk_driver = platform_driver(name=DRV_NAME, probe=simblk_probe)
