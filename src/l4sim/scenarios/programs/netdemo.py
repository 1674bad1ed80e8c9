"""The devices scenario's programs: stations on the switch, an echo host beyond the cable, a
disk client, and a rogue driver that tries to reach other tasks' memory by DMA.

Frames are Ethernet frames of the experimental ethertype 0x88B5 whose first
payload byte says what they are (:data:`HELLO`, :data:`READY`,
:data:`DATA`, :data:`PING`, :data:`PONG`).
"""

from __future__ import annotations

import struct

from l4sim.drivers.blk import BlkClient
from l4sim.drivers.netport import NetClient
from l4sim.kernel.abi import Fpage, MapItem
from l4sim.runtime.protocols import IO_BUS, IO_DEVICE, RM, BusOp, DevOp, RmFlag, RmOp
from l4sim.user.env import Env, Gate

ETHERTYPE = b"\x88\xb5"
BROADCAST = b"\xff" * 6
HELLO, READY, DATA, PING, PONG = 1, 2, 3, 4, 5
#: payload bytes of a data frame (a 60-byte frame: the Ethernet minimum)
PAYLOAD = 46


def frame(dst: bytes, src: bytes, kind: int, seq: int, size: int = PAYLOAD) -> bytes:
    body = bytes([kind]) + seq.to_bytes(4, "little")
    return dst + src + ETHERTYPE + body.ljust(size, b"\0")


def kind_of(f: bytes) -> int:
    return f[14] if len(f) > 14 and f[12:14] == ETHERTYPE else 0


async def _port(env: Env, name: str = "net") -> NetClient:
    heap = env.heap  # type: ignore[attr-defined]
    return await NetClient.open(env, env.cap(name, Gate), heap[0])


async def source(env: Env, count: int) -> int:
    """Send ``count`` data frames to the sink through the switch (found by a HELLO broadcast)."""
    port = await _port(env)
    sink = None
    for seq in range(200):
        await port.send(frame(BROADCAST, port.mac, HELLO, seq))
        got = await port.recv(timeout=200_000)
        while got is not None and kind_of(got) != READY:
            got = await port.recv(wait=False)
        if got is not None:
            sink = got[6:12]
            break
    if sink is None:
        await env.print("source: no sink answered")
        return 1
    for seq in range(count):
        await port.send(frame(sink, port.mac, DATA, seq))
    await env.print(f"source: {count} frames sent to {sink.hex(':')}")
    return 0


async def sink(env: Env, count: int) -> int:
    """Answer HELLO with READY; count data frames and report the rate in simulated time."""
    port = await _port(env)
    got = 0
    first = last = 0
    while got < count:
        f = await port.recv()
        if f is None:
            continue
        k = kind_of(f)
        if k == HELLO:
            await port.send(frame(f[6:12], port.mac, READY, 0))
        elif k == DATA:
            last = await env.clock()
            if got == 0:
                first = last
            got += 1
    span = max(last - first, 1)
    rate = (count - 1) * 1_000_000_000 // span
    await env.print(f"sink: {count} frames through the switch in {span / 1000:.1f} us: {rate} frames/s simulated")
    return 0


async def echo(env: Env) -> int:
    """The host beyond the cable: answer every PING with a PONG to its sender (a daemon)."""
    port = await _port(env)
    while True:
        f = await port.recv()
        if f is not None and kind_of(f) == PING:
            await port.send(f[6:12] + port.mac + ETHERTYPE + bytes([PONG]) + f[15:])


async def pinger(env: Env, count: int) -> int:
    """PING the host beyond the cable ``count`` times (switch, NIC, cable and back)."""
    port = await _port(env)
    peer = BROADCAST
    rtts: list[int] = []
    for seq in range(count):
        t0 = await env.clock()
        await port.send(frame(peer, port.mac, PING, seq))
        while True:
            f = await port.recv(timeout=5_000_000)
            if f is None or (kind_of(f) == PONG and int.from_bytes(f[15:19], "little") == seq):
                break
        if f is None:
            await env.print(f"pinger: no answer to ping {seq}")
            return 1
        peer = f[6:12]
        rtts.append(await env.clock() - t0)
    await env.print(f"pinger: {count} pings to {peer.hex(':')} across the cable, "
                    f"round trip {sum(rtts) / len(rtts) / 1000:.1f} us on average")
    return 0


async def store(env: Env) -> int:
    """Write blocks through the blk server, flush some, read them back."""
    heap = env.heap  # type: ignore[attr-defined]
    disk = await BlkClient.open(env, env.cap("disk", Gate), heap[0])
    for s in range(8):
        await disk.write(s * 8, bytes([0x40 + s]) * 4096)
    err = await disk.flush()
    await disk.write(64, b"after the flush".ljust(512, b"."))
    back = await disk.read(3 * 8, 8)
    ok = back == bytes([0x43]) * 4096
    await env.print(f"store: 8 blocks written and flushed (flush {err}), one more written; read back "
                    f"{'intact' if ok else 'WRONG'} from a disk of {disk.sectors} sectors")
    return 0 if ok and not err else 1


async def rogue(env: Env, span: int = 64) -> int:
    """A malicious block driver: its disk's DMA aimed at memory that is not its own.

    It claims its disk through its bus, gets the registers and one DMA buffer
    from io (the ring and a data page), then puts requests into the ring whose
    buffer addresses are the ``span`` pages below its own buffers (other
    drivers' DMA memory in io's pool) and a sweep of RAM at 1 MiB steps
    (other tasks' frames): READs would write the disk's data there, WRITEs
    would read it out.  It counts what it tried and what the controller
    refused (the descriptor's status, and the IOMMU's count through io).
    """
    bus = env.cap("bus", Gate)
    slot = env.alloc_slot()
    r = await bus.call(IO_BUS, BusOp.CLAIM, 0, rcv=(Fpage.obj(slot),))
    if r.error or r.proto < 0:
        await env.print("rogue: could not claim the disk")
        return 1
    dev = Gate(env, slot)
    rm = env.cap("rm", Gate)
    regs = (await rm.call(RM, RmOp.RESERVE, 0, 4096, RmFlag.SEARCH_ADDR)).words[0]
    await dev.call(IO_DEVICE, DevOp.IOMEM, rcv=(Fpage.mem(regs, 12),))
    ds = env.alloc_slot()
    r = await dev.call(IO_DEVICE, DevOp.DMA_ALLOC, 8192, rcv=(Fpage.obj(ds),))
    bus_addr = r.words[0]
    va = (await rm.call(RM, RmOp.ATTACH, 0, 8192, RmFlag.SEARCH_ADDR | RmFlag.EAGER_MAP, 0,
                        items=(MapItem(Gate(env, ds).fpage()),))).words[0]
    ring, ring_bus, data_bus = va, bus_addr, bus_addr + 4096

    async def wl(off: int, v: int) -> None:
        await env.mem.write(regs + off, (v & 0xFFFFFFFF).to_bytes(4, "little"))

    await wl(0x100, ring_bus & 0xFFFFFFFF)
    await wl(0x104, ring_bus >> 32)
    await wl(0x108, 32)
    await wl(0x000, 1)
    targets = [ring_bus - (i << 12) for i in range(1, span + 1) if ring_bus - (i << 12) >= 0]
    targets += list(range(1 << 20, 64 << 20, 1 << 20))
    requests = [(1, t) for t in targets] + [(2, t) for t in targets] + [(1, data_bus)]
    tried = refused = 0
    tail = 0
    for op, addr in requests:
        await env.mem.write(ring + tail * 32, struct.pack("<BBHIQQQ", op, 0, 0, 8, 0, addr, 0))
        tail = (tail + 1) % 32
        await wl(0x118, tail)
        while not (await env.mem.read(ring + ((tail - 1) % 32) * 32 + 1, 1))[0] & 1:
            await env.receive(env.thread, timeout=50_000)  # wait for the controller
        status = (await env.mem.read(ring + ((tail - 1) % 32) * 32 + 1, 1))[0]
        if addr != data_bus:
            tried += 1
            refused += int(bool(status & 2))
        elif status & 2:
            await env.print("rogue: even its own buffer was refused")
    faults = (await dev.call(IO_DEVICE, DevOp.INFO)).words[1]
    await env.print(f"rogue: {tried} DMA transfers aimed at memory not its own, {refused} refused "
                    f"by the controller, {faults} IOMMU faults counted")
    return 0 if refused == tried else 1
