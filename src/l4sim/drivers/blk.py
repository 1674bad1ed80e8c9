"""The ``blk`` server: a disk driven by a Linux driver under DDE, serving block sessions.

The program's capabilities: ``bus`` (io's bus with the disk), ``svc`` (the
channel it serves, server side), ``factory``.  It registers the Linux driver
(:mod:`l4sim.drivers.linux.simblk`), which claims the bus's disk and adds a
``gendisk``; the server then serves ``BLK`` sessions
(:mod:`l4sim.drivers.protocols`): each ``READ``, ``WRITE`` and ``FLUSH``
becomes a Linux block ``request`` submitted to the disk's queue, and the
reply goes when the driver ends the request (from its interrupt thread).
Requests are served one at a time, in the order they come.

Durability is the controller's: a ``WRITE`` answered is in the disk's cache,
a ``FLUSH`` answered has every earlier write on the medium
(:mod:`l4sim.machine.block`).
"""

from __future__ import annotations

import contextlib

from l4sim.drivers.dde import ddekit
from l4sim.drivers.dde.linux import (
    READ,
    REQ_FLUSH,
    WRITE,
    gendisk,
    platform_driver_register,
    request,
    submit_request,
)
from l4sim.drivers.linux.simblk import simblk_driver
from l4sim.drivers.protocols import BLK, MAX_BLOCK_SECTORS, SECTOR, BlkOp
from l4sim.kernel.abi import Err, Fpage, MapItem, Proto, Rights, StrBuf, StrItem
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env, Gate, L4Error
from l4sim.user.server import request_failed

SVC_LABEL = 0x10
DEL_LABEL = 0x20
SESSION0 = 0x1000
BUF = MAX_BLOCK_SECTORS * SECTOR


async def main(env: Env) -> int:
    """The program (``l4sim.drivers.blk:main``)."""
    return await ddekit.run(env, _serve)


async def _serve(kit: ddekit.Kit) -> int:
    env = kit.env
    if await platform_driver_register(simblk_driver) <= 0 or not kit.registry.get("disk"):
        await env.print("blk: no disk on the bus could be driven")
        return 1
    disk: gendisk = kit.registry["disk"][0]
    svc = env.cap("svc", Gate)
    await svc.bind(env.thread, SVC_LABEL)
    dirq = await env.factory.create_irq()
    await dirq.attach(env.thread, DEL_LABEL)
    await env.thread.register_delete_irq(dirq)
    buf = kit.malloc(2 * BUF)
    await env.mem.write(buf, bytes(2 * BUF))  # mapped: string copies resolve no faults
    rcv = (StrBuf(buf, BUF),)
    sessions: dict[int, int] = {}
    next_label = SESSION0
    msg = await env.wait(rcv=rcv)
    while True:
        items: tuple[MapItem | StrItem, ...] = ()
        opened: int | None = None
        reply: tuple[int, ...] | None
        try:
            if msg.error:
                reply = None
            elif msg.proto == Proto.IRQ and msg.label == DEL_LABEL:
                for label in msg.words:
                    slot = sessions.pop(label, None)
                    if slot is not None:
                        env.free_slot(slot)
                reply = None
            elif msg.label & ~3 == SVC_LABEL and msg.proto == BLK and msg.words[:1] == (BlkOp.OPEN,):
                try:
                    gate = await env.factory.create_gate(env.thread, next_label)
                except L4Error as e:
                    reply = (-(e.err or Err.ENOMEM),)
                else:
                    opened = next_label
                    sessions[opened] = gate.slot
                    next_label += 4
                    items = (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),)
                    reply = (0, disk.capacity, SECTOR)
            elif msg.label & ~3 in sessions and msg.proto == BLK and msg.words:
                reply, items = await _request(env, disk, msg, buf)
            else:
                reply = (-Err.ENOSYS,)
        except Exception as exc:  # a request nothing above foresaw: answer it, keep serving
            reply, items = (await request_failed(env, "blk", msg, exc),), ()
        if reply is None:
            msg = await env.wait(rcv=rcv)
            continue
        msg = await env.reply_and_wait(reply[0], *reply[1:], items=items, rcv=rcv)
        if msg.error and not msg.error & 1:
            if opened is not None:
                slot = sessions.pop(opened)
                with contextlib.suppress(L4Error):
                    await env.task.delete(slot)
                env.free_slot(slot)
            msg = await env.wait(rcv=rcv)


async def _request(env: Env, disk: gendisk, msg: Msg, buf: int) -> tuple[tuple[int, ...], tuple[StrItem, ...]]:
    """READ, WRITE, FLUSH or INFO on a session: a request to the driver, and its answer."""
    w = msg.words
    op = w[0]
    if op == BlkOp.INFO:
        return (0, disk.capacity, SECTOR), ()
    if op == BlkOp.FLUSH:
        rq = request(WRITE, 0, 0, bytearray(), flags=REQ_FLUSH)
        return (await submit_request(disk, rq),), ()
    if op not in (BlkOp.READ, BlkOp.WRITE):
        return (-Err.ENOSYS,), ()
    if len(w) < 3 or not 0 < w[2] <= MAX_BLOCK_SECTORS or w[1] + w[2] > disk.capacity:
        return (-Err.EINVAL,), ()
    sector, count = w[1], w[2]
    n = count * SECTOR
    if op == BlkOp.WRITE:
        got = next((b for b in msg.items if type(b) is StrBuf), None)
        if got is None or got.length != n:
            return (-Err.EINVAL,), ()
        data = bytearray(await env.mem.read(buf, n))
        return (await submit_request(disk, request(WRITE, sector, count, data)),), ()
    rq = request(READ, sector, count, bytearray(n))
    err = await submit_request(disk, rq)
    if err:
        return (err,), ()
    await env.mem.write(buf + BUF, bytes(rq.buffer))
    return (0, n), (StrItem(buf + BUF, n),)


class BlkClient:
    """A client's block session, with a buffer of ``MAX_BLOCK_SECTORS`` sectors in its memory."""

    def __init__(self, env: Env, session: Gate, sectors: int, buf: int) -> None:
        self.env = env
        self.session = session
        self.sectors = sectors
        self.buf = buf

    @classmethod
    async def open(cls, env: Env, svc: Gate, buf: int) -> BlkClient:
        await env.mem.write(buf, bytes(BUF))
        slot = env.alloc_slot()
        r = await svc.call(BLK, BlkOp.OPEN, rcv=(Fpage.obj(slot),))
        if r.error or r.proto < 0:
            raise L4Error(-r.proto if r.proto < 0 else 0, "open a block session", r.error)
        return cls(env, Gate(env, slot), r.words[0], buf)

    async def write(self, sector: int, data: bytes) -> int:
        await self.env.mem.write(self.buf, data)
        r = await self.session.call(BLK, BlkOp.WRITE, sector, len(data) // SECTOR,
                                    items=(StrItem(self.buf, len(data)),))
        return -Err.EIO if r.error else r.proto

    async def read(self, sector: int, count: int) -> bytes | None:
        r = await self.session.call(BLK, BlkOp.READ, sector, count, rcv=(StrBuf(self.buf, count * SECTOR),))
        if r.error or r.proto < 0:
            return None
        return await self.env.mem.read(self.buf, count * SECTOR)

    async def flush(self) -> int:
        r = await self.session.call(BLK, BlkOp.FLUSH)
        return -Err.EIO if r.error else r.proto
